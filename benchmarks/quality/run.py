"""The retrieval-quality protocol, one command for both catalogs (see README.md here):

    python benchmarks/quality/run.py                      # synthetic and FIRST, every variant
    python benchmarks/quality/run.py --catalog first --variants baseline,suppress

Trains label-free, builds each index, evaluates on held-out labels against the raw-pixel
and untrained-network baselines, writes ``benchmarks/results/quality_<catalog>.json`` and
rewrites this folder's README.md from every such file. Finished training runs and indexes
with the same settings are reused (``--fresh`` redoes them); an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from quality_protocol import (  # this folder: the script's own dir is on sys.path
    CATALOGS,
    VARIANTS,
    QualityConfig,
    render_readme,
    run_quality,
)

from galaxy_retrieval.atomic import atomic_write_bytes
from galaxy_retrieval.errors import GalaxyRetrievalError

HERE = Path(__file__).resolve().parent
# Source suppression is measured where the stars are known (the synthetic catalog); on FIRST
# the radio preset keeps every source within 90 px of the centre, which covers the 120-px
# crop the model sees, so it would change almost nothing there.
DEFAULT_VARIANTS = {
    "synthetic": "baseline,suppress,learned-weights,info-nce,suppress+info-nce,info-nce-50,suppress+info-nce-50,"
    "info-nce-t0.05,info-nce-t0.3,suppress+info-nce-t0.05-50",
    "first": "baseline,learned-weights,info-nce,no-zoom,info-nce-50,info-nce-t0.05",
    "gz2": "info-nce-t0.05,info-nce-t0.05-framed,defaults,defaults-unframed",
    "sdss6k": "defaults",
}
RESULTS = HERE.parent / "results"

HEADER = """\
# Retrieval-quality protocol

One command trains the model label-free on a catalog, builds its index and measures retrieval
with held-out labels, with each option on and off beside classical baselines:

    make quality                    # synthetic and FIRST, every variant (hours on 2 CPU cores from scratch)
    make quality GZ2=DIR            # and the Galaxy Zoo 2 spiral / non-spiral folder (DIR/labels.csv)
    make quality SDSS6K=DIR         # and the 863 labelled smooth / featured SDSS cutouts (DIR/labels.csv)
    .venv/bin/python benchmarks/quality/run.py --catalog gz2 --gz2 DIR --variants defaults --seeds 0,1,2

The model shipped in the package is measured zero-shot by `benchmarks/quality/pretrained.py`
(table in `docs/model-card.md`, and below each real catalog's seed table); the `finetune*`
variants here start `gr train` from it. A run says which weights it started from
("started from weights sha256 …"); `finetune*` runs that do not say so were made before
2026-12-05 from the previous shipped model (sha256 `7516305845b2…`).

What is measured (`benchmarks/quality/quality_protocol.py`):

- the catalog is split 80/10/10 by the seed; training sees the 80 % without labels, the
  validation 10 % picks the epoch, and the **held-out 10 % are the queries**, searched against
  the whole catalog with the query itself excluded. `P@10 all` is the same with **every
  object as a query** (leave-one-out): ten times the queries, so about a third of the noise,
  and what an outside evaluation of a trained index does;
- **loose accuracy** (paper §3.5): an image's augmented copy must outscore the other images
  of a mini-batch of 8 or 64;
- **precision@1/@10, mAP@10, nDCG@10**, averaged per class and then across classes (macro),
  relevant = same class, ranked by the exact weighted score (cosine + inverse L2 + inverse L3);
- the same numbers for four **baselines**, in the same pass on the same (framed, suppressed)
  input: raw pixels (16×16×3), the untrained network, a rotation-invariant polar Fourier
  descriptor (|FFT over angle| of a 16-radius × 32-angle resampling per band) and
  non-parametric morphology (concentration, asymmetry, smoothness, Gini, M20, ellipticity,
  r50, two colours; standardised). The strongest is marked *best baseline*;
- the held-out queries answered **through the index** (FAISS shortlist + exact rerank):
  recall@10 against the exact top 10, and ms per query;
- on the synthetic catalog, where every galaxy's true parameters are known: **Spearman ρ**
  between a query's axis ratio, Sérsic index, bulge fraction and arm pitch and those of its
  top-10 neighbours (pooled query–neighbour pairs; random neighbours give ≈ 0);
- **model selection**: how well label-free signals read at each run's chosen epoch rank the
  runs of a catalog as their held-out precision does (Spearman ρ across runs; with few runs,
  a rough guide). Runs with different losses have validation losses on different scales.

Variants: `defaults` is `gr train`'s recipe as it stands (InfoNCE τ 0.1 over in-batch pairs,
batch 128, the galaxy transforms on both views, auto framing, the epoch picked by loose
accuracy against the whole validation split; FIRST keeps `fixed:0.4` framing, see below), and
`defaults-unframed` the same with framing off. The older variants keep the recipe they were
defined against (the paper's transform sets, batch 64, the epoch picked by validation loss):
`baseline` (the paper's margin loss, in-batch negatives, augmented anchors), `suppress` (detect
the central object with `sep`, replace other sources by sky), `learned-weights` (the score's
w1, w2, w3 learned with the model), `info-nce` (InfoNCE over the batch, τ 0.1; `-t0.05`,
`-t0.3`: other temperatures; `-framed`: with auto framing), `-50` (up to 50 epochs), `no-zoom`
(positives without the zoom and brightness transforms). FIRST images are cut to their central
40 % (the sources sit in the middle of 300-px frames, and auto framing would measure an FR II's
core and cut its lobes off). Chance precision is 0.10 on the synthetic catalog, 0.25 on FIRST
and 0.50 on GZ2.

Each table's header says how many epochs, which commit and which machine. One seed and 200
held-out queries give differences under ~0.03 that are noise; `P@10 all` and the seed table
are steadier. The CPU is small and shared: training seconds are wall time as measured.
Everything below this line is generated from the JSON files by `benchmarks/quality/run.py`.
"""


class PrintProgress:
    """Log lines and one line per finished task, for a log file rather than a terminal."""

    @contextmanager
    def task(self, description, total=None, unit="it"):
        t0 = time.perf_counter()
        fields = {}

        class _H:
            def advance(self, n=1):
                pass

            def update(self, **f):
                fields.update(f)

        yield _H()
        extra = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        print(
            f"  {description}: {time.perf_counter() - t0:.1f} s{' (' + extra + ')' if extra else ''}",
            flush=True,
        )

    def log(self, message):
        print(message, flush=True)


def write_readme() -> Path:
    results = []
    for name in CATALOGS:
        # quality_<catalog>.json (seed 0), then quality_<catalog>-seedN.json
        for p in [RESULTS / f"quality_{name}.json", *sorted(RESULTS.glob(f"quality_{name}-seed*.json"))]:
            if p.is_file():
                results.append(json.loads(p.read_text("utf-8")))
    pre = RESULTS / "quality_pretrained.json"
    shipped = json.loads(pre.read_text("utf-8")) if pre.is_file() else None
    out = HERE / "README.md"
    atomic_write_bytes(out, render_readme(results, HEADER, shipped).encode("utf-8"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--catalog",
        default=None,
        help=f"comma-separated: {', '.join(CATALOGS)} (default: synthetic and FIRST, and gz2 when --gz2 is given)",
    )
    p.add_argument(
        "--gz2", type=Path, default=None, help="the GZ2 spiral / non-spiral image folder (labels.csv inside)"
    )
    p.add_argument(
        "--sdss6k",
        type=Path,
        default=None,
        help="the labelled SDSS smooth / featured folder (labels.csv inside)",
    )
    p.add_argument(
        "--seeds",
        default="0",
        help="comma-separated training seeds, e.g. 0,1,2 (each seed also splits the catalog)",
    )
    p.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated: {', '.join(VARIANTS)} (default: {'; '.join(f'{c}: {v}' for c, v in DEFAULT_VARIANTS.items())})",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="model preset (default: gr train's for the `defaults` variants, small for the older ones)",
    )
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--synth-n", type=int, default=2000)
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds per training run (0: none)")
    p.add_argument("--fresh", action="store_true", help="retrain and rebuild even when matching runs exist")
    p.add_argument("--readme-only", action="store_true", help="only rewrite README.md from the JSON results")
    a = p.parse_args(argv)
    if a.readme_only:
        print(f"wrote {write_readme()}")
        return 0
    given = {"gz2": a.gz2, "sdss6k": a.sdss6k}
    cats = a.catalog or ",".join(c for c in CATALOGS if c not in given or given[c] is not None)
    try:
        for cat, seed in [
            (c.strip(), int(s)) for c in cats.split(",") if c.strip() for s in a.seeds.split(",")
        ]:
            cfg = QualityConfig(
                catalog=cat,
                variants=tuple(
                    v.strip() for v in (a.variants or DEFAULT_VARIANTS[cat]).split(",") if v.strip()
                ),
                preset=a.preset,
                epochs=a.epochs,
                seed=seed,
                gz2_path=a.gz2,
                sdss6k_path=a.sdss6k,
                synth_n=a.synth_n,
                time_budget_s=a.time_budget or None,
                fresh=a.fresh,
                results_dir=RESULTS,
            )
            print(f"=== {cat} (seed {seed}): {', '.join(cfg.variants)}", flush=True)
            res = run_quality(cfg, PrintProgress())
            for name, v in res["variants"].items():
                if name not in cfg.variants:
                    continue
                r = v["eval"]["retrieval"]["model"]["macro"]
                la = v["eval"]["loose_accuracy"]["model"]
                px = v["eval"]["retrieval"]["pixels"]["macro"]
                print(
                    f"{cat}/{name}: loose@8 {la['8']:.3f}, P@10 {r['precision@10']:.3f} (pixels {px['precision@10']:.3f})",
                    flush=True,
                )
            print(f"wrote {cfg.results_path()}; {write_readme()}", flush=True)
    except GalaxyRetrievalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
