"""`gr add`, `gr delete`, `gr compact`, `gr query --where` on a tiny model-built index
(issue 13): adds embed with the index's own model, refuse a present id by name, survive
kill -9 at every stage, and the CLI reports in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.index import read_manifest
from galaxy_retrieval.index.verify import verify_index
from galaxy_retrieval.index.writes import add_objects
from galaxy_retrieval.search.searcher import GalaxySearcher

from ..conftest import write_galaxy10_h5
from .conftest import assert_user_error, gr, snapshot


def _catalog(path: Path, ids: list[str], seed: int) -> Path:
    write_galaxy10_h5(path, n=len(ids), size=32, seed=seed)
    with h5py.File(path, "a") as f:
        f.create_dataset("object_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
    return path


@pytest.fixture
def index(tiny: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny["index"], tmp_path / "index"))


def test_add_embeds_with_the_index_model_and_matches_a_full_build(
    tiny: dict[str, Path], index: Path, tmp_path: Path
) -> None:
    new = _catalog(tmp_path / "new.h5", [f"new-{i}" for i in range(6)], seed=9)
    before = GalaxySearcher.open(index)
    with open_catalog(new) as c:
        res = add_objects(index, c, batch_size=4)
    assert (res.added, res.replaced, res.version) == (6, 0, 2)
    s = GalaxySearcher.open(index)
    assert len(s) == 36 and s.object_ids[-6:] == [f"new-{i}" for i in range(6)]
    # the added vectors are what the index's model makes of those images
    with open_catalog(new) as c:
        want = s.embedder.embed(c.get_batch(list(range(6))).images)
    np.testing.assert_allclose(np.asarray(s.vectors[30:]), want, rtol=1e-5, atol=1e-6)
    # and FAISS finds them: a flat index with the new rows answers as the exact scan
    hits = s.query(object_id="new-2", k=8)
    assert [h.object_id for h in hits] == [h.object_id for h in s.query(object_id="new-2", k=8, exact=True)]
    assert len(before) == 30 and before.query(object_id="0", k=3)  # the old reader keeps its version
    # the new rows were appended to the same vectors file (no copy of the old rows); the
    # FAISS index of version 1 is gone, the old reader keeps its in-memory copy
    assert read_manifest(index).vectors_file == "vectors.npy" and not (index / "faiss.index").exists()
    assert np.load(index / "vectors.npy", mmap_mode="r").shape == (36, s.manifest.dim)
    verify_index(index)


def test_add_refuses_a_present_id_by_name_unless_upsert(index: Path, tmp_path: Path) -> None:
    clash = _catalog(tmp_path / "clash.h5", ["new-a", "7"], seed=3)
    before = snapshot(index)
    r = gr("add", "--index", index, "--catalog", clash)
    assert_user_error(r, "'7'", "--upsert")
    assert snapshot(index) == before
    r = gr("add", "--index", index, "--catalog", clash, "--upsert")
    assert r.exit_code == 0 and "added 2 objects" in r.output and "(1 replaced)" in r.output, r.output
    s = GalaxySearcher.open(index)
    assert len(s) == 31 and s.object_ids.count("7") == 2  # the old row is a tombstone
    assert s.position_of("7") == 31
    assert "7" in {h.object_id for h in s.query(object_id="new-a", k=30)}


@pytest.mark.parametrize("stage", ["write_shard", "_append_vectors", "write_faiss_index", "write_tombstones"])
def test_kill_9_mid_add_leaves_the_old_version_and_a_rerun_completes(
    index: Path, tmp_path: Path, stage: str
) -> None:
    cat = _catalog(tmp_path / "new.h5", ["new-0", "new-1", "3"], seed=5)
    code = textwrap.dedent(
        """
        import os, signal, sys
        import galaxy_retrieval.index.writes as w
        from galaxy_retrieval.catalog import open_catalog
        stage, index, cat = sys.argv[1:4]
        real = getattr(w, stage)
        def dying(*a, **k):
            real(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        setattr(w, stage, dying)
        with open_catalog(cat) as c:
            w.add_objects(index, c, upsert=True, batch_size=4)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run(
        [sys.executable, "-c", code, stage, str(index), str(cat)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == -9, r.stderr
    m = read_manifest(index)
    assert (m.version, m.count) == (1, 30)
    s = GalaxySearcher.open(index)
    assert len(s) == 30 and s.query(object_id="3", k=5)
    with open_catalog(cat) as c:
        res = add_objects(index, c, upsert=True, batch_size=4)
    assert (res.version, res.added, res.replaced) == (2, 3, 1)
    verify_index(index)
    m = read_manifest(index)
    listed = {e.file for e in m.shards} | {m.vectors_file, m.faiss_file, (m.tombstones or {}).get("file")}
    leftovers = (
        {p.name for p in index.rglob("*") if p.is_file() and p.parent.name != "model"}
        - {Path(f).name for f in listed if f}
        - {"manifest.json", ".gr-write.lock"}
    )
    assert leftovers == set()


def test_cli_delete_compact_query_where_and_info(index: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# to drop\n1\n2\n\nnope\n")
    r = gr("delete", "--index", index, "--ids", ids)
    assert r.exit_code == 0, r.output
    assert (
        "deleted 2 objects" in r.output
        and "28 remain" in r.output
        and "1 ids not found in the index: nope" in r.output
    )
    r = gr("query", "--index", index, "--object-id", "0", "--k", "30", "--where", "label = 3", "--json")
    assert r.exit_code == 0, r.output
    import json

    hits = json.loads(r.output)["results"][0]["hits"]
    assert hits and all(h["metadata"]["label"] == 3 for h in hits) and len(hits) == 3  # rows 3, 13, 23
    r = gr("query", "--index", index, "--object-id", "0", "--where", "redshift <")
    assert_user_error(r, "'redshift <'", "the columns are object_id (text), row (integer)")
    r = gr("query", "--index", index, "--object-id", "1")
    assert_user_error(r, "'1' was deleted")
    r = gr("info", index)
    assert r.exit_code == 0 and "2 deleted" in r.output, r.output
    r = gr("delete", "--index", index, "--where", "label = 9")
    assert r.exit_code == 0 and "deleted 3 objects" in r.output, r.output
    r = gr("compact", "--index", index)
    assert r.exit_code == 0 and "5 deleted objects removed, 25 remain" in r.output, r.output
    assert len(GalaxySearcher.open(index)) == 25
    r = gr("delete", "--index", index, "--where", "nosuch = 1")
    assert_user_error(r, "'nosuch = 1'", "label")


def test_cli_several_examples(tiny: dict[str, Path], index: Path, tmp_path: Path) -> None:
    import json

    from PIL import Image

    with h5py.File(tiny["catalog"]) as f:
        Image.fromarray(f["images"][20]).save(tmp_path / "neg.png")
    r = gr(
        "query",
        "--index",
        index,
        "--object-id",
        "3",
        "--object-id",
        "13",
        "--negative-id",
        "5",
        "--negative",
        tmp_path / "neg.png",
        "--k",
        "6",
        "--exact",
        "--json",
    )
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)["results"][0]
    s = GalaxySearcher.open(index)
    want = s.query_examples(["3", "13"], ["5", tmp_path / "neg.png"], k=6, exact=True)
    assert [h["object_id"] for h in got["hits"]] == [h.object_id for h in want]
    assert not {"3", "13", "5"} & {h["object_id"] for h in got["hits"]}
    assert got["query"].startswith("like 3, 13; unlike")
    r = gr("query", "--index", index, "--negative-id", "5")
    assert_user_error(r, "at least one positive")


def test_cli_image_flag_takes_several_paths(tiny: dict[str, Path], index: Path, tmp_path: Path) -> None:
    import json

    from PIL import Image

    with h5py.File(tiny["catalog"]) as f:
        for i in (1, 2, 3):
            Image.fromarray(f["images"][i]).save(tmp_path / f"q{i}.png")
    a, b, c = (tmp_path / f"q{i}.png" for i in (1, 2, 3))
    one = gr("query", "--index", index, "--image", a, b, c, "--k", "2", "--json")
    assert one.exit_code == 0, one.output
    many = gr("query", "--index", index, "--image", a, "--image", b, "--image", c, "--k", "2", "--json")
    assert json.loads(one.output)["results"] == json.loads(many.output)["results"]
    assert [r["query"] for r in json.loads(one.output)["results"]] == [str(a), str(b), str(c)]
    r = gr("query", "--index", index, a)
    assert r.exit_code == 2 and "unexpected argument" in r.output


def test_folder_index_keeps_file_names_and_info_shows_classes(tiny: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["filename,label"]
    for i in range(6):
        name = f"sub/g{i}.png" if i % 2 else f"g{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / name)
        lines.append(f"{name},{'FRI' if i < 3 else 'FRII'}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        folder,
        "--out",
        tmp_path / "idx",
        "--index-type",
        "flat",
    )
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "idx" / "embeddings")
    assert sorted(t.column("filename").to_pylist()) == sorted(line.split(",")[0] for line in lines[1:])
    r = gr("info", tmp_path / "idx")
    assert r.exit_code == 0 and "0 FRI, 1 FRII" in r.output, r.output


def test_add_refused_mid_embedding_leaves_the_index_as_it_was(index: Path, tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"n{i}.png")
    (folder / "n9.png").write_bytes(b"not a png")  # the last batch fails, after shards were written
    before = snapshot(index)
    r = gr("add", "--index", index, "--catalog", folder, "--batch-size", "3")
    assert_user_error(r, "n9.png")
    assert snapshot(index) == before
    r = gr("add", "--index", index, "--catalog", folder, "--batch-size", "3", "--on-error", "skip")
    assert r.exit_code == 0 and "added 9 objects" in r.output and "skipped 1" in r.output, r.output
