"""Build, extend, write and load the FAISS candidate index (in RAM, or with its inverted lists
on disk: :mod:`.ondisk`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_path
from ...errors import ConfigError, IndexFormatError, NoSpaceError
from ...progress import NULL_PROGRESS, Progress
from .factory import check_factory, check_index_spec, faiss_message
from .gpu import faiss_gpu_count
from .ondisk import build_ondisk_index, open_ondisk
from .params import set_search_params, shortlist_vectors
from .record import build_record
from .spec import IndexSpec, nlist_of, resolve_factory
from .training import set_kmeans_seed, training_sample

__all__ = ["build_faiss_index", "add_to_faiss_index", "write_faiss_index", "load_faiss_index"]


def build_faiss_index(
    vectors: np.ndarray, spec: IndexSpec, out: str | Path, progress: Progress = NULL_PROGRESS
) -> dict[str, Any]:
    """Train (if needed) and fill a FAISS index from ``vectors`` (N, D), possibly a memmap,
    in chunks; write it to ``out``. Returns what the manifest records about it."""
    import faiss

    n, dim = vectors.shape
    if spec.ondisk:
        check_index_spec(spec, n, dim)
        return build_ondisk_index(vectors, spec, out, progress)
    factory, why = resolve_factory(spec, n, dim)
    index = check_factory(factory, dim, spec.metric)
    _set_ef_construction(index, spec.ef_construction)
    progress.log(f"candidate index: {factory} ({why})")
    t0 = time.perf_counter()
    train_s = 0.0
    gpu = faiss_gpu_count() > 0 and "HNSW" not in factory
    work = faiss.index_cpu_to_all_gpus(index) if gpu else index
    if not index.is_trained:
        xt = shortlist_vectors(training_sample(vectors, spec, factory), spec.metric)
        ntrain = len(xt)
        if n < nlist_of(factory):
            raise ConfigError(
                f"{factory}: {n} vectors are fewer than the {nlist_of(factory)} inverted lists; use a flat or HNSW index"
            ).resolved_by("index_type")
        with progress.task("training index", total=None, unit="vec"):
            faiss.seed_global_rng = spec.seed  # type: ignore[attr-defined]
            set_kmeans_seed(work, spec.seed)
            try:
                work.train(xt)
            except RuntimeError as e:  # e.g. fewer training vectors than k-means centroids
                raise ConfigError(
                    f"{factory}: training on {ntrain:,} vectors failed: {faiss_message(e)}"
                ) from None
        del xt
        train_s = time.perf_counter() - t0
    with progress.task("adding to index", total=n, unit="vec") as t:
        for lo in range(0, n, spec.add_chunk):
            hi = min(n, lo + spec.add_chunk)
            work.add(shortlist_vectors(vectors[lo:hi], spec.metric))
            t.advance(hi - lo)
    if gpu:
        index = faiss.index_gpu_to_cpu(work)
    set_search_params(index, nprobe=spec.nprobe, ef_search=spec.ef_search)
    build_s = time.perf_counter() - t0
    out = Path(out)
    write_faiss_index(index, out)
    return build_record(out, factory, spec, why, build_s, train_s, int(index.ntotal), built_on_gpu=gpu)


def write_faiss_index(index: Any, out: str | Path) -> Path:
    """Write ``index`` to ``out`` atomically; a full disk is a :class:`NoSpaceError`."""
    import faiss

    out = Path(out)
    with atomic_path(out) as tmp:
        try:
            faiss.write_index(index, str(tmp))
        except RuntimeError as e:  # FAISS reports a failed fwrite as RuntimeError + strerror
            if "No space left on device" in str(e):
                raise NoSpaceError(out) from None
            raise
    return out


def add_to_faiss_index(index: Any, vectors: np.ndarray, metric: str, chunk: int = 65_536) -> None:
    """Append ``vectors`` (ids continue from ``index.ntotal``) without training again: an
    added object lands in the list of its nearest trained centroid. Adds can drift from the
    data the quantiser was trained on; :func:`~.params.ivf_balance` shows it, a reindex repairs it."""
    for lo in range(0, len(vectors), chunk):
        index.add(shortlist_vectors(vectors[lo : lo + chunk], metric))


def _set_ef_construction(index: Any, ef: int) -> None:
    """FAISS' factory leaves efConstruction at 40; apply the spec's value to an HNSW graph
    (plain, or behind a PCA/OPQ transform)."""
    import faiss

    base = (
        faiss.downcast_index(index.index)
        if isinstance(index, faiss.IndexPreTransform)
        else faiss.downcast_index(index)
    )
    hnsw = getattr(base, "hnsw", None)
    if hnsw is not None:
        hnsw.efConstruction = int(ef)


def load_faiss_index(path: str | Path, info: dict[str, Any] | None = None) -> Any:
    import faiss

    p = Path(path)
    if not p.is_file():
        raise IndexFormatError(f"{p}: FAISS index file missing")
    if info and info.get("ondisk"):
        index = open_ondisk(p, info["ondisk"])
        set_search_params(index, nprobe=info.get("spec", {}).get("nprobe"))
        return index
    try:
        index = faiss.read_index(str(p))
    except RuntimeError as e:
        raise IndexFormatError(
            f"{p}: not a readable FAISS index ({str(e).strip().splitlines()[-1]})"
        ) from None
    if info:
        spec = info.get("spec", {})
        set_search_params(index, nprobe=spec.get("nprobe"), ef_search=spec.get("ef_search"))
    return index
