"""Drawing one :class:`~.scene.Scene` with GalSim: grz images, noise, and a star mask.

Analytic components (Sérsic bulges and bars, exponential and inclined-exponential disks,
neighbours, stars as delta functions) are drawn by GalSim in Fourier space, the numpy
texture of arms, knots and tidal streams is added there, the sum is convolved with that
band's Moffat PSF and the pixel, and sky plus object shot noise is added.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import galsim
import numpy as np

from .config import SynthConfig
from .params import sample_scene
from .scene import Colour, Galaxy, Scene, truth_row
from .stretch import grz_to_rgb
from .texture import Splats, disk_plane, dust_lane, lopsided_disk, polyline, spiral_arms, splat_points

__all__ = ["Rendered", "render_scene", "render_object", "object_rngs", "star_mask"]

# Accuracy 10x looser than GalSim's defaults (errors of 1e-4 of an object's flux stay far
# below the sky noise of a survey cutout) halves the time GalSim spends tabulating each
# new Sérsic index; the fold and maxk thresholds only matter to GalSim's own FFT sizing.
_GSP = galsim.GSParams(kvalue_accuracy=1e-4, folding_threshold=1e-2, maxk_threshold=2e-3)
# Sérsic profiles are cut at this many half-light radii: the light beyond is under the
# sky noise, and an untruncated n = 5 profile would need an FFT 4x the cutout size.
_SERSIC_TRUNC = 6.0
# Electrons per nanomaggy in a DECaLS coadd (zero point ~25 mag for 1 e/s, ~300 s): sets
# the object shot noise on top of the sky.
_GAIN = 3000.0
# Pixels added on each side of the cutout for the FFT, so light just outside the frame
# (a star's halo, a neighbour's wing) falls off rather than wrapping onto the far side
_FFT_MARGIN = 16
# Star-mask threshold, in units of the r-band sky sigma
_MASK_SIGMA = 2.0


@dataclass(frozen=True, eq=False)
class Rendered:
    image: np.ndarray  # uint8 (H, W, 3)
    star_mask: np.ndarray  # bool (H, W): pixels where a foreground star outshines 2σ of sky
    truth: dict[str, float]
    star_xy: np.ndarray  # (n_stars, 3): x, y (array column, row) and r flux
    neighbour_xy: np.ndarray  # (n_neighbours, 3): x, y and r flux
    ra: float
    dec: float
    redshift: float


def object_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The random streams of object ``index``, one for the scene and one for the noise,
    both functions of ``(seed, index)`` only, so an object renders identically whichever
    worker draws it and in whatever order. Separate streams mean a change to the noise
    model leaves every scene as it was.

    (Noise comes from numpy rather than a GalSim deviate: ``GaussianDeviate.generate`` was
    10x slower here on a busy machine, for the same deterministic result.)"""
    scene_ss, noise_ss = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    return np.random.default_rng(scene_ss), np.random.default_rng(noise_ss)


def _sersic(n: float, hlr: float, q: float, pa_deg: float) -> galsim.GSObject:
    prof = galsim.Sersic(n=n, half_light_radius=hlr, trunc=_SERSIC_TRUNC * hlr, gsparams=_GSP)
    return prof.shear(q=min(q, 1.0), beta=pa_deg * galsim.degrees) if q < 1.0 else prof


def _galaxy_parts(g: Galaxy, scale: float) -> list[tuple[galsim.GSObject, Colour]]:
    """Analytic components with their r-band fluxes and colours."""
    parts: list[tuple[galsim.GSObject, Colour]] = []
    if g.bulge_frac > 0:
        b = _sersic(g.sersic_n, g.bulge_hlr, g.bulge_q, g.pa_deg)
        b = b.shift((g.x + g.bulge_dx) * scale, (g.y + g.bulge_dy) * scale)
        parts.append((b.withFlux(g.flux * g.bulge_frac), g.bulge_colour))
    if g.bar is not None:
        bar = _sersic(g.bar.n, g.bar.half_light_radius, g.bar.q, g.bar.pa_deg).shift(g.x * scale, g.y * scale)
        parts.append((bar.withFlux(g.flux * g.bar.frac), g.disk_colour))
    smooth = g.disk_flux * (1.0 - (g.spiral.frac if g.spiral else 0.0) - g.knot_frac)
    if smooth > 0 and g.lopsided == 0:
        if g.edge_on:
            d = galsim.InclinedExponential(
                g.inclination_deg * galsim.degrees,
                half_light_radius=g.disk_hlr,
                scale_h_over_r=g.h_over_r,
                gsparams=_GSP,
            ).rotate(g.pa_deg * galsim.degrees)
        else:
            d = galsim.Exponential(half_light_radius=g.disk_hlr, gsparams=_GSP).shear(
                q=g.disk_q, beta=g.pa_deg * galsim.degrees
            )
        parts.append((d.shift(g.x * scale, g.y * scale).withFlux(smooth), g.disk_colour))
    return parts


def _galaxy_textures(g: Galaxy, size: int, scale: float) -> list[tuple[np.ndarray, float, Colour]]:
    """Unit-sum texture maps (arms, lopsided disk) with their r fluxes and colours."""
    out: list[tuple[np.ndarray, float, Colour]] = []
    if g.spiral is None and g.lopsided == 0:
        return out
    h = g.disk_hlr / 1.678 / scale  # exponential scale length, pixels
    r, phi = disk_plane(size, g.x, g.y, g.disk_q, math.radians(g.pa_deg))
    if g.spiral is not None:
        s = g.spiral
        t = spiral_arms(r, phi, h, s.n_arms, s.pitch_deg, s.chirality, s.phase, s.r_start, s.sharpness)
        out.append((t, g.disk_flux * s.frac, g.disk_colour))
    if g.lopsided > 0:
        t = lopsided_disk(r, phi, h, g.lopsided, g.lopsided_angle)
        smooth = g.disk_flux * (1.0 - (g.spiral.frac if g.spiral else 0.0) - g.knot_frac)
        out.append((t, smooth, g.disk_colour))
    return [(t / t.sum(), f, c) for t, f, c in out if t.sum() > 0]


def _lane(g: Galaxy, n: int, scale: float) -> np.ndarray | None:
    """The dust lane's absorbed fraction on the padded FFT frame, in ``irfft2`` layout."""
    if g.dust <= 0:
        return None
    a = dust_lane(
        n,
        g.x,
        g.y,
        math.radians(g.pa_deg),
        g.dust,
        g.dust_width,
        g.dust_offset,
        3.0 * g.disk_hlr / 1.678 / scale,
    )
    return np.fft.ifftshift(a)


def _stream_splats(scene: Scene, splats: Splats) -> list[tuple[np.ndarray, np.ndarray, Colour]]:
    """Lay Gaussians along each stream; returns (ids, r fluxes, colour) per stream."""
    out = []
    for st in scene.streams:
        length = float(np.hypot(*np.diff(st.points, axis=0).T).sum())
        m = splat_points(400, length, min(st.sigma0, st.sigma1))
        pts = polyline(st.points, m)
        t = np.linspace(0.0, 1.0, m)
        sigma = st.sigma0 + (st.sigma1 - st.sigma0) * t
        # Brightness fades linearly along the stream; wider parts spread the same light.
        w = 1.0 + (st.fade - 1.0) * t
        ids = splats.add(pts[:, 0], pts[:, 1], sigma)
        out.append((ids, st.flux * w / w.sum(), st.colour))
    return out


def star_mask(scene: Scene, cfg: SynthConfig) -> np.ndarray:
    """Pixels where a star's r-band Moffat profile exceeds ``_MASK_SIGMA`` sky sigmas."""
    size, scale = cfg.size, cfg.pixel_scale
    mask = np.zeros((size, size), bool)
    st = scene.stars
    if len(st) == 0:
        return mask
    beta, fwhm = scene.psf.beta, scene.psf.fwhm[1]
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))  # arcsec
    level = _MASK_SIGMA * cfg.sky_sigma[1]
    c0 = (size - 1) / 2.0
    g = np.arange(size) - c0
    for x, y, f in zip(st.x, st.y, st.flux):
        peak = f * (beta - 1.0) / (math.pi * alpha * alpha) * scale * scale  # per pixel
        if peak <= level:
            continue
        rad = alpha * math.sqrt((peak / level) ** (1.0 / beta) - 1.0) / scale
        rad = max(rad, 1.0)
        mask |= (g[None, :] - x) ** 2 + (g[:, None] - y) ** 2 <= rad * rad
    return mask


def _k_image(prof: galsim.GSObject, n: int, scale: float) -> np.ndarray:
    """``prof``'s Fourier transform on the k grid of an ``n``×``n`` real image with pixel
    ``scale``, in numpy ``rfft2`` layout (so ``irfft2`` of it sums to the flux)."""
    kim = galsim.ImageCF(
        bounds=galsim.BoundsI(0, n // 2, -n // 2, n // 2 - 1), scale=2.0 * np.pi / (n * scale)
    )
    prof.drawKImage(image=kim, recenter=False)
    return np.fft.ifftshift(kim.array, axes=0)


@functools.lru_cache(maxsize=64)
def _moffat_radial(beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Fourier transform of a unit-flux Moffat of FWHM 1″ along |k| (1/arcsec), from GalSim.

    A Moffat's transform costs a Bessel function per k point (about 10 ms per band at
    256², a third of a whole render). It is round, and a Moffat of FWHM f is this one
    dilated by f, so one radial table per β (drawn on a grid by :mod:`.params`) serves every
    FWHM by interpolation.
    """
    m, du = 6000, 0.01  # |k| up to 60/arcsec, well past where the transform is ~0
    kim = galsim.ImageCD(bounds=galsim.BoundsI(0, m, 0, 0), scale=du)
    galsim.Moffat(beta=beta, fwhm=1.0, gsparams=_GSP).drawKImage(image=kim, recenter=False)
    return np.arange(m + 1) * du, kim.array[0].real.copy()


@functools.lru_cache(maxsize=8)
def _k_grid(n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """|k| (1/arcsec) on the ``rfft2`` grid of an n×n image, and the pixel's response there."""
    kx = 2.0 * np.pi * np.fft.rfftfreq(n, d=scale)
    ky = 2.0 * np.pi * np.fft.fftfreq(n, d=scale)
    kr = np.hypot(ky[:, None], kx[None, :])
    # the pixel is a box of side `scale`; np.sinc(x) = sin(πx)/(πx)
    pix = np.sinc(ky * scale / (2 * np.pi))[:, None] * np.sinc(kx * scale / (2 * np.pi))[None, :]
    kr.setflags(write=False)
    pix.setflags(write=False)
    return kr, pix


def _psf_k_image(beta: float, fwhm: float, n: int, scale: float) -> np.ndarray:
    """The Moffat PSF convolved with the pixel, on the same k grid as :func:`_k_image`."""
    u, table = _moffat_radial(beta)
    kr, pix = _k_grid(n, scale)
    return (np.interp(kr * fwhm, u, table, right=0.0) * pix).astype(np.complex64)


def render_scene(scene: Scene, cfg: SynthConfig, noise_rng: np.random.Generator) -> np.ndarray:
    """The (3, size, size) float32 g, r, z images of a scene, in nanomaggies, with noise.

    The convolution is done here rather than by ``drawImage``: GalSim would size its FFT
    from the scene's widest component (stars and neighbours far off-centre make it 1.5–2x
    the cutout) and would need the texture as an ``InterpolatedImage``. Instead each
    analytic component is drawn once in k space with ``drawKImage`` on the grid of the
    cutout plus a small margin and reused for the three bands with its colour, the
    texture's FFT is added, each band is multiplied by its PSF, and one inverse FFT gives
    the image. Light folded in from beyond the margin is far below the sky noise.
    """
    size, scale = cfg.size, cfg.pixel_scale
    pad = _FFT_MARGIN
    n = size + 2 * pad
    galaxies = [scene.main] + ([scene.companion] if scene.companion is not None else [])
    others: list[tuple[galsim.GSObject, Colour]] = []
    for g in galaxies[1:] + list(scene.neighbours):
        others += _galaxy_parts(g, scale)
    st = scene.stars
    for x, y, f, cg, cz in zip(st.x, st.y, st.flux, st.g, st.z):
        others.append(
            (
                galsim.DeltaFunction(flux=float(f), gsparams=_GSP).shift(x * scale, y * scale),
                Colour(float(cg), float(cz)),
            )
        )

    k = np.zeros((3, n, n // 2 + 1), np.complex64)
    lane = _lane(scene.main, n, scale)
    main = _galaxy_parts(scene.main, scale)
    for i, (prof, col) in enumerate(main + others):
        # For an even n the k grid's origin sits half a pixel off the frame centre; moving
        # the scene by that half pixel puts profiles where the numpy texture puts them.
        kk = _k_image(prof.shift(-0.5 * scale, -0.5 * scale), n, scale)
        if lane is not None and i < len(main):
            # dust absorbs the unconvolved light of the main galaxy, bulge included
            kk = kk - np.fft.rfft2(np.fft.irfft2(kk, s=(n, n)) * lane).astype(np.complex64)
        k += np.asarray(col.ratios(), np.float32)[:, None, None] * kk

    textures: list[tuple[np.ndarray, float, Colour]] = []
    for g in galaxies:
        textures += _galaxy_textures(g, size, scale)
    splats = Splats(size)
    blob_ids = splats.add(scene.blobs.x, scene.blobs.y, scene.blobs.sigma) if len(scene.blobs) else None
    streams = _stream_splats(scene, splats)
    p = scene.psf
    out = np.empty((3, size, size), np.float32)
    for b in range(3):
        tex = np.zeros((size, size))
        for t, f, col in textures:
            tex += t * (f * col.ratios()[b])
        if len(splats):
            flux = np.zeros(len(splats))
            if blob_ids is not None:
                flux[blob_ids] = (
                    scene.blobs.flux * (scene.blobs.g, np.ones(len(scene.blobs)), scene.blobs.z)[b]
                )
            for ids, f, col in streams:
                flux[ids] = f * col.ratios()[b]
            tex += splats.draw(flux)
        kb = k[b]
        if tex.any():
            kb = kb + np.fft.rfft2(np.fft.ifftshift(np.pad(tex, pad)))
        kb = kb * _psf_k_image(p.beta, p.fwhm[b], n, scale)
        img = np.fft.fftshift(np.fft.irfft2(kb, s=(n, n)))[pad : pad + size, pad : pad + size]
        # sky noise plus the object's own shot noise
        noise = noise_rng.standard_normal((size, size), dtype=np.float32)
        out[b] = img + noise * np.sqrt(cfg.sky_sigma[b] ** 2 + np.maximum(img, 0.0) / _GAIN)
    return out


def render_object(index: int, label: int, cfg: SynthConfig) -> Rendered:
    """Sample and draw object ``index`` of class ``label``; a pure function of its inputs."""
    rng, noise_rng = object_rngs(cfg.seed, index)
    scene = sample_scene(label, rng, cfg)
    grz = render_scene(scene, cfg, noise_rng)
    c0 = (cfg.size - 1) / 2.0
    st = scene.stars
    nb = scene.neighbours
    return Rendered(
        image=grz_to_rgb(grz),
        star_mask=star_mask(scene, cfg),
        truth=truth_row(scene, cfg.pixel_scale, cfg.size),
        star_xy=np.stack([st.x + c0, st.y + c0, st.flux], axis=1) if len(st) else np.zeros((0, 3)),
        neighbour_xy=np.array([[g.x + c0, g.y + c0, g.flux] for g in nb]).reshape(-1, 3),
        ra=scene.ra,
        dec=scene.dec,
        redshift=scene.redshift,
    )
