"""The fusion's default share is the one benchmarks/quality/fusion_share.py chose on the
simulated catalog (its JSON), not a number typed in beside it."""

import json
from pathlib import Path

from galaxy_retrieval.model.fusion import DEFAULT_SHARE, DescriptorFusion

RESULT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fusion_share.json"


def test_default_share_is_the_one_chosen_on_the_simulated_catalog():
    res = json.loads(RESULT.read_text("utf-8"))
    scores = res["chosen_on"]["p_at_k_all"]
    assert res["chosen_on"]["catalog"].startswith("synthetic-")  # never a real labelled set
    best = max(scores, key=lambda w: (scores[w], -float(w)))
    assert float(best) == res["chosen_share"] == DEFAULT_SHARE
    assert set(res["grid"]) == {float(w) for w in scores}


def test_default_share_makes_a_valid_fusion():
    f = DescriptorFusion(share=DEFAULT_SHARE, mean=(0.0, 1.0), std=(1.0, 1.0))
    assert f.share == DEFAULT_SHARE
