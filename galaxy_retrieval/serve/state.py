"""What every route shares: the app's state (one searcher), the key check, and the
translations of library answers and errors into HTTP ones."""

from __future__ import annotations

import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, HTTPException, Request, UploadFile

from ..errors import GalaxyRetrievalError, ImageReadError
from ..search.hits import Hit
from ..search.searcher import GalaxySearcher
from .config import ServeConfig
from .models import ErrorOut, HitOut, ObjectOut

__all__ = [
    "AppState",
    "State",
    "KEYED",
    "ERRORS",
    "check_key",
    "query_error",
    "hit_out",
    "object_out",
    "read_upload",
]

# what an upload may be called: read_image picks its decoder by the name
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".fits",
    ".fit",
    ".fits.gz",
    ".fit.gz",
    ".fz",
)
OK_TYPES = ("application/octet-stream", "application/fits", "image/fits")
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorOut} for s in (400, 401, 404, 413, 415)}


class Thumbnails:
    """PNG bytes of (row, size), least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self._d: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cap = capacity
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int], make: Any) -> bytes:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        png = make()
        with self._lock:
            self._d[key] = png
            while len(self._d) > self._cap:
                self._d.popitem(last=False)
        return png


class AppState:
    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.searcher = GalaxySearcher.open(cfg.index, checkpoint=cfg.checkpoint)
        self.label_names = self.searcher.label_names or {}
        self.thumbs = Thumbnails(cfg.thumbnail_cache)
        src = self.searcher.manifest.catalog.get("path")
        self.catalog_available = bool(src) and Path(src).exists()


def _state(request: Request) -> AppState:
    return request.app.state.gr


State = Annotated[AppState, Depends(_state)]


def check_key(request: Request) -> None:
    want = request.app.state.gr.cfg.api_key
    if want and not secrets.compare_digest(request.headers.get("x-api-key", ""), want):
        raise HTTPException(401, "this server wants an API key: send it in the X-API-Key header")


KEYED = [Depends(check_key)]


def query_error(e: GalaxyRetrievalError) -> HTTPException:
    msg = str(e)
    # an object or position that is not in the index is a missing resource, everything else
    # (bad filter, bad k, bad vector) is a bad request
    missing = (
        "is not in the index",
        "was deleted from the index",
        "no catalog object within",
        "no object within",
    )
    return HTTPException(404 if any(m in msg for m in missing) else 400, msg)


def _plain(v: Any) -> Any:
    """JSON has no NaN: a missing coordinate or redshift is null."""
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def hit_out(st: AppState, h: Hit) -> HitOut:
    md = {k: _plain(v) for k, v in h.metadata.items()}
    lab = md.get("label")
    return HitOut(
        rank=h.rank,
        object_id=h.object_id,
        row=h.row,
        score=h.score,
        percentile=h.percentile,
        cos=h.cos,
        inv_l2=h.inv_l2,
        inv_l3=h.inv_l3,
        label=lab,
        label_name=st.label_names.get(lab) if isinstance(lab, int) else None,
        ra=md.get("ra"),
        dec=md.get("dec"),
        metadata=md,
    )


def object_out(st: AppState, pos: int) -> ObjectOut:
    s = st.searcher
    md = {k: _plain(v) for k, v in s.metadata([pos])[0].items()}
    lab = md.get("label")
    return ObjectOut(
        object_id=s.object_ids[pos],
        row=int(s.rows[pos]),
        label=lab,
        label_name=st.label_names.get(lab) if isinstance(lab, int) else None,
        ra=md.get("ra"),
        dec=md.get("dec"),
        metadata=md,
    )


def read_upload(st: AppState, upload: UploadFile, data: bytes) -> np.ndarray:
    """Decode an uploaded image with the library's reader (PNG, JPEG, TIFF, FITS, ...)."""
    from ..catalog.images import read_image

    name = Path(upload.filename or "upload").name
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    suffix = next((s for s in IMAGE_SUFFIXES if name.lower().endswith(s)), "")
    # errors name the upload, not its file name or type as sent: nothing of a request is echoed
    if ctype and not ctype.startswith("image/") and ctype not in OK_TYPES and not suffix:
        raise HTTPException(415, "the upload is not an image; upload a PNG, JPEG, TIFF or FITS file")
    if len(data) > st.cfg.max_upload_bytes:
        raise HTTPException(
            413,
            f"the upload of {len(data):,} bytes is over the upload limit of {st.cfg.max_upload_bytes:,} bytes",
        )
    if not data:
        raise HTTPException(400, "the upload is empty")
    # the bytes go to a private temporary file named only by the suffix: nothing from the
    # request becomes a path that is opened
    with tempfile.TemporaryDirectory(prefix="gr-upload-") as d:
        p = Path(d) / ("upload" + (suffix or ".png"))
        p.write_bytes(data)
        try:
            return read_image(p)
        except ImageReadError as e:
            raise HTTPException(400, f"the upload: {e.reason}") from None
