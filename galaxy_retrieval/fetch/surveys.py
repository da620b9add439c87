"""Cutout services of the surveys: which URL returns the image at (RA, Dec).

- Legacy Survey viewer (DESI Legacy Imaging Surveys DR10, the images of Galaxy10 DECaLS):
  ``https://www.legacysurvey.org/viewer/cutout.jpg?ra=…&dec=…&layer=ls-dr10&pixscale=0.262&size=256``
  (``cutout.fits`` with ``&bands=grz`` for calibrated fluxes). 0.262″/px is the native pixel
  scale of the DECam/90Prime/Mosaic co-adds.
- SDSS SkyServer ImgCutout (DR18):
  ``https://skyserver.sdss.org/dr18/SkyServerWS/ImgCutout/getjpeg?ra=…&dec=…&scale=0.396&width=256&height=256``;
  0.396″/px is the native SDSS camera scale. JPEG only (the gri colour composite).

A ``base_url`` replaces everything before the endpoint name (``cutout.jpg``, ``getjpeg``), so a
mirror or a test server on 127.0.0.1 serves the same paths and parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from ..errors import ConfigError

__all__ = ["Survey", "SURVEYS", "CutoutSpec", "cutout_url", "check_coordinates"]

CutoutFormat = Literal["jpeg", "fits"]


@dataclass(frozen=True)
class Survey:
    name: str
    base_url: str
    pixscale: float  # native arcsec/pixel
    formats: tuple[str, ...]
    default_layer: str | None = None
    default_bands: str | None = None


SURVEYS: dict[str, Survey] = {
    "legacy": Survey(
        "legacy", "https://www.legacysurvey.org/viewer", 0.262, ("jpeg", "fits"), "ls-dr10", "grz"
    ),
    "sdss": Survey("sdss", "https://skyserver.sdss.org/dr18/SkyServerWS/ImgCutout", 0.396, ("jpeg",)),
}

# A sanity bound, not a service limit: the services refuse or time out on very large cutouts,
# and a typo (25600) should fail here rather than as thousands of failed requests.
MAX_SIZE = 3000


@dataclass(frozen=True)
class CutoutSpec:
    """What to ask a survey for; every cutout of a run uses the same spec."""

    survey: str = "legacy"
    size: int = 256  # pixels per side
    pixscale: float | None = None  # arcsec/pixel; None: the survey's native scale
    bands: str | None = None  # FITS bands (Legacy: "grz"); None: the survey's default
    format: CutoutFormat = "jpeg"
    layer: str | None = None  # Legacy viewer layer; None: ls-dr10
    base_url: str | None = None  # a mirror (or a test server)

    def __post_init__(self) -> None:
        if self.survey not in SURVEYS:
            raise ConfigError(f"unknown survey {self.survey!r}; choices: {', '.join(SURVEYS)}")
        s = SURVEYS[self.survey]
        if self.format not in s.formats:
            raise ConfigError(
                f"survey {self.survey!r} serves {' and '.join(s.formats)} cutouts, not {self.format!r}"
            )
        if not 8 <= self.size <= MAX_SIZE:
            raise ConfigError(f"cutout size {self.size} px out of range: expected 8 … {MAX_SIZE}")
        if self.pixscale is not None and not (math.isfinite(self.pixscale) and 0 < self.pixscale <= 60):
            raise ConfigError(f"pixel scale {self.pixscale} arcsec/px out of range: expected (0, 60]")
        if self.bands is not None and (self.format != "fits" or not self.bands.isalpha()):
            raise ConfigError(f"bands {self.bands!r}: bands apply to FITS cutouts and are letters like 'grz'")

    @property
    def suffix(self) -> str:
        return ".fits" if self.format == "fits" else ".jpg"

    @property
    def scale(self) -> float:
        return SURVEYS[self.survey].pixscale if self.pixscale is None else self.pixscale


def check_coordinates(ra: float, dec: float) -> str | None:
    """Why (ra, dec) is not a sky position, or None when it is."""
    if not math.isfinite(ra) or not 0.0 <= ra < 360.0:
        return f"RA {ra:g} out of range: expected degrees in [0, 360)"
    if not math.isfinite(dec) or not -90.0 <= dec <= 90.0:
        return f"Dec {dec:g} out of range: expected degrees in [-90, 90]"
    return None


def cutout_url(spec: CutoutSpec, ra: float, dec: float) -> str:
    """The URL of the cutout centred on (ra, dec) in degrees."""
    why = check_coordinates(ra, dec)
    if why is not None:
        raise ConfigError(why)
    s = SURVEYS[spec.survey]
    base = (spec.base_url or s.base_url).rstrip("/")
    # 6 decimals = 0.0036″: far below a pixel, and stable text for caching
    pos = {"ra": f"{ra:.6f}", "dec": f"{dec:.6f}"}
    if spec.survey == "legacy":
        params = {
            **pos,
            "layer": spec.layer or s.default_layer,
            "pixscale": f"{spec.scale:g}",
            "size": str(spec.size),
        }
        if spec.format == "fits":
            params["bands"] = spec.bands or s.default_bands
        endpoint = "cutout.fits" if spec.format == "fits" else "cutout.jpg"
    else:
        params = {**pos, "scale": f"{spec.scale:g}", "width": str(spec.size), "height": str(spec.size)}
        endpoint = "getjpeg"
    return f"{base}/{endpoint}?{urlencode(params)}"
