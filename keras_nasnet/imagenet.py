"""Input preprocessing and prediction decoding for the ImageNet models (works offline)."""

from __future__ import annotations

import json
import numbers
from functools import lru_cache
from importlib import resources

import numpy as np


def preprocess_input(x, data_format=None):
    """Scales pixels from [0, 255] to [-1, 1], the input range of the ImageNet NASNet weights.

    Same as ``keras.applications.nasnet.preprocess_input`` (``mode="tf"``) on images. Accepts
    NumPy arrays and tensors; ``data_format`` (``None``, ``"channels_last"`` or
    ``"channels_first"``) is accepted for API compatibility (the scaling is per pixel).
    """
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"data_format must be None, 'channels_last' or 'channels_first'; got "
                         f"{data_format!r}.")
    if isinstance(x, np.ndarray):
        return x.astype("float32" if x.dtype.kind in "iu" else x.dtype) / 127.5 - 1.0
    from keras import ops

    return ops.cast(x, "float32") / 127.5 - 1.0


@lru_cache(maxsize=1)
def _class_index() -> dict:
    text = resources.files("keras_nasnet").joinpath("data/imagenet_class_index.json").read_text()
    return json.loads(text)


def decode_predictions(preds, top: int = 5):
    """Decodes ImageNet predictions into ``[(wnid, class_name, score), ...]`` per sample.

    Like ``keras.applications.nasnet.decode_predictions`` but offline: the class index ships with
    the package.

    Args:
        preds: array of shape ``(samples, 1000)``.
        top: how many classes to return per sample (at least 1).
    """
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"top must be a positive integer (how many classes per sample); got {top!r}.")
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            f"decode_predictions expects a batch of 1000-class predictions, shape (samples, 1000); "
            f"got shape {preds.shape}."
        )
    index = _class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(index[str(i)][0], index[str(i)][1], float(row[i])) for i in best])
    return results
