"""The cifar10 reward's compiled child step trains as ``fit`` did, traced once per child."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("ChildTrainer runs on TensorFlow", allow_module_level=True)


def _genotype():
    from keras_nasnet.genotypes import Block, Cell, Genotype

    cell = Cell((Block((0, 1), ("sep_conv_3x3", "identity"), "add"),), (2,))
    return Genotype(cell, cell)


def _tiny(seed=0):
    from keras_nasnet.models import NASNetCIFAR

    keras.utils.set_random_seed(seed)
    return NASNetCIFAR(1, 48, genotype=_genotype(), bn_momentum=0.9)


def _cfg(**kw):
    from keras_nasnet.search.rewards import ProxyConfig

    return ProxyConfig.preset("cpu", penultimate_filters=48, train_images=100, val_images=20,
                              batch_size=16, **kw)


def test_child_step_updates_weights_exactly_as_fit(rng):
    from keras_nasnet.search.rewards import ChildTrainer, _make_optimizer

    x = rng.integers(0, 256, (16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 16)
    # A large weight decay and learning rate, so that a missing or misplaced decay term (1% of
    # every weight per step here) is far outside the tolerance.
    cfg = _cfg(lr=0.2, weight_decay=0.05)
    ref = _tiny()
    ref.compile(_make_optimizer(cfg, 7), "sparse_categorical_crossentropy", jit_compile=False)
    ours = ChildTrainer(_tiny(), cfg, 7)
    for a, b in zip(ref.get_weights(), ours.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same seed builds the same child
    for _ in range(2):  # two steps: momentum and the cosine schedule take part too
        ref.train_on_batch(x, y)
        ours._step = ours._step or ours._make_step()
        ours._step(x, y.astype("int64"))
    # Trainable weights and BN moving statistics alike.
    for w, a, b in zip(ref.weights, ref.get_weights(), ours.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=w.path)
    assert int(ours.optimizer.iterations) == 2


def test_child_step_is_traced_once_for_a_smaller_last_batch(rng):
    from keras_nasnet.search.rewards import ChildTrainer

    cfg = _cfg()
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)  # batches of 16, 16 and 8
    y = rng.integers(0, 10, 40)
    trainer = ChildTrainer(_tiny(), cfg, 3)
    loss = trainer.train_epoch(x, y, seed=0, epoch=0)
    assert np.isfinite(loss)
    assert trainer._step.experimental_get_tracing_count() == 1
    assert int(trainer.optimizer.iterations) == 3
    acc = trainer.accuracy(x[:30], y[:30], batch_size=7)  # an uneven last evaluation batch too
    assert acc in {k / 30 for k in range(31)}


def test_cifar_reward_trains_with_the_compiled_step(rng):
    """The reward decodes, builds, trains with ChildTrainer and scores the held-out images."""
    from keras_nasnet.search import rewards
    from keras_nasnet.search.space import SearchSpace

    cfg = _cfg()
    key = (cfg.data, cfg.train_images, cfg.val_images)
    rewards._DATA_CACHE[key] = (rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 100),
                                rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 20))
    try:
        space = SearchSpace(num_blocks=1, ops=("identity", "sep_conv_3x3"))
        actions = space.encode(_genotype())
        reward = rewards.CIFARReward(space, cfg)
        acc = reward(actions, seed=0)
        assert acc in {k / 20 for k in range(21)}
        # The compiled path ran (the fit path has no first-step timing).
        assert set(reward.last_seconds) == {"build", "first_step", "steps", "evaluate"}
    finally:
        rewards._DATA_CACHE.pop(key, None)
