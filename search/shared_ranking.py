"""Does the shared-weights reward rank cells as stand-alone training does?

Trains one supernet (uniform paths), then scores each cell twice: its shared-weight accuracy on the
held-out images, and its accuracy after stand-alone proxy training (the ``cifar10`` reward), and
reports Kendall's tau between the two. Cells: NASNet-A's and AmoebaNet-A's blocks (with this
space's unused-blocks concat), seeded random cells, and any searched genotypes given.

    # the proof the issue asks for (CPU-hours here; see search/README.md)
    python search/shared_ranking.py --data ../shared/datasets/cifar10-jpeg.zip --random 14 \\
        --out search/shared/ranking.json
    # small scale (minutes)
    python search/shared_ranking.py --data ../shared/datasets/cifar10-jpeg.zip --random 4 \\
        --train-images 4000 --supernet-epochs 3 --proxy-epochs 1 --out search/shared/ranking_small.json
"""

import argparse
import dataclasses
import json
import time

import numpy as np


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two score lists."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    conc = disc = ta = tb = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif da == db:
                conc += 1
            else:
                disc += 1
    denom = np.sqrt((conc + disc + ta) * (conc + disc + tb))
    return float((conc - disc) / denom) if denom else float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--random", type=int, default=14, help="random cells (plus NASNet-A and AmoebaNet-A)")
    p.add_argument("--searched", nargs="*", default=[], help="genotype JSON files of searched cells")
    p.add_argument("--train-images", type=int, default=45000)
    p.add_argument("--val-images", type=int, default=5000)
    p.add_argument("--supernet-epochs", type=float, default=10)
    p.add_argument("--supernet-filters", type=int, default=16)
    p.add_argument("--proxy-epochs", type=int, default=1)
    p.add_argument("--proxy-filters", type=int, default=192)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    from keras_nasnet.genotypes import AMOEBANET_A, NASNET_A, genotype_from
    from keras_nasnet.search.rewards import CIFARReward, ProxyConfig
    from keras_nasnet.search.shared_reward import SharedConfig, SharedWeightsReward
    from keras_nasnet.search.space import SearchSpace

    space = SearchSpace(num_blocks=5, combines=("add",))
    cells = {"NASNet-A": space.encode(NASNET_A), "AmoebaNet-A": space.encode(AMOEBANET_A)}
    for k, path in enumerate(a.searched):
        cells[f"searched-{k}"] = space.encode(genotype_from(path))
    for k, acts in enumerate(space.sample_uniform(np.random.default_rng(a.seed + 1), a.random)):
        cells[f"random-{k}"] = acts.tolist()
    shared_cfg = SharedConfig(filters=a.supernet_filters, warmup_epochs=a.supernet_epochs,
                              train_images=a.train_images, val_images=a.val_images, data=a.data)
    shared = SharedWeightsReward(space, shared_cfg, seed=a.seed)
    t = time.time()
    shared.warm_up()
    supernet_seconds = time.time() - t
    proxy = ProxyConfig(epochs=a.proxy_epochs, penultimate_filters=a.proxy_filters,
                        train_images=a.train_images, val_images=a.val_images, data=a.data)
    standalone = CIFARReward(space, proxy)
    rows = []
    for name, acts in cells.items():
        t = time.time()
        s = shared.accuracy(acts, images=a.val_images)
        ts = time.time() - t
        t = time.time()
        r = standalone(acts, seed=a.seed)
        rows.append({"cell": name, "shared_accuracy": s, "standalone_accuracy": r,
                     "shared_seconds": round(ts, 2), "standalone_seconds": round(time.time() - t, 1),
                     "actions": list(map(int, acts))})
        print(json.dumps(rows[-1]))
    tau = kendall_tau([r["shared_accuracy"] for r in rows], [r["standalone_accuracy"] for r in rows])
    res = {"kendall_tau": tau, "cells": len(rows),
           "shared_budget": {**dataclasses.asdict(shared_cfg), "supernet_seconds": round(supernet_seconds)},
           "standalone_budget": dataclasses.asdict(proxy), "rows": rows,
           "machine": "2 CPU cores shared with other jobs"}
    from keras_nasnet.fileio import write_json_atomic

    write_json_atomic(a.out, res)
    print("Kendall tau", tau)


if __name__ == "__main__":
    main()
