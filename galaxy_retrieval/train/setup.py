"""What one training run works with, set up in the order that fixes what a seed trains:
the seed's image stores and validation pairs, the model (from the seed, or fine-tuned from
``TrainConfig.init``), the optimiser, the descriptor fusion's statistics."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..catalog.base import Catalog
from ..errors import CatalogError, CheckpointError
from ..model.backbone import Backbone
from ..model.checkpoint import load_model
from ..model.device import CPU_BF16_BACKBONES, memory_format, pick_device, resolve_precision
from ..model.fusion import DescriptorFusion, fit_fusion
from ..model.layout import HISTORY_FILE, LAST_DIR, META_FILE, PLOT_FILE, WEIGHTS_FILE
from ..model.registry import create_model
from ..progress import Progress
from ..score import ScoreWeights, weight_logits, weights_from_logits
from .augment import PairAugmenter
from .config import COMPILE_AUTO_MIN_IMAGES, TrainConfig
from .data import ImageStore
from .descriptor_target import DescriptorTarget, fit_descriptor_target
from .splits import split_indices
from .validate import ValSet, make_val_set

__all__ = ["Run", "set_up"]


@dataclass
class Run:
    """What one call of :func:`train` works with, set up by :func:`set_up`."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    precision: str
    model: Backbone
    embed_fn: Any  # model.embed, compiled or not
    opt: torch.optim.Optimizer
    theta: torch.Tensor | None  # learned score-weight logits, or None
    g: torch.Generator
    augmenter: PairAugmenter
    tr: ImageStore
    va: ImageStore
    val: ValSet
    fusion: DescriptorFusion | None
    t_start: float
    descriptor: DescriptorTarget | None = None  # the auxiliary target, when descriptor_weight > 0

    def weights(self) -> ScoreWeights:
        return self.cfg.score_weights if self.theta is None else weights_from_logits(self.theta)


def set_up(
    cfg: TrainConfig,
    catalog: Catalog,
    out: Path,
    resume: bool,
    discard_old: bool,
    progress: Progress,
    t_start: float,
) -> Run:
    """Data, model, optimiser, in the order that fixes what a seed trains."""
    device = pick_device(cfg.device)
    mcfg = cfg.model_config()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    augmenter = PairAugmenter(cfg.augment_config())

    progress.log(f"device {device}; model {mcfg.name} ({mcfg.image_size}² input)")
    tr, va = _image_stores(cfg, catalog, progress)
    val = make_val_set(va, augmenter, cfg.seed, cfg.max_val_images)
    # the old run goes only now that the new one has passed every check
    if discard_old:
        for name in (WEIGHTS_FILE, META_FILE, HISTORY_FILE, PLOT_FILE):
            (out / name).unlink(missing_ok=True)
        for d in ("", ".new", ".old"):
            shutil.rmtree(out / (LAST_DIR + d), ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    fusion = _fit_fusion(cfg, tr, progress)
    # "auto" resolved once, for this device and backbone; every step and validation uses it
    precision = resolve_precision(cfg.precision, device, mcfg.backbone)
    model = create_model(mcfg, seed=cfg.seed)
    if cfg.init is not None and not resume:
        _load_init(model, cfg.init, progress)
    model = model.to(device)
    model = model.to(memory_format=memory_format(precision, device))
    descriptor = None
    if cfg.descriptor_weight > 0:
        descriptor = fit_descriptor_target(model, tr, device, fit_head=cfg.init is not None)
        progress.log(
            f"descriptor target: polar Fourier ({descriptor.targets.shape[1]} components) of {len(tr)} "
            f"training images, weight {cfg.descriptor_weight:g}"
        )
    opt, theta = _optimizer(model, cfg, device, descriptor)
    embed_fn = model.embed
    if _use_compile(cfg, len(tr)):
        # the training forward only: validation runs eager (eval-mode batch norm would be a
        # second graph to compile for a few seconds of work per epoch)
        embed_fn = torch.compile(model.embed)
    progress.log(
        f"precision {precision}{', channels-last' if memory_format(precision, device) == torch.channels_last else ''}"
        f"{', torch.compile' if embed_fn is not model.embed else ''}"
    )
    return Run(
        cfg,
        out,
        device,
        precision,
        model,
        embed_fn,
        opt,
        theta,
        g,
        augmenter,
        tr,
        va,
        val,
        fusion,
        t_start,
        descriptor,
    )


def _use_compile(cfg: TrainConfig, n_train: int) -> bool:
    if cfg.compile != "auto":
        return cfg.compile == "on"
    if cfg.model_config().backbone not in CPU_BF16_BACKBONES:
        return False  # the ViT measured no faster compiled (benchmarks/train_speed.py)
    views = 2 if cfg.pair_mode == "in_batch" else 3
    return cfg.epochs * n_train * views >= COMPILE_AUTO_MIN_IMAGES


def _image_stores(cfg: TrainConfig, catalog: Catalog, progress: Progress) -> tuple[ImageStore, ImageStore]:
    """The training and validation images of the seed's split, framed and suppressed as the
    model will see them (preloaded when they fit)."""
    mcfg = cfg.model_config()
    if len(catalog) < 3:  # named here: split_indices knows the count, not the file
        raise CatalogError(
            f"{catalog.path}: holds {len(catalog)} objects; training needs at least 3 (train/val/test split)"
        )
    train_rows, val_rows, _ = split_indices(len(catalog), cfg.seed)
    progress.log(
        f"split {len(train_rows)} train / {len(val_rows)} val / {len(catalog) - len(train_rows) - len(val_rows)} test"
    )
    pre = mcfg.preprocessing
    tr = ImageStore(catalog, train_rows, pre, cfg.preload_max_bytes, progress, "training set")
    va = ImageStore(catalog, val_rows, pre, cfg.preload_max_bytes, progress, "validation set")
    for store in (tr, va):
        st = store.framing_stats
        if mcfg.framing.mode == "auto" and st.images:
            progress.log(
                f"framing: {st.images - st.fallback} of {st.images} {store.name} images framed on their central source"
                + (f", {st.fallback} without one kept whole" if st.fallback else "")
            )
    if len(tr) < 2:
        raise CatalogError(
            f"{catalog.path}: training needs at least 2 readable training images, got {len(tr)}"
        )
    if not tr.preloaded:
        progress.log(
            f"training set larger than preload_max_bytes={cfg.preload_max_bytes}: streaming from the catalog"
        )
    return tr, va


def _optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: Any, descriptor: DescriptorTarget | None = None
) -> tuple[torch.optim.Optimizer, torch.Tensor | None]:
    """Adam over the model, over θ (the learned score-weight logits) when they are learned,
    and over the descriptor target's head when there is one."""
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    theta = None
    if cfg.learn_score_weights:
        theta = torch.nn.Parameter(weight_logits(cfg.score_weights).to(device))
        # θ only sets the balance of three terms: decaying it would pull the weights towards 1/3
        # each for no reason
        groups.append({"params": [theta], "weight_decay": 0.0})
    if descriptor is not None:
        groups.append({"params": list(descriptor.head.parameters())})
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay), theta


def _load_init(model: Backbone, init: str, progress: Progress) -> None:
    """Copy the weights of ``init`` (the shipped model or a checkpoint of the same shape) into ``model``."""
    src, _meta, weights, sha = load_model(init)
    if src.config.architecture_key() != model.config.architecture_key():
        raise CheckpointError(
            f"{weights}: cannot initialise from it: it is a {src.config.name} model of another architecture than the "
            f"{model.config.name} preset being trained (its preset expects other weight shapes)"
        )
    # the architecture is the checkpoint's; framing and normalisation stay this run's
    model.load_state_dict(src.state_dict())
    progress.log(f"initialised from {init} ({weights}, sha256 {sha[:12]}…)")


def _fit_fusion(cfg: TrainConfig, tr: ImageStore, progress: Progress) -> DescriptorFusion | None:
    """The descriptor fusion's statistics over the training images (label-free), when asked for."""
    if cfg.fusion_share is None:
        return None
    n = len(tr)
    f = fit_fusion(
        (tr.get(torch.arange(lo, min(n, lo + 512))).float() / 255.0 for lo in range(0, n, 512)),
        share=float(cfg.fusion_share),
        components=cfg.fusion_components,
    )
    axes = "all" if cfg.fusion_components is None else "its leading principal axes"
    progress.log(
        f"descriptor fusion: polar Fourier ({f.dim} components: {axes}, share {f.share:g}) standardised over {n} training images"
    )
    return f
