"""gr rerank-benchmark: recall and speed of shortlist + exact rerank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .errors import friendly
from .render import RichProgress, out

app = typer.Typer()


Index = Annotated[
    Path | None,
    typer.Option(
        help="Index directory (indexes/NAME): its embeddings, queries = its own objects, themselves excluded."
    ),
]
Synthetic = Annotated[
    int | None,
    typer.Option(help="Instead: a synthetic clustered catalog of this many vectors (held-out queries)."),
]
Workdir = Annotated[
    Path, typer.Option(help="Cache of synthetic vectors, ground truth and built indexes (reused).")
]
Queries = Annotated[
    int, typer.Option(help="Query vectors (ground truth for all; latency on up to --latency-queries).")
]
K = Annotated[str, typer.Option(help="Results per query, comma-separated (recall@1/10/100 where ≤ k).")]
Indexes = Annotated[
    list[str] | None,
    typer.Option(
        help=(
            "Index types: flat, hnsw, ivf-pq, existing, or FAISS factory strings; ';' separates (or quote "
            'them: flat,"PCA128,HNSW32"); repeatable. Default: PCA64,IVF{nlist},SQ8;PCA64,HNSW32 '
            "({nlist}: 4·√N rounded to a power of 2)."
        )
    ),
]
Refine = Annotated[
    str, typer.Option(help="Shortlist factors: FAISS returns k×refine candidates, reranked exactly.")
]
Metric = Annotated[
    str | None, typer.Option(help="Shortlist metric (default: l2, or the index's).", show_default=False)
]
Threads = Annotated[
    int | None, typer.Option(help="Threads for builds, batches and the exact scan (default: all cores).")
]
LatencyQueries = Annotated[
    int | None, typer.Option(help="Queries timed one at a time (default: min(queries, 1000)).")
]
Cold = Annotated[
    bool,
    typer.Option(
        "--cold", help="Evict the vectors from the page cache before each timed pass (catalog on disk)."
    ),
]
Readahead = Annotated[
    bool,
    typer.Option(
        "--readahead", help="With --cold: keep the OS readahead on the vectors (default: MADV_RANDOM)."
    ),
]
Rebuild = Annotated[
    bool,
    typer.Option(
        "--rebuild", help="Recompute ground truth and rebuild indexes instead of reusing the cache."
    ),
]
OutJson = Annotated[
    Path | None,
    typer.Option("--out-json", help="Result JSON (default: benchmarks/results/rerank_<catalog>.json)."),
]
ParetoOnly = Annotated[
    bool, typer.Option("--pareto-only", help="Show only the Pareto-optimal points (the JSON has all).")
]


@app.command("rerank-benchmark")
@friendly
def rerank_benchmark_cmd(
    index: Index = None,
    synthetic: Synthetic = None,
    dim: Annotated[int, typer.Option(help="Synthetic: vector dimension.")] = 2048,
    dtype: Annotated[str, typer.Option(help="Synthetic: stored vectors, float32 or float16.")] = "float32",
    workdir: Workdir = Path("data/bench"),
    queries: Queries = 1000,
    k: K = "10",
    indexes: Indexes = None,
    refine: Refine = "1,2,5,10,20",
    nprobe: Annotated[str, typer.Option(help="IVF lists probed (IVF indexes).")] = "32,64,128,256,512",
    ef_search: Annotated[str, typer.Option(help="HNSW search breadth (HNSW indexes).")] = "64,128,256,512",
    metric: Metric = None,
    ef_construction: Annotated[int, typer.Option(help="HNSW build breadth.")] = 40,
    train_size: Annotated[int, typer.Option(help="Vectors sampled to train PCA/IVF/PQ.")] = 100_000,
    threads: Threads = None,
    latency_queries: LatencyQueries = None,
    exact_queries: Annotated[int, typer.Option(help="Exact one-query scans timed (median).")] = 3,
    cold: Cold = False,
    readahead: Readahead = False,
    rebuild: Rebuild = False,
    seed: Annotated[int, typer.Option(help="Synthetic data, query choice and index training seed.")] = 0,
    out_json: OutJson = None,
    pareto_only: ParetoOnly = False,
) -> None:
    """Recall and speed of FAISS shortlist + exact rerank against the exact weighted score."""
    from ..bench import DEFAULT_INDEXES, RerankBenchConfig, run_rerank_benchmark

    cfg = RerankBenchConfig(
        index=index,
        synthetic=synthetic,
        dim=dim,
        dtype=dtype,
        workdir=workdir,
        queries=queries,
        k=k,
        indexes=tuple(indexes) if indexes else DEFAULT_INDEXES,
        refine=refine,
        nprobe=nprobe,
        ef_search=ef_search,
        metric=metric,
        ef_construction=ef_construction,
        train_size=train_size,
        threads=threads,
        latency_queries=latency_queries,
        exact_queries=exact_queries,
        cold=cold,
        readahead=readahead,
        rebuild=rebuild,
        seed=seed,
        out_json=out_json,
    )
    res = run_rerank_benchmark(cfg, progress=RichProgress())
    _render_bench(res, cold, pareto_only)


def _render_bench(res: Any, cold: bool, pareto_only: bool) -> None:
    ds, ex = res.dataset, res.exact
    out.print(
        f"{ds.get('n', 0):,} × {ds.get('dim')} {ds.get('dtype')} ({ds['source']}), "
        f"{ds['queries']:,} queries; "
        f"exact scan {ex.single_query_s * 1e3:.1f} ms/query = {ex.scan_over_read:.2f}× a plain read "
        f"({ex.read_s * 1e3:.1f} ms), {ex.threads} threads; "
        f"load average {res.machine.get('load_average')} → {res.machine.get('load_average_end')}",
        highlight=False,
    )
    bt = Table(title="candidate indexes", title_justify="left")
    for col in ("index", "factory", "build s", "train s", "add s", "index B/vec", "vectors B/vec", "note"):
        bt.add_column(col, justify="left" if col in ("index", "factory", "note") else "right")
    for b in res.builds:
        bt.add_row(
            b.name,
            b.factory,
            _fmt_num(b.build_s, ".1f"),
            _fmt_num(b.train_s, ".1f"),
            _fmt_num(b.add_s, ".1f"),
            f"{b.index_bytes_per_vector:,.0f}",
            f"{ds['vector_bytes']:,}" + (" (disk)" if cold else ""),
            "reused" if b.reused else "built now",
        )
    out.print(bt)
    out.print(_points_table(res, pareto_only))
    best = res.best(0.99)
    if best is not None:
        out.print(
            f"fastest with recall@10 ≥ 0.99: {best.factory} nprobe={best.nprobe} ef={best.ef_search} "
            f"refine={best.refine}: R@10 {best.recall[10]:.4f}, p50 {best.p50_ms:.2f} ms, "
            f"{best.speedup_vs_exact:,.0f}× faster than the exact scan",
            highlight=False,
        )
    if res.json_path is not None:
        out.print(f"wrote {res.json_path}")


def _points_table(res: Any, pareto_only: bool) -> Table:
    shown = res.pareto if pareto_only else res.points
    t = Table(
        title=(
            f"{'Pareto front' if pareto_only else 'operating points'} (★ = Pareto-optimal in recall@10 and "
            f"p50)"
        ),
        title_justify="left",
    )
    for col in (
        "index",
        "nprobe",
        "ef",
        "k",
        "refine",
        "cand",
        "R@1",
        "R@10",
        "R@100",
        "p50 ms",
        "p99 ms",
        "search/rerank ms",
        "QPS batch",
        "× exact",
        "★",
    ):
        t.add_column(col, justify="left" if col == "index" else "right")
    for p in shown:
        t.add_row(
            p.factory,
            _fmt_num(p.nprobe, "d"),
            _fmt_num(p.ef_search, "d"),
            str(p.k),
            str(p.refine),
            f"{p.candidates_mean:.0f}",
            *(_fmt_num(p.recall.get(r), ".4f") for r in (1, 10, 100)),
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            f"{p.search_p50_ms:.2f}/{p.rerank_p50_ms:.2f}",
            f"{p.qps_batch:,.0f}",
            f"{p.speedup_vs_exact:,.0f}",
            "★" if p.pareto else "",
        )
    return t


def _fmt_num(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)
