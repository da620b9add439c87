"""What a training run writes beside its weights: ``checkpoint.json``, the history and its plot,
and what the best weights file itself records (see :mod:`galaxy_retrieval.model.checkpoint`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_json
from ..catalog.base import Catalog
from ..model.fusion import DescriptorFusion
from ..model.layout import FORMAT_VERSION, HISTORY_FILE, KIND, META_FILE, PLOT_FILE
from ..version import __version__
from ..viz.curves import plot_history
from .config import TrainConfig

__all__ = ["usage_meta", "write_run_files"]


def usage_meta(
    best_weights: dict[str, float] | None, fusion: DescriptorFusion | None = None
) -> dict[str, Any] | None:
    """What the best weights file itself records about how to use the model, beyond its
    config (which holds the preprocessing): the descriptor fusion, learned score weights."""
    meta: dict[str, Any] = {}
    if fusion is not None:
        meta["fusion"] = fusion.to_dict()
    if best_weights is not None:
        meta["score_weights"] = best_weights
    return meta or None


def write_run_files(
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
        "kind": KIND,
        "package_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
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
    plot_history(
        history,
        out / PLOT_FILE,
        title=f"{cfg.model_config().name} on {Path(catalog.path).name}",
        pair_mode=cfg.pair_mode,
    )
    atomic_write_json(out / META_FILE, meta)
