"""``python -m keras_nasnet.export MODEL OUT [--quantize int8 --calibration cifar10] [--evaluate SRC]``.

MODEL is a weight-registry name (``python -m keras_nasnet.weights list``) or a ``.keras`` file; OUT
is a ``.tflite`` or ``.onnx`` file or a SavedModel folder. Examples::

    python -m keras_nasnet.export nasnet_cifar_1@384_cifar10 cifar.tflite --quantize int8 \\
        --calibration cifar10:cifar-10-python.tar.gz --evaluate cifar-10-python.tar.gz
    python -m keras_nasnet.export nasnet_mobile_imagenet mobile.onnx

Calibration images: ``cifar10[:SOURCE]`` (CIFAR-10 training images through
``keras_nasnet.data.load_cifar10``), a ``.npy`` array already in the model's input range, or a
folder of images (resized to the input size; ImageNet weights get ``preprocess_input``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import export, load_exported


def model_from_name(name: str):
    """Builds the model a registry name or ``.keras`` file stands for; returns ``(model, spec)``
    (``spec`` is the registry's :class:`~keras_nasnet.weights.WeightSpec`, or ``None``)."""
    from .. import NASNetCIFAR, NASNetLarge, NASNetMobile
    from ..weights import registry

    if name.endswith(".keras"):
        import keras

        import keras_nasnet  # noqa: F401  (registers the package's layers for loading)

        if not Path(name).is_file():
            raise ValueError(f"No such model file: {name}.")
        return keras.saving.load_model(name, compile=False), None
    reg = registry()
    if name not in reg:
        raise ValueError(f"Unknown model {name!r}: pass a .keras file or one of {', '.join(reg)}.")
    spec = reg[name]
    if spec.architecture == "nasnet_mobile":
        model = NASNetMobile(weights=name, include_top=spec.include_top)
    elif spec.architecture == "nasnet_large":
        model = NASNetLarge(weights=name, include_top=spec.include_top,
                            input_shape=None if spec.include_top else (331, 331, 3))
    elif spec.architecture.startswith("nasnet_cifar_"):
        model = NASNetCIFAR(weights=name, include_top=spec.include_top)
    else:
        raise ValueError(f"No constructor known for architecture {spec.architecture!r}.")
    return model, spec


def calibration_images(source: str, size, spec, count: int, seed: int = 0) -> np.ndarray:
    """``count`` calibration images from ``source`` (see the module docstring), shaped ``size``."""
    rng = np.random.default_rng(seed)
    if source == "cifar10" or source.startswith("cifar10:"):
        from ..data import load_cifar10

        (x, _), _ = load_cifar10(source.partition(":")[2] or None)
        x = x[rng.permutation(len(x))[:count]].astype(np.float32)
        if x.shape[1:3] != tuple(size[:2]):
            raise ValueError(f"CIFAR-10 images are 32x32; this model takes {size[:2]}.")
        return x
    path = Path(source)
    if path.suffix == ".npy":
        return np.load(path)[:count].astype(np.float32)
    if path.is_dir():
        import tensorflow as tf

        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise ValueError(f"Folder {path} has no .jpg/.png images to calibrate on.")
        files = [files[i] for i in rng.permutation(len(files))[:count]]
        x = np.stack([tf.image.resize(tf.io.decode_image(f.read_bytes(), channels=3,
                                                          expand_animations=False), size[:2]).numpy()
                      for f in files]).astype(np.float32)
        if spec is not None and spec.preprocessing == "imagenet":
            from ..imagenet import preprocess_input

            x = preprocess_input(x)
        return x
    raise ValueError(f"Calibration source {source!r}: use cifar10[:SOURCE], a .npy array or an "
                     "image folder.")


def evaluate(model, path, source, limit: int = 0, batch_size: int = 100,
             num_threads: int | None = None) -> dict:
    """CIFAR-10 test accuracy of the Keras ``model`` and of the export at ``path``, and the share of
    test images on which both give the same class."""
    from ..data import load_cifar10

    _, (x, y) = load_cifar10(source)
    if limit:
        x, y = x[:limit], y[:limit]
    run = load_exported(path, num_threads=num_threads)
    ours, ref = [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].astype(np.float32)
        ours.append(run(xb).argmax(-1))
        ref.append(np.asarray(model.predict_on_batch(xb)).argmax(-1))
    ours, ref = np.concatenate(ours), np.concatenate(ref)
    return {"images": len(y), "keras_accuracy": float(np.mean(ref == y)),
            "export_accuracy": float(np.mean(ours == y)), "top1_agreement": float(np.mean(ours == ref))}


def main(argv=None) -> int:
    """Runs the export command line; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m keras_nasnet.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a registry name or a .keras file")
    p.add_argument("out", help="OUT.tflite, OUT.onnx, or a folder for a SavedModel")
    p.add_argument("--format", choices=["litert", "onnx", "saved_model"], default=None,
                   help="default: from OUT's suffix")
    p.add_argument("--quantize", choices=["float16", "dynamic_int8", "int8"], default=None,
                   help="LiteRT only. dynamic_int8: int8 weights, activations quantized at run "
                        "time, no calibration (often the fastest on CPUs); int8: every op int8, "
                        "calibrated on --calibration images")
    p.add_argument("--calibration", default=None,
                   help="int8 calibration images: cifar10[:SOURCE], a .npy array or an image folder")
    p.add_argument("--calibration-count", type=int, default=500)
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="fix a model's None spatial size (LiteRT needs a static one)")
    p.add_argument("--batch-size", type=int, default=None, help="a fixed batch size (default free)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNormalization layers")
    p.add_argument("--evaluate", metavar="SOURCE", default=None,
                   help="CIFAR-10 models: test accuracy of the export and of the Keras model on "
                        "this CIFAR-10 source ('tfds', an archive or an image folder/zip)")
    p.add_argument("--limit", type=int, default=0, help="evaluate on the first N test images")
    a = p.parse_args(argv)
    try:
        model, spec = model_from_name(a.model)
        shape = tuple(model.inputs[0].shape[1:])
        input_shape = (*a.input_size, shape[2]) if a.input_size else None
        size = input_shape or shape
        calibration = None
        if a.calibration:
            calibration = calibration_images(a.calibration, size, spec, a.calibration_count)
        elif a.quantize == "int8" and spec is not None and spec.dataset == "cifar10":
            calibration = calibration_images("cifar10", size, spec, a.calibration_count)
        result = export(model, a.out, format=a.format, quantize=a.quantize, calibration=calibration,
                        input_shape=input_shape, batch_size=a.batch_size, fold_bn=not a.no_fold)
        report = {"path": str(result.path), "format": result.format, "quantize": result.quantize,
                  "input_shape": list(result.input_shape), "max_abs_diff": result.max_abs_diff,
                  "top1_agreement": result.top1_agreement, "checked": result.checked}
        if a.evaluate:
            report["cifar10"] = evaluate(model, result.path, a.evaluate, a.limit)
    except (ValueError, ImportError, RuntimeError, OSError) as e:  # ExportError, WeightsError
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
