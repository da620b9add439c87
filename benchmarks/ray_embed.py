"""Embedding throughput of `gr build-index --engine ray` with 1 and 2 Ray workers, as a ratio
measured in one run (and the one-process local build of the same catalog beside it).

A catalog of ``--n`` random uint8 images at ``--size``² (Galaxy10's 256² by default; the
model's cost does not depend on what the pixels show) is embedded by an untrained model of
``--preset`` into ``--shard-rows`` shards, on a local Ray cluster of ``--cpus`` CPUs (one
per worker). The runs are interleaved — ray×1, ray×2, local, ray×1, ray×2, local, … — so each
ratio compares runs under the same load. Timed: the embedding pass of the build (actor
start-up and model load included, FAISS excluded); images/s = catalog size / that time.

    python benchmarks/ray_embed.py                       # measure; writes results/ray_embed.json
    python benchmarks/ray_embed.py --render              # rewrite its section of benchmarks/README.md
    python benchmarks/ray_embed.py --check               # exit 1 if that section is not current

Data goes to ``--workdir`` (default ``data/bench/ray_embed``; several GB at the defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ray_embed.json"
README = ROOT / "benchmarks" / "README.md"
BEGIN, END = "<!-- generated:ray_embed -->", "<!-- /generated:ray_embed -->"


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

    from galaxy_retrieval.model import build_model, preset, save_weights

    if not (root / "model.safetensors").is_file():
        root.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        save_weights(root / "model.safetensors", build_model(preset(preset_name)))
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
    base = BuildConfig(shard_rows=args.shard_rows, batch_size=args.batch_size, index=IndexSpec(kind="flat"), overwrite=True)
    started = time.time()
    load0 = load_average()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    runs: list[dict] = []
    try:
        for rep in range(args.repeats):
            for name in args.order.split(","):
                cfg = base if name == "local" else dataclasses.replace(base, engine="ray", ray=RayConfig(workers=int(name.removeprefix("ray")), cpus_per_worker=1))
                out = work / f"index-{name}"
                shutil.rmtree(out, ignore_errors=True)
                with open_catalog(cat) as c:
                    res = build_index(ck, c, out, cfg)
                s = res.seconds["embed"]
                runs.append({"engine": name, "repeat": rep, "embed_s": round(s, 3), "images_per_s": round(args.n / s, 1), "load_average": load_average()})
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
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info({"ray": ray.__version__, "ray_cpus": args.cpus, "load_average_start": load0}),
        "load_average_end": load_average(),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("render", "check")},
        "wall_s": round(time.time() - started, 1),
        "runs": runs,
        "summary": summary,
        "ratios": ratios,
    }


def render(d: dict) -> str:
    """The README section's table, from the JSON alone."""
    p, m = d["parameters"], d["machine"]
    names = {"ray1": "Ray, 1 worker (1 CPU)", "ray2": "Ray, 2 workers (1 CPU each)", "local": "local, one process (all threads)"}
    lines = [
        BEGIN,
        f"{p['n']:,} images of {p['size']}² embedded by the `{p['preset']}` preset into {-(-p['n'] // p['shard_rows'])} shards "
        f"(batches of {p['batch_size']}) on a local Ray of {p['cpus']} CPUs, {p['repeats']} interleaved repeats; "
        f"commit `{d['commit'][:12]}`, Ray {m.get('ray')}, load average {m.get('load_average_start')} at the start, "
        f"{d.get('load_average_end')} at the end.",
        "",
        "| engine | images/s (median) | runs (images/s) |",
        "|---|---|---|",
    ]
    for name, s in d["summary"].items():
        each = ", ".join(f"{r['images_per_s']:.0f}" for r in d["runs"] if r["engine"] == name)
        lines.append(f"| {names.get(name, name)} | {s['images_per_s_median']:.0f} | {each} |")
    r = d["ratios"]
    lines += ["", f"**2 workers / 1 worker: {r['ray2_over_ray1']:.2f}×**" + (f"; 2 Ray workers / the local build: {r['ray2_over_local']:.2f}×." if "ray2_over_local" in r else "."), END]
    return "\n".join(lines)


def _section(text: str) -> str | None:
    m = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.S)
    return m.group(0) if m else None


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
    ap.add_argument("--render", action="store_true", help="only rewrite the README section from the JSON")
    ap.add_argument("--check", action="store_true", help="only check that the README section is current")
    args = ap.parse_args(argv)
    if not (args.render or args.check):
        d = measure(args)
        Path(args.out_json).write_text(json.dumps(d, indent=1) + "\n")
        print(json.dumps(d["ratios"]))
    d = json.loads(Path(args.out_json).read_text())
    text = README.read_text()
    want, have = render(d), _section(text)
    if args.check:
        if have != want:
            print(f"{README}: the ray_embed section is not what {Path(args.out_json).name} gives; run benchmarks/ray_embed.py --render", file=sys.stderr)
            return 1
        return 0
    README.write_text(text.replace(have, want) if have else text.rstrip("\n") + "\n\n" + want + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
