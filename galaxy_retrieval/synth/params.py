"""One random scene of a Galaxy10 class: the class's galaxy (:mod:`.classes`), then the
field around it (foreground stars, unrelated neighbours, the PSF) and its sky position."""

from __future__ import annotations

import math

import numpy as np

from .classes import _SAMPLERS
from .components import _size_px
from .config import SynthConfig
from .draw import _BETA_STEP, N_CLASSES, _blue, _flux, _grid, _red, _u, quantize_sersic_n
from .scene import Galaxy, Psf, Scene, Stars

__all__ = ["sample_scene", "N_CLASSES", "quantize_sersic_n"]


def _stars(rng: np.random.Generator, cfg: SynthConfig) -> Stars:
    n = min(int(rng.poisson(cfg.star_density)), cfg.max_stars)
    half = cfg.size / 2 - 2
    x = rng.uniform(-half, half, n)
    y = rng.uniform(-half, half, n)
    # Keep stars off the nucleus, where one would be indistinguishable from a bulge.
    close = np.hypot(x, y) < 6
    x[close] += np.sign(x[close] + 1e-9) * 8
    # Number counts rise steeply to faint magnitudes, but the rare bright star with its
    # broad halo is the case that misleads a model, so it is over-represented here.
    bright = rng.uniform(size=n) < 0.15
    mag = np.where(bright, rng.uniform(13.5, 16.5, n), rng.uniform(17.0, 22.0, n))
    g_r = rng.uniform(0.3, 1.5, n)
    r_z = 0.1 + 0.55 * g_r + rng.normal(0, 0.08, n)
    return Stars(x, y, 10 ** ((22.5 - mag) / 2.5), 10 ** (-0.4 * g_r), 10 ** (0.4 * r_z))


def _neighbours(rng: np.random.Generator, cfg: SynthConfig, main: Galaxy) -> tuple[Galaxy, ...]:
    n = min(int(rng.poisson(cfg.neighbour_density)), cfg.max_neighbours)
    half = cfg.size / 2 - 2
    keep_out = 1.5 * _size_px(main, cfg.pixel_scale)
    out = []
    for _ in range(n):
        x, y = rng.uniform(-half, half, 2)
        if math.hypot(x - main.x, y - main.y) < keep_out:
            a = math.atan2(y - main.y, x - main.x)
            x, y = main.x + keep_out * math.cos(a), main.y + keep_out * math.sin(a)
        hlr = _u(rng, 0.4, 1.6)
        colour = _red(rng) if rng.uniform() < 0.5 else _blue(rng)
        out.append(
            Galaxy(
                x=float(x),
                y=float(y),
                flux=_flux(_u(rng, 18.0, 22.0)),
                bulge_frac=1.0,
                sersic_n=quantize_sersic_n(_u(rng, 1.0, 4.0)),
                bulge_hlr=hlr,
                bulge_q=_u(rng, 0.3, 1.0),
                disk_hlr=hlr,
                disk_q=1.0,
                pa_deg=_u(rng, 0, 180),
                bulge_colour=colour,
                disk_colour=colour,
            )
        )
    return tuple(out)


def _psf(rng: np.random.Generator, cfg: SynthConfig) -> Psf:
    r = _u(rng, *cfg.psf_fwhm)
    # Seeing scales roughly as wavelength^-0.2: g is a little worse than r, z a little better.
    fwhm = (r * _u(rng, 1.03, 1.09), r, r * _u(rng, 0.90, 0.96))
    return Psf(fwhm=fwhm, beta=_grid(_u(rng, 2.8, 4.0), _BETA_STEP))


def sample_scene(label: int, rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    """Draw one cutout of Galaxy10 class ``label`` (0–9, ``ans`` order)."""
    main, blobs, streams, companion = _SAMPLERS[label](rng, cfg)
    lo, hi = (math.sin(math.radians(d)) for d in cfg.dec_range)
    ra = _u(rng, 0.0, 360.0) % 360.0
    dec = math.degrees(math.asin(_u(rng, lo, hi)))
    redshift = float(np.clip(rng.lognormal(math.log(0.06), 0.45), 0.005, 0.3))
    return Scene(
        label=label,
        main=main,
        psf=_psf(rng, cfg),
        ra=ra,
        dec=dec,
        redshift=redshift,
        companion=companion,
        blobs=blobs,
        streams=streams,
        neighbours=_neighbours(rng, cfg, main),
        stars=_stars(rng, cfg),
    )
