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


def _tiny(seed=0, aux=False):
    from keras_nasnet.models import NASNetCIFAR

    keras.utils.set_random_seed(seed)
    return NASNetCIFAR(1, 48, genotype=_genotype(), bn_momentum=0.9, auxiliary_head=aux)


def _cfg(**kw):
    from keras_nasnet.search.rewards import ProxyConfig

    return ProxyConfig.preset("cpu", penultimate_filters=48, train_images=100, val_images=20,
                              batch_size=16, **kw)


@pytest.mark.parametrize("aux_weight,version", [(0.0, 2), (0.4, 2), (0.0, 1)])
def test_child_step_updates_weights_exactly_as_fit(rng, aux_weight, version):
    """The compiled step against Keras' fit of the same recipe: kernels-only weight decay
    (version 2) or decay on every weight (version 1), with and without the auxiliary head."""
    from keras_nasnet.search.rewards import ChildTrainer

    x = rng.integers(0, 256, (16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 16)
    # A large weight decay and learning rate, so that a missing or misplaced decay term (1% of
    # every weight per step here) is far outside the tolerance.
    cfg = _cfg(lr=0.2, weight_decay=0.05, aux_weight=aux_weight, recipe_version=version)
    ref = cfg.training_recipe().compile(_tiny(aux=aux_weight > 0), 7)
    ours = ChildTrainer(_tiny(aux=aux_weight > 0), cfg, 7)
    for a, b in zip(ref.get_weights(), ours.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same seed builds the same child
    for _ in range(2):  # two steps: momentum and the cosine schedule take part too
        ref.train_on_batch(x, [y, y] if aux_weight else y)
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
    data = (rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 100),
            rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 20))
    space = SearchSpace(num_blocks=1, ops=("identity", "sep_conv_3x3"))
    actions = space.encode(_genotype())
    reward = rewards.CIFARReward(space, cfg, data=data)
    reward.check()  # given arrays: nothing to load (cfg.data names no file)
    assert reward.arrays() is reward.data
    acc = reward(actions, seed=0)
    assert acc in {k / 20 for k in range(21)}
    # The compiled path ran (the fit path has no first-step timing).
    assert set(reward.last_seconds) == {"build", "first_step", "steps", "evaluate"}
    # the last epoch's mean training loss, kept for stand-alone journals (a ranking signal)
    assert np.isfinite(reward.last_train_loss) and reward.last_train_loss > 0
    # Arrays that are not two (images, labels) pairs are refused, saying what is wanted.
    with pytest.raises(ValueError, match=r"four arrays, \(x_train, y_train, x_val, y_val\)"):
        rewards.CIFARReward(space, cfg, data=data[:2])
    with pytest.raises(ValueError, match="labels must be one integer per image"):
        rewards.CIFARReward(space, cfg, data=(data[0], data[1][:50], data[2], data[3]))
    with pytest.raises(ValueError, match=r"must be \(N, 32, 32, 3\)"):
        rewards.CIFARReward(space, cfg, data=(np.zeros((4, 64, 64, 3)), data[1][:4], data[2], data[3]))
    with pytest.raises(ValueError, match="classes 0-9"):
        rewards.CIFARReward(space, cfg, data=(data[0], data[1] + 20, data[2], data[3]))
    # The proxy's image counts hold for given arrays too, as for the CIFAR-10 split.
    more = (np.concatenate([data[0]] * 2), np.concatenate([data[1]] * 2), data[2], data[3])
    assert [len(a) for a in rewards.CIFARReward(space, cfg, data=more).arrays()] == [100, 100, 20, 20]


def test_children_and_the_training_command_share_one_recipe():
    """The same settings give the training command and a search child the same optimizer: the
    same variables decayed (kernels, not BN scales, offsets or biases), the same schedule."""
    import argparse

    from keras_nasnet import train
    from keras_nasnet.search.rewards import ChildTrainer

    args = train.parser().parse_args(["--out", "unused", "--genotype", _genotype().to_json(),
                                      "--num-cells", "1", "--penultimate-filters", "48",
                                      "--epochs", "3", "--batch-size", "16", "--lr", "0.05",
                                      "--drop-path", "0", "--aux-weight", "0", "--cutout", "0"])
    assert isinstance(args, argparse.Namespace)
    keras.utils.set_random_seed(0)
    model = train.build_training_model(args, steps_per_epoch=7)
    child = ChildTrainer(_tiny(), _cfg(epochs=3, lr=0.05), 7)
    decayed = lambda opt, m: sorted(v.path for v in m.trainable_variables if opt._use_weight_decay(v))  # noqa: E731
    ours, theirs = decayed(child.optimizer, child.model), decayed(model.optimizer, model)
    assert ours == theirs and ours and not any(n in p for p in ours for n in ("gamma", "beta", "bias"))
    assert len(ours) < len(child.model.trainable_variables)
    for step in (0, 10, 20):  # the cosine schedules, step by step
        assert float(child.optimizer._learning_rate(step)) == pytest.approx(float(model.optimizer._learning_rate(step)))


def test_old_search_configs_keep_recipe_1_and_resume_unchanged():
    """A config.json written before the recipe was versioned reads as version 1 and is written
    back byte for byte the same (so its folder resumes); a new one records version 2."""
    from keras_nasnet.search import SearchConfig
    from keras_nasnet.search.rewards import ProxyConfig

    old = {"space": {"num_blocks": 5, "ops": ["identity", "sep_conv_3x3"], "combines": ["add"]},
           "reward": "cifar10", "strategy": "random", "seed": 0,
           "reward_args": {"proxy": {"num_cells": 1, "penultimate_filters": 192, "epochs": 1,
                                     "batch_size": 64, "lr": 0.05, "weight_decay": 0.0005,
                                     "train_images": 10000, "val_images": 5000, "data": None}}}
    config = SearchConfig.from_dict(old)
    assert config.proxy.recipe_version == 1 and config.proxy.training_recipe().version == 1
    assert config.to_dict() == old
    new = SearchConfig(reward="cifar10", strategy="random", proxy=ProxyConfig.preset("cpu")).to_dict()
    assert new["reward_args"]["proxy"]["recipe_version"] == 2
    assert SearchConfig.from_dict(new).proxy == ProxyConfig.preset("cpu")
