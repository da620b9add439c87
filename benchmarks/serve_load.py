"""`gr serve` under load (issue 14): N concurrent clients on loopback for a bounded time.

    python benchmarks/serve_load.py --index indexes/demo --clients 8 --seconds 20 --out-json benchmarks/results/serve_demo.json

Starts `gr serve` on a free loopback port, then runs two phases of ``--seconds`` each: id
searches (random object ids of the index, k=10) and image searches (cutouts of the index
fetched from the server once, uploaded as PNG; skipped when the index holds vectors without
images, as an index built from Parquet embeddings does). Per phase: requests/s, p50/p99
latency, errors (any status but 200). The cold start is timed from the process start to the
first health answer and to the first search answered. The server's memory (VmRSS, and
RssAnon: what the process holds itself, not page-cache pages of the memory-mapped vectors and
lists) is read when it first answers, after warm-up and after every phase, so growth shows.
The aims (issue 23): ≥ 200 id searches/s at p99 ≤ 100 ms warm, open ≤ 2 s, on a 10M on-disk
index on a 2-core machine:

    python benchmarks/serve_load.py --index /work/data/scale/index-10M --clients 8 --seconds 20 --out-json benchmarks/results/serve_10M-ondisk.json
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from galaxy_retrieval.bench.machine import git_commit, machine_info  # noqa: E402


def memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) * 1024
    return out


def rss_bytes(pid: int) -> int:
    return memory(pid).get("VmRSS", -1)


def phase(url: str, clients: int, seconds: float, make_request) -> dict:
    """``clients`` threads, each with its own connection, calling ``make_request(client, rng)``
    until the deadline; latencies of every finished request."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        rng = random.Random(i)
        mine, bad = [], []
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = make_request(c, rng)
                    ok = r.status_code == 200
                    if not ok:
                        bad.append(f"{r.status_code} {r.text[:120]}")
                except httpx.HTTPError as e:
                    ok = False
                    bad.append(repr(e))
                if ok:
                    mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)
            errors.extend(bad)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else None  # noqa: E731
    return {
        "requests": len(lat),
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(wall, 2),
        "requests_per_s": round(len(lat) / wall, 1),
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "mean_ms": statistics.fmean(lat) * 1000 if lat else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--images", type=int, default=32, help="distinct cutouts uploaded in the image phase")
    ap.add_argument("--out-json", type=Path)
    a = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "galaxy_retrieval.cli",
        "serve",
        "--index",
        a.index,
        "--port",
        str(port),
        "--workers",
        str(a.workers),
    ]
    t_start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("gr serve did not start within 2 minutes")
        start_s = time.perf_counter() - t_start
        mem = {"at_health": memory(proc.pid)}
        import pyarrow.parquet as pq

        from galaxy_retrieval.index.manifest import read_manifest

        m = read_manifest(a.index)
        ids = pq.read_table([Path(a.index) / s.file for s in m.shards][0], columns=["object_id", "row"])
        id_list, rows = ids.column("object_id").to_pylist(), ids.column("row").to_pylist()
        t0 = time.perf_counter()
        first = httpx.post(url + "/api/search", json={"object_id": id_list[0], "k": a.k}, timeout=120)
        first_s, first_total_s = time.perf_counter() - t0, time.perf_counter() - t_start
        if first.status_code != 200:
            raise SystemExit(f"the first search failed: {first.status_code} {first.text[:200]}")
        info = httpx.get(url + "/api/info").json()
        rng = random.Random(0)
        sample_rows = rng.sample(rows, min(a.images, len(rows)))
        pngs = []
        for r in sample_rows:
            got = httpx.get(f"{url}/api/rows/{r}/image.png")
            if got.status_code != 200:  # vectors without images: id searches only
                pngs = []
                break
            pngs.append(got.content)
        # a few requests first: lazily built lookups and caches are not part of the steady state
        for oid in id_list[:20]:
            httpx.post(url + "/api/search", json={"object_id": oid, "k": a.k})
        for png in pngs[:4]:
            httpx.post(
                url + "/api/search", files={"image": ("q.png", png, "image/png")}, data={"k": str(a.k)}
            )
        mem["after_warmup"] = memory(proc.pid)
        rss0 = mem["after_warmup"]["VmRSS"]

        def by_id(c: httpx.Client, r: random.Random) -> httpx.Response:
            return c.post("/api/search", json={"object_id": r.choice(id_list), "k": a.k})

        def by_image(c: httpx.Client, r: random.Random) -> httpx.Response:
            return c.post(
                "/api/search", files={"image": ("q.png", r.choice(pngs), "image/png")}, data={"k": str(a.k)}
            )

        res = {}
        rss = {"before": rss0}
        # image, id, then image again: memory that keeps growing shows between the two image phases
        phases = (("image_search", by_image), ("id_search", by_id), ("image_search_again", by_image))
        for name, fn in [(n, f) for n, f in phases if pngs or f is by_id]:
            res[name] = phase(url, a.clients, a.seconds, fn)
            rss[f"after_{name}"] = rss_bytes(proc.pid)
            mem[f"after_{name}"] = memory(proc.pid)
        rss1 = rss[f"after_{name}"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = {
        "benchmark": "serve_load",
        "commit": git_commit(),
        "machine": machine_info(),
        "parameters": {
            **vars(a),
            "out_json": str(a.out_json) if a.out_json else None,
            "index_count": info["count"],
            "dims": info["dims"],
            "faiss": info["faiss_factory"],
        },
        "results": res,
        "cold_start": {
            "to_health_s": round(start_s, 2),
            "first_search_s": round(first_s, 3),
            "to_first_answer_s": round(first_total_s, 2),
        },
        "image_phases": "run" if pngs else "skipped: the index holds no images",
        "server_memory_bytes": mem,
        "server_rss_bytes": {**rss, "growth": rss1 - rss0},
        "note": "server process only (one worker); clients run in the same machine and share its cores",
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out_json:
        a.out_json.parent.mkdir(parents=True, exist_ok=True)
        a.out_json.write_text(text + "\n")


if __name__ == "__main__":
    main()
