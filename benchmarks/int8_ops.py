"""Why full-integer int8 NASNet is slower than float on LiteRT/XNNPACK here: the ops one at a time.

    python benchmarks/int8_ops.py                # 1 thread, NASNetMobile-sized ops
    python benchmarks/int8_ops.py --threads 2

Each case is a one-op (or one-block) Keras model at a size NASNetMobile has, converted three ways
(float32; ``dynamic_int8``: int8 weights, activations quantized at run time; ``int8``: every tensor
int8, calibrated on random inputs) and run by the ``ai-edge-litert`` interpreter (XNNPACK). Times
are the best of 5 rounds, each the mean of ``--reps`` calls, and are printed as ratios to float32
in the same run. The sizes follow NASNetMobile's first normal cells (44 channels at 42x42,
176 at 21x21 after the first reduction, 704 at 7x7 at the end).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's keras_nasnet

import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers


def cases():
    """``[(name, model)]``: single ops and NASNet's separable-conv block at NASNetMobile sizes."""
    def model(shape, build):
        x = keras.Input(shape)
        return keras.Model(x, build(x))

    def sep(x):  # one half of NASNet-A's separable block: ReLU, depthwise, pointwise, BN
        return L.BatchNormalization()(L.Conv2D(44, 1)(L.DepthwiseConv2D(5, padding="same")(L.ReLU()(x))))

    return [
        ("1x1 conv 44->44 @42x42", model((42, 42, 44), lambda x: L.Conv2D(44, 1)(x))),
        ("1x1 conv 176->176 @21x21", model((21, 21, 176), lambda x: L.Conv2D(176, 1)(x))),
        ("1x1 conv 704->704 @7x7", model((7, 7, 704), lambda x: L.Conv2D(704, 1)(x))),
        ("depthwise 5x5 44 @42x42", model((42, 42, 44), lambda x: L.DepthwiseConv2D(5, padding="same")(x))),
        ("depthwise 3x3 176 @21x21", model((21, 21, 176), lambda x: L.DepthwiseConv2D(3, padding="same")(x))),
        ("ReLU-dw5-1x1-BN 44 @42x42", model((42, 42, 44), sep)),
        ("concat of 6 x 44 @42x42", model((42, 42, 44), lambda x: L.Concatenate()(
            [L.Conv2D(44, 1)(x) for _ in range(6)]))),
    ]


def convert(model, mode: str) -> bytes:
    """The LiteRT flatbuffer of ``model`` as float32, dynamic_int8 or int8 (through the package's
    own export path, without its verification)."""
    from keras_nasnet.export import export

    path = Path(tempfile.mkdtemp()) / "m.tflite"
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((16, *model.inputs[0].shape[1:])).astype(np.float32)
    export(model, path, quantize=None if mode == "float32" else mode, calibration=calibration,
           batch_size=1, verify=False)
    return path


def time_call(path, threads: int, reps: int) -> float:
    """Best-of-5 mean seconds of one interpreter call."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(1).standard_normal(d["shape"]).astype(d["dtype"]))
    for _ in range(10):
        it.invoke()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            it.invoke()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def main(argv=None):
    """Prints one markdown row per case: milliseconds and ratios to float32."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=200)
    a = p.parse_args(argv)
    print(f"LiteRT XNNPACK, {a.threads} thread(s); time vs float32 in parentheses\n")
    print("| op | float32 ms | dynamic_int8 ms | int8 ms |")
    print("|---|---|---|---|")
    for name, model in cases():
        t = {mode: time_call(convert(model, mode), a.threads, a.reps)
             for mode in ("float32", "dynamic_int8", "int8")}
        f = t["float32"]
        print(f"| {name} | {f * 1e3:.3f} | {t['dynamic_int8'] * 1e3:.3f} ({t['dynamic_int8'] / f:.2f}) | "
              f"{t['int8'] * 1e3:.3f} ({t['int8'] / f:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
