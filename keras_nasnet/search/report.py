"""``python -m keras_nasnet.search report DIR``: the top trials of a search and its best cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..genotypes import Cell
from .space import SearchSpace


def load_trials(out: Path) -> list[dict]:
    """Finished trial records of a search folder (a cut last line is ignored; other damage raises
    :class:`~keras_nasnet.search.errors.JournalCorrupt`)."""
    from .journal import read_records

    return [r for r in read_records(Path(out) / "trials.jsonl")[0] if r["event"] == "finished"]


def search_cost(out) -> dict:
    """What a search folder has cost so far, in CPU-seconds, from its journals: the search's own
    children (``trials.jsonl``), every stage under ``stages/``, and the supernet's training.

    A child's cost is its record's ``cpu_seconds`` (the CPU time of the process that evaluated it,
    all threads), or, in records of versions that did not measure it, its wall ``seconds`` (which
    also count time lost to other jobs on the machine: such parts say how many in
    ``"wall_only"``). Children copied from other journals (``reused_from``) count too: a search run
    from scratch trains them. Children lost to infrastructure errors (a killed worker) and run
    again count under ``"errors"`` with whatever CPU time their record holds (none when the worker
    died).

    The supernet's training (``cifar10-shared``) runs inside the first child's call and is kept
    out of that child's cost: its total is the largest of the records' running totals
    (``supernet_cpu_seconds``) and the one in the folder's ``supernet.npz`` (which also holds a
    warm-up whose child never finished). A supernet trained again from scratch in the same folder
    (after deleting a damaged checkpoint) counts once. ``"supernet_partial"`` is True when part of
    the training was done by a version that did not count it (only the rest is in the total);
    ``"supernet_cpu_seconds"`` is None when nothing about it is recorded (another reward, a copied
    supernet, or a version before the count). An evolution search's warm start (the widths of its
    random cells, ``warm_start.json``) counts too: ``"warm_start_cpu_seconds"``, None without
    one. Returns::

        {"parts": {"search" | stage name: {"children", "reused", "cpu_seconds", "wall_only",
                                           "errors"}},
         "supernet_cpu_seconds": float | None, "supernet_partial": bool,
         "warm_start_cpu_seconds": float | None, "cpu_seconds": total, "cpu_hours": total / 3600}
    """
    from .journal import read_records

    out = Path(out)
    if not any((out / n).is_file() for n in ("config.json", "trials.jsonl")):
        # a wrong path would otherwise read as a search that cost 0 CPU-seconds
        from .errors import NotASearch

        raise NotASearch(f"{out} is not a search folder (no config.json or trials.jsonl).")
    parts, supernet, setup, partial = {}, None, 0.0, False
    journals = [("search", out / "trials.jsonl")]
    journals += [(p.parent.name, p) for p in sorted((out / "stages").glob("*/trials.jsonl"))]
    for name, path in journals:
        if not path.exists():
            continue
        part = {"children": 0, "reused": 0, "cpu_seconds": 0.0, "wall_only": 0, "errors": 0}
        for r in read_records(path)[0]:
            if r["event"] not in ("finished", "error"):
                continue
            setup += float(r.get("setup_cpu_seconds", 0.0))
            if "supernet_cpu_seconds" in r:
                supernet = max(supernet or 0.0, float(r["supernet_cpu_seconds"]))
            elif "setup_cpu_seconds" in r:
                partial = True  # a warm-up resumed from a checkpoint that did not count
            if r["event"] == "error":
                part["errors"] += 1
                part["cpu_seconds"] += float(r.get("cpu_seconds", 0.0))
                continue
            part["children"] += 1
            part["reused"] += "reused_from" in r
            if "cpu_seconds" in r:
                part["cpu_seconds"] += float(r["cpu_seconds"])
            else:
                part["cpu_seconds"] += float(r.get("seconds", 0.0))
                part["wall_only"] += 1
        parts[name] = part
    checkpoint = _checkpoint_cpu_seconds(out)
    if checkpoint is not None:
        supernet = max(supernet or 0.0, checkpoint)
    elif supernet is None and setup:
        supernet = setup  # the warm-ups recorded here, after a resume from an older checkpoint
    from .run import WARM_START_FILE
    from .warmstart import cache_cpu_seconds

    warm = cache_cpu_seconds(out / WARM_START_FILE)
    total = sum(p["cpu_seconds"] for p in parts.values()) + (supernet or 0.0) + (warm or 0.0)
    return {"parts": parts, "supernet_cpu_seconds": supernet, "supernet_partial": partial,
            "warm_start_cpu_seconds": warm, "cpu_seconds": total, "cpu_hours": total / 3600}


def _stage_order(name: str):
    """Stage folders in the order the pipeline runs them (the supernet's re-scoring, the
    screening, then the budgets upward: ``budget-2`` before ``budget-10``), whatever their names
    sort to."""
    kind, _, rest = name.partition("-")
    number = rest.partition("-")[0]
    return ({"rescore": 0, "screen": 1, "budget": 2}.get(kind, 3), int(number) if number.isdigit() else 0,
            name)


def stage_progress(out) -> dict:
    """Where each stage of a search folder stands, from its journal under ``stages/``, in the
    order the stages run: ``{stage folder name: {"finished": n, "planned": m}}``.

    ``planned`` counts the children the stage has proposed so far. A stage proposes a round's
    children before training them, and the final budget's confirmation round comes after the
    rest, so ``planned`` can still grow. A stage that has proposed nothing yet has no entry. A
    journal that cannot be read gets ``{"finished": None, "planned": None, "damaged": reason}``
    instead, so that the other stages are still reported."""
    from .errors import SearchError
    from .journal import read_records

    found = {}
    for path in sorted(Path(out).glob("stages/*/trials.jsonl"), key=lambda p: _stage_order(p.parent.name)):
        try:
            records = read_records(path)[0]
        except (SearchError, OSError) as e:
            found[path.parent.name] = {"finished": None, "planned": None, "damaged": str(e)}
            continue
        proposed = {r["trial"] for r in records if r["event"] == "proposed"}
        finished = {r["trial"] for r in records if r["event"] == "finished"}
        if proposed | finished:
            found[path.parent.name] = {"finished": len(finished), "planned": len(proposed | finished)}
    return found


def _checkpoint_cpu_seconds(out: Path):
    """The supernet checkpoint's training CPU-seconds, or None (no checkpoint, or an older one)."""
    import numpy as np

    from .shared_reward import CHECKPOINT

    try:
        with np.load(out / CHECKPOINT) as z:
            return float(z["cpu_seconds"]) if "cpu_seconds" in z.files else None
    except (OSError, ValueError, KeyError):  # absent or damaged: the search itself reports that
        return None


def _read_final(out: Path) -> tuple[dict | None, str | None]:
    """``(final.json's content, None)`` for a search whose stages ran; ``(None, None)`` when the
    file is absent; ``(None, what is wrong)`` when it is there but cannot be read (a cut copy, a
    merge conflict's markers)."""
    path = out / "final.json"
    if not path.exists():
        return None, None
    try:
        final = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{type(e).__name__}: {e}"
    if not (isinstance(final, dict) and final.get("final_cell")):
        return None, "it has no final_cell"
    return final, None


def _final(out: Path) -> dict | None:
    """``final.json`` of a search whose stages ran, or None."""
    return _read_final(out)[0]


def _final_lines(final: dict) -> str:
    """The final cell beside NASNet-A and the random cells' mean, at the final budget."""
    import statistics

    budget = final["final_cell"].get("budget")
    at = [e for e in final.get("entries", []) if e.get("budget") == budget]
    cell = next((e for e in at if e["name"] == final["final_cell"]["name"]), None)
    rows = [e for e in at if e["kind"] == "nasnet_a"] + ([cell] if cell else [])
    lines = [f"  {'':<12} {'held-out':>9} {'test':>7}  seeds, final budget {budget}"]
    for e in rows:
        test = [t for t in e.get("test", []) if t is not None]
        # A seed whose training failed counts 0 in the mean: said beside it.
        failed = f" ({len(e['failed'])} failed, counted as 0)" if e.get("failed") else ""
        lines.append(f"  {e['name']:<12} {statistics.fmean(e['val']):>9.4f} "
                     f"{statistics.fmean(test) if test else float('nan'):>7.4f}  {len(e['val'])}{failed}")
    rand = [e for e in at if e["kind"] == "random" and e["val"]]
    if rand:
        lines.append(f"  {'random mean':<12} {statistics.fmean(statistics.fmean(e['val']) for e in rand):>9.4f} "
                     f"{'':>7}  {len(rand)} cells")
    return "\n".join(lines)


def _cpu_time(seconds: float) -> str:
    return f"{seconds / 3600:.2f} CPU-hours" if seconds >= 3600 else f"{seconds / 60:.1f} CPU-minutes"


def _previous_summary(out: Path) -> dict:
    try:
        old = json.loads((out / "summary.json").read_text())
        return old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        return {}


def draw_cell(ax, cell: Cell, title: str = "", reduction: bool = False) -> None:
    """Draws ``cell`` as a layered graph (see :func:`keras_nasnet.search.cellplot.draw_cell`)."""
    from .cellplot import draw_cell as draw

    draw(ax, cell, title, reduction=reduction)


def main(argv=None) -> int:
    """Prints the top trials of a search folder and writes ``best_cells.png``."""
    from ..cliargs import ArgumentParser, positive_int

    p = ArgumentParser(prog="python -m keras_nasnet.search report")
    p.add_argument("out", help="a search folder")
    p.add_argument("--top", type=positive_int, default=10, help="how many trials to list")
    a = p.parse_args(argv)
    out = Path(a.out)
    if not (out / "config.json").exists() or not (out / "trials.jsonl").exists():
        missing = [n for n in ("config.json", "trials.jsonl") if not (out / n).exists()]
        if missing == ["config.json"]:
            print(f"error: {out} has a journal (trials.jsonl) but no config.json, the search's settings: "
                  "restore it from a copy or a commit.", file=sys.stderr)
        else:
            kept = sorted(out.glob("trials.jsonl.this-run-*"))
            hint = (f" {kept[0].name} there holds the records of a run whose journal was replaced or "
                    f"deleted while it ran: move it to {out / 'trials.jsonl'} if it is this search's journal."
                    if kept else "")
            print(f"error: {out} is not a search folder (no {' / '.join(missing)}).{hint}", file=sys.stderr)
        return 2
    from .errors import SearchError
    from .journal import read_config
    from .run import write_outputs

    try:
        config = read_config(out / "config.json")
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if config.get("stage"):
        # A stage's journal (or train_standalone's) has the search's format but trains given cells.
        parent = out.parent.parent if out.parent.name == "stages" else None
        print(f"error: {out} is the journal of stand-alone children ({config['stage']}), not a search: "
              + (f"run report on the search folder, {parent}" if parent else
                 "read it with keras_nasnet.search.read_standalone_journal") + ".", file=sys.stderr)
        return 2
    try:
        space = SearchSpace(**config["space"])
    except (KeyError, TypeError, ValueError) as e:
        # A config.json edited by hand: name the file and the setting, not a traceback.
        what = "has no 'space'" if isinstance(e, KeyError) else f"space: {e}"
        print(f"error: {out / 'config.json'} {what}; put back the search's own config.json "
              f"(git, a backup) or fix that setting.", file=sys.stderr)
        return 1
    try:
        trials = load_trials(out)
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ok = [r for r in trials if r["status"] == "ok"]
    if not ok:
        print(f"error: {out} has no successful trials yet ({len(trials)} failed).", file=sys.stderr)
        return 1
    # The files a finished search writes, from what is recorded now (a search that was stopped or
    # is still running gets them too; the writes are atomic, so a running search is not disturbed).
    previous = _previous_summary(out)
    planned = previous.get("trials_planned")
    # What only the search knew when it wrote summary.json (its controller's greedy cell, its
    # infrastructure errors) is kept, not dropped by this rewrite from the records.
    kept = {k: previous[k] for k in ("errors", "greedy_genotype") if k in previous}
    final, damage = _read_final(out)
    if damage:
        print(f"note: {out / 'final.json'} cannot be read ({damage}); best_genotype.json is left as "
              "it is. Restore final.json from a copy or a commit, or run the search's command with "
              "--stages all to write it again (the stages' children are kept and not trained again).",
              file=sys.stderr)
    # After the stages, best_genotype.json is their final cell, not the best reward: keep it.
    write_outputs(out, space, config, trials, None, trials_planned=planned,
                  write_best=final is None and not damage,
                  **kept, **({} if final is None else {"final_cell": final["final_cell"]}),
                  # summary.json keeps naming the final cell that best_genotype.json still holds
                  **({"final_cell": previous["final_cell"]} if damage and "final_cell" in previous else {}))
    of_planned = (f" of {planned} planned (not finished: run the search's command to go on)"
                  if isinstance(planned, int) and len(trials) < planned else "")
    print(f"{out}: {len(trials)} trials{of_planned} ({len(trials) - len(ok)} failed), strategy "
          f"{config['strategy']}, reward {config['reward']}")
    ranked = sorted(ok, key=lambda r: -r["reward"])[: a.top]
    print(f"{'rank':>4} {'trial':>6} {'reward':>8} {'seconds':>8}")
    for i, r in enumerate(ranked, 1):
        print(f"{i:>4} {r['trial']:>6} {r['reward']:>8.4f} {r['seconds']:>8.1f}")
    progress = {}
    try:
        cost = search_cost(out)
    except SearchError as e:  # a damaged stage journal: say so, and still draw the best cell
        print(f"cost: not known ({e})")
    else:
        supernet = cost["supernet_cpu_seconds"]
        print(f"cost so far: {_cpu_time(cost['cpu_seconds'])} over "
              f"{sum(p['children'] for p in cost['parts'].values())} children"
              + ("" if supernet is None else f", the supernet's training {_cpu_time(supernet)} of it")
              + ("" if cost["warm_start_cpu_seconds"] is None
                 else f", the warm start {_cpu_time(cost['warm_start_cpu_seconds'])} of it")
              + (" (part of the supernet's training was not counted: an older version)"
                 if cost["supernet_partial"] else ""))
        progress = stage_progress(out)
        if progress:
            print("stages: " + ", ".join(f"{name} {p['finished']} of {p['planned']} children finished"
                                         if "damaged" not in p else f"{name} unreadable ({p['damaged']})"
                                         for name, p in progress.items())
                  + ("" if final is None else " (final.json written)"))
    best = space.decode(ranked[0]["actions"])
    title = f"{out.name}: best cell, trial {ranked[0]['trial']} (reward {ranked[0]['reward']:.4f})"
    if final is None and damage:
        print(f"\nBest reward's genotype (trial {ranked[0]['trial']}; final.json, which names the "
              f"stages' final cell, cannot be read):\n{best}")
    elif final is None and progress:
        # Until the stages write final.json, the best reward's cell is only a candidate: say so,
        # so that it is not taken for the search's result.
        print(f"\nBest reward's genotype (trial {ranked[0]['trial']}; the stages have not finished, and "
              f"best_genotype.json becomes their final cell when they do):\n{best}")
    elif final is None:
        print(f"\nBest genotype (trial {ranked[0]['trial']}):\n{best}")
    else:
        from ..genotypes import Genotype

        print(f"\nThe stages' final cell (best_genotype.json; the best reward was trial {ranked[0]['trial']}):")
        from .run import _stale_stages

        stale = _stale_stages(out, final, len(trials))
        if stale:
            print(f"(out of date: {stale} Run the search's command with --stages all to update it.)")
        print(_final_lines(final))
        best = Genotype.from_dict(final["final_cell"]["genotype"])
        print(best)
        title = f"{out.name}: final cell of the stages, {final['final_cell']['name']} (trial {final['final_cell']['trial']})"
    try:
        from .cellplot import plot_genotype

        plot_genotype(best, out / "best_cells.png", title)
        print(f"\nDrawn: {out / 'best_cells.png'}")
    except ImportError:
        print("\n(matplotlib not installed: no drawing; pip install 'keras_nasnet[plots]')")
    return 0
