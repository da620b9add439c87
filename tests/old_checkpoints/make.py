"""How the checkpoints in this folder were written: by the code of commit a65732d (before the
model config named its backbone), so tests/test_old_checkpoints.py can check that checkpoints
written before the rename still load and embed identically. Kept for the record; running it
with today's code writes today's format, not the old one.

    PYTHONPATH=. python tests/old_checkpoints/make.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from galaxy_retrieval.catalog.hdf5 import HDF5Catalog  # noqa: E402
from galaxy_retrieval.model import load_checkpoint, preset  # noqa: E402
from galaxy_retrieval.suppress import SuppressConfig  # noqa: E402
from galaxy_retrieval.train import TrainConfig, train  # noqa: E402
from tests.test_train import blob_images, write_blob_catalog  # noqa: E402


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cat = HDF5Catalog(write_blob_catalog(Path(tmp) / "blobs.h5", n=48))
        base = dict(epochs=1, batch_size=16, seed=0, loose_batch_sizes=(4,), precision="fp32", compile="off")
        runs = {
            # the default backbone with auto framing and source suppression
            "polar": TrainConfig(
                **base,
                model=preset("polar", image_size=32, hidden=8, depth=2, out_dim=16),
                suppress_sources=SuppressConfig(),
            ),
            # the paper's ViT, small, with a fixed central crop
            "vit": TrainConfig(
                **base, model=preset("tiny", hidden=16, num_heads=2, mlp_hidden=32), framing="fixed:0.8"
            ),
        }
        # fixed query images: other blobs, larger than the training ones (48 px against 40)
        ims = blob_images(6, 48, seed=7)[0]
        np.save(HERE / "images.npy", ims)
        for name, cfg in runs.items():
            run = HERE / name
            train(cfg, cat, run)
            for extra in ("history.png", "history.json"):
                (run / extra).unlink(missing_ok=True)
            import shutil

            shutil.rmtree(run / "last", ignore_errors=True)
            emb = load_checkpoint(run, device="cpu")
            np.save(HERE / f"{name}_embeddings.npy", emb.embed(ims))
            print(name, emb, emb.suppress, emb.model_config.framing)


if __name__ == "__main__":
    main()
