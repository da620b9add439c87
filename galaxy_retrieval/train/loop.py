"""The training loop (paper §3.4), validation each epoch (§3.5), checkpoints and resume.

Optionally learns the score's weights with the model (``TrainConfig.learn_score_weights``,
the paper's future work in §3.6) and trains on source-suppressed images
(``TrainConfig.suppress_sources``, its §5 future work)."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..version import __version__
from ..catalog.base import Catalog
from ..errors import CatalogError, CheckpointError, GalaxyRetrievalError, TrainingDivergedError
from ..metrics import loose_accuracy, split_loose_accuracy
from ..atomic import atomic_write_json
from ..model.checkpoint import (
    FORMAT_VERSION,
    HISTORY_FILE,
    LAST_DIR,
    META_FILE,
    PLOT_FILE,
    WEIGHTS_FILE,
    _last_is_whole,
    load_model,
    load_train_state,
    save_train_state,
    save_weights,
    settle_last,
)
from ..model.device import CPU_BF16_BACKBONES, pick_device, resolve_precision, train_autocast
from ..model.fusion import DescriptorFusion, fit_fusion
from ..model.preprocess import normalize
from ..model.vit import GalaxIDNetViT, build_model
from ..paths import check_output_dir, first_missing, remove_created_dirs
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights, score_torch, weight_logits, weights_from_logits
from .losses import contrastive_loss, info_nce_loss
from .augment import PairAugmenter
from .config import COMPILE_AUTO_MIN_IMAGES, TrainConfig
from .data import ImageStore
from .pairs import make_pair_batch, other_positions, pair_loss
from ..viz.curves import plot_history
from .splits import split_indices

__all__ = ["train", "TrainResult", "validate", "ValSet", "make_val_set"]


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    best_epoch: int  # 1-based; the epoch whose weights are in model.safetensors
    epochs_completed: int
    best_val_loss: float
    best_val_loose_acc: dict[int, float]  # at the best epoch, by mini-search batch size
    history: list[dict[str, Any]]
    seconds: float  # wall time of this call
    device: str
    stopped: str  # "completed" | "early_stopping" | "time_budget" | "nothing_to_do"
    weights_sha256: str
    n_train: int
    n_val: int
    resumed_from_epoch: int = 0
    # the best epoch's learned score weights (cos, l2, l3); None when they were not learned
    score_weights: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out_dir"] = str(self.out_dir)
        d["best_val_loose_acc"] = {str(k): v for k, v in self.best_val_loose_acc.items()}
        return d


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
def _embed_u8(model: GalaxIDNetViT, x: torch.Tensor, device: torch.device, precision: str = "auto", chunk: int = 256) -> torch.Tensor:
    out = []
    layout = _memory_format(precision, device)
    for lo in range(0, x.shape[0], chunk):
        xb = normalize(x[lo : lo + chunk].to(device).float() / 255.0, model.config).contiguous(memory_format=layout)
        with train_autocast(device, precision):
            out.append(model.embed(xb).float().cpu())
    return torch.cat(out)


def _memory_format(precision: str, device: torch.device) -> torch.memory_format:
    """channels-last where bf16 runs on a CPU: oneDNN's AMX convolutions want NHWC, and
    NCHW tensors are reordered at every layer otherwise (measured in benchmarks/train_speed.py)."""
    if device.type == "cpu" and resolve_precision(precision, device) == "bf16":
        return torch.channels_last
    return torch.contiguous_format


def _use_compile(cfg: TrainConfig, n_train: int) -> bool:
    if cfg.compile != "auto":
        return cfg.compile == "on"
    if cfg.model_config().backbone not in CPU_BF16_BACKBONES:
        return False  # the ViT measured no faster compiled (benchmarks/train_speed.py)
    views = 2 if cfg.pair_mode == "in_batch" else 3
    return cfg.epochs * n_train * views >= COMPILE_AUTO_MIN_IMAGES


def validate(
    model: GalaxIDNetViT, val: ValSet, cfg: TrainConfig, device: torch.device, weights: ScoreWeights | None = None,
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
    za = _embed_u8(model, val.anchors, device, prec)
    zp = _embed_u8(model, val.positives, device, prec)
    zn = _embed_u8(model, val.negatives, device, prec)
    model.train(was_training)
    s = torch.cat([score_torch(za, zp, w), score_torch(za, zn, w)])
    y = torch.cat([torch.ones(len(za)), torch.zeros(len(za))])
    if cfg.loss == "info_nce":
        # the objective being optimised, on the validation pairs in training-size batches
        parts = [
            float(info_nce_loss(score_torch(za[lo : lo + cfg.batch_size, None, :], zp[None, lo : lo + cfg.batch_size, :], w), cfg.temperature))
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


def _criterion(metrics: dict[str, float | None], cfg: TrainConfig) -> float:
    """The number that picks the best epoch, lower is better (``cfg.select_by``)."""
    if cfg.select_by == "split_loose_acc":
        v = metrics.get("val_loose_acc@all")
        return math.inf if v is None else -float(v)
    v = metrics["val_loss"]
    return math.inf if v is None or not math.isfinite(v) else float(v)


def _lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.lr_schedule == "cosine":
        t = (step - warm) / max(1.0, total - warm)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
    return cfg.lr


def _first_save_killed(out: Path) -> bool:
    """A kill during the first epoch's save: the best weights written, the resume point only
    partly (``last.new`` not whole), no ``last/``, no ``checkpoint.json``. A rerun used to
    say "resume it or overwrite it", and --resume "nothing to resume"."""
    new = out / (LAST_DIR + ".new")
    return new.is_dir() and not (out / LAST_DIR).exists() and not (out / (LAST_DIR + ".old")).exists() and not (out / META_FILE).exists() and not _last_is_whole(new)


def _has_run(out: Path) -> bool:
    return (out / WEIGHTS_FILE).exists() or (out / LAST_DIR).exists() or (out / META_FILE).exists()


def train(
    cfg: TrainConfig,
    catalog: Catalog,
    out_dir: str | Path,
    progress: Progress = NULL_PROGRESS,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train a model (the config's backbone) label-free on ``catalog`` and write ``out_dir``: see :func:`_train`.

    A refused run (bad catalog or device, a diverging loss before the first epoch was saved)
    in a directory this call created leaves no directory behind."""
    out = check_output_dir(out_dir)
    top = first_missing(out)
    try:
        return _train(cfg, catalog, out, progress, resume, overwrite)
    except GalaxyRetrievalError:
        if top is not None and out.is_dir() and not (out / LAST_DIR / "state.json").exists():
            shutil.rmtree(out, ignore_errors=True)  # this call created it: nothing of the user's
            remove_created_dirs(out.parent, top)
        raise


def _train(
    cfg: TrainConfig,
    catalog: Catalog,
    out_dir: str | Path,
    progress: Progress = NULL_PROGRESS,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train a GalaxIDNet ViT label-free on ``catalog`` and write ``out_dir`` (see checkpoint.py).

    The catalog is split 80/10/10 by ``cfg.seed`` (:func:`split_indices`); only the 80 %
    trains, the 10 % validation set picks the best epoch (lowest paper-pair loss) and early
    stopping, the last 10 % is left for :func:`galaxy_retrieval.evaluate.evaluate`.
    ``resume=True`` continues ``out_dir/last`` up to ``cfg.epochs`` in total; otherwise an
    existing run there is an error unless ``overwrite=True``.

    With ``cfg.learn_score_weights`` the score's weights are softmax(θ), θ a parameter of
    its own (same learning rate, no weight decay); see :class:`TrainConfig`.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    if _first_save_killed(out):
        # nothing of that run can be resumed: it starts again, with or without resume
        progress.log(f"{out}: the first epoch's save was interrupted, so no epoch can be resumed; training starts from the beginning")
        for name in (WEIGHTS_FILE, HISTORY_FILE, PLOT_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / (LAST_DIR + ".new"), ignore_errors=True)
        resume = False
    if resume:
        _check_resumable(out, cfg)
    discard_old = not resume and _has_run(out)
    if discard_old and not overwrite:
        raise CheckpointError(f"{out}: already holds a training run; resume it or overwrite it").resolved_by("resume", "overwrite")

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
    model = build_model(mcfg, seed=cfg.seed)
    if cfg.init is not None and not resume:
        _load_init(model, cfg.init, progress)
    model = model.to(device)
    model = model.to(memory_format=_memory_format(precision, device))
    opt, theta = _optimizer(model, cfg, device)
    embed_fn = model.embed
    if _use_compile(cfg, len(tr)):
        # the training forward only: validation runs eager (eval-mode batch norm would be a
        # second graph to compile for a few seconds of work per epoch)
        embed_fn = torch.compile(model.embed)
    progress.log(f"precision {precision}{', channels-last' if _memory_format(precision, device) == torch.channels_last else ''}"
                 f"{', torch.compile' if embed_fn is not model.embed else ''}")

    def current_weights() -> ScoreWeights:
        return cfg.score_weights if theta is None else weights_from_logits(theta)

    history: list[dict[str, Any]] = []
    start_epoch, best_val, best_epoch, bad_epochs, step = 0, math.inf, 0, 0, 0
    best_crit = math.inf  # _criterion of the best epoch
    best_acc: dict[int, float] = {}
    best_sha = ""
    best_weights: dict[str, float] | None = None
    if resume:
        extra, st = load_train_state(out, model, opt)
        history = list(st.get("history", []))
        start_epoch = int(st["epochs_completed"])
        best_val = float(st["best_val_loss"]) if st.get("best_val_loss") is not None else math.inf
        # runs from before select_by existed selected by the validation loss
        best_crit = float(st["best_criterion"]) if st.get("best_criterion") is not None else best_val
        best_epoch = int(st.get("best_epoch", 0))
        best_sha = st.get("best_sha256", "")
        best_acc = {int(k): v for k, v in (st.get("best_val_loose_acc") or {}).items()}
        bad_epochs = 0 if st.get("stopped") == "early_stopping" else int(st.get("bad_epochs", 0))
        step = int(st.get("step", 0))
        if "generator" in extra:
            g.set_state(extra["generator"])
        if theta is not None:
            if "score_logits" not in extra:
                raise CheckpointError(f"{out / LAST_DIR}: resume state has no learned score weights (score_logits)")
            with torch.no_grad():
                theta.copy_(extra["score_logits"].to(theta.device, theta.dtype))
            best_weights = st.get("best_score_weights")
        progress.log(f"resuming {out} after epoch {start_epoch} (best epoch {best_epoch}, val loss {best_val:.4f})")

    steps_per_epoch = math.ceil(len(tr) / min(cfg.batch_size, len(tr)))
    stopped = "completed" if start_epoch < cfg.epochs else "nothing_to_do"
    last_epoch_s = 0.0
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        elapsed = time.perf_counter() - t_start
        if cfg.time_budget_s is not None and epoch > start_epoch and elapsed + last_epoch_s > cfg.time_budget_s:
            stopped = "time_budget"
            progress.log(f"stopping before epoch {epoch + 1}: it would end past the {cfg.time_budget_s:.0f} s budget")
            break
        t_epoch = time.perf_counter()
        loss_sum, acc_sum, seen, step = _train_epoch(model, embed_fn, precision, opt, theta, tr, augmenter, g, cfg, device, epoch, step, steps_per_epoch, out, progress)
        epoch_w = current_weights()
        metrics = validate(model, val, cfg, device, epoch_w, precision)
        epoch_s = time.perf_counter() - t_epoch
        last_epoch_s = epoch_s
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(1, seen),
            "train_pair_acc": acc_sum / max(1, seen),
            **metrics,
            "lr": opt.param_groups[0]["lr"],
            "seconds": round(epoch_s, 3),
        }
        if theta is not None:
            row.update(w_cos=epoch_w.cos, w_l2=epoch_w.l2, w_l3=epoch_w.l3)
        history.append(row)
        vl = metrics["val_loss"]
        crit = _criterion(metrics, cfg)
        improved = math.isfinite(crit) and crit < best_crit
        if improved or not (out / WEIGHTS_FILE).exists():
            if improved:
                best_crit, bad_epochs = crit, 0
            best_val = vl if vl is not None else math.inf
            best_epoch = epoch + 1
            best_acc = {b: metrics[f"val_loose_acc@{b}"] for b in cfg.loose_batch_sizes}
            best_weights = None if theta is None else epoch_w.to_dict()
            best_sha = save_weights(out / WEIGHTS_FILE, model, _usage_meta(cfg, best_weights, fusion))
        else:
            bad_epochs += 1
        if bad_epochs >= cfg.patience:
            stopped = "early_stopping"
        learned = "" if theta is None else f", weights cos {epoch_w.cos:.3f} / L2 {epoch_w.l2:.3f} / L3 {epoch_w.l3:.3f}"
        accs = ", ".join(
            f"loose@{b} {metrics[f'val_loose_acc@{b}']:.3f}" for b in (*cfg.loose_batch_sizes, "all") if metrics[f"val_loose_acc@{b}"] is not None
        )
        progress.log(
            f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val loss {vl:.4f}, {accs}{learned}"
            f"{' (best)' if best_epoch == epoch + 1 else ''} [{epoch_s:.1f} s]"
        )
        state = {
            "seed": cfg.seed,
            "epochs_completed": epoch + 1,
            "best_epoch": best_epoch,
            "best_val_loss": best_val if math.isfinite(best_val) else None,
            "best_criterion": best_crit if math.isfinite(best_crit) else None,
            "best_val_loose_acc": {str(k): v for k, v in best_acc.items()},
            "best_sha256": best_sha,
            "bad_epochs": bad_epochs,
            "step": step,
            "stopped": stopped if stopped == "early_stopping" else None,
            "history": history,
        }
        extra_tensors = {"generator": g.get_state()}
        if theta is not None:
            state["learn_score_weights"] = True
            state["best_score_weights"] = best_weights
            extra_tensors["score_logits"] = theta.detach()
        save_train_state(out, model, opt, extra_tensors, state)
        _write_run_files(out, cfg, catalog, history, state, device, time.perf_counter() - t_start, len(tr), len(va))
        if stopped == "early_stopping":
            progress.log(f"early stopping: no validation improvement for {cfg.patience} epochs")
            break

    model.eval()
    return TrainResult(
        out_dir=out,
        best_epoch=best_epoch,
        epochs_completed=len(history),
        best_val_loss=best_val,
        best_val_loose_acc=best_acc,
        history=history,
        seconds=time.perf_counter() - t_start,
        device=str(device),
        stopped=stopped,
        weights_sha256=best_sha,
        n_train=len(tr),
        n_val=len(va),
        resumed_from_epoch=start_epoch if resume else 0,
        score_weights=best_weights,
    )


def _check_resumable(out: Path, cfg: TrainConfig) -> None:
    """Refuse to resume a run that ``cfg`` cannot continue; checked before any data is
    loaded (the seed fixes the split, so it cannot change)."""
    settle_last(out)  # a kill mid-save leaves the previous resume point or the new one, whole
    state_json = out / LAST_DIR / "state.json"
    if not state_json.is_file():
        raise CheckpointError(f"{out}: nothing to resume (no {LAST_DIR}/state.json); train without resume first")
    try:
        saved = json.loads(state_json.read_text("utf-8")).get("state", {})
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{state_json}: unreadable resume state ({e})") from None
    saved_seed = saved.get("seed", cfg.seed)
    if saved_seed != cfg.seed:
        raise CheckpointError(f"{out / LAST_DIR}: run was trained with seed {saved_seed} (which fixes the data split); got seed {cfg.seed}")
    saved_learn = bool(saved.get("learn_score_weights", False))
    if saved_learn != cfg.learn_score_weights:
        raise CheckpointError(
            f"{out / LAST_DIR}: run was trained with learn_score_weights={saved_learn}; "
            f"got learn_score_weights={cfg.learn_score_weights} (resume with the run's setting)"
        )


def _image_stores(cfg: TrainConfig, catalog: Catalog, progress: Progress) -> tuple[ImageStore, ImageStore]:
    """The training and validation images of the seed's split, framed and suppressed as the
    model will see them (preloaded when they fit)."""
    mcfg = cfg.model_config()
    if len(catalog) < 3:  # named here: split_indices knows the count, not the file
        raise CatalogError(f"{catalog.path}: holds {len(catalog)} objects; training needs at least 3 (train/val/test split)")
    train_rows, val_rows, _ = split_indices(len(catalog), cfg.seed)
    progress.log(f"split {len(train_rows)} train / {len(val_rows)} val / {len(catalog) - len(train_rows) - len(val_rows)} test")
    sup = cfg.suppress_sources
    tr = ImageStore(catalog, train_rows, mcfg.image_size, cfg.preload_max_bytes, progress, "training set", suppress=sup, framing=mcfg.framing)
    va = ImageStore(catalog, val_rows, mcfg.image_size, cfg.preload_max_bytes, progress, "validation set", suppress=sup, framing=mcfg.framing)
    for store in (tr, va):
        st = store.framing_stats
        if mcfg.framing.mode == "auto" and st.images:
            progress.log(
                f"framing: {st.images - st.fallback} of {st.images} {store.name} images framed on their central source"
                + (f", {st.fallback} without one kept whole" if st.fallback else "")
            )
    if len(tr) < 2:
        raise CatalogError(f"{catalog.path}: training needs at least 2 readable training images, got {len(tr)}")
    if not tr.preloaded:
        progress.log(f"training set larger than preload_max_bytes={cfg.preload_max_bytes}: streaming from the catalog")
    return tr, va


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, device: Any) -> tuple[torch.optim.Optimizer, torch.Tensor | None]:
    """Adam over the model, and over θ (the learned score-weight logits) when they are learned."""
    if not cfg.learn_score_weights:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay), None
    theta = torch.nn.Parameter(weight_logits(cfg.score_weights).to(device))
    # θ only sets the balance of three terms: decaying it would pull the weights towards 1/3
    # each for no reason
    opt = torch.optim.Adam(
        [{"params": list(model.parameters())}, {"params": [theta], "weight_decay": 0.0}],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    return opt, theta


def _train_epoch(
    model: Any, embed_fn: Any, precision: str, opt: Any, theta: Any, tr: ImageStore, augmenter: PairAugmenter, g: torch.Generator, cfg: TrainConfig,
    device: Any, epoch: int, step: int, steps_per_epoch: int, out: Path, progress: Progress,
) -> tuple[float, float, int, int]:
    """One pass over the training images in a random order. Returns (loss sum, pair-accuracy
    sum, images seen, the optimiser step count after the epoch)."""
    mcfg = cfg.model_config()
    n = len(tr)
    bsz = min(cfg.batch_size, n)
    perm = torch.randperm(n, generator=g)
    loss_sum, acc_sum, seen = 0.0, 0.0, 0
    # progress counts pairs in paper mode, images (each against the whole batch) in in_batch mode
    per_image = 1 if cfg.pair_mode == "in_batch" or cfg.save_computations else 2
    unit = "img" if cfg.pair_mode == "in_batch" else "pair"
    layout = _memory_format(precision, device)
    with progress.task(f"train epoch {epoch + 1}/{cfg.epochs}", total=n * per_image, unit=unit) as t:
        for lo in range(0, n, bsz):
            pos = perm[lo : lo + bsz]
            if len(pos) < 2:  # a lone leftover image has no in-batch negatives
                continue
            # augment where the model runs: on a GPU the transforms are GPU work too
            anchors = tr.get(pos).to(device).float() / 255.0
            others = None
            if cfg.pair_mode == "paper":
                others = tr.get(other_positions(pos, n, g)).to(device).float() / 255.0
                m = min(len(anchors), len(others))  # streamed catalogs may skip unreadable rows
                anchors, others = anchors[:m], others[:m]
            batch = make_pair_batch(anchors, others, augmenter, g, cfg.pair_mode, cfg.save_computations, cfg.augment_anchors)
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, step, steps_per_epoch)
            x = normalize(batch.images, mcfg).contiguous(memory_format=layout)
            with train_autocast(device, precision):
                emb = embed_fn(x)  # one model call for every image of every pair
            w = cfg.score_weights if theta is None else torch.softmax(theta, dim=0)
            loss, acc = pair_loss(emb.float(), batch, w, cfg.margin, cfg.loss, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise TrainingDivergedError(
                    f"{out}: training loss became {lv} at epoch {epoch + 1}, step {step}; "
                    f"lower the learning rate (now {cfg.lr:g}) or clip gradients"
                )
            k = len(anchors)
            loss_sum += lv * k
            acc_sum += acc * k
            seen += k
            t.advance(k * per_image)
            t.update(loss=loss_sum / seen, acc=acc_sum / seen)
    return loss_sum, acc_sum, seen, step


def _load_init(model: torch.nn.Module, init: str, progress: Progress) -> None:
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
    f = fit_fusion((tr.get(torch.arange(lo, min(n, lo + 512))).float() / 255.0 for lo in range(0, n, 512)), share=float(cfg.fusion_share))
    progress.log(f"descriptor fusion: polar Fourier ({f.dim} components, share {f.share:g}) standardised over {n} training images")
    return f


def _usage_meta(cfg: TrainConfig, best_weights: dict[str, float] | None, fusion: DescriptorFusion | None = None) -> dict[str, Any] | None:
    """What the best weights file itself records about how to use the model (see checkpoint.py)."""
    meta: dict[str, Any] = {}
    if fusion is not None:
        meta["fusion"] = fusion.to_dict()
    if best_weights is not None:
        meta["score_weights"] = best_weights
    if cfg.suppress_sources is not None:
        meta["suppress_sources"] = cfg.suppress_sources.to_dict()
    return meta or None


def _write_run_files(
    out: Path,
    cfg: TrainConfig,
    catalog: Catalog,
    history: list[dict[str, Any]],
    state: dict[str, Any],
    device: torch.device,
    seconds: float,
    n_train: int,
    n_val: int,
) -> None:
    summary = {
        "best_epoch": state["best_epoch"],
        "epochs_completed": state["epochs_completed"],
        "best_val_loss": state["best_val_loss"],
        "best_val_loose_acc": state["best_val_loose_acc"],
        # sum over epochs, so a resumed run counts its earlier sessions too
        "train_seconds": round(float(np.sum([h["seconds"] for h in history])), 2),
        "wall_seconds_this_call": round(seconds, 2),
        "device": str(device),
        "n_train": n_train,
        "n_val": n_val,
        "catalog": catalog.source,
        "catalog_size": len(catalog),
        "seed": cfg.seed,
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "galaxidnet-vit",
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": cfg.model_config().to_dict(),
        "train": cfg.to_dict(),
        "epoch": state["best_epoch"],
        "best_val_loss": state["best_val_loss"],
        "weights_sha256": state["best_sha256"],
        "summary": summary,
        "history": history,
    }
    if state.get("learn_score_weights"):
        # the best epoch's learned weights; meta["train"]["score_weights"] keeps the initial ones
        meta["score_weights"] = state["best_score_weights"]
    atomic_write_json(out / HISTORY_FILE, history)
    plot_history(history, out / PLOT_FILE, title=f"{cfg.model_config().name} on {Path(catalog.path).name}", pair_mode=cfg.pair_mode)
    atomic_write_json(out / META_FILE, meta)
