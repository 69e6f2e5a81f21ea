"""A complete shared-weights search, PPO against random under the same supernet, and the stand-alone
retraining of the searched cell against NASNet-A and random cells.

    python search/shared/shared_search.py --data ../shared/datasets/cifar10-jpeg.zip \\
        --runs runs/shared --standalone search/shared/standalone.jsonl --out search/shared/search.json

Steps (each resumable: rerun the same command; finished steps are skipped):
1. ``python -m keras_nasnet.search --reward cifar10-shared --strategy ppo`` into RUNS/ppo (trains
   the supernet, then PPO against it, frozen);
2. the same with ``--strategy random`` into RUNS/random, starting from a copy of RUNS/ppo's trained
   ``supernet.npz`` (same settings, so the journal accepts it and the supernet is not retrained:
   both strategies face exactly the same reward);
3. ``shared_standalone.py``: the best PPO cell and NASNet-A with 2 seeds, plus the random cells
   already in ``--standalone`` (run it first with ``--random 13``), all at the one ``cpu`` proxy
   budget;
4. the comparison, written to ``--out``.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def search_stats(run: Path, limit: int | None = None) -> dict:
    """Best reward, when it was found, and mean rewards of a search folder's finished trials (the
    first ``limit`` of them: both strategies compared at one budget after either was extended)."""
    from keras_nasnet.search import load_trials

    rewards = [r["reward"] for r in load_trials(run) if r["status"] == "ok"]
    r = np.asarray(rewards[:limit])
    best = int(np.argmax(r))
    q = len(r) // 4
    return {"trials": len(r), "best_reward": float(r[best]), "best_trial": best,
            "mean_first_quarter": float(r[:q].mean()), "mean_last_quarter": float(r[-q:].mean()),
            "top10_mean": float(np.sort(r)[-10:].mean()), "median": float(np.median(r))}


def _search_and_retrain(a, runs: Path, common: list, here: Path):
    """Steps 1-3: the PPO search, the random search on a copy of its supernet, the retraining."""
    subprocess.run(common + ["--strategy", "ppo", "--out", str(runs / "ppo")], check=True)
    (runs / "random").mkdir(parents=True, exist_ok=True)
    if not (runs / "random" / "supernet.npz").exists():
        shutil.copy(runs / "ppo" / "supernet.npz", runs / "random" / "supernet.npz")
    subprocess.run(common + ["--strategy", "random", "--out", str(runs / "random")], check=True)
    subprocess.run([sys.executable, str(here / "shared_standalone.py"), "--data", a.data, "--random", "0",
                    "--genotype", f"{a.name}={runs / 'ppo' / 'best_genotype.json'}", "--seeds", "0", "1",
                    "--only", a.name, "NASNet-A", "--out", a.standalone], check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--standalone", required=True, help="shared_standalone.py's JSON-lines file")
    p.add_argument("--out", required=True)
    p.add_argument("--trials", type=int, default=600)
    p.add_argument("--supernet-filters", type=int, default=8)
    p.add_argument("--supernet-epochs", type=float, default=2)
    p.add_argument("--reward-images", type=int, default=500)
    p.add_argument("--name", default="searched", help="the searched cell's name in --standalone")
    p.add_argument("--compare-only", action="store_true",
                   help="skip the searches and trainings (done before); write the comparison only")
    a = p.parse_args()
    runs = Path(a.runs)
    common = [sys.executable, "-m", "keras_nasnet.search", "--reward", "cifar10-shared", "--data", a.data,
              "--trials", str(a.trials), "--supernet-filters", str(a.supernet_filters),
              "--supernet-epochs", str(a.supernet_epochs), "--reward-images", str(a.reward_images),
              "--no-progress"]
    here = Path(__file__).resolve().parent
    if not a.compare_only:
        _search_and_retrain(a, runs, common, here)
    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.search import read_standalone as read_rows

    alone = {}
    for r in read_rows(a.standalone):
        alone.setdefault(r["cell"], []).append(r["standalone_accuracy"])
    # a cell trained with several seeds counts with its mean (the seed noise is about a point)
    rand = [float(np.mean(v)) for k, v in alone.items() if k.startswith("random-")]
    searched, nasnet = float(np.mean(alone[a.name])), float(np.mean(alone["NASNet-A"]))
    res = {
        "search": {s: search_stats(runs / s, a.trials) for s in ("ppo", "random")},
        "standalone": alone,
        "standalone_budget": read_rows(a.standalone)[0]["budget"],
        "searched_mean": searched, "nasnet_a_mean": nasnet,
        "random_cells": len(rand), "random_mean": float(np.mean(rand)), "random_std": float(np.std(rand)),
        "random_75th_percentile": float(np.percentile(rand, 75)),
        "searched_at_least_nasnet_a": searched >= nasnet,
        "searched_above_random_75th": searched > float(np.percentile(rand, 75)),
        "settings": {"trials": a.trials, "supernet_filters": a.supernet_filters,
                     "supernet_epochs": a.supernet_epochs, "reward_images": a.reward_images},
    }
    write_json_atomic(a.out, res)
    print(json.dumps({k: v for k, v in res.items() if k != "standalone"}, indent=1))


if __name__ == "__main__":
    main()
