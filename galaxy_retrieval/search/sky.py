"""Sky positions: any form astronomers write one in (astropy ``SkyCoord``), and the catalog
object nearest to it (astropy's KD-tree match, built once per opened index).

    parse_sky(150.05, 2.154)                  # degrees
    parse_sky("09h52m12s +02d09m15s")         # sexagesimal, one string
    parse_sky("09:52:12", "+02:09:15")        # RA in hours when written with colons/h/spaces
    parse_sky(SkyCoord(l=236.8, b=42.1, unit="deg", frame="galactic"))  # any frame → ICRS
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..catalog.columns import coordinates
from ..errors import QueryError

__all__ = ["angular_separation_arcsec", "check_position", "parse_sky", "SkyMatcher", "coordinates", "spread"]

_FORMS = "degrees (150.05 2.154) or sexagesimal (09h52m12s +02d09m15s, 09:52:12 +02:09:15)"


def angular_separation_arcsec(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Great-circle separation (haversine: accurate at arcsecond scales) in arcseconds; for
    the few positions of one hit list (min-separation), where a SkyCoord costs more than it saves."""
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


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _is_hours(ra_text: str) -> bool:
    # "09:52:12", "09h52m12s", "09 52 12": hours, as catalogs write RA; a plain number: degrees
    t = ra_text.strip().lower()
    return ":" in t or "h" in t or len(t.split()) > 1


def parse_sky(ra: Any, dec: Any = None) -> Any:
    """An ICRS ``SkyCoord`` from a SkyCoord (any frame), one string holding both coordinates,
    or RA and Dec as numbers (degrees) or strings. Raises :class:`QueryError` naming the input."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if isinstance(ra, SkyCoord):
        if dec is not None:
            raise QueryError("give a SkyCoord alone, not with a separate Dec")
        if not ra.isscalar:
            raise QueryError(f"a sky query is one position, got a SkyCoord of {len(ra)}")
        return ra.icrs
    if dec is None and isinstance(ra, str):
        parts = ra.replace(",", " ").split()
        nums = [_number(p) for p in parts]
        if len(parts) == 2 and None not in nums:
            check_position(nums[0], nums[1])  # type: ignore[arg-type]
            return SkyCoord(nums[0] * u.deg, nums[1] * u.deg, frame="icrs")
        try:
            return SkyCoord(ra, unit=(u.hourangle, u.deg), frame="icrs")
        except Exception as e:  # astropy raises ValueError, UnitsError, RangeError…
            raise QueryError(f"cannot read {ra!r} as a sky position ({_why(e)}); give {_FORMS}") from None
    if ra is None or dec is None:
        raise QueryError("a sky position needs both RA and Dec").resolved_by("ra", "dec")
    r, d = _number(ra), _number(dec)
    if r is not None and d is not None and not (isinstance(ra, str) and _is_hours(ra)):
        check_position(r, d)
        return SkyCoord(r * u.deg, d * u.deg, frame="icrs")
    ra_unit = u.hourangle if isinstance(ra, str) and _is_hours(ra) else u.deg
    try:
        c = SkyCoord(ra, dec, unit=(ra_unit, u.deg), frame="icrs")
    except Exception as e:
        raise QueryError(
            f"cannot read RA {ra!r}, Dec {dec!r} as a sky position ({_why(e)}); give {_FORMS}"
        ) from None
    check_position(float(c.ra.deg), float(c.dec.deg))
    return c


def _why(e: Exception) -> str:
    return str(e).splitlines()[0].rstrip(".") if str(e) else type(e).__name__


class SkyMatcher:
    """The catalog's positions as one ``SkyCoord`` (rows with coordinates only; deleted rows
    left out by the caller), matched with astropy's KD-tree: built on the first match, then
    O(log n) per query instead of a separation to every row."""

    def __init__(self, ra: np.ndarray, dec: np.ndarray, allowed: np.ndarray | None = None) -> None:
        ok = np.isfinite(ra) & np.isfinite(dec)
        if allowed is not None:
            ok &= allowed
        self.positions = np.flatnonzero(ok)
        self._ra, self._dec = ra[self.positions], dec[self.positions]
        self._coords: Any = None
        self._lock = threading.Lock()

    def coords(self) -> Any:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        with self._lock:  # the KD-tree is cached on this SkyCoord: build it once, not per thread
            if self._coords is None and len(self.positions):
                c = SkyCoord(self._ra * u.deg, self._dec * u.deg, frame="icrs")
                c[:1].match_to_catalog_sky(c)  # builds and caches the tree
                self._coords = c
            return self._coords

    def nearest(self, coord: Any, radius_arcsec: float) -> tuple[int, float]:
        """(position, separation in arcsec) of the catalog object nearest ``coord`` within the radius."""
        if not (np.isfinite(radius_arcsec) and radius_arcsec > 0):
            raise QueryError(f"radius {radius_arcsec} arcsec must be > 0")
        cat = self.coords()
        where = f"RA {coord.ra.deg:g}, Dec {coord.dec.deg:g}"
        if cat is None:
            raise QueryError(
                f"no catalog object within {radius_arcsec:g} arcsec of {where} (no object has coordinates; widen the radius)"
            ).resolved_by("radius")
        i, sep, _ = coord.match_to_catalog_sky(cat)
        i, s = int(np.ravel(i)[0]), float(np.ravel(sep.arcsec)[0])
        if s > radius_arcsec:
            raise QueryError(
                f"no catalog object within {radius_arcsec:g} arcsec of {where} (the nearest is {s:.1f} arcsec away; widen the radius)"
            ).resolved_by("radius")
        return int(self.positions[i]), s

    def around(self, coord: Any, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
        """(positions, separations in arcsec) of every catalog object within the radius, nearest first."""
        from astropy import units as u
        from astropy.coordinates import search_around_sky

        cat = self.coords()
        if cat is None:
            return np.empty(0, np.int64), np.empty(0)
        c = coord.reshape((1,)) if coord.isscalar else coord
        _, j, sep, _ = search_around_sky(c, cat, radius_arcsec * u.arcsec)
        order = np.argsort(sep.arcsec, kind="stable")
        return self.positions[j[order]], np.asarray(sep.arcsec)[order]


def spread(
    keep: np.ndarray,
    pos: np.ndarray,
    sky: tuple[np.ndarray, np.ndarray],
    query: tuple[float, float] | None,
    min_sep: float,
) -> np.ndarray:
    """The entries of ``keep`` (in rank order) at least ``min_sep`` arcsec from the query's
    position and from every better entry kept; objects without coordinates are kept."""
    ra, dec = sky
    taken_ra: list[float] = [] if query is None else [float(query[0])]
    taken_dec: list[float] = [] if query is None else [float(query[1])]
    out = []
    for j in keep:
        r, d = ra[pos[j]], dec[pos[j]]
        if np.isfinite(r) and np.isfinite(d):
            if (
                taken_ra
                and angular_separation_arcsec(r, d, np.asarray(taken_ra), np.asarray(taken_dec)).min()
                < min_sep
            ):
                continue
            taken_ra.append(float(r))
            taken_dec.append(float(d))
        out.append(j)
    return np.asarray(out, np.int64)
