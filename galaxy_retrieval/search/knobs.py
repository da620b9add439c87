"""The FAISS search knobs of one call: nprobe (IVF lists opened) and efSearch (HNSW beam).

The index's stored values (the build's ``IndexSpec``, written into the index file) are read
once when a searcher opens it; every FAISS search then runs with the knobs this module
resolves — the call's :class:`~galaxy_retrieval.search.options.SearchOptions`, else the
stored default, widened for a filter — passed as that call's FAISS search parameters, never
set on the shared index (threads with different knobs search one index at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .options import SearchOptions

__all__ = ["FaissKnobs"]


@dataclass(frozen=True)
class FaissKnobs:
    """What an opened FAISS index offers to tune, and its stored defaults."""

    count: int  # vectors in the index
    nlist: int | None = None  # inverted lists (None: no IVF level, behind a transform or not)
    nprobe: int | None = None  # the stored nprobe
    ef_search: int | None = None  # the stored HNSW efSearch (None: no HNSW graph)

    @classmethod
    def of(cls, index: Any) -> FaissKnobs:
        import faiss

        # behind a PCA/OPQ transform, the knobs belong to the index inside it
        inner = index.index if isinstance(index, faiss.IndexPreTransform) else index
        base = faiss.downcast_index(inner)
        ivf = faiss.try_extract_index_ivf(base) if hasattr(faiss, "try_extract_index_ivf") else None
        hnsw = getattr(base, "hnsw", None)
        return cls(
            count=int(index.ntotal),
            nlist=int(ivf.nlist) if ivf is not None else None,
            nprobe=int(ivf.nprobe) if ivf is not None else None,
            ef_search=int(hnsw.efSearch) if hnsw is not None else None,
        )

    def for_call(
        self, options: SearchOptions, matched: int | None = None, widen: bool = True
    ) -> tuple[int | None, int | None]:
        """(nprobe, ef_search) of one search: the options', else the stored ones; for a
        selection of ``matched`` rows (a fraction f of the index) widened by 1/√f, capped at
        every list (every row), unless ``widen`` is off.

        A query's k-th nearest selected row is about its (k/f)-th nearest row overall, so a
        probe as wide as the unfiltered one misses some: at 1M, 5 % selected, the index's
        nprobe 256 recalled 0.986 of the top 10 (benchmarks/README.md §5). Widening by 1/f
        scores as many selected vectors as an unfiltered query scores vectors, but overpays:
        recall was already 1.0 at twice the width (20× is 1/f), and every list opened costs a
        membership test per stored row (the bitmap): 14 ms for all 4096 lists there against
        5 ms for 1024, one thread. 1/√f (4.5× at 5 %, 1.4× at 50 %) met recall@10 ≥ 0.99 and
        p50 ≤ 10 ms at 50 %, 5 % and 0.1 % with the index's nprobe 128 or 256."""
        nprobe = options.nprobe if options.nprobe is not None else self.nprobe
        ef_search = options.ef_search if options.ef_search is not None else self.ef_search
        f = 1.0 if matched is None else max(matched, 1) / max(self.count, 1)
        if f >= 1.0 or not widen:
            return nprobe, ef_search
        scale = 1.0 / math.sqrt(f)
        if self.nlist is not None and nprobe is not None:
            nprobe = min(self.nlist, math.ceil(nprobe * scale))
        if self.ef_search is not None and ef_search is not None:
            ef_search = min(self.count, math.ceil(ef_search * scale))
        return nprobe, ef_search
