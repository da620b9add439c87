"""Image-folder catalogs: a directory of cutouts (jpg/png/tif, FITS with astropy), optionally
with a CSV of metadata.

The CSV is either named explicitly (``metadata=``) or found in the folder (``metadata.csv``,
``catalog.csv``, ``labels.csv``, or the only ``*.csv`` there). Its rows name each file in a
``filename`` column (relative to the folder; ``file``, ``path`` and ``image`` are accepted
too) and may carry ``object_id``, ``label``, ``ra``, ``dec`` and any other columns. Without a
CSV every image below the folder (subfolders too) is an object whose id is its relative path
without the suffix.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CatalogError, ImageReadError
from .base import Batch, Catalog, CatalogInfo, OnError
from .images import FITS_SUFFIXES, IMAGE_SUFFIXES, read_image

__all__ = ["FolderCatalog", "find_metadata_csv"]

_FILE_COLUMNS = ("filename", "file", "path", "image")
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


def find_metadata_csv(folder: Path) -> Path | None:
    """The folder's metadata CSV, or None; ambiguous choices are an error, not a guess."""
    for name in _CSV_NAMES:
        if (folder / name).is_file():
            return folder / name
    csvs = sorted(folder.glob("*.csv"))
    if len(csvs) == 1:
        return csvs[0]
    if len(csvs) > 1:
        names = ", ".join(p.name for p in csvs)
        raise CatalogError(f"{folder}: several CSV files ({names}); name the metadata file with --metadata")
    return None


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


class FolderCatalog(Catalog):
    kind = "image-folder"

    def __init__(self, path: str | Path, metadata: str | Path | None = None, on_error: OnError = "fail") -> None:
        super().__init__(str(path), on_error)
        root = Path(path)
        if not root.is_dir():
            raise CatalogError(f"{root}: not a directory")
        self.root = root
        self.skipped: list[tuple[int, str]] = []
        csv_path = Path(metadata) if metadata is not None else find_metadata_csv(root)
        if csv_path is not None:
            self.csv_path: Path | None = csv_path
            self._files, self._ids, self._meta = self._from_csv(csv_path)
        else:
            self.csv_path = None
            files = sorted(p for p in root.rglob("*") if p.is_file() and _is_image(p))
            if not files:
                raise CatalogError(f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, .fits)")
            self._files = files
            self._ids = [self._default_id(p) for p in files]
            self._meta = {}
        seen: dict[str, int] = {}
        for i, oid in enumerate(self._ids):
            if oid in seen:
                where = self.csv_path or root
                raise CatalogError(f"{where}: object_id {oid!r} appears twice (rows {seen[oid] + 1} and {i + 1})")
            seen[oid] = i
        self._labels, self.label_names = self._encode_labels()

    def _default_id(self, p: Path) -> str:
        rel = p.relative_to(self.root).as_posix()
        name = p.name
        for s in sorted(FITS_SUFFIXES | IMAGE_SUFFIXES, key=len, reverse=True):
            if name.lower().endswith(s):
                return rel[: len(rel) - len(s)]
        return rel

    def _from_csv(self, csv_path: Path) -> tuple[list[Path], list[str], dict[str, list[Any]]]:
        if not csv_path.is_file():
            raise CatalogError(f"{csv_path}: metadata CSV not found")
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = [h.strip() for h in (reader.fieldnames or [])]
                rows = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
        except (UnicodeDecodeError, csv.Error) as e:
            raise CatalogError(f"{csv_path}: not a readable CSV ({e})") from None
        if not header:
            raise CatalogError(f"{csv_path}: empty CSV (no header row)")
        col = next((c for c in _FILE_COLUMNS if c in header), None)
        if col is None:
            raise CatalogError(f"{csv_path}: no column naming the image files (expected one of {', '.join(_FILE_COLUMNS)}; found {', '.join(header)})")
        if not rows:
            raise CatalogError(f"{csv_path}: CSV has a header but no rows")
        base = self.root
        files: list[Path] = []
        keep: list[int] = []
        for i, r in enumerate(rows):
            name = r[col].strip()
            f = (base / name) if name else base
            # line i+2: the header is line 1
            # a catalog is its folder: '../x.jpg' or '/etc/hostname' would read (and index,
            # and show in mosaics) files the folder's owner never put there
            outside = bool(name) and _escapes(name)
            if outside or not name or not f.is_file():
                where = "outside the folder" if outside else "not a file in"
                msg = f"{csv_path}: line {i + 2} names {name!r}, which is {where} {base}"
                if self.on_error == "fail":
                    raise CatalogError(msg)
                self.skipped.append((i, msg))
                continue
            files.append(f)
            keep.append(i)
        if not files:
            raise CatalogError(f"{csv_path}: none of the {len(rows)} rows names an existing image file")
        meta_cols = [c for c in header if c and c not in (col, "object_id")]
        meta = {c: _parse_column([rows[i].get(c, "") for i in keep]) for c in meta_cols}
        if "object_id" in header:
            ids = [rows[i]["object_id"].strip() or self._default_id(files[j]) for j, i in enumerate(keep)]
        else:
            ids = [self._default_id(f) for f in files]
        return files, ids, meta

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
            rows = list(range(lo, hi))
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
        extra: dict[str, Any] = {"metadata_csv": str(self.csv_path) if self.csv_path else None}
        if shape is not None:
            extra["image_shape_sampled_from"] = min(len(self), 16)
        if self.skipped:
            extra["skipped"] = len(self.skipped)
        return CatalogInfo(**{**base.__dict__, "image_shape": shape, "label_names": self.label_names, "extra": extra})
