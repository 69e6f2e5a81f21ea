"""Exports of NASNet models for deployment, each checked in its own runtime.

    from keras_nasnet.export import export
    result = export(model, "nasnet.tflite", quantize="int8", calibration=images)
    print(result.max_abs_diff, result.top1_agreement)

Three formats (the module is callable: ``keras_nasnet.export(model, path)`` calls :func:`export`):

- ``"saved_model"``: a TensorFlow SavedModel folder with a ``serving_default`` signature (Keras'
  ``model.export(format="tf_saved_model")``). Takes ``None`` batch and spatial sizes.
- ``"litert"``: a LiteRT (TensorFlow Lite) flatbuffer, float32, float16 weights, dynamic-range int8
  (int8 weights; activations quantized inside each convolution at run time) or full-integer int8
  calibrated on images the caller gives. Built-in LiteRT ops only (no Flex ops, which the
  ``ai-edge-litert`` interpreter cannot run), so the spatial size must be static: with ``None``
  sizes TensorFlow's depthwise convolution only converts as a Flex op. The batch may stay ``None``
  (the interpreter resizes it).
- ``"onnx"``: ONNX through Keras' exporter (``tf2onnx``). Takes ``None`` batch and spatial sizes.

BatchNormalization is folded into the convolutions first (:func:`keras_nasnet.fold_batch_norm`):
the exported graph then has no BN ops and no ``keras_nasnet`` layers to translate. For LiteRT the
average pools (and, for int8, the ReLUs that cannot fuse into a convolution) are rewritten as
depthwise convolutions (:mod:`keras_nasnet.export.rewrite`), so XNNPACK runs the whole network
instead of handing those ops back to LiteRT's slower kernels between delegated pieces. Every export is
loaded back in its runtime (:func:`load_exported`) and compared with the Keras model: float32 to
``1e-4`` absolute, float16 to ``1e-2``; the int8 kinds report top-1 agreement (it is not an error if low:
judge it on real images with ``python -m keras_nasnet.export ... --evaluate SOURCE``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
from pathlib import Path

import numpy as np

from .runtimes import ExportError, load_exported

FORMATS = ("saved_model", "litert", "onnx")
_ALIASES = {"tf_saved_model": "saved_model", "tflite": "litert"}
QUANTIZATIONS = (None, "float16", "dynamic_int8", "int8")
#: Largest absolute difference from the Keras model a verified export may show, by quantization.
TOLERANCE = {None: 1e-4, "float16": 1e-2}

__all__ = ["ExportError", "ExportResult", "FORMATS", "QUANTIZATIONS", "export", "load_exported",
           "verify_export"]


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how closely it matches the Keras model.

    Attributes:
        path: the file (``.tflite``, ``.onnx``) or folder (SavedModel) written.
        format: ``"saved_model"``, ``"litert"`` or ``"onnx"``.
        quantize: ``None``, ``"float16"``, ``"dynamic_int8"`` or ``"int8"``.
        input_shape: the exported input shape, ``None`` for a size the export leaves free.
        max_abs_diff: largest absolute difference between the export's and the Keras model's
            outputs on the check images (``None`` when not verified).
        top1_agreement: share of check images on which both give the same top-1 class.
        checked: number of check images.
        checked_on: which images those were: ``"held-out calibration images"`` (int8: the last
            quarter of the calibration images, at most 32, left out of calibration),
            ``"calibration images"`` (int8 with fewer than 8 of them: the agreement is then
            measured on the images that set the ranges, and overstated), ``"given images"``
            (``dynamic_int8`` with ``calibration``), ``"random images"``, or ``None`` (not verified).
    """

    path: Path
    format: str
    quantize: str | None
    input_shape: tuple
    max_abs_diff: float | None = None
    top1_agreement: float | None = None
    checked: int = 0
    checked_on: str | None = None


def _format_of(path, format) -> str:
    if format is None:
        suffix = Path(path).suffix.lower()
        format = {".tflite": "litert", ".onnx": "onnx", "": "saved_model"}.get(suffix)
        if format is None:
            raise ValueError(f"Cannot tell the export format from {str(path)!r}: pass format= one of "
                             f"{', '.join(FORMATS)} (or name the file .tflite / .onnx / a folder).")
    format = _ALIASES.get(format, format)
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; use one of {', '.join(FORMATS)}.")
    return format


def _main_output(model):
    """The model to export: one with the auxiliary head (``auxiliary_head=True``, a training
    device) without it; a single-output model as it is. Other multi-output models are refused."""
    import keras

    if len(getattr(model, "outputs", None) or ()) <= 1:
        return model
    names = [t._keras_history.operation.name for t in model.outputs]
    if names[1:] == ["aux_predictions"]:
        return keras.Model(model.inputs, model.outputs[0], name=model.name)
    raise ValueError(
        f"export handles single-output models; {model.name!r} has {len(names)} outputs "
        f"({', '.join(names)}). Export the one to deploy: keras.Model(model.input, model.outputs[i]).")


def _static_shape(model, input_shape, batch_size) -> tuple:
    """The shape to export: the model's input shape with ``None`` sizes fixed by ``input_shape``."""
    if len(model.inputs) != 1:
        raise ValueError(f"export handles single-input models; {model.name!r} has {len(model.inputs)}.")
    shape = tuple(model.inputs[0].shape[1:])
    if input_shape is not None:
        input_shape = tuple(None if s is None else int(s) for s in input_shape)
        if len(input_shape) != len(shape) or any(
                m is not None and s != m for m, s in zip(shape, input_shape)):
            raise ValueError(
                f"input_shape={input_shape} does not fit the model's input {shape}: it can only fix "
                "sizes the model leaves as None. Build the model at the size you want instead "
                "(e.g. NASNetMobile(input_shape=(160, 160, 3)))."
            )
        shape = input_shape
    return (batch_size, *shape)


def _rebuild_at(model, shape):
    """``model`` rebuilt for a fixed input ``shape`` (same layers and weights); ``model`` itself
    when the shape is already its own."""
    import keras

    if tuple(model.inputs[0].shape[1:]) == tuple(shape[1:]):
        return model
    # Layers that size themselves at run time (StridePadding2D) compute the same amounts statically.
    name = model.inputs[0]._keras_history.operation.name
    x = keras.Input(shape=shape[1:], dtype=model.inputs[0].dtype, name=name)
    static = keras.models.clone_model(model, input_tensors=x)
    static.set_weights(model.get_weights())
    return static


def _calibration_images(calibration, shape, limit: int = 1000) -> np.ndarray:
    """The first ``limit`` calibration images as one float32 array, checked against ``shape``."""
    if calibration is None:
        raise ValueError(
            'quantize="int8" needs calibration images: pass calibration= an array of about 100-500 '
            "images shaped like the model's input, in the range the model takes (e.g. CIFAR-10 "
            "training images as float32 [0, 255] for the CIFAR models, preprocess_input(...) images "
            "for the ImageNet ones)."
        )
    if callable(calibration):
        calibration = calibration()
    if isinstance(calibration, np.ndarray):
        calibration = [calibration]
    images = []
    for batch in calibration:
        batch = np.asarray(batch, np.float32)
        if batch.ndim == len(shape) - 1:
            batch = batch[None]
        if batch.shape[1:] != tuple(shape[1:]):
            raise ValueError(f"Calibration images are shaped {batch.shape[1:]}; the export takes "
                             f"{tuple(shape[1:])} (resize them to the model's input size).")
        images.extend(batch)
        if len(images) >= limit:
            break
    if not images:
        raise ValueError("The calibration data is empty; int8 needs representative images.")
    step = shape[0] or 1
    if len(images) < step:
        # The converter would get no batch at all and write an uncalibrated model that still loads.
        raise ValueError(
            f"int8 calibration with batch_size={step} needs at least {step} calibration images; "
            f"calibration= has {len(images)} (about 100-500 are recommended)."
        )
    return np.stack(images[:limit])


def _hold_out(images: np.ndarray, step: int):
    """Splits calibration images into ``(calibrate, check)``: the last quarter (at most 32) is
    kept out of calibration so that the agreement check is not measured on the very images that
    set the int8 ranges, which overstates it. Fewer than 8 images (or too few for a batch) are
    all used to calibrate, and ``check`` is ``None``."""
    k = min(32, len(images) // 4)
    if k < 2 or len(images) - k < step:
        return images, None
    return images[:-k], images[-k:]


def _batches(images: np.ndarray, step: int):
    """A representative-dataset generator for the LiteRT converter: batches of ``step`` images
    (a fixed batch size calibrates with batches of that size; a remainder is left out)."""

    def gen():
        for i in range(0, len(images) - step + 1, step):
            yield [images[i:i + step]]

    return gen


def _check_calibration_range(model, calibration_gen) -> None:
    """Refuses calibration images on another scale than the model's input: a model that takes raw
    pixels (its first layer a ``rescaling``) calibrated on images in [0, 1] gets int8 ranges for
    inputs it never sees. The agreement check runs on images of the same kind (held out of the same
    set), so it would report 1.0 for an export that is wrong on real pixels."""
    if not _takes_raw_pixels(model):
        return
    top = max(float(np.max(b[0])) for b in calibration_gen())
    if top <= 1.0:
        raise ValueError(
            f"The calibration images are in [0, {top:g}], but {model.name!r} takes raw pixels in "
            "[0, 255] (it rescales them itself): pass the images as the model takes them (e.g. "
            "uint8 pixel values, not divided by 255).")


def _check_litert_shape(shape):
    if None in shape[1:]:
        raise ValueError(
            f"LiteRT needs a static input size, but the export would take {shape[1:]}: pass "
            "input_shape=(height, width, channels) (or build the model at a fixed size). With "
            "None sizes TensorFlow's depthwise convolution converts only as a Flex op, which the "
            "ai-edge-litert interpreter cannot run."
        )


def _write_litert(model, path, shape, quantize, calibration_gen):
    import tensorflow as tf

    _check_litert_shape(shape)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec(shape, model.inputs[0].dtype, name="images")])
    # Weights as constants: with resource variables left in, int8 calibration fails on
    # READ_VARIABLE, and the converter could not fold them into the kernels anyway.
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic_int8":
        # Dynamic-range quantization: int8 weights, float activations between ops, quantized
        # inside each convolution at run time. The wide 1x1 convolutions, most of NASNet's
        # arithmetic, then run on int8 kernels (VNNI/AMX), while no requantized int8 tensors
        # pass between ops (benchmarks/int8_ops.py times the ops one by one).
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration_gen
        # Every op int8 (conversion fails rather than leave a float op behind); float32 input and
        # output, so callers feed the same arrays as to the float model.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        flatbuffer = converter.convert()
    except Exception as e:  # the converter raises ConverterError and others, all with the op list
        raise ExportError(f"LiteRT conversion of {model.name!r} failed: {e}") from None
    if quantize == "int8":
        flatbuffer = _widen_empty_ranges(flatbuffer)
    Path(path).write_bytes(flatbuffer)


# XNNPACK refuses an int8 convolution whose requantization scale (input scale x weight scale /
# output scale) is 256 or more, and then the whole model fails to load.
_XNNPACK_MAX_REQUANT = 256.0


def _widen_empty_ranges(flatbuffer: bytes) -> bytes:
    """Gives every int8 convolution output that calibration saw only as 0 a usable scale.

    A convolution followed by a ReLU that is never positive on the calibration images gets an
    output range of [0, 0] and a scale near 0 (about 1e-8), so its requantization scale exceeds
    XNNPACK's limit and LiteRT cannot load the model with XNNPACK (it happens with small
    calibration sets and untrained weights). Such a tensor is exactly 0 for those images at any
    scale (0 sits on the zero point), so its scale is raised until the requantization scale is 32,
    8x inside the limit; every op that reads it takes the scale from the tensor. Tensors within
    the limit are untouched.
    """
    from tensorflow.lite.tools import flatbuffer_utils as fb

    model = fb.convert_bytearray_to_object(bytearray(flatbuffer))
    changed = False
    for graph in model.subgraphs:
        for op in graph.operators or []:
            if fb.opcode_to_name(model, op.opcodeIndex) not in (
                    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                continue
            x, w, y = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                       graph.tensors[op.outputs[0]])
            if any(t.quantization is None or t.quantization.scale is None or not len(t.quantization.scale)
                   for t in (x, w, y)):
                continue
            needed = float(x.quantization.scale[0]) * float(np.max(w.quantization.scale))
            if float(y.quantization.scale[0]) * _XNNPACK_MAX_REQUANT <= needed:
                y.quantization.scale = np.asarray([needed / (_XNNPACK_MAX_REQUANT / 8)], np.float32)
                changed = True
    return bytes(fb.convert_object_to_bytearray(model)) if changed else flatbuffer


def _check_tools(format, verify):
    """Raises ImportError, before the conversion's minutes, when a package the export needs is not
    installed: tf2onnx to write ONNX, and the runtime that checks the file when ``verify``."""
    import importlib.util

    from .runtimes import _INSTALL

    need = {"onnx": [("tf2onnx", "ONNX export needs tf2onnx")]}.get(format, [])
    if verify and format == "onnx":
        need.append(("onnxruntime", "Checking an ONNX export runs it in onnxruntime"))
    if verify and format == "litert":
        need.append(("ai_edge_litert", "Checking a LiteRT export runs it in ai-edge-litert"))
    for module, what in need:
        if importlib.util.find_spec(module) is None:
            skip = " (from Python, export(..., verify=False) skips the check)" if module != "tf2onnx" else ""
            raise ImportError(f"{what}: {_INSTALL}{skip}.")


def _write_onnx(model, path, shape):
    import warnings

    import tensorflow as tf

    try:
        import tf2onnx  # noqa: F401  (Keras imports it lazily; fail early with the install hint)
    except ImportError:
        raise ImportError("ONNX export needs tf2onnx: pip install 'keras_nasnet[export]'.") from None
    spec = [tf.TensorSpec(shape, model.inputs[0].dtype, name="images")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's np.object probe under NumPy 2
        model.export(os.fspath(path), format="onnx", input_signature=spec, verbose=False)


def _write_saved_model(model, path, shape):
    import tensorflow as tf

    spec = [tf.TensorSpec(shape, model.inputs[0].dtype, name="images")]
    model.export(os.fspath(path), format="tf_saved_model", input_signature=spec, verbose=False)


def _takes_raw_pixels(model) -> bool:
    """Whether ``model`` normalises [0, 255] pixels itself (a ``rescaling`` layer, as the CIFAR
    models have); otherwise its inputs are taken to be in [-1, 1] (``preprocess_input``)."""
    return any(layer.name == "rescaling" for layer in model.layers)


def check_images(model, shape, n: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` random images for a quick comparison, uniform in [0, 255] for models that normalise
    raw pixels themselves (a ``rescaling`` layer) and in [-1, 1] otherwise."""
    rng = np.random.default_rng(seed)
    size = [s if s is not None else 32 for s in shape[1:]]
    lo, hi = (0.0, 255.0) if _takes_raw_pixels(model) else (-1.0, 1.0)
    return rng.uniform(lo, hi, (n, *size)).astype(np.float32)


def verify_export(model, path, images, num_threads: int | None = None) -> dict:
    """Runs ``images`` through ``model`` (Keras, inference mode) and through the export at ``path``
    in its own runtime; returns ``{"max_abs_diff", "top1_agreement", "checked"}``."""
    images = np.asarray(images, np.float32)
    ref = np.asarray(model.predict_on_batch(images), np.float32)
    got = load_exported(path, num_threads=num_threads)(images)
    return {
        "max_abs_diff": float(np.max(np.abs(got - ref))),
        "top1_agreement": float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1))),
        "checked": len(images),
    }


def _check_destination(path: Path, format: str) -> None:
    """Refuses a destination of the wrong kind before anything is computed."""
    if format == "saved_model":
        if path.is_file():
            raise ValueError(
                f"{path} is a file, but a SavedModel is a folder: give a folder path (a new one, or "
                "an existing SavedModel to replace), or a .tflite / .onnx file name for those formats."
            )
        if path.is_dir() and any(path.iterdir()) and not (path / "saved_model.pb").is_file():
            raise ValueError(
                f"{path} is a folder that holds other files and no SavedModel; give a new folder "
                "(an existing SavedModel folder is replaced)."
            )
    else:
        suffix = {"litert": ".tflite", "onnx": ".onnx"}[format]
        if path.is_dir():
            raise ValueError(f"{path} is a folder; a {format} export is a file (e.g. "
                             f"{path / 'model'}{suffix}).")
        # load_exported and every runtime here tell the format by the suffix: an ONNX model named
        # m.tflite (or m.bin) could be written and verified, but never read back.
        if path.suffix.lower() != suffix:
            name = path.with_suffix(suffix).name if path.name else f"model{suffix}"
            raise ValueError(f"A {format} export is named *{suffix} (the runtimes tell the format by "
                             f"it): name it {name}, or leave out format= to export the format "
                             f"{path.name!r} names.")


def _temporary_beside(path: Path, format: str) -> Path:
    """A new unique file name (or empty folder, for a SavedModel) in ``path``'s folder; its suffix
    tells :func:`load_exported` the format."""
    import tempfile

    if format == "saved_model":
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    suffix = ".part" + {"litert": ".tflite", "onnx": ".onnx"}[format]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _move_into_place(tmp: Path, path: Path) -> None:
    """Renames the finished export onto ``path``; an existing SavedModel folder there is replaced
    (moved aside first, since a folder cannot be renamed onto a non-empty one, then removed)."""
    umask = os.umask(0)
    os.umask(umask)
    if tmp.is_dir():
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 is not what a plain mkdir gives
    if tmp.is_dir() and path.is_dir():
        import tempfile

        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old / path.name, path)  # put the previous export back
            raise
        finally:
            _remove(old)
    else:
        if tmp.is_file():
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a plain write gives
        os.replace(tmp, path)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def export(model, path, format: str | None = None, quantize: str | None = None, calibration=None,
           input_shape=None, batch_size: int | None = None, fold_bn: bool = True,
           verify: bool = True) -> ExportResult:
    """Exports ``model`` for inference and checks the file in its own runtime.

    Args:
        model: a functional Keras model (any ``keras_nasnet`` model, or a ``.keras`` file loaded).
            A model built with ``auxiliary_head=True`` is exported without that head (it only
            helps training): the export has one output, ``predictions``.
        path: where to write: ``*.tflite``, ``*.onnx``, or a folder for a SavedModel.
        format: ``"litert"``, ``"onnx"`` or ``"saved_model"``; by default from ``path``'s suffix.
        quantize: LiteRT only: ``None`` (float32), ``"float16"`` (float16 weights, half the size)
            ``"dynamic_int8"`` (int8 weights, activations quantized at run time; no calibration;
            faster than float32 in most runs here, docs/deploy.md) or ``"int8"`` (every op int8, float32 input and
            output; needs ``calibration``).
        calibration: representative inputs for int8: an array ``(N, H, W, C)``, an iterable of
            such batches, or a function returning one; the first 1,000 images are used. For
            ``"int8"`` the last quarter of them (at most 32) is kept out of calibration and is
            what ``verify`` checks agreement on.
        input_shape: ``(H, W, C)`` fixing sizes the model leaves ``None`` (LiteRT needs them).
        batch_size: a fixed batch size; ``None`` keeps it free.
        fold_bn: fold BatchNormalization into the convolutions first (same function to float
            rounding; fewer ops in every runtime).
        verify: load the export back and compare it with ``model`` on a few images
            (:attr:`ExportResult.checked_on` says which); raises :class:`ExportError` when a
            float export differs by more than :data:`TOLERANCE`.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ValueError: for a format, quantization or shape the export cannot take.
        ImportError: when the format's tool (``tf2onnx``) or runtime is not installed.
        ExportError: when conversion fails or the export disagrees with the model.
    """
    import keras

    format = _format_of(path, format)
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize={quantize!r}; use None, 'float16', 'dynamic_int8' or 'int8'.")
    if quantize is not None and format != "litert":
        raise ValueError(f'quantize={quantize!r} is for format="litert"; {format} exports are float32.')
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(f"export needs a functional Keras model; got {type(model).__name__}.")
    model = _main_output(model)
    shape = _static_shape(model, input_shape, batch_size)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r}; use a positive integer, or None to keep the "
                         "batch size free.")
    path = Path(path)
    _check_destination(path, format)
    from ..fileio import unwritable_reason

    refusal = unwritable_reason(path)
    if refusal:
        raise ValueError(f"Cannot write {path}: {refusal}. Give a path in a folder you can write.")
    # Everything that can be checked is checked before the slow work: the size LiteRT needs, and
    # enough calibration images for one batch.
    _check_tools(format, verify)
    calibration_gen = check = None
    if format == "litert":
        _check_litert_shape(shape)
        if quantize == "int8":
            calib, check = _hold_out(_calibration_images(calibration, shape), shape[0] or 1)
            calibration_gen = _batches(calib, shape[0] or 1)
            _check_calibration_range(model, calibration_gen)

    from ..optimize import fold_batch_norm

    static = _rebuild_at(model, shape)
    target = fold_batch_norm(static) if fold_bn else static
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"Cannot write {path}: cannot create {path.parent} ({e.strerror or e}).") from None
    # Written beside ``path`` under a temporary name, verified there, then renamed onto ``path``: a
    # failed or interrupted export (Ctrl-C included) leaves ``path`` as it was and no partial file
    # or folder.
    tmp = _temporary_beside(path, format)
    try:
        if format == "litert":
            from .rewrite import delegate_friendly

            target = delegate_friendly(target, int8=quantize == "int8")
            _write_litert(target, tmp, shape, quantize, calibration_gen)
        elif format == "onnx":
            _write_onnx(target, tmp, shape)
        else:
            _write_saved_model(target, tmp, shape)
        report = {}
        if verify:
            if check is not None:
                images, report["checked_on"] = check, "held-out calibration images"
            elif calibration_gen is not None:
                images = np.concatenate([b[0] for b in calibration_gen()])[:32]
                report["checked_on"] = "calibration images"
            elif calibration is not None and quantize == "dynamic_int8":
                # dynamic_int8 calibrates nothing: the caller's images are a fair check.
                images, report["checked_on"] = _calibration_images(calibration, shape, limit=32), "given images"
            else:
                images, report["checked_on"] = check_images(static, shape, n=batch_size or 4), "random images"
            report.update(verify_export(static, tmp, images))
            tol = TOLERANCE.get(quantize)
            if tol is not None and report["max_abs_diff"] > tol:
                raise ExportError(
                    f"The {format} export differs from the Keras model by "
                    f"{report['max_abs_diff']:.3g} (tolerance {tol:g}) on {report['checked']} "
                    f"images; {path} was not written."
                )
        _move_into_place(tmp, path)
    finally:
        _remove(tmp)
    result = ExportResult(path, format, quantize, shape[1:])
    return dataclasses.replace(result, **report)


class _CallableModule(types.ModuleType):
    """This module's class: calling it calls :func:`export`, so ``keras_nasnet.export(model, path)``
    works while ``keras_nasnet.export`` (however imported) stays this module."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
