"""The generated blocks of docs/architecture.md: the package's layers and the imports between them.

Both are drawn from the code, so the picture cannot drift from it: the stack is ``LAYERS`` of
``tests/test_layers.py`` (the test that fails on an upward import), the arrows are every
runtime import of the package's sources, read the way that test reads them. ``python
docs/readme.py`` rewrites the blocks; ``tests/test_architecture_doc.py`` fails when they are
not current.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

__all__ = ["ARCHITECTURE", "ARCHITECTURE_BLOCKS", "layers_picture", "imports_table"]


@cache
def _layers() -> ModuleType:
    """tests/test_layers.py, the one definition of the layers and of what counts as an import."""
    spec = importlib.util.spec_from_file_location("gr_test_layers", ROOT / "tests" / "test_layers.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _kind(unit: str) -> str:
    """``pkg/`` for a subpackage, ``mod.py`` for a module, as they appear in galaxy_retrieval/."""
    if unit == "__init__":
        return "__init__.py"
    return f"{unit}/" if (_layers().ROOT / unit).is_dir() else f"{unit}.py"


def layers_picture() -> str:
    """The stack, top layer first: a unit imports only units of the layers below it."""
    layers = _layers().LAYERS
    rows = [
        f"{i:>2}  " + "  ".join(_kind(u) for u in layer) for i, layer in reversed(list(enumerate(layers)))
    ]
    width = max(len(r) for r in rows) + 2
    out = ["```text", "┌" + "─" * width + "┐"]
    for j, r in enumerate(rows):
        if j:
            out.append("├" + "─" * width + "┤")
        out.append("│ " + r.ljust(width - 1) + "│")
    out.append("└" + "─" * width + "┘")
    out.append("  every import points down; units of one layer do not import each other")
    out.append("```")
    return "\n".join(out)


def _edges() -> dict[str, set[str]]:
    """Unit → the other units its sources import at run time (typing-only imports left out)."""
    t = _layers()
    edges: dict[str, set[str]] = {u: set() for layer in t.LAYERS for u in layer}
    for path in t.SOURCES:
        a = t._unit(t._module_name(path)[0])
        for target, _ in t._imports(path):
            b = t._unit(target)
            if b != a:
                edges[a].add(b)
    return edges


def imports_table() -> str:
    """Each unit with the units it imports, nearest layer first."""
    t = _layers()
    edges = _edges()
    rows = ["| layer | unit | imports |", "| --- | --- | --- |"]
    for i, layer in reversed(list(enumerate(t.LAYERS))):
        for u in layer:
            used = sorted(edges[u], key=lambda b: (-t.LAYER_OF[b], b))
            rows.append(f"| {i} | `{_kind(u)}` | {', '.join(used) if used else '—'} |")
    return "\n".join(rows)


ARCHITECTURE_BLOCKS: dict[str, Callable[[], str]] = {"layers": layers_picture, "imports": imports_table}
