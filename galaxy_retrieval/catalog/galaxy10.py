"""Galaxy10 DECaLS conventions (Leung 2017–2023): the ten class names, in ``ans`` order."""

from __future__ import annotations

__all__ = ["GALAXY10_CLASSES", "GALAXY10_SHORT"]

GALAXY10_CLASSES: tuple[str, ...] = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

#: short labels for mosaics and tables
GALAXY10_SHORT: tuple[str, ...] = (
    "disturbed",
    "merging",
    "round",
    "in-between",
    "cigar",
    "barred",
    "tight spiral",
    "loose spiral",
    "edge-on",
    "edge-on+bulge",
)
