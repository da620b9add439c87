"""The FAISS candidate index: a fast, approximate shortlist that the exact reranker orders.

The shortlist metric is L2 on the raw embeddings: two of the score's three terms are
decreasing functions of distance (1/(1+L2), 1/(1+L3)), so the L2 neighbours are the natural
candidates; ``metric="cosine"`` (inner product on normalised vectors) is the alternative when
the cosine weight dominates. Recall against the exact score is what `gr rerank-benchmark`
measures.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexFormatError, NoSpaceError
from ..progress import NULL_PROGRESS, Progress

__all__ = [
    "IndexSpec",
    "resolve_factory",
    "check_factory",
    "check_index_spec",
    "search_params",
    "build_faiss_index",
    "load_faiss_index",
    "set_search_params",
    "faiss_gpu_count",
    "add_to_faiss_index",
    "write_faiss_index",
    "ivf_balance",
    "training_sample",
]

_NAMED = ("auto", "flat", "hnsw", "ivf-pq")
# Catalog sizes where `auto` moves to the next kind of index.
_FLAT_MAX = 50_000
_AUTO_PCA = 64
# `auto` caps its inverted file at this many lists, so k-means work stops growing with N
# (4·√N would train 16,384 lists on 1M vectors at 10M, 32,768 on 2M at 100M): trained on
# 64·8,192 = 524,288 vectors. Measured at 10M × 256 (benchmarks/README.md §7): trained in
# 92 s on 2 shared cores, recall@10 0.981 at 2.95 ms p50 after the exact rerank. Past ~10M
# the lists grow instead (N/8,192 vectors each): a query scans more, no build trains longer.
_AUTO_NLIST_MAX = 8192


@dataclass(frozen=True)
class IndexSpec:
    """How to build the candidate index. ``kind``: auto | flat | hnsw | ivf-pq | a FAISS factory string."""

    kind: str = "auto"
    metric: str = "l2"  # "l2" | "cosine"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None  # IVF lists; default ≈ 4·√N (auto: at most 8,192)
    pq_m: int | None = None  # PQ sub-quantisers; default D/16 (capped to divide D)
    nprobe: int = 256  # with refine 2+: recall@10 ≥ 0.99 at 1M (benchmarks/README.md)
    seed: int = 0
    add_chunk: int = 65_536
    # Vectors sampled to train PCA/OPQ/IVF/PQ; default max(16384, 64·nlist). A PCA on
    # 2048-d or k-means on 4096 lists needs ~50k–100k, not the whole catalog.
    train_size: int | None = None
    # inverted lists in a file the searcher memory-maps (index/ondisk.py) instead of in RAM;
    # needs an IVF factory (``auto`` then always picks its IVF branch)
    ondisk: bool = False

    def __post_init__(self) -> None:
        if self.metric not in ("l2", "cosine"):
            raise ConfigError(f"index metric must be 'l2' or 'cosine', got {self.metric!r}")
        if self.kind.lower() not in _NAMED and "," not in self.kind and self.kind not in ("Flat", "IDMap,Flat") and not self.kind[:1].isupper():
            raise ConfigError(
                f"the index kind must be one of {', '.join(_NAMED)} or a FAISS factory string (e.g. 'IVF1024,PQ64'), got {self.kind!r}"
            ).resolved_by("index_type")
        if self.train_size is not None and self.train_size < 1:
            raise ConfigError(f"train_size must be ≥ 1, got {self.train_size!r}")
        if self.ef_construction < 1:
            raise ConfigError(f"ef_construction must be ≥ 1, got {self.ef_construction!r}")
        # 0 or negative knobs were accepted, stored, and then broke every query (1 hit of 5,
        # or an overflow inside FAISS)
        for name in ("nprobe", "ef_search", "hnsw_m", "add_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be an integer ≥ 1, got {v!r}")
        if not isinstance(self.ondisk, bool):
            raise ConfigError(f"ondisk must be true or false, got {self.ondisk!r}")
        for name in ("nlist", "pq_m"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be an integer ≥ 1, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pq_m(dim: int, want: int | None) -> int:
    m = want or max(1, dim // 16)
    while dim % m:  # PQ needs m to divide D
        m -= 1
    return m


def resolve_factory(spec: IndexSpec, n: int, dim: int) -> tuple[str, str]:
    """The FAISS factory string for ``spec`` at this size, and a sentence saying why."""
    kind = spec.kind.lower()
    if kind == "auto":
        if n <= _FLAT_MAX and not spec.ondisk:
            kind, why = "flat", f"{n:,} vectors ≤ {_FLAT_MAX:,}: an exact flat scan is fast enough and has recall 1"
        else:
            # Measured (benchmarks/README.md): at 1M × 2048 this reaches recall@10 0.995 after
            # the exact rerank at ~1 ms p50 with 90 B/vector in RAM, while an HNSW graph stalled
            # at recall 0.7 on clustered data and builds far slower.
            nlist = spec.nlist or min(auto_nlist(n), _AUTO_NLIST_MAX)
            capped = spec.nlist is None and nlist < auto_nlist(n)
            pca = f"PCA{_AUTO_PCA}," if dim > 2 * _AUTO_PCA else ""
            return f"{pca}IVF{nlist},SQ8", (
                f"{n:,} vectors > {_FLAT_MAX:,}: {'PCA to 64 dimensions, ' if pca else ''}an inverted file of {nlist} lists "
                + (f"(capped: k-means work does not grow past {_AUTO_NLIST_MAX:,} lists) " if capped else "")
                + "with 8-bit scalar quantisation; the exact rerank restores full precision"
            )
    else:
        why = f"asked for {spec.kind!r}"
    if kind == "flat":
        return "Flat", why
    if kind == "hnsw":
        return f"HNSW{spec.hnsw_m},Flat", why
    if kind == "ivf-pq":
        nlist = spec.nlist or auto_nlist(n)
        return f"IVF{nlist},PQ{_pq_m(dim, spec.pq_m)}", why
    return spec.kind, why


def auto_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: 4·√n rounded to a power of two (FAISS' guideline of
    4–16·√n), at most 65,536, and at most n/39 so that k-means has its 39 training points per
    list. The one rule for every IVF the package builds (auto, ``ivf-pq``, the benchmarks)."""
    nlist = 1 << int(round(math.log2(4 * math.sqrt(max(n, 1)))))
    nlist = min(nlist, 65536)
    while nlist > 1 and nlist * 39 > n:
        nlist //= 2
    return max(1, nlist)


def faiss_gpu_count() -> int:
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def _faiss_message(e: Exception) -> str:
    """The reason in a FAISS exception, without its 'Error in <C++ signature> at <file>:<line>:' prefix."""
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    m = re.search(r"\.(?:cpp|h):\d+: (.*)$", text)
    return m.group(1) if m else text


def check_factory(factory: str, dim: int, metric: str = "l2") -> Any:
    """An empty FAISS index for ``factory`` in dimension ``dim``; a :class:`ConfigError` naming
    the string and FAISS' reason if FAISS cannot build it (checked before any heavy work)."""
    import faiss

    if metric not in ("l2", "cosine"):
        raise ConfigError(f"index metric must be 'l2' or 'cosine', got {metric!r}")
    try:
        return faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2)
    except RuntimeError as e:
        raise ConfigError(f"FAISS cannot build {factory!r} for dimension {dim}: {_faiss_message(e)}") from None


def check_index_spec(spec: IndexSpec, n: int, dim: int) -> str:
    """Everything about ``spec`` that can fail at this catalog size and dimension, checked
    before the embedding pass rather than after it: the factory string is one FAISS can
    build, and an inverted file has no more lists than there are vectors to train it.
    Returns the factory string."""
    factory, _ = resolve_factory(spec, n, dim)
    index = check_factory(factory, dim, spec.metric)
    if spec.ondisk and not _is_ivf(index):
        raise ConfigError(f"{factory}: on-disk inverted lists need an inverted-file (IVF) index, e.g. auto or ivf-pq").resolved_by("index_type")
    nlist = _nlist_of(factory)
    if n < nlist:
        raise ConfigError(f"{factory}: {n} vectors are fewer than the {nlist} inverted lists; use a flat or HNSW index, or fewer lists").resolved_by("index_type")
    return factory


def search_params(index: Any, nprobe: int | None = None, ef_search: int | None = None, sel: Any = None) -> Any:
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
        params = faiss.SearchParametersHNSW(efSearch=int(ef_search if ef_search is not None else base.hnsw.efSearch))
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


def build_faiss_index(
    vectors: np.ndarray, spec: IndexSpec, out: str | Path, progress: Progress = NULL_PROGRESS
) -> dict[str, Any]:
    """Train (if needed) and fill a FAISS index from ``vectors`` (N, D), possibly a memmap,
    in chunks; write it to ``out``. Returns what the manifest records about it."""
    import faiss

    n, dim = vectors.shape
    if spec.ondisk:
        from .ondisk import build_ondisk_index

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
        if n < _nlist_of(factory):
            raise ConfigError(f"{factory}: {n} vectors are fewer than the {_nlist_of(factory)} inverted lists; use a flat or HNSW index").resolved_by("index_type")
        with progress.task("training index", total=None, unit="vec"):
            faiss.seed_global_rng = spec.seed  # type: ignore[attr-defined]
            _set_kmeans_seed(work, spec.seed)
            try:
                work.train(xt)
            except RuntimeError as e:  # e.g. fewer training vectors than k-means centroids
                raise ConfigError(f"{factory}: training on {ntrain:,} vectors failed: {_faiss_message(e)}") from None
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


def build_record(
    out: Path, factory: str, spec: IndexSpec, why: str, build_s: float, train_s: float, ntotal: int,
    built_on_gpu: bool = False, merge_s: float | None = None, **extra: Any,
) -> dict[str, Any]:
    """What the manifest records about a built FAISS index (in RAM or on disk): ``extra``
    adds fields of its own kind, e.g. the on-disk lists file."""
    rec: dict[str, Any] = {
        "file": out.name,
        "factory": factory,
        "metric": spec.metric,
        "chosen_because": why,
        "spec": spec.to_dict(),
        "build_seconds": round(build_s, 3),
        "train_seconds": round(train_s, 3),
        "add_seconds": round(build_s - train_s - (merge_s or 0.0), 3),
        "built_on_gpu": built_on_gpu,
        "ntotal": ntotal,
    }
    if merge_s is not None:
        rec["merge_seconds"] = round(merge_s, 3)
    return {**rec, **extra}


def training_sample(vectors: np.ndarray, spec: IndexSpec, factory: str) -> np.ndarray:
    """The rows an index of ``factory`` is trained on: ``spec.train_size`` (default
    max(16384, 64·nlist)) drawn without replacement with ``spec.seed``, in row order (a
    memmap is read forwards)."""
    n = len(vectors)
    rng = np.random.default_rng(spec.seed)
    ntrain = min(n, spec.train_size or max(256 * 64, 64 * _nlist_of(factory)))
    sel = np.sort(rng.choice(n, size=ntrain, replace=False)) if ntrain < n else np.arange(n)
    return np.asarray(vectors[sel])


def _is_ivf(index: Any) -> bool:
    import faiss

    return faiss.try_extract_index_ivf(index) is not None


def write_faiss_index(index: Any, out: str | Path) -> Path:
    """Write ``index`` to ``out`` atomically; a full disk is a :class:`NoSpaceError`."""
    import faiss

    from ..atomic import atomic_path

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
    data the quantiser was trained on; :func:`ivf_balance` shows it, a reindex repairs it."""
    for lo in range(0, len(vectors), chunk):
        index.add(shortlist_vectors(vectors[lo : lo + chunk], metric))


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


def _nlist_of(factory: str) -> int:
    for part in factory.split(","):
        if part.startswith("IVF"):
            digits = "".join(ch for ch in part[3:] if ch.isdigit())
            if digits:
                return int(digits)
    return 1


def _set_ef_construction(index: Any, ef: int) -> None:
    """FAISS' factory leaves efConstruction at 40; apply the spec's value to an HNSW graph
    (plain, or behind a PCA/OPQ transform)."""
    import faiss

    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else faiss.downcast_index(index)
    hnsw = getattr(base, "hnsw", None)
    if hnsw is not None:
        hnsw.efConstruction = int(ef)


def _set_kmeans_seed(index: Any, seed: int) -> None:
    import faiss

    ivf = faiss.try_extract_index_ivf(index) if hasattr(faiss, "try_extract_index_ivf") else None
    if ivf is not None and hasattr(ivf, "cp"):
        ivf.cp.seed = int(seed)
    pq = getattr(faiss.downcast_index(ivf) if ivf is not None else index, "pq", None)
    if pq is not None and hasattr(pq, "cp"):
        pq.cp.seed = int(seed)


def load_faiss_index(path: str | Path, info: dict[str, Any] | None = None) -> Any:
    import faiss

    p = Path(path)
    if not p.is_file():
        raise IndexFormatError(f"{p}: FAISS index file missing")
    if info and info.get("ondisk"):
        from .ondisk import open_ondisk

        index = open_ondisk(p, info["ondisk"])
        set_search_params(index, nprobe=info.get("spec", {}).get("nprobe"))
        return index
    try:
        index = faiss.read_index(str(p))
    except RuntimeError as e:
        raise IndexFormatError(f"{p}: not a readable FAISS index ({str(e).strip().splitlines()[-1]})") from None
    if info:
        spec = info.get("spec", {})
        set_search_params(index, nprobe=spec.get("nprobe"), ef_search=spec.get("ef_search"))
    return index
