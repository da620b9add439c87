"""Class-conditional random scenes for the ten Galaxy10 DECaLS classes.

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
from dataclasses import replace
from typing import Callable

import numpy as np

from .config import SynthConfig
from .scene import Bar, Blobs, Colour, Galaxy, Psf, Scene, Spiral, Stars, Stream
from .texture import disk_to_image

__all__ = ["sample_scene", "N_CLASSES", "quantize_sersic_n"]

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


# ---------------------------------------------------------------- components


def _spheroid(rng: np.random.Generator, q_lo: float, q_hi: float, n_lo: float, n_hi: float, x: float, y: float) -> Galaxy:
    hlr = _u(rng, 3.5, 8.5)
    return Galaxy(
        x=x,
        y=y,
        flux=_flux(_mag_for_size(rng, hlr * 1.3)),
        bulge_frac=1.0,
        sersic_n=quantize_sersic_n(_u(rng, n_lo, n_hi)),
        bulge_hlr=hlr,
        bulge_q=_u(rng, q_lo, q_hi),
        disk_hlr=hlr,
        disk_q=1.0,
        pa_deg=_u(rng, 0, 180),
        bulge_colour=_red(rng),
        disk_colour=_red(rng),
    )


def _spiral_disk(
    rng: np.random.Generator,
    scale_px: float,
    *,
    bulge_frac: tuple[float, float],
    pitch: tuple[float, float],
    arms: tuple[int, ...],
    arm_frac: tuple[float, float],
    sharpness: tuple[float, float],
    knots: float,
    knot_frac: tuple[float, float],
    barred: bool,
    x: float,
    y: float,
) -> tuple[Galaxy, Blobs]:
    """A face-on-ish disk with arms (and optionally a bar) plus its knots."""
    disk_hlr = _u(rng, 4.5, 10.0)
    cos_i = _u(rng, 0.5, 1.0)
    q = _disk_q(cos_i)
    pa = _u(rng, 0, 180)
    bf = _u(rng, *bulge_frac)
    bulge_hlr = max(0.6, disk_hlr * _u(rng, 0.12, 0.25))
    h_px = disk_hlr / 1.678 / scale_px
    bar = None
    if barred:
        bar_hlr = disk_hlr * _u(rng, 0.35, 0.55)
        theta = _u(rng, 0, math.pi)  # bar angle in the disk plane
        pa_rad = math.radians(pa)
        bx, by = disk_to_image(np.array(math.cos(theta)), np.array(math.sin(theta)), q, pa_rad)
        proj = math.hypot(float(bx), float(by))
        bar = Bar(
            frac=_u(rng, 0.20, 0.35),
            n=quantize_sersic_n(_u(rng, 0.3, 0.6)),
            half_light_radius=bar_hlr * proj,
            q=_u(rng, 0.20, 0.30),
            pa_deg=math.degrees(math.atan2(float(by), float(bx))),
        )
        r_start = 1.5 * bar_hlr / scale_px
        n_arms = 2
        phase = 2.0 * theta  # arm crests at the two bar ends
    else:
        r_start = max(2.0 * bulge_hlr / scale_px, 0.6 * h_px)
        n_arms = int(rng.choice(arms))
        phase = _u(rng, 0, 2 * math.pi)
    spiral = Spiral(
        n_arms=n_arms,
        pitch_deg=_u(rng, *pitch),
        chirality=int(rng.choice((-1, 1))),
        phase=phase,
        r_start=r_start,
        sharpness=_u(rng, *sharpness),
        frac=_u(rng, *arm_frac),
    )
    kf = _u(rng, *knot_frac)
    gal = Galaxy(
        x=x,
        y=y,
        flux=_flux(_mag_for_size(rng, disk_hlr)),
        bulge_frac=bf,
        sersic_n=quantize_sersic_n(_u(rng, 1.5, 3.5)),
        bulge_hlr=bulge_hlr,
        bulge_q=_u(rng, max(q, 0.7), 1.0),
        disk_hlr=disk_hlr,
        disk_q=q,
        pa_deg=pa,
        bulge_colour=_red(rng),
        disk_colour=_blue(rng),
        inclination_deg=math.degrees(math.acos(cos_i)),
        spiral=spiral,
        bar=bar,
        knot_frac=kf,
    )
    n_knots = int(rng.poisson(knots)) + 2
    return gal, _arm_knots(rng, gal, h_px, n_knots, gal.disk_flux * kf)


def _arm_knots(rng: np.random.Generator, gal: Galaxy, h_px: float, n: int, total_flux: float) -> Blobs:
    """Star-forming knots on the arm crests, concentrated in the inner disk."""
    s = gal.spiral
    if s is None or n == 0:
        return Blobs.empty()
    k = rng.integers(0, s.n_arms, n)
    r = s.r_start + h_px * rng.gamma(2.0, 0.7, n)
    # beyond ~2.5 scale lengths the arms have faded into the sky; knots there look detached
    r = np.minimum(r, s.r_start + 2.5 * h_px)
    phi = s.chirality * np.log(r / s.r_start) / math.tan(math.radians(s.pitch_deg)) + (s.phase + 2 * math.pi * k) / s.n_arms
    phi = phi + rng.normal(0, 0.10, n)
    dx, dy = disk_to_image(r * np.cos(phi), r * np.sin(phi), gal.disk_q, math.radians(gal.pa_deg))
    w = rng.lognormal(0.0, 0.6, n)
    g, z = _knot_colour(rng, n)
    return Blobs(gal.x + dx, gal.y + dy, rng.uniform(0.7, 1.3, n), total_flux * w / w.sum(), g, z)


def _edge_on(rng: np.random.Generator, bulge: bool, x: float, y: float, scale_px: float) -> Galaxy:
    disk_hlr = _u(rng, 5.0, 11.0)
    incl = _u(rng, 80.0, 90.0) if bulge else _u(rng, 84.0, 90.0)
    h_over_r = _u(rng, 0.08, 0.15) if bulge else _u(rng, 0.06, 0.12)
    ci = math.cos(math.radians(incl))
    # Apparent axis ratio of an inclined exponential disk, to first order
    q_app = math.sqrt(ci * ci + (h_over_r * math.sin(math.radians(incl))) ** 2)
    bf = _u(rng, 0.45, 0.70) if bulge else _u(rng, 0.0, 0.03)
    pa = _u(rng, 0, 180)
    # A dust lane along the midplane, thicker than the (PSF-blurred) light so it shows, and
    # displaced towards the near side when the disk is not exactly edge-on.
    h_px = disk_hlr / 1.678 / scale_px
    has_dust = rng.uniform() < (0.7 if bulge else 0.35)
    dust = _u(rng, 0.7, 0.95) if has_dust else 0.0
    dust_width = max(1.8, h_over_r * h_px * _u(rng, 0.9, 1.5))
    dust_offset = float(rng.choice((-1.0, 1.0))) * ci * h_px * _u(rng, 0.1, 0.4)
    return Galaxy(
        x=x,
        y=y,
        flux=_flux(_mag_for_size(rng, disk_hlr * 0.8)),
        bulge_frac=bf,
        sersic_n=quantize_sersic_n(_u(rng, 2.0, 4.0) if bulge else 1.0),
        bulge_hlr=disk_hlr * (_u(rng, 0.30, 0.50) if bulge else 0.1),
        bulge_q=_u(rng, 0.70, 0.95),
        disk_hlr=disk_hlr,
        disk_q=q_app,
        pa_deg=pa,
        bulge_colour=_red(rng),
        # dust reddens an edge-on disk
        disk_colour=Colour.from_mags(_u(rng, 0.55, 0.80), _u(rng, 0.30, 0.50)),
        inclination_deg=incl,
        edge_on=True,
        h_over_r=h_over_r,
        dust=dust,
        dust_width=dust_width,
        dust_offset=dust_offset,
    )


def _lopsided_disk(rng: np.random.Generator, a1: tuple[float, float], bulge_frac: tuple[float, float], x: float, y: float, scale_px: float) -> Galaxy:
    disk_hlr = _u(rng, 3.5, 8.0)
    cos_i = _u(rng, 0.35, 1.0)
    off = rng.normal(0, 1.0, 2) * disk_hlr / scale_px * 0.12
    return Galaxy(
        x=x,
        y=y,
        flux=_flux(_mag_for_size(rng, disk_hlr)),
        bulge_frac=_u(rng, *bulge_frac),
        sersic_n=quantize_sersic_n(_u(rng, 1.0, 3.0)),
        bulge_hlr=max(0.5, disk_hlr * _u(rng, 0.10, 0.25)),
        bulge_q=_u(rng, 0.6, 1.0),
        disk_hlr=disk_hlr,
        disk_q=_disk_q(cos_i),
        pa_deg=_u(rng, 0, 180),
        bulge_colour=Colour.from_mags(_u(rng, 0.6, 0.9), _u(rng, 0.3, 0.55)),
        disk_colour=_blue(rng),
        inclination_deg=math.degrees(math.acos(cos_i)),
        lopsided=_u(rng, *a1),
        lopsided_angle=_u(rng, 0, 2 * math.pi),
        bulge_dx=float(off[0]),
        bulge_dy=float(off[1]),
    )


def _clumps(rng: np.random.Generator, gal: Galaxy, n: int, total_flux: float, scale_px: float) -> Blobs:
    """Bright star-forming clumps scattered over a disturbed disk, biased to its long side."""
    h_px = gal.disk_hlr / 1.678 / scale_px
    r = h_px * rng.gamma(2.0, 0.6, n)
    phi = gal.lopsided_angle + rng.normal(0, 1.2, n)
    dx, dy = disk_to_image(r * np.cos(phi), r * np.sin(phi), gal.disk_q, math.radians(gal.pa_deg))
    w = rng.lognormal(0.0, 0.7, n)
    g, z = _knot_colour(rng, n)
    return Blobs(gal.x + dx, gal.y + dy, rng.uniform(1.2, 3.5, n), total_flux * w / w.sum(), g, z)


def _curve(x0: float, y0: float, angle: float, length: float, curl: float, m: int = 24) -> np.ndarray:
    """Control points of a curve leaving (x0, y0) along ``angle`` and turning by ``curl``
    radians over ``length`` pixels (a tidal tail, plume or bridge)."""
    t = np.linspace(0.0, 1.0, m)
    heading = angle + curl * t
    step = length / (m - 1)
    xs = x0 + np.concatenate([[0.0], np.cumsum(np.cos(heading[:-1]) * step)])
    ys = y0 + np.concatenate([[0.0], np.cumsum(np.sin(heading[:-1]) * step)])
    return np.stack([xs, ys], axis=1)


def _shell(x0: float, y0: float, radius: float, centre_angle: float, span: float, m: int = 24) -> np.ndarray:
    a = centre_angle + np.linspace(-span / 2, span / 2, m)
    return np.stack([x0 + radius * np.cos(a), y0 + radius * np.sin(a)], axis=1)


def _size_px(g: Galaxy, scale_px: float) -> float:
    return (g.bulge_hlr if g.bulge_dominated else g.disk_hlr) / scale_px


# ---------------------------------------------------------------- classes


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
                    _curve(x + 0.8 * r_px * math.cos(a), y + 0.8 * r_px * math.sin(a), a, _u(rng, 1.5, 3.5) * r_px, _u(rng, -1.2, 1.2)),
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
                _curve(x + r_px * math.cos(a), y + r_px * math.sin(a), a, _u(rng, 2.0, 4.0) * r_px, _u(rng, -0.8, 0.8)),
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
    comp = replace(comp, flux=main.flux * ratio, disk_hlr=comp.disk_hlr * math.sqrt(ratio), bulge_hlr=comp.bulge_hlr * math.sqrt(ratio))
    # Tidal tails curl the same way on both galaxies and leave from their far sides, as in
    # prograde encounters (Toomre & Toomre 1972).
    spin = float(rng.choice((-1.0, 1.0)))
    streams: list[Stream] = []
    for g, away, rg in ((main, a + math.pi, r_main), (comp, a, _size_px(comp, s))):
        if rng.uniform() < 0.85:
            start = away + rng.normal(0, 0.4)
            streams.append(
                Stream(
                    _curve(g.x + 0.7 * rg * math.cos(start), g.y + 0.7 * rg * math.sin(start), start + spin * 0.6, _u(rng, 2.0, 4.5) * rg, spin * _u(rng, 0.6, 1.6)),
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
        streams.append(Stream(mid, sigma0=_u(rng, 1.5, 3.0), sigma1=_u(rng, 1.5, 3.0), flux=main.flux * _u(rng, 0.04, 0.09), colour=main.disk_colour, fade=0.8))
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
        rng, cfg.pixel_scale, bulge_frac=(0.08, 0.25), pitch=(12.0, 25.0), arms=(2,), arm_frac=(0.35, 0.55),
        sharpness=(3.0, 6.0), knots=8.0, knot_frac=(0.04, 0.10), barred=True, x=x, y=y,
    )
    return g, b, (), None


def _tight(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    x, y = _centre(rng)
    g, b = _spiral_disk(
        rng, cfg.pixel_scale, bulge_frac=(0.15, 0.35), pitch=(7.0, 14.0), arms=(2, 2, 3, 4), arm_frac=(0.30, 0.50),
        sharpness=(3.0, 6.0), knots=8.0, knot_frac=(0.04, 0.10), barred=False, x=x, y=y,
    )
    return g, b, (), None


def _loose(rng: np.random.Generator, cfg: SynthConfig) -> _Drawn:
    x, y = _centre(rng)
    g, b = _spiral_disk(
        rng, cfg.pixel_scale, bulge_frac=(0.03, 0.15), pitch=(20.0, 35.0), arms=(2, 2, 3), arm_frac=(0.40, 0.60),
        sharpness=(2.5, 5.0), knots=16.0, knot_frac=(0.08, 0.18), barred=False, x=x, y=y,
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


# ---------------------------------------------------------------- field


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
