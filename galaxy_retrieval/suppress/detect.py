"""Finding the sources of a cutout and which of them belong to the central object (``sep``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import CatalogError, ConfigError
from ..sources import extract_sources
from .config import SuppressConfig

# Images smaller than this (either side) are returned as they are: too few pixels for a
# background estimate, and nothing a retrieval model would see anyway.
_MIN_SIZE = 8
# sep.extract failures (deblending overflow) are retried with the
# threshold multiplied by this, this many times, before giving up on the image.
_RETRY_FACTOR = 2.0
_RETRIES = 3


@dataclass(frozen=True, eq=False)
class Detection:
    """What :func:`detect_sources` found in one image (for diagnostics and plots)."""

    segmap: np.ndarray  # int32 (H, W): 0 sky, i + 1 for source i
    central: int  # label of the central object in ``segmap``; 0 when none was found
    kept: np.ndarray  # bool (H, W): pixels of the sources kept (central one included)
    suppressed: np.ndarray  # bool (H, W): pixels to be replaced by sky
    n_sources: int
    thresh: float  # the threshold finally used (higher than the config's after a retry)


def check_uint8_image(image: object, where: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise CatalogError(f"{where}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise CatalogError(f"{where}: expected a uint8 image, got dtype {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise CatalogError(
            f"{where}: expected shape (H, W) or (H, W, C) with 1-4 channels, got {image.shape}"
        )
    return image


def sep_planes(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float64, C-contiguous: what sep wants."""
    a = image[:, :, None] if image.ndim == 2 else image
    return np.ascontiguousarray(np.moveaxis(a, -1, 0), dtype=np.float64)


def dilate_mask(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by ``r`` pixels with an octagonal element (alternating 4- and
    8-neighbour steps: close to a disk, no scipy needed)."""
    m = mask.copy()
    for i in range(r):
        g = m.copy()
        g[1:] |= m[:-1]
        g[:-1] |= m[1:]
        g[:, 1:] |= m[:, :-1]
        g[:, :-1] |= m[:, 1:]
        if i % 2:
            g[1:, 1:] |= m[:-1, :-1]
            g[:-1, :-1] |= m[1:, 1:]
            g[1:, :-1] |= m[:-1, 1:]
            g[:-1, 1:] |= m[1:, :-1]
        m = g
    return m


def _family(segmap: np.ndarray, label: int, n: int) -> np.ndarray:
    """Labels (bool over 0..n) of the sources connected to ``label`` through touching
    segments, i.e. deblended from the same footprint above the threshold."""
    parent = np.arange(n + 1)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    s = segmap
    for a, b in ((s[:, :-1], s[:, 1:]), (s[:-1], s[1:]), (s[:-1, :-1], s[1:, 1:]), (s[:-1, 1:], s[1:, :-1])):
        touch = (a > 0) & (b > 0) & (a != b)
        if touch.any():
            pairs = np.unique(np.stack([a[touch], b[touch]], axis=1), axis=0)
            for i, j in pairs:
                ri, rj = find(int(i)), find(int(j))
                if ri != rj:
                    parent[ri] = rj
    root = find(label)
    return np.array([find(i) == root for i in range(n + 1)]) & (np.arange(n + 1) > 0)


def _extract(det: np.ndarray, rms: float, cfg: SuppressConfig) -> tuple[np.ndarray, np.ndarray, float] | None:
    got = extract_sources(
        det,
        cfg.thresh,
        err=rms,
        minarea=cfg.minarea,
        deblend_nthresh=cfg.deblend_nthresh,
        deblend_cont=cfg.deblend_cont,
        tries=_RETRIES + 1,
        factor=_RETRY_FACTOR,
    )
    if got is None:
        return None
    objs, seg, thresh = got
    return objs, seg.astype(np.int32, copy=False), thresh


def _empty(shape: tuple[int, int]) -> Detection:
    z = np.zeros(shape, bool)
    return Detection(np.zeros(shape, np.int32), 0, z, z.copy(), 0, float("nan"))


def detect_sources(image: np.ndarray, cfg: SuppressConfig = SuppressConfig()) -> Detection:
    """Find the sources of a uint8 (H, W) or (H, W, C) image, the central one, and the
    pixels :func:`suppress_sources` would replace. Nothing is suppressed (``central == 0``)
    when the image is tiny or blank, no source is near the centre, or sep fails."""
    import sep

    check_uint8_image(image, "detect_sources")
    if not isinstance(cfg, SuppressConfig):
        raise ConfigError(f"detect_sources: expected a SuppressConfig, got {type(cfg).__name__}")
    h, w = image.shape[:2]
    if min(h, w) < _MIN_SIZE:
        return _empty((h, w))
    planes = sep_planes(image)
    det = np.ascontiguousarray(planes.sum(axis=0))
    box = min(cfg.back_size, h, w)
    bkg = sep.Background(det, bw=box, bh=box)
    # Floor at the uint8 quantisation noise of the channel sum, so a noise-free image
    # gets a meaningful threshold and a constant one no detections.
    rms = max(float(bkg.globalrms), math.sqrt(planes.shape[0] / 12.0))
    found = _extract(np.ascontiguousarray(det - bkg.back()), rms, cfg)
    if found is None:
        return _empty((h, w))
    objs, seg, thresh = found
    n = len(objs)
    if n == 0:
        return Detection(seg, 0, np.zeros((h, w), bool), np.zeros((h, w), bool), 0, thresh)

    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    side = min(h, w)
    # the segment under the centre, else the one with a pixel nearest to it (the first
    # case is the second at distance <= 0.71 px, so one rule does both)
    ys, xs = np.nonzero(seg)
    d2 = (ys - cy) ** 2 + (xs - cx) ** 2
    k = int(np.argmin(d2))
    central = int(seg[ys[k], xs[k]]) if d2[k] <= (cfg.center_radius * side) ** 2 + 0.5 else 0
    if central == 0:
        return Detection(seg, 0, np.zeros((h, w), bool), np.zeros((h, w), bool), n, thresh)

    keep_label = np.zeros(n + 1, bool)
    keep_label[central] = True
    if cfg.keep_blended:
        keep_label |= _family(seg, central, n)
    if cfg.keep_radius > 0:
        near = (objs["x"] - cx) ** 2 + (objs["y"] - cy) ** 2 <= (cfg.keep_radius * side) ** 2
        keep_label[1:] |= near
    kept = keep_label[seg]
    other_label = ~keep_label
    other_label[0] = False
    other = other_label[seg]
    sup = dilate_mask(other, cfg.dilate) if cfg.dilate else other.copy()
    if cfg.grow > 0:
        idx = np.nonzero(other_label[1:])[0]
        if idx.size:
            o = objs[idx]
            # the isophotal ellipse: sep's shape (a/b, theta) with the segment's area
            ratio = np.clip(o["a"] / np.maximum(o["b"], 1e-3), 1.0, 20.0)
            r_eq = np.sqrt(o["npix"] / np.pi)
            a = r_eq * np.sqrt(ratio) * (1.0 + cfg.grow)
            b = r_eq / np.sqrt(ratio) * (1.0 + cfg.grow)
            ell = np.zeros((h, w), bool)
            sep.mask_ellipse(ell, o["x"], o["y"], a, b, o["theta"], r=1.0)
            sup |= ell
    sup &= ~kept
    return Detection(seg, central, kept, sup, n, thresh)
