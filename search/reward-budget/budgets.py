"""Does a larger reward budget rank NASNet-A above the family evolution converged on? (issue 20)

``../evolve-scratch/`` ended in 16 finalists of one lineage. At the reward's budget (1 epoch on
15,000 images) NASNet-A sat in the middle of them; at the final budget (1 epoch on 45,000 images,
3-6 seeds each) it beat all 16. This script trains those 16 finalists and NASNet-A stand-alone at
other short budgets, with seeds no earlier child of these cells used, through the search's
executors (``keras_nasnet.search.train_standalone``: it resumes after a kill, no finished child is
trained twice), and reports, per budget, against the final budget's figures in
``../evolve-scratch/run/final.json`` (the ground truth):

- NASNet-A's rank among the 17 cells by the mean of the seeds (the truth: 1st);
- NASNet-A minus the finalists' mean, with a 95% interval (finalists resampled, NASNet-A's own
  mean given the seed noise pooled over the 17 cells; the truth: +0.018 on held-out);
- Kendall's tau of the 17 cells' means against the truth's held-out means, with its interval.

    # one budget (journal in search/reward-budget/<budget>/journal; the same command resumes)
    python search/reward-budget/budgets.py --data ../shared/datasets/cifar10-jpeg.zip --budget e1-30k
    # every budget so far, from the journals (no training); writes search/reward-budget/results.json
    python search/reward-budget/budgets.py --report

Budgets (``--budget eE-Nk``): E epochs on the first N thousand images of the 45,000-image split,
scored on the 5,000 held-out images (not on the test split, which nothing here reads), at
NASNet-A's parameter count and with the truth's training recipe.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRUTH = HERE.parent / "evolve-scratch" / "run" / "final.json"
#: The truth's seeds are 0-5 and the screening's 10 and 11; these share neither initialisation
#: nor data order with them.
SEEDS = (20, 21)


def truth_cells(path: Path = TRUTH) -> tuple[dict, dict]:
    """``{name: {"genotype", "truth", "truth_val", "screen"}}`` for the finalists and NASNet-A of a
    ``final.json``, and the proxy record of its final budget."""
    final = json.loads(path.read_text())
    cells = {e["name"]: {"genotype": e["genotype"], "truth": e["val_mean"], "truth_val": e["val"],
                         "screen": e.get("screen")}
             for e in final["entries"] if e["kind"] in ("finalist", "nasnet_a")}
    if "NASNet-A" not in cells:
        raise SystemExit(f"{path}: no NASNet-A entry; give the final.json of a run with --stages all.")
    return cells, final["standalone_proxy"]


def proxy_of(budget: str, truth_proxy: dict, data):
    """The ProxyConfig of ``eE-Nk`` with every other setting (width rule, recipe) the truth's."""
    from keras_nasnet.search import ProxyConfig

    try:
        return ProxyConfig.from_record({**truth_proxy, "data": data}).with_budget(budget)
    except ValueError as e:
        raise SystemExit(f"--{e}") from None


def summarize(cells: dict, per_seed: dict, reps: int = 4000) -> dict:
    """Where NASNet-A stands among the finalists at one budget (``per_seed``: name -> accuracies)."""
    import numpy as np

    from keras_nasnet.search import pooled_seed_sd, rank_correlations

    names = [n for n in cells if n in per_seed]
    mean = {n: statistics.fmean(per_seed[n]) for n in names}
    fin = [n for n in names if n != "NASNet-A"]
    a = mean["NASNet-A"]
    sd = pooled_seed_sd([per_seed[n] for n in names])
    rng = np.random.default_rng(0)
    f = np.asarray([mean[n] for n in fin])
    boot = (a + rng.normal(0.0, sd / len(per_seed["NASNet-A"]) ** 0.5, reps)
            - rng.choice(f, size=(reps, len(f))).mean(axis=1))
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {
        "cells": len(names),
        "nasnet_a": round(a, 4),
        "finalists_mean": round(float(f.mean()), 4),
        "nasnet_a_rank": 1 + sum(mean[n] > a for n in fin),
        "nasnet_a_minus_finalists": round(a - float(f.mean()), 4),
        "nasnet_a_minus_finalists_95": [round(float(lo), 4), round(float(hi), 4)],
        "nasnet_a_minus_best_finalist": round(a - max(f), 4),
        "seed_sd": round(sd, 4),
        "tau_vs_truth": rank_correlations([mean[n] for n in names], [cells[n]["truth"] for n in names]),
        "means": {n: round(mean[n], 4) for n in names},
    }


#: Where the screening's children of these cells are (1 epoch on 15,000 images, seeds 10 and 11):
#: the finalists' in the run's screening stage, NASNet-A's in the reward study's journal.
SCREENING = [HERE.parent / "evolve-scratch" / "run" / "stages" / "screen-15000-p73218",
             HERE.parent / "reward" / "short-e1-15k" / "journal"]


def read_budget(journals, seeds) -> dict:
    """``{name: [accuracy per seed]}`` of the cells with every one of ``seeds`` finished in
    ``journals`` (stand-alone journals of one budget)."""
    from keras_nasnet.search import read_standalone_journal

    cells, _ = truth_cells()
    key = {json.dumps(c["genotype"], sort_keys=True): n for n, c in cells.items()}
    got: dict = {}
    for r in (r for j in journals for r in read_standalone_journal(j)):
        n = key.get(json.dumps(r["genotype"], sort_keys=True))
        if n and r["seed"] in seeds:
            got.setdefault(n, {})[r["seed"]] = r["standalone_accuracy"]
    return {n: [v[s] for s in seeds] for n, v in got.items() if set(seeds) <= set(v)}


def report(seeds) -> dict:
    """Every budget folder's summary, beside the truth's own and the screening's (selected) one."""
    cells, _ = truth_cells()
    # the truth's own figures (its tau against itself is 1 by construction)
    out = {"truth": {"budget": "e1-45k (final.json, 3-6 seeds)",
                     **summarize(cells, {n: c["truth_val"] for n, c in cells.items()})},
           "budgets": {}}
    # the screening's own children: the finalists were picked for these scores (selected)
    per_seed = read_budget(SCREENING, (10, 11))
    if len(per_seed) == len(cells):
        out["screening"] = {"seeds": [10, 11], **summarize(cells, per_seed)}
    for folder in sorted(p for p in HERE.iterdir() if (p / "journal" / "config.json").is_file()):
        per_seed = read_budget([folder / "journal"], seeds)
        if "NASNet-A" in per_seed and len(per_seed) >= 5:
            out["budgets"][folder.name] = {"seeds": list(seeds), **summarize(cells, per_seed)}
    print("| budget | cells | NASNet-A | finalists' mean | NASNet-A's rank | NASNet-A minus finalists [95%] | tau vs truth [95%] |")
    print("|---|---|---|---|---|---|---|")
    rows = [("truth e1-45k", out["truth"])] + ([("e1-15k, seeds 10-11 (screening, selected)", out["screening"])]
                                               if "screening" in out else []) + list(out["budgets"].items())
    for name, s in rows:
        t = s["tau_vs_truth"]
        lo, hi = s["nasnet_a_minus_finalists_95"]
        print(f"| {name} | {s['cells']} | {s['nasnet_a']:.4f} | {s['finalists_mean']:.4f} | {s['nasnet_a_rank']} of "
              f"{s['cells']} | {s['nasnet_a_minus_finalists']:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
              f"{t['kendall_tau']:+.2f} [{t['kendall_tau_95'][0]:+.2f}, {t['kendall_tau_95'][1]:+.2f}] |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 source (archive, JPEG zip or folder)")
    p.add_argument("--budget", help="eE-Nk: E epochs on N thousand training images")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--workers", type=int, default=2, help="local worker processes (one core each)")
    p.add_argument("--report", action="store_true", help="print every budget's summary, write results.json")
    a = p.parse_args(argv)
    from keras_nasnet.fileio import write_json_atomic

    if not a.report:
        if not a.budget or not a.data:
            p.error("--budget and --data are needed (or --report)")
        from keras_nasnet.search import train_standalone

        cells, truth_proxy = truth_cells()
        proxy = proxy_of(a.budget, truth_proxy, a.data)
        print(f"{len(cells)} cells x {len(a.seeds)} seeds at {a.budget}", flush=True)
        train_standalone(HERE / a.budget / "journal", {n: c["genotype"] for n, c in cells.items()}, a.seeds, proxy,
                         workers=a.workers, progress=False, test=False, threads_per_worker=1)
    write_json_atomic(HERE / "results.json", report(a.seeds), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
