"""Screenshot the search page (docs/serve.png in the README): starts `gr serve` on loopback,
searches with ``--q`` in headless chromium, saves the page at desktop width.

    python docs/screenshot.py --index indexes/demo --q 0 --out docs/serve.png
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time

import httpx
from playwright.sync_api import sync_playwright


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--q", required=True, help="object id (or 'RA Dec') to search")
    ap.add_argument("--out", default="docs/serve.png")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=860)
    ap.add_argument("--k", type=int, default=14)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "galaxy_retrieval.cli", "serve", "--index", a.index, "--port", str(port)]
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = b.new_page(viewport={"width": a.width, "height": a.height})
            page.goto(url + "/")
            page.fill("#k", str(a.k))
            page.fill("#q", a.q)
            page.click("#go")
            page.wait_for_function("document.querySelectorAll('#grid .hit').length > 0")
            page.wait_for_function(
                "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=a.out)
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(a.out)


if __name__ == "__main__":
    main()
