"""Forgiving catalog tables: column spellings, explicit mappings, several CSVs in a folder."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from galaxy_retrieval.catalog import open_catalog, parse_column_mapping, resolve_columns
from galaxy_retrieval.errors import CatalogError, ConfigError


def _folder(tmp_path: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"g{i}.png")
    return tmp_path


def test_common_spellings_are_recognised_case_insensitively() -> None:
    m = resolve_columns(["File", "OBJID", "RAJ2000", "DEJ2000", "z", "Class", "mag_r"])
    assert m.names == {
        "File": "filename",
        "OBJID": "object_id",
        "RAJ2000": "ra",
        "DEJ2000": "dec",
        "z": "redshift",
        "Class": "label",
        "mag_r": "mag_r",
    }
    assert (
        m.describe()
        == "File → filename, OBJID → object_id, RAJ2000 → ra, DEJ2000 → dec, z → redshift, Class → label"
    )


def test_the_canonical_spelling_wins_and_nothing_collides() -> None:
    m = resolve_columns(["RA", "ra", "raj2000", "dec"])
    assert m.names["ra"] == "ra" and m.names["RA"] == "RA" and m.names["raj2000"] == "raj2000"
    assert len(set(m.names.values())) == 4
    # a raw column already spelled like a name given to another column is kept, renamed
    m = resolve_columns(["objid", "alpha", "ra"], {"alpha": "ra"})
    assert m.names == {"objid": "object_id", "alpha": "ra", "ra": "ra_raw"}


def test_explicit_mapping_wins_and_typos_are_errors() -> None:
    m = resolve_columns(
        ["alpha", "delta", "zphot"], parse_column_mapping("ALPHA=ra, delta=dec,zphot=redshift")
    )
    assert m.names == {"alpha": "ra", "delta": "dec", "zphot": "redshift"}
    with pytest.raises(ConfigError, match="'RAx', which is not a column"):
        resolve_columns(["RA"], {"RAx": "ra"})
    with pytest.raises(ConfigError, match="both mapped to 'ra'"):
        resolve_columns(["a", "b"], {"a": "ra", "b": "ra"})
    with pytest.raises(ConfigError, match="expected RAW=NAME"):
        parse_column_mapping("RA:ra")


def test_folder_csv_with_survey_spellings(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    (d / "catalog.csv").write_text(
        "Image,objID,RAJ2000,DEJ2000,Z\ng0.png,1237,10.5,-3.25,0.05\ng1.png,1238,11,2,0.1\ng2.png,1239,12,3,\n"
    )
    cat = open_catalog(d)
    assert cat.object_ids() == ["1237", "1238", "1239"]
    assert cat.columns == ["ra", "dec", "redshift"]
    assert cat[0].metadata == {"ra": 10.5, "dec": -3.25, "redshift": 0.05}
    assert (
        cat.info().extra["columns_renamed"]
        == "Image → filename, objID → object_id, RAJ2000 → ra, DEJ2000 → dec, Z → redshift"
    )


def test_folder_column_mapping_option(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    (d / "metadata.csv").write_text("png,alpha,delta\ng0.png,1,2\ng1.png,3,4\ng2.png,5,6\n")
    with pytest.raises(CatalogError, match="no column naming the image files"):
        open_catalog(d)
    cat = open_catalog(d, columns={"png": "filename", "alpha": "ra", "delta": "dec"})
    assert cat[2].metadata == {"ra": 5, "dec": 6}
    with pytest.raises(ConfigError, match="'beta', which no CSV has"):
        open_catalog(d, columns={"png": "filename", "beta": "dec"})


def test_several_csvs_are_merged_on_the_file_name(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    (d / "metadata.csv").write_text("filename,RA,DEC\ng0.png,1,2\ng1.png,3,4\n")
    (d / "labels.csv").write_text("file,label\ng1.png,spiral\ng0.png,round\ng2.png,spiral\n")
    (d / "notes.csv").write_text("who,what\nme,checked\n")
    cat = open_catalog(d)
    assert cat.object_ids() == ["g0", "g1", "g2"]
    assert [cat[i].metadata for i in range(3)] == [
        {"ra": 1, "dec": 2, "label": "round"},
        {"ra": 3, "dec": 4, "label": "spiral"},
        {"ra": None, "dec": None, "label": "spiral"},
    ]
    assert len(cat.warnings) == 1 and "notes.csv" in cat.warnings[0] and cat.warnings[0].startswith("ignored")
    assert "notes.csv" in cat.info().extra["warnings"]


def test_hdf5_dataset_spellings(tmp_path: Path) -> None:
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((3, 8, 8, 3), np.uint8)
        f["objid"] = np.array([11, 12, 13], np.int64)
        f["RA"] = np.array([1.0, 2.0, 3.0])
        f["DEC"] = np.array([-1.0, -2.0, -3.0])
        f["ans"] = np.array([0, 1, 2], np.uint8)
    cat = open_catalog(p)
    assert cat.object_ids() == ["11", "12", "13"]
    assert sorted(cat.columns) == ["dec", "label", "ra"]
    assert cat[1].metadata == {"ra": 2.0, "dec": -2.0, "label": 1} and cat[1].object_id == "12"
    assert "RA → ra" in cat.info().extra["columns_renamed"]
