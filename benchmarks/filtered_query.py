"""Filtered queries and adds on synthetic clustered vectors (issue 13).

    python benchmarks/filtered_query.py --n 1000000 --dim 2048 --queries 200 --out-json benchmarks/results/filtered_1M.json

Builds an index of ``--n`` clustered vectors (``galaxy_retrieval.search.synthetic``) whose
shards carry a uniform column ``u`` in [0, 1) and a ``label``; ``where="u < s"`` then selects
a fraction ``s`` of the catalog. For each selectivity it reports the filtered query p50/p90
(one query per call, the selection cached as a repeated filter is) and recall@k against the
exact filtered ground truth (the exact scan of the selected rows), plus the DuckDB selection
time of a new filter. In the same run it measures the add path: ``--add`` vectors appended
to an index of ``n - add`` (shards, vectors file, FAISS add, manifest) against a full build of
all ``n`` from shards, as objects per second; embedding costs the same per object on both
paths and is not included.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from galaxy_retrieval.bench.machine import git_commit, machine_info  # noqa: E402
from galaxy_retrieval.index import shard_name, write_shard  # noqa: E402
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards  # noqa: E402
from galaxy_retrieval.index.candidates import IndexSpec  # noqa: E402
from galaxy_retrieval.index.writes import append_vectors  # noqa: E402
from galaxy_retrieval.search.searcher import GalaxySearcher  # noqa: E402
from galaxy_retrieval.search.synthetic import clustered_vectors  # noqa: E402


def write_shards(root: Path, x: np.ndarray, lo: int, hi: int, per: int, seed: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    u = np.random.default_rng(seed).random(len(x))
    for i, a in enumerate(range(lo, hi, per)):
        b = min(hi, a + per)
        write_shard(root / shard_name(i), [f"s{r}" for r in range(a, b)], np.arange(a, b), x[a:b], {"u": u[a:b].tolist(), "label": (np.arange(a, b) % 10).tolist()})
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--refine", type=int, default=10)
    ap.add_argument("--index", default="auto", help="auto | flat | hnsw | ivf-pq | a FAISS factory string")
    ap.add_argument("--nprobe", type=int, default=256)
    ap.add_argument("--selectivities", default="0.5,0.05,0.001")
    ap.add_argument("--add", type=int, default=None, help="vectors appended in the add measurement (default n/10)")
    ap.add_argument("--shard-rows", type=int, default=65536)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact-scan-elements", type=int, default=None, help="selections of at most this many rows×dim are scanned exactly (default: the searcher's); 0 forces FAISS")
    ap.add_argument("--workdir", type=Path, default=None, help="where the indexes are built (default a temp dir, removed)")
    ap.add_argument("--out-json", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gr-filtered-", dir=args.workdir))
    try:
        result = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(text + "\n")


def run(args: argparse.Namespace, work: Path) -> dict:
    n, dim, k = args.n, args.dim, args.k
    x = clustered_vectors(n + args.queries, dim, seed=args.seed)
    xq, x = x[n:], x[:n]  # held-out queries from the same distribution
    spec = IndexSpec(kind=args.index, nprobe=args.nprobe, seed=args.seed)
    cfg = BuildConfig(index=spec, shard_rows=args.shard_rows)

    t0 = time.perf_counter()
    build_index_from_shards(write_shards(work / "shards", x, 0, n, args.shard_rows, args.seed), work / "full", cfg)
    full_s = time.perf_counter() - t0
    s = GalaxySearcher.open(work / "full")
    s.warmup(model=False)
    if args.exact_scan_elements is not None:
        s.exact_scan_elements = args.exact_scan_elements

    # the unfiltered query in the same run: the filtered p50s are read against it
    _, gt_all, _ = s.search_vectors(xq, k, exact=True)
    base_t, base_found = [], []
    for i in range(len(xq)):
        t0 = time.perf_counter()
        base_found.append(s.search_vectors(xq[i : i + 1], k, args.refine)[1][0])
        base_t.append(time.perf_counter() - t0)
    rows = [{
        "selectivity": 1.0, "matched": n, "path": "FAISS (no filter)",
        "recall_at_k": round(float(np.mean([len(set(f) & set(g)) / k for f, g in zip(base_found, gt_all)])), 4),
        "p50_ms": round(statistics.median(base_t) * 1e3, 3), "p90_ms": round(float(np.percentile(base_t, 90)) * 1e3, 3),
    }]
    for sel in [float(v) for v in args.selectivities.split(",")]:
        where = f"u < {sel}"
        t0 = time.perf_counter()
        matched = len(s.select(where))
        select_ms = (time.perf_counter() - t0) * 1e3
        _, gt, _ = s.search_vectors(xq, k, exact=True, where=where)
        times, found = [], []
        for i in range(len(xq)):
            t0 = time.perf_counter()
            _, pos, _ = s.search_vectors(xq[i : i + 1], k, args.refine, where=where)
            times.append(time.perf_counter() - t0)
            found.append(pos[0])
        recall = float(np.mean([len(set(f[f >= 0]) & set(g[g >= 0])) / max(1, min(k, (g >= 0).sum())) for f, g in zip(found, gt)]))
        path = "exact scan" if matched * dim <= s.exact_scan_elements else "FAISS + ID selector"
        rows.append({
            "selectivity": sel, "matched": matched, "path": path, "recall_at_k": round(recall, 4),
            "p50_ms": round(statistics.median(times) * 1e3, 3), "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 3),
            "select_ms_uncached": round(select_ms, 2),
        })
        print(f"selectivity {sel:g}: {matched:,} rows ({path}), recall@{k} {recall:.4f}, p50 {rows[-1]['p50_ms']} ms", file=sys.stderr)

    add = args.add or max(1, n // 10)
    build_index_from_shards(write_shards(work / "base-shards", x, 0, n - add, args.shard_rows, args.seed), work / "base", cfg)
    u = np.random.default_rng(args.seed + 1).random(add)
    t0 = time.perf_counter()
    append_vectors(work / "base", [f"s{r}" for r in range(n - add, n)], x[n - add :], {"u": u.tolist(), "label": (np.arange(n - add, n) % 10).tolist()})
    add_s = time.perf_counter() - t0
    return {
        "benchmark": "filtered_query",
        "commit": git_commit(),
        "machine": machine_info(),
        "params": {**{k_: (str(v) if isinstance(v, Path) else v) for k_, v in vars(args).items()}, "factory": s.manifest.faiss["factory"]},
        "filtered": rows,
        "add": {
            "added": add,
            "onto": n - add,
            "add_seconds": round(add_s, 3),
            "add_objects_per_s": round(add / add_s, 1),
            "full_build_seconds": round(full_s, 3),
            "full_build_objects_per_s": round(n / full_s, 1),
            "add_vs_rebuild_speedup": round(full_s / add_s, 2),
        },
    }


if __name__ == "__main__":
    main()
