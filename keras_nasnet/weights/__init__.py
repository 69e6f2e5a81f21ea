"""The weight registry, verified downloads into Keras' cache, and loading by layer name.

Every weight set the package knows is a :class:`WeightSpec` in :data:`REGISTRY`: the official
``keras.applications`` ImageNet files, and the files this project trained, read from
``weights/manifest.json`` at the repository root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

#: Where ``keras.applications`` publishes the NASNet ImageNet weights.
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/nasnet/"
#: Environment variable that replaces the base URL (mirrors, air-gapped sites).
URL_ENV = "KERAS_NASNET_WEIGHTS_URL"
#: Folder of the weights this project trained (repository root ``weights/``).
PROJECT_WEIGHTS_DIR = Path(
    os.environ.get("KERAS_NASNET_WEIGHTS_DIR", Path(__file__).resolve().parents[2] / "weights")
)


class WeightsError(RuntimeError):
    """Weights could not be fetched, verified or loaded."""


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
        file_hash: hex digest of the whole file.
        input_size: the training resolution.
        preprocessing: ``imagenet`` (inputs in [-1, 1], see ``preprocess_input``) or ``raw``
            (pixels in [0, 255], normalised inside the model).
        classes: output classes of the top.
        metrics: published or measured accuracy, e.g. ``{"top1": 0.744}``.
        source: where the metrics come from.
        base_url: server folder; ``None`` for files kept in the project's ``weights/`` folder.
        recipe: how the file was produced (project weights).
    """

    name: str
    architecture: str
    dataset: str
    include_top: bool
    file_name: str
    origin_name: str
    hash_algorithm: str
    file_hash: str
    input_size: int
    preprocessing: str
    classes: int
    metrics: dict
    source: str
    base_url: str | None = KERAS_BASE_URL
    recipe: str | None = None

    @property
    def url(self) -> str | None:
        """The URL the file is downloaded from (honours ``KERAS_NASNET_WEIGHTS_URL``)."""
        if self.base_url is None:
            return None
        base = os.environ.get(URL_ENV) or self.base_url
        return base.rstrip("/") + "/" + self.origin_name


def _keras_spec(arch, top, origin, cached, md5, size, metrics):
    return WeightSpec(
        name=f"{arch}_imagenet" + ("" if top else "_notop"),
        architecture=arch, dataset="imagenet", include_top=top, file_name=cached,
        origin_name=origin, hash_algorithm="md5", file_hash=md5, input_size=size,
        preprocessing="imagenet", classes=1000, metrics=metrics,
        source="keras.applications (keras-applications README, ILSVRC-2012 val, single crop)",
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


def _project_specs(folder: Path) -> list[WeightSpec]:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return []
    with open(manifest) as f:
        entries = json.load(f)["weights"]
    specs = []
    for e in entries:
        specs.append(WeightSpec(
            name=e["name"], architecture=e["architecture"], dataset=e["dataset"],
            include_top=e.get("include_top", True), file_name=e["file"], origin_name=e["file"],
            hash_algorithm="sha256", file_hash=e["sha256"], input_size=e.get("input_size", 32),
            preprocessing=e.get("preprocessing", "raw"), classes=e.get("classes", 10),
            metrics=e.get("metrics", {}), source=e.get("source", "trained by keras_nasnet"),
            base_url=None, recipe=e.get("command"),
        ))
    return specs


def registry() -> dict[str, WeightSpec]:
    """Every known weight set by name: the official files, then the project's own."""
    specs = _OFFICIAL + _project_specs(PROJECT_WEIGHTS_DIR)
    return {s.name: s for s in specs}


@dataclasses.dataclass(frozen=True)
class FileWeights:
    """``weights="<path>"``: a local file, loaded without hash checks."""

    path: str
    preprocessing: str | None = None


def resolve(weights, architecture, include_top, classes, classifier_activation="softmax"):
    """Turns a constructor's ``weights`` argument into a :class:`WeightSpec`, a :class:`FileWeights`
    or ``None``, raising a clear ``ValueError`` for anything that cannot fit the model."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None, a name or a path; got {type(weights).__name__}.")
    weights = os.fspath(weights)
    reg = registry()
    if weights in reg:
        spec = reg[weights]
        if spec.architecture != architecture:
            raise ValueError(
                f"Weights {weights!r} are for {spec.architecture}, but this model is "
                f"{architecture or 'an architecture without registered weights'}."
            )
    elif os.path.isfile(weights):
        return FileWeights(weights)
    else:
        matches = [s for s in reg.values() if s.dataset == weights and s.architecture == architecture]
        if not matches:
            datasets = sorted({s.dataset for s in reg.values()})
            if weights in datasets:
                known = sorted({s.architecture for s in reg.values() if s.dataset == weights})
                raise ValueError(
                    f"There are no {weights!r} weights for this architecture "
                    f"({architecture or 'a custom configuration'}); {weights!r} weights exist for: "
                    f"{', '.join(known)}."
                )
            raise ValueError(
                f"weights={weights!r} is not None, a dataset ({', '.join(datasets)}), a registry "
                f"name ({', '.join(reg)}) or an existing file."
            )
        # Prefer the file whose top matches; a file with a top also serves a model without one.
        matches.sort(key=lambda s: s.include_top != include_top)
        spec = matches[0]
    if include_top and not spec.include_top:
        raise ValueError(f"Weights {spec.name!r} have no top; build the model with include_top=False.")
    if include_top and classes != spec.classes:
        raise ValueError(
            f"Weights {spec.name!r} have a {spec.classes}-class top; with include_top=True, classes "
            f"must be {spec.classes} (got {classes}). Use include_top=False for another head."
        )
    return spec


def cache_dir() -> Path:
    """Keras' model cache folder: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def file_digest(path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manual_hint(spec: WeightSpec, dest: Path) -> str:
    return (
        f"Download {spec.url} on a connected machine (or run `python -m keras_nasnet.weights fetch "
        f"{spec.name}` there) and place the file at {dest}; or set {URL_ENV} to a mirror that serves "
        f"{spec.origin_name}."
    )


def fetch(spec: WeightSpec, progress: bool = True) -> Path:
    """Returns the local path of a verified copy of ``spec``'s file, downloading it if needed.

    The download goes to a temporary file beside the destination, is checked against the registry's
    hash, and only then renamed into place, so an interrupted or bad transfer never sits where a good
    file should. A cached file that fails its hash is fetched again.
    """
    if spec.base_url is None:
        path = PROJECT_WEIGHTS_DIR / spec.file_name
        if not path.is_file():
            raise WeightsError(f"The project weights file {path} for {spec.name!r} is missing.")
        verify(spec, path)
        return path
    dest = cache_dir() / spec.file_name
    if dest.is_file():
        if file_digest(dest, spec.hash_algorithm) == spec.file_hash:
            return dest
        print(f"keras_nasnet: cached {dest} fails its {spec.hash_algorithm} check; fetching it again.",
              file=sys.stderr)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = spec.url
    fd, tmp = tempfile.mkstemp(prefix=spec.file_name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out, spec, dest, progress)
        digest = file_digest(tmp, spec.hash_algorithm)
        if digest != spec.file_hash:
            raise WeightsError(
                f"{spec.file_name} from {url} has {spec.hash_algorithm} {digest}, expected "
                f"{spec.file_hash}; the file was not kept. {_manual_hint(spec, dest)}"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _download(url, out, spec, dest, progress):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            total = int(r.headers.get("Content-Length") or 0)
            bar = None
            if progress and sys.stderr.isatty():
                from tqdm import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=spec.file_name)
            got = 0
            for chunk in iter(lambda: r.read(1 << 20), b""):
                out.write(chunk)
                got += len(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
            if total and got != total:
                raise WeightsError(
                    f"Download of {spec.file_name} from {url} stopped after {got} of {total} bytes; "
                    f"nothing was kept. {_manual_hint(spec, dest)}"
                )
    except urllib.error.HTTPError as e:
        raise WeightsError(
            f"HTTP error {e.code} fetching {spec.file_name} from {url}. {_manual_hint(spec, dest)}"
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        if isinstance(e, WeightsError):
            raise
        reason = getattr(e, "reason", e)
        raise WeightsError(
            f"Could not fetch {spec.file_name} from {url} ({reason}); no network? "
            f"{_manual_hint(spec, dest)}"
        ) from None


def verify(spec: WeightSpec, path) -> None:
    """Raises :class:`WeightsError` unless ``path`` has the registry's hash for ``spec``."""
    digest = file_digest(path, spec.hash_algorithm)
    if digest != spec.file_hash:
        raise WeightsError(
            f"{path} has {spec.hash_algorithm} {digest}, but {spec.name!r} expects {spec.file_hash}."
        )


def _weight_layers(model):
    from ..ops import ScheduledDropPath

    return [l for l in model.layers if l.weights and not isinstance(l, ScheduledDropPath)]


def read_h5(path) -> dict[str, list[np.ndarray]]:
    """Reads a legacy-layout Keras h5 weights file into ``{layer name: [arrays]}``.

    Both weights-only files and full-model files (``model_weights`` group) are read; this is the
    layout of the official ``keras.applications`` files.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path} is not a readable HDF5 weights file ({e}).") from None
    with f:
        g = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in g.attrs:
            raise WeightsError(
                f"{path} has no 'layer_names': it is not a Keras h5 weights file. Files written by "
                "keras `save_weights(...weights.h5)` are loaded when the name ends in .weights.h5."
            )
        out = {}
        for lname in g.attrs["layer_names"]:
            lname = lname.decode() if isinstance(lname, bytes) else str(lname)
            names = g[lname].attrs.get("weight_names", [])
            arrays = [np.asarray(g[lname][w.decode() if isinstance(w, bytes) else w]) for w in names]
            if arrays:
                out[lname] = arrays
        return out


def write_h5(model, path) -> None:
    """Writes ``model``'s weights in the legacy layout :func:`read_h5` (and Keras 2) read."""
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as f:
        layers = _weight_layers(model)
        f.attrs["layer_names"] = [l.name.encode() for l in layers]
        f.attrs["backend"] = b"tensorflow"
        for layer in layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{w.path.split('/')[-1]}".encode() for w in layer.weights]
            g.attrs["weight_names"] = names
            for n, w in zip(names, layer.weights):
                g.create_dataset(n.decode(), data=np.asarray(w.numpy()))
    os.replace(tmp, path)


def load_h5_by_name(model, path) -> None:
    """Loads a legacy-layout h5 file into ``model`` by layer name, checking that *every* weight
    layer of the model is matched with the right shapes (Keras' own by-name loading skips
    silently). Extra layers in the file (an auxiliary head, a top) are ignored."""
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
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} layer(s) not in the file: {', '.join(missing[:10])}"
                         + (" ..." if len(missing) > 10 else ""))
        if mismatched:
            parts.append(f"{len(mismatched)} layer(s) with other shapes: {'; '.join(mismatched[:5])}"
                         + (" ..." if len(mismatched) > 5 else ""))
        raise WeightsError(f"Weights in {path} do not fit model {model.name!r}: " + ". ".join(parts)
                           + ". Nothing was loaded.")
    for layer, arrays in updates:
        layer.set_weights(arrays)


def load_file(model, path) -> None:
    """Loads weights from a file: ``*.weights.h5`` (Keras 3 native, by order) or ``*.h5`` (legacy
    layout, by name with a full check)."""
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except Exception as e:  # Keras raises several types; keep the message, add the file name.
            raise WeightsError(f"Could not load {path} into {model.name!r}: {e}") from None
    elif path.endswith(".h5") or path.endswith(".hdf5"):
        load_h5_by_name(model, path)
    else:
        raise WeightsError(
            f"Unknown weights file type {path!r}: use a .h5 file (keras.applications layout) or a "
            ".weights.h5 file written by model.save_weights()."
        )


def load_into(model, spec) -> None:
    """Loads a resolved ``weights`` argument (see :func:`resolve`) into ``model``."""
    if isinstance(spec, FileWeights):
        load_file(model, spec.path)
    else:
        load_h5_by_name(model, fetch(spec))
