"""`ServeConfig`: what `gr serve` serves and how (index, key, limits)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeConfig"]

ENV = "GR_SERVE_"


@dataclass(frozen=True)
class ServeConfig:
    index: Path
    checkpoint: Path | None = None
    api_key: str | None = None  # when set, /api/ (but health) wants it in the X-API-Key header
    cors_origins: tuple[str, ...] = ()  # none: browsers allow only the page this server serves
    max_upload_bytes: int = 10 * 1024 * 1024
    thumbnail_cache: int = 1024  # PNGs kept in memory; a grid re-asks for the same ones
    explain_steps: int = 16  # integration steps: half the CLI's default, for an answer in seconds

    def to_env(self) -> dict[str, str]:
        """The config as environment variables: uvicorn's worker processes rebuild it from these."""
        env = {
            "INDEX": str(self.index),
            "MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            "CORS": ",".join(self.cors_origins),
        }
        if self.checkpoint:
            env["CHECKPOINT"] = str(self.checkpoint)
        if self.api_key:
            env["API_KEY"] = self.api_key
        return {ENV + k: v for k, v in env.items()}

    @classmethod
    def from_env(cls) -> ServeConfig:
        e = {k[len(ENV) :]: v for k, v in os.environ.items() if k.startswith(ENV)}
        return cls(
            index=Path(e["INDEX"]),
            checkpoint=Path(e["CHECKPOINT"]) if e.get("CHECKPOINT") else None,
            api_key=e.get("API_KEY") or None,
            cors_origins=tuple(o for o in e.get("CORS", "").split(",") if o),
            max_upload_bytes=int(e.get("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)),
        )
