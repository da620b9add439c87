"""Clustered synthetic embeddings for search tests and benchmarks.

iid Gaussian vectors are a poor stand-in for real embeddings: all their pairwise distances
are nearly equal, so approximate search looks either perfect or hopeless (faiss' advice is
data "not completely random but still challenging to index"). :func:`clustered_vectors`
draws vectors the way a ViT embedding of a galaxy catalog is shaped:

* a low intrinsic dimension: points live near an ``intrinsic_dim``-dimensional linear
  subspace of R^dim (a fixed random basis), plus a little isotropic ``noise`` off it;
* clusters of unequal size inside that subspace (morphological classes): cluster weights
  fall off as 1/rank, centres are standard normal, points spread ``cluster_std`` around them;
* a shared offset direction, as mean-pooled transformer outputs have, so cosines are mostly
  positive and the cosine and distance terms of the score do not rank alike.

Rows are generated ``_CHUNK`` at a time from seeds derived from ``(seed, chunk index)``, so
the result depends only on the arguments (and the first m rows of a run are the run with
n = m), and ``out`` may be a ``np.memmap`` (1M × 2048 float32 is 8 GB) filled chunk by chunk.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["clustered_vectors"]

_CHUNK = 16384


def clustered_vectors(
    n: int,
    dim: int,
    n_clusters: int = 64,
    intrinsic_dim: int = 32,
    cluster_std: float = 0.35,
    noise: float = 0.05,
    seed: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` clustered vectors of dimension ``dim`` as float32 (or written into ``out``).

    ``out``: an (n, dim) array or ``np.memmap`` of any float dtype to fill (e.g. float16
    storage) instead of allocating; it is returned. Components are O(1); a row's norm is
    about √dim. ``intrinsic_dim`` is capped at ``dim``.
    """
    for name, value in (("n", n), ("dim", dim), ("n_clusters", n_clusters), ("intrinsic_dim", intrinsic_dim)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < (0 if name == "n" else 1)
        ):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    intrinsic_dim = min(intrinsic_dim, dim)
    if not (cluster_std >= 0 and noise >= 0):
        raise ConfigError(f"cluster_std and noise must be ≥ 0, got {cluster_std!r}, {noise!r}")
    if out is None:
        out = np.empty((n, dim), np.float32)
    elif out.shape != (n, dim):
        raise ConfigError(f"out has shape {out.shape}, expected {(n, dim)}")

    base = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    # Entries of variance 1/intrinsic_dim: a latent point z gives components of variance
    # ‖z‖²/intrinsic_dim ≈ 1 + cluster_std², so rows have norm ≈ √dim.
    basis = (base.standard_normal((intrinsic_dim, dim)) * np.sqrt(1.0 / intrinsic_dim)).astype(np.float32)
    centres = base.standard_normal((n_clusters, intrinsic_dim)).astype(np.float32)
    offset = (np.abs(base.standard_normal(dim)) * 0.5).astype(np.float32)
    p = 1.0 / np.arange(1, n_clusters + 1)
    p /= p.sum()

    for c, s in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - s)
        # One generator per stream and chunk: draws fill rows in order, so the first rows of a
        # longer run equal a shorter run with the same seed.
        label_rng, latent_rng, noise_rng = (
            np.random.default_rng(np.random.SeedSequence([seed, j, c])) for j in (1, 2, 3)
        )
        label = label_rng.choice(n_clusters, size=m, p=p)
        z = centres[label] + np.float32(cluster_std) * latent_rng.standard_normal(
            (m, intrinsic_dim), dtype=np.float32
        )
        # in float64: a float32 BLAS product rounds differently with the number of rows
        # (kernel blocking), and the first rows of a longer run must equal a shorter run
        x = (z.astype(np.float64) @ basis.astype(np.float64)).astype(np.float32) + offset
        x += np.float32(noise) * noise_rng.standard_normal((m, dim), dtype=np.float32)
        out[s : s + m] = x
    return out
