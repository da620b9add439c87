"""`gr verify` (and opening an index) check every file a query reads (issue 21, item 5).

An edited ``model/checkpoint.json`` (normalisation, framing mode) passed verify while the top
hit of an image query changed; a deleted ``model/model.safetensors`` or the whole ``model/``
passed; a changed dtype in the ``vectors.npy`` header passed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.errors import IndexFormatError
from galaxy_retrieval.index.build import build_index
from galaxy_retrieval.index.verify import verify_index
from galaxy_retrieval.model import build_model, preset, save_weights
from galaxy_retrieval.search.searcher import GalaxySearcher

from .conftest import CFG, assert_user_error, gr


@pytest.fixture(scope="module")
def index(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index whose model copy has both files: the weights and checkpoint.json."""
    tmp = tmp_path_factory.mktemp("verify")
    torch.manual_seed(0)
    cfg = preset("tiny")
    save_weights(tmp / "ck" / "model.safetensors", build_model(cfg))
    (tmp / "ck" / "checkpoint.json").write_text(json.dumps({"format_version": 1, "model": cfg.to_dict()}))
    with open_catalog(tiny["catalog"]) as c:
        build_index(tmp / "ck", c, tmp / "index", CFG)
    assert sorted(p.name for p in (tmp / "index" / "model").iterdir()) == [
        "checkpoint.json",
        "model.safetensors",
    ]
    return tmp / "index"


def _edit_checkpoint(d: Path) -> None:
    p = d / "model" / "checkpoint.json"
    meta = json.loads(p.read_text())
    meta["suppress_sources"] = {"enabled": True}
    p.write_text(json.dumps(meta))


def _edit_header(d: Path) -> None:
    p = d / "vectors.npy"
    b = bytearray(p.read_bytes())
    i = bytes(b[:200]).index(b"<f4")
    b[i : i + 3] = b"<f2"  # same length: only the header changes
    p.write_bytes(bytes(b))


DAMAGE = {
    "checkpoint.json edited": (_edit_checkpoint, "checkpoint.json"),
    "model.safetensors deleted": (
        lambda d: (d / "model" / "model.safetensors").unlink(),
        "model.safetensors",
    ),
    "model/ deleted": (lambda d: shutil.rmtree(d / "model"), "model"),
    "vectors header dtype changed": (_edit_header, "vectors.npy"),
}


def test_an_untouched_index_verifies(index: Path) -> None:
    rep = verify_index(index)
    assert rep.files == 4 + 1 + 1 + 2  # shards, vectors, FAISS, model copy (2)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_and_open_catch_what_changes_answers(index: Path, tmp_path: Path, damage: str) -> None:
    d = tmp_path / "idx"
    shutil.copytree(index, d)
    how, name = DAMAGE[damage]
    how(d)
    assert_user_error(gr("verify", "--index", d), name)
    with pytest.raises(IndexFormatError, match=name):
        GalaxySearcher.open(d)
