"""The ten Galaxy10 DECaLS classes as recipes over the components (:data:`SAMPLERS`).

Each sampler draws the parameters a Galaxy Zoo volunteer's answer implies: round smooth
galaxies are red, high-index Sérsic spheroids with q near 1; cigars are low-q smooth
spheroids; spirals are blue exponential disks with logarithmic arms of tight (7–14°) or
loose (20–35°) pitch, knots of star formation along the arms, and a small red bulge;
barred spirals add a flat Sérsic bar whose ends launch the arms; edge-on disks are
inclined 80–90° with a scale height of 5–15 % of the scale length; mergers have a
companion and tidal tails; disturbed galaxies are lopsided and clumpy, or smooth with
shells and plumes. Every cutout also gets foreground stars and unrelated neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .components import _clumps, _curve, _edge_on, _lopsided_disk, _shell, _size_px, _spheroid, _spiral_disk
from .config import SynthConfig
from .draw import _centre, _Drawn, _u
from .scene import Blobs, Galaxy, Stream


def _disturbed(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    x, y = _centre(rng)
    s = cfg.pixel_scale
    streams: list[Stream] = []
    if rng.uniform() < 0.7:
        # Irregular: a lopsided, clumpy disk with an offset nucleus, sometimes a plume
        gal = _lopsided_disk(rng, (0.35, 0.8), (0.0, 0.15), x, y, s)
        kf = _u(rng, 0.15, 0.35)
        gal = replace(gal, knot_frac=kf)
        blobs = _clumps(rng, gal, int(rng.poisson(5)) + 3, gal.disk_flux * kf, s)
        if rng.uniform() < 0.5:
            r_px = _size_px(gal, s)
            a = gal.lopsided_angle + math.radians(gal.pa_deg) + rng.normal(0, 0.4)
            streams.append(
                Stream(
                    _curve(
                        x + 0.8 * r_px * math.cos(a),
                        y + 0.8 * r_px * math.sin(a),
                        a,
                        _u(rng, 1.5, 3.5) * r_px,
                        _u(rng, -1.2, 1.2),
                    ),
                    sigma0=_u(rng, 2.0, 3.5),
                    sigma1=_u(rng, 3.5, 7.0),
                    flux=gal.flux * _u(rng, 0.05, 0.12),
                    colour=gal.disk_colour,
                    fade=0.3,
                )
            )
        return gal, blobs, tuple(streams), None
    # Smooth but disturbed: a spheroid with shells and a plume (a minor merger's debris)
    gal = _spheroid(rng, 0.6, 1.0, 2.5, 4.5, x, y)
    r_px = _size_px(gal, s)
    side = _u(rng, 0, 2 * math.pi)
    # Shells: faint, interleaved arcs on alternating sides (Quinn 1984), not full rings
    for k in range(int(rng.integers(2, 5))):
        radius = r_px * (1.2 + 0.6 * k + _u(rng, 0, 0.3))
        streams.append(
            Stream(
                _shell(x, y, radius, side + math.pi * (k % 2) + rng.normal(0, 0.3), _u(rng, 0.8, 1.6)),
                sigma0=_u(rng, 2.0, 3.5),
                sigma1=_u(rng, 2.0, 3.5),
                flux=gal.flux * _u(rng, 0.012, 0.03),
                colour=gal.bulge_colour,
                fade=1.0,
            )
        )
    if rng.uniform() < 0.6:
        a = side + rng.normal(0, 0.5)
        streams.append(
            Stream(
                _curve(
                    x + r_px * math.cos(a),
                    y + r_px * math.sin(a),
                    a,
                    _u(rng, 2.0, 4.0) * r_px,
                    _u(rng, -0.8, 0.8),
                ),
                sigma0=_u(rng, 2.5, 4.0),
                sigma1=_u(rng, 5.0, 9.0),
                flux=gal.flux * _u(rng, 0.05, 0.1),
                colour=gal.bulge_colour,
                fade=0.3,
            )
        )
    return gal, Blobs.empty(), tuple(streams), None


def _merger_member(rng: np.random.Generator, x: float, y: float, s: float) -> Galaxy:
    if rng.uniform() < 0.45:
        g = _spheroid(rng, 0.6, 1.0, 2.0, 4.5, x, y)
        return replace(g, bulge_hlr=g.bulge_hlr * 0.8, disk_hlr=g.disk_hlr * 0.8)
    g = _lopsided_disk(rng, (0.15, 0.45), (0.15, 0.5), x, y, s)
    return g


def _merging(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    s = cfg.pixel_scale
    x, y = _centre(rng)
    main = _merger_member(rng, x, y, s)
    r_main = _size_px(main, s)
    sep = min(_u(rng, 1.0, 2.6) * r_main, 0.38 * cfg.size)
    a = _u(rng, 0, 2 * math.pi)
    comp = _merger_member(rng, x + sep * math.cos(a), y + sep * math.sin(a), s)
    ratio = _u(rng, 0.3, 1.0)
    comp = replace(
        comp,
        flux=main.flux * ratio,
        disk_hlr=comp.disk_hlr * math.sqrt(ratio),
        bulge_hlr=comp.bulge_hlr * math.sqrt(ratio),
    )
    # Tidal tails curl the same way on both galaxies and leave from their far sides, as in
    # prograde encounters (Toomre & Toomre 1972).
    spin = float(rng.choice((-1.0, 1.0)))
    streams: list[Stream] = []
    for g, away, rg in ((main, a + math.pi, r_main), (comp, a, _size_px(comp, s))):
        if rng.uniform() < 0.85:
            start = away + rng.normal(0, 0.4)
            streams.append(
                Stream(
                    _curve(
                        g.x + 0.7 * rg * math.cos(start),
                        g.y + 0.7 * rg * math.sin(start),
                        start + spin * 0.6,
                        _u(rng, 2.0, 4.5) * rg,
                        spin * _u(rng, 0.6, 1.6),
                    ),
                    sigma0=_u(rng, 2.0, 3.5),
                    sigma1=_u(rng, 4.0, 8.0),
                    flux=g.flux * _u(rng, 0.06, 0.14),
                    colour=g.disk_colour,
                    fade=0.35,
                )
            )
    if not streams or rng.uniform() < 0.5:
        # a bridge between the two, bowed sideways
        mid = _curve(main.x, main.y, a - spin * 0.4, sep * 1.05, spin * 0.8)
        streams.append(
            Stream(
                mid,
                sigma0=_u(rng, 1.5, 3.0),
                sigma1=_u(rng, 1.5, 3.0),
                flux=main.flux * _u(rng, 0.04, 0.09),
                colour=main.disk_colour,
                fade=0.8,
            )
        )
    blobs = Blobs.empty()
    if not main.bulge_dominated:
        kf = _u(rng, 0.05, 0.15)
        main = replace(main, knot_frac=kf)
        blobs = _clumps(rng, main, int(rng.poisson(3)) + 1, main.disk_flux * kf, s)
    return main, blobs, tuple(streams), comp


def _round(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    return _spheroid(rng, 0.82, 1.0, 3.0, 5.5, *_centre(rng)), Blobs.empty(), (), None


def _in_between(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    return _spheroid(rng, 0.5, 0.78, 2.0, 4.0, *_centre(rng)), Blobs.empty(), (), None


def _cigar(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    g = _spheroid(rng, 0.2, 0.4, 1.0, 2.5, *_centre(rng))
    return replace(g, bulge_hlr=g.bulge_hlr * 1.2), Blobs.empty(), (), None


def _barred(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    x, y = _centre(rng)
    g, b = _spiral_disk(
        rng,
        cfg.pixel_scale,
        bulge_frac=(0.08, 0.25),
        pitch=(12.0, 25.0),
        arms=(2,),
        arm_frac=(0.35, 0.55),
        sharpness=(3.0, 6.0),
        knots=8.0,
        knot_frac=(0.04, 0.10),
        barred=True,
        x=x,
        y=y,
    )
    return g, b, (), None


def _tight(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    x, y = _centre(rng)
    g, b = _spiral_disk(
        rng,
        cfg.pixel_scale,
        bulge_frac=(0.15, 0.35),
        pitch=(7.0, 14.0),
        arms=(2, 2, 3, 4),
        arm_frac=(0.30, 0.50),
        sharpness=(3.0, 6.0),
        knots=8.0,
        knot_frac=(0.04, 0.10),
        barred=False,
        x=x,
        y=y,
    )
    return g, b, (), None


def _loose(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    x, y = _centre(rng)
    g, b = _spiral_disk(
        rng,
        cfg.pixel_scale,
        bulge_frac=(0.03, 0.15),
        pitch=(20.0, 35.0),
        arms=(2, 2, 3),
        arm_frac=(0.40, 0.60),
        sharpness=(2.5, 5.0),
        knots=16.0,
        knot_frac=(0.08, 0.18),
        barred=False,
        x=x,
        y=y,
    )
    return g, b, (), None


def _edge_on_plain(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    return _edge_on(rng, False, *_centre(rng), cfg.pixel_scale), Blobs.empty(), (), None


def _edge_on_bulge(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    return _edge_on(rng, True, *_centre(rng), cfg.pixel_scale), Blobs.empty(), (), None


_SAMPLERS: tuple[Callable[[np.random.Generator, SynthConfig], _Drawn], ...] = (
    _disturbed,
    _merging,
    _round,
    _in_between,
    _cigar,
    _barred,
    _tight,
    _loose,
    _edge_on_plain,
    _edge_on_bulge,
)
