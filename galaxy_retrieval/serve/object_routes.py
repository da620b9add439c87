"""The index and its objects: health, info, an object's metadata and its cutout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from ..errors import QueryError
from .models import HealthOut, InfoOut, ObjectOut
from .state import ERRORS, KEYED, State, object_out, query_error

__all__ = ["router"]

router = APIRouter()
THUMB_SIZES = (32, 512)
SIZE_Q = Query(
    None, ge=THUMB_SIZES[0], le=THUMB_SIZES[1], description="Longest side in pixels (default: as stored)."
)
PNG = {200: {"content": {"image/png": {}}, "description": "PNG"}, **ERRORS}


@router.get("/api/health", response_model=HealthOut, tags=["index"])
def health(st: State) -> HealthOut:
    return HealthOut(status="ok", count=len(st.searcher))


@router.get("/api/info", response_model=InfoOut, responses=ERRORS, dependencies=KEYED, tags=["index"])
def info(st: State) -> InfoOut:
    m = st.searcher.manifest
    f = m.faiss or {}
    model = {k: v for k, v in (m.model or {}).items() if isinstance(v, (str, int, float, bool)) or v is None}
    return InfoOut(
        index=Path(st.searcher.path).name,
        count=len(st.searcher),
        dims=m.dim,
        model=model,
        faiss_factory=f.get("factory"),
        metric=f.get("metric"),
        columns=[c for c in st.searcher.table.column_names if c != "row"],
        label_names=st.label_names,
        catalog_available=st.catalog_available,
        max_upload_bytes=st.cfg.max_upload_bytes,
    )


@router.get(
    "/api/objects/{object_id}",
    response_model=ObjectOut,
    responses=ERRORS,
    dependencies=KEYED,
    tags=["objects"],
)
def get_object(object_id: str, st: State) -> ObjectOut:
    try:
        return object_out(st, st.searcher.position_of(object_id))
    except QueryError as e:
        raise query_error(e) from None


def _cutout(st: State, row: int, size: int | None) -> Response:
    if st.searcher.lookup.live_position_of_row(row) is None:
        raise HTTPException(404, f"catalog row {row} is not in the index")

    def make() -> bytes:
        from PIL import Image

        try:
            im = Image.fromarray(np.asarray(st.searcher.images_of([row])[0]))
        except QueryError as e:
            raise HTTPException(404, str(e)) from None
        if size:
            im = im.resize(
                (size, size) if im.width == im.height else _fit(im.size, size), Image.Resampling.LANCZOS
            )
        b = io.BytesIO()
        im.save(b, "PNG")
        return b.getvalue()

    return Response(
        st.thumbs.get((row, size or 0), make),
        media_type="image/png",
        headers={"Cache-Control": "max-age=3600"},
    )


@router.get(
    "/api/rows/{row}/image.png", responses=PNG, response_class=Response, dependencies=KEYED, tags=["objects"]
)
def row_image(row: int, st: State, size: int | None = SIZE_Q) -> Response:
    """An object's cutout by its catalog row (rows the index holds only)."""
    return _cutout(st, row, size)


@router.get(
    "/api/objects/{object_id}/image.png",
    responses=PNG,
    response_class=Response,
    dependencies=KEYED,
    tags=["objects"],
)
def object_image(object_id: str, st: State, size: int | None = SIZE_Q) -> Response:
    """An object's cutout by its id."""
    try:
        pos = st.searcher.position_of(object_id)
    except QueryError as e:
        raise query_error(e) from None
    return _cutout(st, int(st.searcher.rows[pos]), size)


def _fit(wh: tuple[int, int], size: int) -> tuple[int, int]:
    w, h = wh
    s = size / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))
