"""The classical descriptors, defined in :mod:`galaxy_retrieval.descriptors` (low in the
layering, so that the model's descriptor fusion can use them); re-exported here, where the
evaluation has always imported them from."""

from ..descriptors import (  # noqa: F401
    MORPHOLOGY_NAMES,
    PIXEL_SIDE,
    morphology_features,
    pixel_features,
    polar_fourier_features,
    standardize,
)

__all__ = [
    "PIXEL_SIDE",
    "pixel_features",
    "polar_fourier_features",
    "morphology_features",
    "MORPHOLOGY_NAMES",
    "standardize",
]
