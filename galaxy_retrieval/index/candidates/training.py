"""What an index is trained on: a seeded sample of the vectors, and seeded k-means, so that a
build (in RAM, on disk, on Ray) gives the same lists every time."""

from __future__ import annotations

from typing import Any

import numpy as np

from .spec import IndexSpec, nlist_of

__all__ = ["training_sample", "set_kmeans_seed"]


def training_sample(vectors: np.ndarray, spec: IndexSpec, factory: str) -> np.ndarray:
    """The rows an index of ``factory`` is trained on: ``spec.train_size`` (default
    max(16384, 64·nlist)) drawn without replacement with ``spec.seed``, in row order (a
    memmap is read forwards)."""
    n = len(vectors)
    rng = np.random.default_rng(spec.seed)
    ntrain = min(n, spec.train_size or max(256 * 64, 64 * nlist_of(factory)))
    sel = np.sort(rng.choice(n, size=ntrain, replace=False)) if ntrain < n else np.arange(n)
    return np.asarray(vectors[sel])


def set_kmeans_seed(index: Any, seed: int) -> None:
    import faiss

    ivf = faiss.try_extract_index_ivf(index) if hasattr(faiss, "try_extract_index_ivf") else None
    if ivf is not None and hasattr(ivf, "cp"):
        ivf.cp.seed = int(seed)
    pq = getattr(faiss.downcast_index(ivf) if ivf is not None else index, "pq", None)
    if pq is not None and hasattr(pq, "cp"):
        pq.cp.seed = int(seed)
