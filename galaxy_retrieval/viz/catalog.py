"""A look at a catalog: a contact sheet of a few objects of each class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..catalog.galaxy10 import GALAXY10_SHORT
from .sheet import contact_sheet

__all__ = ["catalog_contact_sheet", "framing_sheet"]


def catalog_contact_sheet(
    catalog, out: str | Path, per_class: int = 3, max_images: int = 40, seed: int = 0
) -> Path:
    """Write a PNG of ``per_class`` objects of each label (or a random sample if unlabelled)."""

    labels = catalog.labels()
    rng = np.random.default_rng(seed)
    if labels is not None and (labels >= 0).any():
        rows: list[int] = []
        for lab in sorted(set(int(x) for x in labels if x >= 0)):
            idx = np.flatnonzero(labels == lab)
            rows.extend(int(i) for i in idx[:per_class])
    else:
        rows = sorted(rng.choice(len(catalog), size=min(max_images, len(catalog)), replace=False).tolist())
    batch = catalog.get_batch(rows)
    names = getattr(catalog, "label_names", None)
    captions = []
    for oid, lab in zip(batch.object_ids, batch.metadata.get("label", [None] * len(batch))):
        if lab is None:
            captions.append(oid)
        elif isinstance(lab, (int, np.integer)) and names:
            captions.append(str(names.get(int(lab), lab)))
        elif isinstance(lab, (int, np.integer)) and names is None and 0 <= lab < len(GALAXY10_SHORT):
            captions.append(f"{GALAXY10_SHORT[int(lab)]}")
        else:
            captions.append(str(lab))
    ncols = per_class * 2 if labels is not None else 8
    return contact_sheet(list(batch.images), captions, out, ncols=ncols)


def framing_sheet(catalog, out: str | Path, framing, n: int = 24, seed: int = 0, ncols: int = 8) -> Path:
    """Before/after pairs of ``n`` random objects: the whole cutout with the framed square
    drawn on it (green: framed on its central source; red: none found, whole frame kept),
    then what the model sees. For looking at what :mod:`galaxy_retrieval.framing` does."""
    from PIL import Image, ImageDraw

    from ..catalog.images import to_uint8_rgb
    from ..framing import Framing, frame_box

    framing = Framing.parse(framing)
    rng = np.random.default_rng(seed)
    rows = sorted(rng.choice(len(catalog), size=min(n, len(catalog)), replace=False).tolist())
    batch = catalog.get_batch(rows)
    tiles, captions = [], []
    for oid, im in zip(batch.object_ids, batch.images):
        rgb = to_uint8_rgb(np.asarray(im))
        box = frame_box(rgb, framing)
        marked = Image.fromarray(rgb.copy())
        width = max(1, min(rgb.shape[:2]) // 128)
        ImageDraw.Draw(marked).rectangle(
            (box.left, box.top, box.left + box.side - 1, box.top + box.side - 1),
            outline=(60, 220, 60) if box.found else (230, 60, 60),
            width=width,
        )
        tiles += [np.asarray(marked), np.ascontiguousarray(box.cut(rgb))]
        captions += [str(oid), f"{box.side} px" if box.found else "no source: whole"]
    return contact_sheet(tiles, captions, out, ncols=ncols)
