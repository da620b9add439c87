"""Evaluating a checkpoint: loose accuracy and exact retrieval against two baselines.

What :func:`evaluate` measures, on the held-out part of the catalog (the 80/10/10 split of
:func:`galaxy_retrieval.train.split_indices`, rebuilt from the checkpoint's training seed):

- **mini-search loose accuracy** (paper §3.5) at each batch size (8 is the paper's
  setting): for image i, its positive augmentation must outscore the other images of its
  batch. Batches are consecutive runs of the split in a random order fixed by ``seed``.
- **retrieval quality**, where the catalog has labels: every held-out image is a query
  against the *whole catalog* (what a user of the index experiences), the query itself
  excluded, ranked by the exact weighted score of §3.6 (brute force, no index). A result is
  relevant when its label equals the query's. Precision@k, AP@k and nDCG@k are averaged
  per class, then across classes (macro), and also over all queries (micro).
  Labels only measure; they never reach training.
- the same numbers for **baselines** computed in the same pass, on the same framed
  model-input images: the untrained network (same architecture, initialised with the
  training seed, i.e. the run's starting point), raw pixels (area-downsampled to 16×16×3,
  values in [0, 1]), and two classical descriptors an astronomer would use instead
  (:mod:`galaxy_retrieval.evaluate.descriptors`): the rotation-invariant polar Fourier
  descriptor and non-parametric morphology (CAS, Gini, M20, ellipticity, colours), both
  standardised over the catalog. All are ranked by the same score. ``best_baseline`` names
  the strongest of them by macro precision@10, the bar a learned model has to clear.

The score's weights are the checkpoint's (:attr:`Embedder.score_weights`: learned ones when
the run learned them) unless given. When the checkpoint was trained on source-suppressed
images (:attr:`Embedder.suppress`), every image read — queries, database, loose-accuracy
anchors — is suppressed once, at full resolution, *before* any method sees it, so the two
baselines are measured on the same input as the model (the report's ``suppress_sources``
says which config was used). The report also gives the ranked neighbours of every query
(``query_rows``, ``neighbours``) for analyses beyond labels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog.base import Catalog
from ..errors import CatalogError, ConfigError
from ..framing import FramingStats
from ..ingest import IngestStats
from ..metrics import average_precision_at_k, loose_accuracy, macro_average, ndcg_at_k, precision_at_k
from ..model.embedder import FROM_CHECKPOINT, Embedder, SuppressChoice, load_checkpoint
from ..model.registry import create_model
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from ..search.exact import exact_knn
from ..suppress import SuppressConfig
from ..train.augment import AugmentConfig, PairAugmenter
from ..train.config import TrainConfig
from ..train.data import model_inputs
from ..train.splits import SPLITS, split_indices
from .descriptors import PIXEL_SIDE, morphology_features, pixel_features, polar_fourier_features

__all__ = ["evaluate", "EvalReport", "RetrievalScores", "BASELINES", "pixel_features", "PIXEL_SIDE"]

#: baselines whose components have different units: standardised over the database
_STANDARDISED = ("polar", "morphology")
#: every baseline :func:`evaluate` measures, in report order
BASELINES: tuple[str, ...] = ("untrained", "pixels", "polar", "morphology")


@dataclass(frozen=True)
class RetrievalScores:
    """Retrieval quality of one method: metric name ("precision@10", "map@10", "ndcg@10") → value."""

    macro: dict[str, float]
    micro: dict[str, float]
    per_class: dict[int, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "macro": self.macro,
            "micro": self.micro,
            "per_class": {str(c): v for c, v in self.per_class.items()},
        }


@dataclass(frozen=True)
class EvalReport:
    """Result of :func:`evaluate`. Methods are "model" and the :data:`BASELINES`.

    ``query_rows``: catalog rows of the split's readable images, increasing — the queries.
    ``neighbours[method]``: (len(query_rows), kmax) catalog rows of each query's nearest
    objects by the exact score, best first, the query itself excluded (kmax = max(ks),
    at most the database size − 1); only when the catalog has labels (the whole catalog is
    the database then), else empty. Retrieval metrics use the queries with a label ≥ 0.
    Neither is in :meth:`to_dict` (arrays, not JSON).
    """

    split: str
    split_seed: int
    seed: int
    n_queries: int  # held-out images used as queries / loose-accuracy images
    n_database: int  # images searched (the whole catalog)
    ks: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    model: dict[str, Any]  # preset, sha256, path of the evaluated checkpoint
    score_weights: dict[str, float]
    loose_accuracy: dict[str, dict[int, float | None]]  # method → batch size → accuracy
    retrieval: dict[str, RetrievalScores] | None  # None: catalog has no labels
    query_class_counts: dict[int, int] | None
    seconds: float
    device: str
    suppress_sources: dict[str, Any] | None = None  # the suppression applied to every image; None: off
    # the framing of every image (the checkpoint's) and how many fell back to the whole frame
    framing: dict[str, Any] | None = None
    # class code → the catalog's name for it; None: the catalog does not name its classes
    label_names: dict[int, str] | None = None
    query_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False, compare=False)
    neighbours: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "split_seed": self.split_seed,
            "seed": self.seed,
            "n_queries": self.n_queries,
            "n_database": self.n_database,
            "ks": list(self.ks),
            "batch_sizes": list(self.batch_sizes),
            "model": self.model,
            "score_weights": self.score_weights,
            "loose_accuracy": {m: {str(b): v for b, v in d.items()} for m, d in self.loose_accuracy.items()},
            "retrieval": None
            if self.retrieval is None
            else {m: r.to_dict() for m, r in self.retrieval.items()},
            "query_class_counts": None
            if self.query_class_counts is None
            else {str(c): n for c, n in self.query_class_counts.items()},
            "seconds": self.seconds,
            "device": self.device,
            "suppress_sources": self.suppress_sources,
            "framing": self.framing,
            "label_names": None
            if self.label_names is None
            else {str(k): v for k, v in self.label_names.items()},
            "best_baseline": self.best_baseline(),
        }

    def best_baseline(self, metric: str = "precision@10") -> str | None:
        """The baseline with the highest macro ``metric`` (None without retrieval scores)."""
        if not self.retrieval:
            return None
        scored = [(r.macro.get(metric, -1.0), m) for m, r in self.retrieval.items() if m != "model"]
        return max(scored)[1] if scored else None


def _retrieval_scores(
    I: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray, ks: Sequence[int]
) -> RetrievalScores:
    rel = db_labels[I] == q_labels[:, None]
    counts = np.bincount(db_labels[db_labels >= 0], minlength=int(q_labels.max()) + 1)
    n_rel = counts[q_labels] - 1  # the query itself is in the database but excluded
    per_query: dict[str, np.ndarray] = {}
    for k in ks:
        per_query[f"precision@{k}"] = precision_at_k(rel, k)
        per_query[f"map@{k}"] = average_precision_at_k(rel, k, n_rel)
        per_query[f"ndcg@{k}"] = ndcg_at_k(rel, k, n_rel)
    macro, micro, per_class = {}, {}, {}
    for name, vals in per_query.items():
        m, per = macro_average(vals, q_labels)
        macro[name] = m
        micro[name] = float(vals.mean())
        for c, v in per.items():
            per_class.setdefault(c, {})[name] = v
    return RetrievalScores(macro, micro, dict(sorted(per_class.items())))


def _label_names(catalog: Catalog) -> dict[int, str] | None:
    names = catalog.info().label_names
    return None if not names else {int(k): str(v) for k, v in names.items()}


@dataclass(frozen=True)
class _Settings:
    """:func:`evaluate`'s arguments checked, the defaults taken from the checkpoint."""

    ks: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    split_seed: int
    weights: ScoreWeights
    suppress: SuppressConfig | None
    augment: AugmentConfig  # the positives of the loose accuracy: the run's positive transforms


def _check_sizes(
    split: str, ks: Sequence[int], batch_sizes: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}; choices: {', '.join(SPLITS)}")
    ks = tuple(sorted({int(k) for k in ks}))
    batch_sizes = tuple(int(b) for b in batch_sizes)
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks={ks!r} must be integers >= 1")
    if not batch_sizes or min(batch_sizes) < 2:
        raise ConfigError(f"batch_sizes={batch_sizes!r} must be integers >= 2")
    return ks, batch_sizes


def _settings(
    emb: Embedder,
    ks: tuple[int, ...],
    batch_sizes: tuple[int, ...],
    seed: int,
    split_seed: int | None,
    weights: ScoreWeights | None,
    suppress: SuppressChoice,
) -> _Settings:
    tcfg = emb.train_config or {}
    if isinstance(suppress, str) and suppress == FROM_CHECKPOINT:
        sup = emb.suppress
    elif suppress is None or isinstance(suppress, SuppressConfig):
        sup = suppress
    else:
        raise ConfigError(f"suppress={suppress!r}; give a SuppressConfig, None (off) or {FROM_CHECKPOINT!r}")
    aug_cfg = AugmentConfig()
    if tcfg:
        try:
            aug_cfg = TrainConfig.from_dict(tcfg).augment_config()
        except (ConfigError, TypeError, KeyError):
            pass  # a checkpoint from another package version: default transforms
    return _Settings(
        ks=ks,
        batch_sizes=batch_sizes,
        split_seed=int(tcfg.get("seed", seed)) if split_seed is None else split_seed,
        weights=emb.score_weights if weights is None else weights,
        suppress=sup,
        augment=aug_cfg,
    )


def _rows_and_labels(catalog: Catalog, split: str, split_seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The split's rows (the queries), and the catalog's labels (None: fewer than 2 labelled)."""
    n = len(catalog)
    if split == "all":
        rows = np.arange(n, dtype=np.int64)
    else:
        rows = dict(zip(("train", "val", "test"), split_indices(n, split_seed)))[split]
    labels = catalog.labels()
    return rows, None if labels is None or (labels >= 0).sum() < 2 else labels


def _methods(
    emb: Embedder, baselines: bool, split_seed: int
) -> dict[str, Callable[[torch.Tensor], np.ndarray]]:
    """Method name → model inputs to features: the model, then the :data:`BASELINES`."""
    methods: dict[str, Callable[[torch.Tensor], np.ndarray]] = {"model": emb.embed_float}
    if baselines:
        untrained = Embedder.from_model(create_model(emb.model_config, seed=split_seed), device=emb.device)
        methods["untrained"] = untrained.embed_float
        methods["pixels"] = pixel_features
        methods["polar"] = polar_fourier_features
        methods["morphology"] = morphology_features
    return methods


@dataclass(frozen=True)
class _Features:
    """What one pass over the catalog gives each method."""

    db: dict[str, np.ndarray | None]  # (n, D) of every catalog row; None without labels
    anchors: dict[str, np.ndarray]  # the split's readable images, in q_rows order
    positives: dict[str, np.ndarray]  # a positive augmentation of each anchor
    q_rows: np.ndarray  # catalog rows of the anchors: the queries
    seen: np.ndarray  # (n,) bool: rows read (an unreadable one has no vector)


def _embed_pass(
    catalog: Catalog,
    emb: Embedder,
    st: _Settings,
    methods: dict[str, Callable[[torch.Tensor], np.ndarray]],
    rows: np.ndarray,
    with_db: bool,
    seed: int,
    batch_size: int,
    what: str,
    framing_stats: FramingStats,
    progress: Progress,
) -> _Features:
    """Read the split (with ``with_db``: the whole catalog) once; every method sees the same
    model inputs. Sources are suppressed there, once, at full resolution; image folders are
    decoded and framed by worker processes, boxes from the box store."""
    n = len(catalog)
    cfg = emb.model_config
    augmenter = PairAugmenter(st.augment)
    g = torch.Generator().manual_seed(seed)
    in_split = np.zeros(n, dtype=bool)
    in_split[rows] = True
    wanted = np.arange(n, dtype=np.int64) if with_db else rows
    db: dict[str, np.ndarray | None] = {m: None for m in methods}
    anchors: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    positives: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    got_rows: list[np.ndarray] = []
    seen = np.zeros(n, dtype=bool)
    with progress.task(what, total=len(wanted), unit="img") as t:
        ingest_stats = IngestStats(framing=framing_stats)
        for brows, x01 in model_inputs(
            catalog, wanted, replace(cfg.preprocessing, suppress=st.suppress), batch_size, ingest_stats
        ):
            t.advance(len(brows))
            seen[brows] = True
            sel = np.flatnonzero(in_split[brows])
            xp = augmenter.positive(x01[sel], g) if len(sel) else None
            for m, fn in methods.items():
                f = fn(x01)
                if with_db:
                    if db[m] is None:
                        db[m] = np.zeros((n, f.shape[1]), np.float32)
                    db[m][brows] = f
                if len(sel):
                    anchors[m].append(f[sel])
                    positives[m].append(fn(xp))
            got_rows.append(brows[sel])
    if cfg.framing.mode == "auto" and (framing_stats.measured or framing_stats.reused):
        progress.log(framing_stats.describe_reuse())
    q_rows = np.concatenate(got_rows) if got_rows else np.zeros(0, np.int64)
    if len(q_rows) == 0:
        return _Features(db, {}, {}, q_rows, seen)
    return _Features(
        db,
        {m: np.concatenate(a) for m, a in anchors.items()},
        {m: np.concatenate(p) for m, p in positives.items()},
        q_rows,
        seen,
    )


def _standardised(f: _Features) -> _Features:
    """The :data:`_STANDARDISED` baselines scaled by the statistics of the database (the
    split when there are no labels): their components have different units."""
    db, anchors, positives = dict(f.db), dict(f.anchors), dict(f.positives)
    for m in _STANDARDISED:
        if m not in anchors:
            continue
        ref = db[m][np.flatnonzero(f.seen)] if db[m] is not None else anchors[m]
        mu, sd = ref.mean(axis=0), ref.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        if db[m] is not None:
            db[m] = ((db[m] - mu) / sd).astype(np.float32)
        anchors[m] = ((anchors[m] - mu) / sd).astype(np.float32)
        positives[m] = ((positives[m] - mu) / sd).astype(np.float32)
    return _Features(db, anchors, positives, f.q_rows, f.seen)


def _loose(f: _Features, st: _Settings, seed: int, progress: Progress) -> dict[str, dict[int, float | None]]:
    """Method → batch size → mini-search loose accuracy, over batches in an order fixed by
    ``seed``; logged."""
    order = torch.randperm(len(f.q_rows), generator=torch.Generator().manual_seed(seed)).numpy()
    loose: dict[str, dict[int, float | None]] = {}
    for m in f.anchors:
        a = f.anchors[m][order]
        p = f.positives[m][order]
        loose[m] = {}
        for bs in st.batch_sizes:
            acc, _ = loose_accuracy(a, p, bs, st.weights)
            loose[m][bs] = None if math.isnan(acc) else acc
    progress.log(
        "loose accuracy: "
        + "; ".join(
            f"{m} " + ", ".join(f"@{b} {v:.3f}" for b, v in d.items() if v is not None)
            for m, d in loose.items()
        )
    )
    return loose


@dataclass(frozen=True)
class _Retrieval:
    scores: dict[str, RetrievalScores] | None  # None: no labelled query in the split
    class_counts: dict[int, int] | None
    neighbours: dict[str, np.ndarray]


def _retrieval(f: _Features, labels: np.ndarray, st: _Settings, where: str, progress: Progress) -> _Retrieval:
    """Every query against the whole catalog (itself excluded) by the exact score, scored
    against the labels."""
    n = len(labels)
    q_rows = f.q_rows
    keep = labels[q_rows] >= 0
    ql = labels[q_rows[keep]]
    # the database: every readable row (an unreadable one has no vector to rank)
    db_rows = np.flatnonzero(f.seen)
    pos_of = np.full(n, -1, np.int64)
    pos_of[db_rows] = np.arange(len(db_rows))
    kmax = min(max(st.ks), len(db_rows) - 1)
    if kmax < 1:
        raise CatalogError(f"{where}: retrieval needs at least 2 readable images, got {len(db_rows)}")
    ks_eff = tuple(k for k in st.ks if k <= kmax)
    db_labels = np.where(f.seen, labels, -1)  # unreadable rows are never relevant
    scores: dict[str, RetrievalScores] = {}
    neighbours: dict[str, np.ndarray] = {}
    with progress.task("exact retrieval", total=len(f.db) * len(q_rows), unit="query") as t:
        for m, db in f.db.items():
            xb = db if len(db_rows) == n else db[db_rows]
            _, I = exact_knn(xb[pos_of[q_rows]], xb, kmax, st.weights, exclude=pos_of[q_rows])
            neighbours[m] = db_rows[I]
            if len(ql):
                scores[m] = _retrieval_scores(neighbours[m][keep], ql, db_labels, ks_eff)
            t.advance(len(q_rows))
    if not scores:
        return _Retrieval(None, None, neighbours)
    u, c = np.unique(ql, return_counts=True)
    k_show = ks_eff[-1]
    progress.log(
        f"macro precision@{k_show}: "
        + ", ".join(f"{m} {r.macro[f'precision@{k_show}']:.3f}" for m, r in scores.items())
    )
    return _Retrieval(scores, {int(a): int(b) for a, b in zip(u, c)}, neighbours)


def evaluate(
    checkpoint_or_embedder: str | Path | Embedder,
    catalog: Catalog,
    split: str = "test",
    ks: Sequence[int] = (1, 10),
    batch_sizes: Sequence[int] = (8, 64),
    seed: int = 0,
    progress: Progress = NULL_PROGRESS,
    *,
    baselines: bool = True,
    split_seed: int | None = None,
    weights: ScoreWeights | None = None,
    batch_size: int = 256,
    suppress: SuppressChoice = FROM_CHECKPOINT,
) -> EvalReport:
    """Evaluate a checkpoint (path) or an :class:`Embedder` on ``catalog`` (see module doc).

    ``split``: "test" (default), "val", "train" or "all". ``split_seed`` defaults to the
    checkpoint's training seed (so "test" is really held out), else ``seed``. ``seed`` fixes
    the loose-accuracy batches and augmentations. ``weights`` defaults to the checkpoint's
    (:attr:`Embedder.score_weights`). ``suppress``: source suppression of every image read,
    for all methods — the embedder's (:attr:`Embedder.suppress`, i.e. its checkpoint's) by
    default, or a :class:`~galaxy_retrieval.suppress.SuppressConfig`, or None (off).
    """
    t0 = time.perf_counter()
    ks, batch_sizes = _check_sizes(split, ks, batch_sizes)
    emb = (
        checkpoint_or_embedder
        if isinstance(checkpoint_or_embedder, Embedder)
        else load_checkpoint(checkpoint_or_embedder)
    )
    st = _settings(emb, ks, batch_sizes, seed, split_seed, weights, suppress)
    n = len(catalog)
    rows, labels = _rows_and_labels(catalog, split, st.split_seed)
    methods = _methods(emb, baselines, st.split_seed)
    framing_stats = FramingStats()
    # with labels, the whole catalog is the database; without, only the split is needed
    n_read = n if labels is not None else len(rows)
    what = f"evaluating on {split} ({len(rows)} queries, {n_read} read{', sources suppressed' if st.suppress else ''})"
    feats = _embed_pass(
        catalog, emb, st, methods, rows, labels is not None, seed, batch_size, what, framing_stats, progress
    )
    if len(feats.q_rows) == 0:
        raise CatalogError(f"{catalog.path}: no readable images in the {split} split")
    feats = _standardised(feats)
    loose = _loose(feats, st, seed, progress)
    ret = (
        _retrieval(feats, labels, st, str(catalog.path), progress)
        if labels is not None
        else _Retrieval(None, None, {})
    )
    cfg = emb.model_config
    return EvalReport(
        split=split,
        split_seed=st.split_seed,
        seed=seed,
        n_queries=int(len(feats.q_rows)),
        n_database=int(n if labels is not None else len(feats.q_rows)),
        ks=ks,
        batch_sizes=batch_sizes,
        model={"preset": cfg.name, "sha256": emb.sha256, "path": emb.path, "config": cfg.to_dict()},
        score_weights=st.weights.to_dict(),
        loose_accuracy=loose,
        retrieval=ret.scores,
        query_class_counts=ret.class_counts,
        seconds=time.perf_counter() - t0,
        device=str(emb.device),
        suppress_sources=None if st.suppress is None else st.suppress.to_dict(),
        label_names=_label_names(catalog) if labels is not None else None,
        framing={
            "spec": cfg.framing.spec,
            "images": framing_stats.images,
            "fallback": framing_stats.fallback,
        },
        query_rows=feats.q_rows,
        neighbours=ret.neighbours,
    )
