"""The CIFAR-10 training recipe, defined once: ``python -m keras_nasnet.train`` and every child the
search trains stand-alone (``keras_nasnet.search``'s ``cifar10`` reward and its stages) take their
optimizer, schedule, weight decay, losses, drop-path ramp and augmentation from here.

A :class:`Recipe` holds the values; what a value *does* is written only in this module. When that
behaviour changes, :data:`RECIPE_VERSION` goes up, and the version is recorded with every search
configuration and every stand-alone ground-truth row, so that accuracies measured with different
recipes are never compared with each other.

Versions:

* **1**: decoupled weight decay on every weight, BatchNormalization scales and offsets included
  (the search's children before December 2026; ``keras_nasnet.train`` never used it).
* **2**: weight decay on kernels only, as TF-slim regularises weights (not BN parameters or biases);
  the children also get the training command's cutout, ScheduledDropPath and auxiliary head when
  their settings ask for them.
"""

from __future__ import annotations

import dataclasses

#: The recipe's current version (see the module docstring).
RECIPE_VERSION = 2
#: Weights never decayed in version 2 and later (Keras variable-name patterns).
NOT_DECAYED = ("gamma", "beta", "bias")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The values of one CIFAR-10 training run (defaults: ``python -m keras_nasnet.train``'s).

    Args:
        epochs: training epochs (the cosine schedule spans all of them).
        batch_size: images per step (per replica).
        lr: initial learning rate of SGD with Nesterov momentum 0.9, cosine-decayed to 0.
        weight_decay: decoupled weight decay (on kernels from version 2).
        clip_norm: global gradient-norm clip; 0 turns it off.
        drop_path: final ScheduledDropPath rate, ramped linearly from 0 at the start of training.
        aux_weight: loss weight of the auxiliary head; 0 builds no head.
        cutout: side of the cutout square; 0 turns it off.
        bn_momentum: BatchNormalization momentum (0.9: 0.9997 does not converge in short runs).
        version: :data:`RECIPE_VERSION` unless an older record is being resumed.
    """

    epochs: int = 600
    batch_size: int = 32
    lr: float = 0.025
    weight_decay: float = 5e-4
    clip_norm: float = 5.0
    drop_path: float = 0.4
    aux_weight: float = 0.4
    cutout: int = 16
    bn_momentum: float = 0.9
    version: int = RECIPE_VERSION

    def __post_init__(self):
        if self.version not in (1, 2):
            raise ValueError(f"Unknown training recipe version {self.version!r}; this keras_nasnet "
                             f"knows versions 1 and {RECIPE_VERSION}. Upgrade keras_nasnet to read it.")

    def optimizer(self, steps_per_epoch: int, replicas: int = 1):
        """The recipe's SGD for ``steps_per_epoch`` steps per epoch (the learning rate scaled
        linearly with ``replicas``)."""
        import keras

        schedule = keras.optimizers.schedules.CosineDecay(
            self.lr * replicas, decay_steps=max(1, self.epochs * steps_per_epoch))
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                   weight_decay=self.weight_decay or None,
                                   global_clipnorm=self.clip_norm or None)
        if self.version >= 2 and self.weight_decay:
            opt.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
        return opt

    def losses(self):
        """``(loss, loss_weights, metrics)`` for ``model.compile``: one output, or the main and
        auxiliary outputs when ``aux_weight`` > 0."""
        if self.aux_weight > 0:
            return (["sparse_categorical_crossentropy"] * 2, [1.0, self.aux_weight], [["accuracy"], []])
        return "sparse_categorical_crossentropy", None, ["accuracy"]

    def compile(self, model, steps_per_epoch: int, replicas: int = 1):
        """Compiles ``model`` with the recipe's optimizer and losses; returns it."""
        import keras

        loss, weights, metrics = self.losses()
        # On TensorFlow XLA makes depthwise convolutions ~10x slower on CPU; JAX always compiles.
        jit = False if keras.backend.backend() == "tensorflow" else "auto"
        model.compile(optimizer=self.optimizer(steps_per_epoch, replicas), loss=loss,
                      loss_weights=weights, metrics=metrics, jit_compile=jit)
        return model

    def drop_path_progress(self, epoch: int) -> float:
        """The fraction of the final drop-path rate in use during ``epoch`` (paper, A.5)."""
        return epoch / self.epochs


def set_drop_path_progress(model, progress: float) -> None:
    """Sets every :class:`~keras_nasnet.ops.ScheduledDropPath` of ``model`` to ``progress``,
    including those of models nested in it (a NASNet backbone under a new head)."""
    from .ops import ScheduledDropPath

    for layer in model.layers:
        if isinstance(layer, ScheduledDropPath):
            layer.progress.assign(progress)
        elif hasattr(layer, "layers"):  # a nested Model or Sequential
            set_drop_path_progress(layer, progress)
