"""Catalog readers on tiny files written here, and every bad input the issue lists."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from galaxy_retrieval.catalog import FolderCatalog, HDF5Catalog, open_catalog, to_uint8_rgb
from galaxy_retrieval.errors import CatalogError, ImageReadError

from .conftest import write_galaxy10_h5

# ---------------------------------------------------------------- HDF5


def test_hdf5_reads_galaxy10_layout(g10_file: Path) -> None:
    cat = open_catalog(g10_file)
    assert isinstance(cat, HDF5Catalog)
    assert len(cat) == 12
    assert cat.image_shape == (32, 32, 3)
    assert set(cat.columns) == {"label", "ra", "dec", "redshift", "pxscale"}
    with h5py.File(g10_file) as f:
        raw = f["images"][:]
        ra = f["ra"][:]
    rec = cat[5]
    assert rec.object_id == "5" and rec.row == 5
    assert rec.image.dtype == np.uint8 and np.array_equal(rec.image, raw[5])
    assert rec.metadata["label"] == 5 and rec.metadata["ra"] == pytest.approx(ra[5])
    np.testing.assert_array_equal(cat.labels(), np.arange(12) % 10)


def test_hdf5_streams_in_chunks_and_random_access(g10_file: Path) -> None:
    cat = open_catalog(g10_file)
    batches = list(cat.iter_batches(5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert np.concatenate([b.rows for b in batches]).tolist() == list(range(12))
    with h5py.File(g10_file) as f:
        raw = f["images"][:]
    b = cat.get_batch([7, 2, 7, 0])  # unsorted, repeated: h5py needs sorted unique reads
    assert b.object_ids == ["7", "2", "7", "0"]
    np.testing.assert_array_equal(b.images, raw[[7, 2, 7, 0]])
    assert b.metadata["label"] == [7, 2, 7, 0]


def test_hdf5_object_ids_and_grayscale_uint16(tmp_path: Path) -> None:
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.full((3, 8, 8), 65535, np.uint16)
        f["object_id"] = np.array(["a", "b", "c"], dtype=h5py.string_dtype())
    cat = open_catalog(p)
    assert cat.object_ids() == ["a", "b", "c"]
    im = cat[1].image
    assert im.shape == (8, 8, 3) and im.dtype == np.uint8 and im.max() == 255


def test_hdf5_without_labels(tmp_path: Path) -> None:
    cat = open_catalog(write_galaxy10_h5(tmp_path / "x.hdf5", n=3, extra=False))
    assert cat.labels() is None and cat.columns == []
    assert cat.info().label_counts is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: f.create_dataset("pics", data=np.zeros((2, 4, 4, 3), np.uint8)), "no 'images' dataset"),
        (lambda f: f.create_dataset("images", data=np.zeros((2, 4, 4, 7), np.uint8)), "7 channels"),
        (lambda f: f.create_dataset("images", data=np.zeros((2, 4), np.uint8)), "expected (N, H, W, C)"),
        (lambda f: f.create_dataset("images", data=np.zeros((2, 4, 4, 3), np.float32)), "dtype float32"),
        (
            lambda f: (
                f.create_dataset("images", data=np.zeros((2, 4, 4, 3), np.uint8)),
                f.create_dataset("ans", data=np.zeros(3)),
            ),
            "'ans' has 3 rows",
        ),
    ],
)
def test_hdf5_bad_layouts(tmp_path: Path, make, message: str) -> None:
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        make(f)
    with pytest.raises(CatalogError, match="bad.h5") as ei:
        open_catalog(p)
    assert message in str(ei.value)


def test_truncated_hdf5_is_a_clear_error(g10_file: Path, tmp_path: Path) -> None:
    data = g10_file.read_bytes()
    p = tmp_path / "trunc.h5"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(CatalogError, match="trunc.h5"):
        open_catalog(p)


def test_missing_path_and_non_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file"):
        open_catalog(tmp_path / "nope.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CatalogError, match="not a catalog"):
        open_catalog(tmp_path / "notes.txt")


# ---------------------------------------------------------------- folders


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def test_folder_without_csv_recurses_and_converts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _png(tmp_path / "a.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    _png(tmp_path / "sub" / "b.png", rng.integers(0, 256, (9, 9), dtype=np.uint8))  # grayscale
    _png(tmp_path / "sub" / "c.png", rng.integers(0, 256, (8, 8, 4), dtype=np.uint8))  # RGBA
    Image.fromarray(np.full((6, 6), 4000, np.uint16)).save(tmp_path / "d.tif")  # 16-bit
    Image.fromarray(rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)).save(tmp_path / "e.jpg")
    cat = open_catalog(tmp_path)
    assert isinstance(cat, FolderCatalog)
    assert cat.object_ids() == ["a", "d", "e", "sub/b", "sub/c"]
    b = cat.get_batch(range(len(cat)))
    for im in b.images:
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
    assert b.images[1].max() == round(4000 * 255 / 65535)  # 16-bit rescaled, not clipped
    assert np.array_equal(b.images[3][..., 0], b.images[3][..., 2])  # gray replicated
    assert cat.labels() is None


def test_folder_with_csv_metadata_and_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(4):
        _png(tmp_path / "img" / f"g{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "metadata.csv").write_text(
        "filename,object_id,label,ra,dec,survey\n"
        "img/g0.png,J001,FRII,10.5,-3.25,first\n"
        "img/g1.png,J002,FRI,11,,first\n"
        "img/g2.png,J003,FRII,12.5,4,first\n"
        "img/g3.png,J004,bent,13.5,5,first\n"
    )
    cat = open_catalog(tmp_path)
    assert cat.object_ids() == ["J001", "J002", "J003", "J004"]
    assert set(cat.columns) == {"label", "ra", "dec", "survey"}
    # string classes get codes in sorted name order: 'FRI' < 'FRII' < 'bent'
    assert cat.label_names == {0: "FRI", 1: "FRII", 2: "bent"}
    assert cat.labels().tolist() == [1, 0, 1, 2]
    rec = cat[1]
    assert rec.metadata == {"label": "FRI", "ra": 11, "dec": None, "survey": "first"}
    assert cat.info().label_counts == {0: 1, 1: 2, 2: 1}


def test_folder_csv_named_explicitly(tmp_path: Path) -> None:
    _png(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    meta = tmp_path.parent / f"{tmp_path.name}-meta.csv"
    meta.write_text("file,label\nx.png,3\n")
    cat = open_catalog(tmp_path, metadata=meta)
    assert cat.labels().tolist() == [3] and cat[0].metadata["label"] == 3


def test_folder_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CatalogError, match="no image files found"):
        open_catalog(empty)

    d = tmp_path / "d"
    _png(d / "ok.png", np.zeros((4, 4, 3), np.uint8))
    (d / "metadata.csv").write_text("filename,label\nok.png,1\nmissing.png,2\n")
    with pytest.raises(CatalogError, match=r"metadata.csv: line 3 names 'missing.png'"):
        open_catalog(d)
    skipping = open_catalog(d, on_error="skip")
    assert len(skipping) == 1 and "missing.png" in skipping.skipped[0][1]

    (d / "metadata.csv").write_text("name,label\nok.png,1\n")
    with pytest.raises(CatalogError, match="no column naming the image files"):
        open_catalog(d)

    (d / "metadata.csv").unlink()
    (d / "a.csv").write_text("filename,label\nok.png,1\n")
    (d / "b.csv").write_text("filename,label\nok.png,2\n")
    with pytest.raises(
        CatalogError, match=r"b.csv: line 2 gives label='2' for 'ok.png', but .*a.csv gives '1'"
    ):
        open_catalog(d)

    with pytest.raises(CatalogError, match="a metadata table applies to image folders"):
        open_catalog(write_galaxy10_h5(tmp_path / "x.h5", n=2), metadata=d / "a.csv")


def test_truncated_image_fails_or_is_skipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for i in range(6):
        _png(tmp_path / f"g{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    data = (tmp_path / "g2.png").read_bytes()
    (tmp_path / "g2.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "g4.png").write_bytes(b"definitely not an image")

    cat = open_catalog(tmp_path)
    with pytest.raises(ImageReadError, match="g2.png: corrupt or truncated"):
        list(cat.iter_batches(3))

    cat = open_catalog(tmp_path, on_error="skip")
    batches = list(cat.iter_batches(3))
    rows = np.concatenate([b.rows for b in batches]).tolist()
    assert rows == [0, 1, 3, 5]
    assert [r for r, _ in cat.skipped] == [2, 4]
    assert "g4.png: not a readable image" in cat.skipped[1][1]


def test_to_uint8_rgb_conversions() -> None:
    f = np.linspace(-1.0, 50.0, 64).reshape(8, 8)  # FITS-like fluxes
    out = to_uint8_rgb(f)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and out.max() == 255
    assert to_uint8_rgb(np.ones((3, 5, 5), np.float32) * 0.5)[0, 0, 0] == 128  # channel-first
    with pytest.raises(ValueError):
        to_uint8_rgb(np.zeros((2, 2, 2, 2)))
