"""Argument combinations are checked by the library, which names its own parameters; the CLI
only shows the flags of those parameters beside the one-line message (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import QueryError
from galaxy_retrieval.index.maintenance import delete_objects

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
