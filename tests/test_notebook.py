"""Hits in notebooks: an HTML table with thumbnails, a grid mosaic as a PIL image, thumbnails
cropped to the galaxy, and examples/quickstart.ipynb run top to bottom."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.index.build import BuildConfig, build_index, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.model import build_model, preset, save_weights
from galaxy_retrieval.search.searcher import GalaxySearcher
from galaxy_retrieval.viz.notebook import grid_mosaic, thumbnail

from .conftest import write_galaxy10_h5
from .test_index import _clustered, _write_shards

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("nb")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=40, size=48, seed=2)
    torch.manual_seed(0)
    (tmp / "ck").mkdir()
    save_weights(tmp / "ck" / "model.safetensors", build_model(preset("tiny")))
    with open_catalog(cat) as c:
        build_index(
            tmp / "ck",
            c,
            tmp / "index",
            BuildConfig(shard_rows=16, batch_size=8, index=IndexSpec(kind="flat")),
        )
    return tmp / "index"


def test_hits_render_as_html_with_thumbnails(index: Path) -> None:
    s = GalaxySearcher.open(index)
    hits = s.query(object_id="3", k=5)
    html = hits._repr_html_()
    assert html.count("<tr>") == 6  # header + 5 hits
    assert html.count('src="data:image/png;base64,') == 5
    for h in hits:
        assert f"<td>{h.object_id}</td>" in html and f"{h.percentile:.2f}" in html
    assert "redshift" in html  # other metadata columns
    # without the catalog's images: the table, and why there are no pictures
    tmp = index.parent
    shards = _write_shards(tmp / "plain-shards", _clustered(50, 8), per=25)
    plain = GalaxySearcher.open(
        build_index_from_shards(shards, tmp / "plain", BuildConfig(index=IndexSpec(kind="flat"))).path
    )
    html = plain.query(object_id="obj-0001", k=3)._repr_html_()
    assert "no thumbnails" in html and html.count("<tr>") == 4 and "data:image" not in html


def test_mosaic_is_a_grid_five_wide(index: Path) -> None:
    s = GalaxySearcher.open(index)
    hits = s.query(object_id="3", k=9)
    im = s.mosaic(hits, query="3")  # the query and 9 hits: two rows of five
    assert isinstance(im, Image.Image)
    w, h = im.size
    assert w == 8 + 5 * (200 + 8) and 2 * 200 < h < 3 * 200
    one_row = s.mosaic(hits[:4])
    assert one_row.size[1] < h and one_row.size[0] == 8 + 4 * (200 + 8)


def test_thumbnails_are_cropped_to_the_galaxy() -> None:
    # a small galaxy in a big frame: the whole frame shows a speck, the crop shows the galaxy
    n = 256
    y, x = np.mgrid[:n, :n] - n / 2
    rng = np.random.default_rng(0)
    img = np.clip(
        20 + 220 * np.exp(-(x**2 + (y / 0.6) ** 2) / (2 * 6.0**2)) + rng.normal(0, 3, (n, n)), 0, 255
    ).astype(np.uint8)
    img = np.repeat(img[:, :, None], 3, axis=2)
    bright = lambda t: (np.asarray(t)[:, :, 0] > 100).mean()  # noqa: E731
    assert bright(thumbnail(img, 128, crop=True)) > 4 * bright(thumbnail(img, 128, crop=False))
    sheet = grid_mosaic(
        [(img, "#1 a-very-long-object-identifier-that-will-not-fit", "s=0.99")] * 7, ncols=5, tile=100
    )
    assert sheet.size == (8 + 5 * 108, 8 + 2 * (100 + 2 * 12 + 10 + 8))


def test_quickstart_notebook_runs_top_to_bottom(index: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    os.environ["GR_INDEX"] = str(index)
    try:
        nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.pop("GR_INDEX", None)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("data:image/png;base64," in h for h in html)  # the hit table's thumbnails
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # the two mosaics
    assert (tmp_path / "hits.vot").is_file()
    assert any("<progress" in h and "neighbour of every object" in h for h in html)  # the outlier pass's bar
