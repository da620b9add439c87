"""An image folder described by a Parquet table of image paths reads as with the same CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.errors import CatalogError


def write_folder(root: Path, n: int = 12, seed: int = 0) -> Path:
    """``n`` 32×32 PNGs under ``root/img`` and ``paths.parquet`` + ``paths.csv`` naming them."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        name = f"img/g{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name)
        rows.append(
            {
                "path": name,
                "objid": f"G{i}",
                "label": i % 3 if i != 5 else None,
                "RA": float(rng.uniform(0, 360)),
                "z": 0.1 * i,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), root / "paths.parquet")
    with open(root / "paths.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    return root


def test_a_parquet_table_of_paths_is_the_catalog_the_csv_is(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f")
    with (
        open_catalog(root, metadata=root / "paths.parquet") as a,
        open_catalog(root, metadata=root / "paths.csv") as b,
    ):
        assert len(a) == len(b) == 12 and a.object_ids() == b.object_ids() and a.object_ids()[0] == "G0"
        ba, bb = a.get_batch(range(12)), b.get_batch(range(12))
        assert (
            ba.metadata == bb.metadata
            and ba.metadata["label"][5] is None
            and ba.metadata["ra"][1] == bb.metadata["ra"][1]
        )
        assert all(np.array_equal(x, y) for x, y in zip(ba.images, bb.images))


def test_a_corrupt_parquet_table_is_one_catalog_error(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n=2)
    (root / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CatalogError, match="bad.parquet: not a readable Parquet table"):
        open_catalog(root, metadata=root / "bad.parquet")
