"""What the manifest records about a built FAISS index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .spec import IndexSpec

__all__ = ["build_record"]


def build_record(
    out: Path,
    factory: str,
    spec: IndexSpec,
    why: str,
    build_s: float,
    train_s: float,
    ntotal: int,
    built_on_gpu: bool = False,
    merge_s: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What the manifest records about a built FAISS index (in RAM or on disk): ``extra``
    adds fields of its own kind, e.g. the on-disk lists file."""
    rec: dict[str, Any] = {
        "file": out.name,
        "factory": factory,
        "metric": spec.metric,
        "chosen_because": why,
        "spec": spec.to_dict(),
        "build_seconds": round(build_s, 3),
        "train_seconds": round(train_s, 3),
        "add_seconds": round(build_s - train_s - (merge_s or 0.0), 3),
        "built_on_gpu": built_on_gpu,
        "ntotal": ntotal,
    }
    if merge_s is not None:
        rec["merge_seconds"] = round(merge_s, 3)
    return {**rec, **extra}
