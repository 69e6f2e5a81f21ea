"""Train and evaluate CIFAR-10 networks with the paper's recipe; checkpoint every epoch, resume.

``python -m keras_nasnet.train --out runs/a --epochs 5`` trains (``--help`` lists the recipe's
settings); running the same command again resumes from the last finished epoch. Settings and data
are checked before anything is written; a loss that stops being finite ends the run and keeps the
last good checkpoint. Exit codes: 0 done, 1 failed (message on stderr), 2 invalid settings, 130
interrupted (Ctrl-C; the same command resumes).
``python -m keras_nasnet.train evaluate --weights FILE`` prints the test accuracy (the network's
size is read from the weights file's record, or given with ``--num-cells`` and
``--penultimate-filters``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import data as data_lib
from .cliargs import ArgumentParser, nonnegative_float, nonnegative_int, positive_float, positive_int
from .fileio import FolderLock, FolderLocked, other_files, savez_atomic, write_json_atomic
from .genotypes import genotype_from
from .recipe import Recipe


class TrainingError(Exception):
    """A training run cannot start or go on; the message says why and what to do."""


class RunConfigMismatch(TrainingError):
    """``--out`` holds a run with another configuration (settings or data)."""


class TrainingDiverged(TrainingError):
    """The loss stopped being finite; the last good checkpoint was kept."""


def __getattr__(name):
    # DropPathSchedule lives in keras_nasnet.ops (with the layer it drives), so that this module
    # imports Keras only when a run starts: ``--help`` needs no TensorFlow.
    if name == "DropPathSchedule":
        from .ops import DropPathSchedule

        return DropPathSchedule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_distribution(kind: str | None):
    """``None`` (one device), ``mirrored`` (all local GPUs, or CPU) or ``multiworker`` (the cluster
    described by ``TF_CONFIG``)."""
    if kind is None:
        return None
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"--distribute {kind} needs the TensorFlow backend (KERAS_BACKEND="
                         f"tensorflow); this process runs Keras on {keras.backend.backend()}.")
    import tensorflow as tf

    if kind == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # No GPU: mirror over the logical CPU devices (one unless the process split the CPU).
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown --distribute {kind!r}; use mirrored or multiworker.")


def recipe_of(args):
    """The :class:`~keras_nasnet.recipe.Recipe` that ``args`` (see :func:`parser`) describe."""
    return Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  weight_decay=args.weight_decay, clip_norm=args.clip_norm or 0.0,
                  drop_path=args.drop_path, aux_weight=args.aux_weight, cutout=args.cutout,
                  bn_momentum=args.bn_momentum)


def build_training_model(args, steps_per_epoch: int, replicas: int = 1):
    """The model and its compiled optimizer for ``args`` (see :func:`parser`), per the recipe of
    :mod:`keras_nasnet.recipe`.

    With several replicas the learning rate is scaled linearly (``--batch-size`` is per replica) and
    BatchNormalization statistics are synchronized across replicas.
    """
    from .models import NASNetCIFAR

    recipe = recipe_of(args)
    model = NASNetCIFAR(
        num_cells=args.num_cells, penultimate_filters=args.penultimate_filters,
        genotype=genotype_from(args.genotype), drop_path_rate=recipe.drop_path,
        auxiliary_head=recipe.aux_weight > 0, bn_momentum=recipe.bn_momentum, classes=10,
        bn_synchronized=replicas > 1,
    )
    return recipe.compile(model, steps_per_epoch, replicas)


def save_checkpoint(model, path: Path, epochs_done: int) -> None:
    """Atomically saves every model and optimizer variable (BN statistics, drop-path progress and
    random-generator states included) with the number of finished epochs.

    Keras does not serialise ``exclude_from_weight_decay``, so a reloaded ``.keras`` model would
    decay BN parameters after a resume; restoring variables into a freshly built model does not.
    """
    arrays = {f"m{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)})
    arrays["epochs_done"] = np.asarray(epochs_done)
    savez_atomic(path, **arrays)


def restore_checkpoint(model, path: Path) -> int:
    """Restores :func:`save_checkpoint` output into a model built with the same settings; returns
    the number of finished epochs."""
    import zipfile

    model.optimizer.build(model.trainable_variables)
    try:
        with np.load(path) as z:
            for i, v in enumerate(model.variables):
                v.assign(z[f"m{i}"])
            for i, v in enumerate(model.optimizer.variables):
                v.assign(z[f"o{i}"])
            return int(z["epochs_done"])
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError) as e:
        # Written atomically by save_checkpoint, so only damage from outside (a bad copy, a disk
        # error) or another program's file lands here.
        raise TrainingError(
            f"{path} cannot be read as this run's checkpoint ({type(e).__name__}: {str(e)[:120]}). "
            f"Restore it from a copy, or delete it and {path.parent / 'state.json'} to start this "
            "run over from epoch 0.") from None


#: Keys of a run's identity added after the first release; a config.json without them (written by
#: an older version) is compared on the other keys only.
_LATER_KEYS = ("data", "limit", "genotype_cells", "data_fingerprint")


def _config_of(args) -> dict:
    keys = ["genotype", "num_cells", "penultimate_filters", "epochs", "batch_size", "lr",
            "weight_decay", "drop_path", "aux_weight", "cutout", "bn_momentum", "seed", "split",
            "distribute", "mixed_precision", "clip_norm"]
    config = {k: getattr(args, k) for k in keys}
    # The data is part of what a run is: the same settings on other images are another run.
    data = getattr(args, "data", None)
    config["data"] = "tfds" if data in (None, "tfds") else str(Path(data).expanduser().resolve())
    config["limit"] = getattr(args, "limit", 0) or 0
    # The cells themselves, not only how --genotype named them: a JSON file edited between two
    # commands is another network, and "nasnet_a" is the same one as "NASNET_A".
    config["genotype_cells"] = genotype_from(args.genotype).to_dict()
    return config


def _check_same_run(cfg_file: Path, config: dict) -> None:
    try:
        old = json.loads(cfg_file.read_text())
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise TrainingError(
            f"{cfg_file} cannot be read ({type(e).__name__}: {str(e)[:120]}); it says which run the "
            "folder holds. Restore it from a copy, or use a new --out.") from None
    if all(k in old for k in ("space", "reward", "strategy")) or "stage" in old:
        # Another command's folder: its settings diffed against a training run's say nothing useful.
        what = "stand-alone children of a search" if "stage" in old else "a search (keras_nasnet.search)"
        raise RunConfigMismatch(f"{cfg_file.parent} holds {what}, not a run of keras_nasnet.train; "
                                "give a new or empty folder as --out.")
    compared = {k: v for k, v in config.items() if k in old or k not in _LATER_KEYS}
    # The data's fingerprint is compared once the data is read (the second call): before that, the
    # stored one has nothing to be compared with.
    old = {k: v for k, v in old.items() if k in config or k not in _LATER_KEYS}
    if "genotype_cells" not in old:
        # Written before the cells were stored: the name or JSON it stored stands for them.
        try:
            old_cells = genotype_from(old.get("genotype")).to_dict()
        except Exception:  # a file that has gone, or text that no longer parses
            old_cells = None
        if old_cells is not None:
            old = {**old, "genotype_cells": old_cells}
            compared["genotype_cells"] = config["genotype_cells"]
    if "genotype_cells" in compared:
        # The spelling of --genotype does not matter once the cells are compared.
        compared["genotype"] = old.get("genotype")
    if old != compared:
        diff = {k: (old.get(k), v) for k, v in compared.items() if old.get(k) != v}
        if "data_fingerprint" in diff:
            diff["data_fingerprint"] = ("stored images", "other images or labels (the --data source "
                                        "was replaced or changed since the run started)")
        if "genotype_cells" in diff:
            diff["genotype_cells"] = ("stored cells", "other cells (the --genotype given differs "
                                      "from the run's, or its file was changed)")
        raise RunConfigMismatch(
            f"{cfg_file.parent} holds a run with another configuration (stored, given: {diff}); "
            "use a new --out, or the same settings and data to resume it."
        )


def _remove_stale_temporaries(out: Path) -> None:
    """Removes the temporary files of writes a killed run left (``.checkpoint.npz.<random>.part.npz``,
    see :func:`keras_nasnet.fileio.atomic_write`); the caller holds the folder's lock, so no
    write of another process is under way."""
    import re

    # Only the names atomic_write gives this command's own files (mkstemp adds 8 characters): a
    # folder is never cleared of files that are not the run's.
    ours = re.compile(r"\.(config\.json|state\.json|checkpoint\.npz|weights\.h5|result\.json)"
                      r"\.[a-z0-9_]{8}\.part(\.npz)?")
    for f in out.iterdir():
        if ours.fullmatch(f.name) and f.is_file():
            f.unlink(missing_ok=True)


def _refuse_other_files(out: Path) -> None:
    """Refuses a ``--out`` that holds files but no run: a run writes ``log.csv``, ``weights.h5``
    and ``result.json``, and would replace the user's own files of those names."""
    shown = other_files(out)
    if shown:
        raise RunConfigMismatch(
            f"{out} holds files ({shown}) but no run of keras_nasnet.train (it has no config.json); "
            "a run would overwrite files of its own names there. Give a new or empty folder as --out.")


def _load_data(args):
    """The run's arrays, checked: ``(xtr, ytr), (xval, yval) or (None, None), (xte, yte)``.

    ``--limit N`` keeps N images of each split (training, validation and test), so a smoke run is
    short from start to end.
    """
    arrays = data_lib.load_cifar10(args.data)
    # Kept for data_fingerprint(), which then need not read the data a second time.
    data_lib._remember_fingerprint(args.data, arrays)
    (xtr, ytr), (xte, yte) = arrays
    if args.split == "45k":
        (xtr, ytr), (xval, yval) = data_lib.train_val_split(
            xtr, ytr, seed=0, hint="Use --split full to train on all of them (no validation), or "
                                   "pass the full CIFAR-10 with --data.")
    else:
        xval = yval = None
    if args.limit:
        xtr, ytr = _subset(xtr, ytr, args.limit)
        xte, yte = _subset(xte, yte, args.limit)
        if xval is not None:
            xval, yval = _subset(xval, yval, args.limit)
    return (xtr, ytr), (xval, yval), (xte, yte)


def fit(args) -> dict:
    """Trains per ``args`` with a checkpoint after every epoch; resumes from ``args.out``.

    Everything is checked (settings, genotype, data) before anything is written, and ``args.out``
    is locked while the run lasts. Raises :class:`RunConfigMismatch` for a folder holding another
    run, :class:`TrainingDiverged` when the loss stops being finite (the last good checkpoint is
    kept), :class:`keras_nasnet.data.DataError` for unusable data and
    :class:`keras_nasnet.fileio.FolderLocked` while another process uses the folder.

    Returns the final metrics (also written to ``out/result.json``).
    """
    check_model_settings(args)
    if not str(args.out).strip():
        # Path("") is the current folder: a run's files would land among the user's own.
        raise TrainingError("--out is empty; give a folder for the run (e.g. --out runs/cifar).")
    out = Path(args.out)
    # The folders this command creates (out and any missing parents), removed again if the run
    # fails before writing anything.
    created = [d for d in (out, *out.parents) if not d.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingError(f"Cannot create the run folder {out} ({e.strerror or e}); give a --out "
                            "in a folder you can write.") from None
    lock = FolderLock(out)
    try:
        return _fit(args, out)
    except Exception:
        # Unusable data (or anything else) before the run wrote its config: leave no new folder.
        if created and [p.name for p in out.iterdir()] == [lock.path.name]:
            lock.release()
            lock.path.unlink(missing_ok=True)
            for d in created:
                try:
                    d.rmdir()
                except OSError:
                    break
        raise
    finally:
        lock.release()


def check_model_settings(args) -> None:
    """Checks ``--genotype``, ``--num-cells``, ``--penultimate-filters`` and that ``--distribute``
    has the TensorFlow backend, before anything is written (raises :class:`TrainingError` naming
    the flag); a ``penultimate_filters`` of ``None`` becomes the valid value nearest to 768 for the
    genotype (768 itself for NASNet-A)."""
    import keras

    from .models import _check_arguments, _nearest_multiple, _num_cells, _penultimate_step

    if getattr(args, "distribute", None) and keras.backend.backend() != "tensorflow":
        # make_distribution() says the same, but only after the run's config.json is written.
        raise TrainingError(
            f"--distribute {args.distribute} needs the TensorFlow backend; this process runs Keras "
            f"on {keras.backend.backend()}. Run with KERAS_BACKEND=tensorflow, or leave "
            "--distribute out to train on one device.")
    genotype = genotype_from(args.genotype)  # a GenotypeError names --genotype in main()
    try:
        if args.penultimate_filters is None:
            step = _penultimate_step(genotype, "cifar", _num_cells(args.num_cells), 2, False)
            args.penultimate_filters = _nearest_multiple(768, step)
        _check_arguments(genotype, args.num_cells, args.penultimate_filters, "cifar", None, 2,
                         False, True, None, 10, args.aux_weight > 0, args.drop_path, 0.0)
    except ValueError as e:
        raise TrainingError(f"--num-cells/--penultimate-filters: {e} Leave --penultimate-filters "
                            "out to get the nearest valid value.") from None


def _fit(args, out: Path) -> dict:
    import keras

    from . import augment_numpy
    from .ops import DropPathSchedule

    config = _config_of(args)
    cfg_file = out / "config.json"
    if cfg_file.exists():
        _remove_stale_temporaries(out)
        _check_same_run(cfg_file, config)
    else:
        _refuse_other_files(out)
    genotype_from(args.genotype)  # a typo fails here, before config.json makes it sticky
    (xtr, ytr), (xval, yval), (xte, yte) = _load_data(args)
    # What the images are, not only where: a file at the same path may hold other data by now.
    config["data_fingerprint"] = data_lib.data_fingerprint(args.data)
    if cfg_file.exists():
        _check_same_run(cfg_file, config)
    else:
        write_json_atomic(cfg_file, config)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_distribution(args.distribute)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    batch = args.batch_size * replicas
    steps = math.ceil(len(xtr) / batch)
    outputs = 2 if args.aux_weight > 0 else 1

    ckpt = out / "checkpoint.npz"
    state_file = out / "state.json"
    start_epoch = 0
    keras.utils.set_random_seed(args.seed)
    import contextlib

    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_training_model(args, steps, replicas)
        if ckpt.exists() and state_file.exists():
            start_epoch = restore_checkpoint(model, ckpt)
            if start_epoch >= args.epochs:
                # Nothing is trained again: say so, rather than "Resuming", which reads as work.
                print(f"{out} has finished all {args.epochs} epochs; nothing to train, writing its "
                      "results again (a longer training is another run: give a new --out).",
                      file=sys.stderr)
            else:
                print(f"Resuming {out} after epoch {start_epoch}.", file=sys.stderr)
    _trim_log(out / "log.csv", start_epoch)

    # tf.data on TensorFlow; elsewhere a NumPy PyDataset with the same order and augmentation.
    make_dataset = (data_lib.make_dataset if keras.backend.backend() == "tensorflow"
                    else augment_numpy.make_dataset)
    timer = _epoch_timer()
    callbacks = [keras.callbacks.CSVLogger(str(out / "log.csv"), append=True), DropPathSchedule(args.epochs),
                 keras.callbacks.TerminateOnNaN(), _progress_logger(args.epochs), timer]
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        ds = make_dataset(xtr, ytr, batch, True, args.seed, epoch, args.cutout, outputs)
        val = None
        if xval is not None:
            val = make_dataset(xval, yval, 250, False, outputs=outputs)
        # shuffle=False: the dataset is shuffled per (seed, epoch) already; Keras would only warn.
        hist = model.fit(ds, epochs=epoch + 1, initial_epoch=epoch, validation_data=val,
                         callbacks=callbacks, verbose=_verbosity(args), shuffle=False)
        loss = hist.history.get("loss", [float("nan")])[-1]
        if not math.isfinite(loss):
            # Not saved: the weights are no longer finite, and the checkpoint is the last good state.
            kept = (f"{ckpt} still holds the last good state (after epoch {epoch})" if epoch
                    else "no checkpoint was written")
            raise TrainingDiverged(
                f"The training loss became {loss} in epoch {epoch + 1}; stopped, {kept}. Lower --lr "
                "or keep --clip-norm on, in a new --out."
            )
        # Write the checkpoint before the state that says which epoch it holds, both atomically. A
        # kill between the two replaces leaves a checkpoint one epoch ahead of state.json; the
        # epoch counter stored inside the checkpoint wins on resume, so nothing runs twice.
        save_checkpoint(model, ckpt, epoch + 1)
        write_json_atomic(state_file, {"epochs_done": epoch + 1, "epoch_seconds": time.time() - t0},
                          indent=None)
        if epoch == start_epoch and epoch + 1 < args.epochs and _verbosity(args):
            # Once per command: the paper's 600 epochs of 6@768 take weeks on a CPU, and Keras'
            # bar only says how long the current epoch takes.
            took = time.time() - t0
            print(_remaining_time_line(epoch + 1, args.epochs, took, timer.steady_seconds(took)),
                  file=sys.stderr)

    result = evaluate_model(model, xte, yte)
    # "params" counts the network as it is used (and as the paper and keras.applications count it):
    # without the auxiliary head, which only training uses (at small sizes it dominates), and
    # without drop path's progress scalars, which are training state.
    from .ops import ScheduledDropPath

    aux = sum(int(layer.count_params()) for layer in model.layers if layer.name.startswith("aux_"))
    schedule = sum(int(layer.count_params()) for layer in model.layers
                   if isinstance(layer, ScheduledDropPath))
    result.update({"epochs": args.epochs, "params": int(model.count_params()) - aux - schedule})
    if aux:
        result["aux_head_params"] = aux
    from .weights import write_h5

    write_h5(model, out / "weights.h5")
    write_json_atomic(out / "result.json", result)
    print(json.dumps(result))
    return result


def _trim_log(log: Path, epochs_done: int) -> None:
    """Keeps the header and the first ``epochs_done`` rows of ``log.csv``: Keras writes an epoch's
    row before its checkpoint is saved, so a run killed between the two would log that epoch twice."""
    if not log.exists():
        return
    lines = log.read_text().splitlines(keepends=True)
    if len(lines) > epochs_done + 1:
        from .fileio import write_text_atomic

        write_text_atomic(log, "".join(lines[:epochs_done + 1]) if epochs_done else "")


def _remaining_time_line(done: int, total: int, epoch_seconds: float,
                         steady_seconds: float | None = None) -> str:
    """``Epoch 1 took 32.1 minutes; the 599 epochs left take about 13.3 days at this rate ...``;
    ``steady_seconds``, an epoch without the first step's tracing, sets the rate when given."""
    left = total - done
    rate = epoch_seconds if steady_seconds is None else steady_seconds

    def span(seconds):
        for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
            if seconds >= 2 * size:
                return f"{seconds / size:.1f} {unit}"
        return f"{seconds:.0f} seconds"

    return (f"Epoch {done} took {span(epoch_seconds)}; the {left} epoch{'s' * (left != 1)} left "
            f"take{'s' * (left == 1)} about "
            f"{span(left * rate)} at "
            + ("this rate" if steady_seconds is None else "the rate of its steps after the first")
            + " (--epochs sets fewer; the same command resumes "
            "after an interruption).")


def _epoch_timer():
    """A callback timing an epoch without its first training step, which also traces and compiles
    the step function (seconds on a CPU, where a tiny epoch takes less): the estimate of the epochs
    left is made from the steps that follow."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.first_step_end, self.steps = None, 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.first_step_end is None:
                self.first_step_end = time.time()

        def on_epoch_end(self, epoch, logs=None):
            self.end = time.time()

        def steady_seconds(self, whole: float) -> float:
            """An epoch's time at the rate of this epoch's steps after the first (validation
            included), or ``whole``, the epoch as it went, when it had a single step."""
            if self.first_step_end is None or self.steps < 2:
                return whole
            return (self.end - self.first_step_end) * self.steps / (self.steps - 1)

    return EpochTimer()


def _progress_logger(total_epochs: int):
    """Keras' progress logger, headed ``Epoch 12/600`` rather than ``Epoch 12/12``: each epoch is a
    ``fit`` call of its own (a checkpoint after each), and Keras numbers epochs out of that call's."""
    import keras

    class TotalEpochsProgbarLogger(keras.callbacks.ProgbarLogger):
        def set_params(self, params):
            super().set_params(params)
            self.epochs = total_epochs

    return TotalEpochsProgbarLogger()


def _verbosity(args) -> int:
    """``--verbose``, or by default a bar on a terminal and one line per epoch elsewhere."""
    verbose = getattr(args, "verbose", None)
    if verbose is None:
        return 1 if sys.stdout.isatty() else 2
    return verbose


def _subset(x, y, n):
    """A fixed random subset of n examples (image folders are stored class by class)."""
    idx = np.sort(np.random.default_rng(0).permutation(len(x))[:n])
    return x[idx], y[idx]


def evaluate_model(model, x, y, batch_size: int = 250) -> dict:
    """Test accuracy and loss of ``model`` (main output) on uint8 images ``x`` and integer labels
    ``y`` (``(N,)``, or ``(N, 1)`` as ``keras.datasets.cifar10`` gives them).

    Runs through ``model.predict``, one compiled inference function for every batch, so memory stays
    about one forward pass of ``batch_size`` images. An eager ``model(x)`` call instead keeps every
    intermediate tensor of the functional graph alive until the call returns: about 100 MB per
    image for the 6@768 model, 25 GB for a batch of 250.
    """
    x, y = data_lib._images_and_labels(x, y, "evaluate_model")
    probs = []
    # Slices of the uint8 array are cast one at a time: no float32 copy of the whole set.
    for i in range(0, len(x), 10 * batch_size):
        p = model.predict(x[i:i + 10 * batch_size].astype("float32"), batch_size=batch_size, verbose=0)
        probs.append(np.asarray(p[0] if isinstance(p, (list, tuple)) else p, np.float32))
    probs = np.concatenate(probs) if probs else np.zeros((0, 10), np.float32)
    acc = float(np.mean(np.argmax(probs, 1) == y))
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12))))
    return {"test_accuracy": acc, "test_loss": loss, "test_images": int(len(y))}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, and the module docstring kept as written."""


#: The recipe's defaults (:mod:`keras_nasnet.recipe`, which imports no TensorFlow).
_DEFAULTS = Recipe()


def parser() -> argparse.ArgumentParser:
    """The ``python -m keras_nasnet.train`` argument parser."""
    p = ArgumentParser(
        prog="python -m keras_nasnet.train", description=__doc__,
        usage="%(prog)s --out OUT [options]\n       %(prog)s evaluate --weights FILE [--data SOURCE] "
              "[--num-cells N --penultimate-filters P] [--limit N]",
        epilog="Subcommand: `evaluate` prints the CIFAR-10 test accuracy of a weights file "
               "(python -m keras_nasnet.train evaluate --help).",
        formatter_class=_HelpFormatter)
    p.add_argument("--out", required=True, help="run folder: config, checkpoint, log.csv, weights.h5")
    p.add_argument("--data", default=None, help="CIFAR-10 source (see keras_nasnet.data); default tfds")
    p.add_argument("--genotype", default="NASNET_A", help="genotype name, JSON or JSON file")
    p.add_argument("--num-cells", type=positive_int, default=6, help="N, normal cells per stack")
    p.add_argument("--penultimate-filters", type=positive_int, default=None,
                   help="P (24F for NASNet-A); default 768, or the genotype's valid value nearest to it")
    p.add_argument("--epochs", type=positive_int, default=_DEFAULTS.epochs, help="the paper trains 600 epochs")
    p.add_argument("--batch-size", type=positive_int, default=_DEFAULTS.batch_size, help="the paper uses 32 (per replica)")
    p.add_argument("--lr", type=positive_float, default=_DEFAULTS.lr, help="initial learning rate (cosine decay)")
    p.add_argument("--weight-decay", type=nonnegative_float, default=_DEFAULTS.weight_decay, help="decoupled weight decay on kernels")
    p.add_argument("--clip-norm", type=nonnegative_float, default=_DEFAULTS.clip_norm, help="global gradient-norm clip; 0 = off")
    p.add_argument("--drop-path", type=nonnegative_float, default=_DEFAULTS.drop_path, help="final ScheduledDropPath rate")
    p.add_argument("--aux-weight", type=nonnegative_float, default=_DEFAULTS.aux_weight, help="auxiliary head loss weight; 0 = none")
    p.add_argument("--cutout", type=nonnegative_int, default=_DEFAULTS.cutout, help="cutout square size; 0 = off")
    p.add_argument("--bn-momentum", type=nonnegative_float, default=_DEFAULTS.bn_momentum, help="BatchNormalization momentum")
    p.add_argument("--split", choices=["45k", "full"], default="45k",
                   help="train on the 45,000-image split (5,000 validation) or all 50,000")
    p.add_argument("--distribute", choices=["mirrored", "multiworker"], default=None,
                   help="tf.distribute strategy; --batch-size is then per replica and the learning "
                        "rate is scaled by the number of replicas")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (for GPUs)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the initial weights, the data order and the augmentation (default 0)")
    p.add_argument("--limit", type=nonnegative_int, default=0, help="use only N images of each split (smoke runs); 0 = all")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=None,
                   help="Keras progress: 1 bar, 2 one line per epoch, 0 off; default 1 on a terminal, "
                        "else 2 (a bar redrawn into a log file repeats every update)")
    return p


def evaluate_main(argv) -> dict:
    """``evaluate``: prints the CIFAR-10 test accuracy of a weights file.

    Raises :class:`keras_nasnet.weights.WeightsError` or ``ValueError`` for weights that do not fit
    the architecture given, :class:`keras_nasnet.data.DataError` for unusable data.
    """
    p = ArgumentParser(prog="python -m keras_nasnet.train evaluate",
                                description="Prints the CIFAR-10 test accuracy of a weights file.")
    p.add_argument("--weights", required=True, help="a weights file or a registry name (cifar10)")
    p.add_argument("--data", default=None, help="CIFAR-10 source (see keras_nasnet.data); default tfds")
    p.add_argument("--genotype", default=None,
                   help="genotype name, JSON or JSON file; default: the one a weights file records "
                        "(keras_nasnet writes it), else NASNET_A")
    p.add_argument("--num-cells", type=positive_int, default=None,
                   help="default: the architecture the weights file records or registered weights "
                        "were trained for, else 6")
    p.add_argument("--penultimate-filters", type=positive_int, default=None,
                   help="default: as --num-cells, else 768")
    p.add_argument("--limit", type=nonnegative_int, default=0, help="use only N test images; 0 = all")
    a = p.parse_args(argv)
    from .models import NASNetCIFAR

    genotype, num_cells, filters = a.genotype, a.num_cells, a.penultimate_filters
    if Path(a.weights).is_dir():
        inside = Path(a.weights) / "weights.h5"
        hint = (f"; a finished run keeps its weights in {inside}: pass that" if inside.is_file() else
                "; pass the weights file itself (a finished run's weights.h5)")
        raise ValueError(f"--weights {a.weights} is a folder{hint}.")
    if Path(a.weights).is_file():
        from .weights import read_record

        # A run's weights.h5 records its network: evaluating it needs no repeat of the run's flags.
        record = read_record(a.weights) or {}
        if record and record.get("stem") != "cifar":
            raise ValueError(f"{a.weights} holds a {record.get('stem')!r}-stem network; evaluate "
                             "scores CIFAR-10 networks (NASNetCIFAR).")
        genotype = record.get("genotype") if genotype is None else genotype
        num_cells = record.get("num_cells") if num_cells is None else num_cells
        filters = record.get("penultimate_filters") if filters is None else filters
    if genotype is None:
        genotype = "NASNET_A"
    genotype = genotype_from(genotype)
    model = NASNetCIFAR(num_cells, filters, genotype=genotype, weights=a.weights)
    _, (xte, yte) = data_lib.load_cifar10(a.data)
    if a.limit:
        xte, yte = _subset(xte, yte, a.limit)
    result = evaluate_model(model, xte, yte)
    print(json.dumps(result))
    return result


def _epochs_done(out: Path) -> int:
    try:
        return int(json.loads((out / "state.json").read_text())["epochs_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def main(argv=None) -> int:
    """Entry point of ``python -m keras_nasnet.train``; returns the exit code (0 done, 1 failed,
    2 invalid settings, 130 interrupted)."""
    from ._cli import interrupted, raised_by_interrupt
    from .genotypes import GenotypeError
    from .weights import WeightsError

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "evaluate":
        try:
            evaluate_main(argv[1:])
        except GenotypeError as e:
            print(f"error: --genotype: {e}", file=sys.stderr)
            return 2
        except (WeightsError, ValueError) as e:  # DataError is a ValueError
            flags = {"--genotype", "--num-cells", "--penultimate-filters"}
            given = any(arg.split("=")[0] in flags for arg in argv[1:])
            hint = (" Leave out --genotype, --num-cells and --penultimate-filters to use the "
                    "architecture the file records." if given and "another architecture" in str(e)
                    else "")
            print(f"error: {e}{hint}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return interrupted("evaluation stopped", "nothing was written; run the command again")
        return 0
    p = parser()
    args = p.parse_args(argv)
    if not args.drop_path < 1:
        p.error(f"argument --drop-path: expected a rate below 1, got {args.drop_path}")
    if not args.bn_momentum < 1:
        p.error(f"argument --bn-momentum: expected a number below 1, got {args.bn_momentum}")
    if args.cutout > 32:
        p.error(f"argument --cutout: the square is at most 32 (the image size; the paper uses 16, "
                f"and a side of 64 or more blanks every image whole), got {args.cutout}")
    if not args.out.strip():
        p.error("argument --out: empty; give a folder for the run (e.g. --out runs/cifar)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"argument --out: {out} is a file; give a folder for the run (a new one, or a run "
                "folder to resume)")
    try:
        check_model_settings(args)
    except GenotypeError as e:
        print(f"error: --genotype: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        try:
            fit(args)
        except Exception as e:
            if raised_by_interrupt(e):  # a Ctrl-C that TensorFlow turned into another error
                raise KeyboardInterrupt from e
            raise
    except GenotypeError as e:
        print(f"error: --genotype: {e}", file=sys.stderr)
        return 2
    except RunConfigMismatch as e:  # the flags disagree with the run already in --out
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingError, data_lib.DataError, FolderLocked) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        done = _epochs_done(out)
        kept = (f"{out} keeps the checkpoint after epoch {done}" if done
                else "no epoch had finished, so there is no checkpoint yet")
        return interrupted(f"training stopped; {kept}",
                           "run the same command again to resume" if done else
                           "run the same command again to start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
