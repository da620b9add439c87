"""The demo's pipeline file: read, validated, with paths taken from the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy_retrieval.demo import DEFAULT_PIPELINE, load_demo_config
from galaxy_retrieval.errors import ConfigError


def test_shipped_pipeline_loads() -> None:
    cfg = load_demo_config(DEFAULT_PIPELINE, root="/repo")
    assert cfg.synth.n == 2000 and cfg.synth.size == 256
    assert cfg.synth.out == Path("/repo/data/demo/catalog.h5")
    assert cfg.train.preset == "polar" and cfg.index.out == Path("/repo/indexes/demo")


def test_bad_pipeline_files(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("[synth]\nn = 10\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match=r"\[synth\]: unknown key 'colour'"):
        load_demo_config(p)
    p.write_text("[synth\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_demo_config(p)
    p.write_text("[extra]\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_demo_config(p)
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_demo_config(tmp_path / "nope.toml")


def test_run_demo_end_to_end_on_a_tiny_pipeline(tmp_path: Path) -> None:
    """`gr demo`'s own path (run_demo) on a tiny config: every step runs, a second run reuses
    the catalog and the training, and the results file holds what was measured."""
    import json

    from galaxy_retrieval.demo import RESULTS_FILE, run_demo

    p = tmp_path / "tiny.toml"
    p.write_text(
        "[synth]\nn = 40\nsize = 48\nseed = 1\nout = 'data/c.h5'\ncontact_sheet = 'data/sheet.png'\n"
        "[train]\npreset = 'tiny'\nout = 'runs/t'\nepochs = 1\nbatch_size = 8\nframing = 'none'\n"
        "[index]\nout = 'indexes/t'\nshard_rows = 16\n"
        "[query]\nk = 3\nquery_image = 'data/q.png'\nmosaic = 'runs/t/mosaic.png'\nexplain = 'runs/t/explain.png'\n"
    )
    cfg = load_demo_config(p, root=tmp_path)
    res = run_demo(cfg)
    assert (
        res.catalog.is_file()
        and res.contact_sheet.is_file()
        and res.query.mosaic.is_file()
        and res.explain.out.is_file()
    )
    assert res.build.manifest.count == 40 and len(res.query.hits[0]) == 3
    assert res.reused == [] and set(res.seconds) >= {
        "catalog",
        "training",
        "evaluation",
        "index",
        "query",
        "explain",
        "total",
    }
    rec = json.loads((tmp_path / "runs/t" / RESULTS_FILE).read_text())
    assert rec["benchmark"] == "demo" and rec["epochs"] == 1 and rec["query"]["object"] == res.query_object
    assert set(rec["evaluation"]["precision@10_macro"]) >= {"model", "pixels", "polar"}
    # the shipped model is measured zero-shot on the same held-out queries
    assert 0.0 <= rec["evaluation"]["shipped_model_precision@10_macro"] <= 1.0
    again = run_demo(cfg)
    assert again.reused == ["catalog", "training"] and again.train is None
