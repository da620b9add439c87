"""Object ids of an open index, kept in the Arrow column they were read in.

A Python list of 10M id strings costs about 670 MB of the searcher's own memory (a str
object each); the Arrow column holding the same ids costs their bytes plus 4 B of offset.
:class:`ObjectIds` reads an id out of the column when a hit needs it, and finds the
position of an id with a hash table only for catalogs small enough for one to be cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ObjectIds", "HASHED_MAX"]

# Up to this many ids, position lookups go through a dict (about 100 B per id); above it,
# a vectorised scan of the column (tens of ms at 10M, and no memory held).
HASHED_MAX = 2_000_000


class ObjectIds(Sequence[str]):
    def __init__(self, column: pa.ChunkedArray | pa.Array) -> None:
        # the table's own chunks (one per shard), not a combined copy of them
        self._col = column
        self._pos: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._col)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._col[i].to_pylist()
        return self._col[int(i)].as_py()

    def __iter__(self) -> Iterator[str]:
        step = 65_536
        for lo in range(0, len(self._col), step):
            yield from self._col[lo : lo + step].to_pylist()

    def position(self, object_id: str) -> int | None:
        """The position of ``object_id``, or None."""
        if len(self._col) <= HASHED_MAX:
            if self._pos is None:  # built on the first lookup (thread races only build it twice)
                self._pos = {oid: i for i, oid in enumerate(self._col.to_pylist())}
            return self._pos.get(object_id)
        hit = pc.index(self._col, pa.scalar(object_id, self._col.type)).as_py()
        return None if hit < 0 else int(hit)

    def take(self, positions: np.ndarray) -> list[str]:
        return self._col.take(pa.array(np.asarray(positions, np.int64))).to_pylist()
