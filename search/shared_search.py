"""A complete shared-weights search, PPO against random under the same supernet, and the
stand-alone retraining of the best searched cell, NASNet-A's blocks and 8 random cells.

    python search/shared_search.py --data ../shared/datasets/cifar10-jpeg.zip --trials 2000 \\
        --runs runs/shared --out search/shared/search.json

Steps (each resumable: rerun the same command):
1. ``python -m keras_nasnet.search --reward cifar10-shared --strategy ppo`` into RUNS/ppo;
2. the same with ``--strategy random`` into RUNS/random, starting from a copy of RUNS/ppo's trained
   supernet.npz (same settings, so the journal accepts it and the supernet is not retrained: both
   strategies face exactly the same reward);
3. retraining with the ``cifar10`` reward's proxy at one fixed budget (``--proxy-epochs``): the
   best PPO cell and NASNet-A's blocks with 2 seeds, 8 random cells with 1.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--supernet-epochs", type=float, default=10)
    p.add_argument("--proxy-epochs", type=int, default=5)
    p.add_argument("--random-cells", type=int, default=8)
    a = p.parse_args()
    runs = Path(a.runs)
    common = [sys.executable, "-m", "keras_nasnet.search", "--reward", "cifar10-shared", "--data", a.data,
              "--trials", str(a.trials), "--supernet-epochs", str(a.supernet_epochs)]
    subprocess.run(common + ["--strategy", "ppo", "--out", str(runs / "ppo")], check=True)
    (runs / "random").mkdir(parents=True, exist_ok=True)
    if not (runs / "random" / "supernet.npz").exists():
        shutil.copy(runs / "ppo" / "supernet.npz", runs / "random" / "supernet.npz")
    subprocess.run(common + ["--strategy", "random", "--out", str(runs / "random")], check=True)
    summaries = {s: json.loads((runs / s / "summary.json").read_text()) for s in ("ppo", "random")}

    from keras_nasnet.genotypes import NASNET_A, genotype_from
    from keras_nasnet.search.rewards import CIFARReward, ProxyConfig
    from keras_nasnet.search.space import SearchSpace

    space = SearchSpace(num_blocks=5, combines=("add",))
    reward = CIFARReward(space, ProxyConfig(epochs=a.proxy_epochs, train_images=45000, data=a.data))
    cells = {"searched": (space.encode(genotype_from(str(runs / "ppo" / "best_genotype.json"))), 2),
             "NASNet-A": (space.encode(NASNET_A), 2)}
    for k, acts in enumerate(space.sample_uniform(np.random.default_rng(123), a.random_cells)):
        cells[f"random-{k}"] = (acts.tolist(), 1)
    results = {}
    for name, (acts, seeds) in cells.items():
        results[name] = [reward(acts, seed=s) for s in range(seeds)]
        print(name, results[name])
    rand = [v[0] for k, v in results.items() if k.startswith("random")]
    res = {"summaries": summaries, "standalone": results,
           "random_75th_percentile": float(np.percentile(rand, 75)),
           "proxy_epochs": a.proxy_epochs}
    from keras_nasnet.fileio import write_json_atomic

    write_json_atomic(a.out, res)


if __name__ == "__main__":
    main()
