"""The NumPy CIFAR pipeline used on backends without tf.data."""

import numpy as np
import pytest

from keras_nasnet.augment_numpy import CIFARBatches, augment_batch


def _images(n, rng):
    return rng.integers(1, 256, (n, 32, 32, 3)).astype(np.uint8)  # no zeros: cutout is visible


def _as_crop(out, img):
    """(dy, dx, flipped) such that ``out`` is that window of ``img`` padded by 4, or None."""
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
    for flipped in (False, True):
        for dy in range(9):
            for dx in range(9):
                win = padded[dy:dy + 32, dx:dx + 32]
                win = win[:, ::-1] if flipped else win
                kept = out != 0
                if np.array_equal(out[kept], win[kept]):
                    return dy, dx, flipped
    return None


def test_crop_flip_cutout_and_determinism(rng):
    x = _images(64, rng)
    a = augment_batch(x, np.random.default_rng(1), cutout=16)
    assert a.dtype == np.uint8 and a.shape == x.shape
    assert np.array_equal(a, augment_batch(x, np.random.default_rng(1), cutout=16))
    assert not np.array_equal(a, augment_batch(x, np.random.default_rng(2), cutout=16))
    crops = [_as_crop(a[i], x[i]) for i in range(len(x))]
    assert all(c is not None for c in crops)
    assert len({c[:2] for c in crops}) > 10 and {c[2] for c in crops} == {False, True}
    # Cutout zeroes one axis-aligned square of at most 16x16, clipped at the border.
    plain = augment_batch(x, np.random.default_rng(1), cutout=0)
    for i in range(len(x)):
        hole = (a[i] == 0).all(-1) & (plain[i] != 0).all(-1)
        rows, cols = np.nonzero(hole)
        assert len(rows) and rows.max() - rows.min() < 16 and cols.max() - cols.min() < 16
        assert hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_batches_follow_the_tf_pipeline_order_and_are_reproducible(rng):
    x, y = _images(50, rng), np.arange(50) % 10
    ds = CIFARBatches(x, y, 16, training=True, seed=3, epoch=2, cutout=0, outputs=2)
    assert len(ds) == 4
    xb, (yb, yb2) = ds[3]
    assert xb.dtype == np.float32 and xb.shape == (2, 32, 32, 3) and np.array_equal(yb, yb2)
    order = np.random.default_rng([3, 2]).permutation(50)  # keras_nasnet.data.make_dataset's order
    assert np.array_equal(np.concatenate([ds[i][1][0] for i in range(4)]), y[order])
    again = CIFARBatches(x, y, 16, training=True, seed=3, epoch=2, cutout=0, outputs=2)
    assert np.array_equal(again[1][0], ds[1][0])  # a resumed epoch sees the same batches
    assert not np.array_equal(CIFARBatches(x, y, 16, True, seed=3, epoch=3)[1][0], ds[1][0])
    plain = CIFARBatches(x, y, 16, training=False)
    assert np.array_equal(plain[0][0], x[:16].astype(np.float32)) and np.array_equal(plain[0][1], y[:16])
    with pytest.raises(IndexError):
        plain[4]
    with pytest.raises(ValueError, match="differ in length"):
        CIFARBatches(x, y[:3], 16, training=False)
