"""Measures the cost of the cifar10-shared reward on this machine: supernet build, one training step
on a child's path with its parts run eagerly and compiled (tf.function per part), supernet training
images/s and one child's reward. Images are random pixels (cost does not depend on them). Prints
wall and CPU seconds (CPU time is steadier on a shared machine).

    nice python search/shared/shared_cost.py --out search/shared/cost_f8.json --filters 8
    nice python search/shared/shared_cost.py --out /tmp/cost_tiny.json --blocks 2 --ops 3 --filters 4

The one-graph alternative (tf.switch_case over every op, traced once) is measured at commit
5fa53c5 (see search/shared/README.md); it is not in the code any more.
"""

import argparse
import json
import resource
import time

import numpy as np


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--ops", type=int, default=13, help="first K of the 13 ops (3: identity, avg pool, sep 3x3)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--reward-images", type=int, default=500)
    a = p.parse_args()
    from keras_nasnet.genotypes import OPS
    from keras_nasnet.search import SharedConfig, SharedWeightsReward
    from keras_nasnet.search import SearchSpace

    ops = ("identity", "avg_pool_3x3", "sep_conv_3x3") if a.ops == 3 else tuple(OPS)[:a.ops]
    space = SearchSpace(num_blocks=a.blocks, ops=ops, combines=("add",))
    rng = np.random.default_rng(0)
    n = max(4 * a.batch, 256)
    reward = SharedWeightsReward(space, SharedConfig(num_cells=a.cells, filters=a.filters, batch_size=a.batch,
                                                     warmup_epochs=0, reward_images=a.reward_images,
                                                     val_images=a.reward_images))
    reward.set_data(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                    rng.integers(0, 256, (a.reward_images, 32, 32, 3), dtype=np.uint8),
                    rng.integers(0, 10, a.reward_images))
    res = {"settings": vars(a), "machine": "2 CPU cores shared with 4-5 other jobs: noisy, compare ratios"}

    def timed(name, fn, k=1):
        t, c = time.time(), _cpu()
        fn()
        res[name] = {"wall_s": round((time.time() - t) / k, 3), "cpu_s": round((_cpu() - c) / k, 3)}
        print(name, res[name], flush=True)

    timed("build", reward.build)
    path = space.sample_uniform(rng, 1)[0]
    reward.net.compile_after = 10 ** 9  # eager
    timed("eager_first_step", lambda: reward.train(1, path=path))
    timed("eager_step", lambda: reward.train(a.steps, path=path), a.steps)
    timed("eager_reward", lambda: reward.accuracy(path))
    reward.net.compile_after = 0  # every part compiled from its next call
    reward.net.clear_compiled()
    reward.optimizer.clear_compiled()
    timed("compiled_first_step_incl_traces", lambda: reward.train(1, path=path))
    timed("compiled_step", lambda: reward.train(a.steps, path=path), a.steps)
    timed("compiled_first_reward_incl_traces", lambda: reward.accuracy(path))
    timed("compiled_reward", lambda: reward.accuracy(path))
    for mode in ("eager", "compiled"):
        res[f"{mode}_train_images_per_cpu_second"] = round(a.batch / res[f"{mode}_step"]["cpu_s"], 1)
    print(json.dumps(res, indent=2))
    from keras_nasnet.fileio import write_json_atomic

    write_json_atomic(a.out, res)


if __name__ == "__main__":
    main()
