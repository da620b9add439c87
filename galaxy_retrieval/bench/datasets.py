"""The vectors a search benchmark runs on: a cached synthetic catalog or an index directory.

Synthetic (``--synthetic N``): :func:`~galaxy_retrieval.search.synthetic.clustered_vectors`
with its defaults (64 clusters of 1/rank sizes, intrinsic dimension 32, cluster spread 0.35,
isotropic noise 0.05, a shared positive offset) is written into one ``.npy`` file under the
work directory, ``N + QUERY_RESERVE`` rows: the first ``N`` are the catalog, the rest a
reserve of held-out queries drawn from the same distribution but not stored in the catalog.
The generator's rows depend only on their position and the seed, so the catalog is exactly
``clustered_vectors(N)``. The file is reused by every later run with the same parameters
(1M × 2048 float32 is 8.2 GB: generating it once is enough) and is only taken as finished
when its sidecar ``.json`` exists, which is written after the data is flushed to disk.

Index directory (``--index``): the catalog is the index's ``vectors.npy`` (memory-mapped),
and the queries are ``nq`` catalog objects picked at random; each query's own row is left
out of both the ground truth and the search results (as ``gr query --object-id`` does), so a
query never finds itself. Real embeddings have no held-out set of their own, and this is the
question a user asks ("what looks like this galaxy?").
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json, commit_file
from ..errors import ConfigError, IndexFormatError
from ..index.layout import FAISS_FILE, VECTORS_FILE
from ..index.manifest import read_manifest
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from ..search.synthetic import clustered_vectors

__all__ = [
    "BenchData",
    "SyntheticSpec",
    "QUERY_RESERVE",
    "synthetic_data",
    "index_data",
    "existing_faiss_file",
    "evict_from_page_cache",
    "advise_random",
]

#: Held-out query rows generated after the catalog rows (at D = 2048 float32: 82 MB).
QUERY_RESERVE = 10_000


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the synthetic catalog (those of :func:`clustered_vectors`)."""

    n: int
    dim: int = 2048
    dtype: str = "float32"
    seed: int = 0
    n_clusters: int = 64
    intrinsic_dim: int = 32
    cluster_std: float = 0.35
    noise: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(
                f"the synthetic catalog size must be a positive number of vectors, got {self.n!r}"
            ).resolved_by("synthetic")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ConfigError(f"the dimension must be a positive integer, got {self.dim!r}").resolved_by(
                "dim"
            )
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"the vector dtype must be float32 or float16, got {self.dtype!r}").resolved_by(
                "dtype"
            )

    @property
    def stem(self) -> str:
        return f"clustered-n{self.n}-d{self.dim}-{self.dtype}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "generator": "galaxy_retrieval.search.synthetic.clustered_vectors",
            "n": self.n,
            "dim": self.dim,
            "dtype": self.dtype,
            "seed": self.seed,
            "n_clusters": self.n_clusters,
            "intrinsic_dim": self.intrinsic_dim,
            "cluster_std": self.cluster_std,
            "noise": self.noise,
            "query_reserve": QUERY_RESERVE,
        }


@dataclass
class BenchData:
    """Catalog vectors (a read-only memmap), query vectors, and what to exclude per query."""

    source: str  # "synthetic" | "index"
    vectors: np.ndarray  # (N, D) float32 or float16 memmap
    vectors_file: Path
    queries: np.ndarray  # (nq, D) float32
    exclude: np.ndarray | None  # (nq,) catalog row each query must not return, or None
    weights: ScoreWeights
    key: str  # names this catalog + query set in the work directory's caches
    describe: dict[str, Any] = field(default_factory=dict)
    index_dir: Path | None = None
    metric: str = "l2"  # shortlist metric the index directory was built with

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def vector_bytes(self) -> int:
        return int(self.vectors.shape[1] * self.vectors.dtype.itemsize)


class _Counting:
    """Looks like an (n, D) array to :func:`clustered_vectors`; writes through to a memmap and
    reports each chunk it receives, so a minutes-long generation shows progress."""

    def __init__(self, target: np.ndarray, handle: Any) -> None:
        self.target = target
        self.shape = target.shape
        self.handle = handle

    def __setitem__(self, key: slice, value: np.ndarray) -> None:
        self.target[key] = value
        self.handle.advance(len(value))


def _synthetic_file(spec: SyntheticSpec, workdir: Path, progress: Progress) -> tuple[Path, dict[str, Any]]:
    path = workdir / f"{spec.stem}.npy"
    side = workdir / f"{spec.stem}.json"
    want = spec.to_dict()
    rows = spec.n + QUERY_RESERVE
    if path.is_file() and side.is_file():
        try:
            meta = json.loads(side.read_text())
            mm = np.load(path, mmap_mode="r")
            if (
                meta.get("params") == want
                and mm.shape == (rows, spec.dim)
                and mm.dtype == np.dtype(spec.dtype)
            ):
                progress.log(f"synthetic catalog: reusing {path}")
                return path, meta
        except (OSError, ValueError, json.JSONDecodeError):
            pass  # unreadable or partial: generate again
    workdir.mkdir(parents=True, exist_ok=True)
    side.unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".partial")
    need = rows * spec.dim * np.dtype(spec.dtype).itemsize
    free = _free_bytes(workdir)
    if free is not None and free < need + (1 << 30):
        raise ConfigError(
            f"{workdir}: {need / 1e9:.1f} GB needed for the synthetic catalog, {free / 1e9:.1f} GB free; choose another work directory"
        ).resolved_by("workdir")
    t0 = time.perf_counter()
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(spec.dtype), shape=(rows, spec.dim))
    with progress.task(
        f"generating {spec.n:,} + {QUERY_RESERVE:,} clustered vectors", total=rows, unit="vec"
    ) as t:
        clustered_vectors(
            rows,
            spec.dim,
            n_clusters=spec.n_clusters,
            intrinsic_dim=spec.intrinsic_dim,
            cluster_std=spec.cluster_std,
            noise=spec.noise,
            seed=spec.seed,
            out=_Counting(mm, t),  # type: ignore[arg-type]
        )
    mm.flush()
    del mm
    commit_file(tmp, path)  # fsynced: on disk, not dirty in the page cache, so --cold can evict it
    meta = {
        "params": want,
        "rows": rows,
        "catalog_rows": spec.n,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(side, meta)
    return path, meta


def _free_bytes(p: Path) -> int | None:
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def synthetic_data(
    spec: SyntheticSpec, workdir: str | Path, nq: int, progress: Progress = NULL_PROGRESS
) -> BenchData:
    """The synthetic catalog ``spec`` (generated into ``workdir`` or reused) and its first
    ``nq`` held-out query vectors."""
    if not 1 <= nq <= QUERY_RESERVE:
        raise ConfigError(
            f"the query count must be between 1 and {QUERY_RESERVE:,} for a synthetic catalog, got {nq}"
        ).resolved_by("queries")
    path, meta = _synthetic_file(spec, Path(workdir), progress)
    mm = np.load(path, mmap_mode="r")
    xq = np.ascontiguousarray(mm[spec.n : spec.n + nq], dtype=np.float32)
    return BenchData(
        source="synthetic",
        vectors=mm[: spec.n],
        vectors_file=path,
        queries=xq,
        exclude=None,
        weights=ScoreWeights(),
        key=spec.stem,
        describe={
            "source": "synthetic",
            "file": str(path),
            **spec.to_dict(),
            "queries": nq,
            "query_kind": "held out: rows n … n+queries of the same generator run, not in the catalog",
            "generation_seconds": meta.get("seconds"),
        },
    )


def index_data(path: str | Path, nq: int, seed: int = 0) -> BenchData:
    """An index directory's vectors, and ``nq`` of its objects (seeded) as queries that must
    not find themselves."""
    root = Path(path)
    m = read_manifest(root)
    m.verify(root, full=False)
    vf = root / VECTORS_FILE
    try:
        vectors = np.load(vf, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{vf}: not a readable vector file ({e})") from None
    if vectors.shape != (m.count, m.dim):
        raise IndexFormatError(f"{vf}: shape {vectors.shape}, the manifest says {(m.count, m.dim)}")
    if not 1 <= nq <= m.count:
        raise ConfigError(
            f"the query count must be between 1 and the index's {m.count:,} objects, got {nq}"
        ).resolved_by("queries")
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(m.count, size=nq, replace=False)).astype(np.int64)
    xq = np.ascontiguousarray(vectors[pos], dtype=np.float32)
    digest = hashlib.sha256(
        f"{root.resolve()}|{m.created}|{m.count}|{m.dim}|{m.dtype}|{nq}|{seed}".encode()
    ).hexdigest()[:12]
    faiss_info = m.faiss or {}
    return BenchData(
        source="index",
        vectors=vectors,
        vectors_file=vf,
        queries=xq,
        exclude=pos,
        weights=ScoreWeights.from_dict(m.score_weights),
        key=f"index-{root.name}-{digest}",
        describe={
            "source": "index",
            "path": str(root),
            "n": m.count,
            "dim": m.dim,
            "dtype": m.dtype,
            "created": m.created,
            "model_sha256": (m.model or {}).get("sha256"),
            "faiss_factory": faiss_info.get("factory"),
            "queries": nq,
            "query_kind": "catalog objects picked with the seed; each query's own row is excluded from ground truth and results",
        },
        index_dir=root,
        metric=str(faiss_info.get("metric", "l2")),
    )


def existing_faiss_file(data: BenchData) -> Path:
    if data.index_dir is None:
        raise ConfigError(
            "the index name 'existing' (the index directory's own FAISS index) needs an index directory"
        ).resolved_by("index")
    return data.index_dir / FAISS_FILE


def _mapping(a: Any) -> Any:
    """The ``mmap.mmap`` under a ``np.memmap`` (or a view of one), or None."""
    import mmap

    while a is not None:
        mp = getattr(a, "_mmap", None)
        if isinstance(mp, mmap.mmap):
            return mp
        a = getattr(a, "base", None)
    return None


def advise_random(data: BenchData) -> bool:
    """Tell the OS the catalog mapping is read at random (``MADV_RANDOM``): a page fault then
    reads that page, not the device's readahead window. The reranker reads k × refine rows
    scattered over the file; with readahead on (8 MB on the machine of the recorded results)
    each cold row costs milliseconds and evicts useful pages. Returns False if unsupported."""
    import mmap

    mp = _mapping(data.vectors)
    if mp is None or not hasattr(mp, "madvise") or not hasattr(mmap, "MADV_RANDOM"):
        return False
    mp.madvise(mmap.MADV_RANDOM)
    return True


def evict_from_page_cache(data: BenchData) -> bool:
    """Drop the catalog file from the OS page cache, so the next reads come from disk (what a
    catalog larger than RAM sees). The mapping's own pages are released first (pages mapped
    into a process are not evicted). Returns False where the OS offers no way to do it.

    In a virtual machine the host may still hold the file in its own cache, so "disk" reads
    can be faster than the physical device."""
    import mmap

    if not hasattr(os, "posix_fadvise"):
        return False
    mp = _mapping(data.vectors)
    if mp is not None and hasattr(mp, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mp.madvise(mmap.MADV_DONTNEED)
    fd = os.open(data.vectors_file, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True
