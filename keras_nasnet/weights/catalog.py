"""The weight registry: every known weight set, and turning a ``weights=`` argument into one.

The official ``keras.applications`` ImageNet files are listed here; the files this project trained
are read from ``manifest.json`` in the package's ``weights/files`` folder (shipped in the wheel).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path

#: Where ``keras.applications`` publishes the NASNet ImageNet weights.
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/nasnet/"
#: Environment variable that replaces the base URL (mirrors, air-gapped sites).
URL_ENV = "KERAS_NASNET_WEIGHTS_URL"
#: Environment variable that replaces the folder of the project's own weights and manifest.
DIR_ENV = "KERAS_NASNET_WEIGHTS_DIR"


class WeightsError(RuntimeError):
    """Weights could not be fetched, verified or loaded."""


def project_weights_dir() -> Path:
    """The folder holding ``manifest.json`` and the project's weight files: the package's
    ``weights/files`` (installed with it), or ``$KERAS_NASNET_WEIGHTS_DIR``."""
    return Path(os.environ.get(DIR_ENV) or Path(__file__).resolve().parent / "files")


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One known weight file.

    Attributes:
        name: registry name, usable as ``weights=name``.
        architecture: the architecture it fits (``nasnet_mobile``, ``nasnet_cifar_6@768``...).
        dataset: what it was trained on (``imagenet``, ``cifar10``); ``weights=dataset`` picks it.
        include_top: whether the file holds the classifier.
        file_name: file name in the cache and on the server.
        origin_name: file name at the base URL (official files are renamed when cached).
        hash_algorithm: ``md5`` or ``sha256``.
        file_hash: hex digest of the whole file; ``None`` where no digest is published (then the
            file is checked by its structure: see ``converter``).
        input_size: the training resolution.
        preprocessing: ``imagenet`` (inputs in [-1, 1], see ``preprocess_input``) or ``raw``
            (pixels in [0, 255], normalised inside the model).
        classes: output classes of the top.
        metrics: published or measured accuracy, e.g. ``{"top1": 0.744}``.
        source: where the metrics come from.
        base_url: server folder; ``None`` for files shipped with the package.
        recipe: how the file was produced (project weights).
        model: the ``keras_nasnet`` constructor that builds the architecture (``"NASNetMobile"``,
            ``"NASNetCIFAR"``...).
        arguments: the keyword arguments that constructor takes to build it (e.g.
            ``{"num_cells": 1, "penultimate_filters": 384}``); see :meth:`build`.
        converter: ``None`` for a Keras file; ``"timm"`` for timm's PyTorch weights, checked
            against timm's list of tensor names and shapes, converted once into Keras' cache and
            loaded from there (see :mod:`keras_nasnet.weights.timm`).
        license: the license the weights are published under.
    """

    name: str
    architecture: str
    dataset: str
    include_top: bool
    file_name: str
    origin_name: str
    hash_algorithm: str
    file_hash: str | None
    input_size: int
    preprocessing: str
    classes: int
    metrics: dict
    source: str
    base_url: str | None = KERAS_BASE_URL
    recipe: str | None = None
    model: str | None = None
    arguments: dict = dataclasses.field(default_factory=dict)
    converter: str | None = None
    license: str | None = None

    def build(self, **kwargs):
        """The model these weights are for, with them loaded: ``keras_nasnet.<model>(**arguments,
        weights=name, include_top=include_top, **kwargs)``."""
        import keras_nasnet

        if self.model is None or not callable(getattr(keras_nasnet, self.model, None)):
            raise WeightsError(f"Weights {self.name!r} name no keras_nasnet constructor "
                               f"(model={self.model!r}).")
        kwargs = {"weights": self.name, "include_top": self.include_top, **self.arguments, **kwargs}
        return getattr(keras_nasnet, self.model)(**kwargs)

    @property
    def official_url(self) -> str | None:
        """The file's URL at its publisher, whatever mirror is configured."""
        if self.base_url is None:
            return None
        return self.base_url.rstrip("/") + "/" + self.origin_name

    @property
    def url(self) -> str | None:
        """The URL the file is downloaded from (honours ``KERAS_NASNET_WEIGHTS_URL``: a URL, or a
        local folder holding the files)."""
        if self.base_url is None:
            return None
        base = os.environ.get(URL_ENV) or self.base_url
        if base.lower().startswith("file://") and not base[len("file://"):].startswith("/"):
            # urllib reads file://mirror as the host "mirror" and drops it: the folder is lost.
            raise WeightsError(
                f"{URL_ENV}={base!r}: a file:// URL needs an absolute path (file:///abs/folder); or "
                f"set {URL_ENV} to the folder path itself ({base[len('file://'):]!r}).")
        if "://" not in base:  # a plain path: a folder of the files (a mounted share, a USB copy)
            base = Path(base).expanduser().resolve().as_uri()
        return base.rstrip("/") + "/" + self.origin_name


def _keras_spec(arch, top, origin, cached, md5, size, metrics):
    return WeightSpec(
        name=f"{arch}_imagenet" + ("" if top else "_notop"),
        architecture=arch, dataset="imagenet", include_top=top, file_name=cached,
        origin_name=origin, hash_algorithm="md5", file_hash=md5, input_size=size,
        preprocessing="imagenet", classes=1000, metrics=metrics,
        source="keras.applications (keras-applications README, ILSVRC-2012 val, single crop)",
        model={"nasnet_mobile": "NASNetMobile", "nasnet_large": "NASNetLarge"}[arch],
    )


_MOBILE = {"top1": 0.74366, "top5": 0.91854}
_LARGE = {"top1": 0.82498, "top5": 0.96004}
_OFFICIAL = [
    _keras_spec("nasnet_mobile", True, "NASNet-mobile.h5", "nasnet_mobile.h5",
                "020fb642bf7360b370c678b08e0adf61", 224, _MOBILE),
    _keras_spec("nasnet_mobile", False, "NASNet-mobile-no-top.h5", "nasnet_mobile_no_top.h5",
                "1ed92395b5b598bdda52abe5c0dbfd63", 224, _MOBILE),
    _keras_spec("nasnet_large", True, "NASNet-large.h5", "nasnet_large.h5",
                "11577c9a518f0070763c2b964a382f17", 331, _LARGE),
    _keras_spec("nasnet_large", False, "NASNet-large-no-top.h5", "nasnet_large_no_top.h5",
                "d81d89dc07e6e56530c4e77faddd61b5", 331, _LARGE),
]

#: timm's port of TF-slim's PNASNet-5 Large checkpoint, pinned to the hub revision that added it.
#: No SHA-256 of this file is published where it could be checked from here, so it is verified by
#: its structure instead: every one of timm's 1,380 tensor names with its shape, and a length that
#: ends exactly where the header's last tensor ends (``keras_nasnet.weights.timm.check_file``).
TIMM_PNASNET_REVISION = "f9a5fe500f179855bb3b97d9550b32b2cc78c0da"
_PNASNET = WeightSpec(
    name="pnasnet5_large_imagenet", architecture="pnasnet5_large", dataset="imagenet",
    include_top=True, file_name="timm_pnasnet5large.tf_in1k.safetensors",
    origin_name="model.safetensors", hash_algorithm="sha256", file_hash=None, input_size=331,
    preprocessing="imagenet", classes=1000, metrics={"top1": 0.829, "top5": 0.962},
    source="TF-slim's pnasnet-5_large_2017_12_13 ImageNet checkpoint as ported by timm "
           "(pnasnet5large.tf_in1k); metrics from TF-slim's README (ILSVRC-2012 val, single crop)",
    base_url=f"https://huggingface.co/timm/pnasnet5large.tf_in1k/resolve/{TIMM_PNASNET_REVISION}",
    converter="timm", license="Apache-2.0", model="PNASNet5Large",
)

# Manifest fields: name -> (type check, what the value must be, default when optional).
_REQUIRED = object()
_MANIFEST_FIELDS = {
    "name": (lambda v: isinstance(v, str) and v != "", "a non-empty string", _REQUIRED),
    "architecture": (lambda v: isinstance(v, str) and v != "", "a non-empty string", _REQUIRED),
    "dataset": (lambda v: isinstance(v, str) and v != "", "a non-empty string", _REQUIRED),
    "file": (lambda v: isinstance(v, str) and v != "" and "/" not in v and "\\" not in v,
             "a file name in the manifest's folder", _REQUIRED),
    "sha256": (lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None,
               "64 lowercase hex digits", _REQUIRED),
    "include_top": (lambda v: isinstance(v, bool), "true or false", True),
    "input_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                   "a positive integer", 32),
    "classes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                "a positive integer", 10),
    "preprocessing": (lambda v: v in ("raw", "imagenet"), '"raw" or "imagenet"', "raw"),
    "metrics": (lambda v: isinstance(v, dict), "an object", {}),
    "source": (lambda v: isinstance(v, str), "a string", "trained by keras_nasnet"),
    "command": (lambda v: v is None or isinstance(v, str), "a string", None),
    # The constructor and its arguments (added later: older manifests derive them from
    # "architecture", see _legacy_constructor).
    "model": (lambda v: v is None or (isinstance(v, str) and v.isidentifier()), "a constructor name",
              None),
    "arguments": (lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v)),
                  "an object of keyword arguments", None),
}


def _legacy_constructor(architecture: str):
    """``(model, arguments)`` for a manifest entry written before entries named their constructor:
    ``nasnet_cifar_N@P`` was the only architecture such entries held."""
    m = re.fullmatch(r"nasnet_cifar_(\d+)@(\d+)", architecture)
    if m is None:
        return None, {}
    return "NASNetCIFAR", {"num_cells": int(m.group(1)), "penultimate_filters": int(m.group(2))}


def _manifest_entry(e) -> tuple[WeightSpec | None, str | None]:
    """A manifest entry as a spec, or ``None`` and what is wrong with it."""
    if not isinstance(e, dict):
        return None, f"is {type(e).__name__}, not an object"
    values, bad = {}, []
    for key, (ok, what, default) in _MANIFEST_FIELDS.items():
        if key not in e:
            if default is _REQUIRED:
                bad.append(f"missing {key!r}")
            values[key] = default
        elif not ok(e[key]):
            bad.append(f"{key!r} must be {what}, got {e[key]!r:.60}")
        else:
            values[key] = e[key]
    if bad:
        return None, "; ".join(bad)
    model, arguments = values["model"], values["arguments"]
    if model is None:
        model, legacy = _legacy_constructor(values["architecture"])
        arguments = legacy if arguments is None else arguments
    return WeightSpec(
        name=values["name"], architecture=values["architecture"], dataset=values["dataset"],
        include_top=values["include_top"], file_name=values["file"], origin_name=values["file"],
        hash_algorithm="sha256", file_hash=values["sha256"], input_size=values["input_size"],
        preprocessing=values["preprocessing"], classes=values["classes"],
        metrics=values["metrics"], source=values["source"], base_url=None,
        recipe=values["command"], model=model, arguments=dict(arguments or {}),
    ), None


def read_manifest(folder: Path) -> tuple[list[WeightSpec], list[str]]:
    """The valid entries of ``folder/manifest.json`` and a description of each broken one.

    A broken entry (or a manifest that does not parse) never hides the other weight sets: it is
    reported, not raised, so the official files stay usable.
    """
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        return [], []
    try:
        with open(manifest) as f:
            entries = json.load(f)["weights"]
        if not isinstance(entries, list):
            raise TypeError(f"'weights' is {type(entries).__name__}, not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = "no 'weights' list" if isinstance(e, KeyError) else str(e)
        return [], [f"{manifest} cannot be read ({what}); its weight sets are unavailable"]
    specs, problems = [], []
    for i, e in enumerate(entries):
        spec, problem = _manifest_entry(e)
        if problem:
            label = f"{e.get('name')!r}" if isinstance(e, dict) and isinstance(e.get("name"), str) else ""
            problems.append(f"{manifest} entry {i} {label}: {problem}".replace("  ", " "))
        else:
            specs.append(spec)
    return specs, problems


def registry() -> dict[str, WeightSpec]:
    """Every known weight set by name: the official files, then the project's own.

    Broken manifest entries are left out with a warning naming each (see :func:`read_manifest`).
    """
    project, problems = read_manifest(project_weights_dir())
    for p in problems:
        warnings.warn(f"keras_nasnet: {p}", stacklevel=2)
    return {s.name: s for s in _OFFICIAL + [_PNASNET] + project}


@dataclasses.dataclass(frozen=True)
class FileWeights:
    """``weights="<path>"``: a local file, loaded without hash checks."""

    path: str
    preprocessing: str | None = None


def resolve(weights, architecture, include_top, classes, classifier_activation="softmax"):
    """Turns a constructor's ``weights`` argument into a :class:`WeightSpec`, a :class:`FileWeights`
    or ``None``, raising a clear ``ValueError`` for anything that cannot fit the model.

    A string that is a registry name or a dataset (``"imagenet"``, ``"cifar10"``) always means those
    weights, even if a file of that name sits in the current folder. Any other string is a path,
    and a file is known by its suffix (``.h5`` or ``.weights.h5``, which also says its layout):
    a missing file, a ``.keras`` model or another suffix is refused here, before the model is
    built.
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike):
        return _file_weights(os.fspath(weights))
    if not isinstance(weights, str):
        raise ValueError(f"weights must be None, a name or a path; got {type(weights).__name__}.")
    project, problems = read_manifest(project_weights_dir())
    reg = {s.name: s for s in _OFFICIAL + [_PNASNET] + project}
    datasets = sorted({s.dataset for s in reg.values()})
    if weights in reg:
        spec = reg[weights]
        if spec.architecture != architecture:
            raise ValueError(
                f"Weights {weights!r} are for {spec.architecture}, but this model is "
                f"{architecture or 'an architecture without registered weights'}."
            )
    elif weights in datasets:
        matches = [s for s in reg.values() if s.dataset == weights and s.architecture == architecture]
        if not matches:
            known = sorted({s.architecture for s in reg.values() if s.dataset == weights})
            raise ValueError(
                f"There are no {weights!r} weights for this architecture "
                f"({architecture or 'a custom configuration'}); {weights!r} weights exist for: "
                f"{', '.join(known)}." + _problems_note(problems)
            )
        # Prefer the file whose top matches; a file with a top also serves a model without one.
        matches.sort(key=lambda s: s.include_top != include_top)
        spec = matches[0]
    elif os.path.isfile(weights) or _looks_like_a_path(weights):
        return _file_weights(weights)
    else:
        raise ValueError(
            f"weights={weights!r} is not None, a dataset ({', '.join(datasets)}), a registry "
            f"name ({', '.join(reg)}) or an existing file." + _problems_note(problems)
        )
    if include_top and not spec.include_top:
        raise ValueError(f"Weights {spec.name!r} have no top; build the model with include_top=False.")
    if include_top and classes != spec.classes:
        raise ValueError(
            f"Weights {spec.name!r} have a {spec.classes}-class top; with include_top=True, classes "
            f"must be {spec.classes} (got {classes}). Use include_top=False for another head."
        )
    return spec


#: The weights files ``weights=`` loads, known by their suffix (which also says their layout).
WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


def _looks_like_a_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((*WEIGHTS_SUFFIXES, ".keras"))


def _file_weights(path: str) -> FileWeights:
    # Checked here, before the constructor builds the model (minutes for NASNetLarge on a CPU).
    if not os.path.isfile(path):
        raise ValueError(f"weights={path!r}: no such file (looked for {os.path.abspath(path)}).")
    if path.endswith(".keras"):
        raise ValueError(
            f"weights={path!r} is a whole saved model, not a weights file: load it with "
            f"keras.models.load_model({path!r}) after `import keras_nasnet`, or pass a file written "
            "by model.save_weights('name.weights.h5')."
        )
    if not path.endswith(WEIGHTS_SUFFIXES):
        raise ValueError(
            f"weights={path!r}: unknown weights file type. A weights file is known by its suffix, "
            "which also says its layout: .h5 (keras.applications layout, loaded by layer name) or "
            ".weights.h5 (written by model.save_weights()); name the file with its suffix."
        )
    return FileWeights(path)


def _problems_note(problems) -> str:
    if not problems:
        return ""
    return " The project's weight manifest has broken entries, left out: " + " | ".join(problems) + "."
