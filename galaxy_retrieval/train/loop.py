"""The training loop (paper §3.4): setup, epochs, the best epoch's weights, resume.

Validation each epoch (§3.5) is :mod:`.validate`; the resume point :mod:`.state`; the files
beside the weights :mod:`.run_files`. Optionally learns the score's weights with the model
(``TrainConfig.learn_score_weights``, the paper's future work in §3.6) and trains on
source-suppressed images (``TrainConfig.suppress_sources``, its §5 future work)."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..catalog.base import Catalog
from ..errors import CatalogError, CheckpointError, GalaxyRetrievalError, TrainingDivergedError
from ..model.backbone import Backbone
from ..model.checkpoint import load_model, save_weights
from ..model.device import CPU_BF16_BACKBONES, pick_device, resolve_precision, train_autocast
from ..model.fusion import DescriptorFusion, fit_fusion
from ..model.layout import HISTORY_FILE, LAST_DIR, META_FILE, PLOT_FILE, WEIGHTS_FILE
from ..model.preprocess import normalize
from ..model.registry import create_model
from ..paths import check_output_dir, first_missing, remove_created_dirs
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights, weight_logits, weights_from_logits
from .augment import PairAugmenter
from .config import COMPILE_AUTO_MIN_IMAGES, TrainConfig
from .data import ImageStore
from .pairs import make_pair_batch, other_positions, pair_loss
from .run_files import usage_meta, write_run_files
from .splits import split_indices
from .state import check_resumable, first_save_killed, has_run, load_train_state, save_train_state
from .validate import ValSet, criterion, make_val_set, memory_format, validate

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


def train(
    cfg: TrainConfig,
    catalog: Catalog,
    out_dir: str | Path,
    progress: Progress = NULL_PROGRESS,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train a model (the config's backbone) label-free on ``catalog`` and write ``out_dir``
    (see :mod:`galaxy_retrieval.model.checkpoint`).

    The catalog is split 80/10/10 by ``cfg.seed`` (:func:`split_indices`); only the 80 %
    trains, the 10 % validation set picks the best epoch (``cfg.select_by``) and early
    stopping, the last 10 % is left for :func:`galaxy_retrieval.evaluate.evaluate`.
    ``resume=True`` continues ``out_dir/last`` up to ``cfg.epochs`` in total; otherwise an
    existing run there is an error unless ``overwrite=True``.

    With ``cfg.learn_score_weights`` the score's weights are softmax(θ), θ a parameter of
    its own (same learning rate, no weight decay); see :class:`TrainConfig`.

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


@dataclass
class _Run:
    """What one call of :func:`train` works with, set up by :func:`_set_up`."""

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

    def weights(self) -> ScoreWeights:
        return self.cfg.score_weights if self.theta is None else weights_from_logits(self.theta)


@dataclass
class _Progress:
    """Where the run stands: its history and best epoch so far (what the resume state keeps)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    best_val: float = math.inf
    best_crit: float = math.inf  # criterion() of the best epoch
    best_epoch: int = 0
    best_acc: dict[int, float] = field(default_factory=dict)
    best_sha: str = ""
    best_weights: dict[str, float] | None = None
    bad_epochs: int = 0
    step: int = 0
    stopped: str = "completed"

    def state(self, cfg: TrainConfig) -> dict[str, Any]:
        out = {
            "seed": cfg.seed,
            "epochs_completed": self.history[-1]["epoch"] if self.history else self.start_epoch,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
            "best_criterion": self.best_crit if math.isfinite(self.best_crit) else None,
            "best_val_loose_acc": {str(k): v for k, v in self.best_acc.items()},
            "best_sha256": self.best_sha,
            "bad_epochs": self.bad_epochs,
            "step": self.step,
            "stopped": self.stopped if self.stopped == "early_stopping" else None,
            "history": self.history,
        }
        if cfg.learn_score_weights:
            out["learn_score_weights"] = True
            out["best_score_weights"] = self.best_weights
        return out


def _train(
    cfg: TrainConfig, catalog: Catalog, out: Path, progress: Progress, resume: bool, overwrite: bool
) -> TrainResult:
    t_start = time.perf_counter()
    resume, discard_old = _check_out_dir(out, cfg, resume, overwrite, progress)
    run = _set_up(cfg, catalog, out, resume, discard_old, progress, t_start)
    p = _resume(run, progress) if resume else _Progress()
    p.stopped = "completed" if p.start_epoch < cfg.epochs else "nothing_to_do"
    steps_per_epoch = math.ceil(len(run.tr) / min(cfg.batch_size, len(run.tr)))
    last_epoch_s = 0.0
    run.model.train()
    for epoch in range(p.start_epoch, cfg.epochs):
        elapsed = time.perf_counter() - t_start
        if cfg.time_budget_s is not None and epoch > p.start_epoch and elapsed + last_epoch_s > cfg.time_budget_s:
            p.stopped = "time_budget"
            progress.log(f"stopping before epoch {epoch + 1}: it would end past the {cfg.time_budget_s:.0f} s budget")
            break
        last_epoch_s = _epoch(run, p, epoch, steps_per_epoch, catalog, progress)
        if p.stopped == "early_stopping":
            progress.log(f"early stopping: no validation improvement for {cfg.patience} epochs")
            break
    run.model.eval()
    return TrainResult(
        out_dir=out, best_epoch=p.best_epoch, epochs_completed=len(p.history), best_val_loss=p.best_val,
        best_val_loose_acc=p.best_acc, history=p.history, seconds=time.perf_counter() - t_start,
        device=str(run.device), stopped=p.stopped, weights_sha256=p.best_sha, n_train=len(run.tr),
        n_val=len(run.va), resumed_from_epoch=p.start_epoch if resume else 0, score_weights=p.best_weights,
    )


def _check_out_dir(out: Path, cfg: TrainConfig, resume: bool, overwrite: bool, progress: Progress) -> tuple[bool, bool]:
    """(resume, discard the old run) for ``out``; refuses what cannot go on before any data is read."""
    if first_save_killed(out):
        # nothing of that run can be resumed: it starts again, with or without resume
        progress.log(f"{out}: the first epoch's save was interrupted, so no epoch can be resumed; training starts from the beginning")
        for name in (WEIGHTS_FILE, HISTORY_FILE, PLOT_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / (LAST_DIR + ".new"), ignore_errors=True)
        resume = False
    if resume:
        check_resumable(out, cfg)
    discard_old = not resume and has_run(out)
    if discard_old and not overwrite:
        raise CheckpointError(f"{out}: already holds a training run; resume it or overwrite it").resolved_by("resume", "overwrite")
    return resume, discard_old


def _set_up(
    cfg: TrainConfig, catalog: Catalog, out: Path, resume: bool, discard_old: bool, progress: Progress, t_start: float
) -> _Run:
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
    opt, theta = _optimizer(model, cfg, device)
    embed_fn = model.embed
    if _use_compile(cfg, len(tr)):
        # the training forward only: validation runs eager (eval-mode batch norm would be a
        # second graph to compile for a few seconds of work per epoch)
        embed_fn = torch.compile(model.embed)
    progress.log(f"precision {precision}{', channels-last' if memory_format(precision, device) == torch.channels_last else ''}"
                 f"{', torch.compile' if embed_fn is not model.embed else ''}")
    return _Run(cfg, out, device, precision, model, embed_fn, opt, theta, g, augmenter, tr, va, val, fusion, t_start)


def _resume(run: _Run, progress: Progress) -> _Progress:
    """The progress recorded in ``last/``, whose weights, optimiser and RNG state it restores."""
    extra, st = load_train_state(run.out, run.model, run.opt)
    best_val = float(st["best_val_loss"]) if st.get("best_val_loss") is not None else math.inf
    p = _Progress(
        history=list(st.get("history", [])),
        start_epoch=int(st["epochs_completed"]),
        best_val=best_val,
        # runs from before select_by existed selected by the validation loss
        best_crit=float(st["best_criterion"]) if st.get("best_criterion") is not None else best_val,
        best_epoch=int(st.get("best_epoch", 0)),
        best_sha=st.get("best_sha256", ""),
        best_acc={int(k): v for k, v in (st.get("best_val_loose_acc") or {}).items()},
        bad_epochs=0 if st.get("stopped") == "early_stopping" else int(st.get("bad_epochs", 0)),
        step=int(st.get("step", 0)),
    )
    if "generator" in extra:
        run.g.set_state(extra["generator"])
    if run.theta is not None:
        if "score_logits" not in extra:
            raise CheckpointError(f"{run.out / LAST_DIR}: resume state has no learned score weights (score_logits)")
        with torch.no_grad():
            run.theta.copy_(extra["score_logits"].to(run.theta.device, run.theta.dtype))
        p.best_weights = st.get("best_score_weights")
    progress.log(f"resuming {run.out} after epoch {p.start_epoch} (best epoch {p.best_epoch}, val loss {p.best_val:.4f})")
    return p


def _epoch(run: _Run, p: _Progress, epoch: int, steps_per_epoch: int, catalog: Catalog, progress: Progress) -> float:
    """Train and validate one epoch, keep its weights if it is the best so far, write the
    resume point and the run files; return its seconds."""
    cfg = run.cfg
    t_epoch = time.perf_counter()
    loss_sum, acc_sum, seen, p.step = _train_epoch(run, epoch, p.step, steps_per_epoch, progress)
    epoch_w = run.weights()
    metrics = validate(run.model, run.val, cfg, run.device, epoch_w, run.precision)
    epoch_s = time.perf_counter() - t_epoch
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(1, seen),
        "train_pair_acc": acc_sum / max(1, seen),
        **metrics,
        "lr": run.opt.param_groups[0]["lr"],
        "seconds": round(epoch_s, 3),
    }
    if run.theta is not None:
        row.update(w_cos=epoch_w.cos, w_l2=epoch_w.l2, w_l3=epoch_w.l3)
    p.history.append(row)
    _keep_if_best(run, p, epoch, metrics, epoch_w)
    if p.bad_epochs >= cfg.patience:
        p.stopped = "early_stopping"
    learned = "" if run.theta is None else f", weights cos {epoch_w.cos:.3f} / L2 {epoch_w.l2:.3f} / L3 {epoch_w.l3:.3f}"
    accs = ", ".join(
        f"loose@{b} {metrics[f'val_loose_acc@{b}']:.3f}" for b in (*cfg.loose_batch_sizes, "all") if metrics[f"val_loose_acc@{b}"] is not None
    )
    progress.log(
        f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val loss {metrics['val_loss']:.4f}, {accs}{learned}"
        f"{' (best)' if p.best_epoch == epoch + 1 else ''} [{epoch_s:.1f} s]"
    )
    state = p.state(cfg)
    extra_tensors = {"generator": run.g.get_state()}
    if run.theta is not None:
        extra_tensors["score_logits"] = run.theta.detach()
    save_train_state(run.out, run.model, run.opt, extra_tensors, state)
    write_run_files(run.out, cfg, catalog, p.history, state, run.device, time.perf_counter() - run.t_start, len(run.tr), len(run.va))
    return epoch_s


def _keep_if_best(run: _Run, p: _Progress, epoch: int, metrics: dict[str, float | None], epoch_w: ScoreWeights) -> None:
    """Write the epoch's weights as the run's best when it beats the best so far (or no
    epoch was kept yet); count the epochs without improvement for early stopping."""
    crit = criterion(metrics, run.cfg)
    improved = math.isfinite(crit) and crit < p.best_crit
    if not improved and (run.out / WEIGHTS_FILE).exists():
        p.bad_epochs += 1
        return
    if improved:
        p.best_crit, p.bad_epochs = crit, 0
    vl = metrics["val_loss"]
    p.best_val = vl if vl is not None else math.inf
    p.best_epoch = epoch + 1
    p.best_acc = {b: metrics[f"val_loose_acc@{b}"] for b in run.cfg.loose_batch_sizes}
    p.best_weights = None if run.theta is None else epoch_w.to_dict()
    p.best_sha = save_weights(run.out / WEIGHTS_FILE, run.model, usage_meta(p.best_weights, run.fusion))


def _use_compile(cfg: TrainConfig, n_train: int) -> bool:
    if cfg.compile != "auto":
        return cfg.compile == "on"
    if cfg.model_config().backbone not in CPU_BF16_BACKBONES:
        return False  # the ViT measured no faster compiled (benchmarks/train_speed.py)
    views = 2 if cfg.pair_mode == "in_batch" else 3
    return cfg.epochs * n_train * views >= COMPILE_AUTO_MIN_IMAGES


def _lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.lr_schedule == "cosine":
        t = (step - warm) / max(1.0, total - warm)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
    return cfg.lr


def _image_stores(cfg: TrainConfig, catalog: Catalog, progress: Progress) -> tuple[ImageStore, ImageStore]:
    """The training and validation images of the seed's split, framed and suppressed as the
    model will see them (preloaded when they fit)."""
    mcfg = cfg.model_config()
    if len(catalog) < 3:  # named here: split_indices knows the count, not the file
        raise CatalogError(f"{catalog.path}: holds {len(catalog)} objects; training needs at least 3 (train/val/test split)")
    train_rows, val_rows, _ = split_indices(len(catalog), cfg.seed)
    progress.log(f"split {len(train_rows)} train / {len(val_rows)} val / {len(catalog) - len(train_rows) - len(val_rows)} test")
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


def _train_epoch(run: _Run, epoch: int, step: int, steps_per_epoch: int, progress: Progress) -> tuple[float, float, int, int]:
    """One pass over the training images in a random order. Returns (loss sum, pair-accuracy
    sum, images seen, the optimiser step count after the epoch)."""
    cfg, tr, g, device, opt, theta = run.cfg, run.tr, run.g, run.device, run.opt, run.theta
    pre = run.model.config.preprocessing
    n = len(tr)
    bsz = min(cfg.batch_size, n)
    perm = torch.randperm(n, generator=g)
    loss_sum, acc_sum, seen = 0.0, 0.0, 0
    # progress counts pairs in paper mode, images (each against the whole batch) in in_batch mode
    per_image = 1 if cfg.pair_mode == "in_batch" or cfg.save_computations else 2
    unit = "img" if cfg.pair_mode == "in_batch" else "pair"
    layout = memory_format(run.precision, device)
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
            batch = make_pair_batch(anchors, others, run.augmenter, g, cfg.pair_mode, cfg.save_computations, cfg.augment_anchors)
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, step, steps_per_epoch)
            x = normalize(batch.images, pre).contiguous(memory_format=layout)
            with train_autocast(device, run.precision):
                emb = run.embed_fn(x)  # one model call for every image of every pair
            w = cfg.score_weights if theta is None else torch.softmax(theta, dim=0)
            loss, acc = pair_loss(emb.float(), batch, w, cfg.margin, cfg.loss, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise TrainingDivergedError(
                    f"{run.out}: training loss became {lv} at epoch {epoch + 1}, step {step}; "
                    f"lower the learning rate (now {cfg.lr:g}) or clip gradients"
                )
            k = len(anchors)
            loss_sum += lv * k
            acc_sum += acc * k
            seen += k
            t.advance(k * per_image)
            t.update(loss=loss_sum / seen, acc=acc_sum / seen)
    return loss_sum, acc_sum, seen, step


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
    f = fit_fusion((tr.get(torch.arange(lo, min(n, lo + 512))).float() / 255.0 for lo in range(0, n, 512)), share=float(cfg.fusion_share))
    progress.log(f"descriptor fusion: polar Fourier ({f.dim} components, share {f.share:g}) standardised over {n} training images")
    return f
