"""Throughput of the synthetic Galaxy10 generator (`gr synth`), in galaxies per second.

    python benchmarks/synth_throughput.py --n 200 --size 256 --workers 2

Runs ``generate_catalog`` ``--repeats`` times into a temporary directory and reports, per
run, the end-to-end rate (process start-up, GalSim table building and the HDF5 write
included: what a user of ``gr synth`` waits for) and the steady-state rate (over the
second half of the run, from the progress callbacks). In the same run it renders
``--single`` objects in this process to give the one-core rate, so the parallel speed-up
is a ratio of numbers measured together. Results go to ``--out-json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


class _Clock:
    """A Progress that timestamps every advance, for the steady-state rate."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Iterator[Any]:
        done = [0.0]
        marks = self.marks

        class Handle:
            def advance(self, n: float = 1) -> None:
                done[0] += n
                marks.append((time.perf_counter(), done[0]))

            def update(self, **fields: Any) -> None:
                pass

        yield Handle()

    def log(self, message: str) -> None:
        pass

    def steady_rate(self) -> float | None:
        m = self.marks
        if len(m) < 4:
            return None
        (t0, n0), (t1, n1) = m[len(m) // 2 - 1], m[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def _sheet(h5: Path, png: Path, per_class: int = 3) -> None:
    import h5py
    import numpy as np

    from galaxy_retrieval.catalog.galaxy10 import GALAXY10_SHORT
    from galaxy_retrieval.viz import contact_sheet

    with h5py.File(h5) as f:
        ans = f["ans"][:]
        # one column per class, one row per example
        first = [np.flatnonzero(ans == c)[:per_class] for c in range(10)]
        rows = [int(first[c][k]) for k in range(per_class) for c in range(10) if k < len(first[c])]
        images = [f["images"][i] for i in rows]
    contact_sheet(images, [GALAXY10_SHORT[ans[i]] for i in rows], png, ncols=10, tile=128)


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _git_commit() -> str:
    from galaxy_retrieval.bench.machine import git_commit

    return git_commit()


def _machine() -> dict[str, Any]:
    import galsim

    from galaxy_retrieval.bench.machine import machine_info

    return machine_info({"galsim": galsim.__version__})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="galaxies per run")
    ap.add_argument("--size", type=int, default=256, help="cutout size in pixels")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--repeats", type=int, default=1, help="runs; the median is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--single", type=int, default=40, help="objects rendered in-process for the one-core rate (0: skip)"
    )
    ap.add_argument(
        "--out-json", type=Path, default=ROOT / "benchmarks" / "results" / "synth_throughput.json"
    )
    ap.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="also write a contact sheet (3 per class) of the first run here",
    )
    args = ap.parse_args()

    from galaxy_retrieval.synth import SynthConfig, generate_catalog

    cfg = SynthConfig(n=args.n, size=args.size, seed=args.seed, workers=args.workers)
    runs = []
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        for r in range(args.repeats):
            clock = _Clock()
            t0 = time.perf_counter()
            out = generate_catalog(cfg, Path(tmp) / f"run{r}.h5", progress=clock)
            wall = time.perf_counter() - t0
            runs.append(
                {
                    "wall_s": round(wall, 3),
                    "end_to_end_gal_per_s": round(args.n / wall, 2),
                    "steady_gal_per_s": round(clock.steady_rate() or float("nan"), 2),
                    "file_bytes": out.stat().st_size,
                }
            )
            print(
                f"run {r}: {args.n} galaxies in {wall:.2f}s = {args.n / wall:.1f} gal/s end to end, "
                f"{runs[-1]['steady_gal_per_s']:.1f} gal/s steady"
            )
            if args.sheet is not None and r == 0:
                _sheet(out, args.sheet)
                print(f"contact sheet -> {args.sheet}")
            out.unlink()

    single = None
    if args.single > 0:
        from galaxy_retrieval.synth.generate import balanced_labels
        from galaxy_retrieval.synth.render import render_object

        one = SynthConfig(n=args.single, size=args.size, seed=args.seed + 1, workers=1)
        labels = balanced_labels(2 * args.single, one.seed)
        for i in range(args.single):  # warm GalSim's Sérsic tables and the PSF cache
            render_object(i, int(labels[i]), one)
        t0 = time.perf_counter()
        for i in range(args.single, 2 * args.single):
            render_object(i, int(labels[i]), one)
        dt = time.perf_counter() - t0
        single = {
            "objects": args.single,
            "ms_per_object": round(1e3 * dt / args.single, 2),
            "gal_per_s": round(args.single / dt, 2),
        }
        print(f"one core, warm: {single['ms_per_object']:.1f} ms/object = {single['gal_per_s']:.1f} gal/s")

    e2e = statistics.median(r["end_to_end_gal_per_s"] for r in runs)
    steady = statistics.median(r["steady_gal_per_s"] for r in runs)
    result = {
        "benchmark": "synth_throughput",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git_commit(),
        "machine": _machine(),
        "params": {
            **{k: _rel(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "config": cfg.to_dict(),
        },
        "runs": runs,
        "summary": {
            "end_to_end_gal_per_s": e2e,
            "steady_gal_per_s": steady,
            "single_core_gal_per_s": single["gal_per_s"] if single else None,
            "parallel_speedup_steady_vs_single": round(steady / single["gal_per_s"], 2) if single else None,
        },
        "single_core": single,
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median: {e2e:.1f} gal/s end to end, {steady:.1f} gal/s steady -> {args.out_json}")


if __name__ == "__main__":
    main()
