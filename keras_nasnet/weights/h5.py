"""Weight files: the keras.applications h5 layout (read, written and loaded by layer name, with the
architecture record), and Keras 3 ``.weights.h5`` files checked before Keras loads them."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from ..fileio import atomic_write
from . import architecture
from .catalog import FileWeights, WeightsError

#: Root attribute of the files :func:`write_h5` writes: the model's architecture record as JSON.
RECORD_ATTR = "keras_nasnet_architecture"
#: Root attribute of the ``.weights.h5`` files our models' ``save_weights`` write: which group
#: holds which layer (:func:`native_layer_paths`), as JSON.
LAYER_PATHS_ATTR = "keras_nasnet_layer_paths"


def _weight_layers(model):
    from ..ops import ScheduledDropPath

    return [l for l in model.layers if l.weights and not isinstance(l, ScheduledDropPath)]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unreadable(path, error) -> "WeightsError":
    """The error for a file h5py cannot open, saying what the file is when its suffix tells
    (a whole .keras model, an export) rather than only h5py's "file signature not found"."""
    name = os.fspath(path)
    if not os.path.exists(name):
        return WeightsError(f"{name}: no such file (looked for {os.path.abspath(name)}).")
    if name.endswith(".keras"):
        return WeightsError(f"{name} is a whole saved model (.keras), not a weights file: load it with "
                            f"keras.models.load_model({name!r}) after `import keras_nasnet`, or give a "
                            "file written by model.save_weights('name.weights.h5').")
    if name.endswith((".tflite", ".onnx")):
        return WeightsError(f"{name} is an export, not a weights file: run it with "
                            f"keras_nasnet.export.load_exported({name!r}), or give the .h5 or "
                            ".weights.h5 file it was exported from.")
    return WeightsError(f"{name} is not a readable HDF5 weights file ({error}); a weights file is a "
                        ".h5 or .weights.h5 file (model.save_weights).")


def read_record(path) -> dict | None:
    """The architecture record stored in an h5 weights file, or ``None`` if it has none."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(RECORD_ATTR)
    except OSError as e:
        raise _unreadable(path, e) from None
    if raw is None:
        return None
    try:
        record = json.loads(_text(raw))
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise WeightsError(f"{path} has a damaged {RECORD_ATTR!r} attribute: not a JSON object.")
    return record


def write_record(path, record: dict) -> None:
    """Adds ``record`` (an architecture record) to the root attributes of the HDF5 file ``path``
    (a Keras ``.weights.h5`` file written by :func:`keras_nasnet.NASNet` models' ``save_weights``)."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs[RECORD_ATTR] = json.dumps(record, sort_keys=True)


def read_h5(path) -> dict[str, list[np.ndarray]]:
    """Reads a legacy-layout Keras h5 weights file into ``{layer name: [arrays]}``.

    Both weights-only files and full-model files (``model_weights`` group) are read; this is the
    layout of the official ``keras.applications`` files.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise _unreadable(path, e) from None
    with f:
        g = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in g.attrs:
            raise WeightsError(
                f"{path} has no 'layer_names': it is not a Keras h5 weights file. Files written by "
                "keras `save_weights(...weights.h5)` are loaded when the name ends in .weights.h5."
            )
        out = {}
        for lname in g.attrs["layer_names"]:
            lname = _text(lname)
            if lname not in g:
                raise WeightsError(
                    f"{path} lists layer {lname!r} in 'layer_names' but holds no group for it: the "
                    "file is damaged or was edited by hand. Write it again."
                )
            arrays = []
            for w in g[lname].attrs.get("weight_names", []):
                w = _text(w)
                if w not in g[lname]:
                    raise WeightsError(
                        f"{path}: layer {lname!r} lists weight {w!r} but does not hold it: the file "
                        "is damaged or was edited by hand. Write it again."
                    )
                arrays.append(np.asarray(g[lname][w]))
            if arrays:
                out[lname] = arrays
        return out


def write_h5(model, path) -> None:
    """Writes ``model``'s weights in the legacy layout :func:`read_h5` (and Keras 2) read, with the
    model's architecture record (see :mod:`keras_nasnet.weights.architecture`) when it has one."""
    import h5py

    record = architecture.architecture_of(model)
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            layers = _weight_layers(model)
            f.attrs["layer_names"] = [l.name.encode() for l in layers]
            f.attrs["backend"] = b"tensorflow"
            if record is not None:
                f.attrs[RECORD_ATTR] = json.dumps(record, sort_keys=True)
            for layer in layers:
                g = f.create_group(layer.name)
                names = [f"{layer.name}/{w.path.split('/')[-1]}".encode() for w in layer.weights]
                g.attrs["weight_names"] = names
                for n, w in zip(names, layer.weights):
                    g.create_dataset(n.decode(), data=np.asarray(w.numpy()))


def check_architecture(model, path, hint: str = "", ignore_classes: bool = False) -> None:
    """Raises :class:`WeightsError` if the file at ``path`` records another architecture than
    ``model``'s (the fields of :data:`~keras_nasnet.weights.architecture.STRUCTURE_KEYS`, and the
    classes when both have a top). Files without a record (official files, files written by Keras
    for a model that has none) and models without one pass: they are left to the shape checks."""
    model_record = architecture.architecture_of(model)
    if model_record is None:
        return
    file_record = read_record(path)
    if file_record is None:
        return
    diffs = architecture.differences(file_record, model_record, ignore_classes)
    if diffs:
        raise WeightsError(
            f"{path} holds weights of another architecture than model {model.name!r}: "
            + "; ".join(diffs) + ". Nothing was loaded. Build the model with the file's architecture "
            "(its record is the file's 'keras_nasnet_architecture' attribute)" + hint + "."
        )


def load_h5_by_name(model, path, skip_mismatch: bool = False) -> None:
    """Loads a legacy-layout h5 file into ``model`` by layer name, checking that *every* weight
    layer of the model is matched with the right shapes (Keras' own by-name loading skips
    silently). Extra layers in the file (an auxiliary head, a top) are ignored. A file that records
    its architecture must record the model's (see :func:`check_architecture`).

    With ``skip_mismatch=True`` the layers the file lacks or holds with other shapes (a new
    auxiliary head, another number of classes) keep their weights, named in one warning."""
    check_architecture(model, path, ignore_classes=skip_mismatch)
    stored = read_h5(path)
    missing, mismatched = [], []
    updates = []
    for layer in _weight_layers(model):
        arrays = stored.get(layer.name)
        if arrays is None:
            missing.append(layer.name)
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != shapes:
            mismatched.append(f"{layer.name}: model {shapes}, file {[a.shape for a in arrays]}")
            continue
        updates.append((layer, arrays))
    if skip_mismatch:
        warn_skipped(path, missing + [m.split(":")[0] for m in mismatched])
    else:
        _refuse_unfit(model, path, missing, mismatched, shown=5)
    for layer, arrays in updates:
        layer.set_weights(arrays)


def _refuse_unfit(model, path, missing: list, mismatched: list, shown: int) -> None:
    """Raises the one "do not fit" error of the by-name loaders, naming what is missing and what
    has other shapes (``shown`` of those), when either list has anything."""
    if not (missing or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} layer(s) not in the file: {', '.join(missing[:10])}"
                     + (" ..." if len(missing) > 10 else ""))
    if mismatched:
        parts.append(f"{len(mismatched)} layer(s) with other shapes: {'; '.join(mismatched[:shown])}"
                     + (" ..." if len(mismatched) > shown else ""))
    hint = ""
    if missing and not mismatched and all(name.startswith("aux_") for name in missing):
        hint = (" The file has no auxiliary head: build the model with auxiliary_head=False to use "
                "it; to train a new head beside these weights, build it with weights=None and call "
                f"model.load_weights({str(path)!r}, skip_mismatch=True) (the head keeps its initial "
                "weights).")
    raise WeightsError(f"Weights in {path} do not fit model {model.name!r}: " + ". ".join(parts)
                       + ". Nothing was loaded." + hint)


def _own_variables(layer) -> dict:
    store = {}
    layer.save_own_variables(store)
    return store


def native_layer_paths(model) -> dict[str, str]:
    """``{layer name: group}`` for the layers of ``model`` that have variables of their own, as a
    Keras 3 ``.weights.h5`` file of it names them: ``<snake_case class name>[_<n>]`` under
    ``layers/``, numbered per class in ``model.layers`` order (keras/src/saving/saving_lib.py).

    The order is the functional graph's, by depth: layers without weights of their own (a
    drop-path layer, an auxiliary head) move other layers' numbers, so two models with the same
    weights can number them differently.
    """
    from keras.src.utils.naming import to_snake_case

    used, paths = {}, {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        if _own_variables(layer):
            paths[layer.name] = base if used[base] == 0 else f"{base}_{used[base]}"
    return paths


def write_layer_paths(path, model) -> None:
    """Adds :func:`native_layer_paths` of ``model`` to the root attributes of the ``.weights.h5``
    file ``path`` that ``model.save_weights`` just wrote, so that it can be loaded by layer name
    into a model whose layers Keras numbers otherwise (see :func:`load_plan`)."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs[LAYER_PATHS_ATTR] = json.dumps(native_layer_paths(model), sort_keys=True)


def file_layer_paths(path) -> dict | None:
    """``{layer name: group}`` of a Keras 3 ``.weights.h5`` file, or ``None`` when the file cannot
    say: the name Keras writes on each layer's group (recent Keras 3 versions), else the map that
    ``save_weights`` of a model built by keras_nasnet adds (:func:`write_layer_paths`)."""
    import h5py

    with h5py.File(path, "r") as f:
        root = f.get("layers")
        named = {}
        for key in (root if isinstance(root, h5py.Group) else []):
            group = root[key].get("vars") if isinstance(root[key], h5py.Group) else None
            name = None if group is None else group.attrs.get("name")
            if name is None:  # a Keras that did not name its groups: all or nothing
                named = None
                break
            named[_text(name)] = key
        raw = f.attrs.get(LAYER_PATHS_ATTR)
    if named:
        return named
    if raw is None:
        return None
    try:
        paths = json.loads(_text(raw))
    except ValueError:
        paths = None
    if not isinstance(paths, dict):
        raise WeightsError(f"{path} has a damaged {LAYER_PATHS_ATTR!r} attribute: not a JSON object.")
    return paths


def _drop_path_groups(path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        root = f.get("layers")
        return 0 if root is None else sum(1 for k in root if k.startswith("scheduled_drop_path"))


def load_plan(model, path) -> dict | None:
    """How a ``.weights.h5`` file must be loaded into ``model``: ``None`` where Keras' own
    loading (by layer class and order) puts every weight in its layer, else the file's
    ``{layer name: group}`` to load by name (:func:`load_by_name`).

    Drop-path layers and an auxiliary head can change the order in which Keras numbers the
    groups. Where the file names its groups (:func:`file_layer_paths`) and a layer of ``model``
    sits in another group than Keras would read for it, loading goes by name, so a file written
    with drop path or the auxiliary head loads into the same network without them, and back.
    A file that names nothing, written by an older Keras and keras_nasnet, cannot say: where its
    drop-path layers or auxiliary head differ from ``model``'s it is refused (Keras' numbering
    could put weights into other layers of the same shapes without a word), saying how to build
    a model that loads it.
    """
    import keras

    if any(isinstance(l, keras.Model) for l in model.layers):
        return None  # a nested model has paths of its own; Keras' loading is the only one there is
    file_paths = file_layer_paths(path)
    if file_paths is not None:
        from ..ops import ScheduledDropPath

        ours = native_layer_paths(model)
        # A layer in another group than Keras would read for it, or a drop-path layer the file
        # lacks (its schedule's progress, which Keras would miss). Other names missing from the
        # file do not count: a user's auto-named layer (input_tensor=...) can be named otherwise
        # in another session, and Keras' order still fits it.
        moved = [n for n, key in ours.items()
                 if (n in file_paths and file_paths[n] != key)
                 or (n not in file_paths and isinstance(model.get_layer(n), ScheduledDropPath))]
        return file_paths if moved else None
    record, model_record = read_record(path), architecture.architecture_of(model)
    if record is None or model_record is None:
        return None  # nothing says how the file's model was built: Keras' order is all there is
    from ..ops import ScheduledDropPath

    fixes = []
    in_file = _drop_path_groups(path)
    in_model = sum(isinstance(l, ScheduledDropPath) for l in model.layers)
    if bool(in_file) != bool(in_model):
        fixes.append("drop_path_rate > 0 (any rate)" if in_file else "drop_path_rate=0")
    if bool(record.get("auxiliary_head")) != bool(model_record.get("auxiliary_head")):
        fixes.append(f"auxiliary_head={bool(record.get('auxiliary_head'))}")
    if fixes:
        raise WeightsError(
            f"{path} names none of its layers (it was written by an older Keras and keras_nasnet) "
            f"and comes from this network built with {' and '.join(fixes)}, which can change the "
            "order in which Keras' .weights.h5 loading matches layers, so it could load weights "
            "into other layers of the same shapes. Nothing was loaded. Build the model with "
            f"{', '.join(fixes)} to load it, then save_weights again: files written now load into "
            "the network with or without them."
        )
    return None


def load_by_name(model, path, file_paths: dict, skip_mismatch: bool = False) -> None:
    """Loads a ``.weights.h5`` file into ``model`` by layer name, through the file's ``{layer
    name: group}`` (:func:`load_plan`). Every layer of ``model`` with weights must be in the file
    with the same shapes, or nothing is loaded; ``skip_mismatch`` leaves layers whose shapes differ
    as they are, and those missing from the file too (Keras' meaning), with one warning naming
    them. The file's extra layers (an auxiliary head) are ignored, and a drop-path layer missing
    from the file keeps its schedule's progress (training state, not a weight). Only layers are
    loaded: a compiled model's optimizer state, which Keras' own loading also restores, is not
    (its variables follow the layers' order, which differs here)."""
    import h5py

    from ..ops import ScheduledDropPath

    missing, mismatched, updates, skipped = [], [], [], []
    with h5py.File(path, "r") as f:
        for layer in model.layers:
            want = _own_variables(layer)
            if not want:
                continue
            group = f.get(f"layers/{file_paths[layer.name]}/vars") if layer.name in file_paths else None
            if group is None:
                if not isinstance(layer, ScheduledDropPath):
                    (skipped if skip_mismatch else missing).append(layer.name)
                continue
            got = {k: np.asarray(group[k]) for k in group}
            shapes = [tuple(want[str(i)].shape) for i in range(len(want))]
            if sorted(got) != sorted(want) or [got[str(i)].shape for i in range(len(want))] != shapes:
                if skip_mismatch:
                    skipped.append(layer.name)
                else:
                    mismatched.append(f"{layer.name}: model {shapes}, file "
                                      f"{[got[k].shape for k in sorted(got)]}")
                continue
            updates.append((layer, got))
    _refuse_unfit(model, path, missing, mismatched, shown=3)
    for layer, arrays in updates:
        layer.load_own_variables(arrays)
    warn_skipped(path, skipped)


def warn_skipped(path, skipped: list) -> None:
    """One warning naming the layers ``skip_mismatch`` left as they were (Keras' own prints the
    whole tensors)."""
    if skipped:
        warnings.warn(f"{path}: {len(skipped)} layer(s) not in the file or with other shapes than "
                      f"the model's were left as they are (skip_mismatch): {', '.join(skipped[:10])}"
                      + (" ..." if len(skipped) > 10 else "") + ".", stacklevel=4)


def _native_layout(model, path):
    """``(name, group, model shapes, file shapes)`` for each of ``model``'s layers whose group in a
    Keras 3 ``.weights.h5`` file (the one Keras will read, :func:`native_layer_paths`) is missing
    or holds other shapes; ``None`` if the file has no ``layers`` group."""
    import h5py

    found = []
    with h5py.File(path, "r") as f:
        root = f.get("layers")
        if root is None:
            return None
        for name, key in native_layer_paths(model).items():
            store = _own_variables(model.get_layer(name))
            want = [tuple(store[str(i)].shape) for i in range(len(store))]
            group = root.get(f"{key}/vars")
            got = [] if group is None else [tuple(group[str(i)].shape) for i in range(len(group))
                                           if str(i) in group]
            if want != got:
                found.append((name, key, want, got))
    return found


def native_layout_mismatches(model, path) -> list[str]:
    """The names of ``model``'s layers that Keras' own loading of the ``.weights.h5`` file at
    ``path`` would find missing or with other shapes."""
    return [name for name, *_ in (_native_layout(model, path) or [])]


def _native_layout_problems(model, path) -> list[str]:
    """Where a Keras 3 ``.weights.h5`` file and ``model`` disagree, found before Keras loads it
    (:func:`_native_layout`), as readable lines."""
    found = _native_layout(model, path)
    if found is None:
        return [f"{path} has no 'layers' group: it was not written by save_weights of a functional model"]
    return [f"{name!r} ({key}): model {want}, file {got or 'nothing'}" for name, key, want, got in found]


def load_file(model, path) -> None:
    """Loads weights from a file: ``*.weights.h5`` (Keras 3 native, by class and order) or ``*.h5``
    (legacy layout, by name with a full check)."""
    import keras

    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        # Nested models have their own paths; Keras' own error is then the best there is.
        nested = any(isinstance(l, keras.Model) for l in model.layers)
        try:
            plan = load_plan(model, path)
            problems = [] if nested or plan is not None else _native_layout_problems(model, path)
        except OSError as e:
            raise _unreadable(path, e) from None
        if plan is not None:
            check_architecture(model, path)
            load_by_name(model, path, plan)
            return
        if problems:
            raise WeightsError(
                f"{path} does not fit model {model.name!r}: it holds the weights of another "
                f"architecture ({len(problems)} weight layer(s) differ: {'; '.join(problems[:3])}"
                + (" ..." if len(problems) > 3 else "") + "). Nothing was loaded."
            )
        # Same shapes do not make the same network (two genotypes can match layer for layer).
        check_architecture(model, path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                type(model).load_weights(model, path)  # the record was checked above
        except Exception as e:  # Keras raises several types; its messages can hold whole tensors.
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(f"Could not load {path} into {model.name!r}: {first[:300]}") from None
    elif path.endswith(".h5") or path.endswith(".hdf5"):
        load_h5_by_name(model, path)
    else:
        raise WeightsError(
            f"Unknown weights file type {path!r}: use a .h5 file (keras.applications layout) or a "
            ".weights.h5 file written by model.save_weights()."
        )


def local_path(spec):
    """The local file of a resolved ``weights`` argument: the user's file, the verified download,
    or (for a ``converter`` spec) the Keras file converted from it. Constructors call it before
    building the model, so that a missing download fails at once."""
    from .download import fetch

    if isinstance(spec, FileWeights):
        return spec.path
    if spec.converter == "timm":
        return converted(spec)
    return fetch(spec)


def load_into(model, spec, path=None) -> None:
    """Loads a resolved ``weights`` argument (see :func:`~keras_nasnet.weights.resolve`) into
    ``model``, from ``path`` if :func:`local_path` already gave it."""
    path = local_path(spec) if path is None else path
    if isinstance(spec, FileWeights):
        load_file(model, path)
    else:
        load_h5_by_name(model, path)


def converted(spec) -> "os.PathLike":
    """The Keras file converted from a ``converter`` spec's download, in Keras' cache: converted on
    first use (downloading and checking the source if needed), then reused."""
    from .download import cache_dir, fetch
    from .timm import convert, read_record_ok

    path = cache_dir() / f"{spec.name}.h5"
    if not (path.is_file() and read_record_ok(path)):
        convert(fetch(spec), path)
    return path
