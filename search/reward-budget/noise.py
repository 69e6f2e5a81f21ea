"""How much of a search's reward is seed noise? (issue 20; see README.md)

A ``--reward cifar10`` search scores each child with one training run (one seed); its stages
then screen the best 40 distinct cells again with two fresh seeds at the same budget. This script
reads both from a finished search folder and reports:

- the seed noise: the standard deviation of one run around its cell's mean, pooled over the
  screened cells (two seeds each);
- the spread of the search's rewards over all its children, and the share of it that is not seed
  noise (the reward's reliability: 1 - noise variance / reward variance);
- for the screened cells: their mean search reward against their mean on the screening's fresh
  seeds (the drop is the winner's curse of picking the top by one noisy run), the correlation and
  Kendall tau between the two, and the correlation of the screening's two seeds with each other.

Given several folders, it then compares the first one's screened pool with each other's: the
difference of the mean fresh-seed accuracy over the screened cells, with its 95% interval
(``keras_nasnet.search.mean_difference`` over the cell means).

    python search/reward-budget/noise.py search/evolve-scratch/run search/evolve/run

Seconds, no training; prints one JSON object per search folder. The reliability and the winner's
curse need the screening at the reward's own budget; where the two differ they are null, with a
note.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _key(genotype) -> str:
    from keras_nasnet.genotypes import Genotype

    g = genotype if isinstance(genotype, Genotype) else Genotype.from_dict(genotype)
    return json.dumps(g.to_dict(), sort_keys=True)


def noise(run: Path) -> dict:
    """The figures above for one search folder with a screening stage."""
    import numpy as np

    from keras_nasnet.search import SearchConfig, kendall_tau, load_trials, pooled_seed_sd

    if not (run / "config.json").is_file():
        raise SystemExit(f"{run}: not a search folder (no config.json); give the --out of a --reward cifar10 search.")
    space = SearchConfig.load(run).space
    rewards: dict = {}
    for t in load_trials(run):
        if t["status"] == "ok":
            rewards.setdefault(_key(space.decode(t["actions"])), []).append(t["reward"])
    screens = sorted((run / "stages").glob("screen-*"))
    if not screens:
        raise SystemExit(f"{run}: no screening stage (stages/screen-*); give a search run with --stages all.")
    screened: dict = {}
    for r in load_trials(screens[0]):
        if r["status"] == "ok":
            screened.setdefault(_key(r["actions"]), {})[r["seed"]] = r["reward"]
    cells = [k for k, v in screened.items() if k in rewards and len(v) >= 2]
    if len(cells) < 5:
        raise SystemExit(f"{run}: only {len(cells)} screened cells with two seeds; is the screening finished?")
    seeds = sorted(set.intersection(*(set(screened[k]) for k in cells)))[:2]
    sd = pooled_seed_sd([[screened[k][s] for s in seeds] for k in cells])
    # The reliability and the winner's curse compare the search's rewards with the screening's
    # seeds, which only means something when both trained the same way at the same budget
    # (evolve-30k's reward is 1 epoch on 30,000 images, its screening 1 epoch on 15,000; a
    # cifar10-shared search's reward is a supernet's score, not a training at all).
    config = json.loads((run / "config.json").read_text())
    screen = json.loads((screens[0] / "config.json").read_text())
    fields = ("train_images", "match_params", "recipe_version", "batch_size", "lr")
    proxy = config.get("reward_args", {}).get("proxy", {})
    search_budget = (proxy.get("epochs"), *(proxy.get(f) for f in fields))
    # a stage trains its `budget` epochs, whatever its copied proxy says
    screen_budget = (screen.get("budget"), *(screen.get("proxy", {}).get(f) for f in fields))
    same = config.get("reward") == "cifar10" and search_budget == screen_budget
    why = (f"the search's reward is {config.get('reward')}, not a stand-alone training"
           if config.get("reward") != "cifar10" else
           f"the search's reward ({search_budget[0]} epoch(s) on {search_budget[1]} images) and the "
           f"screening ({screen_budget[0]} on {screen_budget[1]}) differ"
           + ("" if search_budget[:2] != screen_budget[:2] else " in their recipe or width"))
    every = [x for v in rewards.values() for x in v]
    search = [statistics.fmean(rewards[k]) for k in cells]
    fresh = [statistics.fmean(screened[k][s] for s in seeds) for k in cells]
    s0, s1 = ([screened[k][s] for k in cells] for s in seeds)
    spread = statistics.stdev(every)
    return {
        "run": str(run), "children": len(every), "screened_cells": len(cells), "screen_seeds": seeds,
        "seed_sd": round(sd, 4),
        "reward_sd": round(spread, 4),
        "reward_reliability": round(1 - sd**2 / spread**2, 3) if same else None,
        "screened_search_reward_mean": round(statistics.fmean(search), 4),
        "screened_fresh_mean": round(statistics.fmean(fresh), 4),
        "winners_curse": round(statistics.fmean(search) - statistics.fmean(fresh), 4) if same else None,
        "screened_cell_means_sd": round(statistics.stdev(fresh), 4),
        "screened_search_vs_fresh_corr": round(float(np.corrcoef(search, fresh)[0, 1]), 3),
        "screened_search_vs_fresh_tau": round(kendall_tau(search, fresh), 3),
        "screened_seed_vs_seed_corr": round(float(np.corrcoef(s0, s1)[0, 1]), 3),
        **({} if same else {"note": f"{why}: no reliability or winner's curse, which need one budget"}),
        "_cell_means": fresh,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="search folders (--reward cifar10, --stages all)")
    a = p.parse_args(argv)
    from keras_nasnet.search import mean_difference

    pools = []
    for run in a.runs:
        figures = noise(run)
        pools.append(figures.pop("_cell_means"))
        print(json.dumps(figures))
    for run, pool in zip(a.runs[1:], pools[1:]):
        d = mean_difference(pools[0], pool)
        print(json.dumps({"pool": str(a.runs[0]), "minus": str(run), "difference": round(d["difference"], 4),
                          "difference_95": [round(x, 4) for x in d["difference_95"]], "cells": d["cells"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
