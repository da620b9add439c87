"""Shared fixtures: tiny catalogs written by the tests themselves."""

from __future__ import annotations

import os

# Tests must be quick and deterministic on a 2-core CI box: one thread each for the
# numerical libraries unless a test asks for more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
# the caches (framing boxes, metadata maps) of this test session, never the user's (~/.cache)
if "GALAXY_RETRIEVAL_CACHE" not in os.environ:
    import tempfile

    os.environ["GALAXY_RETRIEVAL_CACHE"] = tempfile.mkdtemp(prefix="gr-test-cache-")
os.environ.pop("GALAXY_RETRIEVAL_BOXES", None)

from pathlib import Path

import h5py
import numpy as np
import pytest


def write_galaxy10_h5(path: Path, n: int = 12, size: int = 32, seed: int = 0, extra: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["images"] = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
        if extra:
            f["ans"] = (np.arange(n) % 10).astype(np.uint8)
            f["ra"] = rng.uniform(0, 360, n)
            f["dec"] = rng.uniform(-90, 90, n)
            f["redshift"] = rng.uniform(0, 0.2, n).astype(np.float32)
            f["pxscale"] = np.full(n, 0.262, np.float32)
    return path


@pytest.fixture
def g10_file(tmp_path: Path) -> Path:
    return write_galaxy10_h5(tmp_path / "g10.h5")
