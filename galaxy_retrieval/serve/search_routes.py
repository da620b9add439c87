"""Searching: by a JSON body or an uploaded image (/api/search), the outliers, explanations."""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response

from ..errors import GalaxyRetrievalError, QueryError
from ..search.hits import Hit, hits_table
from .models import QueryOut, SearchRequest, SearchResponse
from .state import ERRORS, KEYED, AppState, State, hit_out, object_out, query_error, read_upload

__all__ = ["router"]

router = APIRouter()
PNG = {200: {"content": {"image/png": {}}, "description": "PNG"}, **ERRORS}
FORMAT_Q = Query(
    "json", pattern="^(json|csv|parquet)$", description="json, or a csv/parquet file of the hits"
)
# the multipart form of /api/search: an image and the JSON body's settings as form fields
_FORM_FIELDS = {
    "k": "integer",
    "refine": "integer",
    "nprobe": "integer",
    "ef_search": "integer",
    "where": "string",
    "min_separation_arcsec": "number",
    "least": "boolean",
}
_FORM_SCHEMA = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary"},
        **{k: {"type": t} for k, t in _FORM_FIELDS.items()},
    },
}
_SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
        },
    }
}


def _search(st: AppState, req: SearchRequest, image: np.ndarray | None) -> SearchResponse:
    s = st.searcher
    kinds = [
        image is not None,
        req.object_id is not None,
        req.ra is not None or req.dec is not None or req.position is not None,
        req.vector is not None,
        bool(req.positive or req.negative),
    ]
    if sum(kinds) != 1 or (req.position is not None and (req.ra is not None or req.dec is not None)):
        raise HTTPException(
            400,
            "give exactly one query: object_id, ra and dec (or position), vector, positive (and negative) ids, or an image upload",
        )
    t0 = time.perf_counter()
    try:
        opts = req.search_options()
        if image is not None:
            q = QueryOut(kind="image")
            hits = s.query(image=image, options=opts)
        elif req.object_id is not None:
            o = object_out(st, s.position_of(req.object_id))
            q = QueryOut(
                kind="object_id",
                object_id=o.object_id,
                row=o.row,
                label=o.label,
                label_name=o.label_name,
                ra=o.ra,
                dec=o.dec,
            )
            hits = s.query(object_id=req.object_id, options=opts)
        elif kinds[2]:
            if req.position is None and (req.ra is None or req.dec is None):
                raise HTTPException(400, "a sky position needs both ra and dec")
            where_ = (req.position,) if req.position is not None else (req.ra, req.dec)
            sky = s.query_sky(*where_, radius_arcsec=req.radius_arcsec, options=opts)
            o = object_out(st, s.position_of(sky.object_id))  # type: ignore[arg-type]
            q = QueryOut(
                kind="sky",
                object_id=o.object_id,
                row=o.row,
                label=o.label,
                label_name=o.label_name,
                ra=sky.ra,
                dec=sky.dec,
                separation_arcsec=sky.separation_arcsec,
            )
            hits = sky.hits
        elif req.vector is not None:
            q = QueryOut(kind="vector")
            hits = s.query_vector(req.vector, options=opts)
        else:
            if req.least or req.min_separation_arcsec is not None:
                raise HTTPException(
                    400,
                    "positive/negative examples rank by their combined score: least and min_separation_arcsec do not apply",
                )
            q = QueryOut(kind="examples")
            hits = s.query_examples(req.positive, req.negative, options=opts)
    except (QueryError, GalaxyRetrievalError) as e:
        raise query_error(e) from None
    ms = (time.perf_counter() - t0) * 1000
    return SearchResponse(query=q, hits=[hit_out(st, h) for h in hits], milliseconds=ms)


def _errors(e: Any) -> str:
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'body'}: {x['msg']}" for x in e.errors())


def _form_request(form: dict[str, Any]) -> SearchRequest:
    """The non-file fields of a multipart search, as the JSON body would give them."""
    from pydantic import ValidationError

    vals = {k: v for k, v in form.items() if v not in (None, "")}
    for k in ("positive", "negative"):
        if k in vals:
            vals[k] = [x.strip() for x in str(vals[k]).split(",") if x.strip()]
    if "least" in vals:
        vals["least"] = str(vals["least"]).lower() in ("1", "true", "on", "yes")
    try:
        return SearchRequest(**vals)
    except ValidationError as e:
        raise HTTPException(400, _errors(e)) from None


def _download(resp: SearchResponse, fmt: str, label: str) -> Response:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    hits = [
        Hit(h.rank, h.object_id, h.row, h.score, h.cos, h.inv_l2, h.inv_l3, h.metadata, h.percentile)
        for h in resp.hits
    ]
    table = hits_table([label], [hits])
    buf = io.BytesIO()
    if fmt == "csv":
        pcsv.write_csv(table, buf)
        media = "text/csv"
    else:
        pq.write_table(table, buf)
        media = "application/vnd.apache.parquet"
    return Response(
        buf.getvalue(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="hits.{fmt}"'},
    )


def _label(req: SearchRequest, q: QueryOut) -> str:
    if q.kind in ("object_id", "sky"):
        return f"object {q.object_id}"
    if q.kind == "examples":
        return (
            "examples " + ",".join(req.positive) + ("; not " + ",".join(req.negative) if req.negative else "")
        )
    return q.kind


@router.post(
    "/api/search",
    response_model=SearchResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
    dependencies=KEYED,
    tags=["search"],
    openapi_extra=_SEARCH_BODY,
)
async def search(request: Request, st: State, format: str = FORMAT_Q) -> Any:
    """Search by a JSON body (object_id, ra/dec, vector, positive/negative), or a
    multipart form whose ``image`` field is an uploaded file (other fields as in the body)."""
    from pydantic import ValidationError
    from starlette.concurrency import run_in_threadpool

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    image = None  # the body's size is bounded as it streams (RequestGuard)
    if ctype == "multipart/form-data":
        form = await request.form(max_part_size=st.cfg.max_upload_bytes + 1)
        up = form.get("image")
        if not isinstance(up, UploadFile) and not hasattr(up, "read"):
            raise HTTPException(400, "a multipart search needs the image in its 'image' field")
        data = await up.read()  # type: ignore[union-attr]
        req = _form_request({k: v for k, v in form.items() if k != "image"})
        image = await run_in_threadpool(read_upload, st, up, data)  # type: ignore[arg-type]
    elif ctype in ("application/json", ""):
        try:
            req = SearchRequest.model_validate_json(await request.body() or b"{}")
        except ValidationError as e:
            raise HTTPException(400, _errors(e)) from None
    else:
        raise HTTPException(415, "send the search as application/json or multipart/form-data")
    resp = await run_in_threadpool(_search, st, req, image)
    if format == "json":
        return resp
    return _download(resp, format, _label(req, resp.query))


@router.get(
    "/api/outliers", response_model=SearchResponse, responses=ERRORS, dependencies=KEYED, tags=["search"]
)
def outliers(
    st: State,
    n: int = Query(20, ge=1, le=1000, description="Number of objects."),
    k: int = Query(
        50, ge=1, le=1000, description="Rank by the score to each object's k-th nearest neighbour."
    ),
    where: str | None = Query(
        None, description="Only objects matching this SQL condition over the metadata columns."
    ),
) -> SearchResponse:
    """The galaxies least like any other: the lowest score to their k-th nearest neighbour
    (`gr outliers`; the first call per k computes every object's score, later ones read it)."""
    t0 = time.perf_counter()
    try:
        hits = st.searcher.outliers(n, k, where=where or None)
    except (QueryError, GalaxyRetrievalError) as e:
        raise query_error(e) from None
    return SearchResponse(
        query=QueryOut(kind="outliers"),
        hits=[hit_out(st, h) for h in hits],
        milliseconds=(time.perf_counter() - t0) * 1000,
    )


@router.post("/api/explain", responses=PNG, response_class=Response, dependencies=KEYED, tags=["search"])
def explain(
    st: State,
    object_id: Annotated[str | None, Form()] = None,
    image: Annotated[UploadFile | None, File()] = None,
    k: Annotated[int, Form(ge=1, le=8)] = 3,
    method: Annotated[str, Form(pattern="^(similarity|rollout)$")] = "similarity",
) -> Response:
    """The `gr explain` sheet (PNG) for a query: which patches each of its k best matches
    rests on. Give the query as an object id or an uploaded image."""
    from ..errors import ConfigError
    from ..explain import explain_query

    if (object_id is None) == (image is None):
        raise HTTPException(400, "give the query as object_id or as an uploaded image, one of them")
    qim = read_upload(st, image, image.file.read()) if image is not None else None
    with tempfile.TemporaryDirectory(prefix="gr-explain-") as d:
        out = Path(d) / "why.png"
        try:
            # by id, the library leaves the object out of its own matches (it would be #1)
            explain_query(
                st.searcher.path,
                qim,
                out,
                k=k,
                method=method,
                steps=st.cfg.explain_steps,
                checkpoint=st.cfg.checkpoint,
                object_id=object_id,
            )
        except QueryError as e:
            raise query_error(e) from None
        except ConfigError as e:
            raise HTTPException(400, str(e)) from None
        return Response(out.read_bytes(), media_type="image/png")
