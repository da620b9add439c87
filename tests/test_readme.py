"""README.md and docs/cli.md are made, not typed: their generated blocks must be current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from typer.testing import CliRunner

from galaxy_retrieval.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _readme_module():
    spec = importlib.util.spec_from_file_location("gr_readme", ROOT / "docs" / "readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_generated_blocks_are_current() -> None:
    mod = _readme_module()
    assert mod.render_readme((ROOT / "README.md").read_text("utf-8")) == (ROOT / "README.md").read_text(
        "utf-8"
    ), "run python docs/readme.py"
    assert mod.cli_reference() == (ROOT / "docs" / "cli.md").read_text("utf-8"), "run python docs/readme.py"
    bench = (ROOT / "benchmarks" / "README.md").read_text("utf-8")
    assert mod.render_readme(bench, mod.BENCH_BLOCKS) == bench, "run python docs/readme.py"
    card = (ROOT / "docs" / "model-card.md").read_text("utf-8")
    assert mod.render_readme(card, mod.MODEL_CARD_BLOCKS) == card, "run python docs/readme.py"


def test_the_check_notices_drift(tmp_path: Path) -> None:
    mod = _readme_module()
    text = (ROOT / "README.md").read_text("utf-8")
    stale = text.replace("| `gr compact --index <path>` |", "| `gr compact --index <path> --dry-run` |")
    assert stale != text and mod.render_readme(stale) == text  # regenerated back


def test_every_command_is_in_the_reference() -> None:
    import typer.main

    names = set(typer.main.get_command(app).commands)
    ref = (ROOT / "docs" / "cli.md").read_text("utf-8")
    table = (ROOT / "README.md").read_text("utf-8")
    assert names == set(re.findall(r"^## `gr ([\w-]+)`", ref, re.M))
    assert all(f"`gr {n}" in table for n in names)


def test_readme_does_not_point_outside_the_repository() -> None:
    for doc in ("README.md", "benchmarks/README.md", "indexes/README.md", "docs/cli.md"):
        assert "../shared" not in (ROOT / doc).read_text("utf-8"), doc


def test_cli_choices_come_from_the_library() -> None:
    """The choices `--help` offers are the library's constants, not a copy of them."""
    import typer.main

    from galaxy_retrieval.fetch.surveys import SURVEYS
    from galaxy_retrieval.index.ray_engine import ENGINES
    from galaxy_retrieval.search.hits import HIT_SUFFIXES
    from galaxy_retrieval.suppress import PRESETS as SUPPRESS

    group = typer.main.get_command(app)

    def metavar(command: str, option: str) -> str:
        cmd = group.commands[command]
        ctx = cmd.context_class(cmd, info_name=command)
        return next(p.get_help_record(ctx)[0] for p in cmd.params if p.name == option)

    assert metavar("train", "suppress_sources").endswith("<" + "|".join(["none", *SUPPRESS]) + ">")
    assert metavar("build-index", "engine").endswith("<" + "|".join(ENGINES) + ">")
    assert metavar("query", "fetch").endswith("<" + "|".join(SURVEYS) + ">")
    assert metavar("query", "output_format").endswith("<" + "|".join(HIT_SUFFIXES) + ">")


def test_cli_refuses_an_unknown_preset_in_one_line() -> None:
    """A choice the library checks (model presets live beside torch) is refused by the library."""
    r = CliRunner().invoke(app, ["train", "--catalog", "x.h5", "--out", "runs/x", "--preset", "huge"])
    assert r.exit_code == 2 and "unknown model preset 'huge'" in r.output and "Traceback" not in r.output


def test_version_and_short_help() -> None:
    from galaxy_retrieval.version import __version__

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(app, ["query", "-h"])
    assert r.exit_code == 0 and "--index" in r.output
    r = CliRunner().invoke(app, ["build-index", "-h"])
    assert "--index-type" in r.output
