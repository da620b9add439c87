"""Classical baselines: the rotation-invariant polar descriptor and non-parametric morphology."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_retrieval.evaluate.descriptors import (
    MORPHOLOGY_NAMES,
    morphology_features,
    pixel_features,
    polar_fourier_features,
    standardize,
)


def _galaxy(size: int = 64, q: float = 0.5, angle: float = 0.3, arms: bool = True) -> torch.Tensor:
    """(3, S, S) in [0, 1]: an inclined exponential disc with a two-armed spiral pattern."""
    yy, xx = np.indices((size, size)).astype(np.float64)
    c = (size - 1) / 2
    x, y = xx - c, yy - c
    xr = x * np.cos(angle) + y * np.sin(angle)
    yr = (-x * np.sin(angle) + y * np.cos(angle)) / q
    r = np.hypot(xr, yr)
    img = np.exp(-r / 6.0)
    if arms:
        img *= 1 + 0.6 * np.cos(2 * np.arctan2(yr, xr) - 0.5 * r)
    img = img / img.max()
    return torch.tensor(np.stack([img * 0.9, img, img * 0.7]), dtype=torch.float32)


def test_polar_descriptor_is_invariant_to_rotation_and_flips_but_not_to_shape():
    g = _galaxy()[None]
    rotated = [torch.rot90(g, k, (2, 3)) for k in (1, 2, 3)] + [g.flip(3), g.flip(2)]
    f0 = polar_fourier_features(g)
    for r in rotated:
        np.testing.assert_allclose(polar_fourier_features(r), f0, rtol=1e-4, atol=1e-5)
    # an arbitrary angle: equal up to interpolation (the pixel grid of a steep core)
    f36 = polar_fourier_features(_galaxy(angle=0.3 + np.pi / 5)[None])
    err = np.abs(f36 - f0).sum()
    assert err < 0.08 * np.abs(f0).sum()
    # the same disc without arms, and a face-on one, are much farther than the rotation error
    for other in (_galaxy(arms=False), _galaxy(q=1.0, arms=False)):
        assert np.abs(polar_fourier_features(other[None]) - f0).sum() > 4 * err
    assert f0.shape == (1, 3 * 16 * 9)


def _sersic_image(n: float, size: int = 96, re: float = 8.0) -> torch.Tensor:
    yy, xx = np.indices((size, size)).astype(np.float64)
    c = (size - 1) / 2
    r = np.hypot(xx - c, yy - c)
    b = 2 * n - 1 / 3 + 0.009876 / n  # Ciotti & Bertin (1999)
    img = np.exp(-b * ((r / re) ** (1 / n) - 1))
    img = img / img.max()
    return torch.tensor(np.stack([img, img, img]), dtype=torch.float32)


def test_concentration_of_known_profiles():
    # C = 5 log10(r80 / r20) of the growth curve: 2.14 for a Gaussian (n = 0.5: r20, r80 =
    # 0.668σ, 1.794σ), 2.80 for an exponential disc (n = 1: 0.824h, 2.994h), 5.2 for a de
    # Vaucouleurs profile (n = 4) in total light — whose wings reach far past a finite frame,
    # which lowers it
    f = morphology_features(torch.stack([_sersic_image(0.5), _sersic_image(1.0), _sersic_image(4.0)]))
    conc = f[:, MORPHOLOGY_NAMES.index("concentration")]
    assert conc[0] == pytest.approx(2.14, abs=0.1)
    assert conc[1] == pytest.approx(2.80, abs=0.12)
    assert 4.2 < conc[2] < 5.4
    # a point-symmetric image has no asymmetry; the spiral has some, an off-centre blob much more
    g = _galaxy(arms=False)
    blob = torch.zeros(3, 64, 64)
    blob[:, 20:30, 36:46] = 1.0
    a = morphology_features(torch.stack([g, _galaxy(), blob]))[:, MORPHOLOGY_NAMES.index("asymmetry")]
    assert a[0] < 0.02 and a[2] > 1.0
    e = morphology_features(torch.stack([_galaxy(q=1.0, arms=False), _galaxy(q=0.4, arms=False)]))
    ell = e[:, MORPHOLOGY_NAMES.index("ellipticity")]
    assert ell[0] < 0.05 and 0.45 < ell[1] < 0.75


def test_pixel_features_and_standardize():
    x = torch.rand(4, 3, 64, 64)
    f = pixel_features(x)
    assert f.shape == (4, 3 * 16 * 16)
    np.testing.assert_allclose(f[:, 0], x[:, 0, :4, :4].mean(dim=(1, 2)).numpy(), rtol=1e-5)
    z = standardize(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0], [1.0, 0.0]])
