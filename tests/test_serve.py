"""`gr serve`'s API through FastAPI's test client, against the real app and a real tiny index:
every endpoint, every error status."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed: pip install -e .[serve]")
from fastapi.testclient import TestClient  # noqa: E402

from galaxy_retrieval.catalog import open_catalog  # noqa: E402
from galaxy_retrieval.index.build import BuildConfig, build_index  # noqa: E402
from galaxy_retrieval.index.candidates import IndexSpec  # noqa: E402
from galaxy_retrieval.model import build_model, preset, save_weights  # noqa: E402
from galaxy_retrieval.search.searcher import GalaxySearcher  # noqa: E402
from galaxy_retrieval.serve import ServeConfig, create_app  # noqa: E402

from .conftest import write_galaxy10_h5  # noqa: E402


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("serve")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=16, size=32, seed=5)
    torch.manual_seed(0)
    save_weights(tmp / "ck" / "model.safetensors", build_model(preset("tiny")))
    with open_catalog(cat) as c:
        build_index(
            tmp / "ck",
            c,
            tmp / "index",
            BuildConfig(shard_rows=8, batch_size=8, index=IndexSpec(kind="flat")),
        )
        q = c.get_batch([3]).images[0]
    buf = io.BytesIO()
    Image.fromarray(np.asarray(q)).save(buf, "PNG")
    (tmp / "q.png").write_bytes(buf.getvalue())
    return {"tmp": tmp, "index": tmp / "index", "query": tmp / "q.png"}


@pytest.fixture(scope="module")
def client(tiny_index: dict[str, Path]) -> TestClient:
    with TestClient(create_app(ServeConfig(index=tiny_index["index"], max_upload_bytes=20_000))) as c:
        yield c


@pytest.fixture(scope="module")
def searcher(tiny_index: dict[str, Path]) -> GalaxySearcher:
    return GalaxySearcher.open(tiny_index["index"])


def test_health_info_and_openapi(client: TestClient, searcher: GalaxySearcher) -> None:
    assert client.get("/api/health").json() == {"status": "ok", "count": 16}
    info = client.get("/api/info").json()
    assert info["count"] == 16 and info["dims"] == searcher.manifest.dim and info["faiss_factory"] == "Flat"
    assert "ra" in info["columns"] and info["catalog_available"] is True and info["label_names"]["0"]
    spec = client.get("/openapi.json").json()
    assert {
        "/api/search",
        "/api/info",
        "/api/objects/{object_id}",
        "/api/rows/{row}/image.png",
        "/api/explain",
    } <= set(spec["paths"])
    body = spec["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert {"object_id", "ra", "vector", "where", "least"} <= set(
        body["application/json"]["schema"]["properties"]
    )
    assert "image" in body["multipart/form-data"]["schema"]["properties"]


def test_search_by_id_matches_the_library(client: TestClient, searcher: GalaxySearcher) -> None:
    r = client.post("/api/search", json={"object_id": "3", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    want = searcher.query(object_id="3", k=5)
    assert [h["object_id"] for h in body["hits"]] == [h.object_id for h in want]
    np.testing.assert_allclose([h["score"] for h in body["hits"]], [h.score for h in want], rtol=1e-6)
    assert (
        body["query"]["kind"] == "object_id"
        and body["query"]["row"] == 3
        and body["query"]["label"] == 3
        and "3" not in [h["object_id"] for h in body["hits"]]
    )
    h0 = body["hits"][0]
    assert h0["label_name"] and h0["ra"] is not None and "redshift" in h0["metadata"]


def test_search_options_are_the_library_options(client: TestClient, searcher: GalaxySearcher) -> None:
    least = client.post("/api/search", json={"object_id": "3", "k": 4, "least": True}).json()["hits"]
    assert [h["object_id"] for h in least] == [
        h.object_id for h in searcher.query(object_id="3", k=4, order="least")
    ]
    filt = client.post("/api/search", json={"object_id": "3", "k": 10, "where": "label = 5"}).json()["hits"]
    assert filt and {h["label"] for h in filt} == {5}
    sep = 60 * 3600.0  # 60°: the 16 random positions leave fewer than 10 that far apart
    spread = client.post(
        "/api/search", json={"object_id": "3", "k": 10, "min_separation_arcsec": sep}
    ).json()["hits"]
    want = searcher.query(object_id="3", k=10, min_separation_arcsec=sep)
    assert [h["object_id"] for h in spread] == [h.object_id for h in want] and len(spread) < 10
    refine = client.post("/api/search", json={"object_id": "3", "k": 3, "refine": 2}).json()["hits"]
    assert len(refine) == 3


def test_search_by_sky_vector_examples_and_image(
    client: TestClient, searcher: GalaxySearcher, tiny_index: dict[str, Path]
) -> None:
    md = searcher.metadata([7])[0]
    sky = client.post("/api/search", json={"ra": md["ra"], "dec": md["dec"], "k": 3}).json()
    assert (
        sky["query"]["kind"] == "sky"
        and sky["query"]["object_id"] == "7"
        and sky["query"]["separation_arcsec"] < 1e-3
    )
    assert [h["object_id"] for h in sky["hits"]] == [h.object_id for h in searcher.query(object_id="7", k=3)]
    vec = np.asarray(searcher.vectors[7]).tolist()
    byvec = client.post("/api/search", json={"vector": vec, "k": 2}).json()["hits"]
    assert byvec[0]["object_id"] == "7" and byvec[0]["score"] > 0.999
    ex = client.post("/api/search", json={"positive": ["3", "4"], "negative": ["5"], "k": 3}).json()["hits"]
    assert [h["object_id"] for h in ex] == [
        h.object_id for h in searcher.query_examples(["3", "4"], ["5"], k=3)
    ]
    files = {"image": ("q.png", tiny_index["query"].read_bytes(), "image/png")}
    up = client.post("/api/search", files=files, data={"k": "3", "least": "false", "where": "label >= 0"})
    assert up.status_code == 200, up.text
    assert (
        up.json()["query"]["kind"] == "image" and up.json()["hits"][0]["object_id"] == "3"
    )  # the query is row 3


def test_downloads(client: TestClient, searcher: GalaxySearcher) -> None:
    csv = client.post("/api/search?format=csv", json={"object_id": "3", "k": 4})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith('"query","rank","object_id"') and len(lines) == 5 and '"object 3"' in lines[1]
    par = client.post("/api/search?format=parquet", json={"object_id": "3", "k": 4})
    t = pq.read_table(io.BytesIO(par.content))
    assert t.num_rows == 4 and t.column("object_id").to_pylist() == [
        h.object_id for h in searcher.query(object_id="3", k=4)
    ]


def test_objects_and_cutouts(client: TestClient, searcher: GalaxySearcher) -> None:
    o = client.get("/api/objects/5").json()
    assert o["object_id"] == "5" and o["row"] == 5 and o["label"] == 5 and o["label_name"]
    full = client.get("/api/rows/5/image.png")
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(full.content))
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), searcher.images_of([5])[0])
    small = Image.open(io.BytesIO(client.get("/api/objects/5/image.png?size=64").content))
    assert small.size == (64, 64)
    assert (
        client.get("/api/rows/5/image.png?size=64").content
        == client.get("/api/objects/5/image.png?size=64").content
    )


def test_explain_returns_the_sheet(client: TestClient, tiny_index: dict[str, Path]) -> None:
    r = client.post("/api/explain", data={"object_id": "3", "k": "2"})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).format == "PNG"
    up = client.post(
        "/api/explain",
        files={"image": ("q.png", tiny_index["query"].read_bytes(), "image/png")},
        data={"k": "1", "method": "rollout"},
    )
    assert up.status_code == 200, up.text


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (lambda c: c.post("/api/search", json={"object_id": "nope"}), 404, "'nope' is not in the index"),
        (
            lambda c: c.post("/api/search", json={"ra": 1.0, "dec": 2.0, "radius_arcsec": 0.001}),
            404,
            "within",
        ),
        (
            lambda c: c.post("/api/search", json={"object_id": "3", "where": "colour = 'red'"}),
            400,
            "the columns are",
        ),
        (lambda c: c.post("/api/search", json={"object_id": "3", "where": "label = = 3"}), 400, "filter"),
        (
            lambda c: c.post("/api/search", json={"object_id": "3", "k": 0}),
            400,
            "k: Input should be greater than or equal to 1",
        ),
        (
            lambda c: c.post("/api/search", json={"object_id": "3", "k": 100}),
            400,
            "larger than the 15 objects",
        ),
        (
            lambda c: c.post("/api/search", json={"object_id": "3", "ra": 1.0, "dec": 2.0}),
            400,
            "exactly one query",
        ),
        (lambda c: c.post("/api/search", json={}), 400, "exactly one query"),
        (lambda c: c.post("/api/search", json={"ra": 400.0, "dec": 0.0}), 400, "RA 400 out of range"),
        (lambda c: c.post("/api/search", json={"ra": 4.0}), 400, "both ra and dec"),
        (lambda c: c.post("/api/search", json={"vector": [1.0, 2.0]}), 400, "dimension 2"),
        (
            lambda c: c.post(
                "/api/search", content=b"{not json", headers={"content-type": "application/json"}
            ),
            400,
            "JSON",
        ),
        (
            lambda c: c.post("/api/search", content=b"k=3", headers={"content-type": "text/plain"}),
            415,
            "application/json or multipart",
        ),
        (
            lambda c: c.post("/api/search", files={"image": ("a.png", b"not a png", "image/png")}),
            400,
            "the upload: not a readable image",
        ),
        (
            lambda c: c.post("/api/search", files={"image": ("a.txt", b"hello", "text/plain")}),
            415,
            "the upload is not an image",
        ),
        (
            lambda c: c.post("/api/search", files={"image": ("big.png", b"\0" * 30_000, "image/png")}),
            413,
            "over the upload limit",
        ),
        (
            lambda c: c.post("/api/search", files={"other": ("a.png", b"x", "image/png")}),
            400,
            "'image' field",
        ),
        (
            lambda c: c.post(
                "/api/search", files={"image": ("q.png", b"x", "image/png")}, data={"k": "many"}
            ),
            400,
            "k: Input should be a valid integer",
        ),
        (lambda c: c.post("/api/search?format=xml", json={"object_id": "3"}), 422, "format"),
        (lambda c: c.get("/api/objects/nope"), 404, "'nope' is not in the index"),
        (lambda c: c.get("/api/objects/nope/image.png"), 404, "not in the index"),
        (lambda c: c.get("/api/rows/9999/image.png"), 404, "row 9999 is not in the index"),
        (lambda c: c.get("/api/rows/3/image.png?size=100000"), 422, "size"),
        (lambda c: c.get("/api/rows/..%2f..%2fetc%2fpasswd/image.png"), 404, "Not Found"),
        (lambda c: c.post("/api/explain", data={}), 400, "object_id or as an uploaded image"),
        (lambda c: c.post("/api/explain", data={"object_id": "nope"}), 404, "not in the index"),
    ],
)
def test_errors_are_json_with_the_right_status(client: TestClient, call, status: int, message: str) -> None:
    r = call(client)
    assert r.status_code == status, r.text
    assert message in str(r.json()["detail"]), r.json()
    assert client.get("/api/health").status_code == 200  # a bad request never takes the server down


def test_api_key_and_cors(tiny_index: dict[str, Path]) -> None:
    with TestClient(create_app(ServeConfig(index=tiny_index["index"], api_key="s3cret"))) as c:
        r = c.post("/api/search", json={"object_id": "3", "k": 2})
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert c.get("/api/rows/3/image.png", headers={"X-API-Key": "wrong"}).status_code == 401
        assert (
            c.post(
                "/api/search", json={"object_id": "3", "k": 2}, headers={"X-API-Key": "s3cret"}
            ).status_code
            == 200
        )
        assert c.get("/api/health").status_code == 200  # a load balancer's probe needs no key
        assert (
            "access-control-allow-origin"
            not in c.get("/api/health", headers={"Origin": "http://evil.example"}).headers
        )
    with TestClient(
        create_app(ServeConfig(index=tiny_index["index"], cors_origins=("http://ok.example",)))
    ) as c:
        assert (
            c.get("/api/health", headers={"Origin": "http://ok.example"}).headers[
                "access-control-allow-origin"
            ]
            == "http://ok.example"
        )


def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="grid"' in page.text and "/static/app.js" in page.text
    assert "http" not in page.text.replace("https://www.legacysurvey.org", "")  # no CDN: works offline
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "cdn" not in r.text.lower()
    assert client.get("/static/../app.py").status_code == 404


def test_config_travels_to_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ServeConfig(
        index=tmp_path / "i",
        checkpoint=tmp_path / "ck",
        api_key="k",
        cors_origins=("http://a", "http://b"),
        max_upload_bytes=123,
    )
    for k, v in cfg.to_env().items():
        monkeypatch.setenv(k, v)
    assert ServeConfig.from_env() == cfg
