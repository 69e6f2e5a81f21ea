"""The ``cifar10-shared`` reward: children scored as paths through one trained supernet.

Unlike the stand-alone ``cifar10`` reward this one keeps state between children: it runs in the
search's process (no worker pool) and checkpoints the supernet into the search folder, through the
hooks of :class:`~keras_nasnet.search.base.Reward`:

* ``bind(out_dir, progress)``: called once before the first child, with the search folder (restore a
  checkpoint from it) and whether to draw progress bars;
* ``close()``: called when the search stops (write a last checkpoint).

Build one with :meth:`SharedWeightsReward.new`, or load a search's trained supernet with
:meth:`SharedWeightsReward.from_run`.

The schedule has two phases, decided by ``warmup_epochs`` and ``steps_per_child``:

1. before the first reward, the supernet trains ``warmup_epochs`` epochs, each step on one child
   drawn uniformly (every op's weights see every kind of neighbour);
2. each child's reward is its accuracy on held-out images with the shared weights, BatchNorm in
   training mode (batch statistics, as ENAS does: a path's own statistics without recalibration).
   With ``steps_per_child > 0`` the supernet also trains that many steps on the child's path before
   scoring it (ENAS-style alternation; the rewards then drift as the supernet changes).

The default (``steps_per_child=0``: a frozen supernet) is the measured choice, see ``search/shared/README.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .._cli import stop_signals
from .base import Reward
from .space import SearchSpace

CHECKPOINT = "supernet.npz"


@dataclasses.dataclass
class SharedConfig:
    """Supernet and schedule settings of the ``cifar10-shared`` reward (part of the search's identity)."""

    num_cells: int = 1
    # F=8 and 500 reward images: the default 10 supernet epochs took 104 minutes on one CPU core
    # here and a reward about 1.2 s, so 2,000 children add about 40 minutes (F=16, about 24
    # images per CPU-second, would need about 5 hours for the supernet alone).
    filters: int = 8
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 3e-4
    warmup_epochs: float = 10.0
    steps_per_child: int = 0
    train_images: int = 45000
    val_images: int = 5000
    reward_images: int = 500
    data: str | None = None
    checkpoint_seconds: float = 300.0

    def validate(self, space: SearchSpace) -> None:
        """Raises :class:`~keras_nasnet.search.errors.InvalidSettings` (a ``ValueError``) for
        settings the supernet cannot run with ``space``, before anything is built or written."""
        from .config import _nonnegative, _positive, _positive_int
        from .errors import InvalidSettings

        if "concat" in space.combines:
            raise InvalidSettings("The cifar10-shared reward searches add-only cells; use a space "
                                  "with combines=('add',).")
        if isinstance(self.filters, bool) or not isinstance(self.filters, int) or self.filters < 2 or self.filters % 2:
            # The supernet would refuse it too, but only when the first child is scored: every
            # child would then fail instead of the command saying what to change.
            raise InvalidSettings(f"--supernet-filters must be an even number >= 2 (factorized "
                                  f"reductions split it in halves); got {self.filters!r}.")
        for name in ("num_cells", "batch_size", "train_images", "val_images", "reward_images"):
            _positive_int(f"shared.{name}", getattr(self, name))
        if self.reward_images > self.val_images:
            raise InvalidSettings(f"--reward-images ({self.reward_images}) cannot exceed --val-images "
                                  f"({self.val_images}), the held-out images it is drawn from.")
        _positive("shared.lr", self.lr)
        for name in ("warmup_epochs", "checkpoint_seconds", "weight_decay"):
            _nonnegative(f"shared.{name}", getattr(self, name))
        if (isinstance(self.steps_per_child, bool) or not isinstance(self.steps_per_child, int)
                or self.steps_per_child < 0):
            raise InvalidSettings(f"--steps-per-child must be an integer >= 0; got {self.steps_per_child!r}.")


class SharedWeightsReward(Reward):
    """Scores a child by its held-out accuracy as a path through a shared-weights supernet.

    Build one with :meth:`new` (or the constructor), or load a search folder's trained supernet
    with :meth:`from_run`. The supernet itself is ``.net`` (a
    :class:`~keras_nasnet.search.supernet.Supernet`, ``None`` until :meth:`build`);
    :func:`~keras_nasnet.search.supernet.inherit_weights` takes this reward or ``.net``.
    """

    in_process = True  # the supernet lives in the search's process

    @classmethod
    def new(cls, space: SearchSpace | None = None, seed: int = 0, **settings) -> "SharedWeightsReward":
        """A reward with an untrained supernet. ``space``: default B=5, all 13 ops, add-only;
        ``settings``: :class:`SharedConfig` fields (``filters=8``, ``data=...``)."""
        from ..genotypes import OPS

        return cls(space or SearchSpace(5, OPS, ("add",)), SharedConfig(**settings), seed=seed)

    @classmethod
    def from_run(cls, out_dir, data: str | None = None, trained: bool = True) -> "SharedWeightsReward":
        """The trained supernet of the ``cifar10-shared`` search in ``out_dir``, with that search's
        settings (``data``: another path to the same data set). With ``trained`` a supernet that
        has not finished its uniform-path training is refused. Nothing is written back to the
        folder; call :meth:`bind` to make it the folder's checkpointing reward."""
        from .config import SearchConfig
        from .errors import SearchError

        out_dir = Path(out_dir)
        config = SearchConfig.load(out_dir)
        if config.reward != "cifar10-shared":
            raise SearchError(f"{out_dir} holds a {config.reward} search, not a cifar10-shared one.")
        if not (out_dir / CHECKPOINT).exists():
            raise SearchError(f"{out_dir} has no {CHECKPOINT} yet: its search has not trained the "
                              "supernet (run or resume it first).")
        shared = config.shared if data is None else dataclasses.replace(config.shared, data=data)
        reward = cls(config.space, shared, seed=config.seed)
        reward.build()
        reward.restore(out_dir / CHECKPOINT)
        if trained and reward.step < reward.warmup_steps:
            raise SearchError(f"{out_dir}: the supernet has trained {reward.step} of "
                              f"{reward.warmup_steps} steps; let the search finish its warm-up first.")
        return reward

    def __init__(self, space: SearchSpace, config: SharedConfig, seed: int = 0):
        config.validate(space)
        self.space, self.config, self.seed = space, config, seed
        self.net = None
        self.step = 0
        self.out: Path | None = None
        self.progress = False
        self._saved_at = time.time()
        self._data = None
        self._mid_step = False
        # CPU-seconds of the uniform-path (warm-up) training so far, over every run of this search
        # (checkpointed; None after restoring a checkpoint of a version that did not count them),
        # and the CPU time of warm-ups since take_setup_cost last ran.
        self.train_cpu_seconds: float | None = 0.0
        self._setup_cpu = 0.0
        # First held-out image a child is scored on: the stages' re-scoring scores on images
        # the search's rewards never saw (see stages.py), so a cell picked for a lucky reward
        # is not re-scored on the same luck.
        self.score_from = 0

    # -- the search loop's hooks -------------------------------------------------------------
    def bind(self, out_dir, progress: bool = False) -> None:
        """Uses ``out_dir`` for checkpoints and restores the supernet saved there, if any."""
        self.out = Path(out_dir)
        self.progress = progress
        if (self.out / CHECKPOINT).exists():
            self._ensure_built()
            self.restore(self.out / CHECKPOINT)

    def check(self) -> None:
        """Loads and checks the data before anything is written (raising
        :class:`keras_nasnet.data.DataError` with advice), filling the on-disk cache."""
        if self._data is None:
            from .. import data as data_lib

            (x, _), _ = data_lib.load_cifar10(self.config.data)
            self.check_size(len(x))

    def check_size(self, images: int) -> None:
        """Refuses a data set of ``images`` training images too small for ``val_images`` (raises
        :class:`~keras_nasnet.search.errors.InvalidSettings` naming the flag)."""
        from .errors import InvalidSettings

        c = self.config
        if c.val_images >= images:
            raise InvalidSettings(
                f"--val-images {c.val_images} holds out at least as many images as the data set has "
                f"({images} training images in {c.data or 'CIFAR-10'}), leaving none to train the "
                f"supernet: pass a smaller --val-images (at most {images - 1}; --reward-images "
                "at most that) or a larger data set.")

    def close(self) -> None:
        """Writes a last checkpoint, unless a step was cut in the middle (an exception other than
        a held Ctrl-C, or an interrupt outside the main thread): then the last whole-step
        checkpoint stays, and the resumed run repeats the steps since."""
        if self.net is not None and self.out is not None and not self._mid_step:
            self.save(self.out / CHECKPOINT)

    def __call__(self, actions, seed: int = 0) -> float:
        self._ensure_built()
        self.warm_up()
        if self.config.steps_per_child:
            self.train(self.config.steps_per_child, path=actions)
        self._maybe_checkpoint()
        return self.accuracy(actions, start=self.score_from)

    # -- training and scoring ----------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        """Supernet steps in one pass over the training images."""
        return math.ceil(min(self.config.train_images, len(self.data()[0])) / self.config.batch_size)

    @property
    def warmup_steps(self) -> int:
        """Steps of the uniform-path phase."""
        return int(round(self.config.warmup_epochs * self.steps_per_epoch))

    def data(self):
        """``(x_train, y_train, x_val, y_val)``: the paper's seeded split with ``val_images`` held
        out (5,000: the paper's 45,000/5,000), the training part cut to ``train_images``."""
        if self._data is None:
            from .. import data as data_lib

            c = self.config
            (x, y), _ = data_lib.load_cifar10(c.data)
            (xtr, ytr), (xval, yval) = data_lib.train_val_split(x, y, val_size=c.val_images, seed=0)
            self._data = (xtr[:c.train_images], ytr[:c.train_images], xval, yval)
        return self._data

    def set_data(self, x_train, y_train, x_val, y_val) -> None:
        """Uses these arrays instead of loading CIFAR-10 (tests, other datasets)."""
        self._data = (x_train, y_train, x_val, y_val)

    def build(self) -> None:
        """Builds the supernet and its optimizer (seeded; a no-op once built)."""
        self._ensure_built()

    def _ensure_built(self):
        if self.net is not None:
            return
        import keras

        from .supernet import PathSGD, Supernet

        keras.utils.set_random_seed(self.seed)
        c = self.config
        self.net = Supernet(self.space, c.num_cells, c.filters)
        self.optimizer = PathSGD(self.net, momentum=0.9, weight_decay=c.weight_decay, clipnorm=5.0)

    def learning_rate(self, step: int) -> float:
        """Cosine decay to 0 over the warm-up; then the final warm-up rate's floor (5% of ``lr``)."""
        c = self.config
        t = min(1.0, step / max(1, self.warmup_steps))
        lr = 0.5 * c.lr * (1 + math.cos(math.pi * t))
        return max(lr, 0.05 * c.lr) if c.steps_per_child else lr

    def _batch(self, step: int):
        """Training batch ``step``: a seeded shuffle per epoch and the paper's pad-4 crop and flip,
        so a resumed supernet sees the batches an uninterrupted one would."""
        xtr, ytr = self.data()[:2]
        n = min(len(xtr), self.config.train_images)
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        idx = order[k * self.config.batch_size:(k + 1) * self.config.batch_size]
        rng = np.random.default_rng([self.seed, 1, step])
        padded = np.pad(xtr[idx], [(0, 0), (4, 4), (4, 4), (0, 0)])
        dy, dx = rng.integers(0, 9, (2, len(idx)))
        flip = rng.random(len(idx)) < 0.5
        h, w = xtr.shape[1:3]
        x = np.stack([p[a:a + h, b:b + w][:, ::-1 if f else 1] for p, a, b, f in zip(padded, dy, dx, flip)])
        return x.astype(np.float32), ytr[idx]

    def _train_step(self, x, y, path, learning_rate: float):
        import keras
        import tensorflow as tf

        with tf.GradientTape() as tape:
            probs = self.net(x, path, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs))
        self.optimizer.minimize(tape, loss, self.net.parts_of(path), learning_rate)
        return loss

    def train(self, steps: int, path=None, bar=None) -> float:
        """``steps`` supernet steps, each on ``path`` or (None) on a uniformly drawn child."""
        self._ensure_built()
        loss = float("nan")
        for _ in range(steps):
            cpu_start = time.process_time()
            # A step is all or nothing: a Ctrl-C waits for it to end, so the checkpoint written
            # on the way out holds whole steps and the resumed run repeats none of them.
            with _interrupts_held():
                self._mid_step = True
                arc = path if path is not None else self.space.sample_uniform(
                    np.random.default_rng([self.seed, 7, self.step]))[0]
                x, y = self._batch(self.step)
                loss = float(self._train_step(x, y, arc, self.learning_rate(self.step)))
                if not math.isfinite(loss):
                    raise FloatingPointError(f"supernet loss is {loss} at step {self.step}; lower --lr.")
                self.step += 1
                self._mid_step = False
                if path is None and self.train_cpu_seconds is not None:
                    self.train_cpu_seconds += time.process_time() - cpu_start
            cpu_start = time.process_time()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=f"{self.step / self.steps_per_epoch:.2f}", loss=f"{loss:.3f}")
            self._maybe_checkpoint()
            # the uniform-path training's cost, its checkpoints included; steps on one child's path
            # (steps_per_child) are that child's cost and stay in its record's cpu_seconds
            if path is None and self.train_cpu_seconds is not None:
                self.train_cpu_seconds += time.process_time() - cpu_start
        return loss

    def warm_up(self) -> None:
        """Trains the uniform-path phase up to ``warmup_steps`` (continuing a restored supernet)."""
        self._ensure_built()
        todo = self.warmup_steps - self.step
        if todo <= 0:
            return
        cpu_start = time.process_time()
        try:
            self._warm_up(todo)
        finally:
            self._setup_cpu += time.process_time() - cpu_start

    def take_setup_cost(self) -> dict:
        """The supernet's training inside the last call (``setup_cpu_seconds``) and its running
        total over the whole search (``supernet_cpu_seconds``, when known): see
        :meth:`Reward.take_setup_cost`."""
        if not self._setup_cpu:
            return {}
        cost = {"setup_cpu_seconds": self._setup_cpu}
        if self.train_cpu_seconds is not None:
            cost["supernet_cpu_seconds"] = self.train_cpu_seconds
        self._setup_cpu = 0.0
        return cost

    def _warm_up(self, todo: int) -> None:
        bar = None
        from .._cli import live_stderr

        if self.progress and live_stderr():  # in a log file, the one-line-per-epoch form below
            from tqdm import tqdm

            bar = tqdm(total=self.warmup_steps, initial=self.step, unit="step", dynamic_ncols=True,
                       desc=f"supernet ({self.config.warmup_epochs:g} epochs)", file=sys.stderr)
        try:
            if bar is not None:
                self.train(todo, bar=bar)
            else:  # without bars (--no-progress, logs), one line per supernet epoch
                while self.step < self.warmup_steps:
                    epoch = self.step // self.steps_per_epoch
                    chunk = min(self.warmup_steps, (epoch + 1) * self.steps_per_epoch) - self.step
                    started, loss = time.time(), self.train(chunk)
                    print(f"supernet: step {self.step}/{self.warmup_steps} (epoch "
                          f"{self.step / self.steps_per_epoch:.2f}), last loss {loss:.3f}, "
                          f"{chunk * self.config.batch_size / (time.time() - started):.0f} images/s",
                          file=sys.stderr, flush=True)
        finally:
            if bar is not None:
                bar.close()
        if self.out is not None:
            self.save(self.out / CHECKPOINT)

    def accuracy(self, actions, images: int | None = None, start: int = 0) -> float:
        """Accuracy of the path ``actions`` on ``images`` held-out images (default:
        ``reward_images``) from held-out image ``start`` on, BatchNorm on the batch statistics
        of each 500-image chunk."""
        return self.evaluate(actions, images, start)["accuracy"]

    def evaluate(self, actions, images: int | None = None, start: int = 0) -> dict:
        """:meth:`accuracy`'s images scored two ways: ``{"accuracy", "loss"}``, the loss being the
        mean cross-entropy of the true labels (a continuous score: it separates paths whose
        accuracies tie on a few hundred images)."""
        import tensorflow as tf

        self._ensure_built()
        xval, yval = self.data()[2:]
        if not 0 <= start < len(xval):
            raise ValueError(f"start={start}: the held-out split has {len(xval)} images.")
        stop = min(len(xval), start + (images or self.config.reward_images))
        hits, nll = 0, 0.0
        for s in range(start, stop, 500):
            e = min(stop, s + 500)
            probs = self.net(tf.constant(xval[s:e], tf.float32), actions, training=True).numpy()
            labels = np.asarray(yval[s:e]).ravel().astype(int)
            hits += int(np.sum(np.argmax(probs, -1) == labels))
            # float64 and a floor: a path sure of a wrong class must cost a finite loss
            nll -= float(np.sum(np.log(np.maximum(probs[np.arange(e - s), labels].astype("float64"), 1e-12))))
        return {"accuracy": hits / (stop - start), "loss": nll / (stop - start)}

    # -- checkpoints -------------------------------------------------------------------------
    def _maybe_checkpoint(self):
        if self.out is not None and time.time() - self._saved_at > self.config.checkpoint_seconds:
            self.save(self.out / CHECKPOINT)

    def save(self, path) -> None:
        """Atomically writes the supernet's variables, the optimizer's and the step counter."""
        from ..fileio import savez_atomic

        arrays = {f"w{i}": np.asarray(v.numpy()) for i, v in enumerate(self.net.variables)}
        arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        calls = {**self.net.call_counts(), **self.optimizer.call_counts()}
        if self.train_cpu_seconds is not None:
            arrays["cpu_seconds"] = np.asarray(self.train_cpu_seconds)
        savez_atomic(path, step=np.asarray(self.step), calls=np.asarray(json.dumps(calls)), **arrays)
        self._saved_at = time.time()

    def restore(self, path) -> None:
        """Loads :meth:`save` output into the (built) supernet and optimizer."""
        from .errors import StateCorrupt

        try:
            with np.load(path) as z:
                if sum(k.startswith("w") for k in z.files) != len(self.net.variables):
                    raise StateCorrupt(f"{path} was written by another supernet; choose a new --out.")
                for i, v in enumerate(self.net.variables):
                    v.assign(z[f"w{i}"])
                for i, v in enumerate(self.optimizer.variables):
                    v.assign(z[f"o{i}"])
                self.step = int(z["step"])
                # absent in checkpoints of older versions: the total is then unknown
                self.train_cpu_seconds = float(z["cpu_seconds"]) if "cpu_seconds" in z.files else None
                if "calls" in z.files:  # absent in checkpoints of older versions
                    calls = json.loads(str(z["calls"]))
                    self.net.set_call_counts(calls)
                    self.optimizer.set_call_counts(calls)
        except StateCorrupt:
            raise
        except Exception as e:  # a cut zip, a missing array, a wrong shape
            raise StateCorrupt(
                f"{path} is damaged ({type(e).__name__}: {e}). It holds the trained supernet: delete "
                "it and run the same command again to train the supernet again from the start (the "
                "recorded trials are kept; with the default --steps-per-child 0 the seeded training ends"
                " with the same weights)."
            ) from None


@contextlib.contextmanager
def _interrupts_held():
    """Holds a Ctrl-C (SIGINT), or a SIGTERM where the command line made it one, that arrives inside
    the block and raises it when the block ends.

    Only in the main thread (the only one Python delivers signals to) and only for signals whose
    handler raises ``KeyboardInterrupt``; anything else (a custom handler, a thread) is left as it is.
    """
    signums = stop_signals() if threading.current_thread() is threading.main_thread() else []
    if not signums:
        yield
        return
    held = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if held:
        raise KeyboardInterrupt
