"""The one configuration object of the synthetic catalog generator."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ConfigError

__all__ = ["SynthConfig", "BANDS"]

#: bands rendered, in the order they are stored and stretched (Legacy Survey grz)
BANDS: tuple[str, str, str] = ("g", "r", "z")


@dataclass(frozen=True)
class SynthConfig:
    """What to render and how; every field has the value ``gr synth`` uses by default.

    Observing conditions default to typical DECaLS DR8 coadds: 0.262″ pixels, Moffat seeing
    of 1.1–1.4″ FWHM in r, and per-pixel sky noise of about 0.007/0.011/0.025 nanomaggies
    in g/r/z. Fluxes are in nanomaggies (AB zero point 22.5) throughout.
    """

    n: int = 2000
    size: int = 256
    seed: int = 0
    workers: int | None = None  # None: os.cpu_count()
    pixel_scale: float = 0.262  # arcsec / pixel, DECaLS
    #: objects rendered per task handed to a worker; small enough to keep the progress bar
    #: moving, large enough that pickling and scheduling stay negligible
    chunk_size: int = 8
    #: range of the r-band PSF FWHM (arcsec); g is a little wider and z a little narrower
    psf_fwhm: tuple[float, float] = (1.1, 1.4)
    #: per-pixel Gaussian sky noise in g, r, z (nanomaggies)
    sky_sigma: tuple[float, float, float] = (0.007, 0.011, 0.025)
    #: mean number of foreground stars per cutout (Poisson)
    star_density: float = 1.6
    #: mean number of unrelated neighbouring galaxies per cutout (Poisson)
    neighbour_density: float = 1.5
    #: width of the padded per-object star and neighbour tables in ``truth``
    max_stars: int = 12
    max_neighbours: int = 8
    #: Dec range of the uniform-on-the-sphere sky positions; the default is roughly the
    #: DECaLS footprint's Dec extent
    dec_range: tuple[float, float] = (-20.0, 35.0)
    #: HDF5 compression of ``images`` ("gzip", "lzf" or None); off by default because
    #: noisy uint8 cutouts compress poorly and gzip would halve the writer's speed
    compression: str | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"synth config: {name}={getattr(self, name)!r} {why}")

        for name in ("n", "size", "seed", "chunk_size", "max_stars", "max_neighbours"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(name, "must be an integer")
        if self.n < 1:
            raise bad("n", "must be at least 1")
        if self.size < 32:
            raise bad("size", "must be at least 32 pixels")
        if self.size > 2048:
            raise bad("size", "must be at most 2048 pixels")
        if self.seed < 0:
            raise bad("seed", "must be non-negative")
        if self.workers is not None and (
            not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1
        ):
            raise bad("workers", "must be a positive integer or None (one per CPU)")
        if self.chunk_size < 1:
            raise bad("chunk_size", "must be at least 1")
        if not (isinstance(self.pixel_scale, (int, float)) and 0.01 <= self.pixel_scale <= 10.0):
            raise bad("pixel_scale", "must be between 0.01 and 10 arcsec/pixel")
        lo, hi = _pair(self, "psf_fwhm")
        if not (0 < lo <= hi <= 10):
            raise bad("psf_fwhm", "must be (lo, hi) arcsec with 0 < lo <= hi <= 10")
        if len(self.sky_sigma) != 3 or any(not _finite(s) or s <= 0 for s in self.sky_sigma):
            raise bad("sky_sigma", "must be three positive numbers (g, r, z nanomaggies)")
        for name in ("star_density", "neighbour_density"):
            v = getattr(self, name)
            if not _finite(v) or not 0 <= v <= 50:
                raise bad(name, "must be between 0 and 50")
        if self.max_stars < 1 or self.max_neighbours < 1:
            raise bad("max_stars" if self.max_stars < 1 else "max_neighbours", "must be at least 1")
        dlo, dhi = _pair(self, "dec_range")
        if not (-90 <= dlo < dhi <= 90):
            raise bad("dec_range", "must be (lo, hi) degrees with -90 <= lo < hi <= 90")
        if self.compression not in (None, "gzip", "lzf"):
            raise bad("compression", "must be 'gzip', 'lzf' or None")

    def resolved_workers(self) -> int:
        import os

        return self.workers if self.workers is not None else max(1, os.cpu_count() or 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pair(cfg: SynthConfig, name: str) -> tuple[float, float]:
    v = getattr(cfg, name)
    try:
        lo, hi = v
    except (TypeError, ValueError):
        raise ConfigError(f"synth config: {name}={v!r} must be a pair (lo, hi)") from None
    if not (_finite(lo) and _finite(hi)):
        raise ConfigError(f"synth config: {name}={v!r} must be a pair of finite numbers")
    return float(lo), float(hi)
