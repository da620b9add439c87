"""`gr explain`: attention rollout and score attributions, checked against hand-computed
cases, and the command's PNG and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.explain import (
    attention_maps,
    explain_query,
    rollout,
    rollout_maps,
    sheet_size,
    similarity_maps,
    sky_baseline,
)
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.model import build_model, preset, save_weights
from galaxy_retrieval.score import ScoreWeights, score_torch

from .conftest import write_galaxy10_h5

runner = CliRunner()
TINY = preset("tiny")  # 32² input, 8² patches → 4×4 grid, 1 block, 2 heads


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(preset("tiny", depth=2), seed=0)  # two blocks: rollout multiplies.eval()


def test_rollout_is_a_distribution_over_the_patch_grid(model: torch.nn.Module) -> None:
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    m = rollout_maps(model, x)
    assert m.shape == (3, 4, 4)
    assert (m >= 0).all()
    torch.testing.assert_close(m.flatten(1).sum(1), torch.ones(3))


def test_rollout_by_hand() -> None:
    # two tokens, every query reads only token 1: Â = ½A + ½I = [[½, ½], [0, 1]]
    a = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    torch.testing.assert_close(rollout([a]), torch.tensor([[0.25, 0.75]]))
    # two such blocks: Â² = [[¼, ¾], [0, 1]] → column means [⅛, ⅞]
    torch.testing.assert_close(rollout([a, a]), torch.tensor([[0.125, 0.875]]))
    # heads are averaged: a head attending to itself plus the head above = ½I + ½A
    heads = torch.stack([torch.eye(2)[None], a], dim=1)  # (1, H=2, 2, 2)
    torch.testing.assert_close(rollout([heads]), torch.tensor([[0.375, 0.625]]))
    # attention that stays on each token leaves every patch its 1/N
    torch.testing.assert_close(rollout([torch.eye(5)[None]] * 3), torch.full((1, 5), 0.2))
    with pytest.raises(ValueError):
        rollout([])


def test_zero_queries_and_keys_give_uniform_attention_and_map() -> None:
    m = build_model(TINY, seed=0).eval()
    with torch.no_grad():
        for blk in m.blocks:
            blk.attn.qkv_weight[:2].zero_()  # q and k weights (v untouched)
            blk.attn.qkv_bias[:2].zero_()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    _, attn = attention_maps(m, x)
    n = TINY.num_patches
    torch.testing.assert_close(attn[0], torch.full((2, TINY.settings.num_heads, n, n), 1.0 / n))
    torch.testing.assert_close(rollout_maps(m, x), torch.full((2, 4, 4), 1.0 / n))


def test_attention_probs_are_the_ones_forward_applies(model: torch.nn.Module) -> None:
    attn = model.blocks[0].attn
    h = torch.randn(2, TINY.num_patches, TINY.settings.hidden, generator=torch.Generator().manual_seed(3))
    p = attn.attention_probs(h)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, TINY.settings.num_heads, TINY.num_patches))
    v = attn.project_qkv(h)[2]
    by_hand = (p @ v).transpose(1, 2).reshape(2, TINY.num_patches, TINY.settings.hidden)
    torch.testing.assert_close(attn(h), by_hand, rtol=1e-5, atol=1e-5)


def test_similarity_maps_are_complete_and_zero_where_the_image_is_sky(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(4)
    sky = torch.full((2, 3, 32, 32), -0.8)
    x = sky.clone()
    x[0, :, 8:16, 16:24] += torch.rand(3, 8, 8, generator=g) * 1.5  # patch (1, 2) only
    x[1, :, 0:16, 0:16] += torch.rand(3, 16, 16, generator=g)  # patches (0..1, 0..1)
    with torch.no_grad():
        target = model.embed(torch.randn(2, 3, 32, 32, generator=g))
    torch.testing.assert_close(sky_baseline(x), sky)
    res = similarity_maps(model, x, target, ScoreWeights(), steps=64)
    assert res.maps.shape == (2, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(res.scores, score_torch(model.embed(x), target))
    # completeness: the patches share out s(x) − s(sky)
    torch.testing.assert_close(
        res.maps.flatten(1).sum(1), res.scores - res.baseline_scores, rtol=0, atol=2e-3
    )
    # a patch identical to the baseline gets exactly nothing
    only = torch.zeros(4, 4, dtype=torch.bool)
    only[1, 2] = True
    assert (res.maps[0][~only] == 0).all() and res.maps[0][only].abs() > 0
    assert (res.maps[1][2:, :] == 0).all() and (res.maps[1][:, 2:] == 0).all()


# ---------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("explain")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=16, size=32, seed=5)
    torch.manual_seed(0)
    save_weights(tmp / "ck" / "model.safetensors", build_model(TINY))
    with open_catalog(cat) as c:
        build_index(
            tmp / "ck",
            c,
            tmp / "index",
            BuildConfig(shard_rows=8, batch_size=8, index=IndexSpec(kind="flat")),
        )
        q = c.get_batch([3]).images[0]
    Image.fromarray(np.asarray(q)).save(tmp / "q.png")
    return {"tmp": tmp, "index": tmp / "index", "query": tmp / "q.png"}


@pytest.mark.parametrize("method", ["similarity", "rollout"])
def test_explain_command_writes_the_sheet(tiny_index: dict[str, Path], method: str) -> None:
    out = tiny_index["tmp"] / f"why-{method}.png"
    args = [
        "explain",
        "--index",
        str(tiny_index["index"]),
        "--image",
        str(tiny_index["query"]),
        "--out",
        str(out),
        "--k",
        "3",
        "--method",
        method,
        "--steps",
        "4",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"explained 3 hits of {tiny_index['query']} ({method})" in r.output and str(out) in r.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == sheet_size(4)
    assert not list(out.parent.glob(f".{out.name}.*.tmp"))


def test_explain_library_result(tiny_index: dict[str, Path]) -> None:
    res = explain_query(
        tiny_index["index"], tiny_index["query"], tiny_index["tmp"] / "lib.png", k=2, method="rollout"
    )
    assert res.maps.shape == (3, 4, 4) and len(res.hits) == 2
    np.testing.assert_allclose(res.totals, 1.0, rtol=1e-5)
    assert res.hits[0].object_id == "3" and res.hits[0].score > 0.999  # the query is catalog row 3
    with pytest.raises(ConfigError, match="choices: similarity, rollout"):
        explain_query(tiny_index["index"], tiny_index["query"], tiny_index["tmp"] / "x.png", method="max")


def test_explain_by_object_id_leaves_the_object_out(tiny_index: dict[str, Path]) -> None:
    out = tiny_index["tmp"] / "why-id.png"
    r = runner.invoke(
        app,
        [
            "explain",
            "--index",
            str(tiny_index["index"]),
            "--object-id",
            "3",
            "--out",
            str(out),
            "--k",
            "2",
            "--method",
            "rollout",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "explained 2 hits of object 3 (rollout)" in r.output
    res = explain_query(
        tiny_index["index"], None, tiny_index["tmp"] / "id.png", k=2, method="rollout", object_id="3"
    )
    assert len(res.hits) == 2 and "3" not in [h.object_id for h in res.hits]
    assert [h.rank for h in res.hits] == [1, 2]  # numbered without the query object
    r = runner.invoke(app, ["explain", "--index", str(tiny_index["index"]), "--out", str(out)])
    assert r.exit_code == 2 and "an image or as a catalog object id" in r.output


def test_explain_bad_inputs_are_one_line_errors(tiny_index: dict[str, Path]) -> None:
    out = tiny_index["tmp"] / "never.png"
    corrupt = tiny_index["tmp"] / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    cases = [
        (
            ["--index", str(tiny_index["index"]), "--image", str(tiny_index["tmp"] / "missing.png")],
            "missing.png: no such file",
        ),
        (["--index", str(tiny_index["index"]), "--image", str(corrupt)], "corrupt.png: not a readable image"),
        (
            ["--index", str(tiny_index["tmp"] / "nope"), "--image", str(tiny_index["query"])],
            "nope: no such index directory",
        ),
        (
            ["--index", str(tiny_index["index"]), "--image", str(tiny_index["query"]), "--k", "0"],
            "k must be ≥ 1",
        ),
    ]
    for args, message in cases:
        r = runner.invoke(app, ["explain", *args, "--out", str(out)])
        assert r.exit_code == 2, r.output
        assert message in r.output and "Traceback" not in r.output
        assert r.output.strip().count("\n") == 0
    assert not out.exists()


def test_similarity_maps_work_for_the_polar_backbone_and_rollout_is_refused(tmp_path: Path) -> None:
    polar = build_model(preset("polar", image_size=32, width=8, depth=3, out_dim=16), seed=0).eval()
    g = torch.Generator().manual_seed(4)
    x = torch.full((1, 3, 32, 32), -0.8)
    x[0, :, 8:24, 8:24] += torch.rand(3, 16, 16, generator=g)
    with torch.no_grad():
        target = polar.embed(torch.randn(1, 3, 32, 32, generator=g))
    res = similarity_maps(polar, x, target, ScoreWeights(), steps=64)
    assert res.maps.shape == (1, 4, 4)
    torch.testing.assert_close(
        res.maps.flatten(1).sum(1), res.scores - res.baseline_scores, rtol=0, atol=5e-3
    )
    # an index built with the polar model: similarity works, rollout says why it cannot
    cat = write_galaxy10_h5(tmp_path / "cat.h5", n=12, size=32, seed=5)
    save_weights(tmp_path / "ck" / "model.safetensors", polar)
    with open_catalog(cat) as c:
        build_index(
            tmp_path / "ck",
            c,
            tmp_path / "index",
            BuildConfig(shard_rows=8, batch_size=8, index=IndexSpec(kind="flat")),
        )
        q = np.asarray(c.get_batch([3]).images[0])
    r = explain_query(tmp_path / "index", q, tmp_path / "x.png", k=3)
    assert r.maps.shape == (4, 4, 4) and (tmp_path / "x.png").is_file()
    with pytest.raises(ConfigError, match="transformer"):
        explain_query(tmp_path / "index", q, tmp_path / "y.png", k=3, method="rollout")
