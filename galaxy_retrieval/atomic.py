"""Atomic file writes: write beside the target, fsync, rename. A reader never sees half a file.

The one I/O module every writer uses: :func:`atomic_path` (yield a temp path, then commit it),
:func:`commit_file` (for writers that build their own temp file, such as HDF5 or a resumable
download), the byte/JSON writers, :func:`fsync_dir` and :func:`sha256_file`."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import NoSpaceError, OutputPathError

__all__ = [
    "atomic_path",
    "commit_file",
    "check_replaceable",
    "atomic_write_bytes",
    "atomic_write_json",
    "fsync_dir",
    "sha256_file",
    "reserve_space",
    "check_free_space",
    "is_no_space",
    "TMP_SUFFIX",
]

TMP_SUFFIX = ".tmp"


def is_no_space(e: BaseException) -> bool:
    """Whether ``e`` is a full file system. pyarrow and h5py raise OSError without an errno,
    naming the condition only in the message, so the message is checked too."""
    if not isinstance(e, OSError):
        return False
    return (
        e.errno in (errno.ENOSPC, errno.EDQUOT)
        or "No space left on device" in str(e)
        or "Disk quota exceeded" in str(e)
    )


def check_free_space(folder: str | Path, nbytes: int, target: str | Path, margin: int = 256 << 10) -> None:
    """Raise :class:`NoSpaceError` naming ``target`` unless ``folder``'s file system has
    ``nbytes`` plus ``margin`` free. For writers that must never meet ENOSPC mid-write:
    HDF5 (h5py) segfaults on it instead of raising."""
    import shutil

    if shutil.disk_usage(folder).free < int(nbytes) + margin:
        raise NoSpaceError(target)


def reserve_space(path: str | Path, nbytes: int) -> None:
    """Allocate ``nbytes`` of ``path`` on disk now. A memory map over a sparse file that the
    disk cannot back kills the process with SIGBUS on first touch; allocating first turns a
    full disk into an ordinary ENOSPC error (OSError) before anything is written."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, int(nbytes))
    except OSError as e:
        # ENOSPC propagates (atomic_path names the target file); a file system without
        # fallocate gets no reservation, as before
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL) or is_no_space(e):
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed onto ``target``.

    The temp name ends in ``.tmp`` so that globbing for finished files (``*.parquet``) never
    matches it, and a crash leaves only a ``.tmp`` file that the next run ignores/overwrites.
    A full disk raises :class:`NoSpaceError` naming ``target``, and the temp file is removed.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        commit_file(tmp, target)
    except OSError as e:
        if is_no_space(e) and not isinstance(e, NoSpaceError):
            raise NoSpaceError(target) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def check_replaceable(target: str | Path) -> None:
    """Raise :class:`OutputPathError` if ``target`` exists and is not a regular file (or a
    symbolic link, which a rename replaces without touching what it points at).

    A rename onto a device node, a FIFO or a socket replaces that special file: run as root
    (as in a container), ``--mosaic /dev/full`` used to turn the device into a PNG."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError:
        return  # unreadable parent and the like: the write itself will say so
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket, not a regular file"
        raise OutputPathError(f"{target}: exists and is {kind}; write to a file name instead")


def commit_file(tmp: str | Path, target: str | Path) -> Path:
    """Make a finished temp file ``tmp`` the file ``target``: fsync its bytes, then rename (atomic
    on one file system), then fsync the folder so the rename itself survives a power cut.
    A ``target`` that exists and is not a regular file is refused (:func:`check_replaceable`)."""
    check_replaceable(target)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    fsync_dir(Path(target).parent)
    return Path(target)


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_json(target: str | Path, obj: Any) -> Path:
    return atomic_write_bytes(target, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
