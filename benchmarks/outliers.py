"""Time and memory of the catalog-wide outlier search (``gr outliers``) at scale.

    python benchmarks/outliers.py --n 1000000 --workdir /tmp/gr-outliers
    python benchmarks/outliers.py --n 100000 --k 50 --refine 1 --out-json benchmarks/results/outliers_100k.json

``--n`` synthetic clustered vectors (``search.synthetic.clustered_vectors``) at ``--dim``
stored as ``--dtype`` are written as Parquet shards and built into an IVF index
(``--index``, default ``IVF{4·√n},Flat``, nprobe ``--nprobe``), cached in ``--workdir``. Then,
in a fresh process (so its memory is the searcher's, not the build's), every object's
score to its k-th neighbour is computed once (:meth:`GalaxySearcher.outlier_scores`, no
cache): wall time, objects per second, peak resident memory. Its accuracy is the k-th
neighbour score of ``--check`` random objects against the exact scan of every vector
(``exact_knn``), and the overlap of the 100 strangest with those of a shortlist of
``--check-refine`` × k. Results go to ``--out-json`` with machine, commit and parameters.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def _tag(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (f"{n // 1000}k" if n % 1000 == 0 else str(n))


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def build(a: argparse.Namespace, idx: Path) -> dict[str, Any]:
    from galaxy_retrieval.index import shard_name, write_shard
    from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
    from galaxy_retrieval.index.candidates import IndexSpec
    from galaxy_retrieval.search.synthetic import clustered_vectors

    if (idx / "manifest.json").is_file():
        return json.loads((idx.parent / f"build-{idx.name}.json").read_text()) | {"reused": True}
    t0 = time.perf_counter()
    x = clustered_vectors(a.n, a.dim, seed=a.seed).astype(a.dtype)
    emb = idx / "embeddings"
    emb.mkdir(parents=True, exist_ok=True)
    for i, lo in enumerate(range(0, a.n, 250_000)):
        hi = min(a.n, lo + 250_000)
        write_shard(
            emb / shard_name(i),
            [f"s{r:09d}" for r in range(lo, hi)],
            np.arange(lo, hi),
            x[lo:hi],
            {},
            dtype=a.dtype,
        )
    del x
    gen = time.perf_counter() - t0
    nlist = a.nlist or 2 ** round(math.log2(4 * math.sqrt(a.n)))
    spec = IndexSpec(
        kind=a.index or f"IVF{nlist},Flat", nprobe=a.nprobe, seed=a.seed, train_size=min(a.n, 64 * nlist)
    )
    t0 = time.perf_counter()
    res = build_index_from_shards(emb, idx, BuildConfig(dtype=a.dtype, index=spec))
    out = {
        "reused": False,
        "generate_s": round(gen, 1),
        "build_s": round(time.perf_counter() - t0, 1),
        "faiss": res.manifest.faiss,
    }
    (idx.parent / f"build-{idx.name}.json").write_text(json.dumps(out, default=str))
    return out


def measure(a: argparse.Namespace, idx: Path) -> dict[str, Any]:
    """In this (fresh) process: the outlier pass, its memory, its accuracy."""
    from scipy.stats import spearmanr

    from galaxy_retrieval.search.exact import exact_knn
    from galaxy_retrieval.search.searcher import GalaxySearcher

    t0 = time.perf_counter()
    s = GalaxySearcher.open(idx, verify=False)
    open_s = time.perf_counter() - t0
    hwm0 = _hwm()
    t0 = time.perf_counter()
    scores = s.outlier_scores(k=a.k, refine=a.refine, cache=False)
    secs = time.perf_counter() - t0
    hwm = _hwm()
    # accuracy: the k-th neighbour score of random objects, against the exact scan
    rng = np.random.default_rng(a.seed + 1)
    pos = np.sort(rng.choice(s.manifest.count, a.check, replace=False))
    xq = np.asarray(s.vectors[pos], np.float32)
    t0 = time.perf_counter()
    ex_s, ex_p = exact_knn(xq, s.vectors, a.k + 1, s.weights)
    exact_s = time.perf_counter() - t0
    exact_kth = np.array([row[p != q][a.k - 1] for row, p, q in zip(ex_s, ex_p, pos)])
    err = exact_kth - scores[pos]
    # the strangest 100 by this pass vs by a wider shortlist, on the same index
    strange = np.argsort(scores)[:100]
    wide = s.search_vectors(
        np.asarray(s.vectors[strange], np.float32), k=a.k, refine=a.check_refine, exclude=strange
    )[0][:, a.k - 1]
    return {
        "open_s": round(open_s, 2),
        "outlier_pass_s": round(secs, 1),
        "objects_per_s": round(s.manifest.count / secs, 0),
        "ms_per_object": round(1000 * secs / s.manifest.count, 4),
        "peak_rss_bytes": hwm,
        "peak_rss_before_pass_bytes": hwm0,
        "vectors_bytes": int(s.manifest.count * s.manifest.dim * np.dtype(s.manifest.dtype).itemsize),
        "check": {
            "objects": a.check,
            "exact_scan_s": round(exact_s, 1),
            "kth_score_error_mean": float(err.mean()),
            "kth_score_error_max": float(err.max()),
            "kth_score_exact_within_1e-4": float((np.abs(err) < 1e-4).mean()),
            # what ranking the outliers needs: the order of the objects by their k-th score
            "spearman_vs_exact": float(spearmanr(exact_kth, scores[pos]).statistic),
            "strangest_100_score_change_with_refine": {
                "refine": a.check_refine,
                "max": float(np.abs(wide - scores[strange]).max()),
            },
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--refine", type=int, default=1)
    p.add_argument("--index", default=None, help="FAISS factory string (default IVF{4·√n},Flat)")
    p.add_argument("--nlist", type=int, default=None)
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--check", type=int, default=200, help="objects checked against the exact scan")
    p.add_argument("--check-refine", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/gr-outliers"))
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # the fresh process
    a = p.parse_args()
    if a.measure is not None:
        print(json.dumps(measure(a, a.measure)))
        return
    from galaxy_retrieval.bench.machine import git_commit, machine_info

    tag = f"{_tag(a.n)}-d{a.dim}-{a.dtype}"
    idx = a.workdir / f"index-{tag}-{a.index or 'ivf'}-p{a.nprobe}"
    a.workdir.mkdir(parents=True, exist_ok=True)
    b = build(a, idx)
    built = "reused" if b["reused"] else f"built in {b['build_s']} s"
    print(f"index {idx}: {built}", flush=True)
    cmd = [sys.executable, __file__, *sys.argv[1:], "--measure", str(idx)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    m = json.loads(r.stdout.strip().splitlines()[-1])
    result = {
        "benchmark": "outliers",
        "parameters": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "measure"
        },
        "machine": {**machine_info(), "commit": git_commit()},
        "build": b,
        "outliers": m,
    }
    out = a.out_json or ROOT / "benchmarks" / "results" / f"outliers_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(
        f"{a.n:,} objects, k={a.k}, refine={a.refine}: {m['outlier_pass_s']} s ({m['ms_per_object']} ms/object), "
        f"peak RSS {m['peak_rss_bytes'] / 1e9:.2f} GB; k-th score exact to 1e-4 for {m['check']['kth_score_exact_within_1e-4']:.0%} "
        f"of {a.check} checked (mean error {m['check']['kth_score_error_mean']:.2e}, Spearman vs exact {m['check']['spearman_vs_exact']:.4f}); wrote {out}"
    )


if __name__ == "__main__":
    main()
