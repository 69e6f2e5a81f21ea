"""Times keras_nasnet against its peers in one process and prints ratios (ours / peer time).

    python benchmarks/run.py --quick          # about 5 minutes on 2 CPU cores; ends with a JSON line
    python benchmarks/run.py --out bench.md   # the full run, written as a markdown table
    python benchmarks/run.py --train-only     # only the two training steps at batch 32 (Mobile, CIFAR 6@768)
    python benchmarks/run.py --pnasnet-only   # PNASNet5Large against timm's pnasnet5large only

Each case is timed as the median of several repetitions after a warm-up (which includes tracing),
with ``tf.function`` and XLA off (XLA makes depthwise convolutions slower on CPU). Peak memory is the
growth of the process's resident set while a case runs (sampled every 10 ms): approximate, and only
comparable between the two sides of one case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_nasnet as kn  # noqa: E402


class PeakRSS:
    """Samples the process RSS in a thread; ``peak_mb`` is the growth over the starting RSS."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak_mb = (self.peak - self.start) / 2**20


def compare(builders: dict, make_step, reps: int) -> dict:
    """Times ``make_step(model)()`` for every model: median seconds over ``reps`` interleaved runs.

    All models are built and warmed up (the first calls trace the functions) before timing, and
    the timed runs rotate the order of the sides, so a drift of the machine's speed (another
    process, the CPU clock) affects every side alike instead of whichever happens to run last.
    Peak memory is the RSS growth during each side's build and first two calls.
    """
    steps, out = {}, {}
    for side, build in builders.items():
        with PeakRSS() as mem:
            steps[side] = make_step(build())
            for _ in range(2):
                steps[side]()
        out[side + "_mb"] = mem.peak_mb
    sides = list(builders)
    times = {side: [] for side in sides}
    for i in range(reps):
        for side in sides[i % len(sides):] + sides[: i % len(sides)]:
            t = time.perf_counter()
            steps[side]()
            times[side].append(time.perf_counter() - t)
    out.update({side: statistics.median(ts) for side, ts in times.items()})
    del steps
    keras.backend.clear_session()
    return out


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def inference_case(builders, size, batch, reps):
    """Forward pass (training=False) of every model on the same input, in a ``tf.function``."""
    x = tf.random.uniform((batch, size, size, 3), -1, 1)

    def make_step(model):
        f = tf.function(lambda t: model(t, training=False), jit_compile=False)
        return lambda: f(x).numpy()

    return compare(builders, make_step, reps)


def train_case(builders, size, batch, reps, classes):
    """One SGD training step (forward, backward, update) of every model, as Keras' ``fit`` runs it."""
    x = tf.random.uniform((batch, size, size, 3), -1, 1)
    y = tf.random.uniform((batch,), 0, classes, tf.int32)

    def make_step(model):
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy",
                      jit_compile=False)
        return lambda: model.train_on_batch(x, y)

    return compare(builders, make_step, reps)


def keras_cifar_nasnet(num_cells, penultimate_filters, classes=10):
    """The CIFAR NASNet-A written with keras.applications' own cell functions (the peer)."""
    from keras.src.applications import nasnet as K

    filters = penultimate_filters // 24
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(3 * filters, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    p = x
    for stack in range(3):
        for i in range(num_cells):
            x, p = K._normal_a_cell(x, p, filters, block_id=f"{stack}_{i}")
        if stack < 2:
            filters *= 2
            x, p = K._reduction_a_cell(x, p, filters, block_id=f"reduce_{stack}")
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def search_case(reps, train_images=4000):
    """Controller sampling of 20 children and one PPO update, against one proxy child (N=1, F=8,
    one epoch on ``train_images`` images, scored on 5,000; the recorded CIFAR search used 4,000)."""
    from keras_nasnet.search.ppo import PPOConfig, PPOStrategy
    from keras_nasnet.search.rewards import CIFARReward, ProxyConfig
    from keras_nasnet.search.space import SearchSpace

    space = SearchSpace()
    s = PPOStrategy(space, PPOConfig())
    sample = timed(lambda: s.propose(20), reps)
    props = s.propose(20)
    rewards = np.random.default_rng(0).random(20)
    update = timed(lambda: s.update([p[0] for p in props], [p[1] for p in props], rewards), reps)
    # A proxy child on generated data of CIFAR's shape.
    rng = np.random.default_rng(0)
    cfg = ProxyConfig.preset("cpu", train_images=train_images)
    data = (rng.integers(0, 256, (train_images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, train_images),
            rng.integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 5000))
    reward = CIFARReward(space, cfg, data=data)
    t = time.perf_counter()
    reward(space.encode(kn.NASNET_A), seed=0)
    child = time.perf_counter() - t
    return {"sample_20_s": sample, "ppo_update_s": update, "proxy_child_s": child, "train_images": train_images,
            "controller_share": (sample + update) / 20 / child}


def pnasnet_case(reps, batch=1, size=331):
    """PNASNet5Large's forward pass (``tf.function``, as the other cases) against timm's
    ``pnasnet5large`` in PyTorch (eval mode, no_grad) on the same machine, in one process; timm's
    side is left out when torch or timm is not installed. Same random weights are not needed for
    timing; both sides run the same network (see tests/test_pnasnet.py)."""
    x = tf.random.uniform((batch, size, size, 3), -1, 1)
    model = kn.PNASNet5Large(weights=None)
    f = tf.function(lambda t: model(t, training=False), jit_compile=False)
    sides = {"ours": lambda: f(x).numpy()}
    try:
        import timm
        import torch
    except ImportError:
        timm = None
    if timm is not None:
        tm = timm.create_model("pnasnet5large", pretrained=False).eval()
        xt = torch.from_numpy(x.numpy().transpose(0, 3, 1, 2).copy())

        def peer():
            with torch.no_grad():
                return tm(xt).numpy()

        sides["timm"] = peer
    for step in sides.values():  # warm-up (tracing, first allocations)
        step()
    times = {k: [] for k in sides}
    for i in range(reps):
        order = list(sides)[i % len(sides):] + list(sides)[:i % len(sides)]
        for k in order:
            t = time.perf_counter()
            sides[k]()
            times[k].append(time.perf_counter() - t)
    out = {k: statistics.median(v) for k, v in times.items()}
    if "timm" in out:
        out["ratio"] = out["ours"] / out["timm"]
        out["torch_threads"] = torch.get_num_threads()
    return out


#: Our variants, against the peer: "before" is the graph keras.applications builds (Keras' own
#: BatchNormalization), "ours" the default (fused BN), "folded" ``fold_batch_norm`` (inference only).
VARIANTS = ("before", "ours", "folded")


def main(argv=None):
    """Runs the benchmark cases and prints (and optionally writes) the results."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer cases and repetitions (about 5 minutes)")
    p.add_argument("--out", default=None, help="write the results as a markdown table here")
    p.add_argument("--train-only", action="store_true",
                   help="only the training-step cases, at their full sizes (NASNetMobile and NASNetCIFAR 6@768, "
                        "batch 32), and no search case")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per case (default 7, 3 with --quick)")
    p.add_argument("--pnasnet-only", action="store_true",
                   help="time only PNASNet5Large against timm's pnasnet5large (331, batch 1)")
    a = p.parse_args(argv)
    if a.train_only and a.quick:
        p.error("--train-only times the full-size training steps; leave out --quick.")
    if a.reps is not None and a.reps < 1:
        p.error(f"--reps must be at least 1; got {a.reps}.")
    reps = a.reps or (3 if a.quick else 7)
    rows = []
    if a.pnasnet_only:
        res = pnasnet_case(reps)
        print(json.dumps({"pnasnet5large_331_batch1": res}))
        return

    def add(name, res):
        row = {"case": name, "peer_s": res["peer"], "peer_mb": res["peer_mb"]}
        text = f"{name:40} keras {res['peer'] * 1000:8.1f} ms"
        for v in VARIANTS:
            if v in res:
                row[v + "_s"], row[v + "_mb"], row[v + "_ratio"] = res[v], res[v + "_mb"], res[v] / res["peer"]
                text += f" | {v} {res[v] * 1000:8.1f} ms ({res[v] / res['peer']:.3f})"
        rows.append(row)
        print(text, flush=True)

    def sides(build, peer, inference):
        out = {"before": lambda: build(bn_fused=False), "ours": build}
        if inference:
            out["folded"] = lambda: kn.fold_batch_norm(build())
        out["peer"] = peer
        return out

    mob = lambda **kw: kn.NASNetMobile(weights=None, **kw)
    mob_peer = lambda: keras.applications.NASNetMobile(weights=None)
    large = lambda **kw: kn.NASNetLarge(weights=None, **kw)
    large_peer = lambda: keras.applications.NASNetLarge(weights=None)
    big = 8 if a.quick else 32
    pnas = None
    if not a.train_only:
        add("inference NASNetMobile 224 batch 1", inference_case(sides(mob, mob_peer, True), 224, 1, reps * 3))
        add(f"inference NASNetMobile 224 batch {big}", inference_case(sides(mob, mob_peer, True), 224, big, reps))
        add("inference NASNetLarge 331 batch 1",
            inference_case(sides(large, large_peer, True), 331, 1, 3 if a.quick else reps))
        if not a.quick:
            add("inference NASNetLarge 331 batch 32", inference_case(sides(large, large_peer, True), 331, 32, 3))
        pnas = pnasnet_case(3)
        print("inference PNASNet5Large 331 batch 1: ours {:.1f} ms".format(pnas["ours"] * 1000)
              + (" | timm {:.1f} ms (ratio {:.3f})".format(pnas["timm"] * 1000, pnas["ratio"])
                 if "timm" in pnas else " (timm not installed)"), flush=True)
    add(f"train step NASNetMobile 224 batch {big}", train_case(sides(mob, mob_peer, False), 224, big, reps, 1000))
    cifar = (1, 384) if a.quick else (6, 768)
    add(f"train step NASNetCIFAR {cifar[0]}@{cifar[1]} batch 32",
        train_case(sides(lambda **kw: kn.NASNetCIFAR(*cifar, include_preprocessing=False, **kw),
                         lambda: keras_cifar_nasnet(*cifar), False), 32, 32, reps, 10))
    search = None if a.train_only else search_case(reps, train_images=2000 if a.quick else 4000)
    if search:
        print(f"search: sample 20 {search['sample_20_s'] * 1000:.0f} ms, PPO update "
              f"{search['ppo_update_s'] * 1000:.0f} ms, one proxy child {search['proxy_child_s']:.1f} s "
              f"(controller time per child / child time = {search['controller_share']:.5f})")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
               f"Keras {keras.__version__}")
    if a.out:
        fmt = lambda r, v: (f"{r[v + '_s'] * 1000:.1f} ({r[v + '_ratio']:.3f})" if v + "_s" in r else "-")
        with open(a.out, "w") as f:
            f.write(f"Machine: {machine}. Milliseconds (median), ratio to keras.applications in brackets.\n\n"
                    "| case | keras.applications | before (Keras BN) | ours (fused BN) | BN folded | peak +MB keras / ours |\n"
                    "|---|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r['case']} | {r['peer_s'] * 1000:.1f} | {fmt(r, 'before')} | {fmt(r, 'ours')} | "
                        f"{fmt(r, 'folded')} | {r['peer_mb']:.0f} / {r['ours_mb']:.0f} |\n")
            if search:
                f.write(f"\nSearch: sampling 20 children {search['sample_20_s'] * 1000:.0f} ms, one PPO update "
                        f"{search['ppo_update_s'] * 1000:.0f} ms, one CPU proxy child {search['proxy_child_s']:.1f} s "
                        f"(N=1, F=8, one epoch on {search['train_images']:,} images, scored on 5,000).\n")
    ratios = {f"{r['case']} [{v}]": round(r[v + "_ratio"], 3) for r in rows for v in VARIANTS if v + "_s" in r}
    share = round(search["controller_share"], 6) if search else None
    print(json.dumps({"ratios": ratios, "search_controller_share": share, "pnasnet5large_331_batch1": pnas,
                      "machine": machine}))


if __name__ == "__main__":
    main()
