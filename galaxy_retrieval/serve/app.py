"""The FastAPI app behind `gr serve`: one :class:`GalaxySearcher`, a JSON API under /api/ and
the page at /. Every answer comes from a library call; this module only translates HTTP to
those calls and their errors to statuses."""

from __future__ import annotations

import io
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Annotated, Iterator, Optional

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from ..errors import GalaxyRetrievalError, ImageReadError, QueryError
from ..search.hits import Hit, hits_table
from ..search.searcher import GalaxySearcher
from .guard import RequestGuard
from .models import ErrorOut, HealthOut, HitOut, InfoOut, ObjectOut, QueryOut, SearchRequest, SearchResponse

__all__ = ["ServeConfig", "create_app", "app_from_env"]

STATIC = Path(__file__).parent / "static"
# what an upload may be called: read_image picks its decoder by the name
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".fits", ".fit", ".fits.gz", ".fit.gz", ".fz")
OK_TYPES = ("application/octet-stream", "application/fits", "image/fits")
THUMB_SIZES = (32, 512)
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorOut} for s in (400, 401, 404, 413, 415)}
ENV = "GR_SERVE_"
# room for a multipart form's boundaries and small fields around an upload of the full limit
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class ServeConfig:
    index: Path
    checkpoint: Optional[Path] = None
    api_key: Optional[str] = None  # when set, /api/ (but health) wants it in the X-API-Key header
    cors_origins: tuple[str, ...] = ()  # none: browsers allow only the page this server serves
    max_upload_bytes: int = 10 * 1024 * 1024
    thumbnail_cache: int = 1024  # PNGs kept in memory; a grid re-asks for the same ones
    explain_steps: int = 16  # integration steps: half the CLI's default, for an answer in seconds

    def to_env(self) -> dict[str, str]:
        """The config as environment variables: uvicorn's worker processes rebuild it from these."""
        env = {"INDEX": str(self.index), "MAX_UPLOAD_BYTES": str(self.max_upload_bytes), "CORS": ",".join(self.cors_origins)}
        if self.checkpoint:
            env["CHECKPOINT"] = str(self.checkpoint)
        if self.api_key:
            env["API_KEY"] = self.api_key
        return {ENV + k: v for k, v in env.items()}

    @classmethod
    def from_env(cls) -> "ServeConfig":
        e = {k[len(ENV) :]: v for k, v in os.environ.items() if k.startswith(ENV)}
        return cls(
            index=Path(e["INDEX"]),
            checkpoint=Path(e["CHECKPOINT"]) if e.get("CHECKPOINT") else None,
            api_key=e.get("API_KEY") or None,
            cors_origins=tuple(o for o in e.get("CORS", "").split(",") if o),
            max_upload_bytes=int(e.get("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)),
        )


class _Thumbnails:
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


class _State:
    def __init__(self, cfg: ServeConfig) -> None:
        from ..search.query import _label_names

        self.cfg = cfg
        self.searcher = GalaxySearcher.open(cfg.index, checkpoint=cfg.checkpoint)
        self.label_names = _label_names(self.searcher) or {}
        self.thumbs = _Thumbnails(cfg.thumbnail_cache)
        self.row_to_pos = {int(r): i for i, r in enumerate(self.searcher.rows)}
        src = self.searcher.manifest.catalog.get("path")
        self.catalog_available = bool(src) and Path(src).exists()


def _state(request: Request) -> _State:
    return request.app.state.gr


State = Annotated[_State, Depends(_state)]


def _check_key(request: Request) -> None:
    want = request.app.state.gr.cfg.api_key
    if want and not secrets.compare_digest(request.headers.get("x-api-key", ""), want):
        raise HTTPException(401, "this server wants an API key: send it in the X-API-Key header")


def _query_error(e: GalaxyRetrievalError) -> HTTPException:
    msg = str(e)
    # an object or position that is not in the index is a missing resource, everything else
    # (bad filter, bad k, bad vector) is a bad request
    missing = ("is not in the index", "was deleted from the index", "no catalog object within", "no object within")
    return HTTPException(404 if any(m in msg for m in missing) else 400, msg)


def _hit_out(st: _State, h: Hit) -> HitOut:
    md = {k: _plain(v) for k, v in h.metadata.items()}
    lab = md.get("label")
    return HitOut(
        rank=h.rank, object_id=h.object_id, row=h.row, score=h.score, percentile=h.percentile, cos=h.cos, inv_l2=h.inv_l2, inv_l3=h.inv_l3,
        label=lab, label_name=st.label_names.get(lab) if isinstance(lab, int) else None,
        ra=md.get("ra"), dec=md.get("dec"), metadata=md,
    )


def _plain(v: Any) -> Any:
    """JSON has no NaN: a missing coordinate or redshift is null."""
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _object_out(st: _State, pos: int) -> ObjectOut:
    s = st.searcher
    md = {k: _plain(v) for k, v in s.metadata([pos])[0].items()}
    lab = md.get("label")
    return ObjectOut(
        object_id=s.object_ids[pos], row=int(s.rows[pos]), label=lab,
        label_name=st.label_names.get(lab) if isinstance(lab, int) else None, ra=md.get("ra"), dec=md.get("dec"), metadata=md,
    )


def _read_upload(st: _State, upload: UploadFile, data: bytes) -> np.ndarray:
    """Decode an uploaded image with the library's reader (PNG, JPEG, TIFF, FITS, ...)."""
    from ..catalog.images import read_image

    name = Path(upload.filename or "upload").name
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    suffix = next((s for s in IMAGE_SUFFIXES if name.lower().endswith(s)), "")
    # errors name the upload, not its file name or type as sent: nothing of a request is echoed
    if ctype and not ctype.startswith("image/") and ctype not in OK_TYPES and not suffix:
        raise HTTPException(415, "the upload is not an image; upload a PNG, JPEG, TIFF or FITS file")
    if len(data) > st.cfg.max_upload_bytes:
        raise HTTPException(413, f"the upload of {len(data):,} bytes is over the upload limit of {st.cfg.max_upload_bytes:,} bytes")
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


def _search(st: _State, req: SearchRequest, image: Optional[np.ndarray]) -> SearchResponse:
    s = st.searcher
    kinds = [
        image is not None, req.object_id is not None, req.ra is not None or req.dec is not None or req.position is not None,
        req.vector is not None, bool(req.positive or req.negative),
    ]
    if sum(kinds) != 1 or (req.position is not None and (req.ra is not None or req.dec is not None)):
        raise HTTPException(400, "give exactly one query: object_id, ra and dec (or position), vector, positive (and negative) ids, or an image upload")
    order = "least" if req.least else "most"
    kw = dict(k=req.k, refine=req.refine, where=req.where or None)
    t0 = time.perf_counter()
    try:
        if image is not None:
            q = QueryOut(kind="image")
            hits = s.query(image=image, order=order, min_separation_arcsec=req.min_separation_arcsec, **kw)
        elif req.object_id is not None:
            pos = s.position_of(req.object_id)
            o = _object_out(st, pos)
            q = QueryOut(kind="object_id", object_id=o.object_id, row=o.row, label=o.label, label_name=o.label_name, ra=o.ra, dec=o.dec)
            hits = s.query(object_id=req.object_id, order=order, min_separation_arcsec=req.min_separation_arcsec, **kw)
        elif kinds[2]:
            if req.position is None and (req.ra is None or req.dec is None):
                raise HTTPException(400, "a sky position needs both ra and dec")
            where_ = (req.position,) if req.position is not None else (req.ra, req.dec)
            sky = s.query_sky(*where_, radius_arcsec=req.radius_arcsec, order=order, min_separation_arcsec=req.min_separation_arcsec, **kw)
            o = _object_out(st, s.position_of(sky.object_id))  # type: ignore[arg-type]
            q = QueryOut(kind="sky", object_id=o.object_id, row=o.row, label=o.label, label_name=o.label_name, ra=sky.ra, dec=sky.dec, separation_arcsec=sky.separation_arcsec)
            hits = sky.hits
        elif req.vector is not None:
            q = QueryOut(kind="vector")
            hits = s.query_vector(req.vector, order=order, min_separation_arcsec=req.min_separation_arcsec, **kw)
        else:
            if req.least or req.min_separation_arcsec is not None:
                raise HTTPException(400, "positive/negative examples rank by their combined score: least and min_separation_arcsec do not apply")
            q = QueryOut(kind="examples")
            hits = s.query_examples(req.positive, req.negative, **kw)
    except (QueryError, GalaxyRetrievalError) as e:
        raise _query_error(e) from None
    ms = (time.perf_counter() - t0) * 1000
    return SearchResponse(query=q, hits=[_hit_out(st, h) for h in hits], milliseconds=ms)


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
        raise HTTPException(400, "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())) from None


def _download(resp: SearchResponse, fmt: str, label: str) -> Response:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from ..search.hits import Hit as H

    hits = [H(h.rank, h.object_id, h.row, h.score, h.cos, h.inv_l2, h.inv_l3, h.metadata, h.percentile) for h in resp.hits]
    table = hits_table([label], [hits])
    buf = io.BytesIO()
    if fmt == "csv":
        pcsv.write_csv(table, buf)
        media = "text/csv"
    else:
        pq.write_table(table, buf)
        media = "application/vnd.apache.parquet"
    return Response(buf.getvalue(), media_type=media, headers={"Content-Disposition": f'attachment; filename="hits.{fmt}"'})


def _label(req: SearchRequest, q: QueryOut) -> str:
    if q.kind in ("object_id", "sky"):
        return f"object {q.object_id}"
    if q.kind == "examples":
        return "examples " + ",".join(req.positive) + ("; not " + ",".join(req.negative) if req.negative else "")
    return q.kind


def create_app(cfg: ServeConfig) -> FastAPI:
    """The app for one index. The searcher (and its model) is opened once, at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Iterator[None]:  # type: ignore[misc]
        app.state.gr = _State(cfg)
        # the first query would otherwise pay for loading the model and compiling kernels
        try:
            app.state.gr.searcher.warmup(model=True)
        except GalaxyRetrievalError:  # an index without a model copy still serves id searches
            app.state.gr.searcher.warmup(model=False)
        yield

    # /docs and /redoc with their scripts served from the package (fastapi-offline), not a
    # CDN: the API page renders on a machine without the internet, as the search page does
    app = FastAPIOffline(
        title="galaxy-retrieval",
        summary="Search a galaxy image index by object id, sky position, image or embedding.",
        version="1",
        lifespan=lifespan,
    )
    # the key, then the body's size, before any route reads a byte (guard.py); CORS outside
    # it, so that a browser's preflight (which never carries the key) is answered
    app.add_middleware(RequestGuard, max_body_bytes=cfg.max_upload_bytes + FORM_OVERHEAD, api_key=cfg.api_key)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"], allow_headers=["*"])

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer quotes the input back; say where and what, not what was sent
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts)[:1000]}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a bug answers as JSON with 500 and the server keeps serving
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log has the traceback"}, status_code=500)

    keyed = [Depends(_check_key)]

    @app.get("/api/health", response_model=HealthOut, tags=["index"])
    def health(st: State) -> HealthOut:
        return HealthOut(status="ok", count=len(st.searcher))

    @app.get("/api/info", response_model=InfoOut, responses=ERRORS, dependencies=keyed, tags=["index"])
    def info(st: State) -> InfoOut:
        m = st.searcher.manifest
        f = m.faiss or {}
        model = {k: v for k, v in (m.model or {}).items() if isinstance(v, (str, int, float, bool)) or v is None}
        return InfoOut(
            index=Path(st.searcher.path).name, count=len(st.searcher), dims=m.dim, model=model,
            faiss_factory=f.get("factory"), metric=f.get("metric"),
            columns=[c for c in st.searcher.table.column_names if c != "row"],
            label_names=st.label_names, catalog_available=st.catalog_available, max_upload_bytes=st.cfg.max_upload_bytes,
        )

    fmt_q = Query("json", pattern="^(json|csv|parquet)$", description="json, or a csv/parquet file of the hits")

    @app.post(
        "/api/search", response_model=SearchResponse, responses={**ERRORS, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
        dependencies=keyed, tags=["search"],
        openapi_extra={"requestBody": {"content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}, "k": {"type": "integer"}, "refine": {"type": "integer"}, "where": {"type": "string"}, "min_separation_arcsec": {"type": "number"}, "least": {"type": "boolean"}}, "required": ["image"]}},
        }, "required": True}},
    )
    async def search(request: Request, st: State, format: str = fmt_q) -> Any:
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
            image = await run_in_threadpool(_read_upload, st, up, data)  # type: ignore[arg-type]
        elif ctype in ("application/json", ""):
            try:
                req = SearchRequest.model_validate_json(await request.body() or b"{}")
            except ValidationError as e:
                raise HTTPException(400, "; ".join(f"{'.'.join(map(str, x['loc'])) or 'body'}: {x['msg']}" for x in e.errors())) from None
        else:
            raise HTTPException(415, "send the search as application/json or multipart/form-data")
        resp = await run_in_threadpool(_search, st, req, image)
        if format == "json":
            return resp
        return _download(resp, format, _label(req, resp.query))

    @app.get("/api/objects/{object_id}", response_model=ObjectOut, responses=ERRORS, dependencies=keyed, tags=["objects"])
    def get_object(object_id: str, st: State) -> ObjectOut:
        try:
            return _object_out(st, st.searcher.position_of(object_id))
        except QueryError as e:
            raise _query_error(e) from None

    @app.get("/api/outliers", response_model=SearchResponse, responses=ERRORS, dependencies=keyed, tags=["search"])
    def outliers(
        st: State,
        n: int = Query(20, ge=1, le=1000, description="Number of objects."),
        k: int = Query(50, ge=1, le=1000, description="Rank by the score to each object's k-th nearest neighbour."),
        where: Optional[str] = Query(None, description="Only objects matching this SQL condition over the metadata columns."),
    ) -> SearchResponse:
        """The galaxies least like any other: the lowest score to their k-th nearest neighbour
        (`gr outliers`; the first call per k computes every object's score, later ones read it)."""
        t0 = time.perf_counter()
        try:
            hits = st.searcher.outliers(n, k, where=where or None)
        except (QueryError, GalaxyRetrievalError) as e:
            raise _query_error(e) from None
        return SearchResponse(query=QueryOut(kind="outliers"), hits=[_hit_out(st, h) for h in hits], milliseconds=(time.perf_counter() - t0) * 1000)

    size_q = Query(None, ge=THUMB_SIZES[0], le=THUMB_SIZES[1], description="Longest side in pixels (default: as stored).")
    png = {200: {"content": {"image/png": {}}, "description": "PNG"}, **ERRORS}

    def _cutout(st: State, row: int, size: Optional[int]) -> Response:
        if row not in st.row_to_pos or st.searcher._dead[st.row_to_pos[row]]:
            raise HTTPException(404, f"catalog row {row} is not in the index")

        def make() -> bytes:
            from PIL import Image

            try:
                im = Image.fromarray(np.asarray(st.searcher.images_of([row])[0]))
            except QueryError as e:
                raise HTTPException(404, str(e)) from None
            if size:
                im = im.resize((size, size) if im.width == im.height else _fit(im.size, size), Image.Resampling.LANCZOS)
            b = io.BytesIO()
            im.save(b, "PNG")
            return b.getvalue()

        return Response(st.thumbs.get((row, size or 0), make), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/rows/{row}/image.png", responses=png, response_class=Response, dependencies=keyed, tags=["objects"])
    def row_image(row: int, st: State, size: Optional[int] = size_q) -> Response:
        """An object's cutout by its catalog row (rows the index holds only)."""
        return _cutout(st, row, size)

    @app.get("/api/objects/{object_id}/image.png", responses=png, response_class=Response, dependencies=keyed, tags=["objects"])
    def object_image(object_id: str, st: State, size: Optional[int] = size_q) -> Response:
        """An object's cutout by its id."""
        try:
            pos = st.searcher.position_of(object_id)
        except QueryError as e:
            raise _query_error(e) from None
        return _cutout(st, int(st.searcher.rows[pos]), size)

    @app.post("/api/explain", responses=png, response_class=Response, dependencies=keyed, tags=["search"])
    def explain(
        st: State,
        object_id: Annotated[Optional[str], Form()] = None,
        image: Annotated[Optional[UploadFile], File()] = None,
        k: Annotated[int, Form(ge=1, le=8)] = 3,
        method: Annotated[str, Form(pattern="^(similarity|rollout)$")] = "similarity",
    ) -> Response:
        """The `gr explain` sheet (PNG) for a query: which patches each of its k best matches
        rests on. Give the query as an object id or an uploaded image."""
        from ..errors import ConfigError
        from ..explain import explain_query

        if (object_id is None) == (image is None):
            raise HTTPException(400, "give the query as object_id or as an uploaded image, one of them")
        qim = _read_upload(st, image, image.file.read()) if image is not None else None
        with tempfile.TemporaryDirectory(prefix="gr-explain-") as d:
            out = Path(d) / "why.png"
            try:
                # by id, the library leaves the object out of its own matches (it would be #1)
                explain_query(st.searcher.path, qim, out, k=k, method=method, steps=st.cfg.explain_steps, checkpoint=st.cfg.checkpoint, object_id=object_id)
            except QueryError as e:
                raise _query_error(e) from None
            except ConfigError as e:
                raise HTTPException(400, str(e)) from None
            return Response(out.read_bytes(), media_type="image/png")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _fit(wh: tuple[int, int], size: int) -> tuple[int, int]:
    w, h = wh
    s = size / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes (``--workers N``): the config comes from the
    environment that `gr serve` set."""
    return create_app(ServeConfig.from_env())
