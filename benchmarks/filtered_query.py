"""Filtered queries and adds on synthetic clustered vectors (issue 13).

    python benchmarks/filtered_query.py --nprobe 256,128,512 --sweep-nprobe 256,512,1024,2048,4096 --out-json benchmarks/results/filtered_1M-d256-float16.json --readme

Builds an index of ``--n`` clustered vectors (``galaxy_retrieval.search.synthetic``) whose
shards carry a uniform column ``u`` in [0, 1) and a ``label``; ``where="u < s"`` then selects
a fraction ``s`` of the catalog. For each selectivity it reports the filtered query p50/p90
(one query per call, the selection cached as a repeated filter is) and recall@k against the
exact filtered ground truth (the exact scan of the selected rows), plus the DuckDB selection
time of a new filter. Beside the path the searcher chooses (its plan), each selectivity is
also run with each path forced (``--compare-queries`` queries): the exact scan of the selected
rows and FAISS with the selection as an ID selector, so the plan's choice is checked against
both. In the same run it measures the add path: ``--add`` vectors appended
to an index of ``n - add`` (shards, vectors file, FAISS add, manifest) against a full build of
all ``n`` from shards, as objects per second, then ``--small-add`` more onto that (the cost of
a small add on a large index); embedding costs the same per object on both paths and is not
included.

benchmarks/README.md §5 is generated from ``results/filtered_1M-d256-float16.json`` by
``docs/readme.py`` (``--readme`` runs it after writing ``--out-json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from galaxy_retrieval.bench.machine import git_commit, machine_info, search_threads  # noqa: E402
from galaxy_retrieval.index import shard_name, write_shard  # noqa: E402
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards  # noqa: E402
from galaxy_retrieval.index.candidates import IndexSpec  # noqa: E402
from galaxy_retrieval.index.writes import append_vectors  # noqa: E402
from galaxy_retrieval.search.options import SearchOptions  # noqa: E402
from galaxy_retrieval.search.searcher import GalaxySearcher  # noqa: E402
from galaxy_retrieval.search.synthetic import clustered_vectors  # noqa: E402


def write_shards(root: Path, x: np.ndarray, lo: int, hi: int, per: int, seed: int, dtype: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    u = np.random.default_rng(seed).random(len(x))
    for i, a in enumerate(range(lo, hi, per)):
        b = min(hi, a + per)
        write_shard(
            root / shard_name(i),
            [f"s{r}" for r in range(a, b)],
            np.arange(a, b),
            x[a:b],
            {"u": u[a:b].tolist(), "label": (np.arange(a, b) % 10).tolist()},
            dtype=dtype,
        )
    return root


def _recall(found: list[np.ndarray], gt: np.ndarray, k: int) -> float:
    return float(
        np.mean(
            [len(set(f[f >= 0]) & set(g[g >= 0])) / max(1, min(k, (g >= 0).sum())) for f, g in zip(found, gt)]
        )
    )


THREADS = 1  # set from --threads in run()


def _timed(
    s: GalaxySearcher, xq: np.ndarray, k: int, refine: int, **kw: object
) -> tuple[list[float], list[np.ndarray]]:
    """One query per call, as a user's request is: (seconds per call, positions found)."""
    with search_threads(THREADS):
        return _timed_loop(s, xq, k, refine, **kw)


def _timed_loop(
    s: GalaxySearcher, xq: np.ndarray, k: int, refine: int, **kw: object
) -> tuple[list[float], list[np.ndarray]]:
    times, found = [], []
    for i in range(len(xq)):
        t0 = time.perf_counter()
        _, pos, _ = s.search_vectors(xq[i : i + 1], k=k, refine=refine, **kw)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
        found.append(pos[0])
    return times, found


def _ms(times: list[float], q: float) -> float:
    return round(float(np.percentile(times, q)) * 1e3, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument(
        "--dim",
        type=int,
        default=256,
        help="256: 1M float16 vectors are 0.5 GB, and the run fits a shared 24 GB box",
    )
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--refine", type=int, default=10)
    ap.add_argument("--index", default="auto", help="auto | flat | hnsw | ivf-pq | a FAISS factory string")
    ap.add_argument(
        "--nprobe", default="256", help="IVF lists probed by an unfiltered query; a comma list runs each"
    )
    ap.add_argument("--selectivities", default="0.5,0.05,0.001")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="FAISS and numba threads for the timed queries (0: all). 1, as §4 times single queries: a server answers concurrent "
        "queries on the other cores, and a parallel region on a busy 2-core box waits a scheduler slice for its second thread",
    )
    ap.add_argument(
        "--sweep-nprobe",
        default="",
        help="also run FAISS + ID selector at these fixed nprobe values per selectivity (no widening)",
    )
    ap.add_argument(
        "--compare-queries", type=int, default=50, help="queries run with each path forced, per selectivity"
    )
    ap.add_argument(
        "--add", type=int, default=None, help="vectors appended in the add measurement (default n/10)"
    )
    ap.add_argument("--small-add", type=int, default=1000, help="vectors appended after that, onto n")
    ap.add_argument("--shard-rows", type=int, default=65536)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="an .npy of real embeddings (rows in random order) instead of synthetic clustered vectors: the first n are indexed, "
        "the next --queries are the queries, the rest the additions; n defaults to what that leaves",
    )
    ap.add_argument(
        "--exact-scan-elements",
        type=int,
        default=None,
        help="selections of at most this many rows×dim are scanned exactly (default: the searcher's); 0 forces FAISS",
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where the indexes are built (default a temp dir, removed)"
    )
    ap.add_argument("--out-json", type=Path, default=None)
    ap.add_argument(
        "--readme",
        action="store_true",
        help="after writing --out-json, regenerate the READMEs (python docs/readme.py)",
    )
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
        if args.readme:
            subprocess.run([sys.executable, str(ROOT / "docs" / "readme.py")], check=True)


def run(args: argparse.Namespace, work: Path) -> dict:
    global THREADS
    THREADS = args.threads
    if args.vectors is not None:  # real embeddings: their own count and width
        x = np.load(args.vectors, mmap_mode="r")
        args.n = min(args.n, len(x) - args.queries - args.small_add)
        args.dim = x.shape[1]
    n, dim, k = args.n, args.dim, args.k
    add = args.add or max(1, n // 10)
    t0 = time.perf_counter()
    if args.vectors is None:
        x = clustered_vectors(n + args.queries + args.small_add, dim, seed=args.seed)
    else:
        x = np.ascontiguousarray(x[: n + args.queries + args.small_add], dtype=np.float32)
    # held-out queries and later additions from the same distribution
    xq, xs, x = x[n : n + args.queries], x[n + args.queries :], x[:n]
    gen_s = time.perf_counter() - t0
    spec = IndexSpec(kind=args.index, nprobe=int(str(args.nprobe).split(",")[0]), seed=args.seed)
    cfg = BuildConfig(index=spec, shard_rows=args.shard_rows, dtype=args.dtype)

    shards = write_shards(work / "shards", x, 0, n, args.shard_rows, args.seed, args.dtype)
    t0 = time.perf_counter()
    build_index_from_shards(shards, work / "full", cfg)
    full_s = time.perf_counter() - t0
    shutil.rmtree(shards)
    s = GalaxySearcher.open(work / "full", verify=False)
    s.warmup(model=False)
    if args.exact_scan_elements is not None:
        s.exact_scan_elements = args.exact_scan_elements
    plan_limit = s.exact_scan_elements

    # ground truth once per filter: the exact scan of the selected rows (None: no filter)
    sels = [float(v) for v in args.selectivities.split(",")]
    gts, matched, select_ms = {}, {}, {}
    t0 = time.perf_counter()
    gts[1.0] = s.search_vectors(xq, k=k, exact=True)[1]
    gt_s = time.perf_counter() - t0
    for sel in sels:
        t0 = time.perf_counter()
        matched[sel] = len(s.select(f"u < {sel}"))
        select_ms[sel] = (time.perf_counter() - t0) * 1e3
        gts[sel] = s.search_vectors(xq, k=k, exact=True, where=f"u < {sel}")[1]
    rows = []
    cq = xq[: args.compare_queries]
    for nprobe in [int(v) for v in str(args.nprobe).split(",")]:
        # the unfiltered query in the same run: the filtered p50s are read against it
        base_t, base_found = _timed(s, xq, k, args.refine, nprobe=nprobe)
        rows.append(
            {
                "index_nprobe": nprobe,
                "selectivity": 1.0,
                "matched": n,
                "path": "FAISS (no filter)",
                "nprobe": nprobe,
                "recall_at_k": round(_recall(base_found, gts[1.0], k), 4),
                "p50_ms": _ms(base_t, 50),
                "p90_ms": _ms(base_t, 90),
            }
        )
        for sel in sels:
            where, m, gt = f"u < {sel}", matched[sel], gts[sel]
            s.exact_scan_elements = plan_limit
            times, found = _timed(s, xq, k, args.refine, where=where, nprobe=nprobe)
            exact_path = m * dim <= plan_limit
            row = {
                "index_nprobe": nprobe,
                "selectivity": sel,
                "matched": m,
                "path": "exact scan" if exact_path else "FAISS + ID selector",
                "nprobe": None if exact_path else s.search_knobs(SearchOptions(nprobe=nprobe), m)[0],
                "recall_at_k": round(_recall(found, gt, k), 4),
                "p50_ms": _ms(times, 50),
                "p90_ms": _ms(times, 90),
                "select_ms_uncached": round(select_ms[sel], 2),
            }
            for name, limit in (("exact", 1 << 62), ("faiss", 0)):  # each path forced
                s.exact_scan_elements = limit
                t, f = _timed(s, cq, k, args.refine, where=where, nprobe=nprobe)
                row[f"forced_{name}"] = {
                    "queries": len(cq),
                    "recall_at_k": round(_recall(f, gt[: len(cq)], k), 4),
                    "p50_ms": _ms(t, 50),
                    "p90_ms": _ms(t, 90),
                }
            # the probe the forced FAISS path ran with (the searcher's widening for m rows)
            row["forced_faiss"]["nprobe"] = s.search_knobs(SearchOptions(nprobe=nprobe), m)[0]
            s.exact_scan_elements = plan_limit
            rows.append(row)
            print(
                f"nprobe {nprobe}, selectivity {sel:g}: {m:,} rows ({row['path']}), recall@{k} {row['recall_at_k']:.4f}, p50 {row['p50_ms']} ms; "
                f"forced exact {row['forced_exact']}, forced FAISS {row['forced_faiss']}",
                file=sys.stderr,
            )
    # FAISS with the selection at fixed probe widths (no scaling): what each width recalls
    sweep = []
    s.exact_scan_elements, s.scale_filtered_probe = 0, False
    for sel in sels if args.sweep_nprobe else []:
        for npr in [int(v) for v in args.sweep_nprobe.split(",")]:
            t, f = _timed(s, cq, k, args.refine, where=f"u < {sel}", nprobe=npr)
            sweep.append(
                {
                    "selectivity": sel,
                    "nprobe": npr,
                    "queries": len(cq),
                    "recall_at_k": round(_recall(f, gts[sel][: len(cq)], k), 4),
                    "p50_ms": _ms(t, 50),
                }
            )
            print(f"sweep: selectivity {sel:g}, nprobe {npr}: {sweep[-1]}", file=sys.stderr)
    s.exact_scan_elements, s.scale_filtered_probe = plan_limit, True
    factory = s.manifest.faiss["factory"]
    del s
    shutil.rmtree(work / "full")

    base = write_shards(work / "base-shards", x, 0, n - add, args.shard_rows, args.seed, args.dtype)
    build_index_from_shards(base, work / "base", cfg)
    shutil.rmtree(base)
    u = np.random.default_rng(args.seed + 1).random(add + len(xs))
    t0 = time.perf_counter()
    append_vectors(
        work / "base",
        [f"s{r}" for r in range(n - add, n)],
        x[n - add :],
        {"u": u[:add].tolist(), "label": (np.arange(n - add, n) % 10).tolist()},
    )
    add_s = time.perf_counter() - t0
    small = {}
    if len(xs):
        t0 = time.perf_counter()
        append_vectors(
            work / "base",
            [f"s{r}" for r in range(n, n + len(xs))],
            xs,
            {"u": u[add:].tolist(), "label": (np.arange(n, n + len(xs)) % 10).tolist()},
        )
        small_s = time.perf_counter() - t0
        small = {
            "small_added": len(xs),
            "small_onto": n,
            "small_add_seconds": round(small_s, 3),
            "small_add_objects_per_s": round(len(xs) / small_s, 1),
        }
    return {
        "benchmark": "filtered_query",
        "commit": git_commit(),
        "machine": machine_info(),
        "params": {
            **{
                k_: (str(v) if isinstance(v, Path) else v)
                for k_, v in vars(args).items()
                if k_ not in ("readme", "check")
            },
            "factory": factory,
        },
        "seconds": {"generate": round(gen_s, 1), "ground_truth_unfiltered": round(gt_s, 1)},
        "exact_scan_elements": plan_limit,
        "filtered": rows,
        "sweep": sweep,
        "add": {
            "added": add,
            "onto": n - add,
            "add_seconds": round(add_s, 3),
            "add_objects_per_s": round(add / add_s, 1),
            "full_build_seconds": round(full_s, 3),
            "full_build_objects_per_s": round(n / full_s, 1),
            "add_vs_rebuild_speedup": round(full_s / add_s, 2),
            **small,
        },
    }


if __name__ == "__main__":
    main()
