"""Images → embedding vectors, for the index builder, the searcher and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_model, weights_sha256
from .config import ViTConfig
from .device import autocast_for, pick_device
from .preprocess import images_to_float, normalize
from .vit import GalaxIDNetViT

__all__ = ["Embedder", "load_checkpoint"]


class Embedder:
    """A model in inference mode on a device, with its identity for index manifests.

    ``embed(images)`` takes uint8 images of any size (an (B, H, W, 3) array or a list of
    (H, W, 3) arrays), preprocesses them exactly as training did (``preprocess.py``), runs
    one batched model call per chunk of ``batch_size`` and returns float32 (B, dim).
    """

    def __init__(
        self,
        model: GalaxIDNetViT,
        *,
        device: str | torch.device | None = "auto",
        sha256: str | None = None,
        meta: dict[str, Any] | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self._sha256 = sha256
        self.meta = meta or {}
        self.path = None if path is None else str(path)

    @classmethod
    def from_model(
        cls, model: GalaxIDNetViT, *, device: str | torch.device | None = "auto", meta: dict[str, Any] | None = None
    ) -> "Embedder":
        """Wrap an in-memory model (tests, untrained baselines); sha256 is that of its weights."""
        return cls(model, device=device, meta=meta)

    @property
    def dim(self) -> int:
        return self.model.config.out_dim

    @property
    def model_config(self) -> ViTConfig:
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
        }

    @torch.inference_mode()
    def embed_float(self, x01: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """[0, 1] float images already at the model's input size (B, 3, S, S) → (B, dim)."""
        out = np.empty((x01.shape[0], self.dim), dtype=np.float32)
        for lo in range(0, x01.shape[0], batch_size):
            x = normalize(x01[lo : lo + batch_size].to(self.device, torch.float32), self.model_config)
            with autocast_for(self.device):
                e = self.model.embed(x)
            out[lo : lo + len(x)] = e.float().cpu().numpy()
        return out

    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """uint8 images of any size → float32 (B, dim)."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        n = len(images)
        out = np.empty((n, self.dim), dtype=np.float32)
        for lo in range(0, n, batch_size):
            x01 = images_to_float(images[lo : lo + batch_size], self.model_config.image_size, self.device)
            out[lo : lo + len(x01)] = self.embed_float(x01, batch_size)
        return out

    def __repr__(self) -> str:
        return f"Embedder(preset={self.model_config.name!r}, dim={self.dim}, device={self.device}, sha256={self.sha256[:12]}…)"


def load_checkpoint(
    path: str | Path, *, device: str | torch.device | None = "auto", expect: ViTConfig | str | None = None
) -> Embedder:
    """Open a run directory (``runs/NAME``) or a ``model.safetensors`` file as an :class:`Embedder`.

    Raises :class:`~galaxy_retrieval.errors.CheckpointError` naming the file when it is
    missing, corrupt, or (with ``expect``) of another preset or shape."""
    model, meta, weights, sha = load_model(path, expect=expect)
    return Embedder(model, device=device, sha256=sha, meta=meta, path=weights)
