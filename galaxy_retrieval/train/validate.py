"""Validation each epoch (paper §3.5): fixed validation pairs, the loss and loose accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import loose_accuracy, split_loose_accuracy
from ..model.backbone import Backbone
from ..model.device import memory_format, resolve_precision, train_autocast
from ..model.preprocess import normalize
from ..score import ScoreWeights, score_torch
from .augment import PairAugmenter
from .config import TrainConfig
from .data import ImageStore
from .losses import contrastive_loss, info_nce_loss
from .pairs import other_positions

__all__ = ["ValSet", "make_val_set", "validate", "criterion", "embed_uint8"]


@dataclass
class ValSet:
    """Fixed validation pairs: the same augmentations every epoch, so curves are comparable."""

    anchors: torch.Tensor  # uint8 (N, 3, S, S), in a fixed random order
    positives: torch.Tensor  # uint8, T⁺(anchor)
    negatives: torch.Tensor  # uint8, T⁻(another validation image)


def _u8(x01: torch.Tensor) -> torch.Tensor:
    return x01.mul(255.0).round_().to(torch.uint8)


def make_val_set(store: ImageStore, augmenter: PairAugmenter, seed: int, max_images: int) -> ValSet:
    g = torch.Generator().manual_seed(seed + 1_000_003)
    n = len(store)
    order = torch.randperm(n, generator=g)[:max_images]
    anchors, pos, neg = [], [], []
    for lo in range(0, len(order), 256):
        idx = order[lo : lo + 256]
        a = store.get(idx).float() / 255.0
        o = store.get(other_positions(idx, n, g) if n > 1 else idx).float() / 255.0
        anchors.append(_u8(a))
        pos.append(_u8(augmenter.positive(a, g)))
        neg.append(_u8(augmenter.negative(o, g)))
    return ValSet(torch.cat(anchors), torch.cat(pos), torch.cat(neg))


@torch.inference_mode()
def embed_uint8(
    model: Backbone, x: torch.Tensor, device: torch.device, precision: str = "auto", chunk: int = 256
) -> torch.Tensor:
    """uint8 model-size images (B, 3, S, S) → float32 vectors on the CPU, ``chunk`` at a time,
    in the run's precision and layout (the caller sets train or eval mode)."""
    out = []
    layout = memory_format(precision, device)
    for lo in range(0, x.shape[0], chunk):
        xb = normalize(x[lo : lo + chunk].to(device).float() / 255.0, model.config).contiguous(
            memory_format=layout
        )
        with train_autocast(device, precision):
            out.append(model.embed(xb).float().cpu())
    return torch.cat(out)


def validate(
    model: Backbone,
    val: ValSet,
    cfg: TrainConfig,
    device: torch.device,
    weights: ScoreWeights | None = None,
    precision: str | None = None,
) -> dict[str, float | None]:
    """Validation loss (the training objective: the paper-pair contrastive loss, or InfoNCE
    over training-size batches of anchors and positives) and mini-search loose accuracy at
    each batch size, scored with ``weights`` (default ``cfg.score_weights``; the current
    learned ones when learning)."""
    w = cfg.score_weights if weights is None else weights
    was_training = model.training
    model.eval()
    prec = resolve_precision(cfg.precision, device, model.config.backbone) if precision is None else precision
    za = embed_uint8(model, val.anchors, device, prec)
    zp = embed_uint8(model, val.positives, device, prec)
    zn = embed_uint8(model, val.negatives, device, prec)
    model.train(was_training)
    s = torch.cat([score_torch(za, zp, w), score_torch(za, zn, w)])
    y = torch.cat([torch.ones(len(za)), torch.zeros(len(za))])
    if cfg.loss == "info_nce":
        # the objective being optimised, on the validation pairs in training-size batches
        parts = [
            float(
                info_nce_loss(
                    score_torch(
                        za[lo : lo + cfg.batch_size, None, :], zp[None, lo : lo + cfg.batch_size, :], w
                    ),
                    cfg.temperature,
                )
            )
            for lo in range(0, len(za) - 1, cfg.batch_size)
            if len(za[lo : lo + cfg.batch_size]) >= 2
        ]
        val_loss = float(np.mean(parts))
    else:
        val_loss = float(contrastive_loss(s, y, cfg.margin))
    out: dict[str, float | None] = {"val_loss": val_loss}
    for b in cfg.loose_batch_sizes:
        acc, _ = loose_accuracy(za, zp, b, w)
        out[f"val_loose_acc@{b}"] = None if math.isnan(acc) else acc
    acc = split_loose_accuracy(za, zp, w)
    out["val_loose_acc@all"] = None if math.isnan(acc) else acc
    return out


def criterion(metrics: dict[str, float | None], cfg: TrainConfig) -> float:
    """The number that picks the best epoch, lower is better (``cfg.select_by``)."""
    if cfg.select_by == "split_loose_acc":
        v = metrics.get("val_loose_acc@all")
        return math.inf if v is None else -float(v)
    v = metrics["val_loss"]
    return math.inf if v is None or not math.isfinite(v) else float(v)
