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
from ..recipe import RECIPE_VERSION
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
    Children train with :mod:`keras_nasnet.recipe` (``python -m keras_nasnet.train``'s recipe)
    given these values; cutout, drop path and the auxiliary head are off by default (they slow
    what a short training learns). ``recipe_version`` is the recipe the values are meant for.
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
    cutout: int = 0
    drop_path: float = 0.0
    aux_weight: float = 0.0
    recipe_version: int = RECIPE_VERSION
    # None: every child gets about ``penultimate_filters`` (the same width: cells with full
    # convolutions then carry many times NASNet-A's parameters). A number: each child's width is
    # the multiple of its cell's unit whose parameter count is nearest it (:func:`matched_units`).
    match_params: int | None = None

    def training_recipe(self):
        """The :class:`~keras_nasnet.recipe.Recipe` a child trains with: the training command's
        recipe with this proxy's values (gradient clipping at 5 and BN momentum 0.9, as there)."""
        from ..recipe import Recipe

        return Recipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                      weight_decay=self.weight_decay, clip_norm=5.0, drop_path=self.drop_path,
                      aux_weight=self.aux_weight, cutout=self.cutout, bn_momentum=0.9,
                      version=self.recipe_version)

    def record(self) -> dict:
        """The proxy as stored in ``config.json`` and ground-truth rows. A version-1 proxy (one
        written before the recipe was versioned) is written as it was then, so old search
        folders still resume."""
        d = dataclasses.asdict(self)
        if self.match_params is None:
            d.pop("match_params")  # the identity of every folder written before it existed
        if self.recipe_version == 1:
            for k in ("cutout", "drop_path", "aux_weight", "recipe_version"):
                if k == "recipe_version" or not d[k]:
                    d.pop(k)
        return d

    @classmethod
    def from_record(cls, d: dict) -> "ProxyConfig":
        """The inverse of :meth:`record`: a proxy without ``recipe_version`` is version 1."""
        return cls(**{"recipe_version": 1, **d})

    @property
    def budget_name(self) -> str:
        """The budget as the studies name it: ``eE-Nk``, E epochs on the first N thousand
        training images (``e1-15k``); ``eE-N`` when N is not a whole thousand."""
        n = self.train_images
        return f"e{self.epochs}-" + (f"{n // 1000}k" if n % 1000 == 0 else str(n))

    def with_budget(self, budget: str) -> "ProxyConfig":
        """A copy that trains at ``budget`` (``eE-Nk``, e.g. ``"e2-15k"``: 2 epochs on the first
        15,000 training images), every other setting (width rule, recipe) kept. The inverse of
        :attr:`budget_name` for whole thousands; raises ``ValueError`` naming the accepted form.
        Only the canonical spelling is taken (``e1-15k``, not ``e01-15k``): scripts name their
        journal folders after it, and two spellings would be two folders of one budget."""
        import re

        most = (50000 - self.val_images) // 1000  # the training split is what the held-out part leaves
        m = re.fullmatch(r"e([0-9]+)-([0-9]+)k", budget) if isinstance(budget, str) else None
        if not m or int(m[1]) < 1 or not 1 <= int(m[2]) <= most:
            raise ValueError(f"budget {budget!r}: use eE-Nk, E >= 1 epochs on the first N thousand "
                             f"training images (1 <= N <= {most}), e.g. 'e1-30k'.")
        proxy = dataclasses.replace(self, epochs=int(m[1]), train_images=int(m[2]) * 1000)
        if proxy.budget_name != budget:
            raise ValueError(f"budget {budget!r}: write it {proxy.budget_name!r} (eE-Nk, no leading zeros).")
        return proxy

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

    arrays = data_lib.load_cifar10(cfg.data)
    # Stand-alone children record the data's fingerprint (--reuse-children compares it): taken
    # here, from the arrays in hand, it costs a hash instead of a second read of the data.
    data_lib._remember_fingerprint(cfg.data, arrays)
    (x, y), _ = arrays
    try:
        (xtr, ytr), (xval, yval) = data_lib.train_val_split(
            x, y, seed=0, hint="Pass the full CIFAR-10 (50,000 training images) with --data, or try "
                               "the search without data with --reward synthetic.")
    except data_lib.DataError as e:  # too small to hold out: a settings error (exit code 2), as
        from .errors import InvalidSettings  # --val-images of the shared reward

        raise InvalidSettings(f"--data {cfg.data or 'CIFAR-10'}: {e}") from None
    return (xtr[: cfg.train_images], ytr[: cfg.train_images],
            xval[: cfg.val_images], yval[: cfg.val_images])


def _given_arrays(data):
    """``CIFARReward(data=...)``: four arrays, two (images, labels) pairs, each checked."""
    from .. import data as data_lib

    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise ValueError("CIFARReward: data must be four arrays, (x_train, y_train, x_val, y_val); got "
                         f"{type(data).__name__}" + (f" of {len(data)}" if isinstance(data, (tuple, list)) else "")
                         + ".")
    xtr, ytr = data_lib._images_and_labels(data[0], data[1], "CIFARReward (training data)")
    xval, yval = data_lib._images_and_labels(data[2], data[3], "CIFARReward (validation data)")
    if not len(xtr) or not len(xval):
        raise ValueError(f"CIFARReward: data needs training and validation images; got {len(xtr)} and "
                         f"{len(xval)}.")
    # The children are CIFAR-10 networks: 32x32 RGB in, 10 classes out.
    for what, x, y in (("training", xtr, ytr), ("validation", xval, yval)):
        if x.shape[1:] != (32, 32, 3):
            raise ValueError(f"CIFARReward: {what} images must be (N, 32, 32, 3); got {x.shape}.")
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"CIFARReward: {what} labels must be classes 0-9; got {y.min()}-{y.max()}.")
    return xtr, ytr, xval, yval


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


_MATCHED: dict = {}

#: The ``match_params`` target meaning "NASNet-A's parameter count at the proxy's own width"
#: (:func:`nasnet_a_params`): 73,218 for the ``cpu`` proxy.
MATCH_NASNET_A = "nasnet-a"


def nasnet_a_params(num_cells: int, penultimate_filters: int) -> int:
    """Parameters of the :class:`~keras_nasnet.models.NASNetCIFAR` NASNet-A child with
    ``num_cells`` cells per stack at ``penultimate_filters`` (as :func:`fit_units` rounds it): the
    target of ``match_params="nasnet-a"``, which compares every cell with NASNet-A at its size."""
    from ..models import NASNetCIFAR

    key = (MATCH_NASNET_A, num_cells, penultimate_filters)
    if key not in _MATCHED:
        width = fit_units(NASNET_A, penultimate_filters)
        _MATCHED[key] = int(NASNetCIFAR(num_cells, width, genotype=NASNET_A).count_params())
    return _MATCHED[key]


def _quadratic_bracket(count, params: int):
    """``(lo, hi)``, consecutive multiples of the unit with ``count(lo) < params <= count(hi)`` (or
    ``lo = hi = 1`` when one unit already has ``params`` or more), from the parameter count's
    quadratic; ``(None, None)`` where the counts disagree with it.

    Every channel count of the model is a multiple of ``k`` (that is what the unit is for), so
    the count is exactly ``a k^2 + b k + c`` (weights between two widths, and widths alone): three
    counts fix it, and two more check the bracket, where a bisection builds about ten models."""
    c1, c2, c3 = count(1), count(2), count(3)
    if c1 >= params:
        return 1, 1
    a = (c3 - 2 * c2 + c1) / 2
    b = c2 - c1 - 3 * a
    c = c1 - a - b
    if a > 0:
        k = (-b + math.sqrt(b * b - 4 * a * (c - params))) / (2 * a)
    elif b > 0:
        k = (params - c) / b
    else:
        return None, None
    lo = max(1, min(4095, math.floor(k)))
    for lo in (lo, lo - 1, lo + 1):  # the float root can miss the integer by one either way
        if lo >= 1 and count(lo) < params <= count(lo + 1):
            return lo, lo + 1
    return None, None


def matched_units(genotype: Genotype, num_cells: int, params: int) -> int:
    """The ``penultimate_filters`` (a multiple of the genotype's unit, as :func:`fit_units` gives)
    whose :class:`~keras_nasnet.models.NASNetCIFAR` has the parameter count nearest ``params``; at
    least one unit. Compares cells at equal capacity rather than equal width: at the ``cpu``
    proxy's width NASNet-A has 73,218 parameters and random cells of the search space 0.2-4 million.
    Builds about five small models (about a second); remembered per cell."""
    from ..models import NASNetCIFAR, cell_width

    key = (genotype.to_json(), num_cells, params)
    if key not in _MATCHED:
        unit = cell_width(genotype.normal) * 4 * 2
        counts: dict = {}

        def count(k):
            if k not in counts:
                counts[k] = NASNetCIFAR(num_cells, k * unit, genotype=genotype).count_params()
            return counts[k]

        lo, hi = _quadratic_bracket(count, params)
        if lo is None:  # not the quadratic it should be: search the bracket with counts alone
            lo, hi = 1, 1
            while count(hi) < params and hi < 4096:
                lo, hi = hi, hi * 2
            while hi - lo > 1:  # count grows with k: the nearest lies between lo and hi
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if count(mid) < params else (lo, mid)
        best = min((k for k in (lo, hi)), key=lambda k: (abs(count(k) - params), k))
        _MATCHED[key] = best * unit
    return _MATCHED[key]


class CIFARReward(Reward):
    """Trains a child on CIFAR-10 (the 45,000-image split) and returns its held-out accuracy.

    The last trained child stays in ``last_model`` (freed when the next child starts), so that
    :func:`cifar10_test_accuracy` can measure it on the CIFAR-10 test split (the stages' extra metric).
    """

    last_model = None
    last_trainer = None
    #: The last child's mean training loss over its last epoch (the training-speed estimate of
    #: Ru et al., NeurIPS 2021); None before the first child.
    last_train_loss = None

    #: ``"step"``: :class:`ChildTrainer` (TensorFlow); ``"fit"``: compile + fit + predict, the
    #: path the reward had first (always used on JAX and PyTorch).
    trainer = "step"

    def __init__(self, space: SearchSpace, proxy: ProxyConfig, data=None):
        """``space``: the search space the actions are decoded in; ``proxy``: the child's size and
        training (:class:`ProxyConfig`). ``data``: optional ``(x_train, y_train, x_val, y_val)``
        arrays (``(N, 32, 32, 3)`` images of [0, 255] pixels, labels 0-9) to train and score the
        children on instead of the CIFAR-10 split that ``proxy.data`` names: your own images, or
        generated ones for a timing. As with that split, the first ``proxy.train_images`` and
        ``proxy.val_images`` of them are used. They live in this object only; a search's worker
        processes build their rewards from ``proxy`` and load its data."""
        self.space = space
        self.proxy = proxy
        if data is None:
            self.data = None
        else:
            xtr, ytr, xval, yval = _given_arrays(data)
            self.data = (xtr[: proxy.train_images], ytr[: proxy.train_images],
                         xval[: proxy.val_images], yval[: proxy.val_images])

    def check(self) -> None:
        """Loads and checks the data (raising :class:`keras_nasnet.data.DataError` with advice),
        which also fills the on-disk cache that worker processes then read."""
        if self.data is None:
            _load_reward_data(self.proxy)  # not kept: the driver does not need the arrays

    def arrays(self):
        """The ``(x_train, y_train, x_val, y_val)`` the children train and are scored on: the
        ``data`` given, else the held-out split of ``proxy.data`` (loaded once per process)."""
        return self.data if self.data is not None else _reward_data(self.proxy)

    def __call__(self, actions, seed: int = 0) -> float:
        import keras

        from ..models import NASNetCIFAR

        cfg = self.proxy
        genotype = self.space.decode(actions)
        xtr, ytr, xval, yval = self.arrays()
        start = time.perf_counter()
        try:
            width = fit_units(genotype, cfg.penultimate_filters) if cfg.match_params is None else \
                matched_units(genotype, cfg.num_cells, cfg.match_params)
        except ValueError as e:
            raise ChildFailed(f"cannot build: {e}") from None
        # A worker trains child after child: drop the previous child's graph and layers, which
        # otherwise pile up (measured: 4 GB per worker after 10 children, each slower than the last).
        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(seed)
        try:
            recipe = cfg.training_recipe()
            model = NASNetCIFAR(cfg.num_cells, width, genotype=genotype, bn_momentum=recipe.bn_momentum,
                                drop_path_rate=recipe.drop_path, auxiliary_head=recipe.aux_weight > 0)
        except ValueError as e:
            raise ChildFailed(f"cannot build: {e}") from None
        self.last_model, self.last_trainer, self.last_train_loss = model, None, None
        # Where the child's time went, for benchmarks/children.py.
        self.last_seconds = {"build": time.perf_counter() - start}
        if keras.backend.backend() != "tensorflow" or self.trainer == "fit":
            accuracy, self.last_train_loss = _train_with_fit(model, cfg, xtr, ytr, xval, yval, seed)
            return accuracy
        trainer = self.last_trainer = ChildTrainer(model, cfg, math.ceil(len(xtr) / cfg.batch_size))
        for epoch in range(cfg.epochs):
            loss = trainer.train_epoch(xtr, ytr, seed, epoch)
            if not np.isfinite(loss):
                raise ChildFailed("NaN loss")
        self.last_train_loss = loss
        t = time.perf_counter()
        accuracy = trainer.accuracy(xval, yval)
        self.last_seconds.update(trainer.seconds, evaluate=time.perf_counter() - t)
        return accuracy


def _train_with_fit(model, cfg: ProxyConfig, xtr, ytr, xval, yval, seed: int) -> tuple[float, float]:
    """The reward's first training path: ``compile`` + ``fit`` on the tf.data (TensorFlow) or
    NumPy pipeline + ``predict``. Used on JAX and PyTorch, and kept reachable on TensorFlow
    (``CIFARReward.trainer = "fit"``) so benchmarks/children.py compares both in one run.
    Returns the held-out accuracy and the last epoch's mean training loss."""
    import keras

    from .. import augment_numpy
    from .. import data as data_lib

    from ..recipe import set_drop_path_progress

    recipe = cfg.training_recipe()
    recipe.compile(model, math.ceil(len(xtr) / cfg.batch_size))
    make = data_lib.make_dataset if keras.backend.backend() == "tensorflow" else augment_numpy.make_dataset
    outputs = 2 if recipe.aux_weight > 0 else 1
    for epoch in range(cfg.epochs):
        set_drop_path_progress(model, recipe.drop_path_progress(epoch))
        ds = make(xtr, ytr, cfg.batch_size, True, seed, epoch, recipe.cutout, outputs)
        # shuffle=False: the dataset is already shuffled per (seed, epoch); Keras' default
        # shuffle=True would only print that it ignores it, once per child.
        hist = model.fit(ds, epochs=1, verbose=0, shuffle=False)
        if not np.isfinite(hist.history["loss"][-1]):
            raise ChildFailed("NaN loss")
    probs = model.predict(xval.astype("float32"), batch_size=500, verbose=0)
    probs = probs[0] if isinstance(probs, (list, tuple)) else probs
    return float(np.mean(np.argmax(probs, 1) == yval)), float(hist.history["loss"][-1])


class ChildTrainer:
    """Trains and scores one proxy child with one compiled training step and no ``fit``.

    What ``model.compile(SGD, "sparse_categorical_crossentropy")`` + ``fit`` + ``predict`` did,
    with the same optimizer, schedule, loss and batches in the same ``(seed, epoch)`` order, but:

    * one ``tf.function`` training step with a ``None`` batch dimension, traced once (``fit``
      traces its step again for the smaller last batch) and without metrics;
    * batches augmented in NumPy (pad 4 and random crop, flip, the recipe's cutout) on the
      training thread: a tf.data pipeline on the same single core took time from the step;
    * evaluation by one traced inference function (argmax in the graph), without ``predict``'s
      machinery.

    The crops and flips are drawn from NumPy's generator instead of TensorFlow's stateless ops:
    the same distribution, not the same crops (see :mod:`keras_nasnet.augment_numpy`).
    On TensorFlow only; other backends use ``fit``.
    """

    def __init__(self, model, cfg: ProxyConfig, steps_per_epoch: int):
        import keras

        self.model, self.cfg = model, cfg
        self.recipe = cfg.training_recipe()
        self.optimizer = self.recipe.optimizer(steps_per_epoch)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy()
        self._step = self._predict = None
        #: ``first_step`` (trace included) and ``steps`` (all the others), in seconds.
        self.seconds = {"first_step": 0.0, "steps": 0.0}

    def _make_step(self):
        import tensorflow as tf

        model, opt, loss_fn = self.model, self.optimizer, self.loss_fn
        aux_weight = self.recipe.aux_weight
        opt.build(model.trainable_variables)  # no variables may be created inside the step

        variables = model.trainable_variables
        momenta = [m.value for m in opt.momentums]  # built for `variables`, in their order
        if len(momenta) != len(variables):
            raise RuntimeError("the optimizer's momentum variables do not match the model's weights")

        def step(x, y):
            # Keras' TensorFlow train_step, less its metrics: loss + regularisation losses,
            # gradients of the trainable weights, then the optimizer's update.
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                if aux_weight > 0:  # main and auxiliary outputs, as compile's loss_weights
                    loss = loss_fn(y, out[0]) + aux_weight * loss_fn(y, out[1])
                else:
                    loss = loss_fn(y, out)
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            self._apply(tape.gradient(loss, variables), variables, momenta)
            return loss

        spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int64))
        # autograph=False: the step has no tensor-dependent Python control flow, and converting
        # every layer's code cost time at trace (Python trace 7-12 s instead of 12.5-13 s for a
        # NASNet-A child on a shared core).
        return tf.function(step, input_signature=spec, jit_compile=False, autograph=False)

    def _apply(self, grads, variables, momenta):
        """``optimizer.apply(grads, variables)`` of the proxy's SGD, as fewer graph ops.

        Keras' optimizer adds ~43 ops per weight to the graph (the learning-rate schedule again
        for every weight, distribution-strategy wrappers), 72% of a NASNet-A child's 14,000-op
        training step; tracing and optimizing those took more time than the child's first 50
        steps. The same update here: global-norm clipping, decoupled weight decay
        ``w -= w * wd * lr`` on every weight, then Keras' (Nesterov) momentum in one fused op per
        weight. ``tests/test_child_trainer.py`` checks it against ``fit``.
        """
        import tensorflow as tf

        opt = self.optimizer
        lr = tf.cast(opt.learning_rate, tf.float32)  # the schedule at this step, once
        if opt.global_clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, opt.global_clipnorm)
        decay = lr * opt.weight_decay if opt.weight_decay else None
        for kv, m, g in zip(variables, momenta, grads):
            v = kv.value  # the tf.Variable behind the Keras variable
            if decay is not None and opt._use_weight_decay(kv):
                v.assign_sub(v * decay)
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=v.handle, accum=m.handle, lr=lr, grad=g, momentum=tf.constant(opt.momentum, tf.float32),
                use_nesterov=bool(opt.nesterov))
        opt.iterations.assign_add(1)

    def train_epoch(self, x, y, seed: int, epoch: int) -> float:
        """One epoch over ``(x, y)`` in ``(seed, epoch)`` order; returns the mean step loss."""
        from ..augment_numpy import CIFARBatches

        if self._step is None:
            self._step = self._make_step()
        from ..recipe import set_drop_path_progress

        set_drop_path_progress(self.model, self.recipe.drop_path_progress(epoch))
        batches = CIFARBatches(x, y, self.cfg.batch_size, True, seed, epoch, cutout=self.recipe.cutout)
        losses = []
        for i in range(len(batches)):
            t = time.perf_counter()
            losses.append(float(self._step(*self._batch(batches, i))))
            first = not self.seconds["first_step"]
            self.seconds["first_step" if first else "steps"] += time.perf_counter() - t
        return float(np.mean(losses))

    @staticmethod
    def _batch(batches, i):
        xb, yb = batches[i]
        return xb, np.asarray(yb, np.int64)

    def accuracy(self, x, y, batch_size: int = 500) -> float:
        """Top-1 accuracy on uint8 images ``x``, labels ``y``, with the model in inference mode."""
        import tensorflow as tf

        if self._predict is None:
            # Traced once (None batch): ~4x cheaper than tracing the training step, and the
            # forward pass runs ~3x faster than eagerly. Batches of 500 as predict used; 1,000
            # was slower on one core.
            model = self.model
            spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
            def predict(t):
                out = model(t, training=False)
                return tf.argmax(out[0] if isinstance(out, (list, tuple)) else out, -1)

            self._predict = tf.function(predict,
                                        input_signature=(spec,), jit_compile=False, autograph=False)
        correct = 0
        for start in range(0, len(x), batch_size):
            pred = self._predict(x[start:start + batch_size].astype("float32")).numpy()
            correct += int(np.sum(pred == y[start:start + batch_size]))
        return correct / len(x)


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
    yt = np.asarray(yt).ravel()
    trainer = getattr(reward, "last_trainer", None)
    if trainer is not None and trainer.model is reward.last_model:
        return trainer.accuracy(xt, yt)  # the child's traced inference function, no new trace
    probs = reward.last_model.predict(xt.astype("float32"), batch_size=500, verbose=0)
    probs = probs[0] if isinstance(probs, (list, tuple)) else probs
    return float(np.mean(np.argmax(probs, 1) == yt))
