"""`GalaxySearcher`: embed a query, shortlist with FAISS, rerank exactly, return hits.

    s = GalaxySearcher.open("indexes/demo")
    s.query(image="q.png", k=10)          # an image file or a uint8 array
    s.query(object_id="synth-000042")     # a catalog object (itself excluded)
    s.query(ra=150.1, dec=2.2)            # the nearest catalog object, then its neighbours
    s.query_sky(150.1, 2.2, fetch=CutoutSpec("legacy"))  # …or the survey's cutout there
    s.query_batch([im1, im2], k=10)       # several images, one model call

``refine`` is the shortlist factor: FAISS returns ``k × refine`` candidates, the exact score
re-orders them, and the top ``k`` are returned (LanceDB's ``refine_factor``). ``exact=True``
bypasses FAISS and scans every vector: the ground truth.

Safe to share between threads: lazy loading happens under a lock, and FAISS searches run
concurrently; per-call knobs (``nprobe``, ``ef_search``) travel as FAISS search parameters
of that call only, never as changes to the shared index (which raced: other threads saw
the knob, and FAISS read out of bounds).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..errors import CheckpointError, ConfigError, IndexFormatError, QueryError
from ..index.build import FAISS_FILE, MODEL_DIR, VECTORS_FILE
from ..index.candidates import load_faiss_index, search_params
from ..index.manifest import MANIFEST_NAME, Manifest, read_manifest
from ..index.shards import check_shard_models, read_shard_table
from ..score import ScoreWeights
from .hits import Hit, SkyHits
from .sky import check_position, nearest_on_sky

__all__ = ["GalaxySearcher"]

ImageLike = "str | Path | np.ndarray"


class GalaxySearcher:
    def __init__(self, path: Path, manifest: Manifest, checkpoint: str | Path | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.weights = ScoreWeights.from_dict(manifest.score_weights)
        self._checkpoint = checkpoint
        self._lock = threading.RLock()
        self._embedder: Any = None
        self._catalog: Any = None
        self._id_to_pos: dict[str, int] | None = None
        try:
            self.vectors = np.load(path / VECTORS_FILE, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"{path / VECTORS_FILE}: not a readable vector file ({e})") from None
        _advise_random(self.vectors)
        if self.vectors.shape != (manifest.count, manifest.dim):
            raise IndexFormatError(f"{path / VECTORS_FILE}: shape {self.vectors.shape}, manifest says {(manifest.count, manifest.dim)}")
        self.index = load_faiss_index(path / FAISS_FILE, manifest.faiss)
        if self.index.ntotal != manifest.count:
            raise IndexFormatError(f"{path / FAISS_FILE}: holds {self.index.ntotal} vectors, manifest says {manifest.count}")
        self._cosine = (manifest.faiss or {}).get("metric") == "cosine"
        # a shard embedded by another model than the manifest's would answer with a mix of two
        # models while every file still matches its digest
        check_shard_models([path / s.file for s in manifest.shards], (manifest.model or {}).get("sha256"), f"{path / MANIFEST_NAME}")
        tables = [read_shard_table(path / s.file, _meta_columns(path / s.file)) for s in manifest.shards]
        self.table: pa.Table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        self.object_ids: list[str] = self.table.column("object_id").to_pylist()
        self.rows: np.ndarray = self.table.column("row").to_numpy()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path, checkpoint: str | Path | None = None, verify: bool | None = None) -> "GalaxySearcher":
        """Open an index directory, verifying it against its manifest.

        ``verify``: True hashes every file, False checks sizes only, None (default) hashes
        when the index is under 2 GiB. ``checkpoint`` overrides the model copy inside the
        index; it must be the checkpoint the index was built with.
        """
        p = Path(path)
        m = read_manifest(p)
        m.verify(p, full=verify)
        return cls(p, m, checkpoint)

    def __len__(self) -> int:
        return self.manifest.count

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
            if self._id_to_pos is None:
                self._id_to_pos = {oid: i for i, oid in enumerate(self.object_ids)}
        pos = self._id_to_pos.get(str(object_id))
        if pos is None:
            raise QueryError(f"object id {object_id!r} is not in the index {self.path}")
        return pos

    def position_at(self, ra: float, dec: float, radius_arcsec: float = 10.0) -> tuple[int, float]:
        names = self.table.column_names
        if "ra" not in names or "dec" not in names:
            raise QueryError(f"{self.path}: the catalog has no ra/dec columns; query by image or object id").resolved_by("image", "object_id")
        ra_col = np.asarray(self.table.column("ra").to_numpy(zero_copy_only=False), dtype=np.float64)
        dec_col = np.asarray(self.table.column("dec").to_numpy(zero_copy_only=False), dtype=np.float64)
        return nearest_on_sky(float(ra), float(dec), ra_col, dec_col, float(radius_arcsec))

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

    def search_vectors(
        self,
        xq: np.ndarray,
        k: int = 10,
        refine: int = 10,
        exact: bool = False,
        exclude: Sequence[int] | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k of each query vector: (scores (nq, k), positions (nq, k), terms (nq, k, 3)).

        ``exclude[i]`` is a position to leave out of query i's results (the query object)."""
        from .exact import exact_knn, rerank

        xq = np.ascontiguousarray(np.atleast_2d(xq), dtype=np.float32)
        if xq.shape[1] != self.manifest.dim:
            raise QueryError(f"query vectors have dimension {xq.shape[1]}, the index has {self.manifest.dim}")
        extra = 1 if exclude is not None else 0
        self._check_k(k, refine, exclude is not None)
        kk = k + extra
        if exact:
            _, cand = exact_knn(xq, self.vectors, kk, self.weights)
        else:
            m = min(len(self), kk * refine)
            xs = xq
            if self._cosine:
                xs = xq / np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-30)
            try:
                params = search_params(self.index, nprobe=nprobe, ef_search=ef_search)
            except ConfigError as e:
                raise QueryError(str(e)) from None
            _, cand = self.index.search(xs, m, params=params)
        scores, pos, terms = rerank(xq, cand.astype(np.int64), self.vectors, kk, self.weights)
        if exclude is None:
            return scores, pos, terms
        out_s = np.empty((len(xq), k), np.float32)
        out_p = np.empty((len(xq), k), np.int64)
        out_t = np.empty((len(xq), k, 3), np.float32)
        for i, ex in enumerate(exclude):
            keep = np.flatnonzero(pos[i] != ex)[:k]
            out_s[i], out_p[i], out_t[i] = scores[i, keep], pos[i, keep], terms[i, keep]
        return out_s, out_p, out_t

    def _hits(self, scores: np.ndarray, pos: np.ndarray, terms: np.ndarray) -> list[Hit]:
        valid = pos >= 0
        p = pos[valid]
        meta = self.metadata(p)
        hits = []
        for r, (i, s, t, md) in enumerate(zip(p, scores[valid], terms[valid], meta), start=1):
            hits.append(Hit(r, self.object_ids[i], int(self.rows[i]), float(s), float(t[0]), float(t[1]), float(t[2]), md))
        return hits

    def query(
        self,
        image: Any = None,
        *,
        object_id: str | None = None,
        ra: float | None = None,
        dec: float | None = None,
        k: int = 10,
        refine: int = 10,
        radius_arcsec: float = 10.0,
        exact: bool = False,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> list[Hit]:
        """The k most similar catalog objects to one query (give exactly one kind of query)."""
        given = [image is not None, object_id is not None, ra is not None or dec is not None]
        if sum(given) != 1:
            raise QueryError("give exactly one of: an image, an object id, or ra and dec")
        if given[2] and (ra is None or dec is None):
            raise QueryError("a sky position needs both ra and dec")
        if image is not None:
            self._check_k(k, refine, False)
            xq = self.embed([image])
            return self._hits(*(a[0] for a in self.search_vectors(xq, k, refine, exact, nprobe=nprobe, ef_search=ef_search)))
        pos = self.position_of(object_id) if object_id is not None else self.position_at(ra, dec, radius_arcsec)[0]
        self._check_k(k, refine, True)
        xq = np.asarray(self.vectors[pos : pos + 1], dtype=np.float32)
        res = self.search_vectors(xq, k, refine, exact, exclude=[pos], nprobe=nprobe, ef_search=ef_search)
        return self._hits(*(a[0] for a in res))

    def query_sky(
        self,
        ra: float,
        dec: float,
        *,
        k: int = 10,
        refine: int = 10,
        radius_arcsec: float = 10.0,
        exact: bool = False,
        fetch: Any = None,
        cache_dir: str | Path | None = None,
        http: Any = None,
    ) -> SkyHits:
        """Neighbours of what is at (ra, dec): the nearest catalog object within the radius,
        or, when there is none and ``fetch`` (a :class:`~galaxy_retrieval.fetch.CutoutSpec`)
        is given, the survey cutout at that position downloaded into ``cache_dir`` (default
        ``~/.cache/galaxy-retrieval/cutouts``) and searched as an image.

        Fetch a cutout like the catalog's images (same survey, size and pixel scale), since
        the query goes through the same preprocessing as the catalog did."""
        check_position(ra, dec)
        try:
            pos, sep = self.position_at(ra, dec, radius_arcsec)
        except QueryError as e:
            if fetch is None:
                raise
            why = str(e)
        else:
            oid = self.object_ids[pos]
            return SkyHits(self.query(object_id=oid, k=k, refine=refine, exact=exact), ra, dec, oid, sep)
        from ..fetch import HttpConfig, fetch_cutout

        path = fetch_cutout(ra, dec, fetch, cache_dir, http or HttpConfig())
        return SkyHits(self.query(image=path, k=k, refine=refine, exact=exact), ra, dec, None, None, path, why)

    def query_batch(
        self,
        images: Sequence[Any],
        k: int = 10,
        refine: int = 10,
        exact: bool = False,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> list[list[Hit]]:
        """Several query images as one batch: one model call, one FAISS search, one rerank."""
        if len(images) == 0:
            return []
        self._check_k(k, refine, False)
        xq = self.embed(images)
        s, p, t = self.search_vectors(xq, k, refine, exact, nprobe=nprobe, ef_search=ef_search)
        return [self._hits(s[i], p[i], t[i]) for i in range(len(images))]

    # ------------------------------------------------------------------ images of hits

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


def _meta_columns(shard: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(shard).names
    except (pa.ArrowInvalid, OSError) as e:
        raise IndexFormatError(f"{shard}: not a readable Parquet shard ({e})") from None
    return [n for n in names if n != "embedding"]


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
