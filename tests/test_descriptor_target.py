"""The auxiliary descriptor target (train/descriptor_target.py): the head starts at the ridge
solution, its loss reaches the backbone, the run resumes with the head, and the checkpoint
stays a plain model of the same vector length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.model import load_checkpoint, preset
from galaxy_retrieval.model.registry import create_model
from galaxy_retrieval.train import train
from galaxy_retrieval.train.descriptor_target import fit_descriptor_target

from .test_train import blobs, tiny_cfg  # noqa: F401  (fixture)


class _Store:
    """The two things the target reads of an image store: its length and rows by position."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = torch.from_numpy(images)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, positions: torch.Tensor) -> torch.Tensor:
        return self.images[positions]


def _polar_model():
    cfg = preset("polar", image_size=32, width=8, depth=3, out_dim=16)
    return create_model(cfg, seed=0), cfg


def test_head_starts_at_the_ridge_solution_and_its_loss_reaches_the_backbone(blobs):  # noqa: F811
    model, cfg = _polar_model()
    ims = blobs.get_batch(np.arange(48)).images
    x = torch.nn.functional.interpolate(torch.from_numpy(ims).permute(0, 3, 1, 2).float(), size=32)
    store = _Store(x.round().clamp(0, 255).to(torch.uint8).numpy())
    target = fit_descriptor_target(model, store, torch.device("cpu"))
    assert target.targets.shape == (48, 432)
    # standardised over the store: each component has mean 0
    np.testing.assert_allclose(target.targets.mean(0).numpy(), 0.0, atol=1e-4)
    pos = torch.arange(48)
    x01 = store.get(pos).float() / 255.0
    from galaxy_retrieval.model.preprocess import normalize

    model.eval()
    emb = model.embed(normalize(x01, cfg.preprocessing))
    loss = target.loss(emb, pos, 1)
    # the gradient of the auxiliary loss reaches the backbone's weights
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        target.head.weight.zero_()
        target.head.bias.zero_()
        assert float(loss) < float(target.loss(emb, pos, 1))  # better than predicting the mean


def test_training_with_the_target_resumes_and_keeps_the_vector_length(blobs, tmp_path):  # noqa: F811
    mcfg = preset("polar", image_size=32, width=8, depth=3, out_dim=16)
    cfg = dict(model=mcfg, framing=None, precision="fp32", compile="off", descriptor_weight=1.0)
    first = train(tiny_cfg(epochs=1, **cfg), blobs, tmp_path / "run")
    more = train(tiny_cfg(epochs=2, **cfg), blobs, tmp_path / "run", resume=True)
    straight = train(tiny_cfg(epochs=2, **cfg), blobs, tmp_path / "straight")
    assert more.history[:1] == first.history
    # the head came back from the resume point: the second epoch is the one trained straight
    assert more.history[1]["train_loss"] == pytest.approx(straight.history[1]["train_loss"], rel=1e-5)
    plain = train(tiny_cfg(epochs=2, **{**cfg, "descriptor_weight": 0.0}), blobs, tmp_path / "plain")
    assert plain.history[0]["train_loss"] != straight.history[0]["train_loss"]
    emb = load_checkpoint(tmp_path / "run", device="cpu")
    assert emb.dim == 16 and emb.embed(blobs.get_batch(np.arange(3)).images).shape == (3, 16)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), True, "1"])
def test_descriptor_weight_is_checked(bad):
    with pytest.raises(ConfigError, match="descriptor_weight"):
        tiny_cfg(descriptor_weight=bad)
