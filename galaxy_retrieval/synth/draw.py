"""Random draws shared by the scene samplers: uniform ranges, colours, magnitudes, grids
that let GalSim reuse its tables."""

from __future__ import annotations

import math

import numpy as np

from .scene import Blobs, Colour, Galaxy, Stream

N_CLASSES = 10

#: what a class sampler returns: main galaxy, its knots/clumps, tidal features, companion
_Drawn = tuple[Galaxy, Blobs, tuple[Stream, ...], "Galaxy | None"]

# GalSim tabulates each Sérsic index it meets (tens of ms each); drawing n on a 0.1 grid
# lets every worker reuse a few dozen tables instead of building one per galaxy.
_N_STEP = 0.1
# The Moffat β is drawn on a grid too: render tabulates one PSF transform per β.
_BETA_STEP = 0.1
# Intrinsic axis ratio of a "thin" disk seen edge-on, for turning inclination into q
_THIN_DISK_Q0 = 0.12


def quantize_sersic_n(n: float) -> float:
    """``n`` clipped to GalSim's supported range and put on the 0.1 grid."""
    return round(round(min(max(n, 0.3), 6.0) / _N_STEP) * _N_STEP, 3)


def _grid(v: float, step: float) -> float:
    return round(round(v / step) * step, 6)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _disk_q(cos_i: float) -> float:
    return math.sqrt(cos_i * cos_i * (1 - _THIN_DISK_Q0**2) + _THIN_DISK_Q0**2)


def _red(rng: np.random.Generator) -> Colour:
    return Colour.from_mags(_u(rng, 0.75, 0.95), _u(rng, 0.40, 0.60))


def _blue(rng: np.random.Generator) -> Colour:
    return Colour.from_mags(_u(rng, 0.40, 0.62), _u(rng, 0.20, 0.42))


def _knot_colour(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    g_r = rng.uniform(-0.15, 0.25, n)
    r_z = rng.uniform(-0.25, 0.10, n)
    return 10 ** (-0.4 * g_r), 10 ** (0.4 * r_z)


def _mag_for_size(rng: np.random.Generator, hlr: float) -> float:
    # Bigger galaxies are brighter, which keeps surface brightness in the range of the
    # Galaxy Zoo DECaLS sample (r < 17.8) instead of making large galaxies invisible.
    return _u(rng, 15.6, 17.3) - 3.0 * math.log10(hlr / 4.5)


def _flux(mag: float) -> float:
    return 10 ** ((22.5 - mag) / 2.5)


def _centre(rng: np.random.Generator) -> tuple[float, float]:
    return float(rng.normal(0, 0.7)), float(rng.normal(0, 0.7))
