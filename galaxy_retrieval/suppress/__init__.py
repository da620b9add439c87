"""Galaxy-focused input: replace every source but the central one by empty sky.

The paper's largest failure (§5) is cutouts whose embedding is swayed by a bright
foreground star or a neighbouring galaxy; its future work proposes to "detect the central
object and suppress other sources before embedding". This package does that with Source
Extractor (the ``sep`` library):

1. detect sources on the channel sum of the (stretched, uint8) cutout, with a mesh
   background and a threshold in units of its rms, deblending blended sources;
2. take the *central* object: the segment under the centre pixel, else the segment with a
   pixel nearest the centre within ``center_radius``; with none, the image is left as it is;
3. grow the segments of all *other* sources (a few pixels, plus an ellipse a little larger
   than each isophote) so star halos and neighbours' wings go too;
4. replace those pixels by empty sky rather than a black hole: each takes the value of a
   random source-free pixel nearby (all channels together), which keeps the sky's level,
   gradient, noise distribution and colour; ``fill="background"`` uses the smooth local
   sky level instead.

The central segment is never touched. By default the segments deblended *from* the
central object's footprint (a merger's second nucleus, an arm or tidal tail the deblender
split off, a knot) are kept too, at the price of keeping a star that sits on the galaxy
(see :class:`SuppressConfig.keep_blended`). For radio images, whose FR II lobes are
separate blobs off the centre, ``keep_radius`` keeps every source near the centre; the
``"radio"`` entry of :data:`PRESETS` sets it.

Pixels are stretched values, not linear flux, but thresholds relative to the measured sky
rms work the same way: near the sky level the asinh stretch is linear.

    from galaxy_retrieval.suppress import SuppressConfig, suppress_sources
    clean = suppress_sources(image)                       # uint8 (H, W, 3) -> same
    clean, det = suppress_sources(image, return_mask=True)  # det.suppressed: bool (H, W)
"""

from __future__ import annotations

from .config import FILL_MODES, PRESETS, SuppressConfig
from .detect import Detection, detect_sources
from .fill import suppress_batch, suppress_sources

__all__ = [
    "SuppressConfig",
    "Detection",
    "PRESETS",
    "FILL_MODES",
    "detect_sources",
    "suppress_sources",
    "suppress_batch",
]
