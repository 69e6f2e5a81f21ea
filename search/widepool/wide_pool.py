"""Screen the search's widest cells at equal parameters beside the pipeline's pool (issue 20).

The stages judge every cell at NASNet-A's parameter count, so a cell with light operations gets
more filters. The search's reward (the supernet, one width for all) does not see this, and its
pool holds mostly cells that get 48-96 filters where NASNet-A gets 192. On the 57 cells with a
ground truth, the width at equal parameters alone ranks with Kendall tau 0.33-0.44
(``search/reward/``). This script asks whether the search's widest cells, outside the 40 that the
supernet re-scored, are worth screening:

1. the search's distinct cells, best reward first (as the stages order them); the width each gets
   at the screening's parameter count for the first ``--from`` of them (cached in
   ``OUT/widths.json``);
2. the cells with at least ``--min-width`` filters that the pipeline did not screen are screened
   as the pipeline screens (its journal's budget, recipe and seeds), through the search's
   executors (``OUT/screen/``);
3. with ``--final``, the new cells that the combined screening ranks among its top ``--top-k``
   are trained at the pipeline's final budget with its seeds (``OUT/final/``). The last round is
   then the combined top ``--top-k`` (the pipeline's finalists they pushed out leave it), and the
   new cells among its best ``--confirm-top`` get the confirmation's seeds too;
4. ``OUT/report.json``: the combined screening ranking, and the new cells against the pipeline's
   finalists and NASNet-A.

A run stopped anywhere resumes with the same command (the journals skip finished children).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _key(genotype: dict) -> str:
    return json.dumps(genotype, sort_keys=True)


def search_cells(run: Path, space) -> list[dict]:
    """The search's distinct cells, best reward first (a cell sampled twice keeps its first
    record's place), as the stages order them before re-scoring."""
    from keras_nasnet.search import load_trials

    out, seen = [], set()
    for r in sorted((r for r in load_trials(run) if r.get("status") == "ok"), key=lambda r: (-r["reward"], r["trial"])):
        g = space.decode(r["actions"]).to_dict()
        if _key(g) not in seen:
            seen.add(_key(g))
            out.append({"trial": r["trial"], "reward": r["reward"], "genotype": g})
    return out


def widths(cells: list[dict], num_cells: int, params: int, cache: Path) -> dict:
    """``{trial: filters}`` at ``params`` parameters (matched_units), cached in ``cache``."""
    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import matched_units

    known = json.loads(cache.read_text()) if cache.exists() else {}
    if known and (known.get("num_cells"), known.get("params")) != (num_cells, params):
        raise SystemExit(f"{cache} holds widths at another size; remove it or give another --out.")
    known.update(num_cells=num_cells, params=params)
    table = known.setdefault("widths", {})
    for i, c in enumerate(cells):
        if str(c["trial"]) not in table:
            table[str(c["trial"])] = matched_units(Genotype.from_dict(c["genotype"]), num_cells, params)
            if i % 25 == 0:
                print(f"widths: {i + 1}/{len(cells)}", file=sys.stderr, flush=True)
                write_json_atomic(cache, known)
    write_json_atomic(cache, known)
    return {int(k): v for k, v in table.items()}


def journal_means(folder: Path) -> tuple[dict, dict, dict]:
    """``({cell key: [held-out accuracies]}, {cell key: [test accuracies]}, {cell key: [seeds]})``
    of a stand-alone journal, seeds in order."""
    from keras_nasnet.search import read_standalone_journal

    val, test, seeds = {}, {}, {}
    for r in sorted(read_standalone_journal(folder), key=lambda r: r["seed"]):
        val.setdefault(r["cell"], []).append(r["standalone_accuracy"])
        test.setdefault(r["cell"], []).append(r["test_accuracy"])
        seeds.setdefault(r["cell"], []).append(r["seed"])
    return val, test, seeds


def proxy_of(journal: Path, data):
    """The ProxyConfig a stage journal trained its children with (epochs = its budget)."""
    from keras_nasnet.search import ProxyConfig

    cfg = json.loads((journal / "config.json").read_text())
    return ProxyConfig.from_record({**cfg["proxy"], "epochs": cfg["budget"], **({"data": data} if data else {})})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a search folder whose stages ran (final.json)")
    p.add_argument("--from", dest="first", type=int, default=300,
                   help="how many of the search's best distinct cells to measure the width of (default 300)")
    p.add_argument("--min-width", type=int, default=120,
                   help="screen the cells with at least this many filters at equal parameters (default 120)")
    p.add_argument("--final", action="store_true",
                   help="also train the new cells that screen into the top --top-k at the final budget")
    p.add_argument("--top-k", type=int, default=16, help="the pipeline's cheap-budget pool (default 16)")
    p.add_argument("--confirm-top", type=int, default=4, help="the pipeline's confirmation pool (default 4)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (see keras_nasnet.data); default the journals'")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (one core each)")
    p.add_argument("--reuse", nargs="*", default=[], metavar="DIR",
                   help="folders of stand-alone journals whose children at the same budget, recipe and seed "
                        "are copied, not trained again (the run's own stages always are)")
    p.add_argument("--out", required=True, help="folder: OUT/widths.json, OUT/screen/, OUT/final/, OUT/report.json")
    a = p.parse_args(argv)

    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.genotypes import genotype_from
    from keras_nasnet.search import (SearchConfig, mean_difference, pooled_seed_sd, seeds_difference,
                                     train_standalone)

    run, out = Path(a.run), Path(a.out)
    final = json.loads((run / "final.json").read_text())
    config = SearchConfig.load(run)
    [screen_dir] = sorted((run / "stages").glob("screen-*"))
    [final_dir] = sorted((run / "stages").glob("budget-*"))
    screen_proxy, final_proxy = proxy_of(screen_dir, a.data), proxy_of(final_dir, a.data)
    out.mkdir(parents=True, exist_ok=True)

    cells = search_cells(run, config.space)[:a.first]
    width = widths(cells, screen_proxy.num_cells, screen_proxy.match_params, out / "widths.json")
    screened_val, _, _ = journal_means(screen_dir)
    new = [c for c in cells if width[c["trial"]] >= a.min_width and _key(c["genotype"]) not in screened_val]
    nasnet = genotype_from("NASNET_A").to_dict()
    print(f"{len(cells)} cells measured; {sum(width[c['trial']] >= a.min_width for c in cells)} have at least "
          f"{a.min_width} filters, {len(new)} of them not screened by the pipeline.", file=sys.stderr, flush=True)

    reuse = [str(run), *a.reuse]
    screen_seeds = final["screen"]["seeds"]
    todo = {f"trial-{c['trial']}": c["genotype"] for c in new}
    todo["NASNet-A"] = nasnet  # its screening score, for scale (copied where measured)
    train_standalone(out / "screen", todo, screen_seeds, screen_proxy, workers=a.workers, reuse=reuse, test=False)

    # The combined screening: the pipeline's 40 cells and the new ones, by their mean.
    new_val, _, _ = journal_means(out / "screen")
    pool = {}
    for e in final["entries"]:
        if e["kind"] == "finalist":
            pool[_key(e["genotype"])] = {"trial": e["trial"], "pipeline": "finalist"}
    for c in cells:
        k = _key(c["genotype"])
        if k in screened_val and k not in pool:
            pool[k] = {"trial": c["trial"], "pipeline": "screened"}
    for c in new:
        pool[_key(c["genotype"])] = {"trial": c["trial"], "pipeline": "new"}
    genotypes = {_key(c["genotype"]): c["genotype"] for c in cells}
    rows = []
    for k, info in pool.items():
        vals = screened_val.get(k) or new_val.get(k) or []
        if len(vals) != len(screen_seeds):
            continue  # a pipeline cell outside the first --from, or a child still to train
        t = next((c for c in cells if _key(c["genotype"]) == k), None)
        rows.append({**info, "width": width.get(info["trial"]) if t else None,
                     "search_reward": t["reward"] if t else None, "screen": statistics.fmean(vals)})
    rows.sort(key=lambda r: -r["screen"])
    for i, r in enumerate(rows):
        r["screen_rank"] = i + 1
    nasnet_screen = statistics.fmean(new_val[_key(nasnet)])
    report = {"run": str(run), "from": a.first, "min_width": a.min_width, "screen_seeds": screen_seeds,
              "widths": {str(w): sum(width[c["trial"]] == w for c in cells) for w in sorted(set(width[c["trial"]] for c in cells))},
              "new_cells": len(new), "nasnet_a_screen": nasnet_screen, "screening": rows}
    entrants = [r for r in rows[:a.top_k] if r["pipeline"] == "new"]
    report["entrants"] = [r["trial"] for r in entrants]
    print(f"screening: {len(entrants)} new cells in the top {a.top_k}: {report['entrants']}; NASNet-A screens "
          f"{nasnet_screen:.4f}, above {sum(r['screen'] < nasnet_screen for r in rows)} of {len(rows)} cells.",
          file=sys.stderr, flush=True)

    if a.final and entrants:
        seeds = final["seeds"]
        more = final["confirmation"]["seeds"] if final.get("confirmation") else []
        by_trial = {info["trial"]: k for k, info in pool.items()}
        ent = {f"trial-{r['trial']}": genotypes[by_trial[r["trial"]]] for r in entrants}
        train_standalone(out / "final", ent, seeds, final_proxy, workers=a.workers, reuse=reuse)
        fval, ftest, _ = journal_means(out / "final")
        # The last round as the pipeline would have had it: its finalists' 3-seed means and the
        # entrants'; the entrants among its best confirm_top get the confirmation's seeds.
        # The pipeline's finalists that the new cells pushed out of the top --top-k leave the round.
        kept = {r["trial"] for r in rows[:a.top_k]}
        last = [{"trial": e["trial"], "name": e["name"], "val3": statistics.fmean(e["val"][:len(seeds)]), "entry": e}
                for e in final["entries"] if e["kind"] == "finalist" and e["trial"] in kept]
        last += [{"trial": int(n.split("-")[1]), "name": n, "val3": statistics.fmean(fval[_key(g)][:len(seeds)]),
                  "genotype": g} for n, g in ent.items()]
        last.sort(key=lambda r: -r["val3"])
        top = last[:a.confirm_top]
        confirm = {r["name"]: r["genotype"] for r in top if "genotype" in r}
        if confirm and more:
            train_standalone(out / "final", confirm, more, final_proxy, workers=a.workers, reuse=reuse)
            fval, ftest, _ = journal_means(out / "final")
        ref = next(e for e in final["entries"] if e["kind"] == "nasnet_a")
        # The seed noise as targets.py pools it: over the test splits of every cell at the final budget.
        sd = pooled_seed_sd([e["test"] for e in final["entries"] if e.get("test") and None not in e["test"]])
        table = []
        for r in top:
            if "entry" in r:
                val, test = r["entry"]["val"], r["entry"]["test"]
            else:
                val, test = fval[_key(r["genotype"])], ftest[_key(r["genotype"])]
            table.append({"trial": r["trial"], "new": "genotype" in r, "val_3": r["val3"], "val": statistics.fmean(val),
                          "test": statistics.fmean(test), "seeds": len(val),
                          "test_minus_nasnet_a": seeds_difference(test, ref["test"][:len(test)], sd)})
        table.sort(key=lambda r: -r["val"])
        report["last_round"] = [{k: r[k] for k in ("trial", "name", "val3")} for r in last]
        # The pool target as targets.py judges it: the last round's held-out means on the first
        # seeds minus the random cells', beside the pipeline's own 16 finalists.
        randoms = [statistics.fmean(e["val"][:len(seeds)]) for e in final["entries"] if e["kind"] == "random"]
        old16 = [statistics.fmean(e["val"][:len(seeds)]) for e in final["entries"] if e["kind"] == "finalist"]
        report["pool_minus_random"] = {"with_widest": mean_difference([r["val3"] for r in last], randoms),
                                       "pipeline": mean_difference(old16, randoms)}
        report["confirmation"] = table
        report["final_cell"] = table[0]["trial"]
        report["nasnet_a"] = {"val": statistics.fmean(ref["val"]), "test": statistics.fmean(ref["test"]),
                              "seeds": len(ref["val"])}
        print(f"final cell: trial {table[0]['trial']} ({'new' if table[0]['new'] else 'the pipeline'}'s), test minus "
              f"NASNet-A {table[0]['test_minus_nasnet_a']}", file=sys.stderr)
    write_json_atomic(out / "report.json", report)
    print(f"wrote {out / 'report.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
