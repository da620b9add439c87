"""Classical image descriptors: the baselines a learned embedding has to beat.

An astronomer without a neural network would compare galaxies by

- **raw pixels** (:func:`pixel_features`): the image area-downsampled to 16×16×3;
- a **rotation-invariant polar descriptor** (:func:`polar_fourier_features`): the image
  resampled on a polar grid around its centre (``n_r`` radii × ``n_theta`` angles, per
  colour channel), then the magnitude of the Fourier transform along the angle. A rotation
  of the image is a cyclic shift along the angle, which the magnitude ignores; a flip
  conjugates the transform, which the magnitude ignores too. Mode 0 is the radial profile,
  mode 2 an elongation (bar, inclined disc), modes 1 and 3 lopsidedness and three-fold
  structure, higher modes arms;
- **non-parametric morphology** (:func:`morphology_features`): concentration, asymmetry,
  smoothness (Conselice 2003), Gini and M20 (Lotz et al. 2004), ellipticity, and the
  mean colours of the galaxy, each z-scored over the catalog by the caller.

All work on [0, 1] float images (B, 3, S, S), the same framed model input the network sees,
and return float32 (B, D) vectors. They are ranked with cosine similarity after
standardisation (:func:`standardize`): their components have different units.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "polar_grid",
    "PIXEL_SIDE",
    "pixel_features",
    "polar_fourier_features",
    "morphology_features",
    "MORPHOLOGY_NAMES",
    "standardize",
]

PIXEL_SIDE = 16


def polar_grid(n_r: int, n_theta: int) -> torch.Tensor:
    """(1, n_r, n_theta, 2) ring sampling points in ``grid_sample``'s [-1, 1] coordinates:
    ``n_r`` radii at ring centres out to the inscribed circle, ``n_theta`` angles from 0
    (the rings of the polar descriptor and of the polar backbone alike)."""
    r = (torch.arange(n_r, dtype=torch.float32) + 0.5) / n_r
    t = torch.arange(n_theta, dtype=torch.float32) * (2 * math.pi / n_theta)
    rr, tt = torch.meshgrid(r, t, indexing="ij")
    return torch.stack([rr * torch.cos(tt), rr * torch.sin(tt)], dim=-1)[None]


def pixel_features(x01: torch.Tensor, side: int = PIXEL_SIDE) -> np.ndarray:
    """Raw-pixel baseline: [0, 1] images (B, 3, S, S) → area-downsampled (B, 3·side²) float32."""
    x = F.interpolate(x01.float().cpu(), size=(side, side), mode="area")
    return x.reshape(x.shape[0], -1).numpy().astype(np.float32)


def polar_fourier_features(x01: torch.Tensor, n_r: int = 16, n_theta: int = 32, modes: int = 8) -> np.ndarray:
    """|FFT over angle| of a polar resampling: (B, 3, S, S) → (B, 3·n_r·(modes+1)) float32.

    Each image is first smoothed to the polar grid's angular resolution at mid radius (so
    the samples do not alias noise), resampled at ``n_r`` radii out to the inscribed circle
    and ``n_theta`` angles, and the magnitudes of Fourier modes 0…``modes`` along the angle
    are kept. Invariant to rotations about the centre (exactly for multiples of
    360°/``n_theta``, up to interpolation otherwise) and to flips.
    """
    x = x01.float().cpu()
    s = x.shape[-1]
    # the polar samples at mid radius are 2π(s/4)/n_theta pixels apart
    step = max(1, int(round(math.pi * s / 2 / n_theta / 2)))
    if step > 1:
        x = F.avg_pool2d(x, kernel_size=2 * step - 1, stride=1, padding=step - 1, count_include_pad=False)
    grid = polar_grid(n_r, n_theta).expand(x.shape[0], -1, -1, -1)
    p = F.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # (B, 3, n_r, n_theta)
    spec = torch.fft.rfft(p, dim=-1).abs()[..., : modes + 1] / n_theta
    return spec.reshape(spec.shape[0], -1).numpy().astype(np.float32)


MORPHOLOGY_NAMES: tuple[str, ...] = (
    "concentration",
    "asymmetry",
    "smoothness",
    "gini",
    "m20",
    "ellipticity",
    "r50",
    "colour_r_g",
    "colour_b_g",
)


def _segment(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sky-subtracted image ``d``, pixel radii ``r`` and indices ``(yy, xx)`` from the
    centre, and the galaxy's segment ``seg`` of one grey (S, S) image."""
    s = grey.shape[0]
    # sky: the median of the frame's border, whose scatter sets the segmentation threshold
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    sky = float(np.median(border))
    sig = float(1.4826 * np.median(np.abs(border - sky))) + 1e-4
    d = grey - sky
    yy, xx = np.indices(grey.shape)
    c = (s - 1) / 2.0
    r = np.hypot(yy - c, xx - c)
    # the galaxy: pixels above 2σ of the sky within the inscribed circle (the framed
    # cutout is centred on it)
    seg = (d > 2 * sig) & (r <= s / 2)
    if seg.sum() < 4:
        seg = r <= s / 4
    return d, r, yy, xx, seg


def _growth_radii(f: np.ndarray, r: np.ndarray, s: int) -> tuple[float, float, float]:
    """Radii holding 20, 50 and 80 % of the light ``f`` within the inscribed circle (r20 at least 0.5)."""
    tot = f[r <= s / 2].sum() + 1e-12
    ri = np.floor(r).astype(int)
    prof = np.bincount(ri[r <= s / 2], weights=f[r <= s / 2], minlength=s // 2 + 1)
    # cum[i]: light within radius i + 1; interpolated between the 1-pixel rings
    cum = np.concatenate([[0.0], np.maximum.accumulate(np.cumsum(prof) / tot)])
    edges = np.arange(cum.size, dtype=np.float64)
    r20, r50, r80 = (float(np.interp(q, cum, edges)) for q in (0.2, 0.5, 0.8))
    r20 = max(r20, 0.5)
    return r20, r50, r80


def _asymmetry(d: np.ndarray, seg: np.ndarray) -> float:
    """|I − I rotated by 180°| / |I| inside the segment, minus the sky's own."""
    rot = d[::-1, ::-1]
    both = seg | seg[::-1, ::-1]
    return float(np.abs(d - rot)[both].sum() / (np.abs(d)[both].sum() + 1e-12))


def _smoothness(d: np.ndarray, seg: np.ndarray, r: np.ndarray, r20: float) -> float:
    """Residual from a boxcar smoothed copy (width ~ r20), outside the core."""
    k = max(1, int(round(r20 / 2)))
    pad = np.pad(d, k, mode="edge")
    cs = pad.cumsum(0).cumsum(1)
    cs = np.pad(cs, ((1, 0), (1, 0)))
    w = 2 * k + 1
    sm = (cs[w:, w:] - cs[:-w, w:] - cs[w:, :-w] + cs[:-w, :-w]) / (w * w)
    outer = seg & (r > r20)
    return (
        float(np.clip(d - sm, 0, None)[outer].sum() / (np.abs(d)[outer].sum() + 1e-12))
        if outer.any()
        else 0.0
    )


def _gini(f: np.ndarray, seg: np.ndarray) -> float:
    """Gini of the segment's pixel values."""
    v = np.sort(f[seg])
    n = v.size
    return (
        float(((2 * np.arange(1, n + 1) - n - 1) * v).sum() / (v.mean() * n * (n - 1) + 1e-12))
        if n > 1
        else 0.0
    )


def _m20_and_ellipticity(
    f: np.ndarray, seg: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> tuple[float, float]:
    """M20 (second moment of the brightest 20 % of the light relative to the total) and
    the ellipticity from the flux-weighted second moments of the segment."""
    vals = f[seg]
    ys, xs = yy[seg], xx[seg]
    ftot = vals.sum() + 1e-12
    xc, yc = (vals * xs).sum() / ftot, (vals * ys).sum() / ftot
    mom = vals * ((xs - xc) ** 2 + (ys - yc) ** 2)
    order = np.argsort(vals)[::-1]
    top = np.cumsum(vals[order]) <= 0.2 * ftot
    top[0] = True
    m20 = math.log10((mom[order][top].sum() + 1e-12) / (mom.sum() + 1e-12))
    # ellipticity from the flux-weighted second moments
    cxx = (vals * (xs - xc) ** 2).sum() / ftot
    cyy = (vals * (ys - yc) ** 2).sum() / ftot
    cxy = (vals * (xs - xc) * (ys - yc)).sum() / ftot
    tr, det = cxx + cyy, cxx * cyy - cxy**2
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    l1, l2 = tr / 2 + disc, max(tr / 2 - disc, 1e-12)
    ell = 1 - math.sqrt(l2 / l1) if l1 > 0 else 0.0
    return m20, ell


def _colours(img: np.ndarray, seg: np.ndarray) -> tuple[float, float]:
    """Colours r − g and b − g of the galaxy's light (ratios of channel fluxes, as magnitudes)."""
    ch = (
        np.array(
            [
                np.clip(img[i] - np.median(np.concatenate([img[i][0], img[i][-1]])), 0, None)[seg].sum()
                for i in range(3)
            ]
        )
        + 1e-6
    )
    col_rg = -2.5 * math.log10(ch[0] / ch[1])
    col_bg = -2.5 * math.log10(ch[2] / ch[1])
    return col_rg, col_bg


def _morph_one(img: np.ndarray) -> np.ndarray:
    """Morphology of one (3, S, S) image in [0, 1] (see :data:`MORPHOLOGY_NAMES`)."""
    grey = img.mean(axis=0).astype(np.float64)
    s = grey.shape[0]
    d, r, yy, xx, seg = _segment(grey)
    f = np.clip(d, 0.0, None)
    # concentration: 5 log10(r80 / r20) of the circular growth curve around the centre
    r20, r50, r80 = _growth_radii(f, r, s)
    conc = 5 * math.log10(r80 / r20)
    asym = _asymmetry(d, seg)
    smooth = _smoothness(d, seg, r, r20)
    gini = _gini(f, seg)
    m20, ell = _m20_and_ellipticity(f, seg, yy, xx)
    col_rg, col_bg = _colours(img, seg)
    return np.array([conc, asym, smooth, gini, m20, ell, r50 / s, col_rg, col_bg], dtype=np.float64)


def morphology_features(x01: torch.Tensor) -> np.ndarray:
    """Non-parametric morphology of each [0, 1] image (B, 3, S, S) → (B, 9) float32
    (:data:`MORPHOLOGY_NAMES`); standardise over the catalog before comparing."""
    x = x01.float().cpu().numpy()
    out = np.stack([_morph_one(im) for im in x]) if len(x) else np.zeros((0, len(MORPHOLOGY_NAMES)))
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def standardize(x: np.ndarray) -> np.ndarray:
    """Each column to zero mean and unit variance over the rows (constant columns to 0)."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    return ((x - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
