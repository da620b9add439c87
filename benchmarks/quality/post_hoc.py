"""Label-free changes after training, measured on the shipped model (issue 20): do any of
them lift retrieval without a new model?

    .venv/bin/python benchmarks/quality/post_hoc.py --gz2 DIR --sdss6k DIR [--checkpoint RUN ...]

For each labelled catalog, macro precision@10 with every object a query (exact weighted
score, the query excluded), for the network's vector
- as it is, and made unit length;
- centred, and PCA-whitened over the catalog itself (d components, eigenvalue power a);
- averaged over three framings of each image (auto framing margins 1.0, 1.5, 2.25: a
  multi-scale view of the same galaxy), unit vectors summed;
- concatenated with the vectors of other pretraining runs given by ``--checkpoint`` (an
  ensemble of independently trained models).
Labels only score the result; nothing here reads them to choose anything.
Writes ``benchmarks/results/quality_post_hoc.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from galaxy_retrieval.atomic import atomic_write_json
from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.framing import FramingStats
from galaxy_retrieval.metrics import macro_average, precision_at_k
from galaxy_retrieval.model.embedder import load_checkpoint
from galaxy_retrieval.model.preprocess import images_to_float
from galaxy_retrieval.score import ScoreWeights
from galaxy_retrieval.search.exact import exact_knn
from galaxy_retrieval.train.data import read_rows

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
MARGINS = (1.0, 1.5, 2.25)


def _unit(z: np.ndarray) -> np.ndarray:
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _embed(checkpoint: str, cat, margin: float | None = None) -> np.ndarray:
    emb = load_checkpoint(checkpoint, fusion=None, precision="fp32")
    cfg = emb.model_config
    framing = cfg.framing if margin is None else replace(cfg.framing, margin=margin)
    parts = [
        emb.embed_float(images_to_float(ims, cfg.image_size, framing=framing, stats=FramingStats()))
        for _rows, ims in read_rows(cat, np.arange(len(cat)))
    ]
    return np.concatenate(parts)


def measure(catalog_path: str, others: list[str], k: int = 10) -> dict[str, Any]:
    cat = open_catalog(catalog_path)
    labels = cat.labels()
    q = np.arange(len(labels))

    def p_all(xb: np.ndarray) -> float:
        _, nn = exact_knn(xb.astype(np.float32), xb.astype(np.float32), k, ScoreWeights(), exclude=q)
        return round(float(macro_average(precision_at_k(labels[nn] == labels[:, None], k), labels)[0]), 4)

    by_margin = {m: _embed("pretrained", cat, m) for m in MARGINS}
    z = by_margin[1.5] if 1.5 in by_margin else _embed("pretrained", cat)
    out: dict[str, float] = {"shipped": p_all(z), "shipped, unit length": p_all(_unit(z))}
    c = z - z.mean(0)
    out["centred"] = p_all(c)
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    for d in (32, 64, 128):
        for a in (0.5, 1.0):
            out[f"PCA-whitened, {d} components, power {a:g}"] = p_all(c @ vt[:d].T / s[:d] ** a)
    out["mean over framing margins " + "/".join(f"{m:g}" for m in MARGINS)] = p_all(
        _unit(sum(_unit(v) for v in by_margin.values()))
    )
    parts = [_unit(z)]
    for ck in others:
        zo = _embed(ck, cat)
        out[f"{Path(ck).name} alone"] = p_all(zo)
        parts.append(_unit(zo))
        out["ensemble: shipped + " + " + ".join(Path(o).name for o in others[: len(parts) - 1])] = p_all(
            np.hstack(parts) / np.sqrt(len(parts))
        )
    return {"catalog": Path(catalog_path).name, "n": len(labels), "k": k, "p_at_10_all": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gz2", default=None)
    ap.add_argument("--sdss6k", default=None)
    ap.add_argument("--checkpoint", action="append", default=[], help="other pretraining runs (ensembles)")
    ap.add_argument("--out", type=Path, default=RESULTS / "quality_post_hoc.json")
    a = ap.parse_args(argv)
    paths = [p for p in (a.gz2, a.sdss6k) if p]
    if not paths:
        print("give --gz2 and/or --sdss6k", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    commit = git_commit()
    cats = []
    for p in paths:
        r = measure(p, a.checkpoint)
        print(r["catalog"], r["p_at_10_all"], flush=True)
        cats.append(r)
    atomic_write_json(
        a.out,
        {
            "benchmark": "quality_post_hoc",
            "commit": commit,
            "machine": machine_info({}),
            "checkpoints": ["pretrained", *a.checkpoint],
            "catalogs": cats,
            "seconds": round(time.perf_counter() - t0, 1),
        },
    )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
