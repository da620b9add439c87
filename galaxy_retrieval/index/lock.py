"""One writer at a time: an advisory lock file inside the directory being written.

    with directory_lock(out):
        ...  # build, add, delete: no other galaxy-retrieval writer is in this directory

``flock`` is released by the kernel when the holder exits, however it exits (kill -9
included), so a crashed writer never leaves a stale lock behind; the pid written into the
file only serves the error message. The lock file itself is never deleted: removing it while
another process waits on it would let two writers each hold "the" lock on different inodes.
Readers (``GalaxySearcher``) do not take it: writers only ever add files and replace the
manifest atomically, so a reader keeps the version it opened.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexBusyError
from .layout import LOCK_NAME

__all__ = ["LOCK_NAME", "directory_lock"]


@contextmanager
def directory_lock(directory: str | Path) -> Iterator[Path]:
    """Hold the write lock of ``directory`` (created if missing) for the ``with`` block.

    Raises :class:`IndexBusyError` naming the holder's pid when another process (or another
    open of the lock in this process) holds it; never waits, so a second builder fails fast
    instead of queueing behind a build that may take hours.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise IndexBusyError(
                f"{root}: another writer (pid {holder}) is working in this directory; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
