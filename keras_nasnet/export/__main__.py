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

from . import _main_output, export, load_exported


def model_from_name(name: str):
    """Builds the model a registry name or ``.keras`` file stands for; returns ``(model, spec)``
    (``spec`` is the registry's :class:`~keras_nasnet.weights.WeightSpec`, or ``None``)."""
    from ..weights import registry

    if name.endswith(".keras"):
        import keras

        import keras_nasnet  # noqa: F401  (registers the package's layers for loading)

        if not Path(name).is_file():
            raise ValueError(f"No such model file: {name}.")
        import zipfile

        if not zipfile.is_zipfile(name):
            # Keras says "File not found" for a file that is there but is no .keras archive.
            raise ValueError(f"{name} is not a .keras model (a .keras file is a zip archive, written "
                             "by model.save); a weights file is loaded with the constructor's "
                             "weights= or model.load_weights.")
        return keras.saving.load_model(name, compile=False), None
    reg = registry()
    if name not in reg:
        raise ValueError(f"Unknown model {name!r}: pass a .keras file or one of {', '.join(reg)}.")
    spec = reg[name]
    kwargs = {}
    if not spec.include_top and spec.preprocessing == "imagenet":
        # Without a top the ImageNet models could take any size; export at the training size.
        kwargs["input_shape"] = (spec.input_size, spec.input_size, 3)
    return spec.build(**kwargs), spec


def calibration_images(source: str, size, spec, count: int, seed: int = 0) -> np.ndarray:
    """``count`` calibration images from ``source`` (see the module docstring), shaped ``size``."""
    rng = np.random.default_rng(seed)
    if source == "cifar10" or source.startswith("cifar10:"):
        from ..data import load_cifar10

        from ..data import DataError

        try:
            (x, _), _ = load_cifar10(source.partition(":")[2] or None)
        except DataError as e:
            raise ValueError(f"--calibration {source}: {e}") from None
        x = x[rng.permutation(len(x))[:count]].astype(np.float32)
        if x.shape[1:3] != tuple(size[:2]):
            raise ValueError(f"CIFAR-10 images are 32x32; this model takes {size[:2]}.")
        return x
    path = Path(source)
    if not path.exists():
        raise ValueError(f"--calibration {source}: no such file or folder. Use cifar10[:SOURCE], a "
                         ".npy array or a folder of images.")
    if path.suffix == ".npy":
        try:
            x = np.load(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"--calibration {path} is not a readable .npy array ({e}).") from None
        if x.ndim != 4 or x.shape[1:] != tuple(size):
            raise ValueError(f"--calibration {path} holds an array shaped {x.shape}; the export "
                             f"takes images shaped (N, {', '.join(map(str, size))}).")
        # A seeded draw, as for the other sources: an array sorted by class would otherwise
        # calibrate on one class only.
        return x[rng.permutation(len(x))[:count]].astype(np.float32)
    if path.is_dir():
        import tensorflow as tf

        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise ValueError(f"--calibration folder {path} has no .jpg/.png images.")
        files = [files[i] for i in rng.permutation(len(files))[:count]]
        images = []
        for f in files:
            try:
                img = tf.io.decode_image(f.read_bytes(), channels=3, expand_animations=False)
            except Exception:  # tf.errors.InvalidArgumentError and others: the file is not an image
                raise ValueError(f"--calibration: {f} is not a PNG/JPEG image that can be decoded "
                                 "(corrupt, or another format named .jpg/.png); remove it from the "
                                 "folder.") from None
            images.append(tf.image.resize(img, size[:2]).numpy())
        x = np.stack(images).astype(np.float32)
        if spec is not None and spec.preprocessing == "imagenet":
            from ..imagenet import preprocess_input

            x = preprocess_input(x)
        return x
    raise ValueError(f"--calibration {source!r}: use cifar10[:SOURCE], a .npy array or an image "
                     "folder.")


def evaluate(model, path, source, limit: int = 0, batch_size: int = 100,
             num_threads: int | None = None) -> dict:
    """CIFAR-10 test accuracy of the Keras ``model`` and of the export at ``path``, and the share of
    test images on which both give the same class. ``source``: a CIFAR-10 source
    (:func:`keras_nasnet.data.load_cifar10`) or its test split already loaded, ``(x, y)``."""
    from ..data import load_cifar10

    x, y = source if isinstance(source, tuple) else load_cifar10(source)[1]
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


def _check_arguments(p, a, model, spec):
    """The checks that need the model, in the command line's terms, before anything is written.
    Returns ``(input_shape, calibration_size)``."""
    shape = tuple(model.inputs[0].shape[1:])
    input_shape = (*a.input_size, shape[2]) if a.input_size else None
    size = input_shape or shape
    out = Path(a.out)
    fmt = a.format or {".tflite": "litert", ".onnx": "onnx", "": "saved_model"}.get(out.suffix.lower())
    if fmt == "saved_model" and out.is_file():
        p.error(f"{out} is a file, but a SavedModel is a folder: give a folder path as OUT, or name "
                "OUT .tflite or .onnx for those formats")
    if fmt == "litert" and None in size[:2]:
        p.error(f"{a.model} takes any input size {tuple(size)}, but LiteRT needs a fixed one: pass "
                "--input-size H W (e.g. --input-size 224 224)")
    if a.calibration and a.quantize not in ("int8", "dynamic_int8"):
        # Only int8 calibrates on them (dynamic_int8 checks the export on them): anything else
        # would ignore them, and a user who forgot --quantize int8 would think the file int8.
        p.error(f"--calibration is used with --quantize int8 (to calibrate it) or dynamic_int8 (to "
                f"check it); this export is {a.quantize or 'float32'}: add --quantize int8, or "
                "leave --calibration out")
    if a.evaluate:
        classes = model.outputs[0].shape[-1]
        if len(model.outputs[0].shape) != 2 or classes != 10 or size[:2] not in ((32, 32), (None, None)) \
                or size[2] != 3:
            p.error(f"--evaluate measures CIFAR-10 test accuracy, which needs a 10-class classifier "
                    f"of 32x32 RGB images; {a.model} takes {tuple(size)} and gives "
                    f"{tuple(model.outputs[0].shape[1:])}: leave --evaluate out")
    if a.quantize == "int8" and not a.calibration:
        hint = ("cifar10:PATH (CIFAR-10 training images from a local copy, e.g. "
                "cifar10:cifar-10-python.tar.gz), " if spec is None or spec.dataset == "cifar10"
                else "")
        p.error(f"--quantize int8 needs --calibration: {hint}a .npy array of images in the model's "
                "input range, or a folder of images (about 100-500 images)")
    return input_shape, size


def main(argv=None) -> int:
    """Runs the export command line; returns the exit status (0 done, 1 failed, 2 invalid
    arguments, 130 interrupted)."""
    from .._cli import converter_output_held_back, interrupted
    from ..cliargs import ArgumentParser, nonnegative_int, positive_int

    p = ArgumentParser(prog="python -m keras_nasnet.export", description=__doc__,
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
    p.add_argument("--calibration-count", type=positive_int, default=500, metavar="N",
                   help="how many of the --calibration images to calibrate on (default 500)")
    p.add_argument("--input-size", type=positive_int, nargs=2, metavar=("H", "W"), default=None,
                   help="fix a model's None spatial size (LiteRT needs a static one)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="a fixed batch size (default free)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNormalization layers")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it exists (default: refuse, so an earlier export is kept)")
    p.add_argument("--evaluate", metavar="SOURCE", default=None,
                   help="CIFAR-10 models: test accuracy of the export and of the Keras model on "
                        "this CIFAR-10 source ('tfds', an archive or an image folder/zip)")
    p.add_argument("--limit", type=nonnegative_int, default=0,
                   help="evaluate on the first N test images")
    a = p.parse_args(argv)
    if a.format is None and Path(a.out).suffix.lower() not in (".tflite", ".onnx", ""):
        p.error(f"cannot tell the format from OUT {a.out!r}: name it .tflite or .onnx, give a folder "
                "path for a SavedModel, or pass --format")
    if a.quantize and (a.format or Path(a.out).suffix.lower()) not in ("litert", ".tflite"):
        p.error(f"--quantize {a.quantize} is for LiteRT: name OUT .tflite (or pass --format litert)")
    if a.format in ("litert", "onnx"):
        want = {"litert": ".tflite", "onnx": ".onnx"}[a.format]
        if Path(a.out).suffix.lower() != want:
            name = Path(a.out).with_suffix(want).name if Path(a.out).name else f"model{want}"
            p.error(f"--format {a.format} writes a {want} file (the runtimes tell the format by the "
                    f"suffix): name OUT {name}")
    # An earlier export is kept unless asked (as `weights convert` does); a destination of the
    # wrong kind (a file for a SavedModel, a folder for a file format) gets its own message later.
    out = Path(a.out)
    fmt = a.format or {".tflite": "litert", ".onnx": "onnx", "": "saved_model"}[out.suffix.lower()]
    # A folder of other files is not an export: export() refuses it with its own message.
    taken = (out / "saved_model.pb").is_file() if fmt == "saved_model" else out.is_file()
    if taken and not a.overwrite:
        p.error(f"{out} exists; pass --overwrite to replace it, or give another OUT")
    result = None
    try:
        model, spec = model_from_name(a.model)
        model = _main_output(model)  # an auxiliary head (training only) is not exported
        input_shape, size = _check_arguments(p, a, model, spec)
        # The test images are read before converting: a wrong --evaluate source then fails at once,
        # not after a long conversion that leaves an export behind.
        test_split = None
        if a.evaluate:
            from ..data import load_cifar10

            if a.evaluate.startswith("cifar10:") and not Path(a.evaluate).exists():
                p.error(f"--evaluate takes the CIFAR-10 source itself ({a.evaluate.partition(':')[2]}), "
                        "without the cifar10: that --calibration uses")
            test_split = load_cifar10(a.evaluate)[1]
        calibration = None
        if a.calibration:
            calibration = calibration_images(a.calibration, size, spec, a.calibration_count)
            if len(calibration) < a.calibration_count:
                print(f"note: --calibration {a.calibration} holds {len(calibration)} image(s), fewer "
                      f"than --calibration-count {a.calibration_count}: all of them are used.",
                      file=sys.stderr)
            if len(calibration) < (a.batch_size or 1):
                p.error(f"--calibration gave {len(calibration)} image(s); int8 calibration with "
                        f"--batch-size {a.batch_size} needs at least {a.batch_size} (about 100-500 "
                        "are recommended)")
        with converter_output_held_back():
            result = export(model, a.out, format=a.format, quantize=a.quantize,
                            calibration=calibration, input_shape=input_shape,
                            batch_size=a.batch_size, fold_bn=not a.no_fold)
        report = {"path": str(result.path), "format": result.format, "quantize": result.quantize,
                  "input_shape": list(result.input_shape), "max_abs_diff": result.max_abs_diff,
                  "top1_agreement": result.top1_agreement, "checked": result.checked,
                  "checked_on": result.checked_on}
        if a.evaluate:
            report["cifar10"] = evaluate(model, result.path, test_split, a.limit)
    except (ValueError, ImportError, RuntimeError, OSError) as e:  # ExportError, WeightsError
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if result is not None:
            return interrupted(f"the evaluation was stopped; the export at {result.path} is complete",
                               "run the command again to evaluate it")
        return interrupted(f"the export was stopped; {a.out} was not written (an earlier export "
                           "there is left as it was)", "run the same command again to export")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
