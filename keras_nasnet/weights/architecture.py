"""The architecture record: what a model built by the factory is, stored with the weights it writes.

:func:`keras_nasnet.NASNet` attaches a record (a JSON-ready dict: genotype and sizes) to every model it
builds; :func:`~keras_nasnet.weights.write_h5` stores it in the file, and loading a file that has a
record into a model that has one refuses if they describe different networks, saying what differs.
The record lives on the Python object only: a model reloaded from ``.keras`` has none (its weight
files then carry no record and load by layer name, as official files do).

A model with a record also writes it into the files of Keras' own ``model.save_weights()`` (and so
of ``keras.callbacks.ModelCheckpoint(save_weights_only=True)``), and its ``model.load_weights()``
refuses a file whose record describes another network, before Keras reads any weight: two
genotypes can have the same layer names, classes and shapes, and Keras would load one's weights
into the other without a word.
"""

from __future__ import annotations

import copy
import os
import types

# Private attribute, set with object.__setattr__ so that Keras does not track it as model state.
_ATTR = "_keras_nasnet_architecture"
#: Record fields that decide the network's layers and what its weights compute.
STRUCTURE_KEYS = ("genotype", "num_cells", "penultimate_filters", "stem", "stem_filters",
                  "skip_reduction", "filter_multiplier", "include_preprocessing", "op_style")
#: What a record written before a field existed means by its absence.
_ABSENT = {"op_style": "keras"}
FORMAT = 1


def architecture_record(genotype, *, num_cells, penultimate_filters, stem, stem_filters,
                        skip_reduction, filter_multiplier, include_top, classes, auxiliary_head,
                        include_preprocessing, bn_epsilon, op_style="keras") -> dict:
    """The record of a network built by :func:`keras_nasnet.NASNet` with these arguments.

    ``include_top``, ``classes``, ``auxiliary_head`` and ``bn_epsilon`` are recorded for information;
    ``classes`` is compared only when both sides have a top (a file with a top also serves a model
    without one, and a file with an auxiliary head a model without it). ``num_cells`` is an int or
    a list of three (one count per stack).
    """
    cells = int(num_cells) if isinstance(num_cells, int) else [int(n) for n in num_cells]
    return {
        "format": FORMAT, "genotype": genotype.to_dict(), "num_cells": cells,
        "penultimate_filters": int(penultimate_filters), "stem": stem,
        "stem_filters": int(stem_filters), "skip_reduction": bool(skip_reduction),
        "filter_multiplier": int(filter_multiplier),
        "include_preprocessing": bool(include_preprocessing), "include_top": bool(include_top),
        "classes": int(classes), "auxiliary_head": bool(auxiliary_head),
        "bn_epsilon": float(bn_epsilon), "op_style": op_style,
    }


def attach_architecture(model, record: dict) -> None:
    """Attaches ``record`` (see :func:`architecture_record`) to ``model``, and makes the model's
    ``save_weights`` store it in the file and its ``load_weights`` check it (see the module
    docstring)."""
    object.__setattr__(model, _ATTR, copy.deepcopy(record))
    # Instance attributes, set past Keras' attribute tracking: the model stays a plain functional
    # keras.Model (same class, same .keras serialization), only these two calls gain the record.
    object.__setattr__(model, "save_weights", types.MethodType(_save_weights, model))
    object.__setattr__(model, "load_weights", types.MethodType(_load_weights, model))


def _is_hdf5(path) -> bool:
    import h5py

    try:
        return os.path.isfile(path) and h5py.is_hdf5(path)
    except (OSError, TypeError):
        return False


def _stamp(path):
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _save_weights(model, filepath, *args, **kwargs):
    """``keras.Model.save_weights``, then the architecture record into the file's root attributes."""
    before = _stamp(filepath)
    type(model).save_weights(model, filepath, *args, **kwargs)
    record = architecture_of(model)
    # Only a file this call wrote: a sharded save writes its .json index and shards elsewhere,
    # and overwrite=False with the prompt declined leaves the old file as it was.
    wrote = _stamp(filepath) not in (None, before) and not kwargs.get("max_shard_size")
    if record is not None and wrote and _is_hdf5(filepath):
        from .h5 import write_layer_paths, write_record

        write_record(filepath, record)
        write_layer_paths(filepath, model)


def _load_weights(model, filepath, *args, **kwargs):
    """``keras.Model.load_weights``, after refusing a file that records another architecture.
    ``skip_mismatch=True`` (Keras: skip the layers whose shapes differ) lets another number of
    classes through, for a backbone under a new head; another genotype or size is still refused,
    since its layers can have the same shapes and would load without a word."""
    skip = kwargs.get("skip_mismatch", args[0] if args else False)
    if _is_hdf5(filepath):
        from .h5 import check_architecture

        check_architecture(model, filepath, ignore_classes=bool(skip),
                           hint="" if skip else ", or, for another number of classes (a backbone "
                           "under a new head), call load_weights(..., skip_mismatch=True)")
        if os.fspath(filepath).endswith(".weights.h5"):
            from .h5 import load_by_name, load_plan

            # Keras numbers a file's layers by class and order, which drop-path layers and an
            # auxiliary head change: load by name where the file says its numbering differs.
            plan = load_plan(model, filepath)
            if plan is not None:
                return load_by_name(model, filepath, plan, skip_mismatch=bool(skip))
            if skip and not any(hasattr(l, "layers") for l in model.layers):
                # Keras' own skip_mismatch warns with the whole tensors it skips: its loading
                # (optimizer state included), quiet, then one line naming the skipped layers.
                import warnings

                from .h5 import native_layout_mismatches, warn_skipped

                skipped = native_layout_mismatches(model, filepath)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = type(model).load_weights(model, filepath, *args, **kwargs)
                warn_skipped(filepath, skipped)
                return result
        elif skip and not any(hasattr(l, "layers") for l in model.layers):
            from .h5 import load_h5_by_name

            # Keras reads a legacy .h5 file by layer order and refuses one with another number of
            # layers (a model with an auxiliary head the file lacks): by name, the rest loads.
            return load_h5_by_name(model, filepath, skip_mismatch=True)
    return type(model).load_weights(model, filepath, *args, **kwargs)


def architecture_of(model) -> dict | None:
    """A copy of the architecture record of a model built by keras_nasnet, or ``None`` (a model
    from elsewhere, or one reloaded from a ``.keras`` file)."""
    record = getattr(model, _ATTR, None)
    return copy.deepcopy(record) if record is not None else None


def _genotype_differences(a: dict, b: dict) -> list[str]:
    out = []
    for cell in ("normal", "reduction"):
        ca, cb = a.get(cell, {}), b.get(cell, {})
        ba, bb = ca.get("blocks", []), cb.get("blocks", [])
        if len(ba) != len(bb):
            out.append(f"{cell} cell blocks: file {len(ba)}, model {len(bb)}")
        for i, (x, y) in enumerate(zip(ba, bb)):
            if x != y:
                out.append(f"{cell} cell block {i}: file {x}, model {y}")
        if ca.get("concat") != cb.get("concat"):
            out.append(f"{cell} cell concat: file {ca.get('concat')}, model {cb.get('concat')}")
    return out


def differences(file_record: dict, model_record: dict, ignore_classes: bool = False) -> list[str]:
    """What differs between a file's record and a model's, as readable lines (empty: they fit);
    ``ignore_classes`` leaves the top's width out (``load_weights(..., skip_mismatch=True)``)."""
    out = []
    for key in STRUCTURE_KEYS:
        a, b = (r.get(key, _ABSENT.get(key)) for r in (file_record, model_record))
        if a == b:
            continue
        if key == "genotype" and isinstance(a, dict) and isinstance(b, dict):
            out.extend(_genotype_differences(a, b))
        else:
            out.append(f"{key}: file {a!r}, model {b!r}")
    if (not ignore_classes and file_record.get("include_top") and model_record.get("include_top")
            and file_record.get("classes") != model_record.get("classes")):
        out.append(f"classes: file {file_record.get('classes')}, model {model_record.get('classes')}")
    return out
