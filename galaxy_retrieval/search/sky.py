"""Nearest catalog object to a sky position."""

from __future__ import annotations

import numpy as np

from ..catalog.columns import coordinates
from ..errors import QueryError

__all__ = ["angular_separation_arcsec", "nearest_on_sky", "check_position", "coordinates"]


def angular_separation_arcsec(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Great-circle separation (haversine: accurate at arcsecond scales) in arcseconds."""
    r0, d0 = np.radians(ra0), np.radians(dec0)
    r, d = np.radians(ra), np.radians(dec)
    h = np.sin((d - d0) / 2) ** 2 + np.cos(d0) * np.cos(d) * np.sin((r - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0


def check_position(ra0: float, dec0: float) -> None:
    """Raise :class:`QueryError` unless (ra0, dec0) is a sky position in degrees."""
    if not (np.isfinite(ra0) and 0.0 <= ra0 < 360.0):
        raise QueryError(f"RA {ra0:g} out of range: expected degrees in [0, 360)")
    if not (np.isfinite(dec0) and -90.0 <= dec0 <= 90.0):
        raise QueryError(f"Dec {dec0:g} out of range: expected degrees in [-90, 90]")


def nearest_on_sky(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray, radius_arcsec: float) -> tuple[int, float]:
    """Position of the nearest object within ``radius_arcsec`` and its separation."""
    check_position(ra0, dec0)
    if not radius_arcsec > 0:  # NaN too: every comparison with it is false, so it matched anything
        raise QueryError(f"radius {radius_arcsec} arcsec must be a number > 0").resolved_by("radius")
    sep = angular_separation_arcsec(ra0, dec0, ra, dec)
    sep = np.where(np.isfinite(sep), sep, np.inf)
    i = int(np.argmin(sep))
    if not np.isfinite(sep[i]) or sep[i] > radius_arcsec:
        nearest = "no object has coordinates" if not np.isfinite(sep[i]) else f"the nearest is {sep[i]:.1f} arcsec away"
        raise QueryError(f"no catalog object within {radius_arcsec:g} arcsec of RA {ra0:g}, Dec {dec0:g} ({nearest}; widen the radius)").resolved_by("radius")
    return i, float(sep[i])
