"""The package's layering: every import points down, so there are no import cycles.

Read from the source (every ``import``, including the lazy ones inside functions; imports
under ``if TYPE_CHECKING:`` are annotations only and do not count), so it needs no torch or
faiss and checks code paths a test run might never import. A new edge that points up fails
here with the two modules named; put the shared piece lower (as loose accuracy moved to
``metrics`` so that ``train`` and ``evaluate`` no longer import each other).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "galaxy_retrieval"

#: Bottom to top. A unit (a top-level module or subpackage) may import only units of lower
#: layers. Units in one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version"),
    ("atomic", "paths", "progress", "score", "framing", "suppress", "pipeline_file"),
    ("catalog", "metrics", "descriptors"),
    ("model", "viz", "synth", "fetch"),
    ("ingest",),
    ("index", "train"),
    ("search",),
    ("evaluate", "explain"),
    ("serve", "bench"),
    ("demo",),
    ("cli",),
    ("__init__",),
)
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> tuple[str, str]:
    """(module, package it resolves relative imports against)."""
    parts = ("galaxy_retrieval", *path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        mod = ".".join(parts[:-1])
        return mod, mod
    return ".".join(parts), ".".join(parts[:-1])


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, text: str | None = None) -> list[tuple[str, int]]:
    """(absolute target module, line) of every runtime import of galaxy_retrieval in ``path``
    (or in ``text``, read as if it were that file)."""
    mod, pkg = _module_name(path)
    tree = ast.parse(path.read_text("utf-8") if text is None else text)
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("galaxy_retrieval"):
                out.append((target, node.lineno))
                # `from .pkg import submodule` imports the submodule too
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if _exists(sub):
                        out.append((sub, node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names if a.name.startswith("galaxy_retrieval"))
    return out


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file() or module == "galaxy_retrieval"


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(p)[0]) for p in SOURCES}
    assert units - set(LAYER_OF) == set(), "add the new module or package to LAYERS"


def test_imports_resolve_and_point_down() -> None:
    problems = []
    for path in SOURCES:
        mod, _ = _module_name(path)
        for target, line in _imports(path):
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if not _exists(target) and not _exists(target.rsplit(".", 1)[0]):
                problems.append(f"{where} imports {target}, which does not exist")
                continue
            a, b = _unit(mod), _unit(target)
            if a != b and LAYER_OF[b] >= LAYER_OF[a]:
                problems.append(f"{where}: {a} (layer {LAYER_OF[a]}) imports {b} (layer {LAYER_OF[b]})")
    assert not problems, "\n".join(problems)


def test_layers_catch_an_upward_import() -> None:
    """The check itself can fail: a lazy import of a higher layer is seen, a typing-only one is not."""
    fake = ROOT / "score.py"
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .viz import sheet\n\ndef _probe():\n    from .search import exact\n"
    found = [t for t, _ in _imports(fake, src)]
    assert "galaxy_retrieval.search" in found and "galaxy_retrieval.search.exact" in found
    assert not any(t.startswith("galaxy_retrieval.viz") for t in found)
    assert LAYER_OF[_unit("galaxy_retrieval.search")] > LAYER_OF["score"]


@pytest.mark.parametrize("module", ["score", "metrics", "catalog", "viz.catalog", "train.loop", "index.build", "search.searcher", "evaluate"])
def test_a_package_imports_alone(module: str) -> None:
    """Imported first, in a fresh interpreter, each of these works without the layers above."""
    unit = module.split(".")[0]
    code = f"import galaxy_retrieval.{module} as m, sys; bad = sorted(k for k in sys.modules if k.startswith('galaxy_retrieval.') and k.split('.')[1] in {sorted(u for layer in LAYERS[LAYER_OF[unit] + 1:] for u in layer)!r}); print(bad); sys.exit(1 if bad else 0)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_package_imports() -> None:
    importlib.import_module("galaxy_retrieval")


def test_library_errors_do_not_name_command_line_flags() -> None:
    """Messages raised by the library speak of settings in words; the CLI adds the flag
    (``GalaxyRetrievalError.resolved_by``), so the same error reads right from Python."""
    import re

    flag = re.compile(r"(^|[\s(\"'])--[a-z]")
    found = []
    for path in SOURCES:
        if path.relative_to(ROOT).parts[0] == "cli":  # the CLI names its own flags
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for s in ast.walk(node.exc):
                    if isinstance(s, ast.Constant) and isinstance(s.value, str) and flag.search(s.value):
                        found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {s.value!r}")
    assert not found, "\n".join(found)
