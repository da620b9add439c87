"""Samplers of galaxy components: spheroids, spiral disks with arms and knots, edge-on and
lopsided disks, clumps, tidal curves and shells."""

from __future__ import annotations

import math

import numpy as np

from .draw import _blue, _disk_q, _flux, _knot_colour, _mag_for_size, _red, _u, quantize_sersic_n
from .scene import Bar, Blobs, Colour, Galaxy, Spiral
from .texture import disk_to_image


def _spheroid(
    rng: np.random.Generator, q_lo: float, q_hi: float, n_lo: float, n_hi: float, x: float, y: float
) -> Galaxy:
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
    phi = (
        s.chirality * np.log(r / s.r_start) / math.tan(math.radians(s.pitch_deg))
        + (s.phase + 2 * math.pi * k) / s.n_arms
    )
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


def _lopsided_disk(
    rng: np.random.Generator,
    a1: tuple[float, float],
    bulge_frac: tuple[float, float],
    x: float,
    y: float,
    scale_px: float,
) -> Galaxy:
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
