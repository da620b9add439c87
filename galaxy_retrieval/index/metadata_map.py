"""The searcher's metadata table (ids, rows, labels, …) memory-mapped from disk, not in RAM.

Read from the shards, the table is Arrow buffers on the heap: 40–53 B an object, ≈ 5 GB at
100M, growing with the catalog. Written once as an uncompressed Arrow IPC file and opened
with ``pa.memory_map``, the same table is pages of a file: the kernel keeps the ones queries
touch and may drop them again, and the process's anonymous memory does not grow with the
catalog. The file is a cache beside the user's other caches (an index directory holds only
the files its manifest names), keyed by the shards' sha256s, which fix its content: a new
index version (add, delete, compaction) has other shards, so another key.

Every write that publishes an index version (a build's ``finish``, the versioned writes'
``commit_version``) primes the cache for the version's shards before its manifest is
written (:func:`prime_metadata_table`), so the first open after it only maps the file (at
10M objects writing it took 2.5 s and ~650 MB on that open). Keyed by content, an entry of a
version whose manifest a kill kept from being written is never used, only left behind. An
index from elsewhere, or made before this, still opens: the searcher writes the entry then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from ..atomic import atomic_path
from ..paths import cache_dir
from .manifest import ShardEntry
from .shards import read_metadata_table

__all__ = ["open_metadata_table", "prime_metadata_table", "shard_keys"]


def shard_keys(shards: Sequence[ShardEntry]) -> list[str]:
    """What fixes a version's metadata table: each shard's name, rows and sha256, in order."""
    return [f"{s.file}:{s.rows}:{s.sha256}" for s in shards]


def _cache_file(digests: Sequence[str]) -> Path | None:
    root = cache_dir("metadata")
    if root is None:
        return None
    key = hashlib.blake2b("\n".join(digests).encode(), digest_size=16).hexdigest()
    return root / f"{key}.arrow"


def _write(f: Path, table: pa.Table) -> bool:
    """Write the cache file atomically; False when the cache cannot be written (read-only, full)."""
    try:
        with atomic_path(f) as tmp:
            # one chunk per column: a numeric column is then a zero-copy numpy view
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table.combine_chunks())
    except OSError:
        return False
    return True


def prime_metadata_table(paths: Sequence[Path], digests: Sequence[str]) -> Path | None:
    """Write the cache entry of these shards unless it is there (``digests``: :func:`shard_keys`
    of their manifest entries); the entry's path, or None without a usable cache. A writer
    calls this before it publishes the version, so that opening it writes nothing."""
    f = _cache_file(digests)
    if f is None:
        return None
    if not f.is_file() and not _write(f, read_metadata_table(paths)):
        return None
    return f


def open_metadata_table(paths: Sequence[Path], digests: Sequence[str], rows: int) -> pa.Table:
    """Every column but the embedding of these shards (``digests``: :func:`shard_keys` of their
    manifest entries), memory-mapped from the cache; read into RAM when there is no usable
    cache. A missing entry (an index primed by no writer of this package) is written first."""
    f = _cache_file(digests)
    if f is None:
        return read_metadata_table(paths)
    if not f.is_file():
        table = read_metadata_table(paths)
        if not _write(f, table):
            return table  # a read-only or full cache: in RAM, as without one
        del table
    try:
        mapped = pa.ipc.open_file(pa.memory_map(str(f), "r")).read_all()
    except (pa.ArrowInvalid, OSError):
        mapped = None
    if mapped is None or mapped.num_rows != rows:  # damaged: made again next time
        f.unlink(missing_ok=True)
        return read_metadata_table(paths)
    return mapped
