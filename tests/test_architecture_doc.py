"""docs/architecture.md's picture of the layers and its import table are drawn from the code:
they must be current (``python docs/readme.py`` rewrites them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers_doc():
    spec = importlib.util.spec_from_file_location("gr_docs_layers", ROOT / "docs" / "layers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _readme_module():
    spec = importlib.util.spec_from_file_location("gr_readme", ROOT / "docs" / "readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_the_architecture_blocks_are_current() -> None:
    doc = _layers_doc()
    text = doc.ARCHITECTURE.read_text("utf-8")
    assert _readme_module().render_readme(text, doc.ARCHITECTURE_BLOCKS) == text, "run python docs/readme.py"


def test_the_picture_follows_the_layers() -> None:
    """Every unit of tests/test_layers.py's LAYERS is in the picture, on its layer's line, and
    a change of LAYERS changes the picture (it is drawn, not typed)."""
    doc = _layers_doc()
    layers = doc._layers()
    picture = doc.layers_picture()
    for i, layer in enumerate(layers.LAYERS):
        line = next(row for row in picture.splitlines() if row.startswith(f"│ {i:>2}  "))
        for unit in layer:
            assert doc._kind(unit) in line.split(), (unit, line)
    saved = layers.LAYERS
    try:
        layers.LAYERS = ((*saved[0], "new_unit"), *saved[1:])
        assert "new_unit.py" in doc.layers_picture()
    finally:
        layers.LAYERS = saved


def test_the_import_table_names_each_unit_once() -> None:
    doc = _layers_doc()
    table = doc.imports_table().splitlines()[2:]
    units = [row.split("|")[2].strip().strip("`") for row in table]
    expected = [doc._kind(u) for layer in reversed(doc._layers().LAYERS) for u in layer]
    assert units == expected
