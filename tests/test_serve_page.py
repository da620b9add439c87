"""`gr serve` as a user meets it: the command started in its own process on loopback, and the
page driven in a real headless chromium (Playwright with the system browser): search by id,
the grid fills, an image dropped on the page, the de-duplication slider moved."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed: pip install -e .[serve]")

from galaxy_retrieval.catalog import open_catalog  # noqa: E402
from galaxy_retrieval.cli import app  # noqa: E402
from galaxy_retrieval.index.build import BuildConfig, build_index  # noqa: E402
from galaxy_retrieval.index.candidates import IndexSpec  # noqa: E402
from galaxy_retrieval.model import build_model, preset, save_weights  # noqa: E402

from .conftest import write_galaxy10_h5  # noqa: E402

K = 12
SHOTS = Path(os.environ.get("GR_SCREENSHOTS", "")) if os.environ.get("GR_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def paired_index(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """16 objects in 8 pairs, the two of a pair 5″ apart (duplicate cutouts of one galaxy),
    the pairs degrees apart: a de-duplication radius of a minute keeps one of each pair."""
    tmp = tmp_path_factory.mktemp("page")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=16, size=32, seed=5)
    with h5py.File(cat, "r+") as f:
        pair = np.arange(16) // 2
        f["ra"][...] = 10.0 + 3.0 * pair + (np.arange(16) % 2) * 5 / 3600
        f["dec"][...] = np.full(16, 5.0)
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
    Image.fromarray(np.asarray(q)).save(tmp / "q.png")
    return {"tmp": tmp, "index": tmp / "index", "query": tmp / "q.png"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(paired_index: dict[str, Path]) -> str:
    """`gr serve` in a child process; its URL once /api/health answers (at most 60 s)."""
    import httpx

    port = _free_port()
    log = open(paired_index["tmp"] / "serve.log", "w")  # noqa: SIM115 (the server writes it until the fixture ends)
    cmd = [
        sys.executable,
        "-c",
        "from galaxy_retrieval.cli import app; app()",
        "serve",
        "--index",
        str(paired_index["index"]),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"gr serve exited with {proc.returncode}: {(paired_index['tmp'] / 'serve.log').read_text()}"
                )
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("gr serve did not answer /api/health within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_serve_command_listens_on_loopback(server: str, paired_index: dict[str, Path]) -> None:
    import httpx

    assert server.startswith("http://127.0.0.1:")
    assert httpx.get(server + "/api/info").json()["count"] == 16
    assert "serving" in (paired_index["tmp"] / "serve.log").read_text()


def test_serve_command_errors_are_one_line(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "nope: no such index directory" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["serve", "--index", str(tmp_path), "--workers", "0"])
    assert r.exit_code == 2 and "workers=0 must be ≥ 1" in r.output


def _chromium() -> str:
    path = (
        os.environ.get("GR_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if not path:
        pytest.skip("no chromium on this machine (apt-get install chromium; .ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])"
    )
    exe = _chromium()
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        except Exception as e:  # the browser is there but cannot start (no display libs, sandbox)
            pytest.skip(f"chromium at {exe} could not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


def _drop(page, selector: str, path: Path) -> None:
    """A real drop event carrying the file, as a drag from the desktop makes."""
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([sel, name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: "image/png"}));
            document.querySelector(sel).dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        [selector, path.name, data],
    )


def test_page_search_upload_and_deduplicate(
    browser, server: str, paired_index: dict[str, Path], tmp_path: Path
) -> None:
    shots = SHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_function(
        "document.getElementById('info').textContent.includes('16 objects')", timeout=15_000
    )

    # search by id: the grid fills with k cards whose cutouts loaded
    page.fill("#k", str(K))
    page.fill("#q", "3")
    page.click("#go")
    page.wait_for_function(f"document.querySelectorAll('#grid .hit').length === {K}", timeout=15_000)
    page.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=15_000,
    )
    ids = page.eval_on_selector_all("#grid .hit", "els => els.map(e => e.dataset.objectId)")
    assert "3" not in ids and "2" in ids  # row 2 is row 3's pair partner: 5″ away, still shown
    assert "results in" in page.inner_text("#status")
    assert "Legacy Survey" in page.inner_text("#grid .hit")
    page.screenshot(path=str(shots / "desktop.png"), full_page=True)

    # CSV downloads the shown result
    with page.expect_download() as dl:
        page.click("#csv")
    rows = Path(dl.value.path()).read_text().strip().splitlines()
    assert rows[0].startswith('"query","rank","object_id"') and len(rows) == K + 1
    assert [r.split(",")[2].strip('"') for r in rows[1:]] == ids

    # "why" opens the gr explain sheet of this query in a dialog
    page.click("#grid .hit:nth-child(2) .whybtn")
    page.wait_for_function("document.getElementById('whyimg').naturalWidth > 0", timeout=60_000)
    assert "Which patches" in page.inner_text("#whytext")
    page.keyboard.press("Escape")

    # the de-duplication slider, moved as a hand does (keyboard), re-searches: one per pair
    page.focus("#sep")
    page.keyboard.press("End")
    page.wait_for_function("document.querySelectorAll('#grid .hit').length < 12", timeout=15_000)
    assert page.inner_text("#sepout") == "120″"
    deduped = page.eval_on_selector_all("#grid .hit", "els => els.map(e => e.dataset.objectId)")
    assert "2" not in deduped and len({int(i) // 2 for i in deduped}) == len(deduped) == 7

    # clicking a result searches from it
    first = deduped[0]
    page.click("#grid .hit img")
    page.wait_for_function(
        f"document.querySelector('#query').textContent.includes('object {first}')", timeout=15_000
    )

    # an image dropped on the page: the query is row 3's image, so it comes back first
    _drop(page, "#drop", paired_index["query"])
    page.wait_for_function(
        "document.querySelector('#query').textContent.includes('uploaded image')", timeout=30_000
    )
    page.wait_for_function("document.querySelector('#grid .hit') !== null", timeout=15_000)
    assert page.eval_on_selector("#grid .hit", "e => e.dataset.objectId") == "3"

    # phone width: one column of controls, two of results, nothing wider than the screen
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.goto(server + "/?q=3")
    phone.wait_for_function("document.querySelectorAll('#grid .hit').length > 0", timeout=15_000)
    phone.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=15_000,
    )
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(shots / "phone.png"), full_page=True)
    assert not errors, errors
    for name in ("desktop.png", "phone.png"):
        with Image.open(shots / name) as im:
            assert im.size[0] in (1280, 780)
            assert np.asarray(im.convert("L")).std() > 10  # a page was drawn, not a blank frame
    print(f"screenshots: {shots}")


def test_page_galaxies_like_these_and_the_address_reproduces_it(browser, server: str, tmp_path: Path) -> None:
    shots = SHOTS or tmp_path
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/?q=3")
    page.wait_for_function("document.querySelectorAll('#grid .hit').length > 4", timeout=15_000)
    assert "q=3" in page.url  # a text search is in the address
    ids = page.eval_on_selector_all("#grid .hit", "els => els.map(e => e.dataset.objectId)")
    # three hits as examples, one as a counter-example
    for i in (1, 2, 3):
        page.click(f"#grid .hit:nth-child({i}) .like")
    page.click("#grid .hit:nth-child(5) .unlike")
    assert page.inner_text("#like") == "Like these (3 − 1)"
    page.click("#like")
    page.wait_for_function(
        "document.querySelector('#query').textContent.includes('like the examples')", timeout=15_000
    )
    page.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=15_000,
    )
    got = page.eval_on_selector_all("#grid .hit", "els => els.map(e => e.dataset.objectId)")
    assert got and not set(ids[:3]) & set(got) and ids[4] not in got  # the examples are not their own hits
    assert f"like={ids[0]}%2C{ids[1]}%2C{ids[2]}" in page.url and f"unlike={ids[4]}" in page.url
    page.screenshot(path=str(shots / "like-these.png"), full_page=True)
    # the address alone gives the same result
    again = browser.new_page(viewport={"width": 1280, "height": 900})
    again.goto(page.url)
    again.wait_for_function(
        "document.querySelector('#query').textContent.includes('like the examples')", timeout=15_000
    )
    assert again.eval_on_selector_all("#grid .hit", "els => els.map(e => e.dataset.objectId)") == got
    # the strangest galaxies button
    page.click("#odd")
    page.wait_for_function(
        "document.querySelector('#query').textContent.includes('strangest')", timeout=30_000
    )
    assert page.eval_on_selector_all("#grid .hit", "els => els.length") > 0
    assert not errors, errors


def test_page_reads_a_sexagesimal_position(browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server + "/")
    page.wait_for_function(
        "document.getElementById('info').textContent.includes('16 objects')", timeout=15_000
    )
    page.fill("#q", "00:40:00 +05:00:00")  # RA 10°, Dec 5°: object 0
    page.click("#go")
    page.wait_for_function(
        "document.querySelector('#query').textContent.includes('object 0,')", timeout=15_000
    )
    assert "q=00%3A40%3A00" in page.url


def test_page_more_doubles_the_results(browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server + "/")
    page.wait_for_function(
        "document.getElementById('info').textContent.includes('16 objects')", timeout=15_000
    )
    page.fill("#k", "4")
    page.fill("#q", "3")
    page.click("#go")
    page.wait_for_function("document.querySelectorAll('#grid .hit').length === 4", timeout=15_000)
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('#grid .hit').length === 8", timeout=15_000)
    assert page.input_value("#k") == "8"


def test_api_docs_render_without_the_internet(browser, server: str, tmp_path: Path) -> None:
    # the machine running the tests has no route to a CDN: what renders here renders offline
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None)
    page.goto(server + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # the operations were drawn
    assert "/api/search" in page.inner_text(".swagger-ui")
    page.screenshot(path=str((SHOTS or tmp_path) / "docs.png"))
    assert outside == [], outside
