"""Rediscovery check: PPO against random search (and regularized evolution) on the synthetic reward (optimum: NASNet-A).

    python search/synthetic/rediscovery.py --seeds 0 1 2 3 4 --trials 20000 --jobs 2
    python search/synthetic/rediscovery.py --strategies evolution --seeds 0 1 2 3 4 --trials 20000 --results search/synthetic/evolution


Runs ``python -m keras_nasnet.search --reward synthetic`` (through its API) for each strategy and
seed into ``runs/rediscovery/`` (the trial journals are large and are not committed), then writes
``search/synthetic/curves.png`` and ``search/synthetic/results.json``: per run, the best reward,
whether and when the exact NASNet-A cells were sampled (every block equal up to swapping its two
halves), and whether the controller's greedy policy is NASNet-A at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def run_one(strategy: str, seed: int, trials: int, runs: str, search_args: list[str]):
    """One search into ``runs/{strategy}_seed{seed}``; returns its results row and reward curve."""
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import SearchConfig, SearchSpace, SyntheticReward, load_trials, run_search

    space = SearchSpace()
    reward = SyntheticReward(space)
    out = Path(runs) / f"{strategy}_seed{seed}"
    config = SearchConfig.from_flags(["--reward", "synthetic", "--strategy", strategy, "--seed", seed,
                                      "--trials", trials, *search_args])
    summary = run_search(config, out, trials=trials, workers=0, progress=False)
    trials_done = load_trials(out)
    rewards = [t["reward"] for t in trials_done]
    solved = [t["trial"] for t in trials_done if reward.solved(t["actions"])]
    row = {"strategy": strategy, "seed": seed, "trials": len(trials_done),
           "best_reward": max(rewards), "first_exact_nasnet_a_trial": solved[0] if solved else None,
           "exact_nasnet_a_samples": len(solved),
           "mean_reward_last_1000": float(np.mean(rewards[-1000:]))}
    if "greedy_genotype" in summary:
        greedy = space.encode(Genotype.from_dict(summary["greedy_genotype"]))
        row["greedy_matched_decisions"] = int(reward.block_matches(greedy).sum())
        row["greedy_is_nasnet_a"] = reward.solved(greedy)
    print(json.dumps(row), flush=True)
    return row, rewards


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--runs", default="runs/rediscovery")
    p.add_argument("--results", default="search/synthetic")
    p.add_argument("--strategies", nargs="+", default=["ppo", "random"])
    p.add_argument("--jobs", type=int, default=1, help="searches run at once, one process each")
    p.add_argument("search_args", nargs="*", help="extra `keras_nasnet.search` options, after --, for "
                   "every strategy (a PPO flag such as --entropy-weight is refused with another strategy)")
    a = p.parse_args(argv)
    tasks = [(strategy, seed, a.trials, a.runs, a.search_args) for strategy in a.strategies for seed in a.seeds]
    if a.jobs > 1:
        # Separate processes, since one search's Python loop keeps about one core busy; spawn,
        # because TensorFlow's runtime does not survive a fork.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(a.jobs, mp_context=ctx) as pool:
            done = list(pool.map(run_one, *zip(*tasks)))
    else:
        done = [run_one(*t) for t in tasks]
    results = [row for row, _ in done]
    curves = {f"{row['strategy']} seed {row['seed']}": rewards for row, rewards in done}
    res = Path(a.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / "results.json").write_text(json.dumps({"trials": a.trials, "search_args": a.search_args,
                                                 "runs": results}, indent=2))
    from keras_nasnet.search import plot_rewards

    plot_rewards(res / "curves.png", None, title="synthetic reward (optimum 1.0 = NASNet-A): " + " vs ".join(a.strategies),
                 others=curves)
    return 0


if __name__ == "__main__":
    sys.exit(main())
