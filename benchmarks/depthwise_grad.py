"""Depthwise filter gradients: TensorFlow's kernel against a depthwise-convolution formulation.

The depthwise filter gradient was the largest single op type of a NASNetMobile training step
(20% of op time, ``benchmarks/results.md``). This script measures, for every depthwise shape of a
batch-32 NASNetMobile (or CIFAR 6@768) training step, TensorFlow's
``DepthwiseConv2dNativeBackpropFilter`` against computing the same gradient as one depthwise
convolution (batch moved into channels, the output gradient as a dilated filter), and the
depthwise input gradient against a forward depthwise convolution with the flipped kernel, and
prints the totals weighted by how often each shape occurs::

    python benchmarks/depthwise_grad.py --model mobile
    python benchmarks/depthwise_grad.py --model cifar --threads 2
    python benchmarks/depthwise_grad.py --model child --threads 1   # a search child

It only measures; nothing in the package uses the alternative formulations.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np


def shapes_of(model_name: str):
    """``{(input size, channels, kernel, stride): count}`` of a model's SeparableConv2D layers."""
    import keras

    from keras_nasnet import NASNetCIFAR, NASNetMobile

    if model_name == "mobile":
        model = NASNetMobile(weights=None)
    elif model_name == "child":  # the search's cpu proxy child: N=1, F=8
        model = NASNetCIFAR(1, 192)
    else:
        model = NASNetCIFAR(weights=None)
    counts = collections.Counter()
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            s = layer.input.shape
            counts[(s[1], s[3], layer.kernel_size[0], layer.strides[0])] += 1
    return counts


def filter_grad_as_depthwise(tf, x, dy, k, stride, padding):
    """dW[i, j, c] = sum over n, h, w of x[n, h*s + i, w*s + j, c] * dy[n, h, w, c], as one
    depthwise convolution of x (batch moved into channels) with dy as a dilated filter."""
    n, h, w, c = dy.shape
    if padding == "SAME":
        p = max((h - 1) * stride + k - x.shape[1], 0)
        x = tf.pad(x, [[0, 0], [p // 2, p - p // 2], [p // 2, p - p // 2], [0, 0]])
    xt = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, x.shape[1], x.shape[2], n * c])
    f = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [h, w, n * c, 1])
    out = tf.nn.depthwise_conv2d(xt, f, [1, 1, 1, 1], "VALID", dilations=[stride, stride])
    return tf.reduce_sum(tf.reshape(out[:, :k, :k, :], [k, k, n, c]), axis=2)[:, :, :, None]


def median_ms(fn, reps):
    """Median milliseconds of ``fn()`` after one warm-up run (``benchmarks/run.py``'s timer)."""
    from run import timed  # the script's folder is on sys.path when run as a script

    return timed(fn, reps) * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("mobile", "cifar", "child"), default="mobile",
                        help="NASNetMobile, NASNetCIFAR 6@768, or the search's cpu proxy child (1@192)")
    parser.add_argument("--batch", type=int, default=None, help="default 32 (64 for child)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    args.batch = args.batch or (64 if args.model == "child" else 32)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    totals = collections.Counter()
    print("| input, channels, kernel, stride | count | filter grad TF / as depthwise (ms) | "
          "input grad TF / flipped forward (ms) |")
    print("|---|---|---|---|")
    for (size, c, k, s), count in sorted(shapes_of(args.model).items()):
        pad = "SAME" if s == 1 else "VALID"  # stride 2 inputs are padded explicitly, as in ops.py
        out = size if s == 1 else (size - k) // s + 1
        x = tf.random.normal([args.batch, size, size, c])
        w = tf.random.normal([k, k, c, 1])
        dy = tf.random.normal([args.batch, out, out, c])
        native = tf.function(lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=x, filter_sizes=[k, k, c, 1], out_backprop=dy, strides=[1, s, s, 1], padding=pad))
        alt = tf.function(lambda: filter_grad_as_depthwise(tf, x, dy, k, s, pad))
        ref = native().numpy()
        err = float(np.abs(alt().numpy() - ref).max() / np.abs(ref).max())
        assert err < 1e-4, f"formulations disagree at {(size, c, k, s)}: {err}"
        t_native, t_alt = median_ms(native, args.reps), median_ms(alt, args.reps)
        inp = tf.function(lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
            input_sizes=[args.batch, size, size, c], filter=w, out_backprop=dy,
            strides=[1, s, s, 1], padding=pad))
        t_in = median_ms(inp, args.reps)
        if s == 1:
            flipped = tf.function(lambda: tf.nn.depthwise_conv2d(dy, w[::-1, ::-1], [1, 1, 1, 1], "SAME"))
            t_flip = median_ms(flipped, args.reps)
        else:
            t_flip = t_in
        totals.update({"filter_tf": t_native * count, "filter_alt": t_alt * count,
                       "filter_best": min(t_native, t_alt) * count,
                       "input_tf": t_in * count, "input_best": min(t_in, t_flip) * count})
        print(f"| {size}, {c}, {k}, {s} | {count} | {t_native:.2f} / {t_alt:.2f} | {t_in:.2f} / {t_flip:.2f} |",
              flush=True)
    summary = {k: round(v, 1) for k, v in totals.items()}
    summary["filter_best/filter_tf"] = round(totals["filter_best"] / totals["filter_tf"], 3)
    summary["input_best/input_tf"] = round(totals["input_best"] / totals["input_tf"], 3)
    print(json.dumps({"model": args.model, "batch": args.batch, "threads": args.threads, **summary}))


if __name__ == "__main__":
    main()
