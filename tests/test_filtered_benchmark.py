"""benchmarks/README.md §5 is generated from the recorded filtered-query JSON, not typed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("filtered_query", ROOT / "benchmarks" / "filtered_query.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_readme_section_is_the_recorded_json() -> None:
    fq = _script()
    result = json.loads(fq.RESULT.read_text())
    assert result["params"]["n"] == 1_000_000 and {r["selectivity"] for r in result["filtered"]} == {1.0, 0.5, 0.05, 0.001}
    assert fq.check_readme() == 0, "run: python benchmarks/filtered_query.py --readme"
