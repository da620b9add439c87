"""The catalog side of an index: objects by id and by sky position, their metadata and images.

No search happens here: :class:`~galaxy_retrieval.search.searcher.GalaxySearcher` holds one
:class:`CatalogLookup` and answers its ``position_of``, ``cone``, ``mosaic`` … through it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import QueryError
from ..index.manifest import Manifest
from .hits import Hit, astropy_table
from .ids import ObjectIds
from .sky import SkyMatcher, parse_sky

__all__ = ["CatalogLookup"]


class CatalogLookup:
    """Positions, metadata, sky positions and images of the rows of one index version."""

    def __init__(self, path: Path, manifest: Manifest, table: pa.Table, dead: np.ndarray) -> None:
        self.path = path
        self.manifest = manifest
        self.table = table
        self.dead = dead  # bool per position: deleted rows are never found
        self.object_ids = ObjectIds(table.column("object_id"))  # not a list: 670 MB at 10M objects
        row = table.column("row")
        self.rows: np.ndarray = (
            row.chunk(0).to_numpy() if row.num_chunks == 1 else row.to_numpy()
        )  # a view of the map
        self._lock = threading.RLock()
        self._sky: SkyMatcher | None = None
        self._catalog: Any = None
        self._row_order: tuple[np.ndarray, np.ndarray | None] | None = None

    def live_position_of_row(self, row: int) -> int | None:
        """The position of catalog row ``row`` in this version, None when it is not there or
        was deleted. A binary search, not a dict: a {row: position} dict costs ~100 B an
        object (1 GB of a server's memory at 10M). Rows an index was built with ascend, so
        the memory-mapped column is searched as it is; otherwise the sorted rows and their
        positions are kept (16 B an object, made on the first call)."""
        with self._lock:
            if self._row_order is None:
                rows = self.rows
                if len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1])):
                    self._row_order = (rows, None)
                else:
                    order = np.argsort(rows, kind="stable")
                    self._row_order = (rows[order], order)
            keys, order = self._row_order
        i = int(np.searchsorted(keys, row))
        if i >= len(keys) or int(keys[i]) != int(row):
            return None
        pos = i if order is None else int(order[i])
        return None if self.dead[pos] else pos

    def position_of(self, object_id: str) -> int:
        with self._lock:
            pos = self.object_ids.position(str(object_id))
        if pos is None:
            raise QueryError(f"object id {object_id!r} is not in the index {self.path}")
        if self.dead[pos]:
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
                    raise QueryError(
                        f"{self.path}: the catalog has no ra/dec columns; query by image or object id"
                    ).resolved_by("image", "object_id")
                ra, dec = self.sky_columns()
                self._sky = SkyMatcher(
                    ra, dec, allowed=~self.dead
                )  # a deleted object is not there to be found
            return self._sky

    def cone(self, ra: Any, dec: Any = None, radius_arcsec: float = 60.0) -> Any:
        """The live catalog objects within ``radius_arcsec`` of a sky position, nearest first,
        as an astropy Table (object_id, row, separation in arcsec, metadata with units)."""
        coord = parse_sky(ra, dec)
        if not (np.isfinite(radius_arcsec) and radius_arcsec > 0):
            raise QueryError(f"radius {radius_arcsec} arcsec must be > 0")
        pos, sep = self.sky_matcher().around(coord, float(radius_arcsec))
        t = self.table.take(pa.array(pos.astype(np.int64)))
        t = t.add_column(2, "separation_arcsec", pa.array(sep, pa.float64()))
        return astropy_table(
            t, {"ra": float(coord.ra.deg), "dec": float(coord.dec.deg), "radius_arcsec": float(radius_arcsec)}
        )

    def metadata(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        sub = self.table.take(pa.array(np.asarray(positions, dtype=np.int64)))
        recs = sub.to_pylist()
        for r in recs:
            r.pop("object_id", None)
            r.pop("row", None)
        return recs

    def radec(self) -> tuple[np.ndarray, np.ndarray]:
        """RA and Dec in degrees (NaN: unknown), for separating hits on the sky."""
        names = self.table.column_names
        if "ra" not in names or "dec" not in names:
            raise QueryError(
                f"{self.path}: the catalog has no ra/dec columns, so hits cannot be separated on the sky"
            )
        return self.sky_columns()

    def position_radec(self, pos: int) -> tuple[float, float] | None:
        """(RA, Dec) of one position, None when it has no valid coordinates."""
        r, d = self.radec()
        return (float(r[pos]), float(d[pos])) if np.isfinite(r[pos]) and np.isfinite(d[pos]) else None

    def sky_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """RA and Dec in degrees, NaN where a value is missing, not a number or out of range
        (an index built before catalogs were checked may hold text there)."""
        from .sky import coordinates

        ra, _ = coordinates(self.table.column("ra"), "ra")
        dec, _ = coordinates(self.table.column("dec"), "dec")
        return ra, dec

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

    def images_of(self, rows: Sequence[int]) -> list[np.ndarray]:
        """Catalog images at these catalog rows (for mosaics); needs the source catalog."""
        from ..catalog import open_catalog

        with self._lock:
            if self._catalog is None:
                src = self.manifest.catalog.get("path")
                if not src or not Path(src).exists():
                    raise QueryError(
                        f"the catalog this index was built from ({src}) is not available, so hit images cannot be shown"
                    )
                self._catalog = open_catalog(src)
            batch = self._catalog.get_batch(list(rows))
        return list(batch.images)

    def mosaic(
        self, hits: Sequence[Hit], query: Any = None, ncols: int = 5, tile: int = 200, crop: bool = True
    ) -> Any:
        """The hits as a PIL image (see :meth:`GalaxySearcher.mosaic`)."""
        from ..catalog.images import read_image, to_uint8_rgb
        from ..viz.notebook import grid_mosaic, hit_caption

        names = self.label_names
        tiles: list[tuple[np.ndarray, str, str]] = []
        if query is not None:
            if isinstance(query, str) and self.object_ids.position(query) is not None:
                tiles.append(
                    (self.images_of([int(self.rows[self.position_of(query)])])[0], f"query {query}", "")
                )
            elif isinstance(query, (str, Path)):
                tiles.append((read_image(query), f"query {Path(query).name}", ""))
            else:
                tiles.append((to_uint8_rgb(np.asarray(query)), "query", ""))
        images = self.images_of([h.row for h in hits]) if len(hits) else []
        tiles += [(im, *hit_caption(h, names)) for h, im in zip(hits, images)]
        if not tiles:
            raise QueryError("no hits to draw")
        title = getattr(hits, "query", None)
        return grid_mosaic(
            tiles, ncols=ncols, tile=tile, highlight_first=query is not None, crop=crop, title=title
        )
