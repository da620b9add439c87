"""Getting real catalogs in: survey cutouts by RA/Dec and public catalog files over HTTP."""

from __future__ import annotations

from .cutouts import (
    CATALOG_CSV,
    FetchCutoutsConfig,
    FetchCutoutsResult,
    default_cache_dir,
    fetch_cutout,
    fetch_cutouts,
)
from .download import DATASETS, DownloadResult, RemoteFile, download, download_dataset
from .http import HttpConfig, check_image_bytes, get_checked
from .surveys import SURVEYS, CutoutSpec, Survey, check_coordinates, cutout_url
from .targets import RowProblem, Target, read_targets

__all__ = [
    "CATALOG_CSV",
    "FetchCutoutsConfig",
    "FetchCutoutsResult",
    "fetch_cutouts",
    "fetch_cutout",
    "default_cache_dir",
    "DATASETS",
    "RemoteFile",
    "DownloadResult",
    "download",
    "download_dataset",
    "HttpConfig",
    "get_checked",
    "check_image_bytes",
    "SURVEYS",
    "Survey",
    "CutoutSpec",
    "cutout_url",
    "check_coordinates",
    "Target",
    "RowProblem",
    "read_targets",
]
