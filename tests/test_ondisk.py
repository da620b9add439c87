"""On-disk inverted lists (index/candidates/ondisk.py): the same answers as the in-RAM IVF index, parts
merged equal a one-process build, the searcher serves it, a half-written merge is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from galaxy_retrieval.errors import ConfigError, IndexFormatError
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec, build_faiss_index, load_faiss_index, search_params
from galaxy_retrieval.index.candidates.ondisk import (
    fill_part,
    merge_parts,
    open_ondisk,
    save_trained,
    train_ivf,
)
from galaxy_retrieval.index.writes import compact_index
from galaxy_retrieval.search.searcher import GalaxySearcher
from galaxy_retrieval.search.synthetic import clustered_vectors

from .test_index import _write_shards

N, D = 3000, 32
SPEC = dict(kind="IVF32,SQ8", nprobe=4, seed=0)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return clustered_vectors(N, D, n_clusters=16, intrinsic_dim=8, seed=3)


def _search(index: faiss.Index, xq: np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return index.search(np.ascontiguousarray(xq, np.float32), k)


def test_ondisk_index_answers_like_the_in_ram_one(tmp_path: Path, x: np.ndarray) -> None:
    ram = build_faiss_index(x, IndexSpec(**SPEC), tmp_path / "ram.index")
    disk = build_faiss_index(x, IndexSpec(**SPEC, ondisk=True), tmp_path / "disk.index")
    assert disk["ondisk"]["file"] == "disk.ivfdata" and (tmp_path / "disk.ivfdata").is_file()
    assert ram["factory"] == disk["factory"] == "IVF32,SQ8"
    a = load_faiss_index(tmp_path / "ram.index", ram)
    b = load_faiss_index(tmp_path / "disk.index", disk)
    assert isinstance(
        faiss.downcast_InvertedLists(faiss.extract_index_ivf(b).invlists), faiss.OnDiskInvertedLists
    )
    assert faiss.extract_index_ivf(b).nprobe == 4  # the spec's knob travels with the index
    xq = x[::97]
    da, ia = _search(a, xq)
    db, ib = _search(b, xq)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)
    # per-call knobs work on it too (what the searcher passes)
    pa_, pb = search_params(a, nprobe=32), search_params(b, nprobe=32)
    np.testing.assert_array_equal(a.search(xq, 10, params=pa_)[1], b.search(xq, 10, params=pb)[1])


def test_merged_parts_equal_a_one_process_build(tmp_path: Path, x: np.ndarray) -> None:
    spec = IndexSpec(**SPEC, ondisk=True)
    whole = build_faiss_index(x, spec, tmp_path / "whole" / "faiss.index")
    # the distributed way: train once, fill uneven parts independently (any order), merge
    from galaxy_retrieval.index.candidates import training_sample

    trained = train_ivf(training_sample(x, spec, "IVF32,SQ8"), factory="IVF32,SQ8", seed=0)
    tpath = save_trained(trained, tmp_path / "trained.index")
    cuts = [0, 700, 701, 2200, N]
    parts = [tmp_path / f"p{i}.index" for i in range(len(cuts) - 1)]
    for i in reversed(range(len(parts))):
        lo, hi = cuts[i], cuts[i + 1]
        fill_part(tpath, x[lo:hi], np.arange(lo, hi), parts[i])
    info = merge_parts(tpath, parts, tmp_path / "merged" / "faiss.index", nprobe=4)
    assert info["ntotal"] == N
    a = open_ondisk(tmp_path / "whole" / "faiss.index", whole["ondisk"])
    b = open_ondisk(tmp_path / "merged" / "faiss.index", info["ondisk"])
    ia, ib = faiss.extract_index_ivf(a).invlists, faiss.extract_index_ivf(b).invlists
    for lst in range(32):  # the same lists, element by element: bitwise the same index
        n = ia.list_size(lst)
        assert n == ib.list_size(lst)
        if n:
            assert (
                faiss.rev_swig_ptr(ia.get_ids(lst), n).tolist()
                == faiss.rev_swig_ptr(ib.get_ids(lst), n).tolist()
            )
            assert bytes(faiss.rev_swig_ptr(ia.get_codes(lst), n * ia.code_size)) == bytes(
                faiss.rev_swig_ptr(ib.get_codes(lst), n * ib.code_size)
            )
    assert whole["ondisk"]["sha256"] == info["ondisk"]["sha256"]
    # nothing temporary is left beside the index
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == ["faiss.index", "faiss.ivfdata"]


def test_a_moved_index_finds_its_lists_beside_it(tmp_path: Path, x: np.ndarray) -> None:
    info = build_faiss_index(x, IndexSpec(**SPEC, ondisk=True), tmp_path / "a" / "faiss.index")
    os.rename(tmp_path / "a", tmp_path / "b")
    idx = open_ondisk(tmp_path / "b" / "faiss.index", info["ondisk"])
    assert idx.ntotal == N and _search(idx, x[:3])[1][:, 0].tolist() == [0, 1, 2]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory, x: np.ndarray) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("ondisk")
    shards = _write_shards(tmp / "shards", x, per=1000, dtype="float16")
    ram = build_index_from_shards(shards, tmp / "ram", BuildConfig(index=IndexSpec(**SPEC))).path
    disk = build_index_from_shards(
        shards, tmp / "disk", BuildConfig(index=IndexSpec(**SPEC, ondisk=True))
    ).path
    return ram, disk


def test_searcher_on_an_ondisk_index_answers_like_the_in_ram_one(
    indexes: tuple[Path, Path], x: np.ndarray
) -> None:
    ram, disk = indexes
    m = json.loads((disk / "manifest.json").read_text())
    assert m["faiss"]["ondisk"]["file"] == "faiss.ivfdata" and m["faiss"]["spec"]["ondisk"] is True
    a, b = GalaxySearcher.open(ram, verify=True), GalaxySearcher.open(disk, verify=True)
    for oid in ("obj-0000", "obj-1234", "obj-2999"):
        ha, hb = a.query(object_id=oid, k=10, refine=5), b.query(object_id=oid, k=10, refine=5)
        assert [h.object_id for h in ha] == [h.object_id for h in hb]
        assert [h.score for h in ha] == [h.score for h in hb]
    sa, pa_, _ = a.search_vectors(x[5:25], k=10, refine=3, nprobe=2)
    sb, pb, _ = b.search_vectors(x[5:25], k=10, refine=3, nprobe=2)
    np.testing.assert_array_equal(pa_, pb)
    # filters go to FAISS as an ID selector: the same on the on-disk lists
    wa = a.search_vectors(x[:4], k=5, where="label = 2")[1]
    wb = b.search_vectors(x[:4], k=5, where="label = 2")[1]
    np.testing.assert_array_equal(wa, wb)


def test_a_tampered_or_missing_list_file_is_caught(indexes: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    _, disk = indexes
    copy = tmp_path / "copy"
    shutil.copytree(disk, copy)
    with open(copy / "faiss.ivfdata", "r+b") as fh:
        fh.seek(100)
        b = fh.read(1)
        fh.seek(100)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(IndexFormatError, match="faiss.ivfdata: sha256"):
        GalaxySearcher.open(copy, verify=True)
    (copy / "faiss.ivfdata").unlink()
    with pytest.raises(IndexFormatError, match="faiss.ivfdata: listed in .* but missing"):
        GalaxySearcher.open(copy, verify=False)


def test_a_half_written_merge_is_never_opened_as_complete(
    tmp_path: Path, x: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from galaxy_retrieval.index.candidates import ondisk

    shards = _write_shards(tmp_path / "shards", x, per=1000)
    out = tmp_path / "idx"
    calls = {"n": 0}
    real = ondisk._write_index

    def dies_writing_the_merged_index(index: faiss.Index, path: Path) -> None:
        if path.name == "faiss.index":  # the merge: its data file is in place, its index file not
            raise KeyboardInterrupt
        calls["n"] += 1
        real(index, path)

    monkeypatch.setattr(ondisk, "_write_index", dies_writing_the_merged_index)
    monkeypatch.setattr(ondisk, "PART_ROWS", 1000)
    spec = IndexSpec(**SPEC, ondisk=True)
    with pytest.raises(KeyboardInterrupt):
        build_index_from_shards(shards, out, BuildConfig(index=spec))
    assert calls["n"] == 4  # trained index + 3 parts were written before the "kill"
    assert not (out / "manifest.json").exists()
    with pytest.raises(IndexFormatError, match="not a complete index"):
        GalaxySearcher.open(out)
    assert not [p for p in out.iterdir() if ".parts." in p.name or p.name.endswith(".tmp")]
    # a rerun finishes it
    monkeypatch.setattr(ondisk, "_write_index", real)
    build_index_from_shards(shards, out, BuildConfig(index=spec))
    assert GalaxySearcher.open(out, verify=True).query(object_id="obj-0007", k=3)[0].object_id != "obj-0007"


def test_a_killed_builds_parts_are_cleared_by_the_next(tmp_path: Path, x: np.ndarray) -> None:
    shards = _write_shards(tmp_path / "shards", x, per=1000)
    out = tmp_path / "idx"
    out.mkdir()
    litter = out / ".faiss.index.parts.12345.tmp"  # what a kill -9 mid-build leaves
    litter.mkdir()
    (litter / "part-00000.index").write_bytes(b"x" * 10)
    build_index_from_shards(shards, out, BuildConfig(index=IndexSpec(**SPEC, ondisk=True)))
    assert not litter.exists()


def test_ondisk_needs_an_inverted_file(tmp_path: Path, x: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="inverted-file"):
        build_faiss_index(x, IndexSpec(kind="hnsw", ondisk=True), tmp_path / "f.index")
    # auto with on-disk lists always takes its IVF branch, even for a small catalog
    info = build_faiss_index(x, IndexSpec(ondisk=True), tmp_path / "auto.index")
    assert info["factory"].startswith("IVF") and "ondisk" in info


def test_writes_that_rewrite_faiss_are_refused(indexes: tuple[Path, Path]) -> None:
    _, disk = indexes
    with pytest.raises(IndexFormatError, match="inverted lists on disk"):
        compact_index(disk)


def test_object_ids_are_looked_up_without_a_python_list(
    indexes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from galaxy_retrieval.search import ids

    _, disk = indexes
    s = GalaxySearcher.open(disk)
    assert len(s.object_ids) == N and s.object_ids[17] == "obj-0017" and list(s.object_ids)[-1] == "obj-2999"
    assert s.position_of("obj-1234") == 1234
    monkeypatch.setattr(ids, "HASHED_MAX", 0)  # a large catalog: a scan of the column, no dict
    fresh = ids.ObjectIds(s.table.column("object_id"))
    assert fresh.position("obj-2001") == 2001 and fresh.position("nope") is None and fresh._pos is None


def test_benchmark_section_of_the_readme_is_generated_from_the_json() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("scale_ondisk", root / "benchmarks" / "scale_ondisk.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    text = (root / "benchmarks" / "README.md").read_text()
    assert mod._readme_with(mod.render(mod._section_results())) == text, (
        "run: python benchmarks/scale_ondisk.py --render"
    )


def test_cli_builds_an_ondisk_index_and_queries_it(tmp_path: Path, x: np.ndarray) -> None:
    from typer.testing import CliRunner

    from galaxy_retrieval.cli import app

    shards = _write_shards(tmp_path / "shards", x, per=1000)
    out = tmp_path / "idx"
    r = CliRunner().invoke(
        app,
        [
            "build-index",
            "--from-shards",
            str(shards),
            "--out",
            str(out),
            "--index-type",
            "IVF32,SQ8",
            "--nprobe",
            "8",
            "--ondisk",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "manifest.json").read_text())["faiss"]["ondisk"]["file"] == "faiss.ivfdata"
    r = CliRunner().invoke(
        app,
        [
            "build-index",
            "--from-shards",
            str(shards),
            "--out",
            str(tmp_path / "bad"),
            "--index-type",
            "hnsw",
            "--ondisk",
        ],
    )
    assert r.exit_code == 2 and "inverted-file" in r.output and "Traceback" not in r.output
