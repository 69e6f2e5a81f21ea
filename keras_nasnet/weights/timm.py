"""timm's PNASNet-5 Large weights in Keras: read timm's file with NumPy and map every tensor.

timm's ``pnasnet5large`` (``timm/models/pnasnet.py``) and :func:`keras_nasnet.PNASNet5Large` compute
the same network op for op, so each timm parameter or BatchNorm statistic is exactly one Keras
weight, transposed into Keras' layout. This module:

- reads a safetensors file (what the Hugging Face hub serves for timm) with NumPy only
  (:func:`read_safetensors`), and checks its structure against timm's list of names and shapes,
  which ships with the package (``files/timm_pnasnet5large.json.gz``, written by
  ``benchmarks/timm_names.py``);
- maps timm names to Keras layer names (:func:`keras_name`), derived from the same cell plan and
  genotype the model is built from;
- writes a Keras h5 weights file with the architecture record (:func:`convert`), which
  ``PNASNet5Large(weights=path)`` and the registry's ``pnasnet5_large_imagenet`` load.

No PyTorch is needed. ``num_batches_tracked`` (a training counter of PyTorch's BatchNorm) has no
Keras counterpart and is skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
from functools import lru_cache
from importlib import resources

import numpy as np

from ..fileio import atomic_write
from .catalog import WeightsError

#: The timm model name this module converts (``timm:<name>`` on the command line).
TIMM_MODEL = "pnasnet5large.tf_in1k"
#: The packaged list of timm's tensor names and shapes, with the model's pretrained config.
NAMES_FILE = "timm_pnasnet5large.json.gz"
#: Buffers that have no Keras counterpart.
SKIPPED = ("num_batches_tracked",)

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_BN = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}  # Keras: gamma, beta, mean, var


@lru_cache(maxsize=1)
def timm_reference() -> dict:
    """timm's ``{"tensors": {name: shape}, "pretrained_cfg": {...}}`` for ``pnasnet5large``."""
    data = resources.files("keras_nasnet.weights").joinpath("files", NAMES_FILE).read_bytes()
    ref = json.loads(gzip.decompress(data))
    ref["tensors"] = {k: tuple(v) for k, v in ref["tensors"].items()}
    return ref


def _header(path) -> tuple[dict, int]:
    """A safetensors file's JSON header and where its data starts."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than 8 bytes")
            (n,) = struct.unpack("<Q", raw)
            if n > min(size - 8, 100 << 20):
                raise ValueError(f"header length {n} does not fit the file's {size} bytes")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError, struct.error) as e:
        raise WeightsError(f"{path} is not a safetensors file ({e}).") from None
    header.pop("__metadata__", None)
    return header, 8 + n


def read_safetensors(path) -> dict[str, np.ndarray]:
    """Reads every tensor of a safetensors file into NumPy arrays (bfloat16 becomes float32)."""
    header, start = _header(path)
    size = os.path.getsize(path)
    out = {}
    with open(path, "rb") as f:
        for name, entry in header.items():
            try:
                dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise WeightsError(f"{path}: header entry {name!r} is malformed.") from None
            if dtype not in _DTYPES:
                raise WeightsError(f"{path}: tensor {name!r} has unsupported dtype {dtype}.")
            if not 0 <= begin <= end <= size - start:
                raise WeightsError(f"{path}: tensor {name!r} lies outside the file (truncated?).")
            f.seek(start + begin)
            buf = f.read(end - begin)
            if dtype == "BF16":
                a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                a = np.frombuffer(buf, np.dtype(_DTYPES[dtype]).newbyteorder("<"))
            count = int(np.prod(shape)) if shape else 1
            if a.size != count:
                raise WeightsError(f"{path}: tensor {name!r} holds {a.size} values, its shape "
                                   f"{shape} needs {count}.")
            out[name] = a.reshape(shape)
    return out


def check_file(path) -> None:
    """Checks, without reading the data, that ``path`` is a complete safetensors file holding
    exactly timm's ``pnasnet5large`` tensors with their shapes; raises :class:`WeightsError`."""
    header, start = _header(path)
    want = timm_reference()["tensors"]
    got = {k: tuple(v.get("shape", ())) for k, v in header.items() if isinstance(v, dict)}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    shapes = [f"{k}: {got[k]} (expected {want[k]})" for k in want if k in got and got[k] != want[k]]
    end = max((v["data_offsets"][1] for v in header.values()
               if isinstance(v, dict) and "data_offsets" in v), default=0)
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing ({', '.join(missing[:3])}...)")
    if extra:
        problems.append(f"{len(extra)} unexpected tensor(s) ({', '.join(extra[:3])}...)")
    if shapes:
        problems.append(f"{len(shapes)} of another shape ({'; '.join(shapes[:3])})")
    if start + end != os.path.getsize(path):
        problems.append(f"its data ends at byte {start + end} but the file has "
                        f"{os.path.getsize(path)} (truncated or padded)")
    if problems:
        raise WeightsError(f"{path} is not timm's {TIMM_MODEL} file: " + "; ".join(problems) + ".")


def _block_id(cell: str) -> str:
    """timm's cell module name -> the Keras cells' layer-name suffix."""
    stem = re.fullmatch(r"cell_stem_(\d)", cell)
    if stem:
        return f"stem_{int(stem.group(1)) + 1}"
    return cell[len("cell_"):]


@lru_cache(maxsize=1)
def _cells() -> dict:
    """``{block_id: (kind, cell genotype)}`` of PNASNet5Large, from the plan the model is built by."""
    from ..models import PNASNET5_LARGE, cell_plan

    a = PNASNET5_LARGE
    filters = a["penultimate_filters"] // (a["genotype"].normal.width * a["filter_multiplier"] ** 2)
    plan = cell_plan(a["stem"], a["num_cells"], filters, a["filter_multiplier"], a["skip_reduction"])
    g = a["genotype"]
    return {c.block_id: (c.kind, g.normal if c.kind == "normal" else g.reduction) for c in plan}


def keras_name(name: str) -> tuple[str, int, str] | None:
    """Where timm tensor ``name`` goes: ``(Keras layer name, index in layer.weights, kind)``, with
    kind ``conv``, ``depthwise``, ``pointwise``, ``bn`` or ``dense``; ``None`` for a skipped buffer.

    Raises ``KeyError`` for a name that is not part of timm's ``pnasnet5large``.
    """
    from ..cells import part_name
    from ..genotypes import OP_SPECS

    *path, leaf = name.split(".")
    if leaf in SKIPPED:
        return None
    if path == ["conv_0", "conv"] and leaf == "weight":
        return "stem_conv1", 0, "conv"
    if path == ["conv_0", "bn"] and leaf in _BN:
        return "stem_bn1", _BN[leaf], "bn"
    if path == ["last_linear"] and leaf in ("weight", "bias"):
        return "predictions", int(leaf == "bias"), "dense"
    if not path or path[0] not in _cell_modules():
        raise KeyError(name)
    block_id = _block_id(path[0])
    kind, cell = _cells()[block_id]
    rest = path[1:]
    bn = leaf in _BN
    if rest == ["conv_1x1", "conv"] and leaf == "weight":
        return f"{kind}_conv_1_{block_id}", 0, "conv"
    if rest == ["conv_1x1", "bn"] and bn:
        return f"{kind}_bn_1_{block_id}", _BN[leaf], "bn"
    if rest == ["conv_prev_1x1", "conv"] and leaf == "weight":
        return f"adjust_conv_projection_{block_id}", 0, "conv"
    if rest in (["conv_prev_1x1", "bn"], ["conv_prev_1x1", "final_path_bn"]) and bn:
        return f"adjust_bn_{block_id}", _BN[leaf], "bn"
    if len(rest) == 3 and rest[0] == "conv_prev_1x1" and rest[1] in ("path_1", "path_2") \
            and rest[2] == "conv" and leaf == "weight":
        return f"adjust_conv_{rest[1][-1]}_{block_id}", 0, "conv"
    m = re.fullmatch(r"comb_iter_(\d+)_(left|right)", rest[0]) if rest else None
    if m is None or int(m.group(1)) >= len(cell.blocks):
        raise KeyError(name)
    b, side = int(m.group(1)), m.group(2)
    part = part_name(kind, cell, b + 1, side, block_id)
    family = OP_SPECS[cell.blocks[b].ops[0 if side == "left" else 1]].family
    sub = rest[1:]
    if family == "sep_conv":
        sep = re.fullmatch(r"separable_(\d)", sub[0]) if len(sub) == 2 else None
        if sep and sub[1] in ("depthwise_conv2d", "pointwise_conv2d") and leaf == "weight":
            kind_ = sub[1].split("_")[0]
            return f"separable_conv_{sep.group(1)}_{part}", int(kind_ == "pointwise"), kind_
        bn_sep = re.fullmatch(r"bn_sep_(\d)", sub[0]) if len(sub) == 1 else None
        if bn_sep and bn:
            return f"separable_conv_{bn_sep.group(1)}_bn_{part}", _BN[leaf], "bn"
        raise KeyError(name)
    # A strided identity is ReLU-1x1 conv-BN ({part}_conv); a pool of another width is followed by
    # a 1x1 conv-BN ({part}_projection_conv), as ops.apply_op names them.
    base = part if family == "identity" else f"{part}_projection"
    if sub == ["conv"] and leaf == "weight":
        return f"{base}_conv", 0, "conv"
    if sub == ["bn"] and bn:
        return f"{base}_bn", _BN[leaf], "bn"
    raise KeyError(name)


@lru_cache(maxsize=1)
def _cell_modules() -> frozenset:
    ids = _cells()
    return frozenset(
        (f"cell_stem_{int(i[5:]) - 1}" if i.startswith("stem_") else f"cell_{i}") for i in ids)


def to_keras(array: np.ndarray, kind: str, dtype="float32") -> np.ndarray:
    """A PyTorch tensor in Keras' layout (channels-last kernels, ``(in, out)`` dense kernels)."""
    a = np.asarray(array, dtype)
    if kind in ("conv", "pointwise"):
        return a.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    if kind == "depthwise":
        return a.transpose(2, 3, 0, 1)  # (in, 1, kh, kw) -> (kh, kw, in, 1)
    if kind == "dense" and a.ndim == 2:
        return a.T
    return a


def keras_layers(tensors: dict) -> dict[str, list[np.ndarray]]:
    """``{Keras layer name: [weights in layer.weights order]}`` from timm's ``{name: array}``.

    Every tensor must map (see :func:`keras_name`) and every slot of every layer must be filled
    exactly once; otherwise :class:`WeightsError` says which names did not fit.
    """
    slots: dict[str, dict[int, np.ndarray]] = {}
    unknown, twice = [], []
    for name, array in tensors.items():
        try:
            where = keras_name(name)
        except KeyError:
            unknown.append(name)
            continue
        if where is None:
            continue
        layer, index, kind = where
        if index in slots.setdefault(layer, {}):
            twice.append(name)
        slots[layer][index] = to_keras(array, kind)
    gaps = [layer for layer, s in slots.items() if sorted(s) != list(range(len(s)))]
    if unknown or twice or gaps:
        raise WeightsError(
            f"These tensors are not timm's pnasnet5large: unknown {unknown[:5]}, mapped twice "
            f"{twice[:5]}, layers missing a weight {gaps[:5]}.")
    return {layer: [s[i] for i in range(len(s))] for layer, s in slots.items()}


def write_keras_h5(layer_weights: dict, path, record: dict | None) -> None:
    """Writes ``{layer: [arrays]}`` in the keras.applications h5 layout that
    :func:`keras_nasnet.weights.load_h5_by_name` reads, with the architecture record."""
    import h5py

    from .h5 import RECORD_ATTR

    names = {"conv": ["kernel"], "sep": ["depthwise_kernel", "pointwise_kernel"],
             "bn": ["gamma", "beta", "moving_mean", "moving_variance"], "dense": ["kernel", "bias"]}
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [n.encode() for n in layer_weights]
            f.attrs["backend"] = b"tensorflow"
            if record is not None:
                f.attrs[RECORD_ATTR] = json.dumps(record, sort_keys=True)
            for layer, arrays in layer_weights.items():
                kind = ("bn" if len(arrays) == 4 else "dense" if layer == "predictions"
                        else "sep" if len(arrays) == 2 else "conv")
                g = f.create_group(layer)
                wnames = [f"{layer}/{n}".encode() for n in names[kind]]
                g.attrs["weight_names"] = wnames
                for n, a in zip(wnames, arrays):
                    g.create_dataset(n.decode(), data=a)


def read_record_ok(path) -> bool:
    """Whether ``path`` is a converted file this version wrote (readable, with PNASNet's record)."""
    from .architecture import differences
    from .h5 import read_record

    try:
        record = read_record(path)
    except WeightsError:
        return False
    return record is not None and not differences(record, pnasnet_record())


def pnasnet_record() -> dict:
    """The architecture record of ``PNASNet5Large()`` (with its 1000-class top)."""
    from ..models import PNASNET5_LARGE
    from .architecture import architecture_record

    a = dict(PNASNET5_LARGE)
    return architecture_record(
        a.pop("genotype"), **a, include_top=True, classes=1000, auxiliary_head=False,
        include_preprocessing=False, bn_epsilon=1e-3)


def convert(source, out_path, tensors: dict | None = None) -> str:
    """Converts timm's ``pnasnet5large`` weights into a Keras weights file at ``out_path``.

    Args:
        source: timm's safetensors file (ignored when ``tensors`` is given).
        out_path: ``*.h5`` (keras.applications layout with the architecture record; loads by layer
            name) or ``*.weights.h5`` (Keras 3's own format, written by ``save_weights``).
        tensors: timm's state dict as ``{name: NumPy array}`` instead of a file (tests convert a
            PyTorch model's ``state_dict()`` this way).

    Returns ``out_path``.
    """
    out_path = os.fspath(out_path)
    if tensors is None:
        check_file(source)
        tensors = read_safetensors(source)
    layer_weights = keras_layers(tensors)
    if out_path.endswith(".weights.h5"):
        # Keras' own format stores weights by layer class and order: fill a model and save it.
        from ..models import PNASNet5Large
        from .h5 import load_h5_by_name

        model = PNASNet5Large(weights=None, input_shape=(64, 64, 3))
        with atomic_write(out_path, suffix=".h5") as tmp:
            write_keras_h5(layer_weights, tmp, pnasnet_record())
            load_h5_by_name(model, tmp)
        with atomic_write(out_path, suffix=".weights.h5") as tmp:
            model.save_weights(str(tmp))
    elif out_path.endswith(".h5"):
        write_keras_h5(layer_weights, out_path, pnasnet_record())
    else:
        raise WeightsError(f"Write the converted weights to a .h5 or .weights.h5 file, not {out_path!r}.")
    return out_path
