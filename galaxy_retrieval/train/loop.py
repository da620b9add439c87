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
from ..errors import CheckpointError, GalaxyRetrievalError, TrainingDivergedError
from ..model.checkpoint import save_weights
from ..model.device import memory_format, train_autocast
from ..model.layout import HISTORY_FILE, LAST_DIR, PLOT_FILE, WEIGHTS_FILE
from ..model.preprocess import normalize
from ..paths import check_output_dir, first_missing, remove_created_dirs
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from .config import TrainConfig
from .pairs import make_pair_batch, other_positions, pair_loss
from .run_files import usage_meta, write_run_files
from .setup import Run, set_up
from .state import check_resumable, first_save_killed, has_run, load_train_state, save_train_state
from .validate import criterion, validate

__all__ = ["train", "TrainResult"]


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
    run = set_up(cfg, catalog, out, resume, discard_old, progress, t_start)
    p = _resume(run, progress) if resume else _Progress()
    p.stopped = "completed" if p.start_epoch < cfg.epochs else "nothing_to_do"
    steps_per_epoch = math.ceil(len(run.tr) / min(cfg.batch_size, len(run.tr)))
    last_epoch_s = 0.0
    run.model.train()
    for epoch in range(p.start_epoch, cfg.epochs):
        elapsed = time.perf_counter() - t_start
        if (
            cfg.time_budget_s is not None
            and epoch > p.start_epoch
            and elapsed + last_epoch_s > cfg.time_budget_s
        ):
            p.stopped = "time_budget"
            progress.log(
                f"stopping before epoch {epoch + 1}: it would end past the {cfg.time_budget_s:.0f} s budget"
            )
            break
        last_epoch_s = _epoch(run, p, epoch, steps_per_epoch, catalog, progress)
        if p.stopped == "early_stopping":
            progress.log(f"early stopping: no validation improvement for {cfg.patience} epochs")
            break
    run.model.eval()
    return TrainResult(
        out_dir=out,
        best_epoch=p.best_epoch,
        epochs_completed=len(p.history),
        best_val_loss=p.best_val,
        best_val_loose_acc=p.best_acc,
        history=p.history,
        seconds=time.perf_counter() - t_start,
        device=str(run.device),
        stopped=p.stopped,
        weights_sha256=p.best_sha,
        n_train=len(run.tr),
        n_val=len(run.va),
        resumed_from_epoch=p.start_epoch if resume else 0,
        score_weights=p.best_weights,
    )


def _check_out_dir(
    out: Path, cfg: TrainConfig, resume: bool, overwrite: bool, progress: Progress
) -> tuple[bool, bool]:
    """(resume, discard the old run) for ``out``; refuses what cannot go on before any data is read."""
    if first_save_killed(out):
        # nothing of that run can be resumed: it starts again, with or without resume
        progress.log(
            f"{out}: the first epoch's save was interrupted, so no epoch can be resumed; training starts from the beginning"
        )
        for name in (WEIGHTS_FILE, HISTORY_FILE, PLOT_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / (LAST_DIR + ".new"), ignore_errors=True)
        resume = False
    if resume:
        check_resumable(out, cfg)
    discard_old = not resume and has_run(out)
    if discard_old and not overwrite:
        raise CheckpointError(f"{out}: already holds a training run; resume it or overwrite it").resolved_by(
            "resume", "overwrite"
        )
    return resume, discard_old


def _resume(run: Run, progress: Progress) -> _Progress:
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
            raise CheckpointError(
                f"{run.out / LAST_DIR}: resume state has no learned score weights (score_logits)"
            )
        with torch.no_grad():
            run.theta.copy_(extra["score_logits"].to(run.theta.device, run.theta.dtype))
        p.best_weights = st.get("best_score_weights")
    if run.descriptor is not None and not run.descriptor.load_state_tensors(extra):
        raise CheckpointError(
            f"{run.out / LAST_DIR}: resume state has no descriptor head (descriptor_head.*)"
        )
    progress.log(
        f"resuming {run.out} after epoch {p.start_epoch} (best epoch {p.best_epoch}, val loss {p.best_val:.4f})"
    )
    return p


def _epoch(
    run: Run, p: _Progress, epoch: int, steps_per_epoch: int, catalog: Catalog, progress: Progress
) -> float:
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
    learned = (
        ""
        if run.theta is None
        else f", weights cos {epoch_w.cos:.3f} / L2 {epoch_w.l2:.3f} / L3 {epoch_w.l3:.3f}"
    )
    accs = ", ".join(
        f"loose@{b} {metrics[f'val_loose_acc@{b}']:.3f}"
        for b in (*cfg.loose_batch_sizes, "all")
        if metrics[f"val_loose_acc@{b}"] is not None
    )
    progress.log(
        f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val loss {metrics['val_loss']:.4f}, {accs}{learned}"
        f"{' (best)' if p.best_epoch == epoch + 1 else ''} [{epoch_s:.1f} s]"
    )
    state = p.state(cfg)
    extra_tensors = {"generator": run.g.get_state()}
    if run.theta is not None:
        extra_tensors["score_logits"] = run.theta.detach()
    if run.descriptor is not None:
        extra_tensors.update(run.descriptor.state_tensors())
    save_train_state(run.out, run.model, run.opt, extra_tensors, state)
    write_run_files(
        run.out,
        cfg,
        catalog,
        p.history,
        state,
        run.device,
        time.perf_counter() - run.t_start,
        len(run.tr),
        len(run.va),
    )
    return epoch_s


def _keep_if_best(
    run: Run, p: _Progress, epoch: int, metrics: dict[str, float | None], epoch_w: ScoreWeights
) -> None:
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


def _lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.lr_schedule == "cosine":
        t = (step - warm) / max(1.0, total - warm)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
    return cfg.lr


def _train_epoch(
    run: Run, epoch: int, step: int, steps_per_epoch: int, progress: Progress
) -> tuple[float, float, int, int]:
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
            batch = make_pair_batch(
                anchors, others, run.augmenter, g, cfg.pair_mode, cfg.save_computations, cfg.augment_anchors
            )
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, step, steps_per_epoch)
            x = normalize(batch.images, pre).contiguous(memory_format=layout)
            with train_autocast(device, run.precision):
                emb = run.embed_fn(x)  # one model call for every image of every pair
            w = cfg.score_weights if theta is None else torch.softmax(theta, dim=0)
            loss, acc = pair_loss(emb.float(), batch, w, cfg.margin, cfg.loss, cfg.temperature)
            if run.descriptor is not None:
                # anchors and their positives lead the batch in every pair mode (a partner
                # may be a negative when save_computations draws one per anchor)
                views = 1 if cfg.pair_mode == "paper" and cfg.save_computations else 2
                aux = run.descriptor.loss(emb, pos[: batch.n_anchors], views)
                loss = loss + cfg.descriptor_weight * aux
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
