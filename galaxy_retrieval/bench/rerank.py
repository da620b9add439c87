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

import datetime as _dt
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json
from ..errors import ConfigError
from ..index.candidates import search_params
from ..metrics import pareto_front, percentile_ms, recall_at, recall_at_tie_aware
from ..paths import check_output_dir, check_output_file
from ..progress import NULL_PROGRESS, Progress
from ..search.exact import warmup
from ..search.shortlist import shortlist_rerank
from ..version import __version__
from .baseline import ExactBaseline, GroundTruth, ground_truth, measure_exact
from .config import DEFAULT_INDEXES, RerankBenchConfig, default_result_path, parse_index_list, parse_int_list
from .datasets import (
    BenchData,
    SyntheticSpec,
    advise_random,
    evict_from_page_cache,
    index_data,
    synthetic_data,
)
from .indexes import IndexBuild, get_index, knobs, plan_indexes
from .machine import git_commit, load_average, machine_info, search_threads, usable_cpus

__all__ = [
    "RerankBenchConfig",
    "IndexBuild",
    "OperatingPoint",
    "RerankBenchResult",
    "run_rerank_benchmark",
    "parse_index_list",
    "parse_int_list",
    "default_result_path",
    "DEFAULT_INDEXES",
    "RECALL_AT",
    "SCHEMA_VERSION",
]

SCHEMA_VERSION = 1
RECALL_AT = (1, 10, 100)
#: The recall the Pareto front is taken on (recall@min(k) if a smaller k is asked for).
PARETO_AT = 10
# Full-precision rows gathered at once by one batched rerank call.
_BATCH_RERANK_BYTES = 256 << 20
_WARM_QUERIES = 10


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class OperatingPoint:
    """One (index, knobs, k, refine) setting and what it achieved."""

    index: str
    factory: str
    k: int
    refine: int
    shortlist: (
        int  # candidates asked of FAISS per query: (k, +1 when the query's own row is excluded) × refine
    )
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


# --------------------------------------------------------------------------- one operating point


@dataclass(frozen=True)
class _Setting:
    """One operating point's search, as :meth:`GalaxySearcher.search_vectors` runs it (the
    searcher's own path, :mod:`galaxy_retrieval.search.shortlist`): FAISS returns
    ``k × refine`` candidates with the run's per-call knobs, the exact reranker keeps k."""

    data: BenchData
    index: Any
    metric: str
    k: int
    refine: int
    params: Any

    def __call__(
        self, q0: int, q1: int, timings: dict[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        exc = self.data.exclude
        s, ids, _ = shortlist_rerank(
            self.index,
            self.data.vectors,
            self.data.queries[q0:q1],
            self.k,
            self.refine,
            self.data.weights,
            metric=self.metric,
            params=self.params,
            exclude=None if exc is None else exc[q0:q1],
            device="cpu",
            timings=timings,
        )
        return s, ids


@dataclass(frozen=True)
class _Latencies:
    """Seconds of each single query: the FAISS shortlist and the whole (shortlist + rerank)."""

    search: np.ndarray
    total: np.ndarray


@dataclass(frozen=True)
class _BatchPass:
    """All queries in batches: the results recall is computed on, and the time they took."""

    scores: np.ndarray
    ids: np.ndarray
    candidates: int  # summed over the queries
    seconds: float


def _time_single(cfg: RerankBenchConfig, run: _Setting, nlat: int) -> _Latencies:
    """One query at a time, one thread each for FAISS and the reranker: a server answers
    concurrent queries on the other cores."""
    t_search = np.empty(nlat)
    t_total = np.empty(nlat)
    with search_threads(1):
        for i in range(min(_WARM_QUERIES, nlat)):  # code paths and FAISS' per-thread buffers
            run(i, i + 1)
        if cfg.cold:
            evict_from_page_cache(run.data)
        for i in range(nlat):
            tm: dict[str, float] = {}
            run(i, i + 1, tm)
            t_search[i] = tm["shortlist"]
            t_total[i] = tm["total"]
    return _Latencies(t_search, t_total)


def _batch_pass(cfg: RerankBenchConfig, run: _Setting, shortlist: int, threads: int) -> _BatchPass:
    """Batches on all threads, each gathering at most ``_BATCH_RERANK_BYTES`` of full rows."""
    data = run.data
    nq = len(data.queries)
    step = max(1, min(nq, (_BATCH_RERANK_BYTES // data.vector_bytes) // shortlist))
    found_s = np.empty((nq, run.k), np.float32)
    found_i = np.empty((nq, run.k), np.int64)
    n_cand = 0
    if cfg.cold:
        evict_from_page_cache(data)
    with search_threads(threads):
        t0 = time.perf_counter()
        for q0 in range(0, nq, step):
            q1 = min(nq, q0 + step)
            tm: dict[str, float] = {}
            found_s[q0:q1], found_i[q0:q1] = run(q0, q1, tm)
            n_cand += int(tm["candidates"])
        seconds = time.perf_counter() - t0
    return _BatchPass(found_s, found_i, n_cand, seconds)


def _measure(
    cfg: RerankBenchConfig,
    run: _Setting,
    gt: GroundTruth,
    exact: ExactBaseline,
    build: IndexBuild,
    nprobe: int | None,
    ef_search: int | None,
    threads: int,
) -> OperatingPoint:
    data, k = run.data, run.k
    nq = len(data.queries)
    m = min(data.n, (k + (0 if data.exclude is None else 1)) * run.refine)
    nlat = min(nq, cfg.latency_queries or 1000)
    lat = _time_single(cfg, run, nlat)
    batches = _batch_pass(cfg, run, m, threads)
    rs = [r for r in RECALL_AT if r <= k]
    p50 = percentile_ms(lat.total, 50)
    vec_per = data.vector_bytes
    idx_per = build.index_bytes_per_vector
    return OperatingPoint(
        index=build.name,
        factory=build.factory,
        k=k,
        refine=run.refine,
        shortlist=m,
        candidates_mean=batches.candidates / nq,
        nprobe=nprobe,
        ef_search=ef_search,
        recall={r: recall_at(batches.ids, gt.ids, r) for r in rs},
        recall_ties={r: recall_at_tie_aware(batches.ids, batches.scores, gt.ids, gt.scores, r) for r in rs},
        p50_ms=p50,
        p99_ms=percentile_ms(lat.total, 99),
        mean_ms=float(lat.total.mean() * 1e3),
        search_p50_ms=percentile_ms(lat.search, 50),
        rerank_p50_ms=percentile_ms(lat.total - lat.search, 50),
        latency_queries=nlat,
        qps_batch=nq / batches.seconds,
        speedup_vs_exact=exact.single_query_s * 1e3 / p50,
        speedup_vs_read=exact.read_s * 1e3 / p50,
        batch_speedup_vs_exact=exact.batch_s_per_query * nq / batches.seconds,
        ram_bytes_per_vector=idx_per + (0 if cfg.cold else vec_per),
        disk_bytes_per_vector=idx_per + vec_per,
    )


def _mark_pareto(points: list[OperatingPoint]) -> list[OperatingPoint]:
    front = set(pareto_front([(_front_recall(p), p.p50_ms) for p in points]))
    return [
        OperatingPoint(**{**{f.name: getattr(p, f.name) for f in fields(p)}, "pareto": i in front})
        for i, p in enumerate(points)
    ]


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class _Catalog:
    """The vectors and queries of a run, the shortlist metric, and the indexes to sweep."""

    data: BenchData
    metric: str
    plan: list[tuple[str, str]]  # (name, FAISS factory)


def _load_catalog(cfg: RerankBenchConfig, workdir: Path, progress: Progress) -> _Catalog:
    if cfg.synthetic is not None:
        metric = cfg.metric or "l2"
        # Bad factory strings fail here, before minutes of data generation.
        plan = plan_indexes(cfg, cfg.synthetic, cfg.dim, metric)
        if max(cfg.k) > cfg.synthetic:
            raise ConfigError(f"k={max(cfg.k)} is more than the {cfg.synthetic} catalog vectors").resolved_by(
                "k"
            )
        data = synthetic_data(
            SyntheticSpec(n=cfg.synthetic, dim=cfg.dim, dtype=cfg.dtype, seed=cfg.seed),
            workdir,
            cfg.queries,
            progress,
        )
    else:
        data = index_data(cfg.index, cfg.queries, seed=cfg.seed)  # type: ignore[arg-type]
        metric = cfg.metric or data.metric
        plan = plan_indexes(cfg, data.n, data.dim, metric)
    extra = 0 if data.exclude is None else 1
    if max(cfg.k) + extra > data.n:
        raise ConfigError(
            f"k={max(cfg.k)} is more than the {data.n - extra} catalog vectors a query can find"
        ).resolved_by("k")
    return _Catalog(data, metric, plan)


def _exact_baseline(
    cfg: RerankBenchConfig, data: BenchData, workdir: Path, threads: int, progress: Progress
) -> tuple[GroundTruth, ExactBaseline]:
    """The exact top-k of every query (cached) and the exact scan's and plain read's times."""
    with search_threads(threads):
        warmup()
        gt = ground_truth(data, max(cfg.k), workdir, progress, rebuild=cfg.rebuild)
        progress.log(
            f"timing the exact scan of one query over {data.n:,} vectors ({cfg.exact_queries} repeats)"
        )
        exact = measure_exact(data, max(cfg.k), gt, cfg.exact_queries, threads)
    progress.log(
        f"exact scan: {exact.single_query_s * 1e3:.1f} ms/query ({exact.scan_over_read:.2f}× a plain read of "
        f"{exact.catalog_bytes / 1e9:.2f} GB, {exact.read_s * 1e3:.1f} ms)"
    )
    return gt, exact


def _sweep(
    cfg: RerankBenchConfig,
    cat: _Catalog,
    gt: GroundTruth,
    exact: ExactBaseline,
    threads: int,
    progress: Progress,
) -> tuple[list[IndexBuild], list[OperatingPoint]]:
    """Every index of the plan, built or reused, at every (nprobe, efSearch, k, refine)."""
    import faiss

    builds: list[IndexBuild] = []
    points: list[OperatingPoint] = []
    for name, factory in cat.plan:
        with search_threads(threads):
            index, build = get_index(cfg, cat.data, name, factory, cat.metric, progress)
        builds.append(build)
        has_ivf, has_hnsw = knobs(index)
        knob_sets = [
            (p, e)
            for p in (cfg.nprobe if has_ivf else (None,))
            for e in (cfg.ef_search if has_hnsw else (None,))
        ]
        total = len(knob_sets) * len(cfg.k) * len(cfg.refine)
        with progress.task(f"sweeping {build.factory}", total=total, unit="pt") as t:
            for nprobe, ef in knob_sets:
                params = search_params(index, nprobe=nprobe, ef_search=ef)
                for k in cfg.k:
                    for refine in cfg.refine:
                        run = _Setting(cat.data, index, cat.metric, k, refine, params)
                        p = _measure(cfg, run, gt, exact, build, nprobe, ef, threads)
                        points.append(p)
                        t.advance(1)
                        t.update(recall=p.recall.get(PARETO_AT, p.recall[min(p.recall)]), p50_ms=p.p50_ms)
        del index
        faiss.omp_set_num_threads(threads)
    return builds, points


def run_rerank_benchmark(cfg: RerankBenchConfig, progress: Progress = NULL_PROGRESS) -> RerankBenchResult:
    """Run the sweep described by ``cfg``; write its JSON (unless ``cfg.write_json`` is False)
    and return the result. Heavy intermediate products (the synthetic catalog, ground truth,
    built indexes) are kept in ``cfg.workdir`` and reused by later runs with the same inputs."""
    out_json = Path(cfg.out_json) if cfg.out_json is not None else default_result_path(cfg)
    if cfg.write_json:  # checked before the sweep, which can take an hour
        check_output_file(out_json)
    check_output_dir(cfg.workdir)
    t_start = time.perf_counter()
    load_start = load_average()
    threads = cfg.threads or usable_cpus()
    workdir = Path(cfg.workdir)

    cat = _load_catalog(cfg, workdir, progress)
    data = cat.data
    gt, exact = _exact_baseline(cfg, data, workdir, threads, progress)
    random_access = bool(cfg.cold and not cfg.readahead and advise_random(data))
    builds, points = _sweep(cfg, cat, gt, exact, threads, progress)

    machine = machine_info(
        {"threads": threads, "single_query_threads": 1, "load_average_end": load_average()}
    )
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
        points=_mark_pareto(points),
        machine=machine,
        commit=git_commit(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        seconds=time.perf_counter() - t_start,
        ground_truth={
            "k": max(cfg.k),
            "seconds": gt.seconds,
            "reused": gt.reused,
            "file": str(gt.file) if gt.file else None,
        },
    )
    if cfg.write_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_json, result.to_dict())
        result = RerankBenchResult(
            **{**{f.name: getattr(result, f.name) for f in fields(result)}, "json_path": out_json}
        )
    return result
