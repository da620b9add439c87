"""Choose the descriptor fusion's share label-free: on the simulated catalog, not the real ones.

    .venv/bin/python benchmarks/quality/fusion_share.py [--gz2 DIR] [--sdss6k DIR]

The fused vector (:mod:`galaxy_retrieval.model.fusion`) gives the polar Fourier descriptor a
share ``w`` of its squared norm. ``w`` must not be tuned on the real labelled catalogs that
measure the model (docs/model-card.md), and no label-free signal of a real catalog measures
it: the descriptor is far less stable under the training augmentations than the network, so
augmentation-based scores (loose accuracy, neighbour stability) fall monotonically with ``w``
and always pick 0. So ``w`` is chosen where the truth is known by construction: the
ten-class GalSim catalog (2,000 galaxies, seed 0, as the quality protocol renders it),
embedded by the shipped model, every object a query, the share of a fixed grid with the
highest macro precision@10. Real catalogs given with ``--gz2``/``--sdss6k`` are measured on
the same grid and reported beside it, never used for the choice.

Results: ``benchmarks/results/fusion_share.json``; ``DEFAULT_SHARE`` in
``galaxy_retrieval/model/fusion.py`` is the chosen value (tests/test_fusion_share.py checks).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from galaxy_retrieval.atomic import atomic_write_json
from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.descriptors import polar_fourier_features
from galaxy_retrieval.metrics import macro_average, precision_at_k
from galaxy_retrieval.model.embedder import load_checkpoint
from galaxy_retrieval.model.fusion import fuse, standardisation
from galaxy_retrieval.model.preprocess import images_to_float
from galaxy_retrieval.score import ScoreWeights
from galaxy_retrieval.search.exact import exact_knn
from galaxy_retrieval.train.data import read_rows

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
#: fixed before any catalog was measured: 0 (network alone) to an even split, in steps of 0.05
GRID = tuple(round(0.05 * i, 2) for i in range(11))
SYNTH_N, SYNTH_SIZE, SYNTH_SEED = 2000, 256, 0


def sweep(checkpoint: str, catalog_path: str | Path, k: int = 10) -> dict[str, Any]:
    """Macro P@k, every object a query, of the fused vector at each share of GRID."""
    emb = load_checkpoint(checkpoint, fusion=None)  # the network's vector; the fusion is swept here
    cfg = emb.model_config
    cat = open_catalog(catalog_path)
    labels = cat.labels()
    z, d = [], []
    for _rows, images in read_rows(cat, np.arange(len(cat))):
        x01 = images_to_float(images, cfg.image_size, framing=cfg.framing)
        z.append(emb.embed_float(x01))
        d.append(polar_fourier_features(x01))
    Z, D = np.concatenate(z), np.concatenate(d)
    mu, sd = standardisation(D)  # over the catalog itself, as fit_fusion over a user's images
    D = ((D - mu) / sd).astype(np.float32)
    n = len(labels)
    out = {}
    for w in GRID:
        X = fuse(Z, D, w)
        _, idx = exact_knn(X, X, k, ScoreWeights(), exclude=np.arange(n))
        m, _ = macro_average(precision_at_k(labels[idx] == labels[:, None], k), labels)
        out[f"{w:g}"] = round(float(m), 4)
    return {"catalog": Path(catalog_path).name, "n": n, "k": k, "p_at_k_all": out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="pretrained")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "data" / "quality",
        help="where the synthetic catalog is rendered",
    )
    p.add_argument(
        "--gz2", default=None, help="GZ2 spiral / non-spiral folder: reported, not used for the choice"
    )
    p.add_argument(
        "--sdss6k", default=None, help="labelled SDSS smooth / featured folder: reported, not used"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "fusion_share.json")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    synth = a.data_dir / f"synthetic-{SYNTH_N}-{SYNTH_SIZE}px-seed{SYNTH_SEED}.h5"
    if not synth.is_file():
        from galaxy_retrieval.synth import SynthConfig, generate_catalog

        synth.parent.mkdir(parents=True, exist_ok=True)
        generate_catalog(SynthConfig(n=SYNTH_N, size=SYNTH_SIZE, seed=SYNTH_SEED), synth)
    chooser = sweep(a.checkpoint, synth)
    scores = chooser["p_at_k_all"]
    chosen = float(max(scores, key=lambda w: (scores[w], -float(w))))  # ties: the smaller share
    res: dict[str, Any] = {
        "benchmark": "fusion_share",
        "checkpoint": a.checkpoint,
        "sha256": load_checkpoint(a.checkpoint).sha256,
        "commit": git_commit(),
        "machine": machine_info({}),
        "grid": list(GRID),
        "chosen_share": chosen,
        "chosen_on": chooser,
        "reported": {},
    }
    print(f"synthetic: {scores} → share {chosen:g}", flush=True)
    for name, path in (("gz2_spirals", a.gz2), ("sdss_gz2_6k_labelled", a.sdss6k)):
        if path:
            r = sweep(a.checkpoint, path)
            res["reported"][name] = r
            print(f"{name} (reported, not used): {r['p_at_k_all']}", flush=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(a.out, res)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
