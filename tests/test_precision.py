"""The precision of embedding: ``auto`` is bf16 only where the CPU has it natively (and for the
polar model), bf16 vectors agree with float32 ones on real cutouts, ``fp32`` gives exactly the
float32 vectors, and an index records its precision, which its queries and adds then follow."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import galaxy_retrieval.model.device as dev
from galaxy_retrieval import GalaxySearcher
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.index.writes import add_objects
from galaxy_retrieval.model import Embedder, create_model, load_checkpoint
from galaxy_retrieval.model.pretrained import PRETRAINED

CUTOUTS = Path(__file__).parent / "cutouts"
runner = CliRunner()


def _realish(size: int = 96) -> np.ndarray:
    """The ten real SDSS cutouts, each in 16 views (two zooms × flip × four rotations): 160
    images whose nearest neighbours are mostly the other views of the same galaxy."""
    ims = []
    for p in sorted(CUTOUTS.glob("*.jpg")):
        im = Image.open(p).convert("RGB")
        for zoom in (1.0, 0.7):
            c = int(im.width * zoom)
            o = (im.width - c) // 2
            a = np.asarray(im.crop((o, o, o + c, o + c)).resize((size, size), Image.BILINEAR))
            for flip in (False, True):
                b = a[:, ::-1] if flip else a
                ims.extend(np.rot90(b, k).copy() for k in range(4))
    return np.stack(ims)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _top10(x: np.ndarray) -> np.ndarray:
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :10]


def test_auto_is_bf16_only_for_the_polar_model_on_cpus_with_native_bf16(monkeypatch) -> None:
    polar, vit = create_model("polar", out_dim=8, seed=0), create_model("tiny", seed=0)
    for native, want in ((False, "fp32"), (True, "bf16")):
        # the probe, not the CPU: the rule is what is tested
        monkeypatch.setattr(dev, "_cpu_has_native_bf16", lambda native=native: native)
        emb = Embedder.from_model(polar, device="cpu")
        assert emb.precision == want
        conv = next(m for m in emb.model.modules() if isinstance(m, torch.nn.Conv2d))
        # channels-last goes with bf16 on the CPU only
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == (want == "bf16")
        assert Embedder.from_model(vit, device="cpu").precision == "fp32"  # the ViT measured no faster
        assert Embedder.from_model(polar, device="cpu", precision="fp32").precision == "fp32"
    assert dev.resolve_precision("auto", torch.device("cuda"), "small") == "bf16"
    with pytest.raises(ConfigError, match="choices: auto, fp32, bf16"):
        Embedder.from_model(polar, device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16"):
        BuildConfig(precision="half")


def test_fp32_gives_exactly_the_float32_vectors() -> None:
    # the network's own vector: the shipped checkpoint's descriptor fusion is not the model
    emb = load_checkpoint("pretrained", device="cpu", precision="fp32", fusion=None)
    ims = _realish()[::8]
    x01 = emb.preprocessing.to_float(ims, torch.device("cpu"))
    with torch.inference_mode():  # the model called as before precision was a setting
        want = emb.model.embed(emb.preprocessing.normalize(x01)).numpy()
    np.testing.assert_array_equal(emb.embed(ims), want)


def test_bf16_vectors_and_neighbours_agree_with_float32_on_real_cutouts() -> None:
    ims = _realish()
    full = load_checkpoint("pretrained", device="cpu", precision="fp32").embed(ims)
    half = load_checkpoint("pretrained", device="cpu", precision="bf16").embed(ims)
    assert (_unit(full) * _unit(half)).sum(1).min() >= 0.999  # measured 0.9995
    overlap = np.array([len(set(a) & set(b)) / 10 for a, b in zip(_top10(full), _top10(half))])
    assert overlap.mean() >= 0.9 and overlap.min() >= 0.7  # measured 0.97 and 0.9


def _catalog(path: Path, ims: np.ndarray, first: int = 0) -> Path:
    with h5py.File(path, "w") as f:
        f["images"] = ims
        f["ans"] = (np.arange(len(ims)) % 10).astype(np.uint8)
        f["object_id"] = np.array([f"g{first + i:04d}" for i in range(len(ims))], dtype="S")
    return path


def test_an_index_records_its_precision_and_its_queries_and_adds_follow_it(tmp_path: Path) -> None:
    ims = _realish()
    out = tmp_path / "idx"
    cfg = BuildConfig(index=IndexSpec(kind="flat"), precision="bf16")
    build_index(PRETRAINED, open_catalog(_catalog(tmp_path / "a.h5", ims[:48])), out, cfg)
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["precision"] == "bf16"

    s = GalaxySearcher.open(out)
    assert s.embedder.precision == "bf16"  # the index's, not this CPU's auto
    stored = np.asarray(s.vectors[7], np.float32)
    same = s.embed([ims[7]])[0]
    other = GalaxySearcher.open(out, precision="fp32")
    assert other.embedder.precision == "fp32"
    # a catalog image as a query comes out as (nearly) its stored vector when embedded as the
    # index was; float32 differs by bf16's rounding
    assert np.abs(same - stored).max() < np.abs(other.embed([ims[7]])[0] - stored).max()
    assert s.query(image=ims[7], k=1)[0].object_id == "g0007"

    add_objects(out, open_catalog(_catalog(tmp_path / "b.h5", ims[48:56], first=48)), ingest=None)
    r = runner.invoke(
        app,
        ["add", "--index", str(out), "--catalog", str(_catalog(tmp_path / "c.h5", ims[56:60], first=56))]
        + ["--precision", "fp32"],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "manifest.json").read_text())
    assert [a["precision"] for a in m["catalog"]["added"]] == ["bf16", "fp32"]
    assert m["model"]["precision"] == "bf16" and m["count"] == 60
    r = runner.invoke(app, ["info", str(out)])
    assert r.exit_code == 0 and "embedded in bf16" in r.output, r.output

    # an index made before precision was recorded: queries embed as the code did then
    del m["model"]["precision"]
    (out / "manifest.json").write_text(json.dumps(m))
    assert GalaxySearcher.open(out).embedder.precision == dev.unrecorded_precision(torch.device("cpu"))
