"""Image-folder catalogs: a directory of cutouts (jpg/png/tif, FITS with astropy), optionally
with CSVs of metadata.

The CSV is either named explicitly (``metadata=``) or found in the folder: every ``*.csv``
there (``metadata.csv``, ``catalog.csv``, ``labels.csv`` first), merged on the file-name
column; a CSV without one is left out with a warning naming it. Rows name each file in a
column recognised case-insensitively (``filename``, ``file``, ``path``, ``image``…, see
:mod:`.columns`) relative to the folder, and may carry ``object_id`` (``objid``, ``id_str``…),
``label``, ``ra`` (``RA``, ``RAJ2000``…), ``dec``, ``redshift`` (``z``) and any other columns;
``columns=`` maps other spellings. ``metadata=`` may also name a Parquet table of the same
columns (image paths and metadata, as survey pipelines write them). Without a CSV every
image below the folder (subfolders too) is an object whose id is its relative path without
the suffix.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CatalogError, ConfigError, ImageReadError
from .base import Batch, Catalog, CatalogInfo, OnError
from .columns import ALIASES, ColumnMap, coordinates, resolve_columns
from .images import FITS_SUFFIXES, IMAGE_SUFFIXES, describe_conversion, read_image

__all__ = ["FolderCatalog", "find_metadata_csvs"]

_CSV_NAMES = ("metadata.csv", "catalog.csv", "labels.csv")
# Decoding is mostly C code that releases the GIL, so a few threads overlap file reads.
_DECODE_THREADS = 4


def _is_image(p: Path) -> bool:
    name = p.name.lower()
    return p.suffix.lower() in IMAGE_SUFFIXES or any(name.endswith(s) for s in FITS_SUFFIXES)


def _escapes(name: str) -> bool:
    """Whether a CSV file name leaves the folder: absolute, or through '..'. Judged on the
    name, not the resolved path, so images symlinked into the folder stay readable."""
    norm = os.path.normpath(name)
    return os.path.isabs(name) or norm == ".." or norm.startswith(".." + os.sep)


def find_metadata_csvs(folder: Path) -> list[Path]:
    """The folder's CSV files, the conventional names (``metadata.csv``…) first."""
    csvs = sorted(folder.glob("*.csv"))
    rank = {n: i for i, n in enumerate(_CSV_NAMES)}
    return sorted(csvs, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def _parse_column(values: list[str]) -> list[Any]:
    """Numbers where every non-empty value is a number; empty cells become None."""
    present = [v for v in values if v.strip() != ""]
    for kind in (int, float):
        try:
            parsed = [kind(v) for v in present]
        except ValueError:
            continue
        it = iter(parsed)
        return [next(it) if v.strip() != "" else None for v in values]
    return [v if v.strip() != "" else None for v in values]


def _read_csv(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not csv_path.is_file():
        raise CatalogError(f"{csv_path}: metadata CSV not found")
    if csv_path.suffix.lower() == ".parquet":
        return _read_parquet_table(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
    except (UnicodeDecodeError, csv.Error) as e:
        raise CatalogError(f"{csv_path}: not a readable CSV ({e})") from None
    if not header:
        raise CatalogError(f"{csv_path}: empty CSV (no header row)")
    return header, rows


def _read_parquet_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A Parquet table of image paths and metadata (what a survey pipeline writes), read as
    the CSV would be: its cells as text, parsed back into numbers like CSV cells."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise CatalogError(f"{path}: not a readable Parquet table ({e})") from None
    header = [str(n).strip() for n in t.column_names]
    if not header:
        raise CatalogError(f"{path}: the table has no columns")
    cols = [["" if v is None else str(v) for v in t.column(i).to_pylist()] for i in range(t.num_columns)]
    return header, [dict(zip(header, r)) for r in zip(*cols)]


@dataclass
class _MergedCsvs:
    """The CSVs joined on their file-name column (outer join, first CSV's order); filled
    CSV by CSV in :func:`_merge_csvs`, read-only after it."""

    values: dict[str, dict[str, str]]  # file name -> catalog column -> value
    origin: dict[str, tuple[Path, int]]  # file name -> (CSV, line) first naming it
    columns: list[str]  # catalog columns in the order first seen, the file name left out
    used: list[Path]  # the CSVs that had a file-name column
    column_maps: dict[str, ColumnMap]  # per used CSV, which raw column became which catalog column
    warnings: list[str]  # the CSVs left out, and why


def _merge_csvs(csv_paths: list[Path], mapping: dict[str, str], explicit: bool, root: Path) -> _MergedCsvs:
    """Read the CSVs and merge them on the file-name column.

    A CSV without a file-name column cannot be joined: with one CSV that is an error, with
    several it is left out with a warning naming it. Two CSVs giving one file different
    values for a column is an error naming both."""
    merged = _MergedCsvs({}, {}, [], [], {}, [])
    source_of: dict[tuple[str, str], Path] = {}  # (file, column) -> CSV that gave the value
    used_keys: set[str] = set()
    for csv_path in csv_paths:
        header, rows = _read_csv(csv_path)
        lower = {h.lower() for h in header}
        mine = {k: v for k, v in mapping.items() if k in header or k.lower() in lower}
        used_keys.update(mine)
        cmap = resolve_columns(header, mine, where=str(csv_path))
        file_col = cmap.raw("filename")
        if file_col is None:
            msg = (
                f"{csv_path}: no column naming the image files (expected one of {', '.join(ALIASES['filename'])}; "
                f"found {', '.join(header)})"
            )
            if explicit or len(csv_paths) == 1:
                raise CatalogError(msg)
            merged.warnings.append(f"ignored {msg}")
            continue
        if not rows:
            raise CatalogError(f"{csv_path}: CSV has a header but no rows")
        merged.used.append(csv_path)
        merged.column_maps[str(csv_path)] = cmap
        for c in header:
            n = cmap.canonical(c)
            if n != "filename" and n not in merged.columns:
                merged.columns.append(n)
        _merge_rows(merged, source_of, csv_path, header, rows, cmap, file_col)
    if not merged.used:
        raise CatalogError(
            f"{root}: none of the CSV files ({', '.join(p.name for p in csv_paths)}) has a column naming the image files"
        )
    unused = [k for k in mapping if k not in used_keys]
    if unused:
        raise ConfigError(f"{root}: column mapping names {', '.join(map(repr, unused))}, which no CSV has")
    return merged


def _merge_rows(
    merged: _MergedCsvs,
    source_of: dict[tuple[str, str], Path],
    csv_path: Path,
    header: list[str],
    rows: list[dict[str, str]],
    cmap: ColumnMap,
    file_col: str,
) -> None:
    """Add one CSV's rows to ``merged`` (its dicts are filled in place)."""
    for i, r in enumerate(rows):
        name = r.get(file_col, "").strip()
        key = Path(name).as_posix() if name else ""
        entry = merged.values.setdefault(key, {})
        merged.origin.setdefault(key, (csv_path, i + 2))  # line i+2: the header is line 1
        for c in header:
            n = cmap.canonical(c)
            v = r.get(c, "").strip()
            if n == "filename" or v == "":
                continue
            old = entry.get(n)
            if old is not None and old != v:
                raise CatalogError(
                    f"{csv_path}: line {i + 2} gives {n}={v!r} for {name!r}, but {source_of[(key, n)]} gives {old!r}"
                )
            entry[n] = v
            source_of[(key, n)] = csv_path


class FolderCatalog(Catalog):
    kind = "image-folder"

    def __init__(
        self,
        path: str | Path,
        metadata: str | Path | None = None,
        on_error: OnError = "fail",
        columns: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(str(path), on_error)
        root = Path(path)
        if not root.is_dir():
            raise CatalogError(f"{root}: not a directory")
        self.root = root
        self.skipped: list[tuple[int, str]] = []
        #: things the user should hear about (an ignored CSV); the CLI prints them
        self.warnings: list[str] = []
        #: per CSV, which raw column became which catalog column
        self.column_maps: dict[str, ColumnMap] = {}
        csv_paths = [Path(metadata)] if metadata is not None else find_metadata_csvs(root)
        if csv_paths:
            self._files, self._ids, self._meta, self.csv_paths = self._from_csvs(
                csv_paths, dict(columns or {}), explicit=metadata is not None
            )
        else:
            if columns:
                raise CatalogError(f"{root}: a column mapping was given but the folder has no CSV")
            self.csv_paths = []
            files = sorted(p for p in root.rglob("*") if p.is_file() and _is_image(p))
            if not files:
                raise CatalogError(
                    f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, .fits)"
                )
            self._files = files
            self._ids = [self._default_id(p) for p in files]
            self._meta = {}
        self.csv_path: Path | None = self.csv_paths[0] if self.csv_paths else None
        seen: dict[str, int] = {}
        for i, oid in enumerate(self._ids):
            if oid in seen:
                where = ", ".join(str(p) for p in self.csv_paths) or root
                raise CatalogError(
                    f"{where}: object_id {oid!r} appears twice (rows {seen[oid] + 1} and {i + 1})"
                )
            seen[oid] = i
        self._labels, self.label_names = self._encode_labels()

    def _default_id(self, p: Path) -> str:
        rel = p.relative_to(self.root).as_posix()
        name = p.name
        for s in sorted(FITS_SUFFIXES | IMAGE_SUFFIXES, key=len, reverse=True):
            if name.lower().endswith(s):
                return rel[: len(rel) - len(s)]
        return rel

    def _from_csvs(
        self, csv_paths: list[Path], mapping: dict[str, str], explicit: bool
    ) -> tuple[list[Path], list[str], dict[str, list[Any]], list[Path]]:
        """(files, object ids, metadata columns, the CSVs used) from the merged CSVs."""
        merged = _merge_csvs(csv_paths, mapping, explicit, self.root)
        self.warnings.extend(merged.warnings)
        self.column_maps.update(merged.column_maps)
        files, keep = self._existing_files(merged)
        meta = self._metadata_columns(merged, files, keep)
        ids = [merged.values[k].get("object_id") or self._default_id(files[j]) for j, k in enumerate(keep)]
        return files, ids, meta, merged.used

    def _existing_files(self, merged: _MergedCsvs) -> tuple[list[Path], list[str]]:
        """The image file of each merged row and its file-name key, rows naming no file of
        the folder skipped (or refused, with ``on_error="fail"``)."""
        base = self.root
        files: list[Path] = []
        keep: list[str] = []
        for key, (csv_path, line) in merged.origin.items():
            f = (base / key) if key else base
            # a catalog is its folder: '../x.jpg' or '/etc/hostname' would read (and index,
            # and show in mosaics) files the folder's owner never put there
            outside = bool(key) and _escapes(key)
            if outside or not key or not f.is_file():
                where = "outside the folder" if outside else "not a file in"
                msg = f"{csv_path}: line {line} names {key!r}, which is {where} {base}"
                if self.on_error == "fail":
                    raise CatalogError(msg)
                self.skipped.append((line - 2, msg))
                continue
            files.append(f)
            keep.append(key)
        if not files:
            raise CatalogError(
                f"{', '.join(map(str, merged.used))}: none of the {len(merged.origin)} rows names an existing image file"
            )
        return files, keep

    def _metadata_columns(
        self, merged: _MergedCsvs, files: list[Path], keep: list[str]
    ) -> dict[str, list[Any]]:
        """Column name → one parsed value per kept row (numbers where a column is numeric)."""
        meta_cols = [c for c in merged.columns if c != "object_id"]
        meta = {c: _parse_column([merged.values[k].get(c, "") for k in keep]) for c in meta_cols}
        for c in ("ra", "dec"):  # sky queries need numbers: a bad value is NaN, and listed
            if c in meta:
                vals, bad = coordinates(meta[c], c)
                meta[c] = [None if np.isnan(x) else float(x) for x in vals]
                if bad:
                    shown = ", ".join(f"{files[i].name} ({merged.values[keep[i]].get(c)!r})" for i in bad[:5])
                    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
                    self.warnings.append(
                        f"{c} of {len(bad)} objects is not a valid coordinate, left empty: {shown}{more}"
                    )
        return meta

    def _encode_labels(self) -> tuple[np.ndarray | None, dict[int, str] | None]:
        if "label" not in self._meta:
            return None, None
        vals = self._meta["label"]
        present = [v for v in vals if v is not None]
        if all(isinstance(v, int) for v in present):
            return np.array([v if v is not None else -1 for v in vals], dtype=np.int64), None
        # string classes ("FRI", "bent"): integer codes in sorted name order
        names = sorted({str(v) for v in present})
        code = {n: i for i, n in enumerate(names)}
        labels = np.array([code[str(v)] if v is not None else -1 for v in vals], dtype=np.int64)
        return labels, dict(enumerate(names))

    def __len__(self) -> int:
        return len(self._files)

    def file_names(self, rows: Sequence[int]) -> list[str]:
        """The image file of each row, relative to the folder (kept in the index's shards)."""
        out = []
        for r in rows:
            f = self._files[int(r)]
            try:
                out.append(f.relative_to(self.root).as_posix())
            except ValueError:
                out.append(str(f))
        return out

    @property
    def columns(self) -> list[str]:
        return list(self._meta)

    def labels(self) -> np.ndarray | None:
        return None if self._labels is None else self._labels.copy()

    def object_ids(self) -> list[str]:
        return list(self._ids)

    def file_of(self, row: int) -> Path:
        return self._files[row]

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        return None

    def _load(self, row: int) -> np.ndarray | ImageReadError:
        try:
            return read_image(self._files[row])
        except ImageReadError as e:
            return e

    def get_batch(self, rows: Sequence[int]) -> Batch:
        rows = [int(r) for r in rows]
        n = len(self)
        for r in rows:
            if not 0 <= r < n:
                raise IndexError(f"row {r} out of range for catalog of {n} objects")
        if len(rows) > 4:
            with ThreadPoolExecutor(_DECODE_THREADS) as ex:
                decoded = list(ex.map(self._load, rows))
        else:
            decoded = [self._load(r) for r in rows]
        good: list[int] = []
        images: list[np.ndarray] = []
        skipped: list[tuple[int, str]] = []
        for r, im in zip(rows, decoded):
            if isinstance(im, ImageReadError):
                if self.on_error == "fail":
                    raise im
                skipped.append((r, str(im)))
                continue
            good.append(r)
            images.append(im)
        self.skipped.extend(skipped)
        meta = {c: [v[r] for r in good] for c, v in self._meta.items()}
        return Batch([self._ids[r] for r in good], images, meta, np.asarray(good, dtype=np.int64), skipped)

    def _read_range(self, lo: int, hi: int, load_images: bool) -> Batch:
        if not load_images:
            meta = {c: v[lo:hi] for c, v in self._meta.items()}
            return Batch(self._ids[lo:hi], [], meta, np.arange(lo, hi, dtype=np.int64))
        return self.get_batch(range(lo, hi))

    def info(self) -> CatalogInfo:
        base = super().info()
        shapes = set()
        for r in range(min(len(self), 16)):  # a sample: reading every file would be slow
            im = self._load(r)
            if not isinstance(im, ImageReadError):
                shapes.add(im.shape)
        shape = shapes.pop() if len(shapes) == 1 else None
        extra: dict[str, Any] = {"metadata_csv": ", ".join(str(p) for p in self.csv_paths) or None}
        renamed = [d for d in (m.describe() for m in self.column_maps.values()) if d]
        if renamed:
            extra["columns_renamed"] = "; ".join(dict.fromkeys(renamed))
        if self.warnings:
            extra["warnings"] = "; ".join(self.warnings)
        if shape is not None:
            extra["image_shape_sampled_from"] = min(len(self), 16)
        # how non-8-bit pixels (FITS fluxes, 16-bit PNG) were turned into colours
        conversions = [describe_conversion(self._files[r]) for r in range(min(len(self), 16))]
        kinds = list(dict.fromkeys(c for c in conversions if c))
        if kinds:
            extra["pixel_stretch"] = " | ".join(kinds)
        if self.skipped:
            extra["skipped"] = len(self.skipped)
        return CatalogInfo(
            **{**base.__dict__, "image_shape": shape, "label_names": self.label_names, "extra": extra}
        )
