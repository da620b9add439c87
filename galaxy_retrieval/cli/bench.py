"""gr rerank-benchmark: recall and speed of shortlist + exact rerank."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .errors import friendly
from .options import DtypeChoice, MetricChoice
from .render import RichProgress, out

app = typer.Typer()


@app.command("rerank-benchmark")
@friendly
def rerank_benchmark_cmd(
    index: Optional[Path] = typer.Option(None, help="Index directory (indexes/NAME): its embeddings, queries = its own objects, themselves excluded."),
    synthetic: Optional[int] = typer.Option(None, help="Instead: a synthetic clustered catalog of this many vectors (held-out queries)."),
    dim: int = typer.Option(2048, help="Synthetic: vector dimension."),
    dtype: DtypeChoice = typer.Option(DtypeChoice.float32, help="Synthetic: stored vectors."),
    workdir: Path = typer.Option(Path("data/bench"), help="Cache of synthetic vectors, ground truth and built indexes (reused)."),
    queries: int = typer.Option(1000, help="Query vectors (ground truth for all; latency on up to --latency-queries)."),
    k: str = typer.Option("10", help="Results per query, comma-separated (recall@1/10/100 where ≤ k)."),
    indexes: Optional[list[str]] = typer.Option(None, help="Index types: flat, hnsw, ivf-pq, existing, or FAISS factory strings; ';' separates (or quote them: flat,\"PCA128,HNSW32\"); repeatable. Default: PCA64,IVF{nlist},SQ8;PCA64,HNSW32 ({nlist}: 4·√N rounded to a power of 2)."),
    refine: str = typer.Option("1,2,5,10,20", help="Shortlist factors: FAISS returns k×refine candidates, reranked exactly."),
    nprobe: str = typer.Option("32,64,128,256,512", help="IVF lists probed (IVF indexes)."),
    ef_search: str = typer.Option("64,128,256,512", help="HNSW search breadth (HNSW indexes)."),
    metric: Optional[MetricChoice] = typer.Option(None, help="Shortlist metric (default: l2, or the index's).", show_default=False),
    ef_construction: int = typer.Option(40, help="HNSW build breadth."),
    train_size: int = typer.Option(100_000, help="Vectors sampled to train PCA/IVF/PQ."),
    threads: Optional[int] = typer.Option(None, help="Threads for builds, batches and the exact scan (default: all cores)."),
    latency_queries: Optional[int] = typer.Option(None, help="Queries timed one at a time (default: min(queries, 1000))."),
    exact_queries: int = typer.Option(3, help="Exact one-query scans timed (median)."),
    cold: bool = typer.Option(False, "--cold", help="Evict the vectors from the page cache before each timed pass (catalog on disk)."),
    readahead: bool = typer.Option(False, "--readahead", help="With --cold: keep the OS readahead on the vectors (default: MADV_RANDOM)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Recompute ground truth and rebuild indexes instead of reusing the cache."),
    seed: int = typer.Option(0, help="Synthetic data, query choice and index training seed."),
    out_json: Optional[Path] = typer.Option(None, "--out-json", help="Result JSON (default: benchmarks/results/rerank_<catalog>.json)."),
    pareto_only: bool = typer.Option(False, "--pareto-only", help="Show only the Pareto-optimal points (the JSON has all)."),
) -> None:
    """Recall and speed of FAISS shortlist + exact rerank against the exact weighted score."""
    from ..bench import DEFAULT_INDEXES, RerankBenchConfig, run_rerank_benchmark

    cfg = RerankBenchConfig(
        index=index, synthetic=synthetic, dim=dim, dtype=dtype.value, workdir=workdir, queries=queries, k=k,
        indexes=tuple(indexes) if indexes else DEFAULT_INDEXES, refine=refine, nprobe=nprobe, ef_search=ef_search,
        metric=None if metric is None else metric.value, ef_construction=ef_construction, train_size=train_size, threads=threads,
        latency_queries=latency_queries, exact_queries=exact_queries, cold=cold, readahead=readahead, rebuild=rebuild, seed=seed, out_json=out_json,
    )
    res = run_rerank_benchmark(cfg, progress=RichProgress())
    ds, ex = res.dataset, res.exact
    out.print(
        f"{ds.get('n', 0):,} × {ds.get('dim')} {ds.get('dtype')} ({ds['source']}), {ds['queries']:,} queries; "
        f"exact scan {ex.single_query_s * 1e3:.1f} ms/query = {ex.scan_over_read:.2f}× a plain read ({ex.read_s * 1e3:.1f} ms), "
        f"{ex.threads} threads; load average {res.machine.get('load_average')} → {res.machine.get('load_average_end')}",
        highlight=False,
    )
    bt = Table(title="candidate indexes", title_justify="left")
    for col in ("index", "factory", "build s", "train s", "add s", "index B/vec", "vectors B/vec", "note"):
        bt.add_column(col, justify="left" if col in ("index", "factory", "note") else "right")
    for b in res.builds:
        bt.add_row(
            b.name, b.factory, _fmt_num(b.build_s, ".1f"), _fmt_num(b.train_s, ".1f"), _fmt_num(b.add_s, ".1f"),
            f"{b.index_bytes_per_vector:,.0f}", f"{ds['vector_bytes']:,}" + (" (disk)" if cfg.cold else ""), "reused" if b.reused else "built now",
        )
    out.print(bt)
    shown = res.pareto if pareto_only else res.points
    t = Table(title=f"{'Pareto front' if pareto_only else 'operating points'} (★ = Pareto-optimal in recall@10 and p50)", title_justify="left")
    for col in ("index", "nprobe", "ef", "k", "refine", "cand", "R@1", "R@10", "R@100", "p50 ms", "p99 ms", "search/rerank ms", "QPS batch", "× exact", "★"):
        t.add_column(col, justify="left" if col == "index" else "right")
    for p in shown:
        t.add_row(
            p.factory, _fmt_num(p.nprobe, "d"), _fmt_num(p.ef_search, "d"), str(p.k), str(p.refine), f"{p.candidates_mean:.0f}",
            *(_fmt_num(p.recall.get(r), ".4f") for r in (1, 10, 100)),
            f"{p.p50_ms:.2f}", f"{p.p99_ms:.2f}", f"{p.search_p50_ms:.2f}/{p.rerank_p50_ms:.2f}", f"{p.qps_batch:,.0f}",
            f"{p.speedup_vs_exact:,.0f}", "★" if p.pareto else "",
        )
    out.print(t)
    best = res.best(0.99)
    if best is not None:
        out.print(
            f"fastest with recall@10 ≥ 0.99: {best.factory} nprobe={best.nprobe} ef={best.ef_search} refine={best.refine}: "
            f"R@10 {best.recall[10]:.4f}, p50 {best.p50_ms:.2f} ms, {best.speedup_vs_exact:,.0f}× faster than the exact scan",
            highlight=False,
        )
    if res.json_path is not None:
        out.print(f"wrote {res.json_path}")


def _fmt_num(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)
