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
        # On disk before the rename: otherwise a power cut (not a kill, which the page cache
        # survives) can leave `path` renamed onto a file whose data never reached the disk.
        # Before the chmod, which may take the write permission a flush needs on Windows.
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def unwritable_reason(out) -> str | None:
    """Why the file or folder ``out`` cannot be written, or ``None``; checked before minutes of
    work (a conversion, an export) that would end in writing it. Missing parent folders count as
    writable where the first existing one is a writable folder (they are created)."""
    out = Path(out)
    folder = out.parent
    while not folder.exists() and folder != folder.parent:  # created when written
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


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


def other_files(folder, allowed=()) -> str:
    """The non-hidden entries of ``folder`` that are not in ``allowed``, as the text of a refusal
    (``"a.txt, b.json and 3 more"``; empty when there are none). Hidden files (.lock, .DS_Store,
    .gitkeep) are left out: no run writes over them."""
    other = sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith(".") and p.name not in allowed)
    return ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")


class FolderLocked(RuntimeError):
    """Another process holds the folder's lock (see :class:`FolderLock`)."""


class FolderLock:
    """An exclusive, non-blocking lock on a run folder, held until :meth:`release` or process exit.

    The lock is an OS file lock (``flock``; ``msvcrt.locking`` on Windows) on ``folder/name``, which
    also records the holder's process id for the message a second run gets. The OS drops the lock
    when its process dies, so a folder left by a killed run is never stale: the next run takes it.
    """

    def __init__(self, folder, name: str = ".lock"):
        self.path = Path(folder) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _try_lock(fd)
        except OSError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            except (OSError, AttributeError):  # no pread on Windows
                holder = "unknown"
            os.close(fd)
            raise FolderLocked(
                f"{self.path.parent} is in use by another run (process {holder}, lock file "
                f"{self.path}). Wait for that run to end or stop it, or choose another folder."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Releases the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _try_lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
