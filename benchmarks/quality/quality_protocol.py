"""The retrieval-quality protocol: train label-free, build the index, measure with held-out labels.

One call per catalog (:func:`run_quality`), each option on and off (:data:`VARIANTS`):

1. **catalog** — ``synthetic``: the ten-class GalSim catalog (2,000 galaxies, seed 0,
   rendered once into ``data/quality/``); ``first``: the 2,158 FIRST radio galaxies of the
   ``firstgalaxydata`` wheel (FRI, FRII, compact, bent), imported once.
2. **train** each variant label-free (:func:`galaxy_retrieval.train.train`, the catalog's
   80/10/10 split by seed; labels never reach training). A finished run with the same
   configuration is reused; an interrupted one is resumed.
3. **index** the whole catalog with that model (:func:`galaxy_retrieval.index.build_index`).
4. **evaluate** on the held-out 10 % (:func:`galaxy_retrieval.evaluate.evaluate`): loose
   accuracy at batch 8 and 64, macro and per-class precision@1/@10, mAP@10, nDCG@10 by the
   exact score against the whole catalog, with the untrained network and raw pixels
   measured in the same pass on the same input.
5. **through the index**: the same held-out queries answered by the index (FAISS shortlist
   + exact rerank): recall@10 against the exact top 10 of step 4, and milliseconds per query.
6. **parameters** (synthetic only): Spearman ρ between each query's true axis ratio, Sérsic
   index, bulge fraction and arm pitch and those of its top-10 neighbours
   (:mod:`galaxy_retrieval.evaluate.params`), for the model and both baselines.

Results go to ``benchmarks/results/quality_<catalog>.json`` (machine, commit, parameters)
and :func:`render_readme` turns every such file into the tables of
``benchmarks/quality/README.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from galaxy_retrieval.atomic import atomic_write_json
from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.model.fusion import DEFAULT_COMPONENTS
from galaxy_retrieval.progress import NULL_PROGRESS, Progress
from galaxy_retrieval.train.augment import GALAXY_AUGMENT
from galaxy_retrieval.train.config import RECIPE_DESCRIPTOR_WEIGHT, RECIPE_FUSION_SHARE

__all__ = [
    "Variant",
    "VARIANTS",
    "CATALOGS",
    "QualityConfig",
    "prepare_catalog",
    "run_variant",
    "run_quality",
    "render_readme",
    "SYNTH_PARAMETERS",
]

CATALOGS = ("synthetic", "first", "gz2", "sdss6k")
# catalogs that are image folders given by path (labels.csv inside), never rendered or imported
FOLDER_CATALOGS = ("gz2", "sdss6k")

# The square the model sees when a variant does not choose (ViTConfig.framing). The synthetic
# galaxies fill their 256-px cutouts; FIRST sources sit in the central ~100 of 300 px and would
# shrink to a few patches if the whole frame were resized to 64 px (and `auto` framing, which
# measures the core, would cut an FR II's lobes off); GZ2's SDSS galaxies span a fifth to a
# half of their 424-px frames.
DEFAULT_FRAMING = {"synthetic": "none", "first": "fixed:0.4", "gz2": "none", "sdss6k": "none"}
# Source-suppression preset (galaxy_retrieval.suppress.PRESETS): "radio" keeps sources within
# 30 % of the frame of the centre, so the separate lobes of an FRII stay.
DEFAULT_SUPPRESS = {"synthetic": "optical", "first": "radio"}

# truth column → (label in tables, column that must be > 0 for the value to be defined)
SYNTH_PARAMETERS: dict[str, tuple[str, str | None]] = {
    "axis_ratio": ("axis ratio", None),
    "sersic_n": ("Sérsic n", None),
    "bulge_frac": ("bulge fraction", None),
    "arm_pitch_deg": ("arm pitch (spirals)", "n_arms"),
}


@dataclass(frozen=True)
class Variant:
    """One setting of the options under test."""

    name: str
    suppress: bool = False  # detect the central object, replace other sources by sky (§5)
    learn_weights: bool = False  # learn w1, w2, w3 of the score with the model (§3.6)
    info_nce: bool = False  # InfoNCE over the batch instead of the paper's margin loss
    note: str = ""  # what else differs (training overrides), for the tables
    overrides: tuple[tuple[str, Any], ...] = ()  # further TrainConfig fields
    # train with TrainConfig's defaults (`gr train`'s recipe) instead of the options above
    defaults: bool = False

    def describe(self) -> str:
        if self.defaults:
            return "TrainConfig's defaults" + (f", {self.note}" if self.note else "")
        on = [
            n
            for n, v in (
                ("source suppression", self.suppress),
                ("learned score weights", self.learn_weights),
                (f"InfoNCE loss (τ {dict(self.overrides).get('temperature', 0.1)})", self.info_nce),
            )
            if v
        ]
        on += [self.note] if self.note else []
        return ", ".join(on) if on else "all options off"


# `gr train`'s recipe on top of TrainConfig's defaults (cli/train.py takes it from the same
# constants): the shipped model's start, the descriptor target, the fusion on 32 axes
GR_TRAIN_RECIPE: tuple[tuple[str, Any], ...] = (
    ("init", "pretrained"),
    ("descriptor_weight", RECIPE_DESCRIPTOR_WEIGHT),
    ("fusion_share", RECIPE_FUSION_SHARE),
    ("fusion_components", DEFAULT_COMPONENTS),
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("baseline"),
        Variant("suppress", suppress=True),
        Variant("learned-weights", learn_weights=True),
        Variant("suppress+learned", suppress=True, learn_weights=True),
        Variant("info-nce", info_nce=True),
        Variant("suppress+info-nce", suppress=True, info_nce=True),
        Variant("info-nce-50", info_nce=True, note="up to 50 epochs", overrides=(("epochs", 50),)),
        Variant(
            "suppress+info-nce-50",
            suppress=True,
            info_nce=True,
            note="up to 50 epochs",
            overrides=(("epochs", 50),),
        ),
        Variant("info-nce-t0.05", info_nce=True, overrides=(("temperature", 0.05),)),
        Variant("info-nce-t0.3", info_nce=True, overrides=(("temperature", 0.3),)),
        Variant(
            "suppress+info-nce-t0.05-50",
            suppress=True,
            info_nce=True,
            note="up to 50 epochs",
            overrides=(("temperature", 0.05), ("epochs", 50)),
        ),
        # positives without the zoom and brightness transforms: keeps size and flux cues
        Variant(
            "no-zoom",
            note="positives without zoom/brightness",
            overrides=(("num_augmentations", 3), ("augment", "no-zoom")),
        ),
        # issue 10: object-aware framing, and the recipe measured on real cutouts (the defaults)
        Variant(
            "info-nce-t0.05-framed",
            info_nce=True,
            note="auto framing",
            overrides=(("temperature", 0.05), ("framing", "auto")),
        ),
        Variant("defaults", defaults=True),
        Variant(
            "galaxy-vit",
            defaults=True,
            note="the paper's ViT (`small` preset) instead of the polar CNN",
            overrides=(("preset", "small"),),
        ),
        Variant("defaults-unframed", defaults=True, note="framing off", overrides=(("framing", "none"),)),
        # issue 20: the shipped model fine-tuned on the catalog, against `defaults` from scratch
        # under the same time budget; `-nofusion` variants measure the network's vector alone
        Variant(
            "finetune",
            defaults=True,
            note="initialised from the shipped model",
            overrides=(("init", "pretrained"),),
        ),
        Variant(
            "finetune-lr1e-4",
            defaults=True,
            note="initialised from the shipped model, learning rate 1e-4",
            overrides=(("init", "pretrained"), ("lr", 1e-4)),
        ),
        Variant(
            "defaults-nofusion",
            defaults=True,
            note="network vector only",
            overrides=(("fusion_share", None),),
        ),
        # the epoch picked by the validation loss, the label-free signal that ranked this catalog's
        # runs as held-out precision does best (the model-selection table)
        Variant(
            "finetune-valloss",
            defaults=True,
            note="initialised from the shipped model, epoch picked by validation loss",
            overrides=(("init", "pretrained"), ("select_by", "val_loss")),
        ),
        Variant(
            "finetune-fused",
            defaults=True,
            note="initialised from the shipped model, descriptor fusion share 0.1",
            overrides=(("init", "pretrained"), ("fusion_share", 0.1), ("fusion_components", None)),
        ),
        # the embedding also predicts the polar Fourier descriptor (train/descriptor_target.py)
        Variant(
            "finetune-desc1",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 1",
            overrides=(("init", "pretrained"), ("descriptor_weight", 1.0)),
        ),
        Variant(
            "finetune-desc3",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3",
            overrides=(("init", "pretrained"), ("descriptor_weight", 3.0)),
        ),
        # the two descriptor-side changes together: the embedding trained to predict the polar
        # Fourier descriptor, and the descriptor fused into the indexed vector (share 0.1, chosen
        # on the simulated catalog: model/fusion.py)
        Variant(
            "finetune-desc3-fused",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3, descriptor fusion share 0.1",
            overrides=(*GR_TRAIN_RECIPE[:-1], ("fusion_components", None)),
        ),
        # the same with the descriptor projected on its 32 leading principal axes (288-d vectors
        # instead of 688-d: model/fusion.py)
        Variant(
            "finetune-desc3-fused32",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3, descriptor fusion share 0.1 on 32 principal axes",
            overrides=GR_TRAIN_RECIPE,
        ),
        # gr train's recipe with twice the in-batch negatives
        Variant(
            "finetune-desc3-fused32-b256",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3, descriptor fusion share 0.1 on 32 principal axes, batch 256",
            overrides=(*GR_TRAIN_RECIPE, ("batch_size", 256)),
        ),
        # a decaying learning rate over a fixed schedule instead of a constant one cut by
        # early stopping
        Variant(
            "finetune-desc3-cos",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3, cosine learning rate over 20 epochs",
            overrides=(
                ("init", "pretrained"),
                ("descriptor_weight", 3.0),
                ("lr_schedule", "cosine"),
                ("epochs", 20),
                ("patience", 20),
            ),
        ),
        Variant(
            "finetune-desc10",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 10",
            overrides=(("init", "pretrained"), ("descriptor_weight", 10.0)),
        ),
        Variant(
            "finetune-desc3-t0.2",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3, InfoNCE τ 0.2",
            overrides=(("init", "pretrained"), ("descriptor_weight", 3.0), ("temperature", 0.2)),
        ),
        # a smaller per-band gain change keeps more of a galaxy's colour in the vector (colour
        # is what tells a red elliptical from a blue disc at 64 px)
        Variant(
            "finetune-colour0.1",
            defaults=True,
            note="initialised from the shipped model, per-band gains within 1/1.1 … 1.1",
            overrides=(("init", "pretrained"), ("augment", replace(GALAXY_AUGMENT, pos_colour=0.1))),
        ),
        Variant(
            "finetune-desc3-colour0.1",
            defaults=True,
            note="initialised from the shipped model, descriptor target weight 3, per-band gains within 1/1.1 … 1.1",
            overrides=(
                ("init", "pretrained"),
                ("descriptor_weight", 3.0),
                ("augment", replace(GALAXY_AUGMENT, pos_colour=0.1)),
            ),
        ),
    )
}


@dataclass(frozen=True)
class QualityConfig:
    catalog: str = "synthetic"
    variants: tuple[str, ...] = ("baseline", "suppress", "learned-weights")
    # None: TrainConfig's default for the `defaults` variants, "small" (the ViT they were
    # defined with) for the older ones
    preset: str | None = None
    epochs: int = 25
    seed: int = 0
    synth_n: int = 2000
    synth_size: int = 256
    time_budget_s: float | None = None  # per training run
    k: int = 10
    framing: str | None = None  # None: DEFAULT_FRAMING of the catalog, unless the variant sets it
    gz2_path: Path | None = None  # the GZ2 image folder (spiral / non-spiral); needed for catalog "gz2"
    # the 863 labelled (smooth / featured) 128-px SDSS cutouts; needed for catalog "sdss6k"
    sdss6k_path: Path | None = None
    evaluate_all: bool = True  # also every object as a query (leave-one-out), besides the held-out 10 %
    data_dir: Path = Path("data/quality")
    runs_dir: Path = Path("runs/quality")
    indexes_dir: Path = Path("indexes")
    results_dir: Path = Path("benchmarks/results")
    fresh: bool = False  # retrain and rebuild even when a matching run exists
    train_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.catalog not in CATALOGS:
            raise ConfigError(f"catalog={self.catalog!r}; choices: {', '.join(CATALOGS)}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError(f"variants {unknown or '(none)'}; choices: {', '.join(VARIANTS)}")
        if self.epochs < 1 or self.k < 1 or self.synth_n < 20:
            raise ConfigError("epochs and k must be >= 1, synth_n >= 20")
        if self.catalog == "gz2" and self.gz2_path is None:
            raise ConfigError("catalog 'gz2' needs gz2_path: the GZ2 image folder with its labels.csv")
        if self.catalog == "sdss6k" and self.sdss6k_path is None:
            raise ConfigError(
                "catalog 'sdss6k' needs sdss6k_path: the labelled SDSS folder with its labels.csv"
            )

    def model_framing(self) -> str:
        return DEFAULT_FRAMING[self.catalog] if self.framing is None else self.framing

    def catalog_path(self) -> Path:
        if self.catalog == "gz2":
            return Path(self.gz2_path)  # type: ignore[arg-type]
        if self.catalog == "sdss6k":
            return Path(self.sdss6k_path)  # type: ignore[arg-type]
        # the synthetic catalog is rendered with seed 0 whatever the training seed
        return self.data_dir / (
            f"synthetic-{self.synth_n}-{self.synth_size}px-seed0.h5"
            if self.catalog == "synthetic"
            else "first.h5"
        )

    def _suffix(self) -> str:
        return "" if self.seed == 0 else f"-seed{self.seed}"

    def run_dir(self, variant: str) -> Path:
        return self.runs_dir / self.catalog / f"{variant}{self._suffix()}"

    def index_dir(self, variant: str) -> Path:
        return self.indexes_dir / f"quality-{self.catalog}-{variant}{self._suffix()}"

    def results_path(self) -> Path:
        return self.results_dir / f"quality_{self.catalog}{self._suffix()}.json"


def prepare_catalog(cfg: QualityConfig, progress: Progress = NULL_PROGRESS) -> Path:
    """Render or import the catalog once; later calls find the finished file."""
    path = cfg.catalog_path()
    if cfg.catalog in FOLDER_CATALOGS:
        if not (path / "labels.csv").is_file():
            raise ConfigError(f"{path}: not the {cfg.catalog} image folder (no labels.csv there)")
        return path
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if cfg.catalog == "synthetic":
        from galaxy_retrieval.synth import SynthConfig, generate_catalog

        progress.log(f"rendering {cfg.synth_n} synthetic galaxies into {path}")
        generate_catalog(
            SynthConfig(n=cfg.synth_n, size=cfg.synth_size, seed=cfg.seed), path, progress=progress
        )
    else:
        from galaxy_retrieval.catalog.first import import_first

        progress.log(f"importing the FIRST radio galaxies into {path}")
        import_first(path, progress=progress)
    return path


def _train_config(cfg: QualityConfig, v: Variant):
    from galaxy_retrieval.train import TrainConfig

    kw: dict[str, Any] = dict(
        preset=cfg.preset or "small", epochs=cfg.epochs, seed=cfg.seed, time_budget_s=cfg.time_budget_s
    )
    kw["framing"] = cfg.model_framing()
    if v.defaults:
        if cfg.preset is None:
            kw.pop("preset")
        # `gr train`'s recipe as it stands; only the catalog's framing choice (FIRST: the
        # central 40 %, whose lobes auto framing would cut) and the variant's overrides differ
        if cfg.catalog == "first" and cfg.framing is None:
            kw["framing"] = DEFAULT_FRAMING["first"]
        else:
            kw.pop("framing")
        kw.update(dict(v.overrides))
        kw.update(cfg.train_overrides)
        return TrainConfig(**kw)
    # the recipe these variants were defined against (TrainConfig's defaults until issue 10):
    # the paper's transform sets, batch 64, the best epoch by validation loss
    kw.update(augment=None, batch_size=64, select_by="val_loss")
    if v.suppress:
        from galaxy_retrieval.suppress import PRESETS

        kw["suppress_sources"] = PRESETS[DEFAULT_SUPPRESS[cfg.catalog]]
    if v.learn_weights:
        kw["learn_score_weights"] = True
    # explicit, whatever TrainConfig's default: "baseline" is the paper's margin loss
    kw.update(loss="info_nce" if v.info_nce else "contrastive", temperature=0.1)
    for key, value in v.overrides:
        if key == "augment" and value == "no-zoom":
            from galaxy_retrieval.train.augment import POSITIVE_TRANSFORMS, AugmentConfig

            value = AugmentConfig(
                positive_set=tuple(t for t in POSITIVE_TRANSFORMS if t not in ("scale", "brightness"))
            )
        kw[key] = value
    kw.update(cfg.train_overrides)
    return TrainConfig(**kw)


_DONE = "quality-done.json"


def _train(cfg: QualityConfig, v: Variant, catalog: Any, progress: Progress) -> dict[str, Any]:
    """Train (or reuse/resume) the variant's run; returns what the results record of it."""
    from galaxy_retrieval.model.checkpoint import load_model
    from galaxy_retrieval.train import resumable_with, same_config, train

    tcfg = _train_config(cfg, v)
    run = cfg.run_dir(v.name)
    done = run / _DONE
    want = tcfg.to_dict()
    # the shipped model changes between commits: a run records which one it started from
    init_sha = None if tcfg.init is None else load_model(tcfg.init)[3]
    if not cfg.fresh and done.is_file():
        rec = json.loads(done.read_text("utf-8"))
        if same_config(rec.get("train_config"), tcfg) and rec.get("init_sha256") == init_sha:
            progress.log(f"[{v.name}] reusing the finished training run {run}")
            return rec
    resume = not cfg.fresh and resumable_with(run, tcfg)
    progress.log(f"[{v.name}] {'resuming' if resume else 'training'} {run} ({v.describe()})")
    t0 = time.perf_counter()
    res = train(tcfg, catalog, run, progress=progress, resume=resume, overwrite=not resume)
    rec = {
        "train_config": want,
        "result": res.to_dict(),
        "wall_s_last_call": round(time.perf_counter() - t0, 1),
        "train_s": round(float(sum(h["seconds"] for h in res.history)), 1),
    }
    if init_sha is not None:
        rec["init_sha256"] = init_sha
    atomic_write_json(done, rec)
    return rec


def _index(cfg: QualityConfig, v: Variant, catalog: Any, progress: Progress) -> Path:
    from galaxy_retrieval.index.build import BuildConfig, build_index
    from galaxy_retrieval.index.layout import MANIFEST_NAME
    from galaxy_retrieval.index.manifest import read_manifest
    from galaxy_retrieval.model import load_checkpoint

    run, out = cfg.run_dir(v.name), cfg.index_dir(v.name)
    if not cfg.fresh and (out / MANIFEST_NAME).is_file():
        m = read_manifest(out)
        if (m.model or {}).get("sha256") == load_checkpoint(run).sha256:
            progress.log(f"[{v.name}] reusing the index {out}")
            return out
    progress.log(f"[{v.name}] building the index {out}")
    build_index(run, catalog, out, BuildConfig(overwrite=True), progress)
    return out


def _through_index(index: Path, query_rows: np.ndarray, exact_nb: np.ndarray, k: int) -> dict[str, Any]:
    """Answer the held-out queries through the index; recall@k against the exact top k."""
    from galaxy_retrieval.search.searcher import GalaxySearcher

    s = GalaxySearcher.open(index)
    pos_of_row = {int(r): i for i, r in enumerate(s.rows)}
    pos = np.array([pos_of_row[int(r)] for r in query_rows], dtype=np.int64)
    xq = np.asarray(s.vectors[pos], dtype=np.float32)
    s.search_vectors(xq[:1], k=k, exclude=pos[:1])  # warm: first call loads FAISS
    times = []
    got = np.empty((len(pos), k), np.int64)
    for i in range(len(pos)):
        t0 = time.perf_counter()
        _, p, _ = s.search_vectors(xq[i : i + 1], k=k, exclude=pos[i : i + 1])
        times.append(time.perf_counter() - t0)
        got[i] = s.rows[p[0]]
    want = exact_nb[:, :k]
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, want)]))
    return {
        "factory": (s.manifest.faiss or {}).get("factory"),
        "recall_at_k_vs_exact": recall,
        "k": k,
        "ms_per_query_p50": round(1000 * float(np.median(times)), 3),
        "ms_per_query_p90": round(1000 * float(np.percentile(times, 90)), 3),
        "score_weights": s.manifest.score_weights,
    }


def _parameter_agreement(
    catalog_path: Path, query_rows: np.ndarray, neighbours: dict[str, np.ndarray], k: int
) -> dict[str, Any]:
    import h5py

    from galaxy_retrieval.evaluate.params import parameter_agreement

    out: dict[str, Any] = {}
    with h5py.File(catalog_path, "r") as f:
        if "truth" not in f:
            return out
        t = f["truth"]
        for col, (_, needs) in SYNTH_PARAMETERS.items():
            if col not in t:
                continue
            values = t[col][:].astype(np.float64)
            valid = (t[needs][:] > 0) if needs else None
            out[col] = {
                m: parameter_agreement(query_rows, nb, values, k=k, valid=valid).to_dict()
                for m, nb in neighbours.items()
            }
        # random neighbours: what ρ is with no information (≈ 0, reported so the table has a floor)
        rng = np.random.default_rng(0)
        n = len(t[next(iter(SYNTH_PARAMETERS))])
        rand = rng.integers(0, n, size=(len(query_rows), k))
        for col, (_, needs) in SYNTH_PARAMETERS.items():
            if col in out:
                valid = (t[needs][:] > 0) if needs else None
                out[col]["random"] = parameter_agreement(
                    query_rows, rand, t[col][:].astype(np.float64), k=k, valid=valid
                ).to_dict()
    return out


def run_variant(
    cfg: QualityConfig, catalog_path: Path, name: str, progress: Progress = NULL_PROGRESS
) -> dict[str, Any]:
    """Train, index and evaluate one variant; the JSON-ready record of it."""
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.evaluate import evaluate
    from galaxy_retrieval.model import load_checkpoint

    v = VARIANTS[name]
    with open_catalog(catalog_path) as cat:
        tr = _train(cfg, v, cat, progress)
        index = _index(cfg, v, cat, progress)
        emb = load_checkpoint(cfg.run_dir(name))
        t0 = time.perf_counter()
        rep = evaluate(
            emb, cat, split="test", ks=(1, cfg.k), batch_sizes=(8, 64), seed=cfg.seed, progress=progress
        )
        eval_s = time.perf_counter() - t0
        # every object a query against all the others (leave-one-out): ten times the queries
        # of the held-out split, so a fifth of its noise; what an outside evaluation does
        rep_all = (
            evaluate(
                emb, cat, split="all", ks=(1, cfg.k), batch_sizes=(8, 64), seed=cfg.seed, progress=progress
            )
            if cfg.evaluate_all
            else None
        )
    rec: dict[str, Any] = {
        "variant": {
            "name": v.name,
            "suppress": v.suppress,
            "learn_weights": v.learn_weights,
            "info_nce": v.info_nce,
            "describe": v.describe(),
            "seed": cfg.seed,
        },
        "train": tr,
        "score_weights": emb.score_weights.to_dict(),
        "eval": rep.to_dict(),
        "eval_s": round(eval_s, 1),
        "eval_all": None
        if rep_all is None
        else {
            k: v
            for k, v in rep_all.to_dict().items()
            if k in ("retrieval", "loose_accuracy", "n_queries", "framing", "best_baseline")
        },
        "index": _through_index(index, rep.query_rows, rep.neighbours["model"], cfg.k),
    }
    if cfg.catalog == "synthetic":
        rec["parameters"] = _parameter_agreement(catalog_path, rep.query_rows, rep.neighbours, cfg.k)
    return rec


def run_quality(cfg: QualityConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """The whole protocol on one catalog; writes and returns ``cfg.results_path()``'s content."""
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.model import pick_device

    t0 = time.perf_counter()
    path = prepare_catalog(cfg, progress)
    with open_catalog(path) as cat:
        info = cat.info()
        labels = cat.labels()
        names = {str(k): v for k, v in (info.label_names or {}).items()}
        counts = (
            {}
            if labels is None
            else {str(int(c)): int(n) for c, n in zip(*np.unique(labels[labels >= 0], return_counts=True))}
        )
        cat_rec = {
            "name": cfg.catalog,
            "path": str(path),
            "count": len(cat),
            "source": cat.source,
            "label_names": names,
            "class_counts": counts,
        }
    p = cfg.results_path()
    # variants measured before (other commits, other variants) stay unless measured again now
    variants = {}
    if p.is_file():  # --fresh retrains the variants asked for; the others stay recorded
        try:
            old = json.loads(p.read_text("utf-8"))
            for name, rec in old.get("variants", {}).items():
                rec.setdefault("commit", old.get("commit"))
                rec.setdefault("created", old.get("created"))
                variants[name] = rec
        except ValueError:
            variants = {}
    for name in cfg.variants:
        variants.pop(name, None)
        rec = run_variant(cfg, path, name, progress)
        rec["commit"] = git_commit()
        rec["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        variants[name] = rec
    out = {
        "benchmark": "quality",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info({"device": str(pick_device("auto"))}),
        "parameters": {
            "catalog": cfg.catalog,
            "variants": list(cfg.variants),
            "preset": cfg.preset,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "synth_n": cfg.synth_n if cfg.catalog == "synthetic" else None,
            "synth_size": cfg.synth_size if cfg.catalog == "synthetic" else None,
            "time_budget_s": cfg.time_budget_s,
            "k": cfg.k,
            "framing": cfg.model_framing(),
            "train_overrides": cfg.train_overrides,
        },
        "catalog": cat_rec,
        "variants": variants,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(p, out)
    return out


# ---------------------------------------------------------------- README tables


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{nd}f}"


METHODS = ("model", "pixels", "untrained", "polar", "morphology")


def _summary_table(res: dict[str, Any]) -> list[str]:
    k = res["parameters"]["k"]
    cols = ["loose@8", "loose@64", "P@1", f"P@{k}", f"mAP@{k}", f"nDCG@{k}", f"P@{k} all"]
    lines = ["| variant | method | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for vname, v in res["variants"].items():
        e = v["eval"]
        ea = (v.get("eval_all") or {}).get("retrieval") or {}
        best = e.get("best_baseline")
        for m in METHODS:
            if m not in e["loose_accuracy"]:
                continue  # a baseline added after this variant was measured
            la = e["loose_accuracy"].get(m, {})
            r = (e["retrieval"] or {}).get(m, {}).get("macro", {})
            cells = [
                la.get("8"),
                la.get("64"),
                r.get("precision@1"),
                r.get(f"precision@{k}"),
                r.get(f"map@{k}"),
                r.get(f"ndcg@{k}"),
                ea.get(m, {}).get("macro", {}).get(f"precision@{k}"),
            ]
            label = "**model**" if m == "model" else (f"{m} (best baseline)" if m == best else m)
            lines.append(
                f"| {vname if m == 'model' else ''} | {label} | " + " | ".join(_f(c) for c in cells) + " |"
            )
    return lines


#: label-free signals at the chosen epoch that could pick a checkpoint: history key → name
SELECTION_SIGNALS = {
    "val_loose_acc@all": "loose accuracy, whole validation split",
    "val_loose_acc@64": "loose accuracy @ 64",
    "val_loose_acc@8": "loose accuracy @ 8",
    "val_loss": "validation loss (negated)",
}


def selection_agreement(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """How well each label-free signal, read at each run's chosen epoch, ranks the runs of
    one catalog (every variant and seed) as their held-out macro P@k does: Spearman ρ over
    the runs that recorded it, and the number of runs."""
    from galaxy_retrieval.evaluate.params import spearman

    k = results[0]["parameters"]["k"]
    pts: dict[str, list[tuple[float, float]]] = {s: [] for s in SELECTION_SIGNALS}
    for res in results:
        for v in res["variants"].values():
            p = ((v["eval"]["retrieval"] or {}).get("model") or {}).get("macro", {}).get(f"precision@{k}")
            t = v["train"]["result"]
            hist = {h["epoch"]: h for h in t.get("history", [])}
            row = hist.get(t.get("best_epoch"))
            if p is None or row is None:
                continue
            for s in SELECTION_SIGNALS:
                if row.get(s) is not None:
                    pts[s].append((-row[s] if s == "val_loss" else row[s], p))
    out = {}
    for s, xy in pts.items():
        if len(xy) >= 3:
            a = np.array(xy)
            out[s] = {"rho": spearman(a[:, 0], a[:, 1]), "runs": len(xy)}
    return out


def _agreement_lines(results: list[dict[str, Any]]) -> list[str]:
    ag = selection_agreement(results)
    if not ag:
        return []
    k = results[0]["parameters"]["k"]
    lines = [
        f"| label-free signal at the chosen epoch | Spearman ρ with held-out P@{k} | runs |",
        "|---|---|---|",
    ]
    for s, d in ag.items():
        lines.append(f"| {SELECTION_SIGNALS[s]} | {d['rho']:+.2f} | {d['runs']} |")
    return lines


def _seed_table(results: list[dict[str, Any]]) -> list[str]:
    """Variants measured with several seeds: mean ± sd of the model's macro P@k and the best baseline's."""
    k = results[0]["parameters"]["k"]
    by: dict[str, list[tuple[float, float | None, float | None, float | None]]] = {}
    for res in results:
        for vname, v in res["variants"].items():
            e, ea = v["eval"], (v.get("eval_all") or {}).get("retrieval") or {}
            r = e["retrieval"] or {}
            best = e.get("best_baseline")
            p = r.get("model", {}).get("macro", {}).get(f"precision@{k}")
            b = r.get(best, {}).get("macro", {}).get(f"precision@{k}") if best else None
            pa = ea.get("model", {}).get("macro", {}).get(f"precision@{k}")
            best_all = max(
                ((m, x["macro"].get(f"precision@{k}", -1)) for m, x in ea.items() if m != "model"),
                key=lambda t: t[1],
                default=(None, None),
            )[1]
            if p is not None:
                by.setdefault(vname, []).append((p, b, pa, best_all))
    rows = {n: v for n, v in by.items() if len(v) > 1}
    if not rows:
        return []

    def ms(xs: list[float | None]) -> str:
        xs = [x for x in xs if x is not None]
        return "–" if not xs else f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1) if len(xs) > 1 else 0:.3f}"

    lines = [
        f"| variant | seeds | model P@{k} | best baseline P@{k} | model P@{k} all | best baseline P@{k} all |",
        "|---|---|---|---|---|---|",
    ]
    for n, v in rows.items():
        lines.append(
            f"| {n} | {len(v)} | {ms([x[0] for x in v])} | {ms([x[1] for x in v])} | {ms([x[2] for x in v])} | {ms([x[3] for x in v])} |"
        )
    return lines


def _per_class_table(res: dict[str, Any]) -> list[str]:
    k = res["parameters"]["k"]
    names = res["catalog"].get("label_names") or {}
    first = next(iter(res["variants"].values()))
    classes = sorted((first["eval"]["retrieval"] or {}).get("model", {}).get("per_class", {}), key=int)
    if not classes:
        return []
    head = "| variant | method | " + " | ".join(names.get(c, c) for c in classes) + " |"
    lines = [head, "|---|---|" + "---|" * len(classes)]
    for vname, v in res["variants"].items():
        for m in ("model", "pixels"):
            pc = (v["eval"]["retrieval"] or {}).get(m, {}).get("per_class", {})
            lines.append(
                f"| {vname if m == 'model' else ''} | {m} | "
                + " | ".join(_f(pc.get(c, {}).get(f"precision@{k}"), 2) for c in classes)
                + " |"
            )
    return lines


def _params_table(res: dict[str, Any]) -> list[str]:
    rows = [(n, v["parameters"]) for n, v in res["variants"].items() if v.get("parameters")]
    if not rows:
        return []
    params = [p for p in SYNTH_PARAMETERS if p in rows[0][1]]
    lines = [
        "| variant | method | " + " | ".join(SYNTH_PARAMETERS[p][0] for p in params) + " |",
        "|---|---|" + "---|" * len(params),
    ]
    for vname, pa in rows:
        for m in ("model", "pixels", "untrained", "random"):
            if m == "random" and vname != rows[0][0]:
                continue
            lines.append(
                f"| {vname if m == 'model' else ''} | {m} | "
                + " | ".join(_f(pa[p].get(m, {}).get("rho"), 2) for p in params)
                + " |"
            )
    return lines


def _other_lines(res: dict[str, Any]) -> list[str]:
    out = []
    for vname, v in res["variants"].items():
        t = v["train"]["result"]
        w = v["score_weights"]
        ix = v["index"]
        out.append(
            f"- **{vname}** ({VARIANTS[vname].describe() if vname in VARIANTS else v['variant']['describe']}): {t['epochs_completed']} epochs (best {t['best_epoch']}, "
            f"stopped: {t['stopped']}), {v['train']['train_s']:.0f} s of training; score weights cos {w['cos']:.3f}, "
            f"L2 {w['l2']:.3f}, L3 {w['l3']:.3f}; index `{ix['factory']}` recall@{ix['k']} vs exact {ix['recall_at_k_vs_exact']:.3f}, "
            f"{ix['ms_per_query_p50']:.2f} ms/query (p50)"
            + (
                f"; started from weights sha256 `{v['train']['init_sha256'][:12]}…`"
                if "init_sha256" in v["train"]
                else ""
            )
        )
    return out


_TITLES = {
    "synthetic": "Synthetic ten-class catalog (GalSim)",
    "first": "FIRST radio galaxies (firstgalaxydata)",
    "gz2": "Galaxy Zoo 2 SDSS cutouts, spiral / non-spiral (real optical development set)",
    "sdss6k": "SDSS Galaxy Zoo 2 cutouts at 128 px, smooth / featured (the second real optical development set)",
}


def _framing_words(p: dict[str, Any]) -> str:
    if "framing" not in p:  # results recorded before framing: a central crop
        return f"central {p.get('crop', 1.0):.0%} of the frame"
    return {"none": "the whole frame"}.get(
        p["framing"], f"framing `{p['framing']}`"
    ) + " unless a variant says otherwise"


#: the protocol's catalog name → its name in benchmarks/quality/pretrained.py's results
_SHIPPED_NAMES = {"gz2": "gz2_spirals", "sdss6k": "sdss_gz2_6k_labelled"}


def _shipped_lines(shipped: dict[str, Any] | None, catalog: str) -> list[str]:
    """The shipped model on this catalog, no training (``quality_pretrained.json``): as it
    indexes and as the network alone, against the best descriptor, with the lead."""
    r = ((shipped or {}).get("catalogs") or {}).get(_SHIPPED_NAMES.get(catalog, catalog))
    if r is None:
        return []
    best = r["best_descriptor"]
    b = r["methods"][best]
    lines = [
        f"The model shipped in the package, no training (`benchmarks/results/quality_pretrained.json`, weights "
        f"sha256 `{shipped['sha256'][:12]}…`, commit `{shipped['commit'][:7]}`; held-out = the test 10 % of seeds "
        f"{', '.join(map(str, shipped['seeds']))}, as above):",
        "",
        "| shipped model | P@10 held-out | P@10 all | lead over the best descriptor, held-out / all |",
        "|---|---|---|---|",
    ]
    for m, what in (("indexed", "as indexed (network + descriptor fusion)"), ("model", "network alone")):
        v = r["methods"].get(m)
        if v is None:
            continue
        ho, al = v["held_out"]["mean"], v["all"]
        lines.append(
            f"| {what} | {ho:.3f} ± {v['held_out']['std']:.3f} | {al:.3f} | "
            f"{ho - b['held_out']['mean']:+.3f} / {al - b['all']:+.3f} |"
        )
    lines.append(
        f"| best descriptor ({best}) | {b['held_out']['mean']:.3f} ± {b['held_out']['std']:.3f} | {b['all']:.3f} | |"
    )
    return lines


def render_readme(results: list[dict[str, Any]], header: str, shipped: dict[str, Any] | None = None) -> str:
    """``header`` (the protocol's description) followed by the tables of each results file;
    ``shipped``: benchmarks/quality/pretrained.py's results, shown beside each catalog's seeds."""
    parts = [header.rstrip(), ""]
    seeds: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        seeds.setdefault(res["catalog"]["name"], []).append(res)
    # one section per catalog: the seed-0 file's tables, then mean ± sd over every seed file
    main = [r for r in results if r["parameters"].get("seed", 0) == 0]
    for res in main:
        c, p, mch = res["catalog"], res["parameters"], res["machine"]
        counts = ", ".join(
            f"{(c.get('label_names') or {}).get(k, k)} {n}" for k, n in c.get("class_counts", {}).items()
        )
        q = next(iter(res["variants"].values()))["eval"]["n_queries"]
        parts += [
            f"## {_TITLES.get(c['name'], c['name'])}",
            "",
            f"{c['count']:,} objects ({counts}); {q} held-out queries against the whole catalog, k = {p['k']}, "
            f"preset {'`' + p['preset'] + '`' if p.get('preset') else 'as each variant says'} ({_framing_words(p)}), up to {p['epochs']} epochs, seed {p['seed']}. Measured {res['created']} on "
            f"{mch.get('cpu')} ({mch.get('cpus_usable')} cores, device {mch.get('device')}), commit `{res['commit'][:12]}`; "
            f"whole protocol {res['seconds'] / 60:.0f} min. Raw numbers: `benchmarks/results/quality_{c['name']}.json`.",
            "",
            "Macro averages over classes (loose accuracy: paper §3.5 mini-search, higher is better):",
            "",
            *_summary_table(res),
            "",
            f"Precision@{p['k']} per class:",
            "",
            *_per_class_table(res),
            "",
        ]
        pt = _params_table(res)
        if pt:
            parts += [
                f"Spearman ρ between a query's true parameter and its top-{p['k']} neighbours' (pooled pairs):",
                "",
                *pt,
                "",
            ]
        ag = _agreement_lines(seeds[c["name"]])
        if ag:
            parts += [
                "How well label-free signals rank this catalog's runs (what model selection could use):",
                "",
                *ag,
                "",
            ]
        st = _seed_table(seeds[c["name"]])
        if st:
            parts += [
                f"Over seeds (training seed = split seed; held-out P@{p['k']} and every object as a query):",
                "",
                *st,
                "",
            ]
        sh = _shipped_lines(shipped, c["name"])
        if sh:
            parts += [*sh, ""]
        parts += ["Runs:", "", *_other_lines(res), ""]
    return "\n".join(parts) + "\n"
