"""Does the supernet learn on CIFAR-10 when its paths vary? A few minutes per setting on one core.

Trains a fresh supernet (B=5, N=1, F=8) for ``--steps`` steps of 64 images from the first 10,000
training images, on one fixed path (NASNet-A's, or in a restricted ``--ops`` space a random one),
on 2 or 4 paths in turn, or on a uniformly drawn path per step (the search's warm-up), with the
search's learning-rate schedule (cosine from ``--lr`` to 0 over the steps). Prints the training loss
(mean of each 20 steps) and the held-out accuracy (1,000 images, BatchNorm on batch statistics, as
the reward) of six paths; the first is the fixed one, the first 2 or 4 are the alternating ones::

    python search/shared/shared_probe.py --paths fixed            # NASNet-A's path alone
    python search/shared/shared_probe.py --paths uniform          # all 13 ops
    python search/shared/shared_probe.py --paths four --ops sep_conv_3x3  # only wiring varies

The figures measured with it are in ``search/shared/README.md``.
"""

import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/datasets/cifar10-jpeg.zip", help="CIFAR-10 source")
    p.add_argument("--paths", choices=["fixed", "two", "four", "uniform"], default="uniform")
    p.add_argument("--ops", default=None, help="comma-separated ops (default: all 13)")
    p.add_argument("--steps", type=int, default=156, help="156 = one pass over 10,000 images")
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.05)
    a = p.parse_args()
    from keras_nasnet.genotypes import NASNET_A
    from keras_nasnet.search import SharedConfig, SharedWeightsReward
    from keras_nasnet.search import SearchSpace

    space = SearchSpace(num_blocks=5, combines=("add",), **({"ops": tuple(a.ops.split(","))} if a.ops else {}))
    steps_per_epoch = int(np.ceil(10000 / 64))
    cfg = SharedConfig(filters=a.filters, warmup_epochs=a.steps / steps_per_epoch, train_images=10000,
                       val_images=5000, reward_images=1000, lr=a.lr, data=a.data)
    r = SharedWeightsReward(space, cfg, seed=0)
    paths = list(space.sample_uniform(np.random.default_rng(3), 6))
    if a.ops is None:
        paths[0] = np.asarray(space.encode(NASNET_A))
    losses, started = [], time.time()
    for step in range(a.steps):
        path = {"fixed": paths[0], "two": paths[step % 2], "four": paths[step % 4]}.get(a.paths)
        losses.append(r.train(1, path=path))
    print(f"{a.steps} steps in {time.time() - started:.0f} s")
    print("training loss, mean of each 20 steps:",
          [round(float(np.mean(losses[i:i + 20])), 3) for i in range(0, a.steps, 20)])
    print("held-out accuracy of 6 paths:", [r.accuracy(q) for q in paths])


if __name__ == "__main__":
    main()
