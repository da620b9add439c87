"""The searcher's metadata table (ids, rows, labels, …) memory-mapped from disk, not in RAM.

Read from the shards, the table is Arrow buffers on the heap: 40–53 B an object, ≈ 5 GB at
100M, growing with the catalog. Written once as an uncompressed Arrow IPC file and opened
with ``pa.memory_map``, the same table is pages of a file: the kernel keeps the ones queries
touch and may drop them again, and the process's anonymous memory does not grow with the
catalog. The file is a cache beside the user's other caches (an index directory holds only
the files its manifest names), keyed by the shards' sha256s, which fix its content: a new
index version (add, delete, compaction) has other shards, so another key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from ..atomic import atomic_path
from ..paths import cache_dir
from .shards import read_metadata_table

__all__ = ["open_metadata_table"]


def open_metadata_table(paths: Sequence[Path], digests: Sequence[str], rows: int) -> pa.Table:
    """Every column but the embedding of these shards (``digests``: their sha256s, in
    order), memory-mapped from the cache; read into RAM when there is no usable cache."""
    root = cache_dir("metadata")
    if root is None:
        return read_metadata_table(paths)
    key = hashlib.blake2b("\n".join(digests).encode(), digest_size=16).hexdigest()
    f = root / f"{key}.arrow"
    if not f.is_file():
        table = read_metadata_table(paths)
        try:
            with atomic_path(f) as tmp:
                # one chunk per column: a numeric column is then a zero-copy numpy view
                with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                    w.write_table(table.combine_chunks())
        except OSError:
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
