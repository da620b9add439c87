"""The CLI's contract: one-line errors with exit code 2, and readable output."""

from __future__ import annotations

import json
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


def test_info_says_which_column_became_which(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "metadata.csv").write_text("filename,RAJ2000,DEJ2000,zz\n0.png,1,2,0.1\n1.png,3,4,0.2\n")
    (tmp_path / "extra.csv").write_text("a,b\n1,2\n")
    r = runner.invoke(app, ["info", str(tmp_path), "--columns", "zz=redshift"])
    assert r.exit_code == 0, r.output
    assert "RAJ2000 → ra, DEJ2000 → dec, zz → redshift" in r.output
    assert "warning: ignored" in r.output and "extra.csv: no column naming the image files" in r.output
    r = runner.invoke(app, ["info", str(tmp_path), "--columns", "zz"])
    assert r.exit_code == 2 and "expected RAW=NAME" in r.output


def test_train_and_evaluate_skip_a_truncated_jpeg(tmp_path: Path) -> None:
    from PIL import Image

    # 650 images: the validation split must hold ≥ 64 for the loose-accuracy batch of 64
    rng = np.random.default_rng(0)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(650):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(imgs / f"g{i:03d}.jpg")
    data = (imgs / "g007.jpg").read_bytes()
    (imgs / "g007.jpg").write_bytes(data[: len(data) // 2])
    run = tmp_path / "run"
    args = [
        "train",
        "--catalog",
        str(imgs),
        "--out",
        str(run),
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "64",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "g007.jpg: corrupt or truncated image" in r.output
    r = runner.invoke(app, [*args, "--on-error", "skip", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable images" in r.output and "g007.jpg" in r.output
    # gr train's recipe (train/config.py): the descriptor target and descriptor fusion on
    # 32 principal axes, unless turned off
    tcfg = json.loads((run / "checkpoint.json").read_text())["train"]
    assert (tcfg["descriptor_weight"], tcfg["fusion_share"], tcfg["fusion_components"]) == (3.0, 0.1, 32)
    ev = ["evaluate", "--checkpoint", str(run), "--catalog", str(imgs), "--split", "all", "--no-baselines"]
    r = runner.invoke(app, ev)
    assert r.exit_code == 2 and "g007.jpg" in r.output
    r = runner.invoke(app, [*ev, "--on-error", "skip"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable images" in r.output
