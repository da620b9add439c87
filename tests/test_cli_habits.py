"""CLI habits of issue 22: a delete that can be tried first and never deletes nothing silently."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.index.manifest import read_manifest
from galaxy_retrieval.search.searcher import GalaxySearcher

from .test_index import _clustered, _write_shards

runner = CliRunner()


def test_delete_dry_run_and_nothing_to_delete(tmp_path: Path) -> None:
    path = build_index_from_shards(
        _write_shards(tmp_path / "s", _clustered(60, 8), per=30),
        tmp_path / "i",
        BuildConfig(index=IndexSpec(kind="flat")),
    ).path
    ids = tmp_path / "ids.txt"
    ids.write_text("obj-0001\nobj-0002\n")
    r = runner.invoke(app, ["delete", "--index", str(path), "--ids", str(ids), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert (
        "would delete 2 objects" in r.output
        and "obj-0001, obj-0002" in r.output
        and "nothing changed" in r.output
    )
    assert read_manifest(path).version == 1 and len(GalaxySearcher.open(path)) == 60
    r = runner.invoke(app, ["delete", "--index", str(path), "--where", "label = 99"])
    assert r.exit_code == 0 and "nothing deleted from" in r.output and "no object matches" in r.output
    assert read_manifest(path).version == 1
    r = runner.invoke(app, ["delete", "--index", str(path), "--ids", str(ids)])
    assert r.exit_code == 0 and "deleted 2 objects" in r.output and "58 remain" in r.output
