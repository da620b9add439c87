"""What a build makes and how (:class:`BuildConfig`), and what it reports (:class:`BuildResult`):
shared by the image build (:mod:`.build`), foreign embeddings (:mod:`.foreign`) and pipeline files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..ingest import IngestConfig
from ..score import ScoreWeights
from .candidates import IndexSpec
from .manifest import Manifest
from .ray_engine import ENGINES, RayConfig

__all__ = ["BuildConfig", "BuildResult"]


@dataclass(frozen=True)
class BuildConfig:
    dtype: str = "float32"  # storage of shards and vectors.npy: float32 | float16
    shard_rows: int = 8192
    batch_size: int = 128
    index: IndexSpec = field(default_factory=IndexSpec)
    # None: the checkpoint's (from shards: the source manifest's, else the paper's 1/3 each)
    score_weights: ScoreWeights | None = None
    overwrite: bool = False
    # who runs the embedding pass: "local" (this process) or "ray" (Ray Data actors, ray_engine.py);
    # both write the same shards, so either resumes the other's interrupted build
    engine: str = "local"
    ray: RayConfig | None = None  # with engine="ray"; None: a local Ray with one actor per CPU
    # image folders, local engine: the fast path (worker pool, reduced-size framing, box store);
    # None: every image decoded and framed in this process, as before
    ingest: IngestConfig | None = field(default_factory=IngestConfig)
    # the model's precision: "auto" is bf16 on CUDA and, for the polar model, on CPUs with native
    # bf16 (~2.3x faster embedding there), else fp32; resolved once by the driver (Ray actors
    # embed with the driver's, so both engines make the same vectors) and recorded in the
    # manifest, whose queries and adds then embed the same way
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}").resolved_by(
                "engine"
            )
        if isinstance(self.ingest, dict):  # a pipeline file's [build] ingest = {workers = 2, …}
            try:
                object.__setattr__(self, "ingest", IngestConfig(**self.ingest))
            except TypeError as e:
                raise ConfigError(f"build ingest: {e}") from None
        if self.ingest is not None and not isinstance(self.ingest, IngestConfig):
            raise ConfigError(f"ingest must be an IngestConfig or None, got {type(self.ingest).__name__}")
        if self.ray is not None and not isinstance(self.ray, RayConfig):
            raise ConfigError(f"ray must be a RayConfig or None, got {type(self.ray).__name__}")
        if self.score_weights is not None and not isinstance(self.score_weights, ScoreWeights):
            raise ConfigError(
                f"score_weights must be a ScoreWeights or None, got {type(self.score_weights).__name__}"
            )
        if self.precision != "auto":
            # the choices live beside torch, which an index's modules import only when they embed
            from ..model.device import PRECISIONS

            if self.precision not in PRECISIONS:
                raise ConfigError(
                    f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
                ).resolved_by("precision")
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"dtype must be float32 or float16, got {self.dtype!r}").resolved_by("dtype")
        if self.shard_rows < 1 or self.batch_size < 1:
            raise ConfigError(
                f"shard_rows ({self.shard_rows}) and batch_size ({self.batch_size}) must be ≥ 1"
            )


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: Manifest
    embedded_shards: int  # shards embedded by this run
    reused_shards: int  # shards found complete from an earlier, interrupted run
    skipped: list[tuple[int, str]]  # unreadable catalog images (with on_error="skip")
    seconds: dict[str, float]
    # the fast path's stage CPU seconds and box counts (None: not used)
    ingest: dict[str, Any] | None = None
