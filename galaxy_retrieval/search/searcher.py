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

Every query method takes the search settings as one :class:`SearchOptions` (``options=``)
and/or as keywords folded into it (``k=``, ``refine=``, ``exact=``, ``nprobe=``,
``ef_search=``, ``where=``, ``order=``, ``min_separation_arcsec=``; see
:mod:`~galaxy_retrieval.search.options`).

Safe to share between threads: lazy loading happens under a lock, and FAISS searches run
concurrently; per-call knobs (``nprobe``, ``ef_search``) travel as FAISS search parameters
of that call only (:mod:`~galaxy_retrieval.search.knobs`), never as changes to the shared
index (which raced: other threads saw the knob, and FAISS read out of bounds).

Deleted rows and ``where=`` filters restrict every query path the same way
(:mod:`~galaxy_retrieval.search.selection`). A query's candidates (exact scan, or FAISS
shortlist and exact rerank) come from :mod:`~galaxy_retrieval.search.candidates`; the files
of the version opened are loaded by :mod:`~galaxy_retrieval.search.opening`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import QueryError
from ..index.filters import select_positions
from ..index.manifest import Manifest
from ..index.reference import ScoreReference
from ..index.vectors import open_vectors
from ..progress import Progress, default_progress
from ..score import ScoreWeights
from .candidates import Result, candidates, fill_top_k
from .embedding import IndexModel
from .exact import advise_random
from .examples import example_vectors, rank_by_examples
from .hits import Hit, Hits, SkyHits
from .knobs import FaissKnobs
from .kth_neighbour import check_n, outlier_scores, rank_outliers
from .opening import load_faiss, open_lookup, open_version, read_deleted
from .options import SearchOptions, search_options
from .selection import FilterCache, Selection
from .sky import SkyMatcher, parse_sky

__all__ = ["GalaxySearcher"]


# A selection (filter ∩ live rows) of at most this many stored numbers (rows × dimension) is
# scanned exactly instead of searched with FAISS: 2²³ floats are 32 MB, a few ms to read,
# and the scan has recall 1 where an IVF probe of a sparse selection finds few of its rows.
EXACT_SCAN_ELEMENTS = 1 << 23
_CACHED_FILTERS = 32


class GalaxySearcher:
    # selections of at most this many stored numbers are scanned exactly (instance-settable)
    exact_scan_elements: int = EXACT_SCAN_ELEMENTS
    # widen the FAISS probe of a filtered query by 1/√(fraction selected) (off: the knobs as given,
    # e.g. for benchmarks/filtered_query.py's sweep)
    scale_filtered_probe: bool = True

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        checkpoint: str | Path | None = None,
        precision: str | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.weights = ScoreWeights.from_dict(manifest.score_weights)
        # scores of random catalog pairs: a hit's percentile among them (None: an older index)
        self.reference = ScoreReference.from_manifest(manifest.extra)
        self.model = IndexModel(path, manifest, checkpoint, precision)  # loaded on first use
        # one outlier pass at a time: two requests would both compute it and write one cache file
        self._outlier_lock = threading.Lock()
        # the files of the manifest's version: a write makes new ones, so this searcher keeps
        # answering from the version it opened (opening.py); the version's rows only: an add
        # may be appending after them right now (vectors.py)
        self.vectors = open_vectors(
            path, manifest.vectors, manifest.count, manifest.dim, manifest.vectors_file
        )
        advise_random(self.vectors)
        self.index = load_faiss(path, manifest)
        # the index's stored nprobe / efSearch: where every call's FAISS parameters start
        self.knobs = FaissKnobs.of(self.index)
        self.deleted, dead = read_deleted(path, manifest)
        # None: every row may be returned (the plain, unselected FAISS search)
        self._live = Selection(np.flatnonzero(~dead), manifest.count) if len(self.deleted) else None
        self._cosine = (manifest.faiss or {}).get("metric") == "cosine"
        self.lookup = open_lookup(path, manifest, dead)  # shards checked against the manifest's model
        self.table: pa.Table = self.lookup.table
        self.object_ids = self.lookup.object_ids
        self.rows: np.ndarray = self.lookup.rows
        self._filters = FilterCache(
            lambda where: select_positions(self.table, where, label_names=self.label_names),
            dead,
            _CACHED_FILTERS,
        )

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path,
        checkpoint: str | Path | None = None,
        verify: bool | None = None,
        precision: str | None = None,
    ) -> GalaxySearcher:
        """Open an index directory, verifying it against its manifest.

        ``verify``: True hashes every file, False checks sizes only, None (default) hashes
        when the index is under 2 GiB. ``checkpoint`` overrides the model copy inside the
        index; it must be the checkpoint the index was built with. ``precision`` (``auto``,
        ``fp32``, ``bf16``) of query embedding; None: the one the index's vectors were made in
        (its manifest's model entry).
        """
        return open_version(Path(path), verify, lambda p, m: cls(p, m, checkpoint, precision))

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

    # ------------------------------------------------------------------ model (embedding.py)

    @property
    def embedder(self) -> Any:
        return self.model.embedder

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        """Embed images (paths or uint8 arrays) with the index's model: (B, D) float32."""
        return self.model.embed(images)

    # ------------------------------------------------------------------ the catalog (lookup.py)

    def position_of(self, object_id: str) -> int:
        return self.lookup.position_of(object_id)

    def position_at(self, ra: Any, dec: Any = None, radius_arcsec: float = 10.0) -> tuple[int, float]:
        """(position, separation in arcsec) of the live catalog object nearest a sky position
        (a ``SkyCoord``, a string, or RA/Dec in degrees or sexagesimal; :func:`parse_sky`)."""
        return self.lookup.position_at(ra, dec, radius_arcsec)

    def sky_matcher(self) -> SkyMatcher:
        """The catalog's positions (live rows with coordinates) with astropy's KD-tree, built once."""
        return self.lookup.sky_matcher()

    def cone(self, ra: Any, dec: Any = None, radius_arcsec: float = 60.0) -> Any:
        """The live catalog objects within ``radius_arcsec`` of a sky position, nearest first,
        as an astropy Table (object_id, row, separation in arcsec, metadata with units), found
        with astropy's ``search_around_sky`` on the index's KD-tree."""
        return self.lookup.cone(ra, dec, radius_arcsec)

    def metadata(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        return self.lookup.metadata(positions)

    @property
    def label_names(self) -> dict[int, str] | None:
        """Class names of the catalog's integer labels, when it has them."""
        return self.lookup.label_names

    def images_of(self, rows: Sequence[int]) -> list[np.ndarray]:
        """Catalog images at these catalog rows (for mosaics); needs the source catalog."""
        return self.lookup.images_of(rows)

    def mosaic(
        self, hits: Sequence[Hit], query: Any = None, ncols: int = 5, tile: int = 200, crop: bool = True
    ) -> Any:
        """The hits as a PIL image: a grid ``ncols`` wide, each tile cropped to its galaxy and
        captioned with rank, id, score, percentile and label. ``query`` (an object id, an image
        path or a uint8 array) comes first, outlined. ``.save("hits.png")`` writes it."""
        return self.lookup.mosaic(hits, query, ncols, tile, crop)

    # ------------------------------------------------------------------ search

    def _check_k(self, k: int, excluding: bool) -> None:
        avail = len(self) - (1 if excluding else 0)
        if k > avail:
            raise QueryError(f"k={k} is larger than the {avail} objects the index can return")

    def select(self, where: str) -> np.ndarray:
        """Positions (sorted) of the live rows matching the SQL condition ``where`` over the
        metadata columns, e.g. ``"label = 3 AND redshift < 0.05"`` (DuckDB's SQL)."""
        return self._filters.get(where).positions

    def _selection(self, where: str | None) -> Selection | None:
        return self._live if where is None else self._filters.get(where)

    def search_knobs(
        self, options: SearchOptions | None = None, matched: int | None = None
    ) -> tuple[int | None, int | None]:
        """(nprobe, ef_search) a FAISS search runs with: the options', else the index's stored
        ones, widened for a selection of ``matched`` rows (:meth:`FaissKnobs.for_call`)."""
        return self.knobs.for_call(options or SearchOptions(), matched, self.scale_filtered_probe)

    def _candidates(self, xq: np.ndarray, kk: int, opts: SearchOptions, sel: Selection | None) -> Result:
        """Top-kk (bottom-kk with ``order="least"``) of each query among the selection, reranked
        exactly (:func:`~galaxy_retrieval.search.candidates.candidates`)."""
        return candidates(self, xq, kk, opts, sel, "cosine" if self._cosine else "l2")

    def search_vectors(
        self,
        xq: np.ndarray,
        options: SearchOptions | None = None,
        *,
        exclude: Sequence[int] | None = None,
        positions: Sequence[tuple[float, float] | None] | None = None,
        **overrides: Any,
    ) -> Result:
        """Top-k of each query vector: (scores (nq, k), positions (nq, k), terms (nq, k, 3)).

        ``exclude[i]`` is a position to leave out of query i's results (the query object).
        ``where`` keeps the rows matching this SQL condition; with fewer than k of them the
        rows past the last are padding (position −1, score −inf). ``order="least"`` returns
        the k least similar (an exact scan). ``min_separation_arcsec`` drops a hit within that
        angle of the query's sky position (``positions[i]``, if any) or of a better hit, and
        refills the list from further down (duplicate cutouts of one object)."""
        opts = search_options(options, overrides)
        xq = np.ascontiguousarray(np.atleast_2d(xq), dtype=np.float32)
        if xq.shape[1] != self.manifest.dim:
            raise QueryError(f"query vectors have dimension {xq.shape[1]}, the index has {self.manifest.dim}")
        if opts.where is None:  # a filter may match fewer than k rows: those are the answer, not an error
            self._check_k(opts.k, exclude is not None)
        sky = self.lookup.radec() if opts.min_separation_arcsec is not None else None
        sel = self._selection(opts.where)
        return fill_top_k(
            lambda x, kk: self._candidates(x, kk, opts, sel),
            xq,
            opts.k,
            self.manifest.count if sel is None else len(sel),
            exclude=exclude,
            sky=sky,
            positions=positions,
            min_separation_arcsec=opts.min_separation_arcsec,
        )

    def make_hits(
        self, scores: np.ndarray, pos: np.ndarray, terms: np.ndarray, percentiles: bool = True
    ) -> Hits:
        """Hits of one query's (scores, positions, terms); padding (position −1) dropped."""
        valid = pos >= 0
        p = pos[valid]
        meta = self.metadata(p)
        sc = scores[valid]
        pct = (
            self.reference.percentile(sc)
            if (self.reference is not None and percentiles)
            else [None] * len(sc)
        )
        hits = Hits(searcher=self)
        for r, (i, s, t, md, q) in enumerate(zip(p, sc, terms[valid], meta, pct), start=1):
            hits.append(
                Hit(
                    r,
                    self.object_ids[i],
                    int(self.rows[i]),
                    float(s),
                    float(t[0]),
                    float(t[1]),
                    float(t[2]),
                    md,
                    None if q is None else round(float(q), 4),
                )
            )
        return hits

    # ------------------------------------------------------------------ queries

    def query(
        self,
        image: Any = None,
        *,
        object_id: str | None = None,
        ra: Any = None,
        dec: Any = None,
        coord: Any = None,
        radius_arcsec: float = 10.0,
        options: SearchOptions | None = None,
        **overrides: Any,
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
        opts = search_options(options, overrides)
        given = [
            image is not None,
            object_id is not None,
            ra is not None or dec is not None or coord is not None,
        ]
        if sum(given) != 1 or (coord is not None and (ra is not None or dec is not None)):
            raise QueryError(
                "give exactly one of: an image, an object id, or a sky position (coord, or ra and dec)"
            )
        if given[2] and coord is None and (ra is None or dec is None):
            raise QueryError("a sky position needs both ra and dec")
        if opts.where is not None:
            self._selection(opts.where)  # a bad filter is reported before the model is loaded
        if image is not None:
            if opts.where is None:
                self._check_k(opts.k, False)
            return _one(self, self.search_vectors(self.embed([image]), opts))
        if object_id is not None:
            pos = self.position_of(object_id)
        else:
            pos = self.position_at(
                coord if coord is not None else ra, None if coord is not None else dec, radius_arcsec
            )[0]
        return self._query_position(pos, opts)

    def _query_position(self, pos: int, opts: SearchOptions) -> Hits:
        """Neighbours of the catalog object at ``pos`` (itself left out)."""
        if opts.where is None:
            self._check_k(opts.k, True)
        xq = np.asarray(self.vectors[pos : pos + 1], dtype=np.float32)
        here = [self.lookup.position_radec(pos)] if opts.min_separation_arcsec is not None else None
        return _one(self, self.search_vectors(xq, opts, exclude=[pos], positions=here))

    def query_vector(self, vector: Any, *, options: SearchOptions | None = None, **overrides: Any) -> Hits:
        """The k most similar catalog objects to one embedding ``vector`` (length = the index's
        dimension), e.g. one computed elsewhere with the same model; options as :meth:`query`."""
        opts = search_options(options, overrides)
        xq = np.asarray(vector, dtype=np.float32)
        if xq.ndim != 1 or not np.isfinite(xq).all():
            raise QueryError(f"a query vector is one list of {self.manifest.dim} finite numbers")
        return _one(self, self.search_vectors(xq[None], opts))

    def query_sky(
        self,
        ra: Any,
        dec: Any = None,
        *,
        radius_arcsec: float = 10.0,
        fetch: Any = None,
        cache_dir: str | Path | None = None,
        http: Any = None,
        options: SearchOptions | None = None,
        **overrides: Any,
    ) -> SkyHits:
        """Neighbours of what is at (ra, dec): the nearest catalog object within the radius,
        or, when there is none and ``fetch`` (a :class:`~galaxy_retrieval.fetch.CutoutSpec`)
        is given, the survey cutout at that position downloaded into ``cache_dir`` (default
        ``~/.cache/galaxy-retrieval/cutouts``) and searched as an image.

        The position is a ``SkyCoord``, one string (``"09h52m12s +02d09m15s"``, ``"148.05
        2.154"``) or RA and Dec (degrees, or sexagesimal strings with RA in hours).

        Fetch a cutout like the catalog's images (same survey, size and pixel scale), since
        the query goes through the same preprocessing as the catalog did."""
        opts = search_options(options, overrides)
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
            return SkyHits(self.query(object_id=oid, options=opts), ra, dec, oid, sep)
        from ..fetch import HttpConfig, fetch_cutout

        path = fetch_cutout(ra, dec, fetch, cache_dir, http or HttpConfig())
        return SkyHits(self.query(image=path, options=opts), ra, dec, None, None, path, why)

    def query_batch(
        self, images: Sequence[Any], options: SearchOptions | None = None, **overrides: Any
    ) -> list[Hits]:
        """Several query images as one batch: one model call, one FAISS search, one rerank."""
        opts = search_options(options, overrides)
        if len(images) == 0:
            return []
        if opts.where is None:
            self._check_k(opts.k, False)
        else:
            self._selection(opts.where)
        s, p, t = self.search_vectors(self.embed(images), opts)
        return [self.make_hits(s[i], p[i], t[i]) for i in range(len(images))]

    def query_examples(
        self,
        positive: Sequence[Any],
        negative: Sequence[Any] = (),
        *,
        options: SearchOptions | None = None,
        **overrides: Any,
    ) -> Hits:
        """Objects like all of ``positive`` and unlike ``negative``.

        Each example is a catalog object id (a ``str``) or an image (a ``Path`` or a uint8
        array). Combination: FAISS shortlists ``k × refine`` candidates around the mean of the
        positives' embeddings; each candidate's score is its mean score to the positives minus
        its mean score to the negatives, and the top k by that score come back (``exact``: every
        row is scored so; :mod:`~galaxy_retrieval.search.examples`). A hit's ``score`` is that
        combination, its three terms the means over the positives. The examples given by id
        are never returned. ``order="least"`` and a minimum separation do not apply."""
        opts = search_options(options, overrides)
        if len(positive) == 0:
            raise QueryError("give at least one positive example (an object id or an image)")
        if opts.least or opts.min_separation_arcsec is not None:
            raise QueryError(
                "several examples rank by their combined score: the least similar and a minimum separation do not apply"
            )
        sel = self._selection(opts.where)  # a bad filter is reported before the model is loaded
        xp, ex_p = example_vectors(positive, self.position_of, self.vectors, self.embed)
        xn, ex_n = np.empty((0, self.manifest.dim), np.float32), []
        if len(negative):
            xn, ex_n = example_vectors(negative, self.position_of, self.vectors, self.embed)
        examples = set(ex_p) | set(ex_n)
        avail = self.manifest.count if sel is None else len(sel)
        kk = min(avail, opts.k + len(examples))
        if kk == 0:
            return Hits(searcher=self)
        if opts.exact:
            cand = sel.positions if sel is not None else np.arange(self.manifest.count)
        else:
            shortlist = dataclasses.replace(opts, refine=1)  # the k × refine candidates in one FAISS call
            _, pos, _ = self._candidates(
                xp.mean(axis=0, keepdims=True), min(avail, kk * opts.refine), shortlist, sel
            )
            cand = pos[0][pos[0] >= 0]
        score, pos, terms = rank_by_examples(xp, xn, self.vectors, cand, self.weights, opts.k, examples)
        # a combination of scores is no score of a pair: no percentile
        return self.make_hits(score, pos, terms, percentiles=False)

    # ------------------------------------------------------------------ outliers (kth_neighbour.py)

    def outlier_scores(
        self, k: int = 50, refine: int = 1, progress: Progress | None = None, cache: bool = True
    ) -> np.ndarray:
        """Each object's score to its k-th nearest neighbour (NaN: deleted), computed once per
        index version and cached beside the index (:mod:`~galaxy_retrieval.search.kth_neighbour`);
        progress shows in a notebook by default."""
        with self._outlier_lock:
            return outlier_scores(self, k, refine, progress or default_progress(), cache)

    def outliers(
        self,
        n: int = 20,
        k: int = 50,
        *,
        refine: int = 1,
        where: str | None = None,
        progress: Progress | None = None,
        cache: bool = True,
    ) -> Hits:
        """The ``n`` galaxies least like any other: the lowest scores to their k-th nearest
        neighbour, strangest first (an anomaly search; ``where`` filters the answer)."""
        check_n(n)
        sel = self.select(where) if where is not None else None  # a bad filter is refused before the pass
        scores = self.outlier_scores(k, refine, progress, cache)
        return rank_outliers(self, scores, n, k, refine, where, sel)


def _one(s: GalaxySearcher, res: Result) -> Hits:
    """The hits of a search of one query."""
    return s.make_hits(*(a[0] for a in res))
