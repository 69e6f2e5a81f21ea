"""Does the supernet learn? A toy task on which any working network learns in a few dozen steps.

The complete shared-weights search of ``search/shared/ppo_run`` gave every child a reward at
chance level (the supernet had not learned). This script separates the candidate causes on a
task that needs no real data: 512 random images whose class is marked by a white 8x8 square at
one of ten places. It trains a supernet for ``--steps`` steps (batch 64) and prints the training
loss every 10 steps and the accuracy of a few paths on 500 held-out images:

    python search/shared/shared_diagnose.py --paths fixed        # one path (B=2, 3 ops)
    python search/shared/shared_diagnose.py --paths fixed --compile-after 1000000  # eager
    python search/shared/shared_diagnose.py --paths two          # two paths, alternating
    python search/shared/shared_diagnose.py --paths uniform --ops sep_conv_3x3  # inputs vary
    python search/shared/shared_diagnose.py --paths uniform --full --lr 0.05   # the search's space
"""

import argparse

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", choices=["fixed", "two", "uniform"], default="uniform")
    p.add_argument("--ops", default="identity,sep_conv_3x3,max_pool_3x3", help="the small space's ops")
    p.add_argument("--full", action="store_true", help="B=5 and all 13 ops (the search's space)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--compile-after", type=int, default=20)
    p.add_argument("--momentum", type=float, default=0.9, help="PathSGD momentum (the search's: 0.9)")
    a = p.parse_args()
    from keras_nasnet.search import SharedConfig, SharedWeightsReward
    from keras_nasnet.search import SearchSpace

    space = (SearchSpace(num_blocks=5, combines=("add",)) if a.full else
             SearchSpace(num_blocks=2, ops=tuple(a.ops.split(",")), combines=("add",)))
    # warmup_epochs only sets the cosine schedule's length: long, so the rate stays near --lr.
    cfg = SharedConfig(filters=a.filters, warmup_epochs=1000, train_images=512, val_images=500,
                       reward_images=500, lr=a.lr)
    r = SharedWeightsReward(space, cfg, seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1012, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 10, 1012)
    for k in range(10):
        x[y == k, (k // 4) * 8:(k // 4) * 8 + 8, (k % 4) * 8:(k % 4) * 8 + 8, :] = 255
    r.set_data(x[:512], y[:512], x[512:], y[512:])
    r.build()
    r.net.compile_after = a.compile_after
    r.optimizer.momentum = a.momentum
    paths = space.sample_uniform(np.random.default_rng(3), 4)
    losses = []
    for step in range(a.steps):
        path = {"fixed": paths[0], "two": paths[step % 2], "uniform": None}[a.paths]
        losses.append(r.train(1, path=path))
    print("loss every 10 steps:", [round(float(np.mean(losses[i:i + 10])), 2) for i in range(0, a.steps, 10)])
    print("held-out accuracy of 4 paths (the first is the fixed one):", [r.accuracy(q) for q in paths])


if __name__ == "__main__":
    main()
