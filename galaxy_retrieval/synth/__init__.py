"""Synthetic Galaxy10 DECaLS catalogs rendered with GalSim.

    from galaxy_retrieval.synth import SynthConfig, generate_catalog
    generate_catalog(SynthConfig(n=2000, seed=0), "data/demo.h5")

The ten Galaxy10 classes are drawn in equal numbers from class-specific models (Sérsic
bulges, exponential disks, logarithmic spiral arms, bars, knots, companions with tidal
tails, lopsided clumpy disks, edge-on disks), observed in g, r, z through a Moffat PSF
with sky noise, among foreground stars and neighbouring galaxies, and stretched to RGB
the way Galaxy Zoo DECaLS made its cutouts. The true parameters go into the file's
``truth`` group. Module map: :mod:`.config` (settings), :mod:`.params` (what to draw per
class), :mod:`.scene` (the drawn parameters and truth columns), :mod:`.texture` (arms,
knots, streams on the pixel grid), :mod:`.render` (GalSim drawing, noise),
:mod:`.stretch` (grz → RGB), :mod:`.generate` (parallel HDF5 writer).
"""

from __future__ import annotations

from .config import SynthConfig
from .generate import balanced_labels, generate_catalog

__all__ = ["SynthConfig", "generate_catalog", "balanced_labels", "render_object"]


def __getattr__(name: str):
    # GalSim takes ~0.5 s to import; keep `import galaxy_retrieval.synth` (the CLI) fast.
    if name == "render_object":
        from .render import render_object

        return render_object
    raise AttributeError(f"module 'galaxy_retrieval.synth' has no attribute {name!r}")
