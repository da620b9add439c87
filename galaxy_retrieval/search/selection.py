"""The rows a query may return: the live rows (deletions honoured), or those of a filter.

Deleted rows (the manifest's tombstone list) and ``where=`` filters (SQL run by DuckDB over
the metadata, :mod:`~galaxy_retrieval.index.filters`) restrict every query path the same way:
the allowed positions go to FAISS as an ID selector in that call's search parameters
(prefiltering), with the IVF probe (HNSW beam) widened by 1/√(fraction selected), since the
nearest selected rows lie further out than the nearest rows; a selection small enough to read
quickly is scanned exactly instead.
When the FAISS shortlist holds fewer than k allowed rows (an IVF probe can miss a sparse
selection), the query is refilled by the exact scan of the selection: k allowed rows exist →
k hits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Selection", "FilterCache"]


class Selection:
    """The positions a query may return (sorted), and their FAISS ID selector (built once)."""

    def __init__(self, positions: np.ndarray, n: int) -> None:
        self.positions = positions
        self._n = n
        self._sel: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.positions)

    def selector(self) -> Any:
        import faiss

        with self._lock:  # built once: a second build would free the bitmap another thread searches with
            if self._sel is None:
                mask = np.zeros(self._n, bool)
                mask[self.positions] = True
                # a bitmap answers "is id i allowed" in O(1) for any selectivity; FAISS keeps a
                # raw pointer into it, so the selector holds the array
                bits = np.packbits(mask, bitorder="little")
                sel = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bits))
                sel.bits_owner = bits
                self._sel = sel
            return self._sel


class FilterCache:
    """The selections of the last ``size`` filters: repeated filters (a web form, a batch) are
    selected once. ``select(where)`` returns the sorted positions matching a filter."""

    def __init__(self, select: Callable[[str], np.ndarray], dead: np.ndarray, size: int = 32) -> None:
        self._select = select
        self._dead = dead
        self._size = size
        self._d: OrderedDict[str, Selection] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, where: str) -> Selection:
        with self._lock:
            hit = self._d.get(where)
            if hit is not None:
                self._d.move_to_end(where)
                return hit
        pos = self._select(where)
        sel = Selection(pos[~self._dead[pos]], len(self._dead))
        with self._lock:
            self._d[where] = sel
            while len(self._d) > self._size:
                self._d.popitem(last=False)
        return sel
