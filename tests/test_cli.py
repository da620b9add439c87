"""The CLI's contract: one-line errors with exit code 2, and readable output."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from typer.testing import CliRunner

from galaxy_retrieval.cli import app

from .conftest import write_galaxy10_h5

runner = CliRunner()


def test_info_on_hdf5(tmp_path: Path) -> None:
    p = write_galaxy10_h5(tmp_path / "g.h5", n=20)
    r = runner.invoke(app, ["info", str(p)])
    assert r.exit_code == 0, r.output
    assert "galaxy10-hdf5" in r.output and "20" in r.output and "32×32×3 uint8" in r.output
    assert "Barred Spiral" in r.output  # label 5 named
    r = runner.invoke(app, ["info", str(p), "--json"])
    assert r.exit_code == 0 and '"count": 20' in r.output


def test_info_on_folder_with_csv(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "labels.csv").write_text("filename,label\n0.png,FRI\n1.png,FRII\n2.png,FRII\n")
    r = runner.invoke(app, ["info", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "image-folder" in r.output and "FRII" in r.output and "8×8×3" in r.output


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["pixels"] = np.zeros((2, 4, 4, 3), np.uint8)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(tmp_path / "missing.h5")], "missing.h5: no such file or directory"),
        ([str(bad)], "bad.h5: HDF5 file has no 'images' dataset"),
        ([str(empty)], "empty: no image files found"),
    ]
    for args, message in cases:
        r = runner.invoke(app, ["info", *args])
        assert r.exit_code == 2, r.output
        assert message in r.output and "Traceback" not in r.output
        assert r.output.strip().count("\n") == 0
