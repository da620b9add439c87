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
    ("errors", "version", "sources"),
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
            target = _from_target(node, pkg)
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


def _from_target(node: ast.ImportFrom, pkg: str) -> str:
    """The absolute module a ``from … import`` reads from, resolved against ``pkg``."""
    if not node.level:
        return node.module or ""
    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (
        (ROOT / rel).with_suffix(".py").is_file()
        or (ROOT / rel / "__init__.py").is_file()
        or module == "galaxy_retrieval"
    )


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


@pytest.mark.parametrize(
    "module",
    [
        "score",
        "metrics",
        "catalog",
        "viz.catalog",
        "train.loop",
        "index.build",
        "search.searcher",
        "evaluate",
    ],
)
def test_a_package_imports_alone(module: str) -> None:
    """Imported first, in a fresh interpreter, each of these works without the layers above."""
    unit = module.split(".")[0]
    code = f"import galaxy_retrieval.{module} as m, sys; bad = sorted(k for k in sys.modules if k.startswith('galaxy_retrieval.') and k.split('.')[1] in {sorted(u for layer in LAYERS[LAYER_OF[unit] + 1 :] for u in layer)!r}); print(bad); sys.exit(1 if bad else 0)"
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


# --------------------------------------------------------------------------- inside index/

INDEX = "galaxy_retrieval.index"
INDEX_SOURCES = sorted((ROOT / "index").rglob("*.py"))


def _in_index(module: str) -> bool:
    return module == INDEX or module.startswith(INDEX + ".")


def _private_imports(path: Path, text: str | None = None) -> list[str]:
    """Every private name (``_name``) that the index module ``path`` takes from another index
    module: ``from .x import _name``, or ``x._name`` on a module imported as a whole. Typing-only
    imports count too: a private name is the other module's to rename."""
    mod, pkg = _module_name(path)
    tree = ast.parse(path.read_text("utf-8") if text is None else text)
    found = []
    aliases = set()  # local names bound to another index module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _from_target(node, pkg)
            if not _in_index(target) or target == mod:
                continue
            for a in node.names:
                if _exists(f"{target}.{a.name}"):
                    aliases.add(a.asname or a.name)
                elif a.name.startswith("_"):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {a.name} from {target}")
        elif isinstance(node, ast.Import):
            aliases.update(a.asname for a in node.names if a.asname and _in_index(a.name) and a.name != mod)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def _index_cycles(texts: dict[Path, str | None]) -> list[list[str]]:
    """Import cycles among the index modules of ``texts`` (path → source, None: read the file),
    lazy imports inside functions included. Each cycle once, as the modules along it."""
    graph: dict[str, set[str]] = {}
    for path, text in texts.items():
        mod, _ = _module_name(path)
        graph.setdefault(mod, set()).update(t for t, _ in _imports(path, text) if _in_index(t) and t != mod)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycle = stack[stack.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    cycles.append([*cycle, nxt])
            elif nxt not in done:
                walk(nxt, [*stack, nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            walk(start, [start])
    return cycles


def test_index_modules_take_no_private_names_from_each_other() -> None:
    found = [f for path in INDEX_SOURCES for f in _private_imports(path)]
    hint = "make the name public, or move it where both modules can import it"
    assert not found, hint + ":\n" + "\n".join(found)


def test_index_modules_have_no_import_cycle() -> None:
    cycles = _index_cycles({p: None for p in INDEX_SOURCES})
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_index_checks_catch_a_private_import_and_a_cycle() -> None:
    """The two checks above can fail: what main had before issue 24 is caught."""
    foreign, build, ray = (ROOT / "index" / f"{m}.py" for m in ("foreign", "build", "ray_engine"))
    assert _private_imports(foreign, "from .build import BuildConfig, _finish\n")
    assert _private_imports(foreign, "def f():\n    from galaxy_retrieval.index.build import _finish\n")
    assert _private_imports(foreign, "from . import build\nbuild._finish()\n")
    assert not _private_imports(foreign, "from .build import BuildConfig\nfrom ..atomic import _x\n")
    lazy = "def embed():\n    from .build import embed_shard\n"
    assert _index_cycles({build: "from .ray_engine import RayConfig\n", ray: lazy}) != []
    assert (
        _index_cycles({build: "from .ray_engine import RayConfig\n", ray: lazy.replace("build", "embed")})
        == []
    )
