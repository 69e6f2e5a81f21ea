"""Calibrate the stand-alone budget: at which budget does NASNet-A stand above the median random cell?

Issue 20, part 3. A budget that ranks NASNet-A below most random cells (1 epoch on 10,000 images:
below 16 of 21) rewards cells that learn fast, not good cells, and cannot judge a search. This
script trains NASNet-A and the search space's reference random cells (``reference_cells``: the
same cells the search's stages train) stand-alone with two seeds at one named budget, through the
search's executors (``train_standalone``), and reports where NASNet-A stands.

    # one budget (a journal under search/calibration/<budget>/; rerun the same command to resume)
    python search/calibration/calibrate.py --data ../shared/datasets/cifar10-jpeg.zip --budget e1-45k
    # the stages' default budget: the add-only space the default (cifar10-shared) pipeline
    # searches, every child at NASNet-A's 73,218 parameters, 24 cells, 3 seeds:
    # search/calibration/e1-45k-add-p73218/, the ground truth the pipeline's references reuse
    python search/calibration/calibrate.py --data ../shared/datasets/cifar10-jpeg.zip --budget e1-45k \
        --space add --match-params 73218 --random 24 --seeds 0 1 2
    # every budget's table so far, from the journals (no training; a run in progress included)
    python search/calibration/calibrate.py --report

Budgets (``--budget``): ``eE-Nk`` trains E epochs on the first N thousand images of the 45,000-image
split, scored on the 5,000 held-out images and on the CIFAR-10 test split; the child is the ``cpu``
proxy's (N=1, F=8, batch 64, lr 0.05) with the current training recipe (``keras_nasnet.recipe``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def proxy_of(budget: str, data, match_params=None):
    """The ProxyConfig of a budget name ``eE-Nk`` (``match_params``: each child's width set for
    about that many parameters instead of the ``cpu`` proxy's width)."""
    from keras_nasnet.search import ProxyConfig

    try:
        return ProxyConfig.preset("cpu", data=data, match_params=match_params).with_budget(budget)
    except ValueError as e:
        raise SystemExit(f"--{e}") from None


def folder_of(budget: str, space: str, match_params=None) -> str:
    """``<budget>[-add][-p<params>]``: one journal per budget, space and width rule."""
    return budget + ("-add" if space == "add" else "") + (f"-p{match_params}" if match_params else "")


#: ``--space``: the search's default space (add and concat combines, the ``cifar10`` reward's) or
#: the add-only space of ``--reward cifar10-shared``, the one the default pipeline searches.
SPACES = {"default": "cifar10", "add": "cifar10-shared"}


def space_of(folder_name: str) -> str:
    """The ``--space`` of a budget folder (see :func:`folder_of`)."""
    return "add" if "-add" in folder_name else "default"


def cells(random: int, space: str = "default") -> dict:
    """NASNet-A and ``random`` reference cells of a search space (``--space``); the first ``n``
    random cells are the same for every ``random >= n``."""
    from keras_nasnet.search import SearchConfig, reference_cells

    return {name: g for name, _, g in reference_cells(SearchConfig(reward=SPACES[space]).space, random)}


def summarize(rows: list[dict]) -> dict:
    """Where NASNet-A's mean over seeds stands among the random cells' means (cells with every
    seed finished only)."""
    by_cell: dict = {}
    for r in rows:
        if r["status"] == "ok":
            by_cell.setdefault(r["cell"], {})[r["seed"]] = r
    seeds = {r["seed"] for r in rows}
    full = {c: v for c, v in by_cell.items() if set(v) == seeds}
    mean = {c: statistics.fmean(x["val"] for x in v.values()) for c, v in full.items()}
    test = {c: statistics.fmean(x["test"] for x in v.values()) for c, v in full.items()}
    randoms = sorted(mean[c] for c in mean if c.startswith("random-"))
    out = {"cells_done": len(full), "random_cells_done": len(randoms), "seeds": sorted(seeds),
           "minutes_per_child": round(statistics.median(r["seconds"] for r in rows if r["seconds"]) / 60, 2)}
    if "NASNet-A" in mean and randoms:
        a = mean["NASNet-A"]
        out.update(nasnet_a_val=round(a, 4), nasnet_a_test=round(test["NASNet-A"], 4),
                   random_val_median=round(statistics.median(randoms), 4),
                   random_val_mean=round(statistics.fmean(randoms), 4),
                   random_test_median=round(statistics.median(test[c] for c in test if c.startswith("random-")), 4),
                   random_cells_below_nasnet_a=sum(x < a for x in randoms),
                   nasnet_a_above_median=a > statistics.median(randoms))
        out.update(margin_interval(full, randoms, a, seeds))
    if len(full) >= 5 and {0, 1} <= seeds:
        from keras_nasnet.search import kendall_tau

        out["seed_tau"] = round(kendall_tau([v[0]["val"] for v in full.values()],
                                            [v[1]["val"] for v in full.values()]), 3)
    out["cells"] = {c: {"val": [round(v[s]["val"], 4) for s in sorted(v)],
                        "test": [round(v[s]["test"], 4) for s in sorted(v)]} for c, v in sorted(full.items())}
    return out


def margin_interval(full: dict, randoms: list, a: float, seeds: set, reps: int = 4000) -> dict:
    """NASNet-A's mean minus the random cells' median, with a 95% interval.

    Two sources of doubt: which random cells were drawn (the median is bootstrapped over the
    cells) and seed noise in NASNet-A's own mean (normal, with the seed variance pooled over all
    cells: with 2 seeds a cell's own variance is too rough to resample)."""
    import numpy as np

    pairs = [[x["val"] for x in v.values()] for v in full.values() if len(v) > 1]
    if len(pairs) < 2 or len(randoms) < 3:
        return {}
    seed_var = float(np.mean([np.var(p, ddof=1) for p in pairs]))
    rng = np.random.default_rng(0)
    med = np.median(rng.choice(np.asarray(randoms), size=(reps, len(randoms))), axis=1)
    own = a + rng.normal(0.0, (seed_var / len(seeds)) ** 0.5, size=reps)
    lo, hi = np.quantile(own - med, [0.025, 0.975])
    return {"margin": round(a - statistics.median(randoms), 4),
            "margin_interval": [round(float(lo), 4), round(float(hi), 4)],
            "seed_sd": round(seed_var ** 0.5, 4)}


def rows_of(folder: Path) -> list[dict]:
    """The finished rows of a budget's journal so far (a run in progress or stopped included),
    named as :func:`cells` names them."""
    from keras_nasnet.search import load_trials

    names = {json.dumps(g, sort_keys=True): n for n, g in cells(100, space_of(folder.name)).items()}
    rows = []
    for r in load_trials(folder / "journal"):
        rows.append({"cell": names.get(json.dumps(r["actions"], sort_keys=True), "?"), "seed": r["seed"],
                     "val": r["reward"], "test": r.get("metrics", {}).get("test"),
                     "seconds": r.get("seconds"), "status": r["status"]})
    return rows


def report() -> None:
    """A markdown table per budget: every cell's per-seed accuracies, and where NASNet-A stands."""
    for folder in sorted(p for p in HERE.iterdir() if (p / "journal" / "trials.jsonl").exists()):
        rows = rows_of(folder)
        s = summarize(rows)
        print(f"\n### {folder.name}: {s['cells_done']} cells with every seed done, "
              f"{s['minutes_per_child']} minutes per child, median (wall, one core per worker)\n")
        print("| cell | held-out (seeds) | mean | test split (seeds) | mean |\n|---|---|---|---|---|")
        order = sorted(s["cells"], key=lambda c: -statistics.fmean(s["cells"][c]["val"]))
        for c in order:
            v, t = s["cells"][c]["val"], s["cells"][c]["test"]
            name = f"**{c}**" if c == "NASNet-A" else c
            print(f"| {name} | {', '.join(map(str, v))} | {statistics.fmean(v):.4f} | "
                  f"{', '.join(map(str, t))} | {statistics.fmean(t):.4f} |")
        if "nasnet_a_val" in s:
            print(f"\nNASNet-A {s['nasnet_a_val']} (test {s['nasnet_a_test']}); random cells' median "
                  f"{s['random_val_median']} (test {s['random_test_median']}), mean {s['random_val_mean']}; "
                  f"NASNet-A above {s['random_cells_below_nasnet_a']} of {s['random_cells_done']} random cells.")
            if "seed_tau" in s:
                print(f"Seed 0 against seed 1 over the {s['cells_done']} cells: Kendall tau {s['seed_tau']:+.3f} "
                      f"(how well one training run ranks the cells as another does).")
            if "margin" in s:
                print(f"NASNet-A minus the random median: {s['margin']:+.4f}, 95% interval "
                      f"[{s['margin_interval'][0]:+.4f}, {s['margin_interval'][1]:+.4f}] (cells bootstrapped, "
                      f"seed noise {s['seed_sd']} per run pooled over cells).")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 source (archive, JPEG zip or folder)")
    p.add_argument("--budget", help="eE-Nk: E epochs on N thousand training images")
    p.add_argument("--random", type=int, default=12, help="random reference cells")
    p.add_argument("--space", choices=sorted(SPACES), default="default",
                   help="default: the search's default space (add and concat); add: the add-only "
                        "space of --reward cifar10-shared (journal in <budget>-add/)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--match-params", type=int, default=None, metavar="N",
                   help="give each child the width at which it has about N parameters (NASNet-A: "
                        "73218 at the cpu proxy's width) instead of the same width for every cell "
                        "(journal in <budget>[-add]-p<N>/)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (one core each)")
    p.add_argument("--report", action="store_true", help="print every budget's summary and exit")
    a = p.parse_args(argv)
    if a.report:
        report()
        return 0
    if not a.budget or not a.data:
        p.error("--budget and --data are needed (or --report)")
    from keras_nasnet.search import train_standalone

    proxy = proxy_of(a.budget, a.data, a.match_params)
    out = HERE / folder_of(a.budget, a.space, a.match_params)
    # NASNet-A (in both spaces) and any cell another budget folder here trained at this budget
    # and recipe are copied, not trained again.
    rows = train_standalone(out / "journal", cells(a.random, a.space), a.seeds, proxy, workers=a.workers, reuse=[HERE],
                            progress=sys.stderr.isatty(), threads_per_worker=1)
    summary = summarize(rows)
    (out / "summary.json").write_text(json.dumps({"budget": rows[0]["budget"], **summary}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "cells"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
