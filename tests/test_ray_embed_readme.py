"""benchmarks/README.md's Ray embedding section is what benchmarks/ray_embed.py makes of its JSON."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_ray_embedding_section_is_current() -> None:
    spec = importlib.util.spec_from_file_location("ray_embed", ROOT / "benchmarks" / "ray_embed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check", "--out-json", str(mod.RESULTS)]) == 0
