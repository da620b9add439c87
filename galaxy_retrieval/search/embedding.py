"""The model an index was embedded with, loaded on first use to embed query images.

The index's own copy (``model/`` inside it), or a checkpoint given instead, which must be the
one the index was built with (its weights' sha256 is in the manifest). Queries are embedded in
the precision the index's vectors were (its manifest's record), unless told otherwise
(:func:`~galaxy_retrieval.index.embed.index_precision`): a catalog image given as a query then
comes out as its stored vector, bf16 or not.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, QueryError
from ..index.embed import index_precision
from ..index.layout import MODEL_DIR
from ..index.manifest import Manifest

__all__ = ["IndexModel"]


class IndexModel:
    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        checkpoint: str | Path | None = None,
        precision: str | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.checkpoint = checkpoint
        self.precision = index_precision(manifest.model, precision)
        self._lock = threading.Lock()
        self._embedder: Any = None

    @property
    def embedder(self) -> Any:
        with self._lock:  # loaded once, however many threads ask first
            if self._embedder is None:
                self._embedder = self._load()
            return self._embedder

    def _load(self) -> Any:
        from ..model import load_checkpoint

        want = (self.manifest.model or {}).get("sha256")
        if self.checkpoint is not None:
            emb = load_checkpoint(self.checkpoint, precision=self.precision)
            if want and emb.sha256 != want:
                raise CheckpointError(
                    f"{self.checkpoint}: checkpoint does not match the index {self.path} "
                    f"(weights sha256 {emb.sha256[:12]}…, index built with {want[:12]}…)"
                )
            return emb
        model_dir = self.path / MODEL_DIR
        if not model_dir.is_dir():
            raise CheckpointError(
                f"{self.path}: index has no model copy (built from shards); give the checkpoint it was embedded with to embed query images"
            ).resolved_by("checkpoint")
        emb = load_checkpoint(model_dir, precision=self.precision)
        if want and emb.sha256 != want:
            raise CheckpointError(
                f"{model_dir}: model weights do not match the index manifest (sha256 {emb.sha256[:12]}… vs {want[:12]}…)"
            )
        return emb

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        """Embed images (paths or uint8 arrays) with the index's model: (B, D) float32."""
        from ..catalog.images import read_image, to_uint8_rgb

        arrays = []
        for im in images:
            if isinstance(im, (str, Path)):
                arrays.append(read_image(im))
            else:
                try:
                    arrays.append(to_uint8_rgb(np.asarray(im)))
                except ValueError as e:
                    raise QueryError(f"query image: {e}") from None
        return np.asarray(self.embedder.embed(arrays), dtype=np.float32)
