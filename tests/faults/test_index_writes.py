"""`gr build-index` never deletes or mixes what it does not own (issue 12, items 1, 2, 11, 12).

Each test would have failed before the fix it names: overwrite used to `rmtree` the whole
``--out``; two builders could mix shards of two models; knobs were checked after embedding.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.errors import IndexBusyError, IndexFormatError
from galaxy_retrieval.index.build import build_index
from galaxy_retrieval.index.layout import LOCK_NAME
from galaxy_retrieval.index.lock import directory_lock
from galaxy_retrieval.index.shards import shard_model_sha256
from galaxy_retrieval.search.searcher import GalaxySearcher

from ..conftest import write_galaxy10_h5
from ..test_build import _Interrupt
from .conftest import CFG, assert_user_error, gr, make_checkpoint, snapshot


def _build_args(tiny: dict[str, Path], out: Path, *extra: object) -> list[object]:
    return [
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        out,
        "--shard-rows",
        8,
        "--index-type",
        "flat",
        *extra,
    ]


# ------------------------------------------------------------------ overwrite owns only its files


def _user_folder(tmp: Path, tiny: dict[str, Path]) -> Path:
    """A folder of the user's: their catalog, a notes file, and a stale index manifest that
    used to make `--overwrite` delete the lot."""
    d = tmp / "work"
    (d / "sub").mkdir(parents=True)
    shutil.copy(tiny["catalog"], d / "cat.h5")
    (d / "notes.txt").write_text("mine\n")
    (d / "sub" / "more.txt").write_text("also mine\n")
    shutil.copy(tiny["index"] / "manifest.json", d / "manifest.json")
    return d


@pytest.mark.parametrize("where", ["catalog folder", "parent of catalog folder", "folder of user files"])
def test_overwrite_refuses_a_directory_holding_other_files(
    tiny: dict[str, Path], tmp_path: Path, where: str
) -> None:
    d = _user_folder(tmp_path, tiny)
    (d / "sub" / "cat2.h5").write_bytes((d / "cat.h5").read_bytes())
    out, cat = {
        "catalog folder": (d, d / "cat.h5"),
        "parent of catalog folder": (d, d / "sub" / "cat2.h5"),
        "folder of user files": (d, tiny["catalog"]),
    }[where]
    before = snapshot(tmp_path)
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        cat,
        "--out",
        out,
        "--overwrite",
        "--index-type",
        "flat",
    )
    assert_user_error(r, out)
    assert "catalog" in r.output or "not part of an index" in r.output
    assert snapshot(tmp_path) == before


def test_overwrite_removes_only_the_files_the_index_owns(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "indexes" / "x"
    shutil.copytree(tiny["index"], out)
    (tmp_path / "indexes" / "keep.txt").write_text("sibling")
    stale = out / "embeddings" / "part-00009.parquet"  # an owned shard of a longer earlier build
    shutil.copy(out / "embeddings" / "part-00000.parquet", stale)
    r = gr(*_build_args(tiny, out, "--overwrite"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "indexes" / "keep.txt").read_text() == "sibling"
    assert not stale.exists()
    GalaxySearcher.open(out, verify=True)


def test_refused_inputs_inside_out_even_without_manifest(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Building into a folder of images/catalogs would mix the index into the user's files."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(tiny["catalog"], d / "cat.h5")
    before = snapshot(d)
    assert_user_error(
        gr("build-index", "--checkpoint", tiny["checkpoint"], "--catalog", d / "cat.h5", "--out", d), d
    )
    assert snapshot(d) == before


# ------------------------------------------------------------------ one writer, one model


def test_second_writer_is_refused_naming_the_holders_pid(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from galaxy_retrieval.index.lock import directory_lock\n"
            "with directory_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = gr(*_build_args(tiny, out, "--overwrite"))
        assert_user_error(r, out, f"pid {holder.pid}")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with the killed holder: no stale lock to clean up by hand
    assert gr(*_build_args(tiny, out)).exit_code == 0


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with directory_lock(tmp_path / "d"):
        with pytest.raises(IndexBusyError, match=f"pid {os.getpid()}"):
            with directory_lock(tmp_path / "d"):
                pass
    with directory_lock(tmp_path / "d"):  # released
        pass


def test_resume_re_embeds_a_shard_of_another_model(tiny: dict[str, Path], tmp_path: Path) -> None:
    """The two-builder race left a shard of model B in a build of model A, and the resumed
    build reused it. Shards carry their model sha256, so it is embedded again."""
    other = make_checkpoint(tmp_path / "other", seed=1)
    b_index = tmp_path / "b"
    out = tmp_path / "a"
    with open_catalog(tiny["catalog"]) as c:
        build_index(other, c, b_index, CFG)
        with pytest.raises(KeyboardInterrupt):
            build_index(tiny["checkpoint"], c, out, CFG, progress=_Interrupt(after=5))
        shutil.copy(b_index / "embeddings" / "part-00001.parquet", out / "embeddings" / "part-00001.parquet")
        res = build_index(tiny["checkpoint"], c, out, CFG)
    assert (res.reused_shards, res.embedded_shards) == (1, 3)
    for name in ["vectors.npy", *[f"embeddings/part-0000{i}.parquet" for i in range(4)]]:
        assert (out / name).read_bytes() == (tiny["index"] / name).read_bytes(), name


def test_open_refuses_an_index_mixing_two_models(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Every file matches the manifest's digests, yet one shard is another model's."""
    import json

    from galaxy_retrieval.atomic import sha256_file

    other = make_checkpoint(tmp_path / "other", seed=1)
    with open_catalog(tiny["catalog"]) as c:
        build_index(other, c, tmp_path / "b", CFG)
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny["index"], mixed)
    shard = mixed / "embeddings" / "part-00002.parquet"
    shutil.copy(tmp_path / "b" / "embeddings" / "part-00002.parquet", shard)
    m = json.loads((mixed / "manifest.json").read_text())
    m["shards"][2].update(bytes=shard.stat().st_size, sha256=sha256_file(shard))
    (mixed / "manifest.json").write_text(json.dumps(m))
    assert shard_model_sha256(shard) != m["model"]["sha256"]
    with pytest.raises(IndexFormatError, match="part-00002.parquet: embedded by model .* two models"):
        GalaxySearcher.open(mixed)
    assert_user_error(gr("verify", "--index", mixed), "part-00002.parquet")


# ------------------------------------------------------------------ refused before embedding, nothing left


def _empty_h5(p: Path) -> Path:
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((0, 32, 32, 3), np.uint8)
    return p


def _dup_ids_h5(p: Path) -> Path:
    write_galaxy10_h5(p, n=12)
    with h5py.File(p, "a") as f:
        f["object_id"] = np.array([b"a", b"b", b"c", b"a", *[f"x{i}".encode() for i in range(8)]])
    return p


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("nprobe 0", ["--nprobe", "0"], "nprobe must be an integer ≥ 1"),
        ("nprobe -5", ["--nprobe", "-5"], "nprobe must be an integer ≥ 1"),
        ("ef-search 0", ["--ef-search", "0"], "ef_search must be an integer ≥ 1"),
        ("bad factory", ["--index-type", "IVF16,Bogus"], "IVF16,Bogus"),
        ("more lists than vectors", ["--index-type", "IVF64,Flat"], "fewer than the 64 inverted lists"),
        ("empty catalog", ["--catalog", "{empty}"], "holds no objects"),
        ("duplicate ids", ["--catalog", "{dup}"], "'a' appears more than once"),
    ],
)
def test_refused_build_leaves_nothing_on_disk(
    tiny: dict[str, Path], tmp_path: Path, case: str, extra: list[str], message: str
) -> None:
    files = {"empty": _empty_h5(tmp_path / "empty.h5"), "dup": _dup_ids_h5(tmp_path / "dup.h5")}
    out = tmp_path / "new" / "parents" / "out"  # parents the refused build created go too
    args = ["build-index", "--checkpoint", tiny["checkpoint"], "--catalog", tiny["catalog"], "--out", out]
    extra = [e.format(**files) for e in extra]
    if "--catalog" in extra:
        args[4] = extra[1]
        extra = extra[2:]
    before = snapshot(tmp_path)
    r = gr(*args, *extra)
    assert_user_error(r, message)
    assert not (tmp_path / "new").exists()
    assert snapshot(tmp_path) == before


def test_refused_after_embedding_removes_the_new_directory(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A catalog whose every image in a shard is unreadable fails mid-build; the directory
    the refused build created goes with it."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"g{i}.png").write_bytes(b"not a png")
    out = tmp_path / "new" / "out"
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        folder,
        "--out",
        out,
        "--on-error",
        "skip",
    )
    assert_user_error(r, "unreadable")
    assert not (tmp_path / "new").exists()


def test_refused_build_in_an_empty_directory_leaves_it_empty(tiny: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "g0.png").write_bytes(b"not a png")
    out = tmp_path / "made-by-the-user"
    out.mkdir()
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        folder,
        "--out",
        out,
        "--on-error",
        "skip",
    )
    assert_user_error(r, "unreadable")
    assert out.is_dir() and list(out.iterdir()) == []
