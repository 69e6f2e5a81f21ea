"""NASNetMobile and NASNetLarge are layer-for-layer keras.applications' networks."""

import keras
import numpy as np
import pytest

import keras_nasnet as kn


def _weight_layers(model):
    return [l for l in model.layers if l.weights]


def _named(model):
    # keras.applications leaves some weightless layers unnamed (auto names such as "add_3" or
    # "activation_17" that depend on session state); every explicitly named one must match.
    auto = ("activation", "add", "concatenate", "zero_padding2d", "cropping2d", "input_layer",
            "global_average_pooling2d")
    return {l.name for l in model.layers if not l.name.split("_")[0].isdigit()
            and not any(l.name == a or l.name.startswith(a + "_") and l.name[len(a) + 1:].isdigit()
                        for a in auto)}


@pytest.mark.parametrize(
    "ours,theirs,size",
    [(kn.NASNetMobile, keras.applications.NASNetMobile, 224),
     (kn.NASNetLarge, keras.applications.NASNetLarge, 331)],
    ids=["mobile", "large"],
)
@pytest.mark.slow
def test_same_layers_weights_and_outputs(ours, theirs, size, tmp_path):
    ref = theirs(weights=None)
    model = ours(weights=None)
    assert len(model.layers) == len(ref.layers)
    assert model.count_params() == ref.count_params()
    assert _named(ref) <= {l.name for l in model.layers}
    # The Keras class each layer is (our FusedBatchNormalization is a BatchNormalization).
    kind = lambda l: next(c.__name__ for c in type(l).__mro__ if c.__module__.startswith("keras."))
    fp = lambda m: [(l.name, kind(l), [tuple(w.shape) for w in l.weights])
                    for l in _weight_layers(m)]
    assert fp(model) == fp(ref)  # same weights, same order, same shapes

    # The official files are Keras-2 h5 files loaded by name; write one from keras.applications.
    path = tmp_path / "ref.h5"
    ref.save(path)
    loaded = ours(weights=str(path))
    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype("float32")
    want = np.asarray(ref(x, training=False))
    got = np.asarray(loaded(x, training=False))
    assert np.max(np.abs(got - want)) <= 1e-5
    # Order-based copying (what Keras' topological loading does) gives the same network too.
    for a, b in zip(_weight_layers(model), _weight_layers(ref)):
        a.set_weights(b.get_weights())
    assert np.max(np.abs(np.asarray(model(x, training=False)) - want)) <= 1e-5


# NASNetMobile only: Large takes the same code path (test_large_notop_default_is_flexible... checks
# its layout), and each Large build costs tens of seconds of the suite's budget.
@pytest.mark.parametrize("build", [kn.NASNetMobile], ids=["mobile"])
@pytest.mark.slow
def test_notop_any_size_keeps_weight_layout(build):
    reference = None
    for shape in [(32, 32, 3), (33, 47, 3), (None, None, 3)]:
        m = build(weights=None, include_top=False, input_shape=shape)
        layout = [(l.name, [tuple(w.shape) for w in l.weights]) for l in _weight_layers(m)]
        reference = reference or layout
        assert layout == reference, shape
    # Run-time sizes, odd and even, through the None-sized model; same result as a static build.
    static = build(weights=None, include_top=False, input_shape=(65, 65, 3))
    for a, b in zip(_weight_layers(static), _weight_layers(m)):
        b.set_weights(a.get_weights())
    for size in (64, 65, 33):
        x = np.random.default_rng(size).uniform(-1, 1, (1, size, size, 3)).astype("float32")
        y = np.asarray(m(x, training=False))
        expected = (size - 3) // 2 + 1  # stem conv 3x3/2 "valid", then four "SAME" halvings
        for _ in range(4):
            expected = -(-expected // 2)
        assert y.shape[1:3] == (expected, expected)
        assert y.shape[-1] == (1056 if build is kn.NASNetMobile else 4032)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 65, 65, 3)).astype("float32")
    assert np.max(np.abs(np.asarray(m(x)) - np.asarray(static(x)))) < 1e-5


def test_large_notop_default_is_flexible_and_loads_same_layout():
    m = kn.NASNetLarge(weights=None, include_top=False)
    assert m.input_shape == (None, None, None, 3)
    assert len(_weight_layers(m)) == 532  # the no-top file's layer count, unlike keras' 526


def test_channels_first_is_refused_clearly():
    keras.backend.set_image_data_format("channels_first")
    try:
        # where the setting lives: keras.json of $KERAS_HOME, which is not always ~/.keras
        with pytest.raises(ValueError, match=r"channels_last.*keras.json.*\$KERAS_HOME"):
            kn.NASNetMobile(weights=None)
    finally:
        keras.backend.set_image_data_format("channels_last")


def test_static_mobile_can_use_only_keras_layers():
    # No custom layer at static sizes: a saved model loads even where keras_nasnet is not imported.
    m = kn.NASNetMobile(weights=None, include_top=False, input_shape=(96, 96, 3), bn_fused=False)
    assert all(type(l).__module__.startswith("keras.") for l in m.layers)


@pytest.fixture(scope="module")
def small_mobiles():
    """keras.applications' NASNet and ours (fused and Keras BN) at 1 @ 96, 32x32, without a top.

    ``keras.applications.NASNetMobile`` is this same keras function at 4 @ 1056 (NASNet builds take
    several seconds each at full size); the layer naming is the same code.
    """
    from keras.src.applications.nasnet import NASNet as KerasNASNet

    kw = dict(weights=None, include_top=False, input_shape=(32, 32, 3))
    arch = dict(num_cells=1, penultimate_filters=96, stem_filters=32)
    return {"keras": KerasNASNet(penultimate_filters=96, num_blocks=1, stem_block_filters=32,
                                 skip_reduction=False, **kw),
            "fused": kn.NASNet(bn_fused=True, **arch, **kw),
            "keras_bn": kn.NASNet(bn_fused=False, **arch, **kw)}


def test_bn_layer_class_name_is_keras_so_weights_h5_paths_match():
    # Keras 3 names `.weights.h5` groups after the class; keras_nasnet.ops' BN must share Keras'.
    assert kn.ops.BatchNormalization.__name__ == "BatchNormalization"
    assert kn.ops.FusedBatchNormalization is kn.ops.BatchNormalization
    assert keras.saving.get_registered_name(kn.ops.BatchNormalization) == "keras_nasnet>FusedBatchNormalization"


def test_weights_h5_interchange_with_keras_applications(small_mobiles, tmp_path):
    """keras.applications -> ours (BN fused and not), and each of ours -> keras.applications."""
    from keras_nasnet.weights import load_file

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")

    def save_random(name):
        # Random values everywhere, moving statistics included (variances positive).
        src = small_mobiles[name]
        src.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in src.get_weights()])
        path = tmp_path / f"{name}.weights.h5"
        src.save_weights(path)
        return path, np.asarray(src(x, training=False))

    def check(name, want):
        got = np.asarray(small_mobiles[name](x, training=False))
        assert np.allclose(got, want, rtol=1e-4, atol=1e-4), (name, np.max(np.abs(got - want)))

    path, want = save_random("keras")
    for ours in ("fused", "keras_bn"):
        load_file(small_mobiles[ours], path)  # what weights=path does
        check(ours, want)
    for ours in ("fused", "keras_bn"):
        path, want = save_random(ours)
        small_mobiles["keras"].load_weights(path)  # what a keras.applications user does
        check("keras", want)
