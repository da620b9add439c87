"""`GalaxySearcher`: embed a query, shortlist with FAISS, rerank exactly, return hits.

    s = GalaxySearcher.open("indexes/demo")
    s.query(image="q.png", k=10)          # an image file or a uint8 array
    s.query(object_id="synth-000042")     # a catalog object (itself excluded)
    s.query(ra=150.1, dec=2.2)            # the nearest catalog object, then its neighbours
    s.query(coord=SkyCoord("09h52m12s +02d09m15s"))       # any astropy SkyCoord (any frame)
    s.query_sky("09:52:12 +02:09:15")     # sexagesimal or degrees, one string or RA and Dec
    s.query_sky(150.1, 2.2, fetch=CutoutSpec("legacy"))  # …or the survey's cutout there
    s.cone("09:52:12 +02:09:15", radius_arcsec=60)        # what the catalog holds there (a Table)
    hits.to_table()                       # an astropy Table with units (FITS, VOTable)
    s.mosaic(hits).save("hits.png")       # a grid of the hits, cropped to each galaxy
    s.outliers(n=20, k=50)                # the galaxies least like any other
    s.query_batch([im1, im2], k=10)       # several images, one model call

``refine`` is the shortlist factor: FAISS returns ``k × refine`` candidates, the exact score
re-orders them, and the top ``k`` are returned (LanceDB's ``refine_factor``). ``exact=True``
bypasses FAISS and scans every vector: the ground truth.

Safe to share between threads: lazy loading happens under a lock, and FAISS searches run
concurrently; per-call knobs (``nprobe``, ``ef_search``) travel as FAISS search parameters
of that call only, never as changes to the shared index (which raced: other threads saw
the knob, and FAISS read out of bounds).

Deleted rows (the manifest's tombstone list) and ``where=`` filters (SQL run by DuckDB over
the metadata, :mod:`~galaxy_retrieval.index.filters`) restrict every query path the same way:
the allowed positions go to FAISS as an ID selector in that call's search parameters
(prefiltering), with the IVF probe (HNSW beam) widened by 1/√(fraction selected), since the
nearest selected rows lie further out than the nearest rows; a selection small enough to read
quickly is scanned exactly instead.
When the FAISS shortlist holds fewer than k allowed rows (an IVF probe can miss a sparse
selection), the query is refilled by the exact scan of the selection: k allowed rows exist →
k hits.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..errors import CheckpointError, ConfigError, IndexFormatError, QueryError
from ..index.candidates import load_faiss_index, search_params
from ..index.filters import select_positions
from ..index.layout import MANIFEST_NAME, MODEL_DIR
from ..index.manifest import Manifest, read_manifest
from ..index.metadata_map import open_metadata_table
from ..index.reference import ScoreReference
from ..index.shards import check_shard_models
from ..index.tombstones import read_tombstones
from ..index.vectors import open_vectors
from ..score import ScoreWeights
from .hits import Hit, Hits, SkyHits
from .ids import ObjectIds
from .sky import SkyMatcher, parse_sky

__all__ = ["GalaxySearcher"]


# A selection (filter ∩ live rows) of at most this many stored numbers (rows × dimension) is
# scanned exactly instead of searched with FAISS: 2²³ floats are 32 MB, a few ms to read,
# and the scan has recall 1 where an IVF probe of a sparse selection finds few of its rows.
EXACT_SCAN_ELEMENTS = 1 << 23
_CACHED_FILTERS = 32


class _Selection:
    """The positions a query may return (sorted), and their FAISS ID selector (built once)."""

    def __init__(self, positions: np.ndarray, n: int) -> None:
        self.positions = positions
        self._n = n
        self._sel: Any = None
        self._lock = threading.Lock()

    def selector(self) -> Any:
        import faiss

        with self._lock:  # built once: a second build would free the bitmap another thread searches with
            if self._sel is None:
                mask = np.zeros(self._n, bool)
                mask[self.positions] = True
                # a bitmap answers "is id i allowed" in O(1) for any selectivity; FAISS keeps a
                # raw pointer into it, so the selector holds the array
                bits = np.packbits(mask, bitorder="little")
                sel = faiss.IDSelectorBitmap(self._n, faiss.swig_ptr(bits))
                sel.bits_owner = bits
                self._sel = sel
            return self._sel


class GalaxySearcher:
    # selections of at most this many stored numbers are scanned exactly (instance-settable)
    exact_scan_elements: int = EXACT_SCAN_ELEMENTS
    # widen the FAISS probe of a filtered query by 1/√(fraction selected) (off: the knobs as given,
    # e.g. for benchmarks/filtered_query.py's sweep)
    scale_filtered_probe: bool = True

    def __init__(self, path: Path, manifest: Manifest, checkpoint: str | Path | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.weights = ScoreWeights.from_dict(manifest.score_weights)
        # scores of random catalog pairs: a hit's percentile among them (None: an older index)
        self.reference = ScoreReference.from_manifest(manifest.extra)
        self._checkpoint = checkpoint
        self._lock = threading.RLock()
        self._embedder: Any = None
        self._catalog: Any = None
        self._sky: SkyMatcher | None = None
        # one outlier pass at a time: two requests would both compute it and write one cache file
        self._outlier_lock = threading.Lock()
        # the files of the manifest's version: a write makes new ones, so this searcher keeps
        # answering from the version it opened
        faiss_path = path / manifest.faiss_file
        # the version's rows only: an add may be appending after them right now (vectors.py)
        self.vectors = open_vectors(path, manifest.vectors, manifest.count, manifest.dim, manifest.vectors_file)
        _advise_random(self.vectors)
        self.index = load_faiss_index(faiss_path, manifest.faiss)
        if self.index.ntotal != manifest.count:
            raise IndexFormatError(f"{faiss_path}: holds {self.index.ntotal} vectors, manifest says {manifest.count}")
        self.deleted, _ = read_tombstones(path, manifest.tombstones, manifest.count)
        self._dead = np.zeros(manifest.count, bool)
        self._dead[self.deleted] = True
        # None: every row may be returned (the plain, unselected FAISS search)
        self._live = _Selection(np.flatnonzero(~self._dead), manifest.count) if len(self.deleted) else None
        self._filters: OrderedDict[str, _Selection] = OrderedDict()
        self._cosine = (manifest.faiss or {}).get("metric") == "cosine"
        self._ivf, self._hnsw_ef = _faiss_knobs(self.index)
        # a shard embedded by another model than the manifest's would answer with a mix of two
        # models while every file still matches its digest
        check_shard_models([path / s.file for s in manifest.shards], (manifest.model or {}).get("sha256"), f"{path / MANIFEST_NAME}")
        # memory-mapped from the cache (index/metadata_map.py): file pages, not heap, so the
        # process's anonymous memory does not grow with the catalog's metadata
        self.table: pa.Table = open_metadata_table(
            [path / s.file for s in manifest.shards], [f"{s.file}:{s.rows}:{s.sha256}" for s in manifest.shards], manifest.count
        )
        self.object_ids = ObjectIds(self.table.column("object_id"))  # not a list: 670 MB at 10M objects
        row = self.table.column("row")
        self.rows: np.ndarray = row.chunk(0).to_numpy() if row.num_chunks == 1 else row.to_numpy()  # a view of the map

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path, checkpoint: str | Path | None = None, verify: bool | None = None) -> "GalaxySearcher":
        """Open an index directory, verifying it against its manifest.

        ``verify``: True hashes every file, False checks sizes only, None (default) hashes
        when the index is under 2 GiB. ``checkpoint`` overrides the model copy inside the
        index; it must be the checkpoint the index was built with.
        """
        p = Path(path)
        attempts = 3
        while True:
            m = read_manifest(p)
            try:
                m.verify(p, full=verify)
                return cls(p, m, checkpoint)
            except IndexFormatError:
                # a writer may have replaced the manifest and removed the files of the version
                # just read; that is a newer version to open, not a damaged index
                attempts -= 1
                if attempts == 0 or read_manifest(p).version == m.version:
                    raise

    def __len__(self) -> int:
        """Objects the index can return (deleted ones excluded)."""
        return self.manifest.count - len(self.deleted)

    def warmup(self, model: bool = True) -> None:
        """Load what the first query would (model, compiled kernels), so it is not timed."""
        from .exact import warmup

        warmup()
        if model:
            # one tiny forward pass: the first call into torch pays its lazy initialisation
            size = self.embedder.model_config.image_size
            self.embedder.embed(np.zeros((1, size, size, 3), np.uint8))

    # ------------------------------------------------------------------ model

    @property
    def embedder(self) -> Any:
        with self._lock:
            if self._embedder is None:
                self._embedder = self._load_embedder()
            return self._embedder

    def _load_embedder(self) -> Any:
        from ..model import load_checkpoint

        want = (self.manifest.model or {}).get("sha256")
        if self._checkpoint is not None:
            emb = load_checkpoint(self._checkpoint)
            if want and emb.sha256 != want:
                raise CheckpointError(
                    f"{self._checkpoint}: checkpoint does not match the index {self.path} "
                    f"(weights sha256 {emb.sha256[:12]}…, index built with {want[:12]}…)"
                )
            return emb
        model_dir = self.path / MODEL_DIR
        if not model_dir.is_dir():
            raise CheckpointError(
                f"{self.path}: index has no model copy (built from shards); give the checkpoint it was embedded with to embed query images"
            ).resolved_by("checkpoint")
        emb = load_checkpoint(model_dir)
        if want and emb.sha256 != want:
            raise CheckpointError(f"{model_dir}: model weights do not match the index manifest (sha256 {emb.sha256[:12]}… vs {want[:12]}…)")
        return emb

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        """Embed images (paths or uint8 arrays) with the index's model: (B, D) float32."""
        from ..catalog.images import read_image, to_uint8_rgb

        arrays = []
        for im in images:
            if isinstance(im, (str, Path)):
                arrays.append(read_image(im))
            else:
                try:
                    arrays.append(to_uint8_rgb(np.asarray(im)))
                except ValueError as e:
                    raise QueryError(f"query image: {e}") from None
        return np.asarray(self.embedder.embed(arrays), dtype=np.float32)

    # ------------------------------------------------------------------ lookups

    def position_of(self, object_id: str) -> int:
        with self._lock:
            pos = self.object_ids.position(str(object_id))
        if pos is None:
            raise QueryError(f"object id {object_id!r} is not in the index {self.path}")
        if self._dead[pos]:
            raise QueryError(f"object id {object_id!r} was deleted from the index {self.path}")
        return pos

    def position_at(self, ra: Any, dec: Any = None, radius_arcsec: float = 10.0) -> tuple[int, float]:
        """(position, separation in arcsec) of the live catalog object nearest a sky position
        (a ``SkyCoord``, a string, or RA/Dec in degrees or sexagesimal; :func:`parse_sky`)."""
        coord = parse_sky(ra, dec)
        return self.sky_matcher().nearest(coord, float(radius_arcsec))

    def sky_matcher(self) -> SkyMatcher:
        """The catalog's positions (live rows with coordinates) with astropy's KD-tree, built once."""
        with self._lock:
            if self._sky is None:
                names = self.table.column_names
                if "ra" not in names or "dec" not in names:
                    raise QueryError(f"{self.path}: the catalog has no ra/dec columns; query by image or object id").resolved_by("image", "object_id")
                ra, dec = self._radec()
                self._sky = SkyMatcher(ra, dec, allowed=~self._dead)  # a deleted object is not there to be found
            return self._sky

    def cone(self, ra: Any, dec: Any = None, radius_arcsec: float = 60.0) -> Any:
        """The live catalog objects within ``radius_arcsec`` of a sky position, nearest first,
        as an astropy Table (object_id, row, separation in arcsec, metadata with units), found
        with astropy's ``search_around_sky`` on the index's KD-tree."""
        from .hits import astropy_table

        coord = parse_sky(ra, dec)
        if not (np.isfinite(radius_arcsec) and radius_arcsec > 0):
            raise QueryError(f"radius {radius_arcsec} arcsec must be > 0")
        pos, sep = self.sky_matcher().around(coord, float(radius_arcsec))
        t = self.table.take(pa.array(pos.astype(np.int64)))
        t = t.add_column(2, "separation_arcsec", pa.array(sep, pa.float64()))
        return astropy_table(t, {"ra": float(coord.ra.deg), "dec": float(coord.dec.deg), "radius_arcsec": float(radius_arcsec)})

    def metadata(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        sub = self.table.take(pa.array(np.asarray(positions, dtype=np.int64)))
        recs = sub.to_pylist()
        for r in recs:
            r.pop("object_id", None)
            r.pop("row", None)
        return recs

    # ------------------------------------------------------------------ search

    def _check_k(self, k: int, refine: int, excluding: bool) -> None:
        avail = len(self) - (1 if excluding else 0)
        if k < 1:
            raise QueryError(f"k must be ≥ 1, got {k}")
        if k > avail:
            raise QueryError(f"k={k} is larger than the {avail} objects the index can return")
        if refine < 1:
            raise QueryError(f"refine must be ≥ 1, got {refine}")

    def select(self, where: str) -> np.ndarray:
        """Positions (sorted) of the live rows matching the SQL condition ``where`` over the
        metadata columns, e.g. ``"label = 3 AND redshift < 0.05"`` (DuckDB's SQL)."""
        return self._selection(where).positions  # type: ignore[union-attr]

    def _selection(self, where: str | None) -> _Selection | None:
        if where is None:
            return self._live
        with self._lock:
            hit = self._filters.get(where)
            if hit is not None:
                self._filters.move_to_end(where)
                return hit
        pos = select_positions(self.table, where, label_names=self.label_names)
        sel = _Selection(pos[~self._dead[pos]], self.manifest.count)
        with self._lock:  # repeated filters (a web form, a batch) are selected once
            self._filters[where] = sel
            while len(self._filters) > _CACHED_FILTERS:
                self._filters.popitem(last=False)
        return sel

    def _scan(self, xq: np.ndarray, k: int, positions: np.ndarray | None, least: bool = False) -> np.ndarray:
        """Exact top-k (bottom-k) positions, over every row or over ``positions`` only."""
        from .exact import exact_knn

        if positions is None:
            return exact_knn(xq, self.vectors, k, self.weights, least=least)[1]
        step = max(1, (1 << 24) // max(1, self.manifest.dim))  # ~64 MB of float32 per block
        blocks = (self.vectors[positions[lo : lo + step]] for lo in range(0, len(positions), step))
        return exact_knn(xq, blocks, k, self.weights, ids=positions, least=least)[1]

    def _candidates(
        self, xq: np.ndarray, kk: int, refine: int, exact: bool, least: bool, sel: _Selection | None, nprobe: int | None, ef_search: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-kk (bottom-kk with ``least``) of each query among the selection, reranked exactly."""
        from .exact import rerank

        small = sel is not None and len(sel.positions) * self.manifest.dim <= self.exact_scan_elements
        if least:
            # no index shortlists the farthest objects: scan, then score the kk found
            cand = self._scan(xq, kk, None if sel is None else sel.positions, least=True)
            scores, pos, terms = rerank(xq, cand, self.vectors, kk, self.weights)
            return _least_first(scores, pos, terms)
        if exact or small:
            cand = self._scan(xq, kk, None if sel is None else sel.positions)
            scores, pos, terms = rerank(xq, cand.astype(np.int64), self.vectors, kk, self.weights)
        else:
            from .shortlist import shortlist_rerank

            if sel is not None:
                nprobe, ef_search = self._filtered_knobs(len(sel.positions), nprobe, ef_search)
            try:
                params = search_params(self.index, nprobe=nprobe, ef_search=ef_search, sel=None if sel is None else sel.selector())
            except ConfigError as e:
                raise QueryError(str(e)) from None
            # a filter's selection caps the candidates FAISS can return
            refine = min(refine, max(1, -(-len(sel.positions) // kk))) if sel is not None else refine
            scores, pos, terms = shortlist_rerank(
                self.index, self.vectors, xq, kk, refine, self.weights, metric="cosine" if self._cosine else "l2", params=params
            )
        if sel is not None and not (exact or small):
            short = (pos >= 0).sum(axis=1) < kk
            if short.any():  # refill from the exact scan of the selection
                xr = xq[short]
                scores[short], pos[short], terms[short] = rerank(xr, self._scan(xr, kk, sel.positions), self.vectors, kk, self.weights)
        return scores, pos, terms

    def _filtered_knobs(self, matched: int, nprobe: int | None, ef_search: int | None) -> tuple[int | None, int | None]:
        """The FAISS knobs for a selection of ``matched`` rows, a fraction f of the index:
        ``nprobe`` (``ef_search``) widened by 1/√f, capped at every list (every row).

        A query's k-th nearest selected row is about its (k/f)-th nearest row overall, so a
        probe as wide as the unfiltered one misses some: at 1M, 5 % selected, the index's
        nprobe 256 recalled 0.986 of the top 10 (benchmarks/README.md §5). Widening by 1/f
        scores as many selected vectors as an unfiltered query scores vectors, but overpays:
        recall was already 1.0 at twice the width (20× is 1/f), and every list opened costs a
        membership test per stored row (the bitmap): 14 ms for all 4096 lists there against
        5 ms for 1024, one thread. 1/√f (4.5× at 5 %, 1.4× at 50 %) met recall@10 ≥ 0.99 and
        p50 ≤ 10 ms at 50 %, 5 % and 0.1 % with the index's nprobe 128 or 256."""
        f = max(matched, 1) / max(self.manifest.count, 1)
        if f >= 1.0 or not self.scale_filtered_probe:
            return nprobe, ef_search
        widen = 1.0 / math.sqrt(f)
        if self._ivf is not None:
            nlist, default = self._ivf
            nprobe = min(nlist, math.ceil((nprobe if nprobe is not None else default) * widen))
        if self._hnsw_ef is not None:
            ef_search = min(self.manifest.count, math.ceil((ef_search if ef_search is not None else self._hnsw_ef) * widen))
        return nprobe, ef_search

    def search_vectors(
        self,
        xq: np.ndarray,
        k: int = 10,
        refine: int = 10,
        exact: bool = False,
        exclude: Sequence[int] | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        where: str | None = None,
        least: bool = False,
        min_separation_arcsec: float | None = None,
        positions: Sequence[tuple[float, float] | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k of each query vector: (scores (nq, k), positions (nq, k), terms (nq, k, 3)).

        ``exclude[i]`` is a position to leave out of query i's results (the query object).
        ``where`` keeps the rows matching this SQL condition; with fewer than k of them the
        rows past the last are padding (position −1, score −inf). ``least`` returns the k
        least similar (an exact scan). ``min_separation_arcsec`` drops a hit within that
        angle of the query's sky position (``positions[i]``, if any) or of a better hit, and
        refills the list from further down (duplicate cutouts of one object)."""
        xq = np.ascontiguousarray(np.atleast_2d(xq), dtype=np.float32)
        if xq.shape[1] != self.manifest.dim:
            raise QueryError(f"query vectors have dimension {xq.shape[1]}, the index has {self.manifest.dim}")
        nq = len(xq)
        extra = 1 if exclude is not None else 0
        if where is None:
            self._check_k(k, refine, exclude is not None)
        elif k < 1 or refine < 1:  # a filter may match fewer than k rows: those are the answer, not an error
            raise QueryError(f"k and refine must be ≥ 1, got k={k}, refine={refine}")
        sky = None
        if min_separation_arcsec is not None:
            if not (np.isfinite(min_separation_arcsec) and min_separation_arcsec > 0):
                raise QueryError(f"minimum separation {min_separation_arcsec!r} arcsec must be > 0")
            sky = self._radec()
        sel = self._selection(where)
        avail = self.manifest.count if sel is None else len(sel.positions)
        out_s = np.full((nq, k), -np.inf, np.float32)
        out_p = np.full((nq, k), -1, np.int64)
        out_t = np.full((nq, k, 3), np.nan, np.float32)
        todo = np.arange(nq)
        kk = min(avail, k + extra if sky is None else 2 * (k + extra))
        while len(todo) and kk > 0:
            scores, pos, terms = self._candidates(xq[todo], kk, refine, exact, least, sel, nprobe, ef_search)
            if exclude is not None:
                from .topk import leave_out

                pos, scores, terms = leave_out(np.asarray(exclude, np.int64)[todo], pos, scores, terms, k=pos.shape[1])
            short = []
            for j, i in enumerate(todo):
                keep = np.flatnonzero(pos[j] >= 0)
                if sky is not None:
                    keep = _spread(keep, pos[j], sky, None if positions is None else positions[i], float(min_separation_arcsec))  # type: ignore[arg-type]
                    if len(keep) < k and kk < avail:
                        short.append(i)  # dropped too many: look further down the list
                        continue
                keep = keep[:k]
                n = len(keep)
                out_s[i, :n], out_p[i, :n], out_t[i, :n] = scores[j, keep], pos[j, keep], terms[j, keep]
            todo = np.asarray(short, np.int64)
            kk = min(avail, kk * 4)
        return out_s, out_p, out_t

    def _radec(self) -> tuple[np.ndarray, np.ndarray]:
        names = self.table.column_names
        if "ra" not in names or "dec" not in names:
            raise QueryError(f"{self.path}: the catalog has no ra/dec columns, so hits cannot be separated on the sky")
        return self._sky_columns()

    def _sky_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """RA and Dec in degrees, NaN where a value is missing, not a number or out of range
        (an index built before catalogs were checked may hold text there)."""
        from .sky import coordinates

        ra, _ = coordinates(self.table.column("ra"), "ra")
        dec, _ = coordinates(self.table.column("dec"), "dec")
        return ra, dec

    def _hits(self, scores: np.ndarray, pos: np.ndarray, terms: np.ndarray, percentiles: bool = True) -> Hits:
        valid = pos >= 0
        p = pos[valid]
        meta = self.metadata(p)
        sc = scores[valid]
        pct = self.reference.percentile(sc) if (self.reference is not None and percentiles) else [None] * len(sc)
        hits = Hits(searcher=self)
        for r, (i, s, t, md, q) in enumerate(zip(p, sc, terms[valid], meta, pct), start=1):
            hits.append(Hit(r, self.object_ids[i], int(self.rows[i]), float(s), float(t[0]), float(t[1]), float(t[2]), md, None if q is None else round(float(q), 4)))
        return hits

    def query(
        self,
        image: Any = None,
        *,
        object_id: str | None = None,
        ra: Any = None,
        dec: Any = None,
        coord: Any = None,
        k: int = 10,
        refine: int = 10,
        radius_arcsec: float = 10.0,
        exact: bool = False,
        nprobe: int | None = None,
        ef_search: int | None = None,
        where: str | None = None,
        order: str = "most",
        min_separation_arcsec: float | None = None,
    ) -> Hits:
        """The k most similar catalog objects to one query (give exactly one kind of query).

        A sky position is ``coord`` (an astropy ``SkyCoord``, any frame) or ``ra`` and ``dec``
        (degrees, or sexagesimal strings: RA in hours); the nearest catalog object within
        ``radius_arcsec`` is the query.

        ``where``: only objects matching this SQL condition over the metadata columns, e.g.
        ``"label = 3 AND redshift < 0.05"``; fewer than k hits when fewer match.
        ``order="least"``: the k least similar instead (an exact scan), least first.
        ``min_separation_arcsec``: drop a hit within that angle of the query object or of a
        better hit (another cutout of the same galaxy) and refill the list."""
        given = [image is not None, object_id is not None, ra is not None or dec is not None or coord is not None]
        if sum(given) != 1 or (coord is not None and (ra is not None or dec is not None)):
            raise QueryError("give exactly one of: an image, an object id, or a sky position (coord, or ra and dec)")
        if given[2] and coord is None and (ra is None or dec is None):
            raise QueryError("a sky position needs both ra and dec")
        if order not in ("most", "least"):
            raise QueryError(f"order must be 'most' or 'least', got {order!r}")
        if where is not None:
            self._selection(where)  # a bad filter is reported before the model is loaded
        kw = dict(nprobe=nprobe, ef_search=ef_search, where=where, least=order == "least", min_separation_arcsec=min_separation_arcsec)
        if image is not None:
            if where is None:
                self._check_k(k, refine, False)
            xq = self.embed([image])
            return self._hits(*(a[0] for a in self.search_vectors(xq, k, refine, exact, **kw)))  # type: ignore[arg-type]
        if object_id is not None:
            pos = self.position_of(object_id)
        else:
            pos = self.position_at(coord if coord is not None else ra, None if coord is not None else dec, radius_arcsec)[0]
        if where is None:
            self._check_k(k, refine, True)
        xq = np.asarray(self.vectors[pos : pos + 1], dtype=np.float32)
        here = None
        if min_separation_arcsec is not None:
            r, d = self._radec()
            here = [(float(r[pos]), float(d[pos])) if np.isfinite(r[pos]) and np.isfinite(d[pos]) else None]
        res = self.search_vectors(xq, k, refine, exact, exclude=[pos], positions=here, **kw)  # type: ignore[arg-type]
        return self._hits(*(a[0] for a in res))

    def query_vector(
        self,
        vector: Any,
        *,
        k: int = 10,
        refine: int = 10,
        exact: bool = False,
        where: str | None = None,
        order: str = "most",
        min_separation_arcsec: float | None = None,
    ) -> Hits:
        """The k most similar catalog objects to one embedding ``vector`` (length = the index's
        dimension), e.g. one computed elsewhere with the same model; options as :meth:`query`."""
        if order not in ("most", "least"):
            raise QueryError(f"order must be 'most' or 'least', got {order!r}")
        xq = np.asarray(vector, dtype=np.float32)
        if xq.ndim != 1 or not np.isfinite(xq).all():
            raise QueryError(f"a query vector is one list of {self.manifest.dim} finite numbers")
        res = self.search_vectors(xq[None], k, refine, exact, where=where, least=order == "least", min_separation_arcsec=min_separation_arcsec)
        return self._hits(*(a[0] for a in res))

    def query_sky(
        self,
        ra: Any,
        dec: Any = None,
        *,
        k: int = 10,
        refine: int = 10,
        radius_arcsec: float = 10.0,
        exact: bool = False,
        fetch: Any = None,
        cache_dir: str | Path | None = None,
        http: Any = None,
        where: str | None = None,
        order: str = "most",
        min_separation_arcsec: float | None = None,
    ) -> SkyHits:
        """Neighbours of what is at (ra, dec): the nearest catalog object within the radius,
        or, when there is none and ``fetch`` (a :class:`~galaxy_retrieval.fetch.CutoutSpec`)
        is given, the survey cutout at that position downloaded into ``cache_dir`` (default
        ``~/.cache/galaxy-retrieval/cutouts``) and searched as an image.

        The position is a ``SkyCoord``, one string (``"09h52m12s +02d09m15s"``, ``"148.05
        2.154"``) or RA and Dec (degrees, or sexagesimal strings with RA in hours).

        Fetch a cutout like the catalog's images (same survey, size and pixel scale), since
        the query goes through the same preprocessing as the catalog did."""
        coord = parse_sky(ra, dec)
        ra, dec = float(coord.ra.deg), float(coord.dec.deg)
        try:
            pos, sep = self.position_at(coord, radius_arcsec=radius_arcsec)
        except QueryError as e:
            if fetch is None:
                raise
            why = str(e)
        else:
            oid = self.object_ids[pos]
            hits = self.query(object_id=oid, k=k, refine=refine, exact=exact, where=where, order=order, min_separation_arcsec=min_separation_arcsec)
            return SkyHits(hits, ra, dec, oid, sep)
        from ..fetch import HttpConfig, fetch_cutout

        path = fetch_cutout(ra, dec, fetch, cache_dir, http or HttpConfig())
        hits = self.query(image=path, k=k, refine=refine, exact=exact, where=where, order=order, min_separation_arcsec=min_separation_arcsec)
        return SkyHits(hits, ra, dec, None, None, path, why)

    def query_batch(
        self,
        images: Sequence[Any],
        k: int = 10,
        refine: int = 10,
        exact: bool = False,
        nprobe: int | None = None,
        ef_search: int | None = None,
        where: str | None = None,
        order: str = "most",
        min_separation_arcsec: float | None = None,
    ) -> list[Hits]:
        """Several query images as one batch: one model call, one FAISS search, one rerank."""
        if order not in ("most", "least"):
            raise QueryError(f"order must be 'most' or 'least', got {order!r}")
        if len(images) == 0:
            return []
        if where is None:
            self._check_k(k, refine, False)
        else:
            self._selection(where)
        xq = self.embed(images)
        s, p, t = self.search_vectors(
            xq, k, refine, exact, nprobe=nprobe, ef_search=ef_search, where=where, least=order == "least", min_separation_arcsec=min_separation_arcsec
        )
        return [self._hits(s[i], p[i], t[i]) for i in range(len(images))]

    def query_examples(
        self,
        positive: Sequence[Any],
        negative: Sequence[Any] = (),
        *,
        k: int = 10,
        refine: int = 10,
        exact: bool = False,
        where: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> Hits:
        """Objects like all of ``positive`` and unlike ``negative``.

        Each example is a catalog object id (a ``str``) or an image (a ``Path`` or a uint8
        array). Combination: FAISS shortlists ``k × refine`` candidates around the mean of the
        positives' embeddings; each candidate's score is its mean score to the positives minus
        its mean score to the negatives, and the top k by that score come back (``exact``: every
        row is scored so). A hit's ``score`` is that combination, its three terms the means
        over the positives. The examples given by id are never returned."""
        from .exact import score_terms

        if len(positive) == 0:
            raise QueryError("give at least one positive example (an object id or an image)")
        if k < 1:
            raise QueryError(f"k must be ≥ 1, got {k}")
        if where is not None:
            self._selection(where)
        xp, ex_p = self._example_vectors(positive)
        xn, ex_n = self._example_vectors(negative) if len(negative) else (np.empty((0, self.manifest.dim), np.float32), [])
        examples = set(ex_p) | set(ex_n)
        sel = self._selection(where)
        allowed = sel.positions if sel is not None else None
        avail = self.manifest.count if allowed is None else len(allowed)
        kk = min(avail, k + len(examples))
        if kk == 0:
            return Hits(searcher=self)
        if exact:
            cand = allowed if allowed is not None else np.arange(self.manifest.count)
        else:
            mean = xp.mean(axis=0, keepdims=True)
            _, pos, _ = self._candidates(mean, min(avail, kk * refine), 1, False, False, sel, nprobe, ef_search)
            cand = pos[0][pos[0] >= 0]
        w = np.array(self.weights.as_tuple(), np.float64)
        best_s: list[np.ndarray] = []
        best_p: list[np.ndarray] = []
        best_t: list[np.ndarray] = []
        step = max(1, (1 << 24) // max(1, self.manifest.dim))
        for lo in range(0, len(cand), step):  # blocks: an exact pass may cover every row
            c = np.asarray(cand[lo : lo + step], np.int64)
            rows = np.asarray(self.vectors[c])
            tp = np.stack(score_terms(xp, rows), axis=-1).astype(np.float64)  # (p, m, 3)
            score = (tp @ w).mean(axis=0)
            if len(xn):
                score = score - (np.stack(score_terms(xn, rows), axis=-1).astype(np.float64) @ w).mean(axis=0)
            best_s.append(score)
            best_p.append(c)
            best_t.append(tp.mean(axis=0))
        score, pos, terms = np.concatenate(best_s), np.concatenate(best_p), np.concatenate(best_t)
        keep = ~np.isin(pos, list(examples)) if examples else np.ones(len(pos), bool)
        score, pos, terms = score[keep], pos[keep], terms[keep]
        order = np.lexsort((pos, -score))[:k]  # score descending, ties → lower position
        # a combination of scores is no score of a pair: no percentile
        return self._hits(score[order].astype(np.float32), pos[order], terms[order].astype(np.float32), percentiles=False)

    def _example_vectors(self, examples: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
        """(vectors (n, D), positions of the examples given by id)."""
        vecs: list[np.ndarray | None] = []
        images: list[Any] = []
        positions: list[int] = []
        for e in examples:
            if isinstance(e, str):
                p = self.position_of(e)
                positions.append(p)
                vecs.append(np.asarray(self.vectors[p], np.float32))
            else:
                images.append(e)
                vecs.append(None)
        if images:
            emb = iter(self.embed(images))
            vecs = [v if v is not None else next(emb) for v in vecs]
        return np.stack(vecs).astype(np.float32), positions  # type: ignore[arg-type]

    # ------------------------------------------------------------------ outliers

    def outlier_scores(self, k: int = 50, refine: int = 1, progress: Any = None, cache: bool = True) -> np.ndarray:
        """Each object's score to its k-th nearest neighbour (NaN: deleted), computed once per
        index version and cached beside the index (:mod:`~galaxy_retrieval.search.outliers`);
        progress shows in a notebook by default."""
        from ..progress import default_progress
        from .outliers import outlier_scores

        with self._outlier_lock:
            return outlier_scores(self, k, refine, progress or default_progress(), cache)

    def outliers(self, n: int = 20, k: int = 50, *, refine: int = 1, where: str | None = None, progress: Any = None, cache: bool = True) -> Hits:
        """The ``n`` galaxies least like any other: the lowest scores to their k-th nearest
        neighbour, strangest first (an anomaly search; ``where`` filters the answer)."""
        from ..progress import default_progress
        from .outliers import outliers

        return outliers(self, n, k, refine, where, progress or default_progress(), cache)

    # ------------------------------------------------------------------ images of hits

    @property
    def label_names(self) -> dict[int, str] | None:
        """Class names of the catalog's integer labels, when it has them."""
        names = self.manifest.catalog.get("label_names")
        if names:
            return {int(k): v for k, v in names.items()}
        if self.manifest.catalog.get("kind") == "galaxy10-hdf5":
            from ..catalog.galaxy10 import GALAXY10_SHORT

            return dict(enumerate(GALAXY10_SHORT))
        return None

    def mosaic(self, hits: Sequence[Hit], query: Any = None, ncols: int = 5, tile: int = 200, crop: bool = True) -> Any:
        """The hits as a PIL image: a grid ``ncols`` wide, each tile cropped to its galaxy and
        captioned with rank, id, score, percentile and label. ``query`` (an object id, an image
        path or a uint8 array) comes first, outlined. ``.save("hits.png")`` writes it."""
        from ..catalog.images import read_image, to_uint8_rgb
        from ..viz.notebook import grid_mosaic, hit_caption

        names = self.label_names
        tiles: list[tuple[np.ndarray, str, str]] = []
        if query is not None:
            if isinstance(query, str) and self.object_ids.position(query) is not None:
                tiles.append((self.images_of([int(self.rows[self.position_of(query)])])[0], f"query {query}", ""))
            elif isinstance(query, (str, Path)):
                tiles.append((read_image(query), f"query {Path(query).name}", ""))
            else:
                tiles.append((to_uint8_rgb(np.asarray(query)), "query", ""))
        images = self.images_of([h.row for h in hits]) if len(hits) else []
        tiles += [(im, *hit_caption(h, names)) for h, im in zip(hits, images)]
        if not tiles:
            raise QueryError("no hits to draw")
        return grid_mosaic(tiles, ncols=ncols, tile=tile, highlight_first=query is not None, crop=crop, title=getattr(hits, "query", None))

    def images_of(self, rows: Sequence[int]) -> list[np.ndarray]:
        """Catalog images at these catalog rows (for mosaics); needs the source catalog."""
        from ..catalog import open_catalog

        with self._lock:
            if self._catalog is None:
                src = self.manifest.catalog.get("path")
                if not src or not Path(src).exists():
                    raise QueryError(f"the catalog this index was built from ({src}) is not available, so hit images cannot be shown")
                self._catalog = open_catalog(src)
            batch = self._catalog.get_batch(list(rows))
        return list(batch.images)


def _least_first(scores: np.ndarray, pos: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's real entries (reranked, best first) reversed: least similar first."""
    out = (scores.copy(), pos.copy(), terms.copy())
    for i in range(len(pos)):
        n = int((pos[i] >= 0).sum())
        for a, src in zip(out, (scores, pos, terms)):
            a[i, :n] = src[i, :n][::-1]
    return out


def _spread(keep: np.ndarray, pos: np.ndarray, sky: tuple[np.ndarray, np.ndarray], query: tuple[float, float] | None, min_sep: float) -> np.ndarray:
    """The entries of ``keep`` (in rank order) at least ``min_sep`` arcsec from the query's
    position and from every better entry kept; objects without coordinates are kept."""
    from .sky import angular_separation_arcsec

    ra, dec = sky
    taken_ra: list[float] = [] if query is None else [float(query[0])]
    taken_dec: list[float] = [] if query is None else [float(query[1])]
    out = []
    for j in keep:
        r, d = ra[pos[j]], dec[pos[j]]
        if np.isfinite(r) and np.isfinite(d):
            if taken_ra and angular_separation_arcsec(r, d, np.asarray(taken_ra), np.asarray(taken_dec)).min() < min_sep:
                continue
            taken_ra.append(float(r))
            taken_dec.append(float(d))
        out.append(j)
    return np.asarray(out, np.int64)


def _faiss_knobs(index: Any) -> tuple[tuple[int, int] | None, int | None]:
    """((nlist, default nprobe) of an inverted file, default efSearch of an HNSW graph), each
    None when the index is not of that kind (behind a PCA/OPQ transform or not)."""
    import faiss

    base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else faiss.downcast_index(index)
    ivf = faiss.try_extract_index_ivf(base) if hasattr(faiss, "try_extract_index_ivf") else None
    hnsw = getattr(base, "hnsw", None)
    return ((int(ivf.nlist), int(ivf.nprobe)) if ivf is not None else None), (int(hnsw.efSearch) if hnsw is not None else None)


def _advise_random(vectors: np.ndarray) -> None:
    """Tell the kernel that reranking reads scattered rows: without it, Linux readahead turns
    each cold 8 KB row into megabytes of reads (measured 4.9 ms vs 0.22 ms per row,
    benchmarks/README.md) once the vectors no longer fit in the page cache."""
    import mmap

    m = getattr(vectors, "_mmap", None)
    if m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        try:
            m.madvise(mmap.MADV_RANDOM)
        except OSError:  # advice only; some filesystems refuse it
            pass
