"""Stand-alone proxy accuracy of a fixed set of add-only cells, one JSON line per (cell, seed).

The common ground truth of the shared-weights proofs: ``shared_ranking.py`` ranks these cells by
their shared-weight accuracy against these figures, and ``shared_search.py`` compares the searched
cell with NASNet-A and the random cells at this same budget. Every cell is trained with the
``cifar10`` reward's ``cpu`` proxy (N=1, F=8, 1 epoch on 10,000 images, accuracy on the 5,000
held-out images), so it is one fixed budget for all. Finished lines are kept: rerun the same
command to continue after an interruption.

    # NASNet-A, AmoebaNet-A and 13 random cells (seed 0), NASNet-A's second seed
    python search/shared/shared_standalone.py --data ../shared/datasets/cifar10-jpeg.zip --random 13 \\
        --out search/shared/standalone.jsonl
    # a searched cell, two seeds
    python search/shared/shared_standalone.py --data ../shared/datasets/cifar10-jpeg.zip --random 0 \\
        --genotype searched=runs/shared/ppo/best_genotype.json --seeds 0 1 --out search/shared/standalone.jsonl
"""

import argparse
import dataclasses
import json
import time

import numpy as np

#: Seed of the random cells: the same cells in every script that reads ``standalone.jsonl``.
RANDOM_CELLS_SEED = 1


def cells(random: int, genotypes=()) -> dict:
    """``{name: actions}``: NASNet-A, AmoebaNet-A (both with this space's unused-blocks concat),
    ``random`` uniformly drawn cells and the named genotype files."""
    from keras_nasnet.genotypes import AMOEBANET_A, NASNET_A, genotype_from
    from keras_nasnet.search import SearchSpace

    space = SearchSpace(num_blocks=5, combines=("add",))
    out = {"NASNet-A": space.encode(NASNET_A), "AmoebaNet-A": space.encode(AMOEBANET_A)}
    for k, acts in enumerate(space.sample_uniform(np.random.default_rng(RANDOM_CELLS_SEED), random)):
        out[f"random-{k}"] = [int(a) for a in acts]
    for spec in genotypes:
        name, _, path = spec.partition("=")
        out[name] = space.encode(genotype_from(path))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="CIFAR-10 source (archive, JPEG zip or tfds)")
    p.add_argument("--out", required=True, help="JSON-lines file, appended to")
    p.add_argument("--random", type=int, default=13, help="random cells (plus NASNet-A and AmoebaNet-A)")
    p.add_argument("--genotype", action="append", default=[], help="NAME=genotype.json, repeatable")
    p.add_argument("--only", nargs="*", default=None, help="train only these cell names")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--recipe-version", type=int, default=None,
                   help="training recipe of the children (default: the current one; 1 reproduces "
                        "the recipe standalone.jsonl was recorded with)")
    a = p.parse_args()
    from keras_nasnet.search import CIFARReward, ProxyConfig, SearchSpace, read_standalone

    extra = {} if a.recipe_version is None else {"recipe_version": a.recipe_version}
    proxy = ProxyConfig.preset("cpu", data=a.data, **extra)
    reward = CIFARReward(SearchSpace(num_blocks=5, combines=("add",)), proxy)
    budget = {k: v for k, v in dataclasses.asdict(proxy).items() if k != "data"}
    done = {(r["cell"], r["seed"]) for r in read_standalone(a.out) if r["budget"] == budget}
    todo = cells(a.random, a.genotype)
    if a.only is not None:
        todo = {k: v for k, v in todo.items() if k in a.only}
    for seed in a.seeds:
        for name, acts in todo.items():
            if (name, seed) in done:
                continue
            t = time.time()
            acc = reward(acts, seed=seed)
            row = {"cell": name, "seed": seed, "standalone_accuracy": acc,
                   "seconds": round(time.time() - t, 1), "actions": acts, "budget": budget}
            with open(a.out, "a") as f:  # one line per write: a kill loses at most the cell in training
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: row[k] for k in ("cell", "seed", "standalone_accuracy", "seconds")}), flush=True)


if __name__ == "__main__":
    main()
