"""`gr rerank-benchmark`: recall and speed of FAISS shortlist + exact rerank against exact search.

For one catalog (a synthetic one, or an index directory's embeddings; see
:mod:`galaxy_retrieval.bench.datasets`) it

1. computes the exact top-k of every query by the paper's weighted score over the whole
   catalog, block by block (:mod:`galaxy_retrieval.bench.baseline`; cached);
2. times, in the same run, the exact scan of one query and a plain read of the catalog (the
   bandwidth bound), so "× faster than exact" is a ratio of numbers measured side by side;
3. for every candidate index (``flat``, ``hnsw``, ``ivf-pq``, ``existing`` for the index
   directory's own FAISS index, or any FAISS factory string such as ``"PCA128,HNSW32"`` or
   ``"PCA256,IVF4096,SQ8"``) builds it (training on a sample; cached in the work directory
   with the build time it took), and sweeps its search knobs (``nprobe`` for IVF, ``efSearch``
   for HNSW), ``k`` and the shortlist factor ``refine``: FAISS returns ``k × refine``
   candidates and the exact reranker (:func:`~galaxy_retrieval.search.exact.rerank`, reading
   full vectors from the memory-mapped catalog) keeps the top k, as
   :meth:`GalaxySearcher.search_vectors` does;
4. measures per operating point recall@1/10/100 (plain and tie-aware) against the ground
   truth, single-query latency p50/p99 (one query at a time, one thread for FAISS and the
   reranker: a server answers concurrent queries on the other cores), the search/rerank
   split of it, batch queries per second (all threads), and bytes per vector in RAM and on
   disk;
5. keeps the speed/recall Pareto front over (recall@10, p50 latency) and writes everything,
   with machine, commit and parameters, to JSON.

Query embedding is not part of any timing. With ``cold=True`` the catalog file is evicted from
the page cache before each timed pass, so the reranker's reads come from disk: the case of a
catalog that does not fit in RAM. The mapping is then advised ``MADV_RANDOM`` (unless
``readahead=True``), as a server with such a catalog must do: otherwise each scattered row
the reranker touches pulls in the device's whole readahead window.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..version import __version__
from ..errors import ConfigError
from ..atomic import atomic_write_json
from ..paths import check_output_dir, check_output_file
from ..index.candidates import IndexSpec, auto_nlist, build_faiss_index, check_factory, load_faiss_index, resolve_factory, search_params
from ..progress import NULL_PROGRESS, Progress
from ..search.exact import warmup
from ..search.shortlist import shortlist_rerank
from .baseline import ExactBaseline, GroundTruth, ground_truth, measure_exact
from .datasets import BenchData, SyntheticSpec, advise_random, evict_from_page_cache, existing_faiss_file, index_data, synthetic_data
from .machine import git_commit, load_average, machine_info, search_threads, usable_cpus
from ..metrics import pareto_front, percentile_ms, recall_at, recall_at_tie_aware

__all__ = [
    "RerankBenchConfig",
    "IndexBuild",
    "OperatingPoint",
    "RerankBenchResult",
    "run_rerank_benchmark",
    "parse_index_list",
    "parse_int_list",
    "auto_nlist",
    "default_result_path",
    "DEFAULT_INDEXES",
    "RECALL_AT",
    "SCHEMA_VERSION",
]

SCHEMA_VERSION = 1
RECALL_AT = (1, 10, 100)
#: The recall the Pareto front is taken on (recall@min(k) if a smaller k is asked for).
PARETO_AT = 10
#: A PCA to 64 dimensions (the data's intrinsic dimension is low) in front of an inverted file
#: with 8-bit codes (64 bytes per vector), and in front of an HNSW graph. ``{nlist}`` in a
#: factory string becomes the catalog size's list count (see :func:`auto_nlist`).
DEFAULT_INDEXES = ("PCA64,IVF{nlist},SQ8", "PCA64,HNSW32")
_NAMED = ("flat", "hnsw", "ivf-pq", "auto", "existing")
# Full-precision rows gathered at once by one batched rerank call.
_BATCH_RERANK_BYTES = 256 << 20
_WARM_QUERIES = 10


# --------------------------------------------------------------------------- configuration


def _ints(name: str, values: Sequence[int], low: int = 1) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"{name} values must be integers ≥ {low}, got {v!r}").resolved_by(name)
        out.append(int(v))
    if not out:
        raise ConfigError(f"{name} needs at least one value").resolved_by(name)
    return tuple(dict.fromkeys(out))  # in order, without repeats


@dataclass(frozen=True)
class RerankBenchConfig:
    """What to benchmark. Give exactly one of ``index`` (an index directory) or ``synthetic``
    (a catalog size); ``dim``, ``dtype`` and ``seed`` describe the synthetic catalog. The list
    fields (``k``, ``indexes``, ``refine``, ``nprobe``, ``ef_search``) also accept the
    command line's text, e.g. ``refine="1,2,5"``."""

    index: Path | None = None
    synthetic: int | None = None
    dim: int = 2048
    dtype: str = "float32"
    workdir: Path = Path("data/bench")
    queries: int = 1000
    k: tuple[int, ...] = (10,)
    indexes: tuple[str, ...] = DEFAULT_INDEXES
    refine: tuple[int, ...] = (1, 2, 5, 10, 20)
    nprobe: tuple[int, ...] = (32, 64, 128, 256, 512)
    ef_search: tuple[int, ...] = (64, 128, 256, 512)
    metric: str | None = None  # shortlist metric: l2 | cosine; default l2 (synthetic) or the index's
    ef_construction: int = 40
    train_size: int = 100_000
    threads: int | None = None  # default: every usable core
    latency_queries: int | None = None  # queries timed one at a time; default min(queries, 1000)
    exact_queries: int = 3  # exact one-query scans timed (median)
    cold: bool = False
    readahead: bool = False  # with cold: keep the OS readahead on the catalog mapping (default: MADV_RANDOM)
    rebuild: bool = False
    seed: int = 0
    out_json: Path | None = None  # default: default_result_path(config)
    write_json: bool = True

    def __post_init__(self) -> None:
        if (self.index is None) == (self.synthetic is None):
            raise ConfigError("give either an index directory or a synthetic catalog size (exactly one of them)").resolved_by("index", "synthetic")
        if self.synthetic is not None:
            SyntheticSpec(n=self.synthetic, dim=self.dim, dtype=self.dtype, seed=self.seed)  # validates
        if isinstance(self.queries, bool) or not isinstance(self.queries, int) or self.queries < 1:
            raise ConfigError(f"the query count must be a positive integer, got {self.queries!r}").resolved_by("queries")
        # List fields take sequences or command-line text ("1,2,5"; see parse_index_list).
        for name in ("k", "refine", "nprobe", "ef_search"):
            object.__setattr__(self, name, parse_int_list(getattr(self, name), name.replace("_", "-")))
        object.__setattr__(self, "indexes", parse_index_list(self.indexes))
        if self.metric not in (None, "l2", "cosine"):
            raise ConfigError(f"the shortlist metric must be l2 or cosine, got {self.metric!r}").resolved_by("metric")
        for name in ("ef_construction", "train_size", "exact_queries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}").resolved_by(name)
        for name in ("threads", "latency_queries"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}").resolved_by(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def parse_index_list(values: str | Sequence[str]) -> tuple[str, ...]:
    """Index types from command-line text, in order.

    FAISS factory strings contain commas, so: ``;`` always separates entries
    (``"flat;PCA128,HNSW32"``); a double-quoted entry may hold commas
    (``flat,hnsw,"PCA128,HNSW32,Flat"``); otherwise a comma-separated list of the names
    flat, hnsw, ivf-pq, auto, existing is split, and anything else is one factory string.
    Several values (a repeated option) are concatenated."""
    items: list[str] = []
    for value in [values] if isinstance(values, str) else list(values):
        text = value.strip()
        if ";" in text:
            parts = text.split(";")
        elif '"' in text:
            try:
                parts = next(csv.reader([text], skipinitialspace=True, strict=True))
            except csv.Error as e:
                raise ConfigError(f"index type {value!r}: {e}").resolved_by("indexes") from None
        elif all(p.strip().lower() in _NAMED for p in text.split(",")):
            parts = text.split(",")
        else:
            parts = [text]
        items.extend(p.strip() for p in parts)
    if not items or any(not p for p in items):
        raise ConfigError(f"the index types have an empty entry: {values!r}").resolved_by("indexes")
    return tuple(dict.fromkeys(items))


def parse_int_list(text: str | Sequence[int], name: str) -> tuple[int, ...]:
    """``"1,2,5"`` → (1, 2, 5), for the list options; a :class:`ConfigError` names a bad value."""
    if not isinstance(text, str):
        return _ints(name, list(text))
    vals = []
    for part in text.split(","):
        part = part.strip()
        try:
            vals.append(int(part))
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated integers (e.g. 1,2,5), got {text!r}").resolved_by(name) from None
    return _ints(name, vals)


def _size_tag(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def default_result_path(cfg: RerankBenchConfig) -> Path:
    """``benchmarks/results/rerank_synth-1M-d2048-float32.json`` or ``rerank_index-NAME.json``
    (relative to the working directory), with ``-cold`` for cold-cache runs."""
    if cfg.synthetic is not None:
        tag = f"synth-{_size_tag(cfg.synthetic)}-d{cfg.dim}-{cfg.dtype}"
    else:
        tag = f"index-{Path(cfg.index).name}"  # type: ignore[arg-type]
    return Path("benchmarks/results") / f"rerank_{tag}{'-cold' if cfg.cold else ''}.json"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IndexBuild:
    """One candidate index as built (or loaded from the work directory's cache)."""

    name: str  # as given in --indexes
    factory: str  # the FAISS factory string it resolved to
    metric: str
    build_s: float | None  # train + add, from the run that built it (None: not recorded)
    train_s: float | None
    add_s: float | None
    reused: bool  # loaded from the cache: build times are those of the earlier run
    index_bytes: int  # serialized size, ≈ its resident size in RAM
    ntotal: int
    train_size: int
    ef_construction: int
    file: str
    why: str = ""

    @property
    def index_bytes_per_vector(self) -> float:
        return self.index_bytes / max(self.ntotal, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "index_bytes_per_vector": self.index_bytes_per_vector}


@dataclass(frozen=True)
class OperatingPoint:
    """One (index, knobs, k, refine) setting and what it achieved."""

    index: str
    factory: str
    k: int
    refine: int
    shortlist: int  # candidates asked of FAISS per query: (k, +1 when the query's own row is excluded) × refine
    candidates_mean: float  # candidates FAISS actually returned (HNSW returns about efSearch at most)
    nprobe: int | None
    ef_search: int | None
    recall: dict[int, float]  # r → recall@r, for r in RECALL_AT with r ≤ k
    recall_ties: dict[int, float]  # tie-aware
    p50_ms: float  # single query, FAISS search + exact rerank
    p99_ms: float
    mean_ms: float
    search_p50_ms: float
    rerank_p50_ms: float
    latency_queries: int
    qps_batch: float  # all queries in batches, all threads
    speedup_vs_exact: float  # exact one-query scan time / p50, same run
    speedup_vs_read: float  # plain read of the catalog / p50 (the exact scan's bound)
    batch_speedup_vs_exact: float  # exact batch scan s/query × qps_batch
    ram_bytes_per_vector: float  # index, plus the full vectors unless they stay on disk (cold)
    disk_bytes_per_vector: float  # index file + full vectors
    pareto: bool = False

    @property
    def qps_single(self) -> float:
        return 1e3 / self.mean_ms if self.mean_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recall"] = {str(r): v for r, v in self.recall.items()}
        d["recall_ties"] = {str(r): v for r, v in self.recall_ties.items()}
        d["qps_single"] = self.qps_single
        return d


@dataclass(frozen=True)
class RerankBenchResult:
    config: RerankBenchConfig
    dataset: dict[str, Any]
    exact: ExactBaseline
    builds: list[IndexBuild]
    points: list[OperatingPoint]
    machine: dict[str, Any]
    commit: str
    created: str
    seconds: float
    ground_truth: dict[str, Any] = field(default_factory=dict)
    json_path: Path | None = None

    @property
    def pareto_indices(self) -> list[int]:
        """Positions in :attr:`points` of the Pareto-optimal points, fastest first."""
        front = [i for i, p in enumerate(self.points) if p.pareto]
        return sorted(front, key=lambda i: (self.points[i].p50_ms, -_front_recall(self.points[i]), i))

    @property
    def pareto(self) -> list[OperatingPoint]:
        """The Pareto-optimal points, fastest first."""
        return [self.points[i] for i in self.pareto_indices]

    def best(self, min_recall: float, at: int = PARETO_AT) -> OperatingPoint | None:
        """The fastest point (p50) whose recall@``at`` reaches ``min_recall``, if any."""
        ok = [p for p in self.points if p.recall.get(at, -1.0) >= min_recall]
        return min(ok, key=lambda p: p.p50_ms) if ok else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "rerank",
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "commit": self.commit,
            "package_version": __version__,
            "machine": self.machine,
            "parameters": self.config.to_dict(),
            "dataset": self.dataset,
            "ground_truth": self.ground_truth,
            "exact": self.exact.to_dict(),
            "indexes": [b.to_dict() for b in self.builds],
            "results": [p.to_dict() for p in self.points],
            "pareto": self.pareto_indices,
            "seconds": round(self.seconds, 2),
            "notes": (
                "latency: one query at a time with one FAISS and one numba thread, query embedding excluded; "
                "qps_batch: all queries in batches with all threads; speedups are ratios to the exact scan and the "
                "plain read timed in this run; build times of reused indexes are those of the run that built them; "
                "machine.load_average (start) and load_average_end show whether other processes shared the CPU"
            ),
        }


def _front_recall(p: OperatingPoint) -> float:
    r = PARETO_AT if PARETO_AT in p.recall else min(p.recall)
    return p.recall[r]


# --------------------------------------------------------------------------- helpers




def _knobs(index: Any) -> tuple[bool, bool]:
    """(has an IVF level, has an HNSW graph) — which of nprobe / efSearch mean something."""
    import faiss

    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else faiss.downcast_index(index)
    ivf = faiss.try_extract_index_ivf(base) if hasattr(faiss, "try_extract_index_ivf") else None
    return ivf is not None, getattr(base, "hnsw", None) is not None


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _resolve(cfg: RerankBenchConfig, n: int, dim: int, metric: str) -> list[tuple[str, str]]:
    """(name, factory) of every index to run; each factory checked by FAISS up front."""
    out = []
    for name in cfg.indexes:
        if name.lower() == "existing":
            if cfg.index is None:
                raise ConfigError("the index type 'existing' (the index directory's own FAISS index) needs an index directory").resolved_by("index")
            out.append((name, "existing"))
            continue
        kind = name.replace("{nlist}", str(auto_nlist(n)))
        factory, _ = resolve_factory(IndexSpec(kind=kind, metric=metric), n, dim)
        check_factory(factory, dim, metric)
        out.append((name, factory))
    return out


def _get_index(cfg: RerankBenchConfig, data: BenchData, name: str, factory: str, metric: str, progress: Progress) -> tuple[Any, IndexBuild]:
    import faiss

    if factory == "existing":
        from ..index.manifest import read_manifest

        path = existing_faiss_file(data)
        info = (read_manifest(data.index_dir).faiss or {}) if data.index_dir else {}  # type: ignore[arg-type]
        index = load_faiss_index(path, info)
        return index, IndexBuild(
            name=name, factory=str(info.get("factory", "?")), metric=str(info.get("metric", "l2")),
            build_s=_num(info.get("build_seconds")), train_s=_num(info.get("train_seconds")),
            add_s=_num(info.get("add_seconds")), reused=True, index_bytes=path.stat().st_size,
            ntotal=int(index.ntotal), train_size=int((info.get("spec") or {}).get("train_size") or 0),
            ef_construction=int((info.get("spec") or {}).get("ef_construction") or 0), file=str(path),
            why="the index directory's own FAISS index",
        )
    train = min(cfg.train_size, data.n)
    spec = IndexSpec(kind=factory, metric=metric, ef_construction=cfg.ef_construction, train_size=train, seed=cfg.seed)
    stem = f"{_slug(factory)}-{metric}-train{train}-efc{cfg.ef_construction}-seed{cfg.seed}"
    path = Path(cfg.workdir) / "indexes" / data.key / f"{stem}.faiss"
    side = path.with_suffix(".json")
    info: dict[str, Any] | None = None
    if path.is_file() and side.is_file() and not cfg.rebuild:
        try:
            info = json.loads(side.read_text())
            index = faiss.read_index(str(path))
            if index.ntotal != data.n:
                info = None
            else:
                progress.log(f"{factory}: reusing {path} (built in {info['build_seconds']:.1f} s)")
        except (OSError, RuntimeError, ValueError, KeyError):
            info = None
    if info is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = build_faiss_index(data.vectors, spec, path, progress)
        atomic_write_json(side, info)
        index = faiss.read_index(str(path))
        reused = False
    else:
        reused = True
    return index, IndexBuild(
        name=name, factory=factory, metric=metric, build_s=float(info["build_seconds"]),
        train_s=_num(info.get("train_seconds")), add_s=_num(info.get("add_seconds")),
        reused=reused, index_bytes=path.stat().st_size, ntotal=int(index.ntotal), train_size=train,
        ef_construction=cfg.ef_construction, file=str(path), why=str(info.get("chosen_because", "")),
    )


def _measure(
    cfg: RerankBenchConfig,
    data: BenchData,
    metric: str,
    gt: GroundTruth,
    exact: ExactBaseline,
    index: Any,
    build: IndexBuild,
    k: int,
    refine: int,
    nprobe: int | None,
    ef_search: int | None,
    threads: int,
) -> OperatingPoint:
    xq = data.queries
    nq = len(xq)
    m = min(data.n, (k + (0 if data.exclude is None else 1)) * refine)
    nlat = min(nq, cfg.latency_queries or 1000)
    exc = data.exclude
    params = search_params(index, nprobe=nprobe, ef_search=ef_search)

    def search(q0: int, q1: int, timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        # the searcher's own path (search.shortlist), with the run's per-call knobs
        s, ids, _ = shortlist_rerank(
            index, data.vectors, xq[q0:q1], k, refine, data.weights, metric=metric, params=params,
            exclude=None if exc is None else exc[q0:q1], device="cpu", timings=timings,
        )
        return s, ids

    # Single queries: one at a time, one thread each for FAISS and the reranker.
    t_search = np.empty(nlat)
    t_total = np.empty(nlat)
    with search_threads(1):
        for i in range(min(_WARM_QUERIES, nlat)):  # code paths and FAISS' per-thread buffers
            search(i, i + 1)
        if cfg.cold:
            evict_from_page_cache(data)
        for i in range(nlat):
            tm: dict[str, float] = {}
            search(i, i + 1, tm)
            t_search[i] = tm["shortlist"]
            t_total[i] = tm["total"]

    # Batches, all threads: throughput, and the results recall is computed on.
    step = max(1, min(nq, (_BATCH_RERANK_BYTES // data.vector_bytes) // m))
    found_s = np.empty((nq, k), np.float32)
    found_i = np.empty((nq, k), np.int64)
    n_cand = 0
    if cfg.cold:
        evict_from_page_cache(data)
    with search_threads(threads):
        t0 = time.perf_counter()
        for q0 in range(0, nq, step):
            q1 = min(nq, q0 + step)
            tm = {}
            found_s[q0:q1], found_i[q0:q1] = search(q0, q1, tm)
            n_cand += int(tm["candidates"])
        t_batch = time.perf_counter() - t0

    rs = [r for r in RECALL_AT if r <= k]
    p50 = percentile_ms(t_total, 50)
    vec_per = data.vector_bytes
    idx_per = build.index_bytes_per_vector
    return OperatingPoint(
        index=build.name,
        factory=build.factory,
        k=k,
        refine=refine,
        shortlist=m,
        candidates_mean=n_cand / nq,
        nprobe=nprobe,
        ef_search=ef_search,
        recall={r: recall_at(found_i, gt.ids, r) for r in rs},
        recall_ties={r: recall_at_tie_aware(found_i, found_s, gt.ids, gt.scores, r) for r in rs},
        p50_ms=p50,
        p99_ms=percentile_ms(t_total, 99),
        mean_ms=float(t_total.mean() * 1e3),
        search_p50_ms=percentile_ms(t_search, 50),
        rerank_p50_ms=percentile_ms(t_total - t_search, 50),
        latency_queries=nlat,
        qps_batch=nq / t_batch,
        speedup_vs_exact=exact.single_query_s * 1e3 / p50,
        speedup_vs_read=exact.read_s * 1e3 / p50,
        batch_speedup_vs_exact=exact.batch_s_per_query * nq / t_batch,
        ram_bytes_per_vector=idx_per + (0 if cfg.cold else vec_per),
        disk_bytes_per_vector=idx_per + vec_per,
    )


def _mark_pareto(points: list[OperatingPoint]) -> list[OperatingPoint]:
    front = set(pareto_front([(_front_recall(p), p.p50_ms) for p in points]))
    return [OperatingPoint(**{**{f.name: getattr(p, f.name) for f in fields(p)}, "pareto": i in front}) for i, p in enumerate(points)]


# --------------------------------------------------------------------------- the benchmark


def run_rerank_benchmark(cfg: RerankBenchConfig, progress: Progress = NULL_PROGRESS) -> RerankBenchResult:
    """Run the sweep described by ``cfg``; write its JSON (unless ``cfg.write_json`` is False)
    and return the result. Heavy intermediate products (the synthetic catalog, ground truth,
    built indexes) are kept in ``cfg.workdir`` and reused by later runs with the same inputs."""
    import faiss

    if cfg.write_json:  # checked before the sweep, which can take an hour
        check_output_file(Path(cfg.out_json) if cfg.out_json is not None else default_result_path(cfg))
    check_output_dir(cfg.workdir)
    t_start = time.perf_counter()
    load_start = load_average()
    threads = cfg.threads or usable_cpus()
    workdir = Path(cfg.workdir)

    if cfg.synthetic is not None:
        metric = cfg.metric or "l2"
        # Bad factory strings fail here, before minutes of data generation.
        plan = _resolve(cfg, cfg.synthetic, cfg.dim, metric)
        if max(cfg.k) > cfg.synthetic:
            raise ConfigError(f"k={max(cfg.k)} is more than the {cfg.synthetic} catalog vectors").resolved_by("k")
        data = synthetic_data(SyntheticSpec(n=cfg.synthetic, dim=cfg.dim, dtype=cfg.dtype, seed=cfg.seed), workdir, cfg.queries, progress)
    else:
        data = index_data(cfg.index, cfg.queries, seed=cfg.seed)  # type: ignore[arg-type]
        metric = cfg.metric or data.metric
        plan = _resolve(cfg, data.n, data.dim, metric)
    extra = 0 if data.exclude is None else 1
    if max(cfg.k) + extra > data.n:
        raise ConfigError(f"k={max(cfg.k)} is more than the {data.n - extra} catalog vectors a query can find").resolved_by("k")

    with search_threads(threads):
        warmup()
        gt = ground_truth(data, max(cfg.k), workdir, progress, rebuild=cfg.rebuild)
        progress.log(f"timing the exact scan of one query over {data.n:,} vectors ({cfg.exact_queries} repeats)")
        exact = measure_exact(data, max(cfg.k), gt, cfg.exact_queries, threads)
    progress.log(
        f"exact scan: {exact.single_query_s * 1e3:.1f} ms/query ({exact.scan_over_read:.2f}× a plain read of "
        f"{exact.catalog_bytes / 1e9:.2f} GB, {exact.read_s * 1e3:.1f} ms)"
    )
    random_access = bool(cfg.cold and not cfg.readahead and advise_random(data))

    builds: list[IndexBuild] = []
    points: list[OperatingPoint] = []
    for name, factory in plan:
        with search_threads(threads):
            index, build = _get_index(cfg, data, name, factory, metric, progress)
        builds.append(build)
        has_ivf, has_hnsw = _knobs(index)
        knob_sets = [(p, e) for p in (cfg.nprobe if has_ivf else (None,)) for e in (cfg.ef_search if has_hnsw else (None,))]
        total = len(knob_sets) * len(cfg.k) * len(cfg.refine)
        with progress.task(f"sweeping {build.factory}", total=total, unit="pt") as t:
            for nprobe, ef in knob_sets:
                for k in cfg.k:
                    for refine in cfg.refine:
                        p = _measure(cfg, data, metric, gt, exact, index, build, k, refine, nprobe, ef, threads)
                        points.append(p)
                        t.advance(1)
                        t.update(recall=p.recall.get(PARETO_AT, p.recall[min(p.recall)]), p50_ms=p.p50_ms)
        del index
        faiss.omp_set_num_threads(threads)

    points = _mark_pareto(points)
    machine = machine_info({"threads": threads, "single_query_threads": 1, "load_average_end": load_average()})
    machine["load_average"] = load_start
    result = RerankBenchResult(
        config=cfg,
        dataset={
            **data.describe,
            "vector_bytes": data.vector_bytes,
            "catalog_file_bytes": data.vectors_file.stat().st_size,
            "cold": cfg.cold,
            "madvise_random": random_access,
        },
        exact=exact,
        builds=builds,
        points=points,
        machine=machine,
        commit=git_commit(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        seconds=time.perf_counter() - t_start,
        ground_truth={"k": max(cfg.k), "seconds": gt.seconds, "reused": gt.reused, "file": str(gt.file) if gt.file else None},
    )
    if cfg.write_json:
        path = Path(cfg.out_json) if cfg.out_json is not None else default_result_path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result.to_dict())
        result = RerankBenchResult(**{**{f.name: getattr(result, f.name) for f in fields(result)}, "json_path": path})
    return result
