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


@pytest.mark.parametrize("kernel,shape", [(5, (2, 9, 8, 3)), (7, (3, 8, 8, 4)), (3, (2, 6, 6, 2))])
def test_separable_conv_gradients_match_keras(kernel, shape, rng):
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the gradient is checked with tf.GradientTape")
    from keras_nasnet.ops import SeparableConv2D

    ours = SeparableConv2D(5, kernel, padding="same", use_bias=False)
    theirs = keras.layers.SeparableConv2D(5, kernel, padding="same", use_bias=False)
    assert type(ours).__name__ == "SeparableConv2D"  # weight-file paths are built from class names
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    w = tf.constant(rng.normal(size=shape[:3] + (5,)).astype("float32"))
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * w)
        dx, *dws = tape.gradient(loss, [x, *layer.trainable_variables])
        results.append([y.numpy(), dx.numpy(), *(g.numpy() for g in dws)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Inference runs Keras' own code; unknown sizes (flexible-size models) build and run.
    np.testing.assert_array_equal(ours(x).numpy(), theirs(x).numpy())
    inp = keras.Input((None, None, shape[-1]))
    model = keras.Model(inp, ours(inp))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True))
    assert all(g is not None for g in tape.gradient(loss, model.trainable_variables))
