"""Verified downloads into Keras' cache (``$KERAS_HOME/models``).

A download goes to a temporary file beside its destination, is checked against the registry's hash
and only then renamed into place (:func:`keras_nasnet.fileio.atomic_write`), so an interrupted or bad
transfer never sits where a good file should, and the file gets the umask's permissions.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..fileio import atomic_write
from .catalog import URL_ENV, WeightSpec, WeightsError, project_weights_dir


def cache_dir() -> Path:
    """Keras' model cache folder: ``$KERAS_HOME/models`` (default ``~/.keras/models``).

    Raises :class:`WeightsError` if that path, or ``$KERAS_HOME``, exists but is not a folder.
    """
    home = Path(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"))
    for path in (home, home / "models"):
        if path.exists() and not path.is_dir():
            source = "KERAS_HOME" if os.environ.get("KERAS_HOME") else "the default Keras home"
            raise WeightsError(
                f"The weights cache needs {path} to be a folder, but it is a file ({source} is "
                f"{home}). Point KERAS_HOME at a folder (Keras keeps models in $KERAS_HOME/models) "
                "or move the file away."
            )
    return home / "models"


def file_digest(path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def problem(spec: WeightSpec, path) -> str | None:
    """What is wrong with ``path`` as ``spec``'s file, or ``None``: a hash that differs from the
    registry's or, for converted files (timm), a structure that is not the expected one."""
    if spec.file_hash is not None:
        digest = file_digest(path, spec.hash_algorithm)
        if digest != spec.file_hash:
            return f"{path} has {spec.hash_algorithm} {digest}, expected {spec.file_hash} for {spec.name!r}."
    if spec.converter == "timm":
        from .timm import check_file

        try:
            check_file(path)
        except WeightsError as e:
            return str(e)
    return None


def verify(spec: WeightSpec, path) -> None:
    """Raises :class:`WeightsError` unless ``path`` passes ``spec``'s checks (see :func:`problem`)."""
    what = problem(spec, path)
    if what:
        raise WeightsError(what)


def _manual_hint(spec: WeightSpec, dest: Path) -> str:
    # Always the publisher's URL: when a mirror failed, sending the user back to it helps nobody.
    hint = (
        f"Download {spec.official_url} on a connected machine (or run `python -m "
        f"keras_nasnet.weights fetch {spec.name}` there) and place the file at {dest}"
    )
    mirror = os.environ.get(URL_ENV)
    if mirror:
        return hint + f"; the mirror set in {URL_ENV} ({mirror}) was used: fix it or unset it."
    return hint + f"; or set {URL_ENV} to a mirror that serves {spec.origin_name}."


def fetch(spec: WeightSpec, progress: bool = True) -> Path:
    """Returns the local path of a verified copy of ``spec``'s file, downloading it if needed.

    A cached file that fails its hash is fetched again. Files shipped with the package are only
    verified.
    """
    if spec.base_url is None:
        path = project_weights_dir() / spec.file_name
        if not path.is_file():
            raise WeightsError(
                f"The project weights file {path} for {spec.name!r} is missing; reinstall "
                "keras_nasnet (the package ships it) or set KERAS_NASNET_WEIGHTS_DIR to the folder "
                "that holds it and its manifest.json."
            )
        verify(spec, path)
        return path
    dest = cache_dir() / spec.file_name
    stale = None
    if dest.is_file():
        stale = problem(spec, dest)
        if stale is None:
            return dest
        print(f"keras_nasnet: cached {dest} fails its check ({stale.rstrip('.')}); fetching it again.",
              file=sys.stderr)
    url = spec.url
    _remove_abandoned_downloads(dest)
    try:
        # The bad cached file stays until a verified copy replaces it (atomic_write's rename):
        # a failed download then neither loses it nor leaves a partial file.
        with _cache_writes(dest), atomic_write(dest) as tmp:
            with open(tmp, "wb") as out:
                _download(url, out, spec, dest, progress)
            what = problem(spec, tmp)
            if what:
                # the temporary file's name means nothing to the user: it is the download
                what = what.replace(str(tmp), "the downloaded file")
                raise WeightsError(
                    f"{spec.file_name} from {url} fails its check: {what} The file was not kept. "
                    f"{_manual_hint(spec, dest)}"
                )
    except WeightsError as e:
        if stale is None:
            raise
        raise WeightsError(f"{e} (The file already at {dest} fails its check ({stale.rstrip('.')}) "
                           "and was left as it was: replace it.)") from None
    return dest


class _CacheWriteFailed(Exception):
    """An ``OSError`` writing the cache, kept apart from the network's own ``OSError`` exceptions."""


@contextlib.contextmanager
def _cache_writes(dest: Path):
    """Turns a failure to write the cache (a read-only ``KERAS_HOME``, a full disk) into a
    :class:`WeightsError` that names the folder, instead of a traceback or "no network?"."""
    try:
        yield
    except (OSError, _CacheWriteFailed) as e:
        e = e.__cause__ if isinstance(e, _CacheWriteFailed) else e
        raise WeightsError(
            f"Cannot write the weights cache {dest.parent} ({e.strerror or e}); nothing was kept. "
            "Set KERAS_HOME to a folder you can write (Keras keeps downloaded weights in "
            "$KERAS_HOME/models), or free disk space.") from None


#: A temporary download older than this is no longer being written: a killed fetch left it.
_ABANDONED_SECONDS = 3600


def _remove_abandoned_downloads(dest: Path) -> None:
    """Removes what killed downloads of ``dest`` left (``.<name>.<random>.part``, up to the whole
    file's size each); one written in the last hour may be another process's download under way."""
    import time

    for leftover in dest.parent.glob(f".{dest.name}.*.part") if dest.parent.is_dir() else []:
        try:
            if time.time() - leftover.stat().st_mtime > _ABANDONED_SECONDS:
                leftover.unlink()
        except OSError:
            pass


def _download(url, out, spec, dest, progress):
    got = 0

    def stopped(total):
        of = f" of {total}" if total else ""
        return WeightsError(
            f"Download of {spec.file_name} from {url} stopped after {got}{of} bytes; nothing was "
            f"kept. {_manual_hint(spec, dest)}"
        )

    total = 0
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https", "file"):
        # urllib would try ftp:// (and fail as "no network?"): only these three are supported.
        raise WeightsError(
            f"Cannot fetch {spec.file_name} from {url}: {scheme}:// URLs are not supported. Set "
            f"{URL_ENV} to an http(s):// or file:// URL, or a folder path. {_manual_hint(spec, dest)}")
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            total = int(r.headers.get("Content-Length") or 0)
            bar = None
            if progress and sys.stderr.isatty():
                from tqdm import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=spec.file_name)
            for chunk in iter(lambda: r.read(1 << 20), b""):
                try:
                    out.write(chunk)
                except OSError as e:  # the disk, not the network
                    raise _CacheWriteFailed() from e
                got += len(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
            if total and got != total:
                raise stopped(total)
    except urllib.error.HTTPError as e:
        raise WeightsError(
            f"HTTP error {e.code} fetching {spec.file_name} from {url}. {_manual_hint(spec, dest)}"
        ) from None
    except http.client.IncompleteRead as e:
        # A chunked transfer cut inside a chunk: the same failure as a short Content-Length one.
        got += len(e.partial)
        raise stopped(total) from None
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if scheme == "file" and isinstance(e, urllib.error.URLError):  # a local mirror's file, not the network
            raise WeightsError(f"Could not read {spec.file_name} from {url} ({reason}). "
                               f"{_manual_hint(spec, dest)}") from None
        raise WeightsError(
            f"Could not fetch {spec.file_name} from {url} ({reason}); no network? "
            f"{_manual_hint(spec, dest)}"
        ) from None
    except ValueError as e:  # urllib's answer to a malformed URL ("unknown url type: ...")
        raise WeightsError(
            f"Cannot fetch {spec.file_name}: {url!r} is not a URL urllib can open ({e}). Check "
            f"{URL_ENV} (an http(s):// or file:// URL, or a folder path). {_manual_hint(spec, dest)}"
        ) from None
