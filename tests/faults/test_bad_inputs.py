"""Bad inputs to each command: exit code 2, one error line naming the file, no traceback,
and the watched paths unchanged (issue 12, items 7, 9, 10, 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_user_error, gr, snapshot


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 KB PNG that decodes to 10000×10000 pixels (over the default limit)."""
    p = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (10000, 10000)).save(p)
    return p


def _folder(root: Path, bomb: Path | None = None, csv_rows: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"g{i}.png")
    if bomb is not None:
        shutil.copy(bomb, root / "zz-bomb.png")
    if csv_rows is not None:
        (root / "metadata.csv").write_text("filename,label\n" + "".join(f"{r},0\n" for r in csv_rows))
    return root


# ------------------------------------------------------------------ decompression bombs


def test_bomb_is_an_unreadable_image_in_every_command(
    tiny: dict[str, Path], tmp_path: Path, bomb: Path
) -> None:
    folder = _folder(tmp_path / "imgs", bomb)
    before = snapshot(tmp_path, tiny["index"])
    for args in (
        ["query", "--index", tiny["index"], "--image", bomb],
        ["explain", "--index", tiny["index"], "--image", bomb, "--out", tmp_path / "x.png", "--steps", "1"],
        ["build-index", "--checkpoint", tiny["checkpoint"], "--catalog", folder, "--out", tmp_path / "idx"],
    ):
        r = gr(*args)
        assert_user_error(r, "bomb.png", "10000×10000", "--max-image-pixels")
    assert snapshot(tmp_path, tiny["index"]) == before
    # with --on-error skip it is reported and the rest is indexed
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        folder,
        "--out",
        tmp_path / "idx",
        "--on-error",
        "skip",
        "--index-type",
        "flat",
    )
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable" in r.output and "zz-bomb.png" in r.output


def test_pixel_limit_is_an_option(tiny: dict[str, Path], tmp_path: Path) -> None:
    folder = _folder(tmp_path / "imgs")
    r = gr("--max-image-pixels", 100, "query", "--index", tiny["index"], "--image", folder / "g0.png")
    assert_user_error(r, "g0.png", "32×32 = 1,024 pixels is over the limit of 100")
    assert (
        gr(
            "--max-image-pixels", 2000, "query", "--index", tiny["index"], "--image", folder / "g0.png"
        ).exit_code
        == 0
    )
    assert (
        gr("query", "--index", tiny["index"], "--image", folder / "g0.png").exit_code == 0
    )  # back to the default
    r = gr("--max-image-pixels", 0, "info", folder)
    assert r.exit_code == 2 and "positive integer" in r.output


# ------------------------------------------------------------------ catalogs, shards, manifests


@pytest.mark.parametrize("name", ["../outside.png", "/etc/hostname", "sub/../../outside.png"])
def test_csv_rows_naming_files_outside_the_folder_are_refused(
    tiny: dict[str, Path], tmp_path: Path, name: str
) -> None:
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "outside.png")
    folder = _folder(tmp_path / "imgs", csv_rows=["g0.png", "g1.png", name])
    before = snapshot(tmp_path)
    for args in (
        ["info", folder],
        ["build-index", "--checkpoint", tiny["checkpoint"], "--catalog", folder, "--out", tmp_path / "idx"],
    ):
        assert_user_error(gr(*args), "metadata.csv", "line 4", "outside the folder")
    assert snapshot(tmp_path) == before


def test_info_on_an_interrupted_build(tiny: dict[str, Path], tmp_path: Path) -> None:
    half = tmp_path / "half"
    shutil.copytree(tiny["index"], half)
    (half / "manifest.json").unlink()
    (half / "build-state.json").write_text("{}")
    assert_user_error(gr("info", half), half, "a build was interrupted")


def test_from_shards_with_a_corrupt_parquet_file(tiny: dict[str, Path], tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shutil.copytree(tiny["index"] / "embeddings", shards)
    (shards / "part-00002.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    before = snapshot(tmp_path)
    assert_user_error(
        gr("build-index", "--from-shards", shards, "--out", tmp_path / "idx"),
        "part-00002.parquet",
        "not a readable Parquet shard",
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("weights", ["cos", {"cos": "a", "l2": 1, "l3": 1}, {"cos": 1}, [1, 2, 3]])
def test_manifest_with_bad_score_weights(tiny: dict[str, Path], tmp_path: Path, weights: object) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(tiny["index"], idx)
    m = json.loads((idx / "manifest.json").read_text())
    m["score_weights"] = weights
    (idx / "manifest.json").write_text(json.dumps(m))
    for args in (["query", "--index", idx, "--object-id", "1"], ["info", idx], ["verify", "--index", idx]):
        assert_user_error(gr(*args), "manifest.json", "invalid score_weights")
    # a source manifest beside shards: --from-shards refuses it too
    shutil.copy(idx / "manifest.json", tmp_path / "manifest.json")
    shutil.copytree(idx / "embeddings", tmp_path / "embeddings")
    assert_user_error(
        gr("build-index", "--from-shards", tmp_path / "embeddings", "--out", tmp_path / "idx2"),
        "invalid score_weights",
    )


def test_verify_checks_every_file(tiny: dict[str, Path], tmp_path: Path) -> None:
    r = gr("verify", "--index", tiny["index"])
    assert r.exit_code == 0 and "30 objects" in r.output and "match manifest.json" in r.output
    idx = tmp_path / "idx"
    shutil.copytree(tiny["index"], idx)
    w = idx / "model" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert_user_error(gr("verify", "--index", idx), "model.safetensors", "sha256")


# ------------------------------------------------------------------ output paths


@pytest.mark.parametrize(
    "command",
    [
        ["query", "--index", "{index}", "--object-id", "1", "--mosaic", "{out}"],
        ["explain", "--index", "{index}", "--image", "{image}", "--out", "{out}", "--steps", "1"],
        ["import-first", "--out", "{out}"],
        [
            "rerank-benchmark",
            "--synthetic",
            "500",
            "--dim",
            "8",
            "--queries",
            "5",
            "--workdir",
            "{tmp}/w",
            "--out-json",
            "{out}",
        ],
        ["synth", "--n", "2", "--size", "32", "--workers", "1", "--out", "{out}"],
        ["build-index", "--checkpoint", "{ck}", "--catalog", "{cat}", "--out", "{out}"],
        ["train", "--catalog", "{cat}", "--out", "{out}", "--preset", "tiny", "--epochs", "1"],
    ],
)
@pytest.mark.parametrize(
    "where, message", [("under a file", "is a file, not a folder"), ("in /proc", "cannot write in /proc")]
)
def test_unwritable_outputs_are_refused_before_work(
    tiny: dict[str, Path], tmp_path: Path, command: list[str], where: str, message: str
) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("a file")
    out = f / "x.out" if where == "under a file" else Path("/proc/gr-fault-test/x.out")
    image = _folder(tmp_path / "imgs") / "g0.png"
    before = snapshot(tmp_path, tiny["index"])
    args = [
        a.format(
            index=tiny["index"],
            out=out,
            image=image,
            tmp=tmp_path,
            ck=tiny["checkpoint"],
            cat=tiny["catalog"],
        )
        for a in command
    ]
    r = gr(*args)
    assert_user_error(r, message)
    assert snapshot(tmp_path, tiny["index"]) == before


def test_import_first_names_the_flag(tmp_path: Path) -> None:
    f = tmp_path / "mine.h5"
    f.write_text("not an import")
    r = gr("import-first", "--out", f)
    assert_user_error(r, f, "(--overwrite)")
    assert "overwrite=True" not in r.output


def test_library_errors_name_settings_and_the_cli_their_flags(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A library caller has no flags to pass: the message speaks of the setting, the CLI adds
    the flag (issue 12: import-first used to suggest `overwrite=True` on the command line)."""
    from galaxy_retrieval.errors import CheckpointError
    from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
    from galaxy_retrieval.index.candidates import IndexSpec
    from galaxy_retrieval.search.searcher import GalaxySearcher

    shards = shutil.copytree(
        tiny["index"] / "embeddings", tmp_path / "shards"
    )  # no manifest, no model beside them
    build_index_from_shards(shards, tmp_path / "noshards", BuildConfig(index=IndexSpec(kind="flat")))
    s = GalaxySearcher.open(tmp_path / "noshards")
    with pytest.raises(CheckpointError) as ei:
        s.query(image=np.zeros((32, 32, 3), np.uint8), k=3)
    assert "--" not in str(ei.value) and ei.value.options == ("checkpoint",)
    image = _folder(tmp_path / "imgs") / "g0.png"
    assert_user_error(
        gr("query", "--index", tmp_path / "noshards", "--image", image), "no model copy", "(--checkpoint)"
    )
