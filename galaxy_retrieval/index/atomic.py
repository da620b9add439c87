"""Atomic file writes: write beside the target, fsync, rename. A reader never sees half a file."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import NoSpaceError

__all__ = ["atomic_path", "write_json_atomic", "sha256_file", "reserve_space", "check_free_space", "is_no_space", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"


def is_no_space(e: BaseException) -> bool:
    """Whether ``e`` is a full file system. pyarrow and h5py raise OSError without an errno,
    naming the condition only in the message, so the message is checked too."""
    if not isinstance(e, OSError):
        return False
    return e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e) or "Disk quota exceeded" in str(e)


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
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as e:
        if is_no_space(e) and not isinstance(e, NoSpaceError):
            raise NoSpaceError(target) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(target: str | Path, obj: Any) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    return Path(target)


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
