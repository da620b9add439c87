"""How image files become model inputs on the fast path (:mod:`galaxy_retrieval.ingest`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..framing import MEASURE_SIDE

__all__ = ["IngestConfig", "default_box_dir", "BOX_DIR_ENV"]

#: where the framing boxes of every catalog are kept (``off``: nowhere, measure every time)
BOX_DIR_ENV = "GALAXY_RETRIEVAL_BOXES"


def _usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_box_dir() -> Path | None:
    """``$GALAXY_RETRIEVAL_BOXES``, else the ``framing-boxes`` folder of the package's cache
    (:func:`~galaxy_retrieval.paths.cache_dir`: ``~/.cache/galaxy-retrieval``). One store for
    every command, so ``gr train``, ``gr evaluate``, ``gr build-index`` and ``gr add`` on the
    same files measure each image once: keyed by the file's content and the framing setting,
    the store holds nothing a command could get wrong by reusing it."""
    from ..paths import cache_dir

    env = os.environ.get(BOX_DIR_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "0") else Path(env)
    return cache_dir("framing-boxes")


@dataclass(frozen=True)
class IngestConfig:
    """Settings of the path from image files to model inputs.

    ``workers``: processes decoding and framing while this process embeds (None: one per
    usable CPU; 0: everything in this process). ``measure_side``: ``auto`` framing measures
    the central source at the scale :func:`~galaxy_retrieval.framing.measure_scale` picks
    for this side (the largest power-of-two reduction keeping the shorter side at least this
    many pixels), on a JPEG decoded at 1/4 or 1/8 scale where that is the reduction, else on
    the full decode binned (0: exactly the in-memory path's
    :func:`~galaxy_retrieval.framing.frame_box`). The default is framing's own
    :data:`~galaxy_retrieval.framing.MEASURE_SIDE`: a 128-px cutout is measured at 64 px,
    binned, the box the in-memory path gives; a 424-px one at 106 px from a 1/4 decode (a
    small source on the full decode, as in memory), its box the in-memory one (binned from
    the full decode) for 62 % of GZ2 cutouts, its side within 6 % for 95 %.
    The crop itself is always cut from the full-resolution decode, so a vector is the one
    the in-memory path gives for the same box. ``boxes``: the box store's directory
    ("auto": :func:`default_box_dir`; None: no store). ``chunk``: images per worker task.
    ``model_batch``: images per model call (small batches stay in the CPU's cache: the
    polar model is ~1.5× faster per image at 32 than at 128). ``embed_in_workers``: on the
    CPU, each worker also embeds its chunk (one model call of ``chunk`` images), so every
    core runs every stage and none waits for the one that embeds; on a GPU (or without
    fork) the workers prepare and this process embeds, ``model_batch`` at a time."""

    workers: int | None = None
    measure_side: int = MEASURE_SIDE
    boxes: str | Path | None = "auto"
    chunk: int = 32
    model_batch: int = 32
    embed_in_workers: bool = True

    def __post_init__(self) -> None:
        for name in ("workers", "measure_side", "chunk", "model_batch"):
            v = getattr(self, name)
            if v is None and name == "workers":
                continue
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (0 if name in ("workers", "measure_side") else 1)
            ):
                raise ConfigError(
                    f"ingest {name}={v!r} must be an integer ≥ {0 if name in ('workers', 'measure_side') else 1}"
                )
        if not isinstance(self.embed_in_workers, bool):
            raise ConfigError(f"ingest embed_in_workers={self.embed_in_workers!r} must be true or false")
        if self.measure_side and self.measure_side < 32:
            raise ConfigError(
                f"ingest measure_side={self.measure_side} is too small to measure a galaxy on; use ≥ 32, or 0 for full size"
            )

    def pool_size(self) -> int:
        return _usable_cpus() if self.workers is None else self.workers

    def embed_threads(self) -> int:
        """Threads of the model call while the workers run: the cores they leave, at least
        one. Two threads on a core a worker also wants make OpenMP spin and the model stall
        (measured: 5–10× slower embedding on a busy 2-core machine)."""
        n = self.pool_size()
        return max(1, _usable_cpus() - n) if n else _usable_cpus()

    def box_dir(self) -> Path | None:
        if self.boxes is None:
            return None
        if isinstance(self.boxes, str) and self.boxes == "auto":
            return default_box_dir()
        return Path(self.boxes)

    def to_dict(self) -> dict:
        """What decides the vectors (recorded in a build's state): not where boxes are kept."""
        return {
            "measure_side": self.measure_side,
            "model_batch": self.model_batch,
            "chunk": self.chunk,
            "embed_in_workers": self.embed_in_workers,
        }
