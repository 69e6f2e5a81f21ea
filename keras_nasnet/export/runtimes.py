"""Running an exported model in its own runtime: LiteRT, ONNX Runtime or TensorFlow.

:func:`load_exported` gives one callable for all three, ``run(images) -> outputs`` on NumPy
arrays, so verification and the benchmarks treat every format alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: How to install each runtime (the ``export`` extra installs them all).
_INSTALL = "pip install 'keras_nasnet[export]'"


class ExportError(RuntimeError):
    """An export could not be written, or does not compute what the Keras model computes."""


def format_of_file(path) -> str:
    """``"litert"``, ``"onnx"`` or ``"saved_model"`` for an exported file or folder."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    if path.suffix.lower() == ".tflite":
        return "litert"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    raise ValueError(f"{str(path)!r} is not an export: expected a .tflite or .onnx file or a "
                     "SavedModel folder (with saved_model.pb).")


class _LiteRT:
    def __init__(self, path, num_threads):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError(f"Running LiteRT models needs ai-edge-litert: {_INSTALL}.") from None
        # XNNPACK is the interpreter's default CPU delegate; it covers float and int8 kernels.
        self.interpreter = Interpreter(model_path=os.fspath(path), num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.fixed_batch = int(self.input["shape_signature"][0]) if self.input["shape_signature"][0] > 0 else None
        self.batch = None
        self.interpreter.allocate_tensors()

    def __call__(self, x):
        it = self.interpreter
        if self.batch != len(x):
            it.resize_tensor_input(self.input["index"], (len(x), *self.input["shape"][1:]))
            it.allocate_tensors()
            self.input = it.get_input_details()[0]
            self.output = it.get_output_details()[0]
            self.batch = len(x)
        it.set_tensor(self.input["index"], _quantize(x, self.input))
        it.invoke()
        return _dequantize(it.get_tensor(self.output["index"]), self.output)


def _quantize(x, detail):
    if detail["dtype"] == np.float32:
        return np.asarray(x, np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    if detail["dtype"] == np.float32:
        return y.copy()
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


class _Onnx:
    def __init__(self, path, num_threads):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError(f"Running ONNX models needs onnxruntime: {_INSTALL}.") from None
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        b = self.input.shape[0]
        self.fixed_batch = b if isinstance(b, int) else None

    def __call__(self, x):
        return self.session.run(None, {self.input.name: np.asarray(x, np.float32)})[0]


class _SavedModel:
    def __init__(self, path, num_threads):
        import tensorflow as tf

        # Thread settings are process-wide in TensorFlow; num_threads is not applied here.
        self.fn = tf.saved_model.load(os.fspath(path)).signatures["serving_default"]
        _, kwargs = self.fn.structured_input_signature
        (self.name, spec), = kwargs.items()
        self.fixed_batch = spec.shape[0]

    def __call__(self, x):
        import tensorflow as tf

        out = self.fn(**{self.name: tf.constant(x, tf.float32)})
        return next(iter(out.values())).numpy()


class Runner:
    """A loaded export: ``runner(images)`` returns the model's outputs as a NumPy array.

    A fixed-batch export runs larger inputs in chunks of its batch size (the last one padded).
    """

    def __init__(self, impl, format):
        self.impl, self.format = impl, format

    def __call__(self, images) -> np.ndarray:
        x = np.asarray(images, np.float32)
        b = self.impl.fixed_batch
        if b is None or len(x) == b:
            return self.impl(x)
        out = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            pad = b - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
            out.append(self.impl(chunk)[:b - pad])
        return np.concatenate(out)


def load_exported(path, num_threads: int | None = None) -> Runner:
    """Loads an export written by :func:`keras_nasnet.export.export` in its own runtime.

    Args:
        path: a ``.tflite`` file (LiteRT interpreter from ``ai-edge-litert``, XNNPACK delegate), an
            ``.onnx`` file (ONNX Runtime, CPU) or a SavedModel folder (TensorFlow).
        num_threads: CPU threads for LiteRT and ONNX Runtime (their default when ``None``).

    Returns:
        A :class:`Runner`; int8 inputs and outputs are (de)quantized for the caller.
    """
    format = format_of_file(path)
    if not Path(path).exists():
        # Said here: the runtimes' own messages ("The model allocation is null/empty",
        # "[ONNXRuntimeError] : 3 : NO_SUCHFILE") do not say what to check.
        raise FileNotFoundError(f"{os.fspath(path)!r} does not exist: give the file that "
                                "keras_nasnet.export.export (or python -m keras_nasnet.export) wrote.")
    impl = {"litert": _LiteRT, "onnx": _Onnx, "saved_model": _SavedModel}[format](path, num_threads)
    return Runner(impl, format)
