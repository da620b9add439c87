"""The quality protocol end to end on a tiny rendered catalog (benchmarks/quality/quality_protocol.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from galaxy_retrieval.errors import ConfigError

# the protocol is a benchmark script, not part of the library: loaded from its folder
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "quality"))
import quality_protocol as protocol  # noqa: E402

QualityConfig, render_readme, run_quality = (
    protocol.QualityConfig,
    protocol.render_readme,
    protocol.run_quality,
)


def _cfg(tmp_path: Path, **kw) -> QualityConfig:
    base = dict(
        catalog="synthetic",
        variants=("baseline", "learned-weights"),
        preset="tiny",
        epochs=1,
        synth_n=40,
        synth_size=48,
        k=5,
        data_dir=tmp_path / "data",
        runs_dir=tmp_path / "runs",
        indexes_dir=tmp_path / "indexes",
        results_dir=tmp_path / "results",
        train_overrides={"batch_size": 8},
    )
    base.update(kw)
    return QualityConfig(**base)


@pytest.mark.slow
def test_protocol_runs_reuses_and_renders(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    res = run_quality(cfg)
    saved = json.loads(cfg.results_path().read_text())
    assert saved["variants"].keys() == {"baseline", "learned-weights"}
    assert saved["commit"] and saved["machine"]["cpu_count"] >= 1
    for v in res["variants"].values():
        e = v["eval"]
        assert set(e["retrieval"]) == {"model", "untrained", "pixels", "polar", "morphology"}
        assert e["best_baseline"] in {"untrained", "pixels", "polar", "morphology"}
        # every object as a query too: the whole catalog's worth of queries
        assert v["eval_all"]["n_queries"] == 40 and set(v["eval_all"]["retrieval"]) == set(e["retrieval"])
        assert 0.0 <= e["retrieval"]["model"]["macro"]["precision@5"] <= 1.0
        # the demo-size index is exact (Flat) and reranks by the same score as evaluate
        # (both rank with search.exact's k-NN, so ties fall alike: exactly 1)
        assert v["index"]["recall_at_k_vs_exact"] == 1.0
        rho = v["parameters"]["axis_ratio"]
        assert set(rho) == {"model", "untrained", "pixels", "polar", "morphology", "random"}
        assert rho["model"]["n_pairs"] > 0
    w = res["variants"]["learned-weights"]["score_weights"]
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-5)
    assert w != {"cos": 1 / 3, "l2": 1 / 3, "l3": 1 / 3}
    # the index reranks by the weights the model learned
    assert res["variants"]["learned-weights"]["index"]["score_weights"] == pytest.approx(w)

    # a second run reuses the training runs and indexes (nothing retrained)
    done = cfg.run_dir("baseline") / "quality-done.json"
    before = done.stat().st_mtime_ns
    again = run_quality(cfg)
    assert done.stat().st_mtime_ns == before
    assert (
        again["variants"]["baseline"]["eval"]["retrieval"] == res["variants"]["baseline"]["eval"]["retrieval"]
    )

    text = render_readme([saved], "# header")
    assert text.startswith("# header")
    assert "| baseline | **model** |" in text and "|  | pixels |" in text
    assert "Spearman" in text and "arm pitch" in text
    assert "P@5 all" in text and "(best baseline)" in text


def test_seeds_are_kept_apart_and_summarised(tmp_path: Path) -> None:
    _seed_table = protocol._seed_table

    a, b = _cfg(tmp_path), _cfg(tmp_path, seed=1)
    assert a.run_dir("defaults") != b.run_dir("defaults") and a.results_path() != b.results_path()
    assert a.catalog_path() == b.catalog_path()  # one rendered catalog, split differently per seed

    def res(p: float) -> dict:
        r = {"model": {"macro": {"precision@5": p}}, "pixels": {"macro": {"precision@5": 0.5}}}
        return {
            "parameters": {"k": 5},
            "variants": {
                "defaults": {
                    "eval": {"retrieval": r, "best_baseline": "pixels"},
                    "eval_all": {"retrieval": r},
                }
            },
        }

    rows = _seed_table([res(0.6), res(0.7), res(0.8)])
    assert rows[2].startswith("| defaults | 3 | 0.700 ± 0.100 | 0.500 ± 0.000 | 0.700 ± 0.100 |")


def test_gz2_needs_its_folder(tmp_path: Path) -> None:
    prepare_catalog = protocol.prepare_catalog

    with pytest.raises(ConfigError, match="gz2_path"):
        _cfg(tmp_path, catalog="gz2")
    with pytest.raises(ConfigError, match="labels.csv"):
        prepare_catalog(_cfg(tmp_path, catalog="gz2", gz2_path=tmp_path))


def test_config_rejects_unknown_catalog_and_variant(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choices"):
        _cfg(tmp_path, catalog="sdss")
    with pytest.raises(ConfigError, match="choices"):
        _cfg(tmp_path, variants=("baseline", "magic"))


def test_sdss6k_needs_its_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sdss6k_path"):
        _cfg(tmp_path, catalog="sdss6k")
    with pytest.raises(ConfigError, match="labels.csv"):
        protocol.prepare_catalog(_cfg(tmp_path, catalog="sdss6k", sdss6k_path=tmp_path))
    folder = tmp_path / "six"
    folder.mkdir()
    (folder / "labels.csv").write_text("filename,label\n")
    assert protocol.prepare_catalog(_cfg(tmp_path, catalog="sdss6k", sdss6k_path=folder)) == folder
