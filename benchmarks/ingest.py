"""Ingest speed: JPEG cutouts → a finished index, the in-process path against the fast path,
in one run.

    python benchmarks/ingest.py --folder ../shared/data/gz2_spirals --folder ../shared/data/sdss_gz2_6k

For each folder, ``gr build-index``'s library call (:func:`build_index`) builds a complete
index (shards, vectors, FAISS ``auto`` index, manifest) three ways, one after the other:

* ``baseline``: the in-process build of the code *before* this work (``--baseline-ref``, by default
  commit 773aca0, the last before the fast path), extracted with ``git archive`` and run in a
  child process: the figure the ≥ 4× aim is measured against. Framing improvements made since
  speed up today's in-process path as well, so ``old`` alone would understate the change;
* ``old``: every image decoded, framed and embedded in this process with today's code
  (``BuildConfig(ingest=None)``, the path without the fast one), in float32
  (``precision="fp32"``, as before precision was a setting);
* ``new-cold``: the fast path (:mod:`galaxy_retrieval.ingest`) with an empty box store: every
  framing box measured, on the reduced JPEG decode, by the worker processes;
* ``new-warm``: the fast path again, the boxes reused from the store: what ``gr build-index``
  costs after ``gr train``/``gr evaluate`` measured them (or on a rebuild);
* ``new-warm-main`` (optional): as ``new-warm``, but the workers only decode and frame while
  this process embeds (the layout used with a GPU), to show what embedding in the workers buys.

The ``new`` paths embed in ``--precision`` (default ``auto``: what ``gr build-index`` does, bf16
for the polar model on a CPU with native bf16, else float32); each run records the precision
it resolved to (the manifest's).

Reported per run: images/s end to end (wall time of the whole call), process CPU (this process
and its workers) as a share of one core, and the stages: the fast path's summed CPU seconds
per stage (decode, framing, resize, in the workers; embed, in this process) and, for the old
path, the same stages timed one after the other on ``--stage-sample`` images in this process.
``write`` is writing the shards plus assembling the vectors, the FAISS build, hashing and the
searcher's metadata cache.
The model is the named preset with ``auto`` framing and untrained weights: its speed does not
depend on the weights. Projections to 1M and 40M cutouts divide by the measured rate (one
machine) and by N such machines (the embedding pass splits by shard; the FAISS build of a
large index is measured separately, ``benchmarks/scale_ondisk.py``). Results: ``--out-json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


class _Quiet:
    """A Progress that keeps the log lines (the box counts) and draws nothing."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def task(self, description: str, total: float | None = None, unit: str = "it") -> Any:
        from contextlib import nullcontext

        class Handle:
            def advance(self, n: float = 1) -> None:
                pass

            def update(self, **fields: Any) -> None:
                pass

        return nullcontext(Handle())

    def log(self, message: str) -> None:
        self.lines.append(message)


def _cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _subset(folder: Path, n: int | None, tmp: Path) -> Path | None:
    """A CSV naming the folder's first ``n`` images (None: the folder as it is)."""
    if n is None:
        return None
    from galaxy_retrieval.catalog.folder import FolderCatalog

    cat = FolderCatalog(folder)
    names = cat.file_names(range(min(n, len(cat))))
    p = tmp / f"{folder.name}-{len(names)}.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename"])
        w.writerows([[x] for x in names])
    return p


def _old_stages(folder: Path, meta: Path | None, ck: Path, sample: int) -> dict[str, float]:
    """The old path's work per image, stage by stage, on the first ``sample`` images, in this
    process: decode (Pillow, full size), framing (``auto``, binned to ~200 px), cut + resize,
    embed (the build's batches of 128, all threads)."""
    from galaxy_retrieval.catalog.folder import FolderCatalog
    from galaxy_retrieval.catalog.images import read_image
    from galaxy_retrieval.framing import _auto_box
    from galaxy_retrieval.model import load_checkpoint
    from galaxy_retrieval.model.preprocess import images_to_float

    cat = FolderCatalog(folder, metadata=meta)
    emb = load_checkpoint(ck, device="cpu", precision="fp32")
    fr = emb.model_config.framing
    files = [cat.file_of(r) for r in range(min(sample, len(cat)))]
    t = time.perf_counter()
    ims = [read_image(f) for f in files]
    decode = time.perf_counter() - t
    t = time.perf_counter()
    boxes = [_auto_box(a, fr) for a in ims]  # measured, not the in-memory cache
    framing = time.perf_counter() - t
    t = time.perf_counter()
    x = images_to_float([b.cut(a) for a, b in zip(ims, boxes)], emb.model_config.image_size)
    resize = time.perf_counter() - t
    t = time.perf_counter()
    emb.embed_float(x, 128)
    embed = time.perf_counter() - t
    k = 1e3 / len(files)
    return {
        "images": len(files),
        "decode_ms": decode * k,
        "framing_ms": framing * k,
        "resize_ms": resize * k,
        "embed_ms": embed * k,
    }


def _box_moves(
    folder: Path, meta: Path | None, ck: Path, boxes: Path, measure_side: int
) -> dict[str, Any] | None:
    """How far the boxes measured on the reduced decode (the box store after ``new-cold``)
    are from those measured on the full image (the old path's, still in framing's in-memory
    cache after ``old``), in full-resolution pixels, over every image of the folder."""
    import numpy as np

    from galaxy_retrieval.catalog.folder import FolderCatalog
    from galaxy_retrieval.catalog.images import read_image
    from galaxy_retrieval.framing import frame_box
    from galaxy_retrieval.ingest import BoxStore, file_key
    from galaxy_retrieval.model import load_checkpoint

    fr = load_checkpoint(ck, device="cpu").model_config.framing
    store = BoxStore(boxes, fr, measure_side)
    edge, rel, flips, sides = [], [], 0, []
    with FolderCatalog(folder, metadata=meta) as cat:
        for r in range(len(cat)):
            f = cat.file_of(r)
            new = store.get(file_key(f))
            if new is None:
                continue
            ref = frame_box(read_image(f), fr)  # the in-memory cache's box when the old path measured it
            flips += ref.found != new.found
            edge.append(max(abs(new.top - ref.top), abs(new.left - ref.left), abs(new.side - ref.side)))
            rel.append(abs(new.side - ref.side) / ref.side)
            sides.append(ref.side)
    if not edge:
        return None
    e, q = np.array(edge), np.array(rel)
    pct = lambda a, k: round(float(np.percentile(a, k)), 4)  # noqa: E731
    return {
        "images": len(edge),
        "same_box": round(float(np.mean(e == 0)), 4),
        "found_differs": int(flips),
        "box_side_px_median": float(np.median(sides)),
        "largest_edge_move_px": {
            "p50": pct(e, 50),
            "p90": pct(e, 90),
            "p99": pct(e, 99),
            "max": int(e.max()),
        },
        "side_change_fraction": {
            "p50": pct(q, 50),
            "p90": pct(q, 90),
            "p99": pct(q, 99),
            "max": round(float(q.max()), 4),
        },
    }


# The baseline build, run by a child process on the extracted old tree: its API as it was
# (build_index(checkpoint, catalog, out, BuildConfig(...)), a FolderCatalog with metadata).
_BASELINE_SCRIPT = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
from galaxy_retrieval.catalog.folder import FolderCatalog
from galaxy_retrieval.framing import Framing
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.model import preset, save_weights
try:
    from galaxy_retrieval.model import create_model
except ImportError:  # its name before the model registry
    from galaxy_retrieval.model import build_model as create_model
folder, meta, out, name = Path(sys.argv[2]), sys.argv[3] or None, Path(sys.argv[4]), sys.argv[5]
ck = out.parent / (out.name + "-ck")
torch.manual_seed(0)
save_weights(ck / "model.safetensors", create_model(preset(name, framing=Framing.parse("auto"))))
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
with FolderCatalog(folder, metadata=meta) as cat:
    n = len(cat)
    c0, t0 = cpu(), time.perf_counter()
    res = build_index(ck, cat, out, BuildConfig(overwrite=True))
    wall, c = time.perf_counter() - t0, cpu() - c0
print(json.dumps({"images": n, "wall_s": wall, "cpu_s": c, "seconds": res.seconds}))
"""


def _baseline_tree(ref: str, tmp: Path) -> Path:
    """The package at ``ref``, extracted under ``tmp`` (nothing in the checkout changes)."""
    import subprocess

    dest = tmp / f"baseline-{ref}"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "galaxy_retrieval"], check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"ingest benchmark: cannot extract the baseline commit {ref!r} ({e})") from None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest


def _run_baseline(
    tree: Path, ref: str, folder: Path, meta: Path | None, out: Path, preset_name: str
) -> dict[str, Any]:
    import subprocess

    from galaxy_retrieval.bench.machine import load_average

    load0 = load_average()
    cmd = [
        sys.executable,
        "-c",
        _BASELINE_SCRIPT,
        str(tree),
        str(folder),
        str(meta or ""),
        str(out),
        preset_name,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"ingest benchmark: the baseline build at {ref} failed: {tail}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    n, wall, cpu = r["images"], r["wall_s"], r["cpu_s"]
    return {
        "path": "baseline",
        "ref": ref,
        "precision": "fp32",
        "images": n,
        "wall_s": round(wall, 3),
        "images_per_s": round(n / wall, 1),
        "cpu_s": round(cpu, 3),
        "cpu_cores_used": round(cpu / wall, 2),
        "embed_pass_s": round(r["seconds"].get("embed", 0.0), 3),
        "write_s": round(sum(v for k, v in r["seconds"].items() if k != "embed"), 3),
        "seconds": {k: round(v, 3) for k, v in r["seconds"].items()},
        "load_average_start": load0,
        "load_average_end": load_average(),
        "log": [],
    }


def _run(
    path: str,
    folder: Path,
    meta: Path | None,
    ck: Path,
    out: Path,
    boxes: Path,
    workers: int | None,
    measure_side: int,
    precision: str = "auto",
) -> dict[str, Any]:
    from galaxy_retrieval.bench.machine import load_average
    from galaxy_retrieval.catalog.folder import FolderCatalog
    from galaxy_retrieval.framing import _CACHE
    from galaxy_retrieval.index.build import BuildConfig, build_index
    from galaxy_retrieval.ingest import IngestConfig

    if path == "old":
        _CACHE.clear()  # measured afresh (and kept for _box_moves, which compares with them)
    # new-warm-main: the workers only decode and frame, this process embeds (the GPU layout)
    ingest = (
        None
        if path == "old"
        else IngestConfig(
            workers=workers, measure_side=measure_side, boxes=boxes, embed_in_workers=path != "new-warm-main"
        )
    )
    cfg = BuildConfig(ingest=ingest, overwrite=True, precision="fp32" if path == "old" else precision)
    progress = _Quiet()
    with FolderCatalog(folder, metadata=meta) as cat:
        n = len(cat)
        load0 = load_average()
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        res = build_index(ck, cat, out, cfg, progress)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    s = res.seconds
    write = sum(s.get(k, 0.0) for k in ("write_shards", "assemble", "faiss", "hash", "metadata_cache"))
    row: dict[str, Any] = {
        "path": path,
        "precision": (res.manifest.model or {}).get("precision"),
        "images": n,
        "wall_s": round(wall, 3),
        "images_per_s": round(n / wall, 1),
        "cpu_s": round(cpu, 3),
        "cpu_cores_used": round(cpu / wall, 2),
        "embed_pass_s": round(s["embed"], 3),
        "write_s": round(write, 3),
        "seconds": {k: round(v, 3) for k, v in s.items()},
        "faiss": (res.manifest.faiss or {}).get("factory"),
        "load_average_start": load0,
        "load_average_end": load_average(),
        "log": progress.lines,
    }
    if res.ingest is not None:
        g = res.ingest
        k = 1e3 / max(1, g["images"])
        row["stages_ms_per_image"] = {
            "decode": round(g["decode_s"] * k, 3),
            "framing": round(g["framing_s"] * k, 3),
            "resize": round(g["resize_s"] * k, 3),
            "hash": round(g["hash_s"] * k, 3),
            "embed": round(g["embed_s"] * k, 3),
            "write": round(write * 1e3 / n, 3),
        }
        row["boxes"] = {
            "measured": g["boxes_measured"],
            "reused": g["boxes_reused"],
            "fallback": g["fallback"],
        }
    return row


def main(argv: list[str] | None = None) -> int:
    from galaxy_retrieval.model.device import PRECISIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--folder",
        type=Path,
        action="append",
        required=True,
        help="an image folder of JPEG cutouts (repeatable)",
    )
    ap.add_argument(
        "--n", type=int, default=None, help="only the first N images of each folder (default: all)"
    )
    ap.add_argument("--preset", default="polar")
    ap.add_argument(
        "--workers", type=int, default=None, help="ingest worker processes (default: one per usable CPU)"
    )
    ap.add_argument(
        "--measure-side",
        type=int,
        default=None,
        help="IngestConfig.measure_side (default: the package's, framing.MEASURE_SIDE)",
    )
    ap.add_argument("--paths", default="baseline,old,new-cold,new-warm,new-warm-main")
    ap.add_argument(
        "--baseline-ref",
        default="773aca0",
        help="the commit whose in-process build is the baseline (default: the last before the fast path)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds over the paths (interleaved); each path's median round is reported",
    )
    ap.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="model precision of the new paths (the old path is float32)",
    )
    ap.add_argument(
        "--stage-sample", type=int, default=300, help="images timed stage by stage for the old path"
    )
    ap.add_argument("--out-json", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    a = ap.parse_args(argv)
    if a.measure_side is None:
        from galaxy_retrieval.ingest import IngestConfig

        a.measure_side = IngestConfig().measure_side

    import torch

    from galaxy_retrieval.bench.machine import git_commit, load_average, machine_info
    from galaxy_retrieval.framing import Framing
    from galaxy_retrieval.model import create_model, preset, save_weights

    paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    commit = git_commit()  # the code that runs, before anything could change under it
    load0 = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="gr-ingest-bench-"))
    results: dict[str, Any] = {}
    try:
        torch.manual_seed(0)
        ck = tmp / "ck"
        save_weights(ck / "model.safetensors", create_model(preset(a.preset, framing=Framing.parse("auto"))))
        tree = _baseline_tree(a.baseline_ref, tmp) if "baseline" in paths else None
        for folder in a.folder:
            meta = _subset(folder, a.n, tmp)
            boxes = tmp / f"boxes-{folder.name}"
            every: list[dict[str, Any]] = []
            for rep in range(a.repeats):
                for p in paths:
                    if p == "new-cold":
                        shutil.rmtree(boxes, ignore_errors=True)  # cold: no box measured yet
                    if p == "baseline":
                        r = _run_baseline(
                            tree, a.baseline_ref, folder, meta, tmp / f"index-{folder.name}-{p}", a.preset
                        )
                        r["repeat"] = rep
                        every.append(r)
                        print(
                            json.dumps(
                                {k: r[k] for k in ("path", "repeat", "images_per_s", "cpu_cores_used")}
                            )
                        )
                        continue
                    r = _run(
                        p,
                        folder,
                        meta,
                        ck,
                        tmp / f"index-{folder.name}-{p}",
                        boxes,
                        a.workers,
                        a.measure_side,
                        a.precision,
                    )
                    r["repeat"] = rep
                    every.append(r)
                    keys = ("path", "repeat", "precision", "images", "images_per_s", "cpu_cores_used")
                    print(json.dumps({k: r[k] for k in (*keys, "load_average_end")}), flush=True)
            # each path's median round (by images/s): one noisy round moves no ratio
            runs = []
            for p in paths:
                mine = sorted((r for r in every if r["path"] == p), key=lambda r: r["images_per_s"])
                runs.append(mine[(len(mine) - 1) // 2])
            by = {r["path"]: r for r in runs}
            ratios = {
                f"{p}_over_{ref}": round(by[p]["images_per_s"] / by[ref]["images_per_s"], 2)
                for ref in ("baseline", "old")
                for p in by
                if p != ref and ref in by
            }
            moves = (
                _box_moves(folder, meta, ck, boxes, a.measure_side)
                if "old" in by and "new-cold" in by
                else None
            )
            if moves:
                print(json.dumps({"box_moves": moves}), flush=True)
            stages = _old_stages(folder, meta, ck, a.stage_sample) if "old" in by else None
            projection = {}
            for p, r in by.items():
                rate = r["images_per_s"]
                projection[p] = {
                    f"{n_obj}": {
                        f"{m}_machines_hours": round(n_obj / rate / m / 3600, 2) for m in (1, 10, 100)
                    }
                    for n_obj in (1_000_000, 40_000_000)
                }
            results[folder.name] = {
                "folder": str(folder),
                "images": runs[0]["images"],
                "runs": runs,
                "rounds": [
                    {
                        k: r[k]
                        for k in ("path", "repeat", "images_per_s", "cpu_cores_used", "load_average_start")
                    }
                    for r in every
                ],
                "ratios": ratios,
                "old_stages_ms_per_image": stages,
                "box_moves": moves,
                "seconds_per_1000": {p: round(1000 / r["images_per_s"], 2) for p, r in by.items()},
                "projection_hours": projection,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {
        "benchmark": "ingest",
        "commit": commit,
        "machine": machine_info({"load_average_start": load0}),
        "load_average_end": load_average(),
        "parameters": {
            "preset": a.preset,
            "framing": "auto",
            "weights": "untrained (speed only)",
            "workers": a.workers,
            "measure_side": a.measure_side,
            "precision": {"baseline": "fp32", "old": "fp32", "new": a.precision},
            "baseline_ref": a.baseline_ref if "baseline" in paths else None,
            "n": a.n,
            "paths": paths,
            "stage_sample": a.stage_sample,
            "repeats": a.repeats,
        },
        "folders": results,
    }
    a.out_json.parent.mkdir(parents=True, exist_ok=True)
    a.out_json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
