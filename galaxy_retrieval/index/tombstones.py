"""Tombstones: the rows deleted from an index, until compaction rewrites it without them.

A version's tombstone list is one Parquet file, ``deleted-vNNNNN.parquet`` (``object_id``,
``position``), holding every row deleted so far; the manifest of that version names it. A
new delete writes the next version's file and then the manifest, so a reader that opened
the previous version keeps its list (it reads it once, at open).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path, sha256_file
from ..errors import IndexFormatError

__all__ = ["tombstone_name", "write_tombstones", "read_tombstones"]


def tombstone_name(version: int) -> str:
    return f"deleted-v{version:05d}.parquet"


def write_tombstones(
    root: Path, version: int, positions: np.ndarray, object_ids: Sequence[str]
) -> dict[str, Any]:
    """Write the tombstone list of ``version``; returns the manifest's entry for it."""
    path = root / tombstone_name(version)
    t = pa.table(
        {
            "object_id": pa.array(list(object_ids), pa.string()),
            "position": pa.array(np.asarray(positions, np.int64)),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(t, tmp)
    return {"file": path.name, "count": len(t), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def read_tombstones(root: Path, entry: dict[str, Any] | None, count: int) -> tuple[np.ndarray, list[str]]:
    """(sorted positions, object ids) of the deleted rows; empty when ``entry`` is None."""
    if not entry:
        return np.empty(0, np.int64), []
    path = root / entry["file"]
    try:
        t = pq.read_table(path, columns=["object_id", "position"])
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: tombstone list missing") from None
    except (pa.ArrowInvalid, OSError, KeyError) as e:
        raise IndexFormatError(f"{path}: not a readable tombstone list ({e})") from None
    pos = t.column("position").to_numpy()
    if len(pos) != entry.get("count", len(pos)) or (len(pos) and (pos.min() < 0 or pos.max() >= count)):
        raise IndexFormatError(
            f"{path}: positions out of range for {count} rows or not the manifest's {entry.get('count')} rows"
        )
    order = np.argsort(pos, kind="stable")
    ids = t.column("object_id").to_pylist()
    return pos[order].astype(np.int64), [ids[i] for i in order]
