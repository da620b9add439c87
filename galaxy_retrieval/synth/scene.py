"""What one synthetic cutout contains: the galaxy's components, its field and the
observing conditions, plus the ``truth`` record written for every object.

A :class:`Scene` is pure data, sampled by :mod:`.params` and drawn by :mod:`.render`, so
the random draws and the rendering can be tested and changed separately.

Conventions: positions are pixel offsets from the frame centre (``(size - 1) / 2``), x
along array columns and y along rows; position angles are degrees counter-clockwise from
+x towards +y; sizes of GalSim profiles are half-light radii in arcsec; fluxes are r-band
nanomaggies, and a :class:`Colour` turns them into g and z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Colour",
    "Spiral",
    "Bar",
    "Galaxy",
    "Blobs",
    "Stream",
    "Stars",
    "Psf",
    "Scene",
    "TRUTH_SCALARS",
    "truth_row",
    "flux_to_mag",
]


def flux_to_mag(flux: float) -> float:
    """AB magnitude of a flux in nanomaggies (zero point 22.5)."""
    return 22.5 - 2.5 * math.log10(max(flux, 1e-12))


@dataclass(frozen=True)
class Colour:
    """Flux ratios g/r and z/r of a component."""

    g: float
    z: float

    @classmethod
    def from_mags(cls, g_r: float, r_z: float) -> Colour:
        return cls(g=10 ** (-0.4 * g_r), z=10 ** (0.4 * r_z))

    def ratios(self) -> tuple[float, float, float]:
        """Multipliers turning an r-band flux into g, r, z fluxes."""
        return (self.g, 1.0, self.z)


@dataclass(frozen=True)
class Spiral:
    """Logarithmic spiral arms in the disk plane (see :func:`.texture.spiral_arms`)."""

    n_arms: int
    pitch_deg: float
    chirality: int  # +1 or -1: which way the arms wind
    phase: float  # radians
    r_start: float  # disk-plane radius where the arms begin (pixels): bulge edge or bar end
    sharpness: float  # exponent narrowing the arms
    frac: float  # fraction of the disk's light in the arms


@dataclass(frozen=True)
class Bar:
    """An elongated, flat (low-index) Sérsic bar through the centre."""

    frac: float  # fraction of the galaxy's light
    n: float
    half_light_radius: float  # arcsec, along the bar
    q: float
    pa_deg: float  # image plane


@dataclass(frozen=True)
class Galaxy:
    """One galaxy: a Sérsic bulge, an exponential disk (thin, inclined, or lopsided), and
    optionally spiral arms, a bar and knots (the knots themselves live in
    :attr:`Scene.blobs`; ``knot_frac`` is the disk light they take)."""

    x: float
    y: float
    flux: float  # r band, whole galaxy
    bulge_frac: float
    sersic_n: float
    bulge_hlr: float
    bulge_q: float
    disk_hlr: float
    disk_q: float  # apparent axis ratio of the disk
    pa_deg: float
    bulge_colour: Colour
    disk_colour: Colour
    inclination_deg: float = 0.0
    edge_on: bool = False
    h_over_r: float = 0.1  # scale height / scale radius, used when edge_on
    spiral: Spiral | None = None
    bar: Bar | None = None
    knot_frac: float = 0.0
    lopsided: float = 0.0  # m = 1 amplitude; > 0 draws the disk as a texture
    lopsided_angle: float = 0.0  # radians, disk plane
    bulge_dx: float = 0.0  # offset of the nucleus from the disk centre (pixels)
    bulge_dy: float = 0.0
    dust: float = 0.0  # peak opacity (0–1) of a dust lane along the major axis
    dust_width: float = 1.0  # its Gaussian sigma across the disk, pixels
    dust_offset: float = 0.0  # its shift from the major axis towards the near side, pixels

    @property
    def bar_frac(self) -> float:
        return self.bar.frac if self.bar is not None else 0.0

    @property
    def disk_flux(self) -> float:
        return self.flux * max(0.0, 1.0 - self.bulge_frac - self.bar_frac)

    @property
    def bulge_dominated(self) -> bool:
        return self.bulge_frac >= 0.5


@dataclass(frozen=True, eq=False)
class Blobs:
    """Small Gaussian sources drawn as texture: star-forming knots and clumps."""

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray  # pixels
    flux: np.ndarray  # r band
    g: np.ndarray  # g/r flux ratio
    z: np.ndarray  # z/r flux ratio

    @classmethod
    def empty(cls) -> Blobs:
        e = np.zeros(0)
        return cls(e, e, e, e, e, e)

    def __len__(self) -> int:
        return int(self.x.size)

    def concat(self, other: Blobs) -> Blobs:
        return Blobs(
            *(
                np.concatenate([getattr(self, k), getattr(other, k)])
                for k in ("x", "y", "sigma", "flux", "g", "z")
            )
        )


@dataclass(frozen=True, eq=False)
class Stream:
    """A tidal tail, bridge, plume or shell: light along a curve, widening and fading."""

    points: np.ndarray  # (M, 2) control points, pixels
    sigma0: float  # width at the start (pixels)
    sigma1: float  # width at the end
    flux: float  # r band
    colour: Colour
    fade: float = 1.0  # brightness at the end relative to the start


@dataclass(frozen=True, eq=False)
class Stars:
    """Foreground stars: point sources that look exactly like the PSF."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # r band
    g: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)


@dataclass(frozen=True)
class Psf:
    """A round Moffat PSF per band, sharing β."""

    fwhm: tuple[float, float, float]  # arcsec, g r z
    beta: float


@dataclass(frozen=True, eq=False)
class Scene:
    label: int
    main: Galaxy
    psf: Psf
    ra: float
    dec: float
    redshift: float
    companion: Galaxy | None = None
    blobs: Blobs = field(default_factory=Blobs.empty)
    streams: tuple[Stream, ...] = ()
    neighbours: tuple[Galaxy, ...] = ()
    stars: Stars = field(default_factory=lambda: Stars(*(np.zeros(0) for _ in range(5))))


#: per-object scalar truth columns and their HDF5 dtypes
TRUTH_SCALARS: dict[str, str] = {
    "class": "u1",
    "sersic_n": "f4",
    "bulge_frac": "f4",
    "bulge_hlr": "f4",
    "bulge_axis_ratio": "f4",
    "disk_hlr": "f4",
    "axis_ratio": "f4",
    "position_angle": "f4",
    "half_light_radius": "f4",
    "inclination": "f4",
    "mag_r": "f4",
    "g_r": "f4",
    "r_z": "f4",
    "arm_pitch_deg": "f4",
    "n_arms": "u1",
    "arm_frac": "f4",
    "has_bar": "u1",
    "bar_frac": "f4",
    "bar_hlr": "f4",
    "n_knots": "u2",
    "lopsidedness": "f4",
    "dust_lane": "f4",
    "has_companion": "u1",
    "companion_sep": "f4",
    "companion_flux_ratio": "f4",
    "n_tidal": "u1",
    "psf_fwhm_g": "f4",
    "psf_fwhm_r": "f4",
    "psf_fwhm_z": "f4",
    "psf_beta": "f4",
    "n_stars": "u2",
    "n_neighbours": "u2",
}


def truth_row(scene: Scene, pixel_scale: float, size: int) -> dict[str, float]:
    """The scalar truth of one scene (see :data:`TRUTH_SCALARS`).

    ``axis_ratio``, ``position_angle`` and ``half_light_radius`` describe the main body:
    the disk when there is one (its apparent axis ratio, so edge-on disks have q ≈ 0.1
    whatever their bulge), the spheroid otherwise. Colours are those of the main galaxy's
    bulge, disk and knots together.
    """
    g = scene.main
    spheroid = g.bulge_frac >= 1.0
    body_q = g.bulge_q if spheroid else g.disk_q
    body_hlr = g.bulge_hlr if spheroid else g.disk_hlr
    fb = g.flux * g.bulge_frac
    fd = g.flux - fb
    fg = fb * g.bulge_colour.g + fd * g.disk_colour.g
    fz = fb * g.bulge_colour.z + fd * g.disk_colour.z
    if len(scene.blobs):
        # knots took their flux from the disk: swap the disk colour for theirs
        fk = float(scene.blobs.flux.sum())
        fg += float((scene.blobs.flux * scene.blobs.g).sum()) - fk * g.disk_colour.g
        fz += float((scene.blobs.flux * scene.blobs.z).sum()) - fk * g.disk_colour.z
    c = scene.companion
    s = g.spiral
    return {
        "class": scene.label,
        "sersic_n": g.sersic_n if g.bulge_frac > 0 else 0.0,
        "bulge_frac": g.bulge_frac,
        "bulge_hlr": g.bulge_hlr if g.bulge_frac > 0 else 0.0,
        "bulge_axis_ratio": g.bulge_q if g.bulge_frac > 0 else 0.0,
        "disk_hlr": g.disk_hlr if g.bulge_frac < 1 else 0.0,
        "axis_ratio": body_q,
        "position_angle": g.pa_deg % 180.0,
        "half_light_radius": body_hlr,
        "inclination": g.inclination_deg,
        "mag_r": flux_to_mag(g.flux),
        "g_r": -2.5 * math.log10(max(fg, 1e-12) / g.flux),
        "r_z": 2.5 * math.log10(max(fz, 1e-12) / g.flux),
        "arm_pitch_deg": s.pitch_deg if s is not None else 0.0,
        "n_arms": s.n_arms if s is not None else 0,
        "arm_frac": s.frac if s is not None else 0.0,
        "has_bar": int(g.bar is not None),
        "bar_frac": g.bar_frac,
        "bar_hlr": g.bar.half_light_radius if g.bar is not None else 0.0,
        "n_knots": len(scene.blobs),
        "lopsidedness": g.lopsided,
        "dust_lane": g.dust,
        "has_companion": int(c is not None),
        "companion_sep": math.hypot(c.x - g.x, c.y - g.y) * pixel_scale if c is not None else 0.0,
        "companion_flux_ratio": c.flux / g.flux if c is not None else 0.0,
        "n_tidal": len(scene.streams),
        "psf_fwhm_g": scene.psf.fwhm[0],
        "psf_fwhm_r": scene.psf.fwhm[1],
        "psf_fwhm_z": scene.psf.fwhm[2],
        "psf_beta": scene.psf.beta,
        "n_stars": len(scene.stars),
        "n_neighbours": len(scene.neighbours),
    }
