"""Execution-level replacements in keras_nasnet.ops compute what Keras' layers compute."""

import keras
import numpy as np
import pytest


@pytest.mark.parametrize("shape", [(2, 7, 6, 3), (1, 8, 9, 4)])
def test_slice_cropping_matches_keras_forward_and_backward(shape, rng):
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the gradient is checked with tf.GradientTape")
    from keras_nasnet.ops import Cropping2D

    crop = ((1, 0), (2, 1))
    ours, theirs = Cropping2D(crop), keras.layers.Cropping2D(crop)
    assert type(ours).__name__ == "Cropping2D"  # weight-file paths are built from class names
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    w = tf.constant(rng.normal(size=(shape[0], shape[1] - 1, shape[2] - 3, shape[3])).astype("float32"))
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * w)
        grads.append((y.numpy(), tape.gradient(loss, x).numpy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    # Unknown spatial sizes (flexible-size models) keep the static output shape Keras computes.
    inp = keras.Input((None, None, 3))
    assert ours(inp).shape == theirs(inp).shape
    assert keras.Model(inp, ours(inp))(x[..., :3]).shape == (shape[0], shape[1] - 1, shape[2] - 3, 3)
