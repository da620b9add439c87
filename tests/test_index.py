"""Shards, manifest, FAISS candidates and the searcher, on small clustered vectors.

These tests build indexes from shards written here (no model), so they pin down the storage
and search contracts on their own; tests/test_build.py covers embedding with a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_retrieval.errors import IndexFormatError, QueryError
from galaxy_retrieval.index import read_manifest, shard_name, write_shard
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec, resolve_factory, training_sample
from galaxy_retrieval.score import score_numpy
from galaxy_retrieval.search.searcher import GalaxySearcher

N, D = 600, 32


def _clustered(n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    # clusters in a low-dimensional subspace: iid Gaussian data makes every ANN index look bad
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(12, 6)) * 3
    z = centers[rng.integers(0, 12, n)] + rng.normal(scale=0.5, size=(n, 6))
    return (z @ rng.normal(size=(6, d))).astype(np.float32) / 4


def _write_shards(root: Path, x: np.ndarray, per: int = 250, dtype: str = "float32") -> Path:
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, len(x))
    dec = rng.uniform(-60, 60, len(x))
    root.mkdir(parents=True, exist_ok=True)
    for i, lo in enumerate(range(0, len(x), per)):
        hi = min(len(x), lo + per)
        rows = np.arange(lo, hi)
        write_shard(
            root / shard_name(i),
            [f"obj-{r:04d}" for r in rows],
            rows,
            x[lo:hi],
            {"label": [int(r % 5) for r in rows], "ra": ra[lo:hi].tolist(), "dec": dec[lo:hi].tolist()},
            dtype=dtype,
        )
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    tmp = tmp_path_factory.mktemp("idx")
    x = _clustered()
    shards = _write_shards(tmp / "shards", x)
    res = build_index_from_shards(
        shards, tmp / "index", BuildConfig(index=IndexSpec(kind="hnsw", ef_search=64))
    )
    return res.path, x


def test_shards_are_plain_parquet_with_documented_schema(built: tuple[Path, np.ndarray]) -> None:
    path, x = built
    t = pq.read_table(path / "embeddings")
    assert t.num_rows == N
    assert t.schema.field("object_id").type == pa.string()
    assert t.schema.field("row").type == pa.int64()
    emb_t = t.schema.field("embedding").type
    assert pa.types.is_fixed_size_list(emb_t) and emb_t.list_size == D and emb_t.value_type == pa.float32()
    emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(emb, x)
    assert t.column("label").to_pylist()[:6] == [0, 1, 2, 3, 4, 0]
    assert not list((path / "embeddings").glob("*.tmp"))


def test_manifest_describes_the_index(built: tuple[Path, np.ndarray]) -> None:
    path, _ = built
    m = read_manifest(path)
    assert (m.count, m.dim, m.dtype) == (N, D, "float32")
    assert [s.rows for s in m.shards] == [250, 250, 100]
    assert all(len(s.sha256) == 64 for s in m.shards)
    assert m.faiss["factory"] == "HNSW32,Flat"
    assert m.score_weights == pytest.approx({"cos": 1 / 3, "l2": 1 / 3, "l3": 1 / 3})
    assert not (path / "build-state.json").exists()


def test_query_by_object_id_excludes_itself_and_matches_exact(built: tuple[Path, np.ndarray]) -> None:
    path, x = built
    s = GalaxySearcher.open(path)
    hits = s.query(object_id="obj-0007", k=10, refine=10)
    assert len(hits) == 10 and "obj-0007" not in [h.object_id for h in hits]
    assert [h.rank for h in hits] == list(range(1, 11))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    # ground truth from the reference formula over the whole catalog
    ref = score_numpy(x[7], x)
    ref[7] = -np.inf
    gt = np.argsort(-ref, kind="stable")[:10]
    assert [h.row for h in hits] == gt.tolist()
    for h in hits:
        assert h.score == pytest.approx(ref[h.row], rel=1e-5)
        assert h.score == pytest.approx((h.cos + h.inv_l2 + h.inv_l3) / 3, rel=1e-5)
        assert h.metadata["label"] == h.row % 5
    exact = s.query(object_id="obj-0007", k=10, exact=True)
    assert [h.object_id for h in exact] == [h.object_id for h in hits]


def test_flat_index_agrees_with_exact_tie_aware(tmp_path: Path) -> None:
    x = _clustered(300, 16, seed=3)
    x[10] = x[11]  # a tie: equal scores must come back in a fixed order (lower position first)
    res = build_index_from_shards(
        _write_shards(tmp_path / "s", x, per=100), tmp_path / "i", BuildConfig(index=IndexSpec(kind="flat"))
    )
    s = GalaxySearcher.open(res.path)
    sc_i, pos_i, _ = s.search_vectors(x[:20], k=15, refine=4)
    sc_e, pos_e, _ = s.search_vectors(x[:20], k=15, exact=True)
    np.testing.assert_allclose(sc_i, sc_e, rtol=1e-6)
    for a, b, sa in zip(pos_i, pos_e, sc_e):
        # positions may differ only where scores tie
        for j in np.flatnonzero(a != b):
            assert np.isclose(sa[j], sa[j - 1]) or (j + 1 < len(sa) and np.isclose(sa[j], sa[j + 1]))
    hits = s.query(object_id="obj-0011", k=3, exact=True)
    assert hits[0].object_id == "obj-0010" and hits[0].score == pytest.approx(1.0)


def test_query_by_sky_position(built: tuple[Path, np.ndarray]) -> None:
    path, _ = built
    s = GalaxySearcher.open(path)
    t = pq.read_table(path / "embeddings", columns=["object_id", "ra", "dec"]).to_pylist()[42]
    pos, sep = s.position_at(t["ra"] + 1e-4, t["dec"], radius_arcsec=5)
    assert s.object_ids[pos] == t["object_id"] and 0 < sep < 1
    hits = s.query(ra=t["ra"], dec=t["dec"], k=5)
    assert t["object_id"] not in [h.object_id for h in hits]
    with pytest.raises(QueryError, match="no catalog object within 0.001 arcsec"):
        s.query(ra=(t["ra"] + 0.5) % 360, dec=t["dec"], radius_arcsec=0.001)
    with pytest.raises(QueryError, match="RA 400 out of range"):
        s.query(ra=400, dec=0)
    with pytest.raises(QueryError, match="Dec -91 out of range"):
        s.query(ra=10, dec=-91)


def test_bad_queries(built: tuple[Path, np.ndarray]) -> None:
    s = GalaxySearcher.open(built[0])
    with pytest.raises(QueryError, match="'nope' is not in the index"):
        s.query(object_id="nope")
    with pytest.raises(QueryError, match="k=600 is larger than the 599 objects"):
        s.query(object_id="obj-0001", k=600)
    with pytest.raises(QueryError, match="k must be ≥ 1"):
        s.query(object_id="obj-0001", k=0)
    with pytest.raises(QueryError, match="exactly one of"):
        s.query(object_id="obj-0001", ra=1.0, dec=1.0)


def test_tampered_shard_is_caught(built: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built[0], copy)
    shard = copy / "embeddings" / shard_name(1)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    shard.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="part-00001.parquet: sha256 does not match"):
        GalaxySearcher.open(copy)
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(IndexFormatError, match="bytes, but the manifest says"):
        GalaxySearcher.open(copy, verify=False)
    shard.unlink()
    with pytest.raises(IndexFormatError, match="part-00001.parquet: listed in .* but missing"):
        GalaxySearcher.open(copy)


def test_partial_or_missing_index_is_refused(tmp_path: Path, built: tuple[Path, np.ndarray]) -> None:
    with pytest.raises(IndexFormatError, match="no such index directory"):
        GalaxySearcher.open(tmp_path / "nothing")
    half = tmp_path / "half"
    half.mkdir()
    (half / "build-state.json").write_text("{}")
    with pytest.raises(IndexFormatError, match="a build was interrupted"):
        GalaxySearcher.open(half)
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(built[0], copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["complete"] = False
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="did not finish"):
        GalaxySearcher.open(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        GalaxySearcher.open(copy)


def test_existing_index_is_not_overwritten_silently(built: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    before = (built[0] / "manifest.json").read_bytes()
    with pytest.raises(IndexFormatError, match="already holds a complete index"):
        build_index_from_shards(built[0] / "embeddings", built[0], BuildConfig())
    assert (built[0] / "manifest.json").read_bytes() == before


def test_float16_storage(tmp_path: Path) -> None:
    x = _clustered(200, 16)
    res = build_index_from_shards(
        _write_shards(tmp_path / "s", x, dtype="float16"), tmp_path / "i", BuildConfig()
    )
    s = GalaxySearcher.open(res.path)
    assert s.manifest.dtype == "float16" and s.vectors.dtype == np.float16
    hits = s.query(object_id="obj-0003", k=5)
    ref = score_numpy(x[3].astype(np.float16), x.astype(np.float16))
    ref[3] = -np.inf
    assert [h.row for h in hits] == np.argsort(-ref, kind="stable")[:5].tolist()


def test_auto_index_choice_by_size() -> None:
    spec = IndexSpec()
    assert resolve_factory(spec, 17_000, 2048)[0] == "Flat"
    assert resolve_factory(spec, 1_000_000, 2048)[0] == "PCA64,IVF4096,SQ8"
    f, why = resolve_factory(spec, 50_000_000, 2048)
    # k-means work capped at large N: 8,192 lists, trained on 64 vectors each
    assert f == "PCA64,IVF8192,SQ8" and "50,000,000" in why and "capped" in why
    assert resolve_factory(spec, 10_000_000, 256)[0] == "PCA64,IVF8192,SQ8"
    assert len(training_sample(np.zeros((600_000, 4), np.float32), spec, f)) == 64 * 8192
    assert (
        resolve_factory(IndexSpec(nlist=16384), 50_000_000, 2048)[0] == "PCA64,IVF16384,SQ8"
    )  # asked for: not capped
    assert "capped" not in resolve_factory(spec, 1_000_000, 2048)[1]
    assert resolve_factory(spec, 100_000, 64)[0] == "IVF1024,SQ8"  # no PCA for small D
    assert resolve_factory(IndexSpec(kind="IVF64,SQ8"), 10, 8)[0] == "IVF64,SQ8"
