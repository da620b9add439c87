"""What a query returns: ranked hits with the score, its three terms, and catalog metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Hit", "SkyHits"]


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    object_id: str
    row: int  # position in the source catalog
    score: float  # w1·cos + w2·inv_l2 + w3·inv_l3
    cos: float
    inv_l2: float  # 1 / (1 + ‖a − b‖₂)
    inv_l3: float  # 1 / (1 + ‖a − b‖₃)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> Any:
        return self.metadata.get("label")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkyHits:
    """The answer to a query by sky position: the neighbours of the catalog object found
    there, or, with none within the radius, of the survey cutout fetched at the position."""

    hits: list[Hit]
    ra: float
    dec: float
    object_id: str | None  # the catalog object queried with; None when a cutout was fetched
    separation_arcsec: float | None  # of that object from (ra, dec)
    cutout: Path | None = None  # the fetched cutout, when one was used
    why_fetched: str | None = None  # why the catalog had no answer (no object near, no ra/dec)

    def describe(self) -> str:
        if self.object_id is not None:
            return f"object {self.object_id} ({self.separation_arcsec:.1f}\" from RA {self.ra:g}, Dec {self.dec:g})"
        return f"cutout at RA {self.ra:g}, Dec {self.dec:g} ({self.cutout})"
