"""Child rewards: a synthetic one with a known optimum, and CIFAR-10 proxy training.

A reward function takes ``(actions, seed)`` and returns a float. It raises :class:`ChildFailed` when
the child's architecture fails (cannot be built, NaN loss): the child then gets the documented
failure reward. Any other exception is an infrastructure failure and the trial is run again. Both
rewards here implement :class:`~keras_nasnet.search.base.Reward`. The
``cifar10`` reward builds the child with the factory, trains it on the paper's 45,000-image split
and returns its accuracy on the 5,000 held-out images.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..genotypes import NASNET_A, Genotype
from .base import Reward
from .space import SearchSpace


class SyntheticReward(Reward):
    """A cheap reward whose optimum is a known genotype (NASNet-A by default).

    ``reward = (1 - interaction) * matched_decisions / all_decisions
    + interaction * fully_matched_blocks / all_blocks``. A block matches the target's block at the
    same position up to swapping its two halves (the better of both orders counts). The second,
    non-separable term pays only when all five decisions of a block are right together. The
    optimum, 1.0, is reached exactly by the target's blocks.
    """

    def __init__(self, space: SearchSpace, target: Genotype = NASNET_A, interaction: float = 0.2,
                 delay: float = 0.0):
        self.space = space
        self.interaction = float(interaction)
        self.delay = float(delay)  # seconds of simulated child training (executor tests, benchmarks)
        t = np.asarray(space.encode(target)).reshape(-1, 5)
        self._target = t
        self._swapped = t[:, [1, 0, 3, 2, 4]]

    def block_matches(self, actions) -> np.ndarray:
        """Matched decisions per block (0..5), the better of the two half orders."""
        a = np.asarray(actions).reshape(-1, 5)
        return np.maximum((a == self._target).sum(1), (a == self._swapped).sum(1))

    def __call__(self, actions, seed: int = 0) -> float:
        if self.delay:
            time.sleep(self.delay)
        m = self.block_matches(actions)
        frac = m.sum() / self.space.num_decisions
        full = (m == 5).mean()
        return float((1 - self.interaction) * frac + self.interaction * full)

    def solved(self, actions) -> bool:
        """Whether all blocks equal the target's (each up to swapping its halves)."""
        return bool((self.block_matches(actions) == 5).all())


@dataclasses.dataclass
class ProxyConfig:
    """The child-training proxy of the ``cifar10`` reward.

    The paper trains each child 20 epochs with N=2 (filters not stated). The ``cpu`` preset is
    what a 2-core machine can afford per child; ``paper`` is the paper's schedule with F=32.
    """

    num_cells: int = 1
    penultimate_filters: int = 192  # F = 8 for NASNet-A-shaped cells
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    train_images: int = 45000
    val_images: int = 5000
    data: str | None = None

    @classmethod
    def preset(cls, name: str, **overrides) -> "ProxyConfig":
        """``cpu`` (1 cell per stack, F=8, 1 epoch on 10,000 images) or ``paper`` (N=2, 20 epochs)."""
        presets = {
            "cpu": dict(num_cells=1, penultimate_filters=192, epochs=1, train_images=10000,
                        val_images=5000),
            "paper": dict(num_cells=2, penultimate_filters=768, epochs=20, train_images=45000,
                          val_images=5000, batch_size=32, lr=0.025),
        }
        if name not in presets:
            raise ValueError(f"Unknown proxy preset {name!r}; choose from {', '.join(presets)}.")
        return cls(**{**presets[name], **{k: v for k, v in overrides.items() if v is not None}})


class ChildFailed(RuntimeError):
    """The child's architecture failed: it cannot be built, or its loss or reward is not finite."""


_DATA_CACHE: dict = {}


def _load_reward_data(cfg: ProxyConfig):
    from .. import data as data_lib

    (x, y), _ = data_lib.load_cifar10(cfg.data)
    (xtr, ytr), (xval, yval) = data_lib.train_val_split(x, y, seed=0, hint="Pass the full data set with --data.")
    return (xtr[: cfg.train_images], ytr[: cfg.train_images],
            xval[: cfg.val_images], yval[: cfg.val_images])


def _reward_data(cfg: ProxyConfig):
    key = (cfg.data, cfg.train_images, cfg.val_images)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = _load_reward_data(cfg)
    return _DATA_CACHE[key]


def fit_units(genotype: Genotype, penultimate_filters: int) -> int:
    """Rounds ``penultimate_filters`` to the nearest multiple the genotype's normal cell allows, so
    every sampled child (whatever its output width) gets about the same capacity."""
    from ..models import cell_width

    unit = cell_width(genotype.normal) * 4 * 2  # filter_multiplier 2, even widths
    return max(unit, int(round(penultimate_filters / unit)) * unit)


class CIFARReward(Reward):
    """Trains a child on CIFAR-10 (the 45,000-image split) and returns its held-out accuracy.

    The last trained child stays in ``last_model`` (freed when the next child starts), so that
    :func:`cifar10_test_accuracy` can measure it on the CIFAR-10 test split (the stages' extra metric).
    """

    last_model = None

    def __init__(self, space: SearchSpace, proxy: ProxyConfig):
        self.space = space
        self.proxy = proxy

    def check(self) -> None:
        """Loads and checks the data (raising :class:`keras_nasnet.data.DataError` with advice),
        which also fills the on-disk cache that worker processes then read."""
        _load_reward_data(self.proxy)  # not kept: the driver does not need the arrays

    def __call__(self, actions, seed: int = 0) -> float:
        import keras

        from .. import data as data_lib
        from ..models import NASNetCIFAR

        cfg = self.proxy
        genotype = self.space.decode(actions)
        xtr, ytr, xval, yval = _reward_data(cfg)
        # A worker trains child after child: drop the previous child's graph and layers, which
        # otherwise pile up (measured: 4 GB per worker after 10 children, each slower than the last).
        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(seed)
        try:
            model = NASNetCIFAR(cfg.num_cells, fit_units(genotype, cfg.penultimate_filters),
                                genotype=genotype, bn_momentum=0.9)
        except ValueError as e:
            raise ChildFailed(f"cannot build: {e}") from None
        self.last_model = model
        steps = math.ceil(len(xtr) / cfg.batch_size)
        opt = keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(cfg.lr, cfg.epochs * steps),
            momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, global_clipnorm=5.0)
        model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
        for epoch in range(cfg.epochs):
            ds = data_lib.make_dataset(xtr, ytr, cfg.batch_size, True, seed, epoch, cutout=0)
            # shuffle=False: the dataset is already shuffled per (seed, epoch); Keras' default
            # shuffle=True would only print that it ignores it, once per child.
            hist = model.fit(ds, epochs=1, verbose=0, shuffle=False)
            if not np.isfinite(hist.history["loss"][-1]):
                raise ChildFailed("NaN loss")
        probs = model.predict(xval.astype("float32"), batch_size=500, verbose=0)
        return float(np.mean(np.argmax(probs, 1) == yval))


_TEST_CACHE: dict = {}


def _test_data(source):
    if source not in _TEST_CACHE:
        from .. import data as data_lib

        _TEST_CACHE[source] = data_lib.load_cifar10(source)[1]
    return _TEST_CACHE[source]


def cifar10_test_accuracy(reward: CIFARReward) -> float:
    """Accuracy of ``reward.last_model`` on the CIFAR-10 test split (10,000 images). Kept apart
    from the training code on purpose: it only reads the trained model."""
    if reward.last_model is None:
        raise RuntimeError("cifar10_test_accuracy() needs a trained child: call the reward first.")
    xt, yt = _test_data(reward.proxy.data)
    probs = reward.last_model.predict(xt.astype("float32"), batch_size=500, verbose=0)
    return float(np.mean(np.argmax(probs, 1) == np.asarray(yt).ravel()))
