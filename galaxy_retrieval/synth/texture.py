"""Non-axisymmetric light drawn on the pixel grid with numpy: spiral arms, lopsided disks,
knots, clumps and tidal streams.

GalSim has no profile for a logarithmic spiral or a tidal tail, so these components are
drawn here as unconvolved surface brightness (flux per pixel, nanomaggies) and handed to
GalSim as an ``InterpolatedImage``, which convolves them with the same PSF as the analytic
bulge and disk. Coordinates are pixels with the frame centre at ``(size - 1) / 2``, the
same convention GalSim uses for an image's true centre; array rows are y, columns x.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "disk_to_image",
    "rotated",
    "disk_plane",
    "dust_lane",
    "spiral_arms",
    "lopsided_disk",
    "Splats",
    "splat_points",
    "polyline",
]


def disk_to_image(u: np.ndarray, v: np.ndarray, q: float, pa_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Map disk-plane offsets (u along the major axis) to image-plane offsets."""
    xr, yr = u, v * q
    c, s = math.cos(pa_rad), math.sin(pa_rad)
    return xr * c - yr * s, xr * s + yr * c


def rotated(size: int, x0: float, y0: float, pa_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of every pixel of a ``size²`` frame from ``(x0, y0)`` (relative to the frame
    centre), along (u) and across (v) the position angle ``pa_rad``."""
    c0 = (size - 1) / 2.0
    g = np.arange(size, dtype=np.float64) - c0
    dx = g[None, :] - x0
    dy = g[:, None] - y0
    c, s = math.cos(pa_rad), math.sin(pa_rad)
    return dx * c + dy * s, -dx * s + dy * c


def disk_plane(size: int, x0: float, y0: float, q: float, pa_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Disk-plane radius and azimuth (pixels, radians) of every pixel of a ``size²`` frame
    for a thin disk centred at ``(x0, y0)`` (offsets from the frame centre)."""
    u, v = rotated(size, x0, y0, pa_rad)
    v = v / q
    return np.hypot(u, v), np.arctan2(v, u)


def dust_lane(
    size: int, x0: float, y0: float, pa_rad: float, opacity: float, width: float, offset: float, length: float
) -> np.ndarray:
    """Fraction of light absorbed at each pixel by a dust lane along the major axis of an
    edge-on disk: Gaussian across (``width``, shifted by ``offset``), fading along the disk
    over ``length`` pixels. Multiplying the unconvolved galaxy by this gives the light to
    remove."""
    u, v = rotated(size, x0, y0, pa_rad)
    return opacity * np.exp(-0.5 * ((v - offset) / width) ** 2 - (u / length) ** 2)


def spiral_arms(
    r: np.ndarray,
    phi: np.ndarray,
    h: float,
    n_arms: int,
    pitch_deg: float,
    chirality: int,
    phase: float,
    r_start: float,
    sharpness: float,
) -> np.ndarray:
    """Exponential disk light modulated by an ``n_arms`` logarithmic spiral, unnormalised.

    The arm crest of arm k lies at ``phi = chirality * ln(r / r_start) / tan(pitch) +
    (phase + 2πk) / n_arms``; raising ``(1 + cos)/2`` to ``sharpness`` narrows the arms the
    way a density wave concentrates young stars. Inside ``r_start`` (bulge or bar) the
    arms fade out smoothly instead of winding up into a moiré.
    """
    rr = np.maximum(r, 1e-3)
    wind = chirality * np.log(rr / r_start) / math.tan(math.radians(pitch_deg))
    pattern = (0.5 * (1.0 + np.cos(n_arms * (phi - wind) - phase))) ** sharpness
    t = np.clip((r - 0.6 * r_start) / (0.6 * r_start + 1e-6), 0.0, 1.0)
    taper = t * t * (3.0 - 2.0 * t)
    return np.exp(-r / h) * pattern * taper


def lopsided_disk(r: np.ndarray, phi: np.ndarray, h: float, a1: float, angle: float) -> np.ndarray:
    """An exponential disk whose scale length varies with azimuth, ``h (1 + a1 cos(phi -
    angle))``: the m = 1 asymmetry of disturbed and interacting galaxies. Unnormalised."""
    hh = h * (1.0 + a1 * np.cos(phi - angle))
    return np.exp(-r / np.maximum(hh, 0.05 * h))


class Splats:
    """Gaussian blobs on a pixel grid, with geometry computed once and fluxes per band.

    Knots, clumps and the points along a tidal stream are all Gaussians; their footprints
    (pixel indices and unit-flux weights) do not depend on the band, so they are computed
    once and re-weighted with each band's fluxes by :meth:`draw`.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._idx: list[np.ndarray] = []
        self._w: list[np.ndarray] = []
        self._owner: list[np.ndarray] = []
        self._n = 0

    def add(self, x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Add blobs centred at ``(x, y)`` (offsets from the frame centre, pixels) with
        widths ``sigma``; returns their ids, used to give fluxes in :meth:`draw`."""
        x = np.atleast_1d(np.asarray(x, np.float64))
        y = np.atleast_1d(np.asarray(y, np.float64))
        sigma = np.broadcast_to(np.asarray(sigma, np.float64), x.shape)
        ids = np.arange(self._n, self._n + x.size)
        self._n += x.size
        if x.size == 0:
            return ids
        c0 = (self.size - 1) / 2.0
        half = int(math.ceil(4.0 * float(sigma.max())))
        off = np.arange(-half, half + 1)
        cx = np.rint(x + c0).astype(np.int64)
        cy = np.rint(y + c0).astype(np.int64)
        px = cx[:, None, None] + off[None, None, :]  # (P, 1, K)
        py = cy[:, None, None] + off[None, :, None]  # (P, K, 1)
        s2 = (2.0 * sigma * sigma)[:, None, None]
        # Normalised analytically (not by the patch sum) so light falling off the frame is lost
        # as it would be in a real cutout.
        w = np.exp(-(((px - c0 - x[:, None, None]) ** 2) + (py - c0 - y[:, None, None]) ** 2) / s2) / (
            np.pi * s2
        )
        px, py = np.broadcast_arrays(px, py)
        inside = (px >= 0) & (px < self.size) & (py >= 0) & (py < self.size)
        owner = np.broadcast_to(ids[:, None, None], px.shape)
        self._idx.append((py * self.size + px)[inside])
        self._w.append(w[inside])
        self._owner.append(owner[inside])
        return ids

    def __len__(self) -> int:
        return self._n

    def draw(self, flux: np.ndarray) -> np.ndarray:
        """The ``size²`` image of all blobs, blob i carrying ``flux[i]``."""
        if not self._idx:
            return np.zeros((self.size, self.size))
        idx = np.concatenate(self._idx)
        w = np.concatenate(self._w) * np.asarray(flux, np.float64)[np.concatenate(self._owner)]
        return np.bincount(idx, weights=w, minlength=self.size * self.size).reshape(self.size, self.size)


def splat_points(n: int, length: float, sigma: float) -> int:
    """How many Gaussians to place along a stream so that it looks continuous."""
    return int(min(max(math.ceil(length / (0.5 * sigma)), 2), n))


def polyline(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points spaced evenly in arc length along a polyline ``points`` (M, 2)."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])], axis=1)
