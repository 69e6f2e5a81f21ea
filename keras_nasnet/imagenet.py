"""Input preprocessing and prediction decoding for the ImageNet models (works offline)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np


def preprocess_input(x, data_format=None):
    """Scales pixels from [0, 255] to [-1, 1], the input range of the ImageNet NASNet weights.

    Same as ``keras.applications.nasnet.preprocess_input`` (``mode="tf"``). Accepts NumPy arrays
    and tensors; ``data_format`` is accepted for API compatibility (the scaling is per pixel).
    """
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
        top: how many classes to return per sample.
    """
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
