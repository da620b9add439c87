"""Argument combinations are checked by the library, which names its own parameters; the CLI
only shows the flags of those parameters beside the one-line message (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import ConfigError, QueryError
from galaxy_retrieval.index.maintenance import delete_objects
from galaxy_retrieval.index.sources import build_index_from_source, check_build_source

runner = CliRunner()


def _one_line_error(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and r.output.strip().count("\n") == 0, r.output
    assert "Traceback" not in r.output
    return r.output.strip()


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize("kw", [{}, {"object_ids": ["a"], "where": "label = 1"}])
def test_delete_needs_ids_or_a_filter_not_both(tmp_path: Path, kw: dict) -> None:
    # checked before the index is opened: no index is needed to be refused
    with pytest.raises(QueryError, match="either object ids or a filter condition") as e:
        delete_objects(tmp_path / "no-index", **kw)
    assert e.value.options == ("object_ids", "where")


def test_delete_cli_shows_the_flags_of_the_parameters(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("a\n")
    for extra in ([], ["--ids", str(ids), "--where", "label = 1"]):
        line = _one_line_error(["delete", "--index", str(tmp_path / "idx"), *extra])
        assert line.endswith("not both or neither (--ids or --where)"), line


# --------------------------------------------------------------------------- build-index


@pytest.mark.parametrize(
    ("kw", "message", "options"),
    [
        ({}, "give a catalog to embed", ("catalog", "from_shards")),
        ({"checkpoint": "runs/x"}, "give a catalog to embed", ("catalog", "from_shards")),
        (
            {"from_parquet": "e.parquet", "catalog": "c.h5", "id_column": "id", "vector_columns": "f_*"},
            "indexed as they are: give no shards, checkpoint or catalog",
            ("from_parquet", "from_shards", "checkpoint", "catalog"),
        ),
        (
            {"from_parquet": "e.parquet", "from_shards": "s"},
            "indexed as they are",
            ("from_parquet", "from_shards", "checkpoint", "catalog"),
        ),
        (
            {"from_parquet": "e.parquet", "id_column": "id"},
            "need the id column and the vector columns",
            ("id_column", "vector_columns"),
        ),
        (
            {"from_shards": "s", "checkpoint": "runs/x"},
            "without a checkpoint or a catalog",
            ("from_shards", "checkpoint", "catalog"),
        ),
        ({"from_shards": "s", "catalog": "c.h5"}, "without a checkpoint or a catalog", None),
    ],
)
def test_a_build_reads_exactly_one_source(
    tmp_path: Path, kw: dict, message: str, options: tuple[str, ...] | None
) -> None:
    # refused before anything is read or written: none of these paths exists
    with pytest.raises(ConfigError, match=message) as e:
        build_index_from_source(tmp_path / "idx", **kw)
    if options is not None:
        assert e.value.options == options
    assert not (tmp_path / "idx").exists()


def test_the_source_a_build_reads() -> None:
    assert check_build_source(catalog="c.h5") == "catalog"
    assert check_build_source(catalog="c.h5", checkpoint="runs/x") == "catalog"
    assert check_build_source(from_shards="s") == "shards"
    assert check_build_source(from_parquet="e.parquet", id_column="id", vector_columns="f_*") == "parquet"


def test_a_build_from_shards_goes_through_the_source_call(tmp_path: Path) -> None:
    from galaxy_retrieval.index.build import BuildConfig
    from galaxy_retrieval.index.candidates import IndexSpec

    from .test_index import _clustered, _write_shards

    shards = _write_shards(tmp_path / "s", _clustered(40, 8), per=20)
    res = build_index_from_source(
        tmp_path / "i", BuildConfig(index=IndexSpec(kind="flat")), from_shards=shards
    )
    assert res.manifest.count == 40 and res.path == tmp_path / "i"


@pytest.mark.parametrize(
    ("extra", "ending"),
    [
        ([], "or shards (--catalog or --from-shards)"),
        (["--from-shards", "s", "--catalog", "c.h5"], "(--from-shards or --checkpoint or --catalog)"),
        (["--from-parquet", "e.parquet"], "(--id-column or --vector-columns)"),
        (
            ["--from-parquet", "e.parquet", "--checkpoint", "runs/x"],
            "(--from-parquet or --from-shards or --checkpoint or --catalog)",
        ),
    ],
)
def test_build_index_cli_shows_the_flags(tmp_path: Path, extra: list[str], ending: str) -> None:
    line = _one_line_error(["build-index", "--out", str(tmp_path / "idx"), *extra])
    assert line.endswith(ending), line


# --------------------------------------------------------------------------- query


def test_a_fetch_needs_a_sky_position(tmp_path: Path) -> None:
    from galaxy_retrieval.fetch import CutoutSpec
    from galaxy_retrieval.search.query import QueryRequest, run_query

    # refused before the index is opened: none is needed to be told
    with pytest.raises(QueryError, match="fetch applies to a query by RA and Dec") as e:
        run_query(QueryRequest(index=tmp_path / "no-index", object_id="1", fetch=CutoutSpec(survey="legacy")))
    assert e.value.options == ("fetch", "ra", "dec")


def test_one_example_id_is_a_plain_query_and_several_combine(tmp_path: Path) -> None:
    from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
    from galaxy_retrieval.index.candidates import IndexSpec
    from galaxy_retrieval.search.options import SearchOptions
    from galaxy_retrieval.search.query import QueryRequest, run_query

    from .test_index import _clustered, _write_shards

    path = build_index_from_shards(
        _write_shards(tmp_path / "s", _clustered(60, 8), per=30),
        tmp_path / "i",
        BuildConfig(index=IndexSpec(kind="flat")),
    ).path
    opts = SearchOptions(k=5)
    plain = run_query(QueryRequest(index=path, object_id="obj-0001", options=opts))
    one = run_query(QueryRequest(index=path, positive_ids=("obj-0001",), options=opts))
    assert one.queries == plain.queries == ["object obj-0001"]
    assert [h.object_id for h in one.hits[0]] == [h.object_id for h in plain.hits[0]]
    # one id with combine on, or several ids, is one query over the examples
    for req in (
        QueryRequest(index=path, positive_ids=("obj-0001",), combine=True, options=opts),
        QueryRequest(index=path, positive_ids=("obj-0001", "obj-0002"), options=opts),
    ):
        res = run_query(req)
        assert len(res.queries) == 1 and res.queries[0].startswith("like obj-0001")
    # an image next to one id is two kinds of query, as before
    with pytest.raises(QueryError, match="exactly one kind of query"):
        run_query(QueryRequest(index=path, images=(tmp_path / "a.png",), positive_ids=("obj-0001",)))
    line = _one_line_error(["query", "--index", str(path), "--object-id", "obj-0001", "--fetch", "legacy"])
    assert line.endswith("(--fetch or --ra or --dec)"), line
