"""Importing the FIRST radio-galaxy data set from the installed ``firstgalaxydata`` wheel.

One full import (about 3 s) is shared by the module; the other tests reuse or copy it.
"""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxy_retrieval.catalog import FIRST_CLASSES, HDF5Catalog, import_first, open_catalog
from galaxy_retrieval.catalog.first import first_jname
from galaxy_retrieval.errors import CatalogError

# find_spec, not importorskip: importing the package pulls in torch and matplotlib
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("firstgalaxydata") is None,
    reason="needs firstgalaxydata==0.2.1 (pip install -e '.[dev]')",
)

N_FIRST = 2158


@pytest.fixture(scope="module")
def first_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first") / "first.h5"
    assert import_first(out) == out
    return out


@pytest.fixture(scope="module")
def source_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The authors' HDF5 file, extracted independently of the importer."""
    spec = importlib.util.find_spec("firstgalaxydata")
    zip_path = Path(next(iter(spec.submodule_search_locations))) / "galaxy_data_h5.zip"
    d = tmp_path_factory.mktemp("first-src")
    with zipfile.ZipFile(zip_path) as z:
        return Path(z.extract("galaxy_data_h5.h5", d))


def _no_first_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "firstgalaxydata" else real(name, *a)
    )


def test_import_opens_as_a_labelled_catalog(first_h5: Path, source_h5: Path) -> None:
    cat = open_catalog(first_h5)
    assert isinstance(cat, HDF5Catalog)
    assert len(cat) == N_FIRST and cat.image_shape == (300, 300, 3)
    assert set(cat.columns) == {"label", "ra", "dec", "split", "label_source"}
    assert cat.label_names == dict(enumerate(FIRST_CLASSES)) == cat.info().label_names
    assert cat.info().label_counts == {0: 495, 1: 924, 2: 391, 3: 348}  # the authors' README
    assert sorted(set(cat.column("split"))) == ["test", "train", "valid"]
    ids = cat.object_ids()
    assert len(set(ids)) == N_FIRST

    rows = [0, 1, 977, N_FIRST - 1]
    b = cat.get_batch(rows)
    assert b.images.dtype == np.uint8 and b.images.shape == (4, 300, 300, 3)
    with h5py.File(source_h5, "r") as src:
        for j, r in enumerate(rows):  # row r is group data_r: order is by the integer suffix
            g = src[f"data_{r}"]
            img = g["Img"][()]
            for c in range(3):
                np.testing.assert_array_equal(b.images[j, :, :, c], img)
            assert b.metadata["label"][j] == int(g["Label_literature"][()])
            assert b.metadata["split"][j] == g["Split_literature"].asstr()[()]
            assert b.metadata["label_source"][j] == g["Img"].attrs["Source"]
            assert b.metadata["ra"][j] == pytest.approx(g["Img"].attrs["RA"])
            assert b.object_ids[j] == ids[r] == first_jname(g["Img"].attrs["RA"], g["Img"].attrs["DEC"])
    with h5py.File(first_h5, "r") as f:
        assert "non-commercial" in f.attrs["license"] and "zenodo.7689127" in f.attrs["citation"]
        assert f["images"].chunks == (1, 300, 300)


def test_first_jname_truncates() -> None:
    assert first_jname(116.785, 17.291) == "J074708.4+171727"
    assert first_jname(17.219, -0.655) == "J010852.5-003918"  # a -00° declination keeps its sign
    assert first_jname(359.99999, -89.99999) == "J235959.9-895959"  # truncated, never rounded up to 24h


def test_second_call_is_free_even_without_the_package(
    first_h5: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = first_h5.stat().st_mtime_ns
    _no_first_package(monkeypatch)
    assert import_first(first_h5) == first_h5
    assert first_h5.stat().st_mtime_ns == before


def test_missing_package_is_a_one_line_catalog_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_first_package(monkeypatch)
    with pytest.raises(CatalogError, match=r"pip install firstgalaxydata==0\.2\.1") as ei:
        import_first(tmp_path / "first.h5")
    assert "\n" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_file_it_did_not_write(tmp_path: Path, g10_file: Path) -> None:
    with pytest.raises(CatalogError, match="not a FIRST import; overwrite it"):
        import_first(g10_file)
    (tmp_path / "notes.h5").write_text("hello")
    with pytest.raises(CatalogError, match="not a FIRST import"):
        import_first(tmp_path / "notes.h5")
    with pytest.raises(CatalogError, match="is a directory"):
        import_first(tmp_path)


class _Crash(RuntimeError):
    pass


class _CrashingProgress:
    """Fails on the first image block, i.e. with the new file half written."""

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it"):
        class H:
            def advance(self, n: float = 1) -> None:
                raise _Crash

            def update(self, **fields) -> None:
                pass

        yield H()

    def log(self, message: str) -> None:
        pass


def test_crash_mid_write_leaves_the_old_file_and_no_temporaries(first_h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "first.h5"
    shutil.copy(first_h5, out)
    before = out.read_bytes()
    with pytest.raises(_Crash):
        import_first(out, overwrite=True, progress=_CrashingProgress())
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["first.h5"]  # temporaries removed


def test_cli_import_first_reuses_the_file(first_h5: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from galaxy_retrieval.cli import app

    out = tmp_path / "first.h5"
    shutil.copy(first_h5, out)  # a complete import: the command only describes it
    r = CliRunner().invoke(app, ["import-first", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "2,158 FIRST radio galaxies, classes FRI, FRII, Compact, Bent" in r.output
    bad = tmp_path / "not-first.h5"
    bad.write_bytes(b"something else")
    r = CliRunner().invoke(app, ["import-first", "--out", str(bad)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
