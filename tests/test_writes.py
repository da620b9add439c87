"""The index as a vector database (issue 13): filters, deletes, compaction, reindex.

Indexes are built from shards written here (no model); every result is checked against a
brute-force reference: the paper's score over the allowed rows, sorted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from galaxy_retrieval.errors import IndexBusyError, QueryError
from galaxy_retrieval.index import read_manifest
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec, ivf_balance, load_faiss_index
from galaxy_retrieval.index.lock import directory_lock
from galaxy_retrieval.index.verify import verify_index
from galaxy_retrieval.index.writes import compact_index, delete_objects, reindex
from galaxy_retrieval.score import score_numpy
from galaxy_retrieval.search.options import SearchOptions
from galaxy_retrieval.search.searcher import GalaxySearcher

from .test_index import _clustered, _write_shards

N, D = 600, 32
KINDS = {
    "flat": IndexSpec(kind="flat"),
    "hnsw": IndexSpec(kind="hnsw", ef_search=64),
    "ivf": IndexSpec(kind="IVF16,Flat", nprobe=2),
}


def _build(tmp: Path, kind: str = "flat") -> tuple[Path, np.ndarray]:
    x = _clustered(N, D)
    res = build_index_from_shards(
        _write_shards(tmp / "shards", x), tmp / "index", BuildConfig(index=KINDS[kind])
    )
    return res.path, x


def _reference(x: np.ndarray, q: int, allowed: np.ndarray, k: int, exclude_self: bool = True) -> list[int]:
    """Top-k positions of row q's neighbours among ``allowed`` (bool mask), itself excluded."""
    ref = score_numpy(x[q], x)
    ref[~allowed] = -np.inf
    if exclude_self:
        ref[q] = -np.inf
    order = np.argsort(-ref, kind="stable")[:k]
    return [int(i) for i in order if np.isfinite(ref[i])]


def _labels() -> np.ndarray:
    return np.arange(N) % 5  # the metadata _write_shards writes


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize(
    "where, want",
    [
        ("label = 3", _labels() == 3),
        ("label = 3 AND row < 40", (_labels() == 3) & (np.arange(N) < 40)),
        ("row = 9", np.arange(N) == 9),
    ],
)
def test_filtered_results_equal_brute_force(tmp_path: Path, kind: str, where: str, want: np.ndarray) -> None:
    path, x = _build(tmp_path, kind)
    s = GalaxySearcher.open(path)
    np.testing.assert_array_equal(s.select(where), np.flatnonzero(want))
    for small in (True, False):  # the exact scan of a small selection, and FAISS with a selector
        s.exact_scan_elements = 1 << 30 if small else 0
        for q in (0, 7, 123):
            hits = s.query(object_id=f"obj-{q:04d}", k=10, where=where)
            # k matching rows exist → k hits, even where the IVF probe (nprobe 2) misses them
            assert [h.row for h in hits] == _reference(x, q, want, 10), (small, q)
            assert all(want[h.row] for h in hits)


def test_sparse_selection_widens_the_ivf_probe(tmp_path: Path) -> None:
    """A filter keeping a fraction f probes nprobe/√f lists. With the index's nprobe 1 (one
    list of 16, ~8 rows of the 20 % selected) the shortlist of 20 missed true neighbours in
    other lists while holding ≥ k rows, so no exact refill repaired it."""
    x = _clustered(N, D)
    res = build_index_from_shards(
        _write_shards(tmp_path / "shards", x),
        tmp_path / "index",
        BuildConfig(index=IndexSpec(kind="IVF16,Flat", nprobe=1)),
    )
    s = GalaxySearcher.open(res.path)
    s.exact_scan_elements = 0  # the FAISS path, however small the selection
    assert s.search_knobs(SearchOptions(), N // 5) == (3, None) and s.search_knobs(
        SearchOptions(nprobe=2), N // 4
    ) == (4, None)
    assert s.search_knobs(SearchOptions(), 1) == (16, None) and s.search_knobs(
        SearchOptions(nprobe=3), N
    ) == (3, None)
    want = _labels() == 3
    for q in range(0, N, 37):
        hits = s.query(object_id=f"obj-{q:04d}", k=5, refine=4, where="label = 3")
        assert [h.row for h in hits] == _reference(x, q, want, 5), q


def test_filter_matching_fewer_than_k_returns_them_all(tmp_path: Path) -> None:
    path, x = _build(tmp_path)
    s = GalaxySearcher.open(path)
    hits = s.query(object_id="obj-0001", k=10, where="row IN (1, 2, 3, 4)")
    assert sorted(h.row for h in hits) == [2, 3, 4]
    assert s.query(object_id="obj-0001", k=5, where="label = 99") == []
    # a batch of vectors: every query gets the matching rows only
    _, pos, _ = s.search_vectors(x[:3], k=4, where="label = 2")
    for i in range(3):
        assert pos[i].tolist() == _reference(x, i, _labels() == 2, 4, exclude_self=False)


@pytest.mark.parametrize(
    "where, reason",
    [("label = ", "syntax error"), ("redshift < 0.05", "redshift"), ("label = 'spiral'", "Conversion")],
)
def test_bad_filter_is_one_line_naming_expression_and_columns(
    tmp_path: Path, where: str, reason: str
) -> None:
    path, _ = _build(tmp_path)
    s = GalaxySearcher.open(path)
    with pytest.raises(QueryError) as e:
        s.query(object_id="obj-0001", where=where)
    msg = str(e.value)
    assert "\n" not in msg and repr(where) in msg and reason in msg
    assert (
        "the columns are object_id (text), row (integer), label (integer), ra (number), dec (number)" in msg
    )


def test_filter_cannot_read_files(tmp_path: Path) -> None:
    path, _ = _build(tmp_path)
    (tmp_path / "secret.csv").write_text("a\n1\n")
    s = GalaxySearcher.open(path)
    with pytest.raises(QueryError, match="a subquery is not allowed"):
        s.select(f"row IN (SELECT a FROM read_csv('{tmp_path / 'secret.csv'}'))")
    with pytest.raises(QueryError, match=r"the function read_csv\(\) is not allowed"):
        s.select(f"read_csv('{tmp_path / 'secret.csv'}') IS NOT NULL")


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_delete_is_honoured_by_every_query_path(tmp_path: Path, kind: str) -> None:
    path, x = _build(tmp_path, kind)
    before = GalaxySearcher.open(path)
    q = 7
    gone = [h.object_id for h in before.query(object_id=f"obj-{q:04d}", k=5)]
    res = delete_objects(path, [*gone, "obj-0300", "no-such-1", "no-such-2"])
    assert (res.deleted, res.not_found, res.live, res.version) == (6, ("no-such-1", "no-such-2"), N - 6, 2)
    dead = np.isin([f"obj-{i:04d}" for i in range(N)], [*gone, "obj-0300"])
    s = GalaxySearcher.open(path)
    assert len(s) == N - 6 and s.manifest.version == 2
    for exact in (False, True):
        for small in (True, False):
            s.exact_scan_elements = 1 << 30 if small else 0
            hits = s.query(object_id=f"obj-{q:04d}", k=10, exact=exact)
            assert [h.row for h in hits] == _reference(x, q, ~dead, 10)
    with pytest.raises(QueryError, match="was deleted"):
        s.query(object_id="obj-0300")
    ra, dec = s.table.column("ra")[300].as_py(), s.table.column("dec")[300].as_py()
    with pytest.raises(QueryError, match="no catalog object within"):
        s.query(ra=ra, dec=dec, radius_arcsec=0.01)
    assert not set(gone) & {h.object_id for h in s.query(object_id="obj-0001", k=10, where="label >= 0")}
    # a searcher opened before the delete keeps answering from its version
    assert [h.object_id for h in before.query(object_id=f"obj-{q:04d}", k=5)] == gone
    # deleting again is a no-op that writes nothing
    again = delete_objects(path, gone)
    assert (again.deleted, again.already_deleted, again.version) == (0, 5, 2)
    verify_index(path)


def test_delete_by_filter_then_compact(tmp_path: Path) -> None:
    path, x = _build(tmp_path, "ivf")
    res = delete_objects(path, where="label = 0 OR row >= 500")
    dead = (_labels() == 0) | (np.arange(N) >= 500)
    assert res.deleted == int(dead.sum())
    s = GalaxySearcher.open(path)
    want = [s.object_ids[r] for r in _reference(x, 7, ~dead, 10)]
    c = compact_index(path)
    assert (c.removed, c.count, c.version) == (int(dead.sum()), int((~dead).sum()), 3)
    m = read_manifest(path)
    assert m.tombstones is None and m.count == c.count
    # only the new version's files remain: old shards, vectors, FAISS index, tombstones are gone
    listed = {e.file for e in m.shards} | {m.vectors_file, m.faiss_file}
    on_disk = {
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.parent.name != "model"
    } - {"manifest.json", ".gr-write.lock"}
    assert on_disk == listed
    t = pq.read_table(path / "embeddings")
    assert t.num_rows == c.count and not (
        set(t.column("object_id").to_pylist()) & {f"obj-{i:04d}" for i in np.flatnonzero(dead)}
    )
    s2 = GalaxySearcher.open(path)
    s2.exact_scan_elements = 0
    assert [h.object_id for h in s2.query(object_id="obj-0007", k=10, nprobe=16)] == want
    assert load_faiss_index(path / m.faiss_file).ntotal == c.count
    verify_index(path)


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path, _ = _build(tmp_path)
    before = read_manifest(path)
    with directory_lock(path):
        with pytest.raises(IndexBusyError, match="another writer"):
            delete_objects(path, ["obj-0001"])
    assert read_manifest(path) == before


def test_reindex_rebuilds_faiss_and_reports_balance(tmp_path: Path) -> None:
    path, x = _build(tmp_path, "ivf")
    bal = ivf_balance(load_faiss_index(path / read_manifest(path).faiss_file))
    assert bal is not None and bal["nlist"] == 16 and bal["vectors"] == N and bal["imbalance"] >= 1.0
    m = reindex(path, IndexSpec(kind="IVF8,Flat", nprobe=8))
    assert m.version == 2 and m.faiss["factory"] == "IVF8,Flat" and not (path / "faiss.index").exists()
    s = GalaxySearcher.open(path)
    assert [h.row for h in s.query(object_id="obj-0007", k=10)] == _reference(x, 7, np.ones(N, bool), 10)
    assert ivf_balance(s.index)["nlist"] == 8
    assert ivf_balance(load_faiss_index(path / m.faiss_file)) is not None
    assert ivf_balance(GalaxySearcher.open(_build(tmp_path / "f")[0]).index) is None


# --------------------------------------------------------------------------- least, sky spread, exports


def test_least_similar_is_the_bottom_of_the_exact_ranking(tmp_path: Path) -> None:
    path, x = _build(tmp_path, "ivf")
    delete_objects(path, ["obj-0100"])
    s = GalaxySearcher.open(path)
    for where, allowed in (
        (None, np.arange(N) != 100),
        ("label = 1", (_labels() == 1) & (np.arange(N) != 100)),
    ):
        hits = s.query(object_id="obj-0007", k=6, order="least", where=where)
        ref = score_numpy(x[7], x)
        ref[~allowed | (np.arange(N) == 7)] = np.inf
        assert [h.row for h in hits] == np.argsort(ref, kind="stable")[:6].tolist()
        assert [h.score for h in hits] == sorted(h.score for h in hits)


def _sky_index(tmp: Path, kind: str) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """Groups of three rows 3.6" apart (one galaxy cut out three times), groups 1° apart."""
    from galaxy_retrieval.index import shard_name, write_shard

    base = _clustered(N // 3, D)
    x = (np.repeat(base, 3, axis=0) + np.random.default_rng(2).normal(scale=1e-3, size=(N, D))).astype(
        np.float32
    )
    ra = (np.arange(N) // 3) * 0.5 % 360
    dec = (np.arange(N) % 3) * 1e-3
    (tmp / "sky").mkdir(parents=True)
    write_shard(
        tmp / "sky" / shard_name(0),
        [f"obj-{r:04d}" for r in range(N)],
        np.arange(N),
        x,
        {"ra": ra.tolist(), "dec": dec.tolist()},
    )
    res = build_index_from_shards(tmp / "sky", tmp / "index", BuildConfig(index=KINDS[kind]))
    return res.path, x, ra, dec


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_min_separation_equals_greedy_reference(tmp_path: Path, kind: str) -> None:
    from galaxy_retrieval.search.sky import angular_separation_arcsec

    path, x, ra, dec = _sky_index(tmp_path, kind)
    s = GalaxySearcher.open(path)
    for q in (4, 250):
        order = [i for i in np.argsort(-score_numpy(x[q], x), kind="stable") if i != q]
        kept: list[int] = []
        for i in order:  # greedy: drop what is within 10" of the query or of a better kept hit
            near = [q, *kept]
            if angular_separation_arcsec(ra[i], dec[i], ra[near], dec[near]).min() >= 10:
                kept.append(int(i))
            if len(kept) == 8:
                break
        for exact in (False, True):
            hits = s.query(object_id=f"obj-{q:04d}", k=8, min_separation_arcsec=10, exact=exact)
            assert [h.row for h in hits] == kept
        plain = s.query(object_id=f"obj-{q:04d}", k=8)
        assert [h.row for h in plain] != kept  # the test data does hold near-duplicates
    with pytest.raises(QueryError, match="must be > 0"):
        s.query(object_id="obj-0001", min_separation_arcsec=0)


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".json", ".fits", ".vot"])
def test_hits_export_and_arrow_table(tmp_path: Path, ext: str) -> None:
    import json

    import pyarrow.csv as pcsv

    from galaxy_retrieval.search.query import QueryRequest, run_query

    path, _ = _build(tmp_path)
    out = tmp_path / f"hits{ext}"
    res = run_query(
        QueryRequest(
            index=path, object_id="obj-0007", options=SearchOptions(k=4, where="label < 3"), output=out
        )
    )
    t = res.table()
    assert t.column_names == [
        "query",
        "rank",
        "object_id",
        "row",
        "score",
        "percentile",
        "cos",
        "inv_l2",
        "inv_l3",
        "label",
        "ra",
        "dec",
    ]
    assert t.column("rank").to_pylist() == [1, 2, 3, 4] and set(t.column("query").to_pylist()) == {
        "object obj-0007"
    }
    assert t.column("object_id").to_pylist() == [h.object_id for h in res.hits[0]]
    if ext in (".fits", ".vot"):  # TOPCAT's formats, through astropy
        from astropy.table import Table

        back = Table.read(out)
        assert [str(x) for x in back["object_id"]] == t.column("object_id").to_pylist()
        assert list(back["score"]) == pytest.approx(t.column("score").to_pylist())
        return
    back = pq.read_table(out) if ext == ".parquet" else pcsv.read_csv(out) if ext == ".csv" else None
    if back is None:
        recs = json.loads(out.read_text())
        assert [r["object_id"] for r in recs] == t.column("object_id").to_pylist() and recs[0]["label"] < 3
    else:
        assert back.column("object_id").to_pylist() == t.column("object_id").to_pylist()
        assert back.column("score").to_pylist() == pytest.approx(t.column("score").to_pylist())


def test_hits_export_refuses_unknown_format_before_searching(tmp_path: Path) -> None:
    from galaxy_retrieval.errors import OutputPathError
    from galaxy_retrieval.search.query import QueryRequest, run_query

    path, _ = _build(tmp_path)
    with pytest.raises(OutputPathError, match=r"hits\.xlsx: unknown hits format '\.xlsx'"):
        run_query(QueryRequest(index=path, object_id="obj-0007", output=tmp_path / "hits.xlsx"))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_append_vectors_without_retraining_and_refusals(tmp_path: Path, kind: str) -> None:
    from galaxy_retrieval.errors import CatalogError, IndexFormatError
    from galaxy_retrieval.index.writes import append_vectors

    path, x = _build(tmp_path, kind)
    trained = load_faiss_index(path / read_manifest(path).faiss_file)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with pytest.raises(IndexFormatError, match="16-dimensional|32-dimensional"):
        append_vectors(path, ["a", "b"], np.zeros((2, 16), np.float32))
    with pytest.raises(CatalogError, match="'a' appears more than once"):
        append_vectors(path, ["a", "a"], np.zeros((2, D), np.float32))
    with pytest.raises(IndexFormatError, match="'obj-0003' is already in the index"):
        append_vectors(path, ["new", "obj-0003"], np.zeros((2, D), np.float32))
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    extra = _clustered(50, D, seed=7)
    res = append_vectors(path, [f"new-{i}" for i in range(50)], extra, {"label": [7] * 50})
    assert (res.added, res.version) == (50, 2)
    s = GalaxySearcher.open(path)
    s.exact_scan_elements = 0
    allx = np.concatenate([x, extra])
    ref = score_numpy(extra[3], allx)
    ref[N + 3] = -np.inf
    hits = s.query(object_id="new-3", k=5, nprobe=16)
    assert [s.position_of(h.object_id) for h in hits] == [int(i) for i in np.argsort(-ref, kind="stable")[:5]]
    assert {h.object_id for h in s.query(object_id="new-3", k=5, where="label = 7")} <= {
        f"new-{i}" for i in range(50)
    }
    if kind == "ivf":  # the quantiser is the trained one: same centroids, no retraining
        import faiss

        after = faiss.extract_index_ivf(s.index)
        np.testing.assert_array_equal(
            after.quantizer.reconstruct_n(0, 16),
            faiss.extract_index_ivf(trained).quantizer.reconstruct_n(0, 16),
        )


def test_cli_query_least_separation_output_and_info_balance(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from galaxy_retrieval.cli import app

    path, x, ra, dec = _sky_index(tmp_path, "ivf")
    run = CliRunner().invoke
    out = tmp_path / "hits.csv"
    r = run(
        app,
        [
            "query",
            "--index",
            str(path),
            "--object-id",
            "obj-0004",
            "--k",
            "5",
            "--min-separation",
            "10",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"hits written to {out}" in r.output.replace("\n", "")
    rows = out.read_text().splitlines()
    assert rows[0].split(",")[:8] == [
        '"query"',
        '"rank"',
        '"object_id"',
        '"row"',
        '"score"',
        '"percentile"',
        '"cos"',
        '"inv_l2"',
    ]
    got = [int(line.split(",")[3]) for line in rows[1:]]
    assert len(got) == 5 and not {3, 5} & set(got)  # the query's own duplicates are dropped
    r = run(app, ["query", "--index", str(path), "--object-id", "obj-0004", "--k", "3", "--least", "--json"])
    assert r.exit_code == 0, r.output
    import json

    hits = json.loads(r.output)["results"][0]["hits"]
    ref = score_numpy(x[4], x)
    ref[4] = np.inf
    assert [h["row"] for h in hits] == np.argsort(ref, kind="stable")[:3].tolist()
    r = run(
        app,
        ["query", "--index", str(path), "--object-id", "obj-0004", "--output", str(tmp_path / "hits.txt")],
    )
    assert r.exit_code == 2 and "unknown hits format '.txt'" in r.output and "Traceback" not in r.output
    r = run(app, ["info", str(path)])
    assert r.exit_code == 0 and "16 lists, imbalance" in " ".join(r.output.split()), r.output


@pytest.mark.parametrize("exact", [False, True])
def test_positive_and_negative_examples_equal_the_reference(tmp_path: Path, exact: bool) -> None:
    path, x = _build(tmp_path, "flat")
    delete_objects(path, ["obj-0011"])
    s = GalaxySearcher.open(path)
    # positives alike (as a user picks them: the mean lies among both), a negative elsewhere
    near = int(np.argsort(-score_numpy(x[7], x), kind="stable")[1])
    pos_ids, neg_ids = [7, near], [300]
    combined = (score_numpy(x[7], x) + score_numpy(x[near], x)) / 2 - score_numpy(x[300], x)
    combined[[7, near, 300, 11]] = -np.inf  # the examples themselves and a deleted row
    want = np.argsort(-combined, kind="stable")[:8].tolist()
    # exact scores every row; the shortlist of k×refine around the positives' mean finds the same here
    hits = s.query_examples(
        [f"obj-{i:04d}" for i in pos_ids], [f"obj-{i:04d}" for i in neg_ids], k=8, refine=20, exact=exact
    )
    assert [h.row for h in hits] == want
    assert [h.score for h in hits] == pytest.approx(combined[want].tolist(), rel=1e-5)
    # one positive, no negative: the ordinary query
    one = s.query_examples(["obj-0007"], k=6, exact=exact)
    assert [h.row for h in one] == [h.row for h in s.query(object_id="obj-0007", k=6, exact=True)]
    filt = s.query_examples(["obj-0007"], ["obj-0300"], k=50, where="label = 4", exact=exact)
    assert filt and all(h.row % 5 == 4 for h in filt)
    with pytest.raises(QueryError, match="at least one positive"):
        s.query_examples([])


def test_batch_targets_ids_and_sky_into_one_table(tmp_path: Path) -> None:
    from galaxy_retrieval.search.query import QueryRequest, run_query

    path, x = _build(tmp_path)
    s = GalaxySearcher.open(path)
    (tmp_path / "ids.csv").write_text("objid,comment\nobj-0007,a\nobj-0100,b\n")
    res = run_query(
        QueryRequest(
            index=path,
            targets=tmp_path / "ids.csv",
            options=SearchOptions(k=3),
            output=tmp_path / "hits.parquet",
        )
    )
    assert res.queries == ["object obj-0007", "object obj-0100"]
    assert [[h.object_id for h in hs] for hs in res.hits] == [
        [h.object_id for h in s.query(object_id=o, k=3)] for o in ("obj-0007", "obj-0100")
    ]
    t = pq.read_table(tmp_path / "hits.parquet")
    assert (
        t.num_rows == 6 and t.column("query").to_pylist() == ["object obj-0007"] * 3 + ["object obj-0100"] * 3
    )
    ra, dec = s.table.column("ra")[42].as_py(), s.table.column("dec")[42].as_py()
    (tmp_path / "sky.csv").write_text(f"RAJ2000,DEJ2000\n{ra},{dec}\n")
    res = run_query(QueryRequest(index=path, targets=tmp_path / "sky.csv", options=SearchOptions(k=2)))
    assert res.queries[0].startswith("object obj-0042") and len(res.hits[0]) == 2
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(
        QueryError, match="needs a column of object ids, ra and dec, or image paths; the columns are name"
    ):
        run_query(QueryRequest(index=path, targets=tmp_path / "bad.csv"))


def test_add_appends_to_the_vectors_file_in_place(tmp_path: Path) -> None:
    """An add writes the new rows after the old ones in the same file (O(added), not O(N));
    a reader of the old version keeps answering; bytes a killed add appended past the
    manifest's rows are ignored by readers and truncated by the next writer."""
    import hashlib
    import json
    import os

    from galaxy_retrieval.index.writes import append_vectors

    path, x = _build(tmp_path)
    vec = path / "vectors.npy"
    inode, row = vec.stat().st_ino, D * 4
    old = GalaxySearcher.open(path)
    want = [h.object_id for h in old.query(object_id="obj-0005", k=5)]
    extra = _clustered(40, D, seed=3)
    append_vectors(path, [f"new-{i}" for i in range(40)], extra)
    m = read_manifest(path)
    assert m.vectors_file == "vectors.npy" and vec.stat().st_ino == inode
    assert [seg["rows"] for seg in m.vectors["segments"]] == [N, 40]
    assert vec.stat().st_size == m.vectors["offset"] + (N + 40) * row
    assert np.load(vec).shape == (N + 40, D)  # the .npy header follows the newest version
    assert [h.object_id for h in old.query(object_id="obj-0005", k=5)] == want and len(old) == N
    np.testing.assert_array_equal(np.asarray(GalaxySearcher.open(path).vectors[N:]), extra)

    # a killed add: rows appended and the header moved on, no manifest for them
    with open(vec, "ab") as f:
        f.write(np.ones((7, D), np.float32).tobytes())
    hdr = np.lib.format
    with open(vec, "r+b") as f:
        hdr.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (N + 47, D)})
    s = GalaxySearcher.open(path, verify=True)
    assert len(s) == N + 40 and s.vectors.shape == (N + 40, D)
    verify_index(path)
    append_vectors(path, ["late"], extra[:1] * 2)  # the next writer drops the 7 rows first
    assert vec.stat().st_size == m.vectors["offset"] + (N + 41) * row and np.load(vec).shape == (N + 41, D)
    np.testing.assert_array_equal(np.asarray(GalaxySearcher.open(path).vectors[-1]), extra[0] * 2)

    # an index of format 2 (one digest over the whole file): the first add copies once
    d = json.loads((path / "manifest.json").read_text())
    d["format_version"], d["vectors"] = (
        2,
        {
            "file": "vectors.npy",
            "dtype": "float32",
            "shape": [N + 41, D],
            "bytes": vec.stat().st_size,
            "sha256": hashlib.sha256(vec.read_bytes()).hexdigest(),
        },
    )
    (path / "manifest.json").write_text(json.dumps(d))
    GalaxySearcher.open(path, verify=True)
    append_vectors(path, ["later"], extra[:1])
    m = read_manifest(path)
    assert (
        m.format_version == 3
        and m.vectors_file == "vectors-v00004.npy"
        and not vec.exists()
        and [seg["rows"] for seg in m.vectors["segments"]] == [N + 42]
    )
    verify_index(path)
    assert os.path.getsize(path / m.vectors_file) == m.vectors["offset"] + (N + 42) * row
