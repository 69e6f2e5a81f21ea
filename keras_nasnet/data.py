"""CIFAR-10: loading from tfds, the official archives or image folders; the paper's split and
augmentation as a tf.data pipeline.

Arrays are uint8 ``(N, 32, 32, 3)`` images and int64 labels. Decoded arrays of a local source are
cached (``$KERAS_HOME/datasets/keras_nasnet``) so a second run starts in seconds.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

#: CIFAR-10 class names in the canonical label order 0..9 (the dataset's batches.meta order).
#: Image folders are mapped to labels with this list, never with the sorted folder order (the two
#: happen to coincide for CIFAR-10, but a sorted order is not the definition).
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: Size of the held-out reward split of the paper (appendix A.1).
VALIDATION_SIZE = 5000


class DataError(ValueError):
    """A data source that cannot be read, with a message that says how to fix it."""


def _cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "keras_nasnet"


def load_cifar10(source: str | os.PathLike | None = None, cache: bool = True):
    """Loads CIFAR-10 as ``((x_train, y_train), (x_test, y_test))`` uint8/int64 NumPy arrays.

    Args:
        source: ``None`` or ``"tfds"`` for TensorFlow Datasets (needs its download or a prepared
            ``TFDS_DATA_DIR``); a ``cifar-10-python.tar.gz`` archive or its extracted
            ``cifar-10-batches-py`` folder; or a folder or zip with ``train/<class>/*`` and
            ``test/<class>/*`` images (PNG or JPEG).
        cache: keep decoded arrays of a local source in an ``.npz`` cache keyed by its size and
            modification time (of every file in it, for a folder).
    """
    if source is None or str(source) == "tfds":
        return _from_tfds()
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"CIFAR-10 source must be a path or \"tfds\"; got {type(source).__name__} {source!r}.")
    if not str(source).strip():  # Path("") is the current folder: never what was meant
        raise DataError("CIFAR-10 source is an empty string. Pass cifar-10-python.tar.gz, its extracted "
                        "cifar-10-batches-py folder, or a folder/zip of images; or None for tfds.")
    if str(source).lower() == "tfds" and not Path(source).exists():
        raise DataError(f"CIFAR-10 source {str(source)!r}: write \"tfds\" (lower case) for TensorFlow Datasets.")
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"CIFAR-10 source {str(path)!r} does not exist. Pass cifar-10-python.tar.gz, its "
            "extracted cifar-10-batches-py folder, or a folder/zip of train/<class>/ and "
            "test/<class>/ images; or omit it to use tfds."
        )
    if path.is_dir() and not (path / "data_batch_1").exists() and (path / "cifar-10-batches-py").is_dir():
        return load_cifar10(path / "cifar-10-batches-py", cache)  # before stamping a whole parent folder
    cache_file = None
    if cache:
        # Pillow's arrays get their own key: the decoders differ slightly on JPEGs.
        pil = "|pil" if _decoder() == "pil" else ""
        ident = f"{path.resolve()}|{_stamp(path)}{pil}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:16]
        cache_file = _cache_dir() / f"cifar10-{key}.npz"
        if cache_file.is_file():
            cached = _read_cache(cache_file)
            if cached is not None:
                return cached
    if path.is_dir() and (path / "data_batch_1").exists():
        arrays = _from_batches(lambda n: (path / n).read_bytes(), str(path))
    elif path.is_dir():
        arrays = _from_image_folder(path)
    elif _looks_like_tar(path):
        arrays = _from_tar(path)
    elif zipfile.is_zipfile(path):
        arrays = _from_image_zip(path)
    elif _starts_like_zip(path):
        raise DataError(f"{path} is a corrupt or truncated zip archive (it has no central directory); "
                        "copy or download it again.")
    else:
        raise DataError(
            f"{path} is neither a folder, a tar archive nor a zip archive; cannot read CIFAR-10 "
            "from it."
        )
    if cache_file is not None:
        _write_cache(cache_file, arrays, path.resolve())
    return arrays


def _write_cache(cache_file: Path, arrays, source: Path) -> None:
    """Writes the decoded arrays to ``cache_file`` and removes older copies of the same source.

    The cache is only a copy: a folder that cannot be written (a read-only ``KERAS_HOME``, a full
    disk) costs a note on stderr, not the run. Each copy records its source, so a source rewritten
    (a new download, a ``cp`` without ``-p``) replaces its old copy (about 180 MB for CIFAR-10)
    instead of adding one.
    """
    from .fileio import savez_atomic

    (xtr, ytr), (xte, yte) = arrays
    try:
        # Unique temporary names: several workers may cache the same source at once.
        savez_atomic(cache_file, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                     source=np.asarray(str(source)))
    except OSError as e:
        print(f"keras_nasnet: cannot write the CIFAR-10 cache {cache_file} ({e.strerror or e}); "
              "going on without it (set KERAS_HOME to a writable folder to keep one).",
              file=sys.stderr)
        return
    for other in cache_file.parent.glob("cifar10-*.npz"):
        if other == cache_file:
            continue
        try:
            with np.load(other, allow_pickle=False) as z:
                same = "source" in z.files and str(z["source"]) == str(source)
            if same:
                other.unlink()
        except Exception:  # another process's file being replaced, a damaged copy: leave it
            pass


_FINGERPRINTS: dict = {}


def _fingerprint_key(source) -> str:
    if source is None or str(source) == "tfds":
        return "tfds"
    path = Path(source).expanduser().resolve()
    # With the files' sizes and times, as the decoded cache is keyed: a rewritten file is new data.
    return f"{path}|{_stamp(path) if path.exists() else ''}"


def _remember_fingerprint(source, arrays) -> str:
    """Fingerprints ``arrays`` (what :func:`load_cifar10` returned for ``source``) and keeps it, so
    a process that has loaded the data anyway does not read it a second time to fingerprint it."""
    (xtr, ytr), (xte, yte) = arrays
    h = hashlib.sha256()
    for a in (np.asarray(ytr, np.int64), np.asarray(yte, np.int64)):
        a = np.ascontiguousarray(a)
        h.update(repr(a.shape).encode())
        h.update(a.data)
    h.update(repr((np.shape(xtr), np.shape(xte))).encode())
    _FINGERPRINTS[_fingerprint_key(source)] = fp = h.hexdigest()[:16]
    return fp


def data_fingerprint(source: str | os.PathLike | None = None) -> str:
    """A short hash of CIFAR-10 as :func:`load_cifar10` reads it from ``source``: the image counts
    and every label, in order. The order fixes which images form the held-out split (a fixed
    permutation of it) and tells the sources apart: the python batches, an image tree or zip
    (sorted by class and name) and tfds each give another fingerprint, another data set. The
    pixels are left out on purpose: the same JPEG files decode a few levels apart with another
    decoder (Pillow on other backends, another TensorFlow), and such copies must still resume.
    So two trees of the same images in the same order, one JPEG and one PNG, share a fingerprint.
    Computed once per source and process: a read of the data (from the decoded cache, about a
    second for a local source) unless the process has loaded it already."""
    fp = _FINGERPRINTS.get(_fingerprint_key(source))
    return fp if fp is not None else _remember_fingerprint(source, load_cifar10(source))


def _stamp(path: Path) -> str:
    """Size and modification time of a source file, or of every file under a source folder: a
    folder's own times do not change when a file in it is rewritten, and a cache must not outlive
    the data it copies (about 0.1 s for a folder of 60,000 images)."""
    if not path.is_dir():
        st = path.stat()
        return f"{st.st_size}|{st.st_mtime_ns}"
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            h.update(f"{os.path.relpath(os.path.join(root, name), path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_cache(cache_file: Path):
    """The cached arrays, or None (after one line on stderr) when the cache file is unreadable.

    A cache is only a copy of the source, so a damaged one (a crash on an old version, a full disk,
    a truncated copy) is rebuilt rather than failing every later run until deleted by hand.
    """
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            arrays = (z["x_train"], z["y_train"]), (z["x_test"], z["y_test"])
        (xtr, ytr), (xte, yte) = arrays
        if xtr.shape[1:] != (32, 32, 3) or xte.shape[1:] != (32, 32, 3) or len(xtr) != len(ytr) \
                or len(xte) != len(yte):
            raise ValueError("unexpected array shapes")
        return arrays
    except Exception as e:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError, ...
        print(f"keras_nasnet: the CIFAR-10 cache {cache_file} is unreadable ({type(e).__name__}: "
              f"{str(e)[:100]}); rebuilding it from the source.", file=sys.stderr)
        return None


# Where tfds' ``cifar10`` builder downloads the data (tensorflow_datasets' image_classification/cifar.py).
_TFDS_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"


def _unresolvable(url: str) -> str | None:
    """Why ``url``'s host cannot be reached, when its name does not resolve; else ``None``.

    Offline, tfds retries its download ten times with back-off and fails only after about 3.5
    minutes; a failed name lookup answers in milliseconds. Behind a proxy the proxy resolves the
    name, so nothing is checked there.
    """
    proxies = urllib.request.getproxies()
    if any(k in proxies for k in ("https", "all")):
        return None
    host = urllib.parse.urlsplit(url).hostname
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as e:
        return f"{host} does not resolve ({e.strerror or e}): no network?"
    except OSError:  # anything else is left to tfds' own retries and message
        pass
    return None


def _from_tfds():
    try:
        import tensorflow_datasets as tfds

        # Read TFDS_DATA_DIR now: tfds reads it once, when it is first imported.
        data_dir = os.environ.get("TFDS_DATA_DIR") or None
        if not tfds.builder("cifar10", data_dir=data_dir).is_prepared():
            why = _unresolvable(_TFDS_CIFAR10_URL)
            if why:
                raise ConnectionError(f"cannot download {_TFDS_CIFAR10_URL}: {why}")
        splits = [tfds.load("cifar10", split=s, as_supervised=True, data_dir=data_dir)
                  for s in ("train", "test")]
    except Exception as e:  # tfds raises many types when offline; the advice is the same.
        missing = (f" The Python package {e.name!r} is missing: run `pip install {e.name}` (or "
                   "reinstall keras_nasnet, which requires it)."
                   if isinstance(e, ModuleNotFoundError) and e.name else "")
        raise DataError(
            f"Could not load CIFAR-10 from tensorflow-datasets ({type(e).__name__}: {str(e)[:200]})."
            f"{missing} Online, tfds downloads CIFAR-10 (about 160 MB) into TFDS_DATA_DIR (default "
            "~/tensorflow_datasets) on first use: check the network connection. Offline, pass a "
            "local copy instead: --data cifar-10-python.tar.gz (or its cifar-10-batches-py folder, "
            "or a folder/zip of train/<class>/ and test/<class>/ images), or set TFDS_DATA_DIR to a "
            "prepared tfds data folder."
        ) from None
    out = []
    for ds in splits:
        batches = list(tfds.as_numpy(ds.batch(5000)))
        out.append((np.concatenate([b[0] for b in batches]).astype(np.uint8),
                    np.concatenate([b[1] for b in batches]).astype(np.int64)))
    return tuple(out)


class UnsafePickleError(DataError):
    """A pickle that references something a CIFAR-10 batch never holds (it could run code)."""


def _numeric_dtype(*args):
    """``numpy.dtype`` for unpickling, refusing object dtypes (their items would be arbitrary)."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dtype}")
    return dtype


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes, and only for that."""
    if not isinstance(text, str) or encoding.lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _allowed_globals() -> dict:
    """The globals a CIFAR-10 batch pickle may reference, by ``(module, name)``.

    The official archive (Python 2 cPickle, protocol 2) holds a dict of bytes keys, a list of int
    labels, a list of bytes file names and one uint8 ndarray; the array pickles as
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``. Batches re-pickled
    with Python 3 may use numpy 2's ``numpy._core`` names, protocol 5's ``_frombuffer`` or protocol
    2's ``_codecs.encode`` for bytes. Nothing else is admitted.
    """
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _numeric_dtype,
               ("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = core.multiarray.scalar
        allowed[(f"{mod}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch, admitting only the globals of :func:`_allowed_globals`.

    Plain ``pickle`` calls whatever a file names (``os.system``, ...), so a crafted batch would run
    code on load; this unpickler refuses it before anything is called.
    """

    def find_class(self, module, name):
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise UnsafePickleError(f"{module}.{name}")
        return allowed[(module, name)]


class _EditedBatch(Exception):
    """Raised inside :func:`_unpickle_batch`'s guard for values a batch never holds."""


def _unpickle_batch(raw: bytes, name: str):
    try:
        d = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        x, y = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
        # Checked before the casts, which would wrap 256 to 0 and cut a label 1.7 to 1 silently.
        # (The labels' range is checked below, with the other label errors.)
        for what, a, top in (("pixels", x, 255), ("labels", y, None)):
            if a.size and (a.dtype.kind not in "ui" or (top is not None and (a.min() < 0 or a.max() > top))):
                raise _EditedBatch(
                    f"CIFAR-10 batch {name} has {what} of type {a.dtype} in {a.min()}..{a.max()}; a "
                    f"CIFAR-10 batch holds integers{f' 0..{top}' if top else ''}. It is damaged or was "
                    "edited: download cifar-10-python.tar.gz again.")
        x = x.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = y.astype(np.int64)
    except _EditedBatch as e:
        raise DataError(str(e)) from None
    except UnsafePickleError as e:
        raise UnsafePickleError(
            f"CIFAR-10 batch {name} references {e}, which a CIFAR-10 batch never holds; it was not "
            "loaded, because unpickling it could run code. Use the official cifar-10-python.tar.gz "
            "(https://www.cs.toronto.edu/~kriz/cifar.html) or a folder/zip of images."
        ) from None
    except Exception as e:
        raise DataError(f"CIFAR-10 batch {name} is corrupt or not a CIFAR-10 batch ({e}).") from None
    # A batch that unpickles can still be damaged or edited; caught here, not as a label or shape
    # error deep in training or evaluation (and never written to the cache).
    if len(x) != len(y):
        raise DataError(f"CIFAR-10 batch {name} has {len(x)} images but {len(y)} labels; it is damaged "
                        "or not a CIFAR-10 batch. Download cifar-10-python.tar.gz again.")
    if y.ndim != 1 or (len(y) and (y.min() < 0 or y.max() >= len(CLASSES))):
        bad = sorted({int(v) for v in np.ravel(y) if not 0 <= v < len(CLASSES)})[:5]
        raise DataError(f"CIFAR-10 batch {name} has labels outside 0..{len(CLASSES) - 1} (e.g. {bad}); it "
                        "is damaged or not a CIFAR-10 batch. Download cifar-10-python.tar.gz again.")
    return x, y


def _from_batches(read, where: str):
    parts = []
    print(f"keras_nasnet: reading CIFAR-10 batches from {where} (cached after the first run)",
          file=sys.stderr, flush=True)
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        try:
            raw = read(n)
        except (KeyError, FileNotFoundError):
            raise DataError(
                f"{where} has no {n}; a CIFAR-10 python archive holds data_batch_1..5 and test_batch. "
                "Download cifar-10-python.tar.gz again (https://www.cs.toronto.edu/~kriz/cifar.html)."
            ) from None
        parts.append(_unpickle_batch(raw, f"{where}/{n}"))
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    return (xtr, ytr), parts[5]


def _starts_like_zip(path: Path) -> bool:
    """A file that begins as a zip does, whether or not its end (the central directory) is there."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def _looks_like_tar(path: Path) -> bool:
    if path.name.endswith((".tar", ".tar.gz", ".tgz")):
        return True
    try:
        return tarfile.is_tarfile(path)
    except (EOFError, OSError):  # a truncated .gz raises instead of answering
        return True


def _from_tar(path: Path):
    try:
        with tarfile.open(path) as tf:
            files = [m for m in tf.getmembers() if m.isfile()]
            members = {Path(m.name).name: m for m in files}
            if "data_batch_1" not in members:
                _not_python_batches(path, [m.name for m in files])

            def read(n):
                return tf.extractfile(members[n]).read()

            return _from_batches(read, str(path))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{path} is a corrupt or truncated tar archive ({e}).") from None


def _not_python_batches(path: Path, names) -> None:
    """Raises a :class:`DataError` saying what ``path`` holds instead of the python batches, when
    that is recognisable: the binary version (what tfds downloads) or a tree of images."""
    base = {Path(n).name for n in names}
    if "data_batch_1.bin" in base:
        raise DataError(
            f"{path} holds the binary version of CIFAR-10 (data_batch_1.bin, ...); keras_nasnet reads "
            "the python version: download cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, or omit --data to use tfds.")
    if any(Path(n).suffix.lower() in _IMAGE_EXT and len(Path(n).parts) >= 3
           and Path(n).parts[-3] in ("train", "test") for n in names):
        raise DataError(
            f"{path} is a tar archive of train/<class>/ images; image trees are read from a folder or "
            "a zip: extract it and pass the folder.")


def _decoder() -> str:
    """``"tf"`` on the TensorFlow backend (the pixels every published figure here was measured
    on), else ``"pil"``, which needs no TensorFlow. Their JPEG pixels differ by up to 4 levels
    (TensorFlow's fast integer IDCT against Pillow's accurate one); PNGs decode the same."""
    import keras

    return "tf" if keras.backend.backend() == "tensorflow" else "pil"


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        if _decoder() == "tf":
            import tensorflow as tf

            img = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        else:
            try:
                from PIL import Image
            except ImportError:
                raise DataError("Decoding images without TensorFlow needs Pillow: pip install "
                                "pillow.") from None
            with Image.open(io.BytesIO(data)) as im:
                img = np.asarray(im.convert("RGB"))
    except DataError:
        raise
    except Exception:
        raise DataError(f"Image {name} cannot be decoded (not a PNG/JPEG or corrupt).") from None
    if img.shape != (32, 32, 3):
        raise DataError(f"Image {name} is {img.shape[1]}x{img.shape[0]}; CIFAR-10 images are 32x32.")
    return img


def _progress(items, total: int, describe: str):
    """``items``, announced on stderr: decoding CIFAR-10 takes about a minute, and nothing else is
    printed meanwhile. A tqdm bar on a terminal; one line elsewhere (a bar in a log repeats)."""
    print(f"keras_nasnet: decoding {total:,} images from {describe[:1].lower() + describe[1:]} "
          "(cached after the first run)",
          file=sys.stderr, flush=True)
    if total >= 1000 and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            return items
        return tqdm(items, total=total, unit="img", file=sys.stderr, leave=False)
    return items


def _collect(entries, describe, misplaced=(), unreadable=()):
    """entries: iterable of (split, class_name, name, read_fn). ``misplaced``: images found elsewhere
    than at ``split/class/name`` (left out, with a note); ``unreadable``: files under the splits
    without a PNG/JPEG suffix (named when no image is found)."""
    if misplaced:
        print(f"keras_nasnet: {describe} has {len(misplaced)} image(s) outside train/<class>/ and "
              f"test/<class>/ (e.g. {misplaced[0]}); they are left out.", file=sys.stderr)
    out = {"train": ([], []), "test": ([], [])}
    entries = sorted(entries, key=lambda e: (e[0], e[1], e[2]))
    # The class folders and both splits checked before anything is decoded (or announced as being
    # decoded).
    for split, cls in sorted({(e[0], e[1]) for e in entries}):
        if cls not in CLASSES:
            raise DataError(
                f"{describe}: folder {split}/{cls} is not a CIFAR-10 class; expected folders named "
                f"{', '.join(CLASSES)}."
            )
    for split in ("train", "test"):
        if not any(e[0] == split for e in entries):
            other = (f" It has {len(unreadable)} file(s) of other types (e.g. {unreadable[0]}): only "
                     "PNG and JPEG images are read." if unreadable else "")
            raise DataError(
                f"{describe} has no {split}/<class>/ images; expected train/<class>/*.jpg|png and "
                f"test/<class>/*.jpg|png.{other}"
            )
    for split, cls, name, read in _progress(entries, len(entries), describe):
        out[split][0].append(_decode(read(), f"{split}/{cls}/{name}"))
        out[split][1].append(CLASSES.index(cls))
    return tuple(
        (np.stack(out[s][0]).astype(np.uint8), np.asarray(out[s][1], dtype=np.int64))
        for s in ("train", "test")
    )


_IMAGE_EXT = (".png", ".jpg", ".jpeg")


def _macos_metadata(parts) -> bool:
    """macOS' AppleDouble files (``._name.png``, and the ``__MACOSX/`` copy Finder's Compress puts
    in a zip) carry an image's name and suffix but hold no image."""
    return parts[-1].startswith("._") or "__MACOSX" in parts


def _from_image_folder(path: Path):
    _not_python_batches(path, [f.name for f in path.iterdir()] if path.is_dir() else [])
    entries, misplaced, unreadable = [], [], []
    for split in ("train", "test"):
        for f in (path / split).rglob("*") if (path / split).is_dir() else []:
            rel = f.relative_to(path)
            if not f.is_file() or _macos_metadata(f.parts) or f.name.startswith("."):
                continue
            if f.suffix.lower() not in _IMAGE_EXT:
                unreadable.append(str(rel))
            elif len(rel.parts) == 3:
                entries.append((split, f.parent.name, f.name, f.read_bytes))
            else:
                misplaced.append(str(rel))
    return _collect(entries, f"Folder {path}", sorted(misplaced), sorted(unreadable))


def _from_image_zip(path: Path):
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is a corrupt zip archive ({e}).") from None
    with zf:
        entries, misplaced = [], []
        for info in zf.infolist():
            parts = Path(info.filename).parts
            if (info.is_dir() or Path(info.filename).suffix.lower() not in _IMAGE_EXT
                    or _macos_metadata(parts)):
                continue
            # Accept an optional top folder: [root/]split/class/file.
            if len(parts) >= 3 and parts[-3] in ("train", "test"):
                entries.append((parts[-3], parts[-2], parts[-1],
                                lambda n=info.filename: zf.read(n), parts[:-3]))
            elif any(p in ("train", "test") for p in parts[:-1]):
                # Under a split but not split/class/file (a subfolder more, or no class folder):
                # left out, as the folder loader leaves them, and said so rather than silently.
                misplaced.append(info.filename)
        roots = sorted({"/".join(e[4]) + "/" if e[4] else "(top level)" for e in entries})
        if len(roots) > 1:
            # Read together they would count every image twice (a tree zipped beside its copy).
            raise DataError(f"{path} holds {len(roots)} image trees ({', '.join(roots[:4])}); a CIFAR-10 "
                            "zip holds one train/ and test/ tree. Zip one of them.")
        entries = [e[:4] for e in entries]
        try:
            return _collect(entries, f"Zip {path}", sorted(misplaced))
        except zipfile.BadZipFile as e:
            raise DataError(f"{path} is a corrupt zip archive ({e}).") from None


def _images_and_labels(x, y, caller: str = "keras_nasnet"):
    """``(x, y)`` as the training and evaluation code takes them: ``x`` a NumPy array of ``(N, H, W,
    C)`` images and ``y`` ``N`` integer labels. ``(N, 1)`` labels, as ``keras.datasets.cifar10``
    gives them, are flattened (compared as they are they broadcast to an ``N x N`` matrix, silently);
    anything else raises a ``ValueError`` naming ``caller``."""
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if x.ndim != 4:
        raise ValueError(f"{caller}: images must be an (N, height, width, channels) array; got shape "
                         f"{x.shape}.")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{caller}: labels must be one integer per image, shape ({len(x)},); got shape "
                         f"{y.shape} for {len(x)} images.")
    if y.size and y.dtype.kind not in "ui":
        raise ValueError(f"{caller}: labels must be integers (class indices); got {y.dtype}.")
    return x, y


def train_val_split(x, y, val_size: int = VALIDATION_SIZE, seed: int = 0, hint: str = ""):
    """The paper's reward split: a fixed, seeded choice of ``val_size`` training images held out.

    Returns ``(x_train, y_train), (x_val, y_val)``; the same seed always gives the same split.
    Raises :class:`DataError` when the data set is too small to hold ``val_size`` images out and
    still train on some; ``hint`` is appended to its message (what the caller's user can do, e.g.
    the command-line flag to change).
    """
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)) or val_size < 1:
        raise ValueError(f"val_size must be a positive integer; got {val_size!r}.")
    if len(x) != len(y):
        raise ValueError(f"train_val_split: {len(x)} images but {len(y)} labels; give one label per image.")
    if val_size >= len(x):
        raise DataError(
            f"The data set has {len(x):,} training images; holding out {val_size:,} of them for "
            f"validation needs at least {val_size + 1:,}." + (f" {hint}" if hint else "")
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:val_size], order[val_size:]
    return (x[train], y[train]), (x[val], y[val])


def augment(image, seed, cutout: int = 16):
    """The paper's CIFAR augmentation for one uint8 ``(H, W, C)`` image (32x32x3 for CIFAR-10),
    deterministic given ``seed`` (shape [2]): pad 4 and random ``H x W`` crop, horizontal flip, and
    a ``cutout`` x ``cutout`` zeroed square (0 disables it), as
    :func:`keras_nasnet.augment_numpy.augment_batch` does."""
    import tensorflow as tf

    h, w, c = image.shape
    if h is None or w is None or c is None:
        raise ValueError(f"augment needs an image of known size (H, W, C); got shape {image.shape}.")
    seeds = tf.random.experimental.stateless_split(seed, 4)
    x = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    x = tf.image.stateless_random_crop(x, [h, w, c], seed=seeds[0])
    x = tf.image.stateless_random_flip_left_right(x, seed=seeds[1])
    if cutout:
        # One bound for both coordinates, as the CIFAR pipeline has always drawn them (square images).
        center = (tf.random.stateless_uniform([2], seeds[2], 0, h, dtype=tf.int32) if h == w else
                  tf.stack([tf.random.stateless_uniform([], seeds[2], 0, h, dtype=tf.int32),
                            tf.random.stateless_uniform([], seeds[3], 0, w, dtype=tf.int32)]))
        rows = tf.range(h)[:, None]
        cols = tf.range(w)[None, :]
        half = cutout // 2
        inside = ((rows >= center[0] - half) & (rows < center[0] + cutout - half)
                  & (cols >= center[1] - half) & (cols < center[1] + cutout - half))
        x = tf.where(inside[:, :, None], tf.zeros_like(x), x)
    return x


def make_dataset(x, y, batch_size: int, training: bool, seed: int = 0, epoch: int = 0,
                 cutout: int = 16, outputs: int = 1):
    """A tf.data pipeline of ``(float32 pixels in [0, 255], label)`` batches of uint8 images ``x``
    (``(N, H, W, C)``, 32x32x3 for CIFAR-10) and integer labels ``y``.

    Training data is shuffled and augmented deterministically from ``(seed, epoch)``, so a resumed
    run sees exactly the batches the uninterrupted run would have seen. ``outputs=2`` repeats the
    label for a model with an auxiliary head.
    """
    import tensorflow as tf

    x, y = _images_and_labels(x, y, "make_dataset")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        ds = tf.data.Dataset.from_tensor_slices((x[order], y[order]))
        ds = ds.enumerate().map(
            lambda i, xy: (augment(xy[0], tf.stack([tf.cast(seed * 100003 + epoch, tf.int64), i]),
                                   cutout), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), b), num_parallel_calls=tf.data.AUTOTUNE)
    if outputs == 2:
        ds = ds.map(lambda a, b: (a, (b, b)))
    return ds.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)
