"""The searcher's metadata table: anonymous memory held on the heap against memory-mapped.

    python benchmarks/metadata_memory.py --n 500000 --n 3000000

Writes ``--n`` objects as embedding shards (ids like ``SDSS-J123456.78+012345.6``, ``row``,
``label``, ``ra``, ``dec``, a 4-d embedding) and opens their metadata table the way
:class:`~galaxy_retrieval.search.GalaxySearcher` does, each time in a fresh process, with the
cache off (the table read into RAM), on first open (read, written to the cache, mapped) and on a
later open (mapped). Each process reports ``RssAnon`` and ``RssFile`` (``/proc/self/status``)
before and after the open and after reading the metadata of 1,000 random objects and one
id lookup (which, up to ``search.ids.HASHED_MAX`` = 2M objects, builds an id → position hash
of ~300 B an object on the heap, by design; above it, lookups scan the mapped column). With two sizes, ``slope`` is the growth of ``RssAnon`` per added object between them: what
grows with the catalog, without the fixed cost of Arrow's first use. Results: ``--out-json``
(default ``benchmarks/results/metadata_memory.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, pyarrow as pa
def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("RssAnon", "RssFile", "VmRSS"):
            out[k] = int(v.split()[0]) * 1024
    return out
import galaxy_retrieval.index.metadata_map as mm
from galaxy_retrieval.search.ids import ObjectIds
paths = [Path(p) for p in sys.argv[1].split(",")]
n = int(sys.argv[2])
before = status()
t = time.perf_counter()
table = mm.open_metadata_table(paths, [p.name for p in paths], n)
rows = table.column("row")
rows = rows.chunk(0).to_numpy() if rows.num_chunks == 1 else rows.to_numpy()
open_s = time.perf_counter() - t
after_open = status()
pos = np.random.default_rng(0).choice(n, 1000, replace=False)
table.take(pa.array(pos)).to_pylist()
ids = ObjectIds(table.column("object_id"))
found = ids.position(ids[n // 2])
after_use = status()
print(json.dumps({"before": before, "after_open": after_open, "after_use": after_use, "open_s": open_s,
                  "table_bytes": table.nbytes, "id_found": found == n // 2}))
"""


def _write(tmp: Path, n: int, per: int) -> list[Path]:
    import numpy as np

    from galaxy_retrieval.index.shards import write_shard

    rng = np.random.default_rng(0)
    paths = []
    for i, lo in enumerate(range(0, n, per)):
        hi = min(n, lo + per)
        ra, dec = rng.uniform(0, 360, hi - lo), rng.uniform(-10, 60, hi - lo)
        ids = [f"SDSS-J{r / 15:09.6f}{d:+09.5f}-{j}" for j, (r, d) in enumerate(zip(ra, dec), start=lo)]
        meta = {"label": (rng.integers(0, 10, hi - lo)).tolist(), "ra": ra.tolist(), "dec": dec.tolist()}
        p = tmp / f"part-{i:05d}.parquet"
        write_shard(
            p, ids, np.arange(lo, hi), rng.normal(size=(hi - lo, 4)).astype(np.float32), meta, dtype="float32"
        )
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--n", type=int, action="append", help="objects (repeatable; default 500,000 and 3,000,000)"
    )
    ap.add_argument("--shard-rows", type=int, default=100_000)
    ap.add_argument("--out-json", type=Path, default=ROOT / "benchmarks" / "results" / "metadata_memory.json")
    a = ap.parse_args(argv)
    from galaxy_retrieval.bench.machine import git_commit, load_average, machine_info

    commit = git_commit()
    load0 = load_average()
    sizes = sorted(a.n or [500_000, 3_000_000])
    by_size = {}
    for n in sizes:
        by_size[str(n)] = _measure(n, a.shard_rows)
    slope = None
    if len(sizes) >= 2:
        lo, hi = str(sizes[0]), str(sizes[-1])
        slope = {
            mode: {
                stage: round(
                    (by_size[hi][mode][stage]["RssAnon"] - by_size[lo][mode][stage]["RssAnon"])
                    / (sizes[-1] - sizes[0]),
                    1,
                )
                for stage in ("after_open", "after_use")
            }
            for mode in by_size[lo]
        }
        print("RssAnon growth per added object:", json.dumps(slope))
    doc = {
        "benchmark": "metadata_memory",
        "commit": commit,
        "machine": machine_info({"load_average_start": load0}),
        "load_average_end": load_average(),
        "parameters": {"n": sizes, "shard_rows": a.shard_rows},
        "runs": by_size,
        "slope_bytes_per_object": slope,
    }
    a.out_json.parent.mkdir(parents=True, exist_ok=True)
    a.out_json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out_json}")
    return 0


def _measure(n: int, shard_rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gr-metamem-") as d:
        tmp = Path(d)
        paths = _write(tmp, n, shard_rows)
        runs = {}
        for mode, cache in (
            ("heap", "off"),
            ("mapped_first_open", str(tmp / "cache")),
            ("mapped", str(tmp / "cache")),
        ):
            env = {**os.environ, "GALAXY_RETRIEVAL_CACHE": cache, "PYTHONPATH": str(ROOT)}
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, ",".join(map(str, paths)), str(n)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            # the open alone (the table), then with 1,000 lookups and the id → position hash
            # the searcher builds for catalogs up to search.ids.HASHED_MAX objects
            r["anon_open_bytes_per_object"] = round(
                (r["after_open"]["RssAnon"] - r["before"]["RssAnon"]) / n, 1
            )
            r["anon_use_bytes_per_object"] = round(
                (r["after_use"]["RssAnon"] - r["before"]["RssAnon"]) / n, 1
            )
            runs[mode] = r
            print(
                n,
                mode,
                json.dumps(
                    {
                        k: r[k]
                        for k in (
                            "anon_open_bytes_per_object",
                            "anon_use_bytes_per_object",
                            "open_s",
                            "table_bytes",
                        )
                    }
                ),
                flush=True,
            )
    return runs


if __name__ == "__main__":
    raise SystemExit(main())
