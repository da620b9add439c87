"""Rotation handling at query time: does averaging a galaxy's embedding over its 8 dihedral
views (4 rotations × flip) retrieve better than the plain embedding?

    python benchmarks/quality/rotation_tta.py [--run runs/quality/synthetic/baseline]

Evaluates one trained run twice on its held-out split (same queries, same exact score),
once plain and once with the D4-averaged embeddings for every image (queries and
database), and writes ``benchmarks/results/quality_rotation_tta.json``. Costs 8 model
calls per image.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import torch

from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.evaluate import evaluate
from galaxy_retrieval.model import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def d4_mean(embed_float):
    def fn(x01: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        acc = None
        for k in range(4):
            for flip in (False, True):
                x = torch.rot90(x01, k, dims=(2, 3))
                x = torch.flip(x, dims=(3,)) if flip else x
                e = embed_float(x.contiguous(), batch_size)
                acc = e if acc is None else acc + e
        return (acc / 8).astype(np.float32)

    return fn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=Path("runs/quality/synthetic/baseline"))
    p.add_argument("--catalog", type=Path, default=Path("data/quality/synthetic-2000-256px-seed0.h5"))
    p.add_argument(
        "--out-json", type=Path, default=ROOT / "benchmarks" / "results" / "quality_rotation_tta.json"
    )
    a = p.parse_args()
    emb = load_checkpoint(a.run)
    plain = emb.embed_float
    rows = {}
    with open_catalog(a.catalog) as cat:
        for name, fn in (("plain", plain), ("d4_mean", d4_mean(plain))):
            emb.embed_float = fn
            t0 = time.perf_counter()
            r = evaluate(emb, cat, baselines=False)
            rows[name] = {
                "macro": r.retrieval["model"].macro,
                "loose_accuracy": {str(b): v for b, v in r.loose_accuracy["model"].items()},
                "seconds": round(time.perf_counter() - t0, 1),
                "n_queries": r.n_queries,
            }
            m = rows[name]["macro"]
            print(
                f"{name}: P@1 {m['precision@1']:.3f}, P@10 {m['precision@10']:.3f}, mAP@10 {m['map@10']:.3f}, {rows[name]['seconds']} s"
            )
    out = {
        "benchmark": "quality_rotation_tta",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info(),
        "parameters": {"run": str(a.run), "catalog": str(a.catalog)},
        "results": rows,
    }
    a.out_json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out_json}")


if __name__ == "__main__":
    main()
