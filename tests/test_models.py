"""The genotype factory: any valid genotype builds, runs, trains and round-trips through .keras."""

import keras
import numpy as np
import pytest

import keras_nasnet as kn
from keras_nasnet import AMOEBANET_A, KNAS_EVOLVE_A, KNAS_EVOLVE_B, NASNET_A, PNASNET_5

from conftest import random_genotype


# Two blocks per cell with every kind of op (separable convolutions, both pools, identity): for
# tests of training features (drop path, auxiliary head, BN kernels, mixed precision) rather than
# of a cell, and a third of NASNet-A's graph, which every one of them traces.
SMALL = kn.Genotype.from_dict({
    "normal": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"]},
                          {"inputs": [0, 2], "ops": ["avg_pool_3x3", "sep_conv_5x5"]}], "concat": [2, 3]},
    "reduction": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_5x5", "max_pool_3x3"]},
                             {"inputs": [2, 1], "ops": ["sep_conv_3x3", "avg_pool_3x3"]}], "concat": [2, 3]}})


def _tiny(genotype, **kw):
    kw.setdefault("num_cells", 1)
    kw.setdefault("penultimate_filters", 4 * 4 * kn.models.cell_width(genotype.normal) * 2)
    return kn.NASNet(genotype, stem="cifar", classes=10, input_shape=(32, 32, 3), **kw)


def _roundtrip(model, tmp_path, x):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    back = keras.models.load_model(path)  # no custom_objects
    assert np.array_equal(np.asarray(model(x)), np.asarray(back(x)))
    return back


def test_cifar_6_768_has_the_papers_3_3m_parameters():
    m = kn.NASNetCIFAR(6, 768)
    assert abs(m.count_params() - 3.3e6) / 3.3e6 < 0.05
    assert m.output_shape == (None, 10)


def test_cifar_model_takes_raw_pixels():
    m = kn.NASNetCIFAR(1, 96)
    assert m.layers[1].name == "rescaling"
    x = np.full((1, 32, 32, 3), 255.0, "float32")
    inner = m.layers[1](x)
    assert float(np.max(inner)) < 3.0  # normalised inside the model


@pytest.mark.parametrize("genotype", [NASNET_A, AMOEBANET_A, PNASNET_5, KNAS_EVOLVE_A, KNAS_EVOLVE_B],
                         ids=["nasnet", "amoeba", "pnas", "knas-evolve", "knas-evolve-b"])
def test_reference_genotypes_build_run_and_roundtrip(genotype, tmp_path):
    m = _tiny(genotype)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = np.asarray(m(x))
    assert y.shape == (2, 10) and np.allclose(y.sum(1), 1, atol=1e-5)
    _roundtrip(m, tmp_path, x)


def test_random_genotypes_build_run_and_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for i in range(4):
        g = random_genotype(rng, num_blocks=3)
        m = _tiny(g, name=f"random_{i}")
        assert np.isfinite(np.asarray(m(x))).all(), str(g)
        _roundtrip(m, tmp_path, x)


def test_every_op_builds_in_both_cells_and_with_none_sizes(tmp_path):
    from keras_nasnet.genotypes import OPS, Block, Cell, Genotype

    blocks = [Block((i % 2, (i + 1) % 2), (op, OPS[(i + 5) % len(OPS)]), "concat" if i % 3 == 0 else "add")
              for i, op in enumerate(OPS)]
    # Chain the blocks so later blocks read earlier outputs too.
    blocks = [Block((b.inputs[0], min(b.inputs[1] + k, 1 + k)), b.ops, b.combine) for k, b in enumerate(blocks)]
    # Concatenate every state no block reads, as TF-slim does: with only the last one (as this
    # test had it), the blocks it did not reach were left out of the model, ops and all.
    read = {i for b in blocks for i in b.inputs}
    cell = Cell(tuple(blocks), tuple(i for i in range(2, len(blocks) + 2) if i not in read))
    g = Genotype(cell, cell)
    m = kn.NASNet(g, num_cells=1, penultimate_filters=cell.width * 4 * 8, stem="cifar",
                  input_shape=(None, None, 3), classes=3, include_top=True)
    for size in (32, 37):
        x = np.random.default_rng(size).uniform(0, 1, (1, size, size, 3)).astype("float32")
        assert np.asarray(m(x)).shape == (1, 3)
    _roundtrip(m, tmp_path, x)


@pytest.mark.slow
def test_drop_path_and_aux_head_train_and_roundtrip(tmp_path):
    m = kn.NASNetCIFAR(1, 32, genotype=SMALL, drop_path_rate=0.3, auxiliary_head=True)
    assert [o.shape for o in m.outputs] == [(None, 10), (None, 10)]
    drops = [l for l in m.layers if isinstance(l, kn.ScheduledDropPath)]
    assert drops and max(l.rate for l in drops) == pytest.approx(0.3)
    m.compile("sgd", ["sparse_categorical_crossentropy"] * 2, loss_weights=[1, 0.4])
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 3])
    for l in drops:
        l.progress.assign(1.0)
    hist = m.fit(x, (y, y), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    # Inference ignores drop path: two calls agree.
    assert np.array_equal(np.asarray(m(x)[0]), np.asarray(m(x)[0]))
    _roundtrip_multi = tmp_path / "dp.keras"
    m.save(_roundtrip_multi)
    back = keras.models.load_model(_roundtrip_multi)
    assert np.array_equal(np.asarray(m(x)[0]), np.asarray(back(x)[0]))


def test_drop_path_drops_whole_examples_in_training():
    layer = kn.ScheduledDropPath(0.5)
    x = np.ones((200, 2, 2, 1), "float32")
    layer.build(x.shape)
    layer.progress.assign(1.0)
    y = np.asarray(layer(x, training=True))
    per_example = y.reshape(200, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert (per_example == per_example[:, :1]).all()  # a path is dropped for the whole example
    assert 0.3 < (per_example[:, 0] == 0).mean() < 0.7
    assert np.array_equal(np.asarray(layer(x, training=False)), x)


def test_keras_argument_conventions():
    m = kn.NASNetMobile(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    assert m.output_shape == (None, 1056)
    m = kn.NASNetMobile(weights=None, include_top=False, pooling="max", input_shape=(64, 64, 3))
    assert m.output_shape == (None, 1056)
    m = kn.NASNetMobile(weights=None, classes=7, classifier_activation=None, name="mine")
    assert m.output_shape == (None, 7) and m.name == "mine"
    t = keras.Input((96, 96, 3))
    m = kn.NASNetMobile(weights=None, include_top=False, input_tensor=t)
    assert m.input_shape == (None, 96, 96, 3)
    assert kn.NASNetMobile(weights=None, include_top=False).input_shape == (None, 224, 224, 3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(pooling="mean"), "pooling must be None, 'avg' or 'max'"),
    (dict(input_shape=(31, 64, 3), include_top=False), r"at least 32x32; got input_shape=\(31, 64, 3\)\.$"),
    (dict(input_shape=(3, 224, 224), include_top=False), r"channels last.*\(224, 224, 3\)\?"),
    (dict(input_shape=(64, 64)), r"\(height, width, channels\)"),
    (dict(penultimate_filters=1000), "must be a multiple of 96"),
    (dict(stem="tiny"), "stem must be"),
    (dict(weights="nonsense"), "not None, a dataset"),
    (dict(auxiliary_head=True, include_top=False), "needs include_top=True"),
    (dict(num_cells=True), r"num_cells must be a positive integer; got True \(bool\)"),
    (dict(input_shape=(32, 32, 0), include_top=False), "channel dimension .* positive integer"),
    (dict(filter_multiplier=0), "filter_multiplier must be a positive integer; got 0"),
    (dict(penultimate_filters=0), "penultimate_filters must be a positive integer; got 0"),
    (dict(penultimate_filters=-24), "penultimate_filters must be a positive integer; got -24"),
    (dict(penultimate_filters=96.0), r"penultimate_filters must be a positive integer; got 96.0 \(float\)"),
    (dict(classes=0), "classes must be a positive integer; got 0"),
    (dict(stem_filters=-1), "stem_filters must be a positive integer"),
    (dict(auxiliary_head=True, input_shape=(32, 32, 3)), "needs an input of at least 67x67 with stem='imagenet'"),
    (dict(penultimate_filters=1000), "nearest valid values are 960 or 1056"),
    (dict(penultimate_filters=100, stem="cifar"), "multiple of 24 .* nearest valid values are 96 or 120"),
    (dict(penultimate_filters=20, stem="cifar"), r"multiple of 24 .* nearest valid value is 24\.$"),
    (dict(include_top="no"), "include_top must be True or False; got 'no'"),
    (dict(bn_momentum=5), r"bn_momentum must be in \[0, 1\].*got 5"),
    (dict(bn_epsilon=-1), "bn_epsilon must be a positive number.*got -1"),
    (dict(input_shape="331"), r"input_shape must be \(height, width, channels\).*got '331'"),
])
def test_bad_arguments_get_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kn.NASNet(**kwargs)


def test_named_architectures_refuse_what_they_fix():
    # It used to be Python's "NASNet() got multiple values for argument 'genotype'".
    with pytest.raises(TypeError, match=r"NASNetMobile is NASNet-A \(4 @ 1056\): genotype cannot be changed.*NASNet\(genotype"):
        kn.NASNetMobile(genotype=kn.AMOEBANET_A, weights=None)
    with pytest.raises(TypeError, match="NASNetLarge .*: num_cells, penultimate_filters cannot"):
        kn.NASNetLarge(num_cells=2, penultimate_filters=96, weights=None)
    with pytest.raises(TypeError, match="PNASNet5Large .*: op_style cannot"):
        kn.PNASNet5Large(op_style="keras", weights=None)
    with pytest.raises(TypeError, match="NASNetCIFAR is the CIFAR network .*: stem cannot"):
        kn.NASNetCIFAR(1, 48, stem="imagenet")
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\).*got 32"):
        kn.NASNetCIFAR(1, 48, input_shape=32)


def test_numpy_integers_are_accepted_and_searched_genotypes_get_the_valid_sizes():
    m = kn.NASNet(NASNET_A, num_cells=np.int64(1), penultimate_filters=np.int32(24), stem="cifar",
                  include_top=False, input_shape=(32, 32, 3))
    assert m.output_shape == (None, 8, 8, 24)
    # A searched cell concatenating 5 states: 1056 (made for NASNet-A's 6) does not fit; without
    # penultimate_filters the factory takes the nearest valid value.
    cell = kn.Cell(tuple(kn.Block((0, 1), ("sep_conv_3x3", "identity")) for _ in range(5)), (2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="multiple of 80 .* nearest valid values are 1040 or 1120"):
        kn.NASNet(kn.Genotype(cell, cell), penultimate_filters=1056)
    m = kn.NASNet(kn.Genotype(cell, cell), num_cells=1, include_top=False, input_shape=(32, 32, 3))
    assert m.output_shape[-1] == 1040


def test_imagenet_weights_argument_checks_happen_before_download():
    with pytest.raises(ValueError, match="classes must be 1000"):
        kn.NASNetMobile(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=r"must be \(224, 224, 3\)"):
        kn.NASNetMobile(weights="imagenet", input_shape=(160, 160, 3))
    with pytest.raises(ValueError, match="no 'imagenet' weights for this architecture"):
        kn.NASNetCIFAR(2, 96, weights="imagenet")
    with pytest.raises(ValueError, match="are for nasnet_large"):
        kn.NASNetMobile(weights="nasnet_large_imagenet")


@pytest.mark.parametrize("epsilon", [1e-3, 1e-5])
def test_fused_batch_norm_computes_what_keras_batch_norm_computes(epsilon):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, (4, 5, 6, 7)).astype("float32"))
    ours = kn.ops.FusedBatchNormalization(momentum=0.9, epsilon=epsilon)
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=epsilon)
    for layer in (ours, ref):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 7))
        layer.beta.assign(np.linspace(-1, 1, 7))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours, y_ref = ours(x, training=True), ref(x, training=True)
        loss_ours, loss_ref = tf.reduce_sum(y_ours**3), tf.reduce_sum(y_ref**3)
    close = lambda a, b, tol: np.allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)
    assert close(y_ours, y_ref, 1e-5)
    assert close(ours.moving_mean, ref.moving_mean, 1e-6)
    assert close(ours.moving_variance, ref.moving_variance, 1e-5)  # the biased variance, as Keras
    assert close(tape.gradient(loss_ours, x), tape.gradient(loss_ref, x), 1e-4)
    assert close(tape.gradient(loss_ours, ours.gamma), tape.gradient(loss_ref, ref.gamma), 1e-4)
    assert close(ours(x, training=False), ref(x, training=False), 1e-5)
    ours.trainable = False  # frozen BN runs in inference mode, as in Keras
    assert close(ours(x, training=True), ref(x, training=False), 1e-5)


def test_fused_and_keras_batch_norm_models_train_alike():
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 10
    models = [_tiny(SMALL, bn_fused=fused, bn_momentum=0.9) for fused in (True, False)]
    start = models[0].get_weights()
    models[1].set_weights(start)
    for m in models:
        m.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
        m.train_on_batch(x, y)
    # The same step: every weight (trainable and moving statistics) moves alike. Compared as
    # updates, relative to their size, since float rounding (which differs between the two
    # kernels, and between runs with oneDNN's threading) is a fraction of the update, not of 1e-4.
    deltas = [(a - w0, b - w0) for w0, a, b in zip(start, models[0].get_weights(), models[1].get_weights())]
    flat = [np.concatenate([d[i].ravel() for d in deltas]) for i in (0, 1)]
    assert np.linalg.norm(flat[0] - flat[1]) <= 1e-4 * np.linalg.norm(flat[1])  # measured: 1e-6
    for da, db in deltas:  # no single tensor off either (worst measured: 1% of a tiny BN update)
        assert np.linalg.norm(da - db) <= 5e-2 * np.linalg.norm(db) + 1e-6
    assert np.allclose(np.asarray(models[0](x)), np.asarray(models[1](x)), atol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_predictions(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        m = kn.NASNetCIFAR(1, 32, genotype=SMALL)
        m.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
        x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
        loss = m.train_on_batch(x, np.arange(4))
        preds = np.asarray(m(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(loss) and preds.dtype == np.float32 and np.allclose(preds.sum(1), 1, atol=1e-3)


def test_drop_path_applies_without_a_schedule_and_reaches_nested_models():
    # drop_path_rate=r drops paths from the first step of a plain fit (it used to stay at 0 until
    # a DropPathSchedule advanced it); the schedule reaches a NASNet nested in a larger model.
    m = _tiny(SMALL, drop_path_rate=0.5)
    drops = [l for l in m.layers if isinstance(l, kn.ScheduledDropPath)]
    assert drops and all(float(l.progress.numpy()) == 1.0 for l in drops)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    assert not np.array_equal(np.asarray(m(x, training=True)), np.asarray(m(x, training=True)))
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, keras.layers.Dense(3)(m(inputs)))
    outer.compile("sgd", "mse")
    outer.fit(x, np.zeros((8, 3)), epochs=2, verbose=0,
              callbacks=[kn.ops.DropPathSchedule(4)])
    assert [float(l.progress.numpy()) for l in drops] == [0.25] * len(drops)


def test_arguments_of_the_wrong_type_or_channels_are_refused_before_building():
    with pytest.raises(ValueError, match="dropout_rate must be a number in"):
        _tiny(NASNET_A, dropout_rate=None)
    with pytest.raises(ValueError, match="drop_path_rate must be a number in"):
        _tiny(NASNET_A, drop_path_rate="0.3")
    with pytest.raises(ValueError, match="height and width must be integers or None"):
        kn.NASNetCIFAR(1, 48, input_shape=("32", 32, 3))
    # The CIFAR normalisation is RGB: a grayscale input failed only at predict, in Keras' terms.
    with pytest.raises(ValueError, match="include_preprocessing=False"):
        kn.NASNetCIFAR(1, 48, input_shape=(32, 32, 1))
    gray = kn.NASNetCIFAR(1, 48, input_shape=(32, 32, 1), include_preprocessing=False)
    assert gray.predict(np.zeros((1, 32, 32, 1)), verbose=0).shape == (1, 10)


def test_cifar_weights_fill_in_the_size_left_out():
    # num_cells=1 with the registered 1@384 weights means 1@384, not the 1@768 default.
    m = kn.NASNetCIFAR(num_cells=1, weights="cifar10")
    assert m.layers[-1].output.shape == (None, 10)
    assert kn.weights.architecture_of(m)["penultimate_filters"] == 384
