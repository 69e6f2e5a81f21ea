"""CPU inference speed of every deployment path, in one run, as ratios to a peer.

    nice python benchmarks/export.py --out bench-export.md            # NASNetMobile and CIFAR model
    nice python benchmarks/export.py --models cifar --reps 20         # quicker

For NASNetMobile (224x224, random weights) the peer is ``keras.applications.NASNetMobile`` called in
a ``tf.function``; for the CIFAR model (the shipped ``nasnet_cifar_1@384_cifar10`` weights, 32x32)
keras.applications has no peer, so the ratio is to our own Keras model. Sides:

- ``keras``: our model called in a ``tf.function`` (not ``model.predict``, whose per-call overhead
  dominates batch 1), ``keras_folded``: the same after :func:`keras_nasnet.fold_batch_norm`;
- ``litert_f32`` / ``litert_dynamic_int8`` / ``litert_int8``: :func:`keras_nasnet.export.export`
  LiteRT files (float32; int8 weights with activations quantized at run time; every op int8) run by
  the ``ai-edge-litert`` interpreter (XNNPACK) with ``--threads`` threads;
- ``onnx``: the ONNX export in ONNX Runtime (CPU provider) with ``--threads`` intra-op threads.

Each side is warmed up, then the sides are timed in rotating order (so a drift of the shared
machine's speed hits every side alike); the median of ``--reps`` runs is reported. Exports are
written to ``--workdir`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's keras_nasnet

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_nasnet as kn  # noqa: E402
from keras_nasnet.export import export, load_exported  # noqa: E402


def keras_step(model):
    """``model`` called in a ``tf.function`` (inference mode), returning NumPy."""
    fn = tf.function(lambda t: model(t, training=False), jit_compile=False)
    return lambda x: fn(tf.constant(x)).numpy()


def build_sides(name, workdir: Path, threads: int, calibration):
    """``{side: (step function, description)}`` and the peer's side name for one model."""
    if name == "mobile":
        model = kn.NASNetMobile(weights=None, input_shape=(224, 224, 3))
        peer = keras.applications.NASNetMobile(weights=None, input_shape=(224, 224, 3))
        sides = {"keras_applications": keras_step(peer)}
        peer_name = "keras_applications"
    else:
        model = kn.NASNetCIFAR(weights="nasnet_cifar_1@384_cifar10")
        sides = {}
        peer_name = "keras"
    sides["keras"] = keras_step(model)
    sides["keras_folded"] = keras_step(kn.fold_batch_norm(model))
    files = {"litert_f32": (f"{name}_f32.tflite", {}),
             "litert_dynamic_int8": (f"{name}_dynamic_int8.tflite", {"quantize": "dynamic_int8"}),
             "litert_int8": (f"{name}_int8.tflite", {"quantize": "int8", "calibration": calibration}),
             "onnx": (f"{name}.onnx", {})}
    for side, (file, kwargs) in files.items():
        path = workdir / file
        if not path.exists():
            t = time.perf_counter()
            export(model, path, **kwargs)
            print(f"# exported {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        sides[side] = load_exported(path, num_threads=threads)
    return sides, peer_name


def time_sides(sides: dict, x: np.ndarray, reps: int) -> dict:
    """Median seconds per call of every side on ``x``, timed in rotating order after a warm-up."""
    for step in sides.values():
        for _ in range(3):
            step(x)
    names = list(sides)
    times = {n: [] for n in names}
    for i in range(reps):
        for n in names[i % len(names):] + names[:i % len(names)]:
            t = time.perf_counter()
            sides[n](x)
            times[n].append(time.perf_counter() - t)
    return {n: statistics.median(ts) for n, ts in times.items()}


def main(argv=None):
    """Runs the benchmark; prints a markdown table and a final JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=["mobile", "cifar"], default=["mobile", "cifar"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="LiteRT and ONNX Runtime threads")
    p.add_argument("--workdir", default=os.path.join(os.path.expanduser("~"), ".cache", "keras_nasnet_bench"))
    p.add_argument("--calibration", default=None,
                   help="CIFAR-10 source for the CIFAR model's int8 calibration (default: random images)")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    a = p.parse_args(argv)
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows, results = [], {}
    for name in a.models:
        size = 224 if name == "mobile" else 32
        if name == "cifar" and a.calibration:
            from keras_nasnet.data import load_cifar10

            (xtr, _), _ = load_cifar10(a.calibration)
            calibration = xtr[rng.permutation(len(xtr))[:300]].astype(np.float32)
        else:
            lo, hi = (-1.0, 1.0) if name == "mobile" else (0.0, 255.0)
            calibration = rng.uniform(lo, hi, (64, size, size, 3)).astype(np.float32)
        sides, peer = build_sides(name, workdir, a.threads, calibration)
        for batch in a.batches:
            x = calibration[np.arange(batch) % len(calibration)]
            t = time_sides(sides, x, a.reps)
            results[f"{name}_b{batch}"] = t
            for side, secs in t.items():
                rows.append(f"| {name} | {batch} | {side} | {secs * 1000:.1f} | {batch / secs:.0f} | "
                            f"{secs / t[peer]:.2f} |")
        keras.backend.clear_session()
    header = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
              f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {a.threads} runtime threads; "
              f"median of {a.reps}.", "",
              "| model | batch | path | ms / call | images / s | time vs peer |",
              "|---|---|---|---|---|---|"]
    table = "\n".join(header + rows)
    print(table)
    if a.out:
        from keras_nasnet.fileio import write_text_atomic

        write_text_atomic(a.out, table + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
