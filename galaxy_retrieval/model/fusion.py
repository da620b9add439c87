"""Descriptor fusion: the indexed vector is the network's embedding beside a classical descriptor.

On real survey cutouts the learned embedding and the rotation-invariant polar Fourier
descriptor (:func:`galaxy_retrieval.descriptors.polar_fourier_features`) fail on different
galaxies: the network wins on spirals and edge-on discs, the descriptor on smooth
ellipticals and mergers, whose radial light profile it keeps exactly
(benchmarks/quality/README.md). Concatenating the two unit vectors gives one vector that the
FAISS shortlist and the exact reranker handle like any other:

    v = [ √(1 − w) · z / ‖z‖ ,  √w · d̂ / ‖d̂‖ ],   d̂ = (d − μ) / σ

``w`` is the descriptor's share of the vector's squared norm (so ``v`` is a unit vector and
its cosine with another is the w-weighted mean of the two parts' cosines); μ and σ are the
descriptor's per-component statistics over the *training* images (label-free, stored with
the checkpoint so that queries and the index are standardised alike).

With ``components`` the standardised descriptor is first projected on its leading principal
axes over the training images (label-free too): the 432 polar Fourier numbers are strongly
correlated (32 axes hold 78–85 % of their variance on the real development sets), and on
those sets the fused vector with 32 of them retrieves as well as with all 432
(``benchmarks/quality/README.md``), at 288 instead of 688 dimensions for a 256-d network: the
index stays close to the network's own size.

``TrainConfig`` leaves the fusion off (``fusion_share`` None); ``gr train``'s recipe turns it on
(``train.config.RECIPE_FUSION_SHARE``, 32 axes): on the real development catalogs it adds
+0.002 to +0.01 precision@10 to the fine-tuned model (benchmarks/quality/README.md,
docs/model-card.md). The shipped model carries the same fusion (statistics over its
pretraining images, ``pipelines/pretrain.py``): with it, the model as indexed leads the best
descriptor by +0.05 on a catalog it never saw, the network alone by +0.04. When
asked for without a share, ``DEFAULT_SHARE`` = 0.1 is used, chosen without the real
catalogs' labels:
``benchmarks/quality/fusion_share.py`` sweeps a fixed grid on the simulated ten-class
GalSim catalog (classes known by construction) with the shipped model and takes the best
(``benchmarks/results/fusion_share.json``; the real development catalogs are reported
beside it, not used). Augmentation-based label-free signals cannot choose it: the
descriptor is far less stable under the training augmentations than the network, so they
always prefer the network alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..descriptors import polar_fourier_features
from ..errors import CheckpointError, ConfigError

__all__ = [
    "DescriptorFusion",
    "fuse",
    "fit_fusion",
    "principal_axes",
    "standardisation",
    "DEFAULT_SHARE",
    "DEFAULT_COMPONENTS",
    "DESCRIPTORS",
]

#: the descriptor's share of the fused vector's squared norm when nothing else is chosen:
#: chosen on the simulated catalog (module doc), checked against the JSON by the tests
DEFAULT_SHARE = 0.1
#: principal axes of the standardised descriptor kept when training asks for fusion and says
#: nothing else (module doc): a label-free size, not tuned on the labels
DEFAULT_COMPONENTS = 32
#: descriptors that can be fused (name → function of [0, 1] images (B, 3, S, S))
DESCRIPTORS = {"polar_fourier": polar_fourier_features}


@dataclass(frozen=True)
class DescriptorFusion:
    """What the embedder appends to the network's vector (module doc)."""

    share: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    descriptor: str = "polar_fourier"
    # (k, len(mean)) principal axes the standardised descriptor is projected on; None: all of it
    components: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.descriptor not in DESCRIPTORS:
            raise ConfigError(f"fusion descriptor {self.descriptor!r}; choices: {', '.join(DESCRIPTORS)}")
        if not (isinstance(self.share, (int, float)) and 0.0 <= float(self.share) < 1.0):
            raise ConfigError(f"fusion share={self.share!r} must be a number in [0, 1)")
        if len(self.mean) != len(self.std) or not self.mean:
            raise ConfigError("fusion mean and std must be non-empty and of one length")
        if self.components is not None and (
            not self.components or any(len(row) != len(self.mean) for row in self.components)
        ):
            raise ConfigError(f"fusion components must be non-empty rows of {len(self.mean)} numbers")

    @property
    def dim(self) -> int:
        return len(self.mean) if self.components is None else len(self.components)

    def descriptor_of(self, x01: torch.Tensor) -> np.ndarray:
        """The standardised descriptor of [0, 1] model-input images (B, 3, S, S)."""
        d = DESCRIPTORS[self.descriptor](x01)
        d = (d - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.components is not None:
            d = d @ np.asarray(self.components, np.float32).T
        return d.astype(np.float32)

    def apply(self, z: np.ndarray, x01: torch.Tensor) -> np.ndarray:
        """The network's vectors ``z`` (B, D) of the images ``x01`` → fused (B, D + dim)."""
        return fuse(z, self.descriptor_of(x01), self.share)

    def to_dict(self) -> dict[str, Any]:
        return {
            "descriptor": self.descriptor,
            "share": float(self.share),
            "mean": list(self.mean),
            "std": list(self.std),
            **({} if self.components is None else {"components": [list(r) for r in self.components]}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | None = None) -> DescriptorFusion:
        try:
            return cls(
                share=float(d["share"]),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                descriptor=str(d.get("descriptor", "polar_fourier")),
                components=(
                    None
                    if d.get("components") is None
                    else tuple(tuple(float(v) for v in row) for row in d["components"])
                ),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise CheckpointError(f"{where or 'checkpoint'}: unreadable descriptor fusion ({e})") from None


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def fuse(z: np.ndarray, d: np.ndarray, share: float) -> np.ndarray:
    """[√(1−share)·z/‖z‖, √share·d/‖d‖] row by row, float32 (module doc)."""
    z = np.asarray(z, np.float32)
    d = np.asarray(d, np.float32)
    return np.concatenate([math.sqrt(1.0 - share) * _unit(z), math.sqrt(share) * _unit(d)], axis=1).astype(
        np.float32
    )


def fit_fusion(
    x01_batches,
    share: float = DEFAULT_SHARE,
    descriptor: str = "polar_fourier",
    components: int | None = None,
) -> DescriptorFusion:
    """Standardisation statistics of the descriptor over images (an iterable of [0, 1]
    (B, 3, S, S) batches, e.g. the training set), and with ``components`` its leading
    principal axes over them: label-free."""
    fn = DESCRIPTORS.get(descriptor)
    if fn is None:
        raise ConfigError(f"fusion descriptor {descriptor!r}; choices: {', '.join(DESCRIPTORS)}")
    parts = [fn(x) for x in x01_batches]
    if not parts:
        raise ConfigError("fusion statistics need at least one image")
    d = np.concatenate(parts)
    mu, sd = standardisation(d)
    axes = None
    if components is not None:
        # a catalog of fewer images than axes has no more directions to give
        k = (
            min(components, *d.shape)
            if isinstance(components, int) and not isinstance(components, bool)
            else components
        )
        axes = tuple(tuple(row) for row in principal_axes((d - mu) / sd, k).tolist())
    return DescriptorFusion(
        share=share, mean=tuple(mu.tolist()), std=tuple(sd.tolist()), descriptor=descriptor, components=axes
    )


def principal_axes(d: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` leading principal axes (k, D) of the rows of ``d`` (N, D), float64, each
    signed so that its largest-magnitude entry is positive (an SVD's signs are arbitrary;
    this makes the same data give the same axes)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"fusion components={k!r} must be an integer >= 1")
    d = np.asarray(d, np.float64)
    if k > min(d.shape):
        raise ConfigError(
            f"fusion components={k} exceeds what {d.shape[0]} descriptors of {d.shape[1]} numbers hold"
        )
    _, _, vt = np.linalg.svd(d - d.mean(axis=0), full_matrices=False)
    vt = vt[:k]
    sign = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    return vt * sign[:, None]


def standardisation(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-component mean and scale of descriptors ``d`` (N, D), float64."""
    d = np.asarray(d, dtype=np.float64)
    sd = d.std(axis=0)
    # a component that barely varies over the training images (the empty outer rings of small
    # galaxies) would turn float noise into a dominant coordinate: floor its scale
    floor = max(1e-12, 1e-2 * float(np.median(sd)))
    return d.mean(axis=0), np.maximum(sd, floor)
