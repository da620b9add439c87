"""One image file → the model's [0, 1] input: the step each ingest worker runs.

1. ``auto`` framing with no stored box: decode the JPEG at reduced size
   (:func:`~galaxy_retrieval.catalog.images.read_image_reduced`) and measure the box on it
   (:func:`~galaxy_retrieval.framing.measure_box`);
2. decode the file at full resolution, cut the box, resize exactly as
   :func:`~galaxy_retrieval.model.preprocess.images_to_float` does.

Step 2 is the in-memory path itself, so the same box gives the same input tensor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..catalog.images import read_image, read_image_reduced
from ..errors import ImageReadError
from ..framing import Box, Framing, frame_box, measure_box

__all__ = ["Prepared", "prepare_file", "prepare_files"]


@dataclass(frozen=True)
class Prepared:
    """One file's model input (float32 (3, S, S) in [0, 1]) and box, or the reason it was
    unreadable; the CPU seconds of its stages."""

    x: np.ndarray | None
    box: Box | None
    shape: tuple[int, int] | None  # the full-resolution (h, w)
    measured: bool
    error: ImageReadError | None
    decode_s: float
    framing_s: float
    resize_s: float


def prepare_file(path: str, size: int, framing: Framing, box: Box | None, measure_side: int) -> Prepared:
    clock = time.process_time  # this process's CPU: workers run one thread each
    t0 = clock()
    dec = fr = 0.0
    measured = False
    try:
        full = None
        if framing.mode == "auto" and box is None:
            if measure_side:
                small, shape = read_image_reduced(path, measure_side)
                if small.shape[:2] == tuple(shape):
                    full = small  # not reduced (small file, not a JPEG): decoded once
            else:
                full = small = read_image(path)
                shape = full.shape[:2]
            t1 = clock()
            dec += t1 - t0
            # measure_side=0 goes through frame_box itself: exactly the in-memory path's box
            box = measure_box(small, framing, shape) if measure_side else frame_box(small, framing)
            measured = True
            t0 = clock()
            fr = t0 - t1
        if full is None:
            full = read_image(path)
        if box is None:  # none / fixed framing: the centred square
            box = frame_box(full, framing)
        elif box.top + box.side > full.shape[0] or box.left + box.side > full.shape[1]:
            raise ImageReadError(
                path, f"stored framing box {box} does not fit the {full.shape[1]}×{full.shape[0]} image"
            )
        t1 = clock()
        dec += t1 - t0
    except ImageReadError as e:
        return Prepared(None, None, None, False, e, clock() - t0 + dec, fr, 0.0)
    from ..model.preprocess import images_to_float

    x = images_to_float([box.cut(full)], size)[0].numpy()
    return Prepared(x, box, tuple(full.shape[:2]), measured, None, dec, fr, clock() - t1)


def prepare_files(
    paths: list[str], boxes: list[Box | None], size: int, framing: Framing, measure_side: int
) -> list[Prepared]:
    """A worker task: several files, in order."""
    return [prepare_file(p, size, framing, b, measure_side) for p, b in zip(paths, boxes)]
