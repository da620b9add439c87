"""Indexes of embeddings made elsewhere (issue 13): Zoobot-style Parquet with one column per
component, a list column, and shards written by DuckDB with list<float> embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import CatalogError, CheckpointError
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.index.foreign import build_index_from_parquet
from galaxy_retrieval.score import score_numpy
from galaxy_retrieval.search.searcher import GalaxySearcher

from .test_index import _clustered

N, D = 300, 12
CFG = BuildConfig(index=IndexSpec(kind="flat"), shard_rows=128)


def _zoobot(path: Path, x: np.ndarray, as_list: bool = False) -> Path:
    rng = np.random.default_rng(3)
    cols: dict[str, object] = {
        "id_str": [f"J{i:05d}" for i in range(len(x))],
        "ra": rng.uniform(0, 360, len(x)),
        "dec": rng.uniform(-30, 30, len(x)),
    }
    if as_list:
        cols["feat"] = pa.array(list(x.astype(np.float32)), pa.list_(pa.float32()))
    else:
        for j in range(x.shape[1]):  # file order, not name order: feat_pca_10 after feat_pca_9
            cols[f"feat_pca_{j}"] = x[:, j]
    cols["label"] = [int(i % 4) for i in range(len(x))]
    pq.write_table(pa.table(cols), path, row_group_size=100)
    return path


def _check(s: GalaxySearcher, x: np.ndarray) -> None:
    hits = s.query(object_id="J00007", k=5)
    ref = score_numpy(x[7], x)
    ref[7] = -np.inf
    assert [h.row for h in hits] == np.argsort(-ref, kind="stable")[:5].tolist()
    assert set(hits[0].metadata) >= {"ra", "dec", "label"}
    ra, dec = s.table.column("ra")[9].as_py(), s.table.column("dec")[9].as_py()
    assert s.query(ra=ra, dec=dec, k=3)[0].object_id != "J00009"
    assert [h.object_id for h in s.query(object_id="J00007", k=4, where="label = 2")] and all(
        h.metadata["label"] == 2 for h in s.query(object_id="J00007", k=4, where="label = 2")
    )
    with pytest.raises(CheckpointError, match="no model copy"):
        s.query(image=np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("as_list", [False, True])
def test_zoobot_style_parquet(tmp_path: Path, as_list: bool) -> None:
    x = _clustered(N, D)
    src = _zoobot(tmp_path / "z.parquet", x, as_list)
    res = build_index_from_parquet(src, tmp_path / "idx", "id_str", "feat" if as_list else "feat_pca_*", CFG)
    assert res.manifest.dim == D and res.manifest.catalog["kind"] == "parquet"
    s = GalaxySearcher.open(res.path)
    np.testing.assert_array_equal(np.asarray(s.vectors), x.astype(np.float32))
    _check(s, x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "z.parquet"]  # no staging left beside it


def test_refusals_name_the_columns_and_write_nothing(tmp_path: Path) -> None:
    x = _clustered(N, D)
    src = _zoobot(tmp_path / "z.parquet", x)
    with pytest.raises(CatalogError, match=r"no id column 'id'; the columns are id_str, ra, dec, feat_pca_0"):
        build_index_from_parquet(src, tmp_path / "a", "id", "feat_pca_*", CFG)
    with pytest.raises(CatalogError, match=r"no column matches 'pca_\*'"):
        build_index_from_parquet(src, tmp_path / "b", "id_str", "pca_*", CFG)
    t = pq.read_table(src)
    pq.write_table(t.set_column(0, "id_str", pa.array(["same"] * N)), tmp_path / "dup.parquet")
    with pytest.raises(CatalogError, match="'same' appears more than once"):
        build_index_from_parquet(tmp_path / "dup.parquet", tmp_path / "c", "id_str", "feat_pca_*", CFG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.parquet", "z.parquet"]


def test_interrupted_build_resumes_without_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build stopped after two shards (Ctrl-C; a kill -9 leaves the same files) keeps them;
    the rerun converts only the rest and gives the index an uninterrupted build gives. A rerun
    of another conversion into that directory is refused, naming what differs."""
    import galaxy_retrieval.index.foreign as foreign
    from galaxy_retrieval.errors import IndexFormatError

    x = _clustered(N, D)
    src = _zoobot(tmp_path / "z.parquet", x)
    real, calls = foreign.write_shard, []

    def stop_after_two(*a: object, **k: object) -> None:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(a[0])
        real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(foreign, "write_shard", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        build_index_from_parquet(src, tmp_path / "idx", "id_str", "feat_pca_*", CFG)
    monkeypatch.setattr(foreign, "write_shard", real)
    assert (
        not (tmp_path / "idx" / "manifest.json").exists()
        and len(list((tmp_path / "idx" / "embeddings").glob("part-*.parquet"))) == 2
    )
    with pytest.raises(IndexFormatError, match="interrupted build of something else .*vector_columns"):
        build_index_from_parquet(src, tmp_path / "idx", "id_str", "feat_pca_1*", CFG)
    res = build_index_from_parquet(src, tmp_path / "idx", "id_str", "feat_pca_*", CFG)
    assert (res.embedded_shards, res.reused_shards) == (1, 2)  # 300 rows in shards of ≤128
    fresh = build_index_from_parquet(src, tmp_path / "fresh", "id_str", "feat_pca_*", CFG)
    assert [e.sha256 for e in res.manifest.shards] == [e.sha256 for e in fresh.manifest.shards]
    s = GalaxySearcher.open(res.path, verify=True)
    np.testing.assert_array_equal(np.asarray(s.vectors), x.astype(np.float32))
    _check(s, x)


def test_cli_from_parquet(tmp_path: Path) -> None:
    x = _clustered(N, D)
    src = _zoobot(tmp_path / "z.parquet", x)
    r = CliRunner().invoke(
        app,
        [
            "build-index",
            "--from-parquet",
            str(src),
            "--id-column",
            "id_str",
            "--vector-columns",
            "feat_pca_*",
            "--out",
            str(tmp_path / "i"),
            "--index-type",
            "flat",
        ],
    )
    assert r.exit_code == 0, r.output
    _check(GalaxySearcher.open(tmp_path / "i"), x)


def test_from_shards_accepts_list_float_written_by_duckdb(tmp_path: Path) -> None:
    import duckdb

    x = _clustered(N, D)
    (tmp_path / "s").mkdir()
    src = pa.table(
        {
            "object_id": [f"J{i:05d}" for i in range(N)],
            "row": np.arange(N),
            "embedding": pa.array(list(x), pa.list_(pa.float32())),
            "label": [i % 4 for i in range(N)],
        }
    )
    rng = np.random.default_rng(3)
    src = src.append_column("ra", pa.array(rng.uniform(0, 360, N))).append_column(
        "dec", pa.array(rng.uniform(-30, 30, N))
    )
    con = duckdb.connect()
    con.register("src", src)
    con.sql(f"COPY (SELECT * FROM src) TO '{tmp_path / 's' / 'part-00000.parquet'}' (FORMAT parquet)")
    assert pa.types.is_list(pq.read_schema(tmp_path / "s" / "part-00000.parquet").field("embedding").type)
    res = build_index_from_shards(tmp_path / "s", tmp_path / "i", CFG)
    s = GalaxySearcher.open(res.path)
    np.testing.assert_array_equal(np.asarray(s.vectors), x)
    _check(s, x)
