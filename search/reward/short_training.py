"""A short stand-alone training as the reward, against the final budget's ground truth (issue 20, part 4).

The supernet (tau 0.26 on all 57 ground-truth cells) and the training-free scores (NASWOT 0.35,
the width at equal parameters 0.33) rank the cells far below the 0.55 the issue asks for, and the
figures say the supernet's gap is bias: it trains every path at one width, not at the width each
cell gets at the truth's parameter count. A short training of the stand-alone child itself has no
such bias: it is the truth's own procedure, cut short. Ru et al. ("Speedy Performance Estimation
for Neural Architecture Search", NeurIPS 2021) rank architectures by the training losses of such
a short run (the training-speed estimate, TSE); the held-out accuracy after it is the other
obvious score.

This script trains every cell of the given ground-truth journals stand-alone at a short budget
(``--budget eE-Nk``: E epochs on the first N thousand training images, at the truth's parameter
count and recipe) with seeds that none of the truth's children used, through the search's
executors (``keras_nasnet.search.train_standalone``; it resumes, no finished child is trained
twice), and reports, per journal and for all cells at once, Kendall's tau (95% bootstrap interval
over cells) against the cells' mean held-out accuracy at the truth's budget of:

- ``short-val``: the held-out accuracy after the short training (mean over ``--seeds``);
- ``short-loss``: minus the mean training loss of its last epoch (TSE);
- ``width``: the zero-cost baseline (each cell's width at the truth's parameter count);
- ``naswot``: NASWOT, read from ``--zero-cost`` (``zero_cost.py``'s JSON), if given;

and the short training's tau minus the width's and NASWOT's (paired bootstrap).

    python search/reward/short_training.py --data ../shared/datasets/cifar10-jpeg.zip --budget e1-5k \\
        --truth search/calibration/e1-45k-add-p73218/journal search/fair/ppo/stages/budget-1-p73218 \\
                search/fair/random/stages/budget-1-p73218 \\
        --zero-cost search/reward/zero-cost.json --out search/reward/short-e1-5k

writes the children's journal to ``OUT/journal`` and the figures to ``OUT/ranking.json``;
``--report`` recomputes the figures from the journal without training. With two seeds (the mean
of two short trainings), reusing the first seed's children:

    python search/reward/short_training.py --data ../shared/datasets/cifar10-jpeg.zip --budget e1-5k \
        --seeds 10 11 --reuse search/reward/short-e1-5k --truth ... --out search/reward/short-e1-5k-s2
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

#: The truth's seeds are 0-5; these children must share no initialisation or data order with them.
DEFAULT_SEEDS = (10,)


def _truth_cells(journals) -> dict:
    """The truth's budget and ``{cell key: {"genotype", "truth", "seeds", "by_journal"}}`` over all
    journals: ``truth`` from the journal where the cell has the most seeds, ``by_journal`` its
    mean in each journal that has it."""
    from keras_nasnet.search import read_standalone_journal

    cells: dict = {}
    budget = None
    for j in journals:
        if not (Path(j) / "config.json").is_file():
            raise SystemExit(f"--truth {j}: not a stand-alone journal (no config.json)")
        rows = read_standalone_journal(j)
        if not rows:
            raise SystemExit(f"--truth {j}: no finished stand-alone child yet")
        if budget is None:
            budget = rows[0]["budget"]
        elif rows[0]["budget"] != budget:
            raise SystemExit(f"--truth {j}: its budget {rows[0]['budget']} differs from the first journal's "
                             f"{budget}; give journals of one budget.")
        here: dict = {}
        for r in rows:
            here.setdefault(r["cell"], {"genotype": r["genotype"], "seeds": []})["seeds"].append(r["standalone_accuracy"])
        for key, c in here.items():
            old = cells.get(key)
            by_journal = {**(old["by_journal"] if old else {}), str(j): statistics.fmean(c["seeds"])}
            if old is None or len(c["seeds"]) > len(old["seeds"]):
                cells[key] = {"genotype": c["genotype"], "seeds": c["seeds"]}
            cells[key]["by_journal"] = by_journal
    if not budget.get("match_params"):
        raise SystemExit("the truth's children are not at one parameter count; give journals made with "
                         "match_params (e.g. search/calibration/e1-45k-add-p73218/journal).")
    for c in cells.values():
        c["truth"] = statistics.fmean(c["seeds"])
    return budget, cells


def _short_proxy(budget_name: str, truth_budget: dict, data):
    """The ProxyConfig of ``eE-Nk`` with every other setting (width rule, recipe) the truth's."""
    from keras_nasnet.search import ProxyConfig

    try:
        return ProxyConfig.from_record({**truth_budget, "data": data}).with_budget(budget_name)
    except ValueError as e:
        raise SystemExit(f"--{e}") from None


def _table(rows, keys, journal=None):
    """Each score's tau against the truth (``journal``: that journal's own means), and the short
    training's tau minus the training-free scores' (paired bootstrap)."""
    from keras_nasnet.search import rank_correlations, tau_difference

    truth = [r["truth"] if journal is None else r["by_journal"][journal] for r in rows]
    out = {"cells": len(rows)}
    for k in keys:
        out[k] = rank_correlations([r[k] for r in rows], truth)
    for short in ("short-val", "short-loss"):
        for other in ("width", "naswot"):
            if other in keys:
                out[f"{short}_minus_{other}"] = tau_difference([r[short] for r in rows], [r[other] for r in rows], truth)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--truth", nargs="+", required=True, metavar="JOURNAL",
                   help="stand-alone journals of one budget at one parameter count (the ground truths)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (see keras_nasnet.data); default tfds")
    p.add_argument("--budget", default="e1-5k", help="the short budget, eE-Nk (default e1-5k: 1/9 of the truth's)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                   help="seeds of the short children; keep them apart from the truth's (default 10)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (one core each)")
    p.add_argument("--zero-cost", default=None, metavar="JSON", help="zero_cost.py's JSON, for NASWOT beside it")
    p.add_argument("--reuse", nargs="+", default=[], metavar="DIR",
                   help="folders of stand-alone journals (e.g. another --out of this script) whose children "
                        "at the same budget, recipe and seed are copied, not trained again")
    p.add_argument("--report", action="store_true", help="only recompute the figures from the journal")
    p.add_argument("--out", required=True, help="folder: OUT/journal (the children) and OUT/ranking.json")
    a = p.parse_args(argv)

    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import train_standalone
    from keras_nasnet.search import matched_units

    budget, cells = _truth_cells(a.truth)
    out = Path(a.out)
    proxy = _short_proxy(a.budget, budget, a.data)
    names = {key: f"cell-{i:02d}" for i, key in enumerate(cells)}
    genotypes = {names[k]: c["genotype"] for k, c in cells.items()}
    if a.report:
        if not (out / "journal" / "config.json").is_file():
            raise SystemExit(f"--report: {out / 'journal'} holds no children yet; run without --report first.")
        from keras_nasnet.search import read_standalone_journal

        short: dict = {}
        for r in read_standalone_journal(out / "journal"):
            short.setdefault(r["cell"], []).append(r)
        rows = {names[k]: [{"val": r["standalone_accuracy"], "train_loss": r["train_loss"], "seed": r["seed"],
                            "cpu_seconds": None} for r in short.get(k, []) if r["seed"] in a.seeds]
                for k in cells}
    else:
        print(f"{len(cells)} cells x {len(a.seeds)} seeds at {a.budget} "
              f"({proxy.train_images} images, {proxy.match_params} parameters)", flush=True)
        # nothing here reads the test split: skipping it saves about a fifth of each child
        trained = train_standalone(out / "journal", genotypes, a.seeds, proxy, workers=a.workers, progress=False,
                                   reuse=a.reuse, test=False)
        rows = {}
        for r in trained:
            rows.setdefault(r["cell"], []).append(r)
    naswot = {}
    if a.zero_cost:
        naswot = json.loads(Path(a.zero_cost).read_text())["scores"]

    table = []
    for key, c in cells.items():
        rs = [r for r in rows.get(names[key], []) if r.get("val") is not None and r.get("train_loss") is not None]
        if len(rs) < len(a.seeds):
            continue  # not trained yet (a --report while a run is under way)
        width = matched_units(Genotype.from_dict(c["genotype"]), budget["num_cells"], budget["match_params"])
        row = {"cell": names[key], "truth": c["truth"], "truth_seeds": len(c["seeds"]), "by_journal": c["by_journal"],
               "short-val": statistics.fmean(r["val"] for r in rs),
               "short-loss": -statistics.fmean(r["train_loss"] for r in rs), "width": width,
               "cpu_seconds": [r.get("cpu_seconds") for r in rs]}
        nk = json.dumps([key, budget["num_cells"], width])
        if nk in naswot:
            row["naswot"] = naswot[nk]
        table.append(row)
    if len(table) < 3:
        raise SystemExit(f"only {len(table)} cells are scored so far; run without --report to train them.")
    keys = ["short-val", "short-loss", "width"] + (["naswot"] if all("naswot" in r for r in table) else [])
    result = {"budget": a.budget, "seeds": a.seeds, "truth": [str(j) for j in a.truth],
              "truth_budget": budget, "all_cells": _table(table, keys), "journals": {}}
    for j in a.truth:
        sub = [r for r in table if str(j) in r["by_journal"]]
        if len(sub) >= 3:
            result["journals"][str(j)] = _table(sub, keys, str(j))
        # the cells no other journal has (a pipeline's finalists beside the shared references):
        # does a score rank good cells among good ones, what the screening stage must do?
        own = [r for r in table if list(r["by_journal"]) == [str(j)]]
        if len(own) >= 3 and len(own) < len(sub):
            result["journals"][str(j)]["own_cells"] = _table(own, keys, str(j))
    later = [r for r in table if str(a.truth[0]) not in r["by_journal"]]
    if len(a.truth) > 1 and len(later) >= 3:
        result["not_in_first_journal"] = _table(later, keys)
    secs = [s for r in table for s in r["cpu_seconds"] if s]
    if secs:
        result["cpu_seconds_per_child"] = {"mean": statistics.fmean(secs), "min": min(secs), "max": max(secs)}
    result["rows"] = table
    write_json_atomic(out / "ranking.json", result, indent=1)

    def show(name, t):
        print(f"{name} ({t['cells']} cells):")
        for k in keys:
            lo, hi = t[k]["kendall_tau_95"]
            print(f"  {k:10s} tau {t[k]['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        for k, v in t.items():
            if k.endswith(("_minus_width", "_minus_naswot")):
                lo, hi = v["difference_95"]
                print(f"  {k}: {v['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}]")

    for j, t in result["journals"].items():
        show(j, t)
        if "own_cells" in t:
            show(f"{j}, its own cells only", t["own_cells"])
    if "not_in_first_journal" in result:
        show(f"the cells {a.truth[0]} does not have", result["not_in_first_journal"])
    show("all cells", result["all_cells"])
    if secs:
        c = result["cpu_seconds_per_child"]
        print(f"CPU seconds per child: mean {c['mean']:.0f} ({c['min']:.0f}-{c['max']:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
