"""Whether FAISS can build on a GPU here."""

from __future__ import annotations

__all__ = ["faiss_gpu_count"]


def faiss_gpu_count() -> int:
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0
