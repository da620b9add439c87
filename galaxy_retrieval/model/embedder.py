"""Images → embedding vectors, for the index builder, the searcher and evaluation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from ..score import ScoreWeights
from ..suppress import SuppressConfig
from .backbone import Backbone
from .checkpoint import load_model, weights_sha256
from .config import ModelConfig
from .device import autocast_for, memory_format, pick_device, resolve_precision
from .fusion import DescriptorFusion
from .preprocess import Preprocessing

__all__ = ["Embedder", "load_checkpoint", "FROM_CHECKPOINT"]

#: ``suppress=FROM_CHECKPOINT``: do what the checkpoint's training did (the default)
FROM_CHECKPOINT = "checkpoint"
SuppressChoice = SuppressConfig | None | str


def _checkpoint_fusion(meta: dict[str, Any], where: str | None) -> DescriptorFusion | None:
    raw = meta.get("fusion")
    return None if raw is None else DescriptorFusion.from_dict(raw, where)


def _checkpoint_weights(meta: dict[str, Any], where: str | None) -> ScoreWeights:
    raw = meta.get("score_weights") or (meta.get("train") or {}).get("score_weights")
    if not raw:
        return ScoreWeights()
    try:
        return ScoreWeights.from_dict(raw)
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where or 'checkpoint'}: invalid score_weights {raw!r} ({e})") from None


class Embedder:
    """A model in inference mode on a device, with its identity for index manifests.

    ``embed(images)`` takes uint8 images of any size (an (B, H, W, 3) array or a list of
    (H, W, 3) arrays), preprocesses them exactly as training did (``preprocess.py``), runs
    one batched model call per chunk of ``batch_size`` and returns float32 (B, dim).

    Two things of the checkpoint's training travel with it:

    - :attr:`preprocessing`: the model config's (:class:`~.preprocess.Preprocessing`); when
      training suppressed the sources around the central galaxy, ``embed`` does the same
      to its images first (:attr:`suppress`). ``suppress=`` overrides that step (a
      :class:`SuppressConfig`, or None for off). ``embed_float`` takes images already at
      model size and never suppresses.
    - :attr:`score_weights`: the weights the model was trained to be scored with (learned
      ones when the run learned them), the default of evaluation and index building.

    ``precision`` (``auto``, ``fp32``, ``bf16``) is resolved once, by the rule training uses
    (:func:`~.device.resolve_precision`): ``auto`` is bf16 autocast on CUDA and, for the polar
    backbone, on CPUs with native bf16 (AMX, AVX512-BF16), where the polar model embeds
    ~2.3-3× faster with unit vectors within cosine 0.9995 of float32's on real cutouts; float32 elsewhere
    and for the ViT presets. bf16 on the CPU also puts the model and its inputs in
    channels-last (~10 % faster there). ``fp32`` gives exactly the vectors of float32
    inference. :attr:`precision` is the resolved one, recorded in :meth:`manifest_info`.
    The model is moved, put in eval mode and (for bf16 on the CPU) changed to channels-last
    in place.
    """

    def __init__(
        self,
        model: Backbone,
        *,
        device: str | torch.device | None = "auto",
        sha256: str | None = None,
        meta: dict[str, Any] | None = None,
        path: str | Path | None = None,
        suppress: SuppressChoice = FROM_CHECKPOINT,
        fusion: DescriptorFusion | None | str = FROM_CHECKPOINT,
        precision: str = "auto",
    ) -> None:
        self.device = pick_device(device)
        self.precision = resolve_precision(precision, self.device, model.config.backbone)
        if self.precision == "bf16" and self.device.type not in ("cuda", "cpu"):
            raise ConfigError(
                f"precision bf16 embeds on CUDA or the CPU, not on {self.device.type}; use fp32 or auto"
            )
        self._layout = memory_format(self.precision, self.device)
        self.model = model.to(self.device).to(memory_format=self._layout).eval()
        self._sha256 = sha256
        self.meta = meta or {}
        self.path = None if path is None else str(path)
        self._score_weights = _checkpoint_weights(self.meta, self.path)
        if isinstance(fusion, str):
            if fusion != FROM_CHECKPOINT:
                raise ConfigError(
                    f"fusion={fusion!r}; give a DescriptorFusion, None (off) or {FROM_CHECKPOINT!r}"
                )
            self._fusion = _checkpoint_fusion(self.meta, self.path)
        else:
            self._fusion = fusion
        if isinstance(suppress, str):
            if suppress != FROM_CHECKPOINT:
                raise ConfigError(
                    f"suppress={suppress!r}; give a SuppressConfig, None (off) or {FROM_CHECKPOINT!r}"
                )
        elif suppress is not None and not isinstance(suppress, SuppressConfig):
            raise ConfigError(
                f"suppress must be a SuppressConfig, None or {FROM_CHECKPOINT!r}, got {type(suppress).__name__}"
            )
        self._suppress: SuppressChoice = suppress

    @classmethod
    def from_model(
        cls,
        model: Backbone,
        *,
        device: str | torch.device | None = "auto",
        meta: dict[str, Any] | None = None,
        suppress: SuppressChoice = FROM_CHECKPOINT,
        precision: str = "auto",
    ) -> Embedder:
        """Wrap an in-memory model (tests, untrained baselines); sha256 is that of its weights."""
        return cls(model, device=device, meta=meta, suppress=suppress, precision=precision)

    @property
    def dim(self) -> int:
        return self.model.config.out_dim + (0 if self._fusion is None else self._fusion.dim)

    @property
    def fusion(self) -> DescriptorFusion | None:
        """The classical descriptor appended to every vector (:mod:`.fusion`), or None."""
        return self._fusion

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = weights_sha256(self.model)
        return self._sha256

    @property
    def train_config(self) -> dict[str, Any] | None:
        """The training config stored with the checkpoint (None for an in-memory model)."""
        return self.meta.get("train")

    @property
    def score_weights(self) -> ScoreWeights:
        """The checkpoint's score weights: the learned ones (``meta["score_weights"]``) if the
        run learned them, else its training config's, else the paper's 1/3 each."""
        return self._score_weights

    @property
    def preprocessing(self) -> Preprocessing:
        """What ``embed`` does to images before the model (the checkpoint's, with the
        suppression given to the constructor when one was)."""
        pre = self.model_config.preprocessing
        return pre if isinstance(self._suppress, str) else replace(pre, suppress=self._suppress)

    @property
    def suppress(self) -> SuppressConfig | None:
        """Source suppression ``embed`` applies (the checkpoint's unless overridden), or None."""
        return self.preprocessing.suppress

    def manifest_info(self) -> dict[str, Any]:
        """What an index manifest records about the model that produced its vectors."""
        return {
            "preset": self.model_config.name,
            "config": self.model_config.to_dict(),
            "sha256": self.sha256,
            "path": self.path,
            "embedding_dim": self.dim,
            "pooling": "mean over patch outputs",
            "format_version": self.meta.get("format_version"),
            "package_version": self.meta.get("package_version"),
            "training": self.meta.get("summary"),
            "score_weights": self.score_weights.to_dict(),
            "suppress_sources": None if self.suppress is None else self.suppress.to_dict(),
            "fusion": None
            if self._fusion is None
            else {
                "descriptor": self._fusion.descriptor,
                "share": self._fusion.share,
                "dim": self._fusion.dim,
            },
            # how the vectors were computed: queries and adds of the index embed the same way
            "precision": self.precision,
        }

    @torch.inference_mode()
    def embed_float(self, x01: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """[0, 1] float images already at the model's input size (B, 3, S, S) → (B, dim)."""
        out = np.empty((x01.shape[0], self.dim), dtype=np.float32)
        for lo in range(0, x01.shape[0], batch_size):
            x = self.preprocessing.normalize(x01[lo : lo + batch_size].to(self.device, torch.float32))
            x = x.contiguous(memory_format=self._layout)
            with autocast_for(self.device, self.precision):
                e = self.model.embed(x).float().cpu().numpy()
            if self._fusion is not None:
                e = self._fusion.apply(e, x01[lo : lo + batch_size])
            out[lo : lo + len(x)] = e
        return out

    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """uint8 images of any size → float32 (B, dim); sources suppressed first when :attr:`suppress`."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        n = len(images)
        out = np.empty((n, self.dim), dtype=np.float32)
        for lo in range(0, n, batch_size):
            x01 = self.preprocessing.to_float(images[lo : lo + batch_size], self.device)
            out[lo : lo + len(x01)] = self.embed_float(x01, batch_size)
        return out

    def __repr__(self) -> str:
        sup = ", suppress=on" if self.suppress is not None else ""
        return f"Embedder(preset={self.model_config.name!r}, dim={self.dim}, device={self.device}, precision={self.precision}{sup}, sha256={self.sha256[:12]}…)"


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device | None = "auto",
    expect: ModelConfig | str | None = None,
    suppress: SuppressChoice = FROM_CHECKPOINT,
    fusion: DescriptorFusion | None | str = FROM_CHECKPOINT,
    precision: str = "auto",
) -> Embedder:
    """Open a run directory (``runs/NAME``) or a ``model.safetensors`` file as an :class:`Embedder`.

    ``suppress``: source suppression of ``embed`` — the checkpoint's training setting by
    default, or a :class:`SuppressConfig`, or None (off) to override it. ``precision``:
    ``auto`` (bf16 where it is native and faster, see :class:`Embedder`), ``fp32`` or ``bf16``.
    Raises :class:`~galaxy_retrieval.errors.CheckpointError` naming the file when it is
    missing, corrupt, or (with ``expect``) of another preset or shape."""
    model, meta, weights, sha = load_model(path, expect=expect)
    return Embedder(
        model,
        device=device,
        sha256=sha,
        meta=meta,
        path=weights,
        suppress=suppress,
        fusion=fusion,
        precision=precision,
    )
