"""The training curves: loss and loose accuracy per epoch (the paper's Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_history"]


def plot_history(
    history: Sequence[dict[str, Any]], path: str | Path, title: str = "", pair_mode: str = "paper"
) -> None:
    """Write a two-panel PNG: train/val loss, and validation loose accuracy per batch size.

    The validation loss is always over the paper's pairs (one positive, one harsh negative
    per image); the training loss is over ``pair_mode``'s pairs, which the legend says."""
    # The Agg canvas directly, not pyplot: no global backend switch, no GUI, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..atomic import atomic_write_bytes

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> list[float]:
        return [float("nan") if h.get(key) is None else h[key] for h in history]

    ax_loss.plot(
        epochs, series("train_loss"), marker="o", ms=3, label=f"train ({pair_mode.replace('_', '-')} pairs)"
    )
    ax_loss.plot(epochs, series("val_loss"), marker="o", ms=3, label="validation (paper pairs)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("contrastive loss")
    ax_loss.set_title("Loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()

    acc_keys = sorted(
        {k for h in history for k in h if k.startswith("val_loose_acc@")},
        key=lambda k: (k.endswith("@all"), int(k.split("@")[1]) if not k.endswith("@all") else 0),
    )
    for k in acc_keys:
        b = k.split("@")[1]
        ax_acc.plot(epochs, series(k), marker="o", ms=3, label="whole split" if b == "all" else f"batch {b}")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("mini-search loose accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_title("Validation loose accuracy (§3.5)")
    ax_acc.grid(alpha=0.3)
    if acc_keys:
        ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
