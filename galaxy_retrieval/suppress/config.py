"""What source suppression does: :class:`SuppressConfig` and the named :data:`PRESETS`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ConfigError

#: ``"sky"``: copies of random sky pixels nearby (keeps the sky's texture, noise level and
#: colour); ``"background"``: the smooth local sky level only, no noise
FILL_MODES: tuple[str, ...] = ("sky", "background")


@dataclass(frozen=True)
class SuppressConfig:
    """How sources are detected and which of them are suppressed.

    Distances given as fractions are fractions of the shorter image side, so one config
    suits 256-pixel DECaLS cutouts and 300-pixel FIRST images alike.
    """

    #: detection threshold per pixel, in units of the background rms of the channel sum
    thresh: float = 1.5
    #: minimum number of connected pixels above threshold for a source
    minarea: int = 5
    #: deblending: number of sub-thresholds, and the minimum flux fraction a branch needs
    #: to become a separate source (1.0 switches deblending off)
    deblend_nthresh: int = 32
    deblend_cont: float = 0.005
    #: side of the background mesh boxes (pixels; clipped to the image size)
    back_size: int = 64
    #: every suppressed segment is grown by this many pixels ...
    dilate: int = 2
    #: ... and by an ellipse of the segment's shape and area scaled up by this factor
    #: (0.5: 1.5 times the isophotal ellipse's axes), which takes bright stars' halos,
    #: whose light stays above the sky well outside the detection isophote
    grow: float = 0.5
    #: the central object must have a pixel within this fraction of the shorter side of
    #: the image centre; otherwise nothing is suppressed
    center_radius: float = 0.1
    #: keep every source deblended from the central object's footprint (connected to it
    #: above the threshold): merger companions, arms and tails the deblender split off.
    #: The cost: a star superposed on or touching the galaxy is kept as well. On 200
    #: synthetic cutouts with stars (data/demo.h5) this keeps 23% of the star pixels;
    #: ``False`` (with ``deblend_cont=0.1``) keeps 18% but deletes the companion of 3 in
    #: 150 mergers, and 13% at ``deblend_cont=0.05`` deletes it in 18 of 150.
    keep_blended: bool = True
    #: keep every source whose centroid lies within this fraction of the shorter side of
    #: the centre (0: off). For radio images, where an FR II's lobes are separate blobs.
    keep_radius: float = 0.0
    #: what suppressed pixels become: one of :data:`FILL_MODES`
    fill: str = "sky"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"suppress config: {name}={getattr(self, name)!r} {why}")

        for name in ("minarea", "deblend_nthresh", "back_size", "dilate"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(name, "must be an integer")
        for name in ("thresh", "deblend_cont", "grow", "center_radius", "keep_radius"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise bad(name, "must be a finite number")
        if not self.thresh > 0:
            raise bad("thresh", "must be positive (units of the background rms)")
        if self.minarea < 1:
            raise bad("minarea", "must be at least 1 pixel")
        if not 1 <= self.deblend_nthresh <= 256:
            raise bad("deblend_nthresh", "must be between 1 and 256")
        if not 0 <= self.deblend_cont <= 1:
            raise bad("deblend_cont", "must be between 0 and 1 (1 switches deblending off)")
        if self.back_size < 4:
            raise bad("back_size", "must be at least 4 pixels")
        if not 0 <= self.dilate <= 64:
            raise bad("dilate", "must be between 0 and 64 pixels")
        if not 0 <= self.grow <= 10:
            raise bad("grow", "must be between 0 and 10")
        if not 0 <= self.center_radius <= 1:
            raise bad("center_radius", "must be between 0 and 1 (fraction of the shorter image side)")
        if not 0 <= self.keep_radius <= 1:
            raise bad("keep_radius", "must be between 0 and 1 (fraction of the shorter image side)")
        if not isinstance(self.keep_blended, bool):
            raise bad("keep_blended", "must be True or False")
        if self.fill not in FILL_MODES:
            raise bad("fill", f"must be one of {', '.join(repr(m) for m in FILL_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SuppressConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass)."""
        if not isinstance(d, dict):
            raise ConfigError(f"suppress config: expected a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"suppress config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**d)


#: named configs: optical survey cutouts (the default) and radio images (FIRST), where an
#: FR II's lobes are separate sources off the core: every source whose centroid lies
#: within 0.3 of the image side (90 px, 2.7' of a 300 px FIRST cutout) is kept
PRESETS: dict[str, SuppressConfig] = {
    "optical": SuppressConfig(),
    "radio": SuppressConfig(keep_radius=0.3),
}
