"""A label-free auxiliary target: the embedding must linearly predict the standardised
polar Fourier descriptor of the clean training image (issue 20).

Why: the classical rotation-invariant descriptor still beats the network on smooth
ellipticals, where the radial light profile is what separates classes, and a contrastive
loss alone is free to drop that profile once it can tell augmented copies apart. Asking a
linear head on the embedding to reproduce the descriptor keeps that information in the
vector the index stores (the head itself is thrown away; only the backbone is saved).

The target of both augmented views of an image is the descriptor of the image as the model
would see it un-augmented (framed, resized), computed once per run; so the head also learns
to see through the augmentations. The head starts at the ridge-regression solution on the
initial embeddings when training starts from trained weights, so a fine-tuned model is not
pushed around by a random head at step 0; from scratch it starts at zero.
"""

from __future__ import annotations

import numpy as np
import torch

from ..descriptors import polar_fourier_features
from ..model.fusion import standardisation
from .validate import embed_uint8

__all__ = ["DescriptorTarget", "fit_descriptor_target"]

_CHUNK = 512
# ridge strength relative to the mean eigenvalue of the embeddings' Gram matrix: a head
# with small weights, so that views the fit never saw (augmented, batch statistics in
# training mode) are not mapped to wild predictions
_RIDGE = 1e-1


def _unit(z: torch.Tensor) -> torch.Tensor:
    # the head reads the direction of the vector, which is what the cosine term of the
    # score and every neighbour list depend on; a bounded input also bounds its output
    return torch.nn.functional.normalize(z, dim=1)


class DescriptorTarget(torch.nn.Module):
    """The linear head (embedding → descriptor) and the descriptors of the training images."""

    def __init__(self, targets: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.register_buffer("targets", targets.float())
        self.head = torch.nn.Linear(dim, targets.shape[1])

    def loss(self, emb: torch.Tensor, positions: torch.Tensor, n_views: int) -> torch.Tensor:
        """Mean squared error of the head's prediction from the first ``n_views`` ×
        len(positions) rows of ``emb`` (the views of the batch's images, view-major, as
        :func:`~galaxy_retrieval.train.pairs.make_pair_batch` stacks them) against the
        descriptors of the images at ``positions``."""
        k = len(positions)
        y = self.targets[positions.to(self.targets.device)].repeat(n_views, 1)
        pred = self.head(_unit(emb[: n_views * k].float()))
        # Huber, not squared error: an augmented view far from its clean image (strong noise,
        # a stretch) must not send a gradient large enough to undo a pretrained backbone
        return torch.nn.functional.smooth_l1_loss(pred, y)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The head's weights, for the resume point."""
        return {"descriptor_head.weight": self.head.weight, "descriptor_head.bias": self.head.bias}

    def load_state_tensors(self, extra: dict[str, torch.Tensor]) -> bool:
        """Restore the head from a resume point's tensors; False when they are not there."""
        w, b = extra.get("descriptor_head.weight"), extra.get("descriptor_head.bias")
        if w is None or b is None:
            return False
        with torch.no_grad():
            self.head.weight.copy_(w)
            self.head.bias.copy_(b)
        return True


def _descriptors(images_uint8) -> np.ndarray:
    """Standardised polar Fourier descriptors of an image store's images, chunk by chunk."""
    n = len(images_uint8)
    parts = [
        polar_fourier_features(images_uint8.get(torch.arange(lo, min(n, lo + _CHUNK))).float() / 255.0)
        for lo in range(0, n, _CHUNK)
    ]
    d = np.concatenate(parts).astype(np.float64)
    mu, sd = standardisation(d)
    return ((d - mu) / sd).astype(np.float32)


def _embeddings(model, store, device) -> torch.Tensor:
    """Unit float32 vectors of every image in ``store``, in eval mode (the fit's batch norm
    uses its running statistics, as the searcher will)."""
    was_training = model.training
    model.eval()
    n = len(store)
    out = [
        embed_uint8(model, store.get(torch.arange(lo, min(n, lo + _CHUNK))), device, "fp32")
        for lo in range(0, n, _CHUNK)
    ]
    model.train(was_training)
    return _unit(torch.cat(out))


def fit_descriptor_target(model, store, device, fit_head: bool = True) -> DescriptorTarget:
    """Descriptors of the training images in ``store`` and a head fitted to them by ridge
    regression on ``model``'s current embeddings (eval mode, float32) when ``fit_head``;
    otherwise a zero head (predicting the mean). A randomly initialised network embeds
    every image in nearly the same direction, and a head fitted to those nearly collinear
    vectors has weights large enough to swamp the contrastive loss once training moves
    them: fit only a trained start."""
    d = torch.from_numpy(_descriptors(store))
    if not fit_head:
        target = DescriptorTarget(d, model.config.out_dim)
        with torch.no_grad():
            target.head.weight.zero_()
            target.head.bias.zero_()
        return target.to(device)
    z = _embeddings(model, store, device).double()
    target = DescriptorTarget(d, z.shape[1])
    zm, dm = z.mean(0), d.double().mean(0)
    zc, dc = z - zm, d.double() - dm
    gram = zc.T @ zc
    lam = _RIDGE * float(torch.diagonal(gram).mean().clamp_min(1e-12))
    w = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), zc.T @ dc)  # (dim, D)
    with torch.no_grad():
        target.head.weight.copy_(w.T.float())
        target.head.bias.copy_((dm - zm @ w).float())
    return target.to(device)
