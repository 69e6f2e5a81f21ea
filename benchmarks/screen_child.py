"""A screening child with and without the CIFAR-10 test-split prediction, in one run.

    python benchmarks/screen_child.py --data ../shared/datasets/cifar10-jpeg.zip   # ~7 minutes quiet

The stages' screening (``--stages all``) trains each candidate cell stand-alone for one epoch on
``StageConfig().screen_images`` (5,000) training images at NASNet-A's parameter count and ranks
the cells by their held-out accuracy (5,000 images); the stages' other children also predict the
CIFAR-10 test split (10,000 images) for ``final.json``, which the screening leaves out. This times
both in one process, pinned to one core with one TensorFlow thread as a stage worker runs, for
NASNet-A and the first two random reference cells of the ``cifar10-shared`` space, the two sides
alternating so a drift of the machine's load hits both alike. It prints each child's seconds and
the ratio ``without / with``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a CIFAR-10 source (the test split is what is timed)")
    p.add_argument("--cells", type=int, default=3, help="NASNet-A and the first cells-1 random reference cells")
    a = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_nasnet.search import SearchConfig, SharedConfig, StageConfig, StandaloneReward, reference_cells
    from keras_nasnet.search import standalone_spec

    config = SearchConfig(reward="cifar10-shared", shared=SharedConfig(data=a.data))
    stages = StageConfig()
    base = standalone_spec(config, 1, stages.screen_images, stages.match_params)
    rewards = {flag: StandaloneReward({**base, "test": flag}) for flag in (True, False)}
    rewards[True].check()  # loads the data once (shared by both)
    rewards[False].check()
    cells = reference_cells(config.space, a.cells - 1)
    # One untimed child first: the first call of a process pays one-time costs (TensorFlow's
    # start, the data's first copy) that would count against whichever side ran first.
    rewards[True](cells[-1][2], seed=1)
    rows = []
    for i, (name, _, genotype) in enumerate(cells):
        times = {}
        for flag in ((True, False) if i % 2 == 0 else (False, True)):
            t0 = time.perf_counter()
            out = rewards[flag](genotype, seed=0)
            times[flag] = time.perf_counter() - t0
            assert ("test" in out) == flag
        rows.append({"cell": name, "with_test_s": round(times[True], 2), "without_test_s": round(times[False], 2),
                     "ratio": round(times[False] / times[True], 3)})
        print(f"{name:10s} with test {times[True]:6.1f} s   without {times[False]:6.1f} s   "
              f"ratio {times[False] / times[True]:.3f}", flush=True)
    ratio = statistics.fmean(r["ratio"] for r in rows)
    print(f"mean ratio without / with the test split: {ratio:.3f}")
    print(json.dumps({"benchmark": "screen_child", "rows": rows, "mean_ratio": round(ratio, 3),
                      "screen_images": stages.screen_images, "data": a.data}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
