"""fold_batch_norm: an inference copy with BN folded into convolutions computes the same function."""

import keras
import numpy as np
import pytest

import keras_nasnet as kn
from keras_nasnet import NASNET_A

from conftest import random_genotype


def _with_random_bn_statistics(model, rng):
    """Non-trivial BN statistics and affine parameters, as after training."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.2, shape))
            layer.moving_variance.assign(rng.uniform(0.3, 3, shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, shape))
    return model


def _assert_same_function(actual, expected):
    """Folding reorders float32 arithmetic, so the error scales with the activations' magnitude
    (hundreds for 0-255 inputs without a top); a wrong fold errs by the order of the values."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))


def _bns(model):
    return [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("seed", [0, 1])
def test_folded_model_matches_and_drops_most_batch_norms(seed, tmp_path):
    rng = np.random.default_rng(seed)
    genotype = NASNET_A if seed == 0 else random_genotype(rng, num_blocks=3)
    model = kn.NASNet(genotype, num_cells=1, penultimate_filters=96 if seed == 0 else 120, stem="cifar",
                      classes=10, input_shape=(32, 32, 3))
    _with_random_bn_statistics(model, rng)
    folded = kn.fold_batch_norm(model)
    x = rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    expected = np.asarray(model(x, training=False))
    assert np.allclose(np.asarray(folded(x, training=False)), expected, atol=1e-5)
    # Only BNs that follow something other than a lone convolution (e.g. a concatenation) remain.
    assert len(_bns(folded)) < len(_bns(model)) / 4
    assert [l.name for l in folded.layers] == [l.name for l in model.layers]
    assert all(type(l).__module__.startswith("keras.") for l in folded.layers)  # portable
    # The original is untouched, and the copy saves and loads without custom objects.
    assert np.allclose(np.asarray(model(x, training=False)), expected)
    path = tmp_path / "folded.keras"
    folded.save(path)
    assert np.allclose(np.asarray(keras.models.load_model(path)(x)), expected, atol=1e-5)


def test_fold_batch_norm_handles_conv_with_bias_and_depthwise():
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=True, bias_initializer="ones")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization(center=False)(x)
    model = _with_random_bn_statistics(keras.Model(inputs, x), rng)
    folded = kn.fold_batch_norm(model)
    assert not _bns(folded)
    data = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    assert np.allclose(np.asarray(folded(data)), np.asarray(model(data, training=False)), atol=1e-5)


def test_fold_batch_norm_refuses_a_subclassed_model():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional"):
        kn.fold_batch_norm(Net())


@pytest.fixture(scope="module")
def tiny_base():
    keras.utils.set_random_seed(2)  # the same weights in every run
    model = kn.NASNet(NASNET_A, num_cells=1, penultimate_filters=48, stem="cifar", include_top=False,
                      input_shape=(32, 32, 3), bn_fused=False)
    return _with_random_bn_statistics(model, np.random.default_rng(2))


def test_a_convolution_read_by_more_than_its_batch_norm_is_not_folded(tiny_base):
    model = keras.Model(tiny_base.input, [tiny_base.output, tiny_base.get_layer("stem_conv1").output])
    folded = kn.fold_batch_norm(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for a, b in zip(model(x, training=False), folded(x, training=False)):
        _assert_same_function(b, a)
    assert isinstance(folded.get_layer("stem_bn1"), keras.layers.BatchNormalization)
    assert len(_bns(folded)) < len(_bns(model)) / 4  # the rest is still folded


def test_a_nested_base_model_is_folded(tiny_base):
    inputs = keras.Input((32, 32, 3))
    x = tiny_base(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))  # the README's fine-tuning pattern
    folded = kn.fold_batch_norm(model)
    inner = folded.get_layer(tiny_base.name)
    assert len(_bns(inner)) < len(_bns(tiny_base)) / 4
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    _assert_same_function(folded(x), model(x, training=False))


def test_fold_batch_norm_refuses_a_nested_sequential_model():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.BatchNormalization()])
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match="nested model .* must be a functional"):
        kn.fold_batch_norm(keras.Model(inputs, inner(inputs)))


def test_inputs_in_a_list_or_dict_and_convolutions_it_cannot_reproduce():
    rng = np.random.default_rng(0)
    # A model built on a list or a dict of inputs folds (clone_model wants that structure back).
    img, vec = keras.Input((8, 8, 3), name="img"), keras.Input((4,), name="vec")
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(img))
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    for model in (keras.Model([img], x),
                  keras.Model({"img": img, "vec": vec}, keras.layers.Concatenate()([pooled, vec]))):
        model = _with_random_bn_statistics(model, rng)
        folded = kn.fold_batch_norm(model)
        assert not _bns(folded)
        data = {"img": rng.normal(size=(2, 8, 8, 3)).astype("float32"),
                "vec": rng.normal(size=(2, 4)).astype("float32")}
        feed = [data["img"]] if isinstance(model.input, list) else data
        _assert_same_function(folded(feed), model(feed, training=False))

    # A BN over the last axis after a channels-first convolution normalises another axis, and a
    # user's Conv2D subclass may compute something else: both stay unfolded, and the function is kept.
    class Standardized(keras.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            kernel = (kernel - keras.ops.mean(kernel)) / (keras.ops.std(kernel) + 1e-5)
            return super().convolution_op(inputs, kernel)

    first = keras.Input((3, 8, 8))
    cases = [(first, keras.layers.Conv2D(8, 3, padding="same", data_format="channels_first")),
             (keras.Input((8, 8, 3)), Standardized(8, 3))]
    for inputs, conv in cases:
        model = _with_random_bn_statistics(
            keras.Model(inputs, keras.layers.BatchNormalization(axis=-1)(conv(inputs))), rng)
        folded = kn.fold_batch_norm(model)
        assert len(_bns(folded)) == 1
        if inputs is first and not _channels_first_runs_here():
            continue
        data = rng.normal(size=(2, *inputs.shape[1:])).astype("float32")
        _assert_same_function(folded(data), model(data, training=False))


def _channels_first_runs_here() -> bool:
    """TensorFlow runs a channels-first convolution on the CPU only with its oneDNN kernels, which
    it turns on by default only on some CPUs (not on an AVX2-only AMD EPYC)."""
    try:
        keras.layers.Conv2D(1, 1, data_format="channels_first")(np.zeros((1, 1, 2, 2), "float32"))
    except Exception:  # tf.errors.UnimplementedError: "only supports the NHWC tensor format"
        return False
    return True
