"""Query-time settings of a built index: per-call search parameters (nprobe, efSearch, an id
selector), the vectors as the index sees them, and how evenly an inverted file is filled."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ConfigError

__all__ = ["search_params", "set_search_params", "shortlist_vectors", "ivf_balance"]


def search_params(
    index: Any, nprobe: int | None = None, ef_search: int | None = None, sel: Any = None
) -> Any:
    """FAISS per-call search parameters carrying these knobs for this index, or None when
    none applies. Passed as ``index.search(x, k, params=...)`` they leave the shared index
    untouched, so threads with different knobs can search one index at the same time.

    ``sel`` (a ``faiss.IDSelector``) restricts the search to the ids it accepts: a metadata
    filter or the live rows of an index with deletions, applied inside FAISS (prefiltering)."""
    import faiss

    if nprobe is None and ef_search is None and sel is None:
        return None
    if isinstance(index, faiss.IndexPreTransform):
        inner = search_params(faiss.downcast_index(index.index), nprobe, ef_search, sel)
        if inner is None:
            return None
        outer = faiss.SearchParametersPreTransform(index_params=inner)
        outer.referenced_objects = [inner]  # SWIG keeps a raw pointer: keep the Python object alive
        return outer
    base = faiss.downcast_index(index)
    if nprobe is not None and nprobe < 1:
        raise ConfigError(f"nprobe must be ≥ 1, got {nprobe}")
    if ef_search is not None and ef_search < 1:
        raise ConfigError(f"ef_search must be ≥ 1, got {ef_search}")
    params: Any = None
    # a parameter object replaces every knob of its kind: one made for the selector alone
    # must still carry the index's own nprobe / efSearch, not FAISS' defaults (1 and 16)
    if isinstance(base, faiss.IndexIVF) and (nprobe is not None or sel is not None):
        params = faiss.SearchParametersIVF(nprobe=int(nprobe if nprobe is not None else base.nprobe))
    elif isinstance(base, faiss.IndexHNSW) and (ef_search is not None or sel is not None):
        params = faiss.SearchParametersHNSW(
            efSearch=int(ef_search if ef_search is not None else base.hnsw.efSearch)
        )
    elif sel is not None:
        params = faiss.SearchParameters()
    if params is not None and sel is not None:
        params.sel = sel
        params.referenced_objects = [sel]
    return params


def set_search_params(index: Any, nprobe: int | None = None, ef_search: int | None = None) -> None:
    """Apply the search knobs to whichever index type this is (ignored where meaningless)."""
    import faiss

    base = index
    if isinstance(index, faiss.IndexPreTransform):
        base = faiss.downcast_index(index.index)
    ivf = faiss.try_extract_index_ivf(base) if hasattr(faiss, "try_extract_index_ivf") else None
    if ivf is not None and nprobe is not None:
        ivf.nprobe = int(nprobe)
    hnsw = getattr(faiss.downcast_index(base), "hnsw", None)
    if hnsw is not None and ef_search is not None:
        hnsw.efSearch = int(ef_search)


def shortlist_vectors(x: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as the FAISS index sees them: float32, and unit length for the cosine metric
    (inner product of unit vectors). Stored and query vectors both go through here."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    return x


def ivf_balance(index: Any) -> dict[str, Any] | None:
    """How evenly an inverted file's lists are filled (None for a flat or HNSW index).

    ``imbalance`` is FAISS' imbalance factor, Σ size² · nlist / N²: 1 for equal lists; a
    search reads about that many times the vectors a balanced index would."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index) if hasattr(faiss, "try_extract_index_ivf") else None
    if ivf is None:
        return None
    sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)], np.int64)
    n = int(sizes.sum())
    return {
        "nlist": int(ivf.nlist),
        "vectors": n,
        "empty_lists": int((sizes == 0).sum()),
        "largest_list": int(sizes.max()) if len(sizes) else 0,
        "mean_list": n / max(1, len(sizes)),
        "imbalance": float((sizes.astype(np.float64) ** 2).sum() * len(sizes) / n**2) if n else 1.0,
    }
