"""A look at a catalog: a contact sheet of a few objects of each class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .galaxy10 import GALAXY10_SHORT

__all__ = ["catalog_contact_sheet"]


def catalog_contact_sheet(catalog, out: str | Path, per_class: int = 3, max_images: int = 40, seed: int = 0) -> Path:
    """Write a PNG of ``per_class`` objects of each label (or a random sample if unlabelled)."""
    from ..viz import contact_sheet

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
