"""The paper's CIFAR augmentation and batching in NumPy, for Keras backends other than TensorFlow.

:func:`keras_nasnet.data.make_dataset` builds the tf.data pipeline used on TensorFlow; JAX and
PyTorch have no tf.data (and TensorFlow may not be installed), so there ``fit`` reads a
:class:`CIFARBatches` ``keras.utils.PyDataset`` instead. Both visit the images in the same
``(seed, epoch)`` order and apply the same augmentation (pad 4 and random crop, horizontal flip,
cutout), each from its own random numbers: the two pipelines draw crops from the same
distribution, not the same crops. Every batch draws its random numbers from ``(seed, epoch,
batch index)``, so batches are the same whatever the number of workers, and a resumed run sees
the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def augment_batch(images: np.ndarray, rng: np.random.Generator, cutout: int = 16, pad: int = 4) -> np.ndarray:
    """Augments a batch of uint8 ``(N, H, W, C)`` images as :func:`keras_nasnet.data.augment` does.

    Each image is zero-padded by ``pad`` pixels on every side and cropped back to ``H x W`` at a
    random offset, flipped left-right with probability 1/2, and, with ``cutout > 0``, gets a
    ``cutout x cutout`` square of zeros centred on a uniformly random pixel (clipped at the
    border). Returns a new array; ``images`` is not modified.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"augment_batch needs (N, H, W, C) images; got shape {images.shape}.")
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows = rng.integers(0, 2 * pad + 1, n)[:, None] + np.arange(h)
    cols = rng.integers(0, 2 * pad + 1, n)[:, None] + np.arange(w)
    flip = rng.random(n) < 0.5
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if cutout:
        half = cutout // 2
        cy = rng.integers(0, h, n)[:, None]
        cx = rng.integers(0, w, n)[:, None]
        r, c = np.arange(h)[None, :], np.arange(w)[None, :]
        in_rows = (r >= cy - half) & (r < cy + cutout - half)
        in_cols = (c >= cx - half) & (c < cx + cutout - half)
        out[in_rows[:, :, None] & in_cols[:, None, :]] = 0
    return out


class CIFARBatches(keras.utils.PyDataset):
    """``(float32 pixels in [0, 255], label)`` batches of uint8 images, for ``model.fit``.

    Args:
        x: uint8 images ``(N, H, W, C)``.
        y: integer labels ``(N,)``.
        batch_size: images per batch (the last batch may be smaller).
        training: shuffle with ``(seed, epoch)`` and augment; otherwise the images in order.
        seed: with ``epoch``, what the order and the augmentation are drawn from.
        epoch: the epoch whose order and augmentation this is.
        cutout: cutout square size; 0 disables it.
        outputs: 2 repeats the label for a model with an auxiliary head.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset``.
    """

    def __init__(self, x, y, batch_size: int, training: bool, seed: int = 0, epoch: int = 0,
                 cutout: int = 16, outputs: int = 1, **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length ({len(x)} images, {len(y)} labels).")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        if training:
            # The order the tf.data pipeline uses too (keras_nasnet.data.make_dataset).
            order = np.random.default_rng([seed, epoch]).permutation(len(x))
            x, y = x[order], y[order]
        self.x, self.y = x, y
        self.batch_size, self.training = batch_size, training
        self.seed, self.epoch, self.cutout, self.outputs = seed, epoch, cutout, outputs

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1}).")
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x, y = self.x[sl], self.y[sl]
        if self.training:
            x = augment_batch(x, np.random.default_rng([self.seed, self.epoch, index]), self.cutout)
        x = x.astype("float32")
        return x, ((y, y) if self.outputs == 2 else y)


def make_dataset(x, y, batch_size: int, training: bool, seed: int = 0, epoch: int = 0,
                 cutout: int = 16, outputs: int = 1, workers: int = 4):
    """:func:`keras_nasnet.data.make_dataset`'s batches as a :class:`CIFARBatches` (no TensorFlow).

    ``workers`` threads prepare batches ahead of the model; the batches do not depend on it.
    """
    from .data import _images_and_labels

    x, y = _images_and_labels(x, y, "make_dataset")
    return CIFARBatches(x, y, batch_size, training, seed, epoch, cutout, outputs,
                        workers=workers, use_multiprocessing=False)
