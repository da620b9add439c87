"""A trained checkpoint (by default the shipped one) against the classical descriptors, zero-shot.

    .venv/bin/python benchmarks/quality/pretrained.py --gz2 DIR --sdss6k DIR [--checkpoint RUN] [--synthetic]

For every catalog given: each image is framed as the checkpoint frames it, embedded once by
the network, and described once by every classical descriptor (raw pixels, the polar
Fourier descriptor, non-parametric morphology; each standardised over the catalog as
:func:`galaxy_retrieval.evaluate.evaluate` does), and by the fused vector of
:mod:`galaxy_retrieval.model.fusion` at several descriptor shares (its statistics from the
checkpoint when it carries a fusion, else from the catalog itself, label-free). A checkpoint
that carries a fusion is also measured as it indexes (``indexed``: the network's vector
beside its own fusion, principal axes included). Retrieval is
exact (the paper's weighted score), relevant = same label, macro precision@10 over classes:

- ``held-out``: the test 10 % of :func:`~galaxy_retrieval.train.split_indices` for each of
  ``--seeds`` as queries against the whole catalog (what ``gr evaluate`` does), mean ± std;
- ``all``: every object a query (leave-one-out), no seed.

Results: ``benchmarks/results/quality_pretrained.json`` (machine, commit, load) and a
generated block in ``docs/model-card.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from galaxy_retrieval.atomic import atomic_write_json
from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.descriptors import (
    morphology_features,
    pixel_features,
    polar_fourier_features,
    standardize,
)
from galaxy_retrieval.framing import FramingStats
from galaxy_retrieval.metrics import macro_average, precision_at_k
from galaxy_retrieval.model.embedder import load_checkpoint
from galaxy_retrieval.model.fusion import DescriptorFusion, fuse, standardisation
from galaxy_retrieval.model.preprocess import images_to_float
from galaxy_retrieval.score import ScoreWeights
from galaxy_retrieval.search.exact import exact_knn
from galaxy_retrieval.train.data import read_rows
from galaxy_retrieval.train.splits import split_indices

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
SHARES = (0.25, 0.5, 0.75)
#: the method name of a checkpoint's own fused vector (network + its stored descriptor fusion)
INDEXED = "indexed"


def _p_at(xb: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> tuple[float, dict[str, float]]:
    """Macro precision@k of ``queries`` against the whole catalog, and its per-class values."""
    _, I = exact_knn(xb[queries], xb, k, ScoreWeights(), exclude=queries)
    rel = labels[I] == labels[queries][:, None]
    m, per = macro_average(precision_at_k(rel, k), labels[queries])
    return float(m), {str(c): round(float(v), 4) for c, v in per.items()}


def measure(checkpoint: str, catalog_path: str, seeds: list[int], k: int = 10) -> dict[str, Any]:
    t0 = time.perf_counter()
    emb = load_checkpoint(checkpoint, fusion=None)  # the network's own vector; fusion is measured below
    raw = emb.meta.get("fusion")
    stored = DescriptorFusion.from_dict(raw, checkpoint) if raw else None
    cat = open_catalog(catalog_path)
    labels = cat.labels()
    cfg = emb.model_config
    stats = FramingStats()
    feats: dict[str, list[np.ndarray]] = {m: [] for m in ("model", "pixels", "polar", "morphology")}
    if stored is not None:  # what the checkpoint indexes: its network beside its own fusion
        feats[INDEXED] = []
    for _rows, images in read_rows(cat, np.arange(len(cat))):
        x01 = images_to_float(images, cfg.image_size, framing=cfg.framing, stats=stats)
        feats["model"].append(emb.embed_float(x01))
        if stored is not None:
            feats[INDEXED].append(stored.apply(feats["model"][-1], x01))
        feats["pixels"].append(pixel_features(x01))
        feats["polar"].append(polar_fourier_features(x01))
        feats["morphology"].append(morphology_features(x01))
    X = {m: np.concatenate(v) for m, v in feats.items()}
    P = X["polar"]  # before the evaluation's standardisation: the fusion standardises its own way
    if stored is not None:  # the checkpoint's own statistics (from its training images)
        mu, sd = np.asarray(stored.mean), np.asarray(stored.std)
        fusion_stats = "checkpoint"
    else:  # as fit_fusion would over this catalog (label-free)
        mu, sd = standardisation(P)
        fusion_stats = "catalog"
    D = ((P - mu) / sd).astype(np.float32)
    for m in ("polar", "morphology"):
        X[m] = standardize(X[m])
    for s in SHARES:
        X[f"fused-{s:g}"] = fuse(X["model"], D, s)
    n = len(labels)
    out: dict[str, Any] = {
        "catalog": Path(catalog_path).name,
        "n": n,
        "k": k,
        "framing": cfg.framing.spec,
        "framed": stats.images - stats.fallback,
        "fusion_stats": fusion_stats,
        "label_names": {str(a): b for a, b in (cat.info().label_names or {}).items()},
        "methods": {},
    }
    for m, xb in X.items():
        held = [_p_at(xb, labels, split_indices(n, s)[2], k)[0] for s in seeds]
        p_all, per_class = _p_at(xb, labels, np.arange(n), k)
        out["methods"][m] = {
            "held_out": {"mean": float(np.mean(held)), "std": float(np.std(held)), "per_seed": held},
            "all": p_all,
            "per_class_all": per_class,
        }
    classical = ("pixels", "polar", "morphology")
    out["best_descriptor"] = max(classical, key=lambda m: out["methods"][m]["all"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="run directory (default: the shipped model)")
    p.add_argument("--gz2", default=None, help="GZ2 spiral / non-spiral folder (labels.csv)")
    p.add_argument("--sdss6k", default=None, help="labelled SDSS smooth / featured folder (labels.csv)")
    p.add_argument("--catalog", action="append", default=[], help="NAME=PATH of any other labelled catalog")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default=str(RESULTS / "quality_pretrained.json"))
    a = p.parse_args(argv)
    from galaxy_retrieval.model.pretrained import pretrained_dir

    ckpt = a.checkpoint or str(pretrained_dir())
    cats = {k: v for k, v in (("gz2_spirals", a.gz2), ("sdss_gz2_6k_labelled", a.sdss6k)) if v}
    cats.update(dict(c.split("=", 1) for c in a.catalog))
    if not cats:
        print(
            "error: give at least one labelled catalog (--gz2, --sdss6k, --catalog NAME=PATH)",
            file=sys.stderr,
        )
        return 2
    seeds = [int(s) for s in a.seeds.split(",")]
    load0 = machine_info({})
    emb = load_checkpoint(ckpt)
    res = {
        "checkpoint": str(Path(ckpt).resolve().relative_to(ROOT))
        if Path(ckpt).resolve().is_relative_to(ROOT)
        else ckpt,
        "sha256": emb.sha256,
        # what the checkpoint's own embedder indexes: the network's vector, or a fused one
        "shipped_method": "model" if emb.meta.get("fusion") is None else INDEXED,
        "commit": git_commit(),
        "machine": load0,
        "seeds": seeds,
        "shares": list(SHARES),
        "catalogs": {},
    }
    for name, path in cats.items():
        r = measure(ckpt, path, seeds)
        res["catalogs"][name] = r
        best = r["best_descriptor"]
        line = ", ".join(f"{m} {v['held_out']['mean']:.3f}/{v['all']:.3f}" for m, v in r["methods"].items())
        print(f"{name}: (held-out mean / all) {line}; best descriptor {best}", flush=True)
    atomic_write_json(a.out, res)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
