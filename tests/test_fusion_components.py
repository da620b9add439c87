"""The fused descriptor projected on its leading principal axes (model/fusion.py): the axes
come from the training images alone, survive the checkpoint's round trip, and keep what
the full descriptor says about which images are alike."""

import numpy as np
import pytest
import torch

from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.model.fusion import DescriptorFusion, fit_fusion, principal_axes


def _images(n: int = 40, seed: int = 0) -> torch.Tensor:
    """Round blobs of random size, elongation and colour: descriptors that vary."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32] - 15.5
    out = []
    for _ in range(n):
        r, q, th = g.uniform(3, 10), g.uniform(0.3, 1), g.uniform(0, np.pi)
        u = xx * np.cos(th) + yy * np.sin(th)
        v = (-xx * np.sin(th) + yy * np.cos(th)) / q
        blob = np.exp(-(u**2 + v**2) / (2 * r**2))
        out.append(np.stack([blob * c for c in g.uniform(0.3, 1, 3)]))
    return torch.tensor(np.array(out), dtype=torch.float32)


def test_principal_axes_are_orthonormal_ordered_and_signed_the_same_way_every_time():
    g = np.random.default_rng(1)
    d = g.normal(size=(200, 6)) * np.array([5, 3, 2, 1, 0.5, 0.1])
    a = principal_axes(d, 3)
    np.testing.assert_allclose(a @ a.T, np.eye(3), atol=1e-10)
    var = ((d - d.mean(0)) @ a.T).var(axis=0)
    assert var[0] > var[1] > var[2]
    np.testing.assert_allclose(np.abs(a[0]), np.eye(6)[0], atol=0.1)  # the widest direction
    assert np.all(a[np.arange(3), np.abs(a).argmax(axis=1)] > 0)
    np.testing.assert_array_equal(principal_axes(-d, 3), principal_axes(-d, 3))
    np.testing.assert_allclose(np.abs(principal_axes(-d, 3)), np.abs(a), atol=1e-10)
    with pytest.raises(ConfigError, match="components"):
        principal_axes(d, 0)
    with pytest.raises(ConfigError, match="exceeds"):
        principal_axes(d[:2], 3)


def test_fusion_with_components_projects_round_trips_and_keeps_the_neighbours():
    x = _images()
    full = fit_fusion([x[:20], x[20:]], share=0.1)
    small = fit_fusion([x[:20], x[20:]], share=0.1, components=8)
    assert full.dim == 432 and small.dim == 8 and small.mean == full.mean
    d_full, d_small = full.descriptor_of(x), small.descriptor_of(x)
    assert d_small.shape == (40, 8)
    np.testing.assert_allclose(d_small, d_full @ np.asarray(small.components, np.float32).T, atol=1e-4)
    # 8 axes of these simple blobs hold nearly all the descriptor's variance: distances agree
    dist_full = np.linalg.norm(d_full[:, None] - d_full[None], axis=2)
    dist_small = np.linalg.norm(d_small[:, None] - d_small[None], axis=2)
    assert np.corrcoef(dist_full.ravel(), dist_small.ravel())[0, 1] > 0.95
    back = DescriptorFusion.from_dict(small.to_dict())
    assert back == small
    np.testing.assert_array_equal(back.descriptor_of(x), d_small)
    # a checkpoint written before the option has no components: the whole descriptor
    legacy = {k: v for k, v in full.to_dict().items() if k != "components"}
    assert DescriptorFusion.from_dict(legacy).dim == 432
    # fewer images than axes: as many axes as the images span
    assert fit_fusion([x[:5]], share=0.1, components=32).dim == 5
    with pytest.raises(ConfigError, match="rows"):
        DescriptorFusion(share=0.1, mean=(0.0, 0.0), std=(1.0, 1.0), components=((1.0,),))
