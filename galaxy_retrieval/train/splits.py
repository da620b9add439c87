"""The fixed 80/10/10 train/validation/test split, shared by training and evaluation."""

from __future__ import annotations

import numpy as np

from ..errors import CatalogError

__all__ = ["split_indices", "SPLITS"]

SPLITS = ("train", "val", "test", "all")


def split_indices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Catalog positions of the (train, val, test) parts: 80 % / 10 % / 10 %, fixed by ``seed``.

    A permutation of ``range(n)`` drawn from ``numpy.random.default_rng(seed)``; val and test
    get ``round(n / 10)`` positions each (at least one), train the rest. Each part is sorted
    (HDF5 reads in order are fastest). The same (n, seed) always gives the same split, so
    evaluation can rebuild a training run's held-out set from its seed.
    """
    if n < 3:
        raise CatalogError(f"catalog has {n} objects; training needs at least 3 (train/val/test split)")
    perm = np.random.default_rng(seed).permutation(n)
    n_hold = max(1, int(round(n * 0.1)))
    val = np.sort(perm[:n_hold])
    test = np.sort(perm[n_hold : 2 * n_hold])
    train = np.sort(perm[2 * n_hold :])
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)
