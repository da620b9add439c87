"""What a query returns: ranked hits with the score, its three terms, and catalog metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Hit"]


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
