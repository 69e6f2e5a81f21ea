"""Children per hour of the ``cifar10`` reward on one core, and each child against a bare loop.

    python benchmarks/children.py                  # synthetic images, the cpu budget (~15 min quiet)
    python benchmarks/children.py --quick          # 1,000 training / 500 held-out images (smoke)
    python benchmarks/children.py --data ../shared/datasets/cifar10-jpeg.zip   # real CIFAR-10

For the ``cpu`` proxy budget (N=1, F=8, batch 64, one epoch on 10,000 images, scored on 5,000
held-out ones) and four fixed cells (NASNet-A and the first three random cells of
``search/shared/shared_standalone.py``, seed 1), it times in one process, pinned to one core with one
TensorFlow thread as a search worker with ``--threads-per-worker 1`` runs:

* ``step``: the reward as it is (:class:`keras_nasnet.search.rewards.ChildTrainer`);
* ``fit``: the reward's first path (compile + fit on tf.data + predict), ``CIFARReward.trainer = "fit"``;
* ``bare``: a bare ``tf.function`` training loop of the same steps on the same (already built)
  model: plain SGD, ``GradientTape``, batches made beforehand, its trace included; no
  augmentation, no evaluation, no model build.
* ``reuse`` (``--reuse``): a second child of the same cell shape run on the first child's traced
  step, its weights reset: what sharing one compiled step between children of one shape buys.

The sides of each cell run in rotated order so that a drift of the machine's load hits all alike;
with ``--reps`` above 1 each side's median is taken. Children per hour is ``3600 / child seconds``.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pin_one_core() -> int:
    """Restricts this process to the first core it may use (as ``taskset -c``) and returns it."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return core
    return -1


def main(argv=None):
    """Runs the benchmark and prints a table and a JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="CIFAR-10 source (e.g. the JPEG zip); default: random images of CIFAR's shape")
    p.add_argument("--quick", action="store_true", help="1,000 training and 500 held-out images")
    p.add_argument("--cells", type=int, default=4, help="how many of the four cells to time (1-4)")
    p.add_argument("--sides", nargs="+", default=["step", "fit", "bare"], choices=["step", "fit", "bare"],
                   help="what to time per cell (default: all three)")
    p.add_argument("--reuse", action="store_true", help="also time a second same-shape child on a shared step")
    p.add_argument("--reps", type=int, default=1, help="repetitions of each side (median)")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one core / one thread")
    a = p.parse_args(argv)
    if not 1 <= a.cells <= 4:
        p.error(f"--cells must be between 1 and 4; got {a.cells}.")
    if a.reps < 1:
        p.error(f"--reps must be at least 1; got {a.reps}.")

    core = -1 if a.no_pin else pin_one_core()
    import tensorflow as tf

    if not a.no_pin:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import numpy as np

    from keras_nasnet.genotypes import NASNET_A
    from keras_nasnet.search import rewards
    from keras_nasnet.search.space import SearchSpace

    train_images, val_images = (1000, 500) if a.quick else (10000, 5000)
    cfg = rewards.ProxyConfig.preset("cpu", train_images=train_images, val_images=val_images, data=a.data)
    generated = None
    if a.data is None:  # random images of CIFAR's shape: the timing does not depend on the pixels
        rng = np.random.default_rng(0)
        generated = (rng.integers(0, 256, (train_images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, train_images),
                     rng.integers(0, 256, (val_images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, val_images))
    arrays = rewards.CIFARReward(SearchSpace(), cfg, data=generated).arrays()  # loaded once, shared
    xtr, ytr, xval, yval = arrays
    steps = math.ceil(len(xtr) / cfg.batch_size)

    # The cells of search/shared/shared_standalone.py: its space, and its random cells (seed 1).
    space = SearchSpace(num_blocks=5, combines=("add",))
    cells = {"NASNet-A": space.encode(NASNET_A)}
    for k, acts in enumerate(space.sample_uniform(np.random.default_rng(1), 3)):
        cells[f"random-{k}"] = [int(v) for v in acts]
    cells = dict(list(cells.items())[: a.cells])

    def child(name, trainer):
        reward = rewards.CIFARReward(space, cfg, data=arrays)
        reward.trainer = trainer
        t = time.perf_counter()
        acc = reward(cells[name], seed=0)
        return time.perf_counter() - t, {"accuracy": acc, **getattr(reward, "last_seconds", {})}

    def bare(name):
        """The same steps in a bare loop on a model built beforehand (build not timed)."""
        from keras_nasnet.models import NASNetCIFAR

        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(0)
        g = space.decode(cells[name])
        model = NASNetCIFAR(cfg.num_cells, rewards.fit_units(g, cfg.penultimate_filters), genotype=g,
                            bn_momentum=0.9)
        xs = [tf.constant(xtr[i:i + cfg.batch_size].astype("float32")) for i in range(0, len(xtr), cfg.batch_size)]
        ys = [tf.constant(ytr[i:i + cfg.batch_size]) for i in range(0, len(xtr), cfg.batch_size)]
        opt = keras.optimizers.SGD(cfg.lr)
        opt.build(model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy()

        @tf.function(reduce_retracing=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            return loss

        t = time.perf_counter()
        for x, y in zip(xs, ys):
            step(x, y)
        float(step(xs[0], ys[0]))  # wait for the last step (CPU steps are synchronous anyway)
        return time.perf_counter() - t, {}

    def reuse(name):
        """A second child of the same shape on the first one's traced step (weights reset)."""
        from keras_nasnet.models import NASNetCIFAR

        keras.backend.clear_session(free_memory=True)
        g = space.decode(cells[name])
        build = lambda: NASNetCIFAR(cfg.num_cells, rewards.fit_units(g, cfg.penultimate_filters),
                                    genotype=g, bn_momentum=0.9)
        keras.utils.set_random_seed(1)
        first = rewards.ChildTrainer(build(), cfg, steps)
        first.train_epoch(xtr[: cfg.batch_size * 2], ytr[: cfg.batch_size * 2], 1, 0)  # traces the step
        t = time.perf_counter()
        keras.utils.set_random_seed(0)
        fresh = build()  # the new child's initial weights
        first.model.set_weights(fresh.get_weights())
        for v in first.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype))
        first.seconds = {"first_step": 0.0, "steps": 0.0}
        first.train_epoch(xtr, ytr, 0, 0)
        acc = first.accuracy(xval, yval)
        return time.perf_counter() - t, {"accuracy": acc, **first.seconds}

    runners = {"step": lambda n: child(n, "step"), "fit": lambda n: child(n, "fit"), "bare": bare}
    sides = list(a.sides) + (["reuse"] if a.reuse else [])
    runners["reuse"] = reuse
    print(f"one core ({core}), {len(xtr):,} training images, {steps} steps of {cfg.batch_size}, "
          f"{'data ' + a.data if a.data else 'random images'}", flush=True)
    results = {}
    for c, name in enumerate(cells):
        times = {s: [] for s in sides}
        extra = {}
        for r in range(a.reps):
            k = (c + r) % len(sides)
            for side in sides[k:] + sides[:k]:
                sec, info = runners[side](name)
                times[side].append(sec)
                extra[side] = info
                detail = ", ".join(f"{k2} {v:.3f}" if k2 == "accuracy" else f"{k2} {v:.1f} s"
                                   for k2, v in info.items())
                print(f"  {name:9} {side:5} {sec:7.1f} s  {detail}", flush=True)
        row = {s: statistics.median(ts) for s, ts in times.items()}
        row["per_hour"] = {s: 3600 / row[s] for s in sides if s != "bare"}
        if "bare" in row:
            row["over_bare"] = {s: row[s] / row["bare"] for s in sides if s != "bare"}
        if "fit" in row and "step" in row:
            row["speedup"] = row["fit"] / row["step"]
        row["detail"] = extra
        results[name] = row
        text = ", ".join(f"{s} {row[s]:.1f} s ({row['per_hour'][s]:.0f}/h"
                         + (f", {row['over_bare'][s]:.2f}x bare" if "over_bare" in row else "") + ")"
                         for s in sides if s != "bare")
        if "bare" in row:
            text += f", bare {row['bare']:.1f} s"
        print(f"{name:9} {text}" + (f"; step/fit speedup {row['speedup']:.2f}x" if "speedup" in row else ""),
              flush=True)
    summary = {}
    for s in sides:
        if s != "bare":
            summary[f"{s}_children_per_hour"] = round(len(cells) * 3600 / sum(r[s] for r in results.values()), 1)
    if "step" in sides and "fit" in sides:
        summary["speedup_children_per_hour"] = round(summary["step_children_per_hour"] / summary["fit_children_per_hour"], 3)
    print(json.dumps({"summary": summary, "cells": {n: {k: v for k, v in r.items() if k != "detail"}
                                                     for n, r in results.items()},
                      "train_images": len(xtr), "steps": steps, "data": a.data or "random",
                      "pinned_core": core, "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    sys.exit(main())
