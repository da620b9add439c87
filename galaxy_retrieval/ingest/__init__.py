"""The fast path from image files to vectors: reduced-size JPEG decoding for measuring the
framing box, a box store that measures each image once, and a worker pool that decodes and
frames while the model embeds. Used by build-index, add, evaluation and training."""

from .boxes import BOX_ALGORITHM, BoxStore, file_key, setting_key
from .config import BOX_DIR_ENV, IngestConfig, default_box_dir
from .pipeline import (
    IngestStats,
    PreparedBatch,
    can_prepare,
    embed_prepared,
    open_box_store,
    prepare_rows,
    workers_embed,
)
from .prepare import Prepared, prepare_file

__all__ = [
    "BOX_ALGORITHM",
    "BOX_DIR_ENV",
    "BoxStore",
    "IngestConfig",
    "IngestStats",
    "Prepared",
    "PreparedBatch",
    "can_prepare",
    "default_box_dir",
    "embed_prepared",
    "file_key",
    "open_box_store",
    "prepare_file",
    "prepare_rows",
    "setting_key",
    "workers_embed",
]
