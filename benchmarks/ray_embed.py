"""Embedding throughput of `gr build-index --engine ray` with 1 and 2 Ray workers, as a ratio
measured in one run (and the one-process local build of the same catalog beside it).

A catalog of ``--n`` random uint8 images at ``--size``² (Galaxy10's 256² by default; the
model's cost does not depend on what the pixels show) is embedded by an untrained model of
``--preset`` into ``--shard-rows`` shards, on a local Ray cluster of ``--cpus`` CPUs (one
per worker). The runs are interleaved — ray×1, ray×2, local, ray×1, ray×2, local, … — so each
ratio compares runs under the same load. Timed: the embedding pass of the build (actor
start-up and model load included, FAISS excluded); images/s = catalog size / that time.

    python benchmarks/ray_embed.py         # measure; writes results/ray_embed.json
    python docs/readme.py                  # its section of benchmarks/README.md, from the JSON

Data goes to ``--workdir`` (default ``data/bench/ray_embed``; several GB at the defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ray_embed.json"


def _catalog(path: Path, n: int, size: int, seed: int) -> Path:
    import h5py
    import numpy as np

    if path.is_file():
        with h5py.File(path, "r") as f:
            if f["images"].shape == (n, size, size, 3) and int(f.attrs.get("seed", -1)) == seed:
                return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("images", (n, size, size, 3), np.uint8, chunks=(64, size, size, 3))
        for lo in range(0, n, 1024):
            ds[lo : lo + 1024] = rng.integers(0, 256, (min(1024, n - lo), size, size, 3), dtype=np.uint8)
        f.attrs["seed"] = seed
    tmp.replace(path)
    return path


def _checkpoint(root: Path, preset_name: str) -> Path:
    import torch

    from galaxy_retrieval.model import create_model, preset, save_weights

    if not (root / "model.safetensors").is_file():
        root.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        save_weights(root / "model.safetensors", create_model(preset(preset_name)))
    return root


def measure(args: argparse.Namespace) -> dict:
    import ray

    from galaxy_retrieval.bench.machine import git_commit, load_average, machine_info
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.index.build import BuildConfig, build_index
    from galaxy_retrieval.index.candidates import IndexSpec
    from galaxy_retrieval.index.ray_engine import RayConfig

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cat = _catalog(work / f"catalog-{args.n}x{args.size}.h5", args.n, args.size, seed=0)
    ck = _checkpoint(work / f"ck-{args.preset}", args.preset)
    base = BuildConfig(
        shard_rows=args.shard_rows, batch_size=args.batch_size, index=IndexSpec(kind="flat"), overwrite=True
    )
    started = time.time()
    load0 = load_average()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    runs: list[dict] = []
    try:
        for rep in range(args.repeats):
            for name in args.order.split(","):
                cfg = (
                    base
                    if name == "local"
                    else dataclasses.replace(
                        base,
                        engine="ray",
                        ray=RayConfig(workers=int(name.removeprefix("ray")), cpus_per_worker=1),
                    )
                )
                out = work / f"index-{name}"
                shutil.rmtree(out, ignore_errors=True)
                with open_catalog(cat) as c:
                    res = build_index(ck, c, out, cfg)
                s = res.seconds["embed"]
                runs.append(
                    {
                        "engine": name,
                        "repeat": rep,
                        "embed_s": round(s, 3),
                        "images_per_s": round(args.n / s, 1),
                        "load_average": load_average(),
                    }
                )
                print(f"{name:6s} repeat {rep}: {s:6.1f} s, {args.n / s:7.1f} images/s", flush=True)
    finally:
        ray.shutdown()

    def med(name: str) -> float:
        return statistics.median(r["images_per_s"] for r in runs if r["engine"] == name)

    summary = {name: {"images_per_s_median": med(name)} for name in dict.fromkeys(args.order.split(","))}
    ratios = {"ray2_over_ray1": round(med("ray2") / med("ray1"), 3)}
    if "local" in summary:
        ratios["ray2_over_local"] = round(med("ray2") / med("local"), 3)
    return {
        "benchmark": "ray_embed",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info({"ray": ray.__version__, "ray_cpus": args.cpus, "load_average_start": load0}),
        "load_average_end": load_average(),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("render", "check")},
        "wall_s": round(time.time() - started, 1),
        "runs": runs,
        "summary": summary,
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6144, help="catalog images")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--shard-rows", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--order", default="ray1,ray2,local", help="engines per repeat, in order")
    ap.add_argument("--workdir", default=str(ROOT / "data" / "bench" / "ray_embed"))
    ap.add_argument("--out-json", default=str(RESULTS))
    args = ap.parse_args(argv)
    d = measure(args)
    Path(args.out_json).write_text(json.dumps(d, indent=1) + "\n")
    print(json.dumps(d["ratios"]))
    print("its section of benchmarks/README.md: python docs/readme.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
