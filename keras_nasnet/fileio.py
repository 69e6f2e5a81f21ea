"""Atomic file writes: a reader sees the old file or the new one, never a part of either.

Every file the package writes in place (journals' side files, checkpoints, caches, downloaded or
written weights) goes through :func:`atomic_write`. The temporary file gets a unique name in the
destination's folder, so two processes writing the same path at once cannot collide on it (each
rename is atomic; the last one wins), and it is removed if the write fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, suffix: str = ""):
    """Yields a unique temporary path beside ``path``; on success renames it onto ``path``.

    ``suffix`` is appended to the temporary name, for writers that insist on an extension
    (``np.savez`` adds ``.npz`` unless the name ends with it; h5py does not care). The new file gets
    the permissions a plain ``open(path, "w")`` would give (the umask), not mkstemp's 0600, so a
    shared cache stays readable. If the body raises, the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path, data, **dump_kwargs) -> None:
    """Writes ``data`` as JSON (indent 2 unless given) to ``path`` atomically."""
    dump_kwargs.setdefault("indent", 2)
    write_text_atomic(path, json.dumps(data, **dump_kwargs))


def savez_atomic(path, **arrays) -> None:
    """``np.savez(path, **arrays)``, atomically; ``path`` should end with ``.npz``."""
    import numpy as np

    with atomic_write(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
