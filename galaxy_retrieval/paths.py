"""Output locations checked before the work that fills them starts.

A path under a regular file, a directory where a file is wanted, or a read-only or virtual
file system (``/proc``) used to surface as a traceback after minutes of rendering,
training or embedding. These checks create nothing: they probe the nearest existing folder
with a temp file that is removed at once.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OutputPathError

__all__ = [
    "check_output_file",
    "check_output_dir",
    "first_missing",
    "remove_created_dirs",
    "PROBE_PREFIX",
    "CACHE_ENV",
    "cache_dir",
]

#: name prefix of the probe files (gone a moment after they are made; ignore them when listing)
PROBE_PREFIX = ".gr-probe-"


def _nearest_existing(p: Path) -> Path:
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def _probe(folder: Path, target: Path) -> None:
    if not folder.is_dir():
        raise OutputPathError(f"{target}: cannot be created, {folder} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=PROBE_PREFIX)
    except OSError as e:
        raise OutputPathError(f"{target}: cannot write in {folder} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | Path) -> Path:
    """``path`` can be written as a file (it may exist: replacing is the caller's decision)."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{p}: is a folder; give a file name")
    # a device, FIFO or socket is never replaced by an output (atomic.commit_file checks it
    # again at the rename; this says so before the work)
    try:
        mode = os.lstat(p).st_mode
    except OSError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise OutputPathError(
            f"{p}: exists and is a device, pipe or socket, not a regular file; write to a file name instead"
        )
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{p}: exists and is not writable")
    _probe(_nearest_existing(p.parent), p)
    return p


def check_output_dir(path: str | Path) -> Path:
    """``path`` is, or can be created as, a folder that files can be written into."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{p}: exists and is not a folder")
    _probe(_nearest_existing(p), p)
    return p


def first_missing(path: str | Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it would
    create), or None if ``path`` exists."""
    p = Path(path).absolute()
    if p.exists():
        return None
    while not p.parent.exists():
        p = p.parent
    return p


def remove_created_dirs(path: str | Path, top: Path | None) -> None:
    """Undo the creation of ``path`` and its parents up to ``top`` (from :func:`first_missing`),
    removing only folders that are empty: a refused command leaves the tree as it found it."""
    if top is None:
        return
    p = Path(path).absolute()
    while True:
        try:
            p.rmdir()
        except OSError:  # not empty (or gone): stop, never remove anything else
            return
        if p == top or p == p.parent:
            return
        p = p.parent


#: root of the package's caches (framing boxes, memory-mapped metadata tables); ``off``: none
CACHE_ENV = "GALAXY_RETRIEVAL_CACHE"


def cache_dir(sub: str) -> Path | None:
    """``$GALAXY_RETRIEVAL_CACHE/sub``, else ``$XDG_CACHE_HOME/galaxy-retrieval/sub``
    (``~/.cache/…``); None when the variable says ``off``. Everything kept there is keyed
    by the content it was made from, so a stale entry is never used, only left behind."""
    import os

    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "0") else Path(env) / sub
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "galaxy-retrieval" / sub
