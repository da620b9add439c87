"""grz fluxes → uint8 RGB, the way Galaxy Zoo DECaLS made the Galaxy10 DECaLS cutouts.

Galaxy10 DECaLS images are the Galaxy Zoo DECaLS subject images (Walmsley et al. 2022),
made from Legacy Survey grz coadds with Dustin Lang's DR2-style colour mapping: each band
divided by a per-band scale (z → red, r → green, g → blue), an ``asinh`` stretch applied
per pixel, a fixed black and white point, and a desaturation of pixels dominated by one
band so sky noise is not a carpet of coloured speckles. The constants below are that
mapping's; the code is written from its description.
"""

from __future__ import annotations

import numpy as np

__all__ = ["grz_to_rgb", "GRZ_SCALES", "STRETCH_RANGE"]

#: nanomaggies per unit of stretched intensity, for g, r, z (blue, green, red planes)
GRZ_SCALES: tuple[float, float, float] = (0.008, 0.014, 0.019)
#: values (in scaled units, before asinh) mapped to black and to white
STRETCH_RANGE: tuple[float, float] = (-0.5, 300.0)


def grz_to_rgb(grz: np.ndarray) -> np.ndarray:
    """Map a (3, H, W) float array of g, r, z fluxes (nanomaggies) to uint8 (H, W, 3)."""
    g, r, z = (np.asarray(b, np.float32) / np.float32(s) for b, s in zip(grz, GRZ_SCALES))
    lo, hi = (float(np.arcsinh(v)) for v in STRETCH_RANGE)
    rgb = (np.arcsinh(np.stack([z, r, g])) - np.float32(lo)) / np.float32(hi - lo)  # (3, H, W): R, G, B
    rgb = _desaturate(rgb)
    out = np.clip(rgb, 0.0, 1.0) * np.float32(255.0)
    # floor, not round, like the reference pipeline's uint8 cast
    return np.ascontiguousarray(np.moveaxis(out, 0, -1).astype(np.uint8))


def _desaturate(rgb: np.ndarray) -> np.ndarray:
    """Pull pixels whose colour is dominated by one plane towards grey.

    ``dev`` is the largest plane-to-mean ratio (scaled so that 2.5× the mean is "fully
    dominated"); such pixels are replaced by a mix of their mean and a term that keeps
    some of the colour, so bright stars and cores keep their hue while lone noise spikes
    in one band become neutral.
    """
    mean = rgb.mean(axis=0)
    mean[mean == 0] = 1.0
    dev = np.minimum((rgb / mean).max(axis=0) / np.float32(2.5), np.float32(1.0))
    w = np.sin((1 - dev) * np.float32(np.pi / 2))
    return rgb * w + mean * (1 - w) + mean * (1 - w) ** 2 * rgb
