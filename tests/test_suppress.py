"""Suppression of sources other than the central galaxy, on small synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_retrieval.errors import CatalogError, ConfigError
from galaxy_retrieval.suppress import (
    PRESETS,
    SuppressConfig,
    detect_sources,
    suppress_batch,
    suppress_sources,
)

SIZE = 128
C = (SIZE - 1) / 2
STAR = (100.0, 28.0)  # x (column), y (row)
SKY_SIGMA = 1.0


def _yx() -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[:SIZE, :SIZE].astype(float)


def _galaxy(
    x0: float = C, y0: float = C, flux: float = 10000.0, re: float = 7.0, q: float = 0.6
) -> np.ndarray:
    """An inclined exponential disk (Sérsic n = 1) plus a small bulge."""
    y, x = _yx()
    u, v = x - x0, y - y0
    r = np.hypot(u * np.cos(0.5) + v * np.sin(0.5), (-u * np.sin(0.5) + v * np.cos(0.5)) / q)
    disk = np.exp(-1.678 * r / re)
    bulge = np.exp(-0.5 * ((u**2 + v**2) / 1.5**2))
    img = disk / disk.sum() * 0.8 + bulge / bulge.sum() * 0.2
    return flux * img


def _point(x0: float, y0: float, flux: float, sigma: float = 1.6) -> np.ndarray:
    y, x = _yx()
    g = np.exp(-0.5 * ((x - x0) ** 2 + (y - y0) ** 2) / sigma**2)
    return flux * g / g.sum()


def _stretch(flux: np.ndarray, colour: tuple[float, float, float] = (1.0, 0.9, 0.8)) -> np.ndarray:
    """asinh stretch to uint8, the way survey cutouts are made (sky at a grey of ~20)."""
    planes = [np.arcsinh(flux * c / (2 * SKY_SIGMA) + 0.5) for c in colour]
    rgb = np.stack(planes, axis=-1) / np.arcsinh(400.0) * 255.0
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _scene(seed: int = 0, star_flux: float = 3000.0) -> tuple[np.ndarray, np.ndarray]:
    """(image, image without the star), same noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, SKY_SIGMA, (SIZE, SIZE))
    base = _galaxy() + noise
    return _stretch(base + _point(*STAR, star_flux)), _stretch(base)


def _disk(x0: float, y0: float, r: float) -> np.ndarray:
    y, x = _yx()
    return (x - x0) ** 2 + (y - y0) ** 2 <= r**2


def test_star_is_replaced_by_sky_and_galaxy_is_untouched():
    img, no_star = _scene()
    out, det = suppress_sources(img, return_mask=True)
    assert out.shape == img.shape and out.dtype == np.uint8
    sky = no_star[_disk(C, C, 50) == 0].reshape(-1, 3).astype(float)  # corners: pure sky
    ap = _disk(*STAR, 5)
    assert det.suppressed[ap].all()
    for ch in range(3):
        before = img[..., ch][ap].mean()
        after = out[..., ch][ap].mean()
        assert before > sky[:, ch].mean() + 4 * sky[:, ch].std()  # the star was there
        # the aperture's mean (81 pixels) is the sky's to well within one pixel rms
        assert abs(after - sky[:, ch].mean()) < 0.5 * sky[:, ch].std()
    centre = _disk(C, C, 8)
    assert det.kept[centre].all()
    np.testing.assert_array_equal(out[centre], img[centre])
    # pixels never suppressed are copied exactly
    np.testing.assert_array_equal(out[~det.suppressed], img[~det.suppressed])
    assert det.segmap[int(C), int(C)] == det.central != 0


def test_fill_looks_like_the_sky_around_it():
    img, _ = _scene(seed=1, star_flux=20000.0)  # a bright star with a wide footprint
    out, det = suppress_sources(img, return_mask=True)
    filled = out[det.suppressed].astype(float)
    sky = img[(det.segmap == 0) & ~det.suppressed & ~_disk(C, C, 40)].astype(float)
    assert filled.shape[0] > 100
    np.testing.assert_allclose(filled.mean(axis=0), sky.mean(axis=0), atol=1.5)
    np.testing.assert_allclose(filled.std(axis=0), sky.std(axis=0), rtol=0.25)


def test_background_fill_is_smooth_sky_level():
    img, _ = _scene()
    out, det = suppress_sources(img, SuppressConfig(fill="background"), return_mask=True)
    sky = img[(det.segmap == 0) & ~_disk(C, C, 50)].astype(float)
    filled = out[det.suppressed].astype(float)
    assert np.abs(filled.mean(axis=0) - np.median(sky, axis=0)).max() < 3
    assert filled.std(axis=0).max() < 2  # no noise added


def test_deterministic():
    img, _ = _scene()
    a = suppress_sources(img)
    b = suppress_sources(img.copy())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img)


def test_blank_and_tiny_images_unchanged():
    for img in (
        np.zeros((64, 64, 3), np.uint8),
        np.full((64, 64, 3), 20, np.uint8),
        np.full((5, 5, 3), 200, np.uint8),
    ):
        out, det = suppress_sources(img, return_mask=True)
        np.testing.assert_array_equal(out, img)
        assert out is not img
        assert det.central == 0 and not det.suppressed.any()


def test_grayscale_input():
    img, _ = _scene()
    gray = np.ascontiguousarray(img[..., 1])
    out, det = suppress_sources(gray, return_mask=True)
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert det.suppressed[_disk(*STAR, 4)].all()
    np.testing.assert_array_equal(out[_disk(C, C, 12)], gray[_disk(C, C, 12)])
    # grey stored as RGB stays grey
    rgb = np.repeat(gray[..., None], 3, axis=2)
    out3 = suppress_sources(rgb)
    assert (out3[..., 0] == out3[..., 1]).all() and (out3[..., 1] == out3[..., 2]).all()


def test_no_source_near_centre_leaves_image_unchanged():
    rng = np.random.default_rng(3)
    flux = rng.normal(0, SKY_SIGMA, (SIZE, SIZE)) + _point(20, 20, 3000) + _point(110, 100, 3000)
    img = _stretch(flux)
    out, det = suppress_sources(img, return_mask=True)
    assert det.n_sources >= 2 and det.central == 0
    np.testing.assert_array_equal(out, img)


def test_blended_companion_kept_by_default():
    rng = np.random.default_rng(4)
    pair = (
        _galaxy(flux=3000, re=5)
        + _galaxy(C + 14, C - 6, flux=2500, re=4)
        + rng.normal(0, SKY_SIGMA, (SIZE, SIZE))
    )
    img = _stretch(pair)
    comp = _disk(C + 14, C - 6, 3)
    out, det = suppress_sources(img, return_mask=True)
    assert det.n_sources >= 2  # the deblender split the pair ...
    assert det.kept[comp].all()  # ... but the companion is part of the object
    np.testing.assert_array_equal(out[comp], img[comp])
    _, det2 = suppress_sources(img, SuppressConfig(keep_blended=False), return_mask=True)
    assert det2.suppressed[comp].all()


def test_radio_preset_keeps_lobes():
    # FIRST-like: zero sky (pixels under 3 sigma clipped), a core and two lobes
    lobes = [(C - 25, C + 15), (C + 25, C - 15)]  # 29 px out: within 0.3 x 128
    flux = _point(C, C, 300, 1.5) + sum(_point(x, y, 2000, 2.5) for x, y in lobes)
    img = np.clip(flux * 20, 0, 255).astype(np.uint8)
    out = suppress_sources(img)
    for x, y in lobes:
        assert out[_disk(x, y, 3)].max() == 0  # optical default: the lobes are other sources
    out_radio, det = suppress_sources(img, PRESETS["radio"], return_mask=True)
    np.testing.assert_array_equal(out_radio, img)
    assert det.n_sources == 3


def test_batch_array_and_list():
    img, _ = _scene()
    batch = np.stack([img, img[::-1].copy()])
    out = suppress_batch(batch)
    assert isinstance(out, np.ndarray) and out.shape == batch.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], suppress_sources(img))
    outl = suppress_batch([img, img[..., 0].copy()])
    assert isinstance(outl, list) and outl[1].shape == (SIZE, SIZE)
    np.testing.assert_array_equal(outl[0], out[0])
    with pytest.raises(CatalogError, match="list of images"):
        suppress_batch(img)  # one (H, W, 3) image is not a batch of grey images


def test_sep_failure_retries_then_gives_up(monkeypatch):
    import sep

    img, _ = _scene()
    real = sep.extract
    calls = []

    def flaky(*a, **k):
        calls.append(a[1])
        if len(calls) == 1:
            raise Exception("object deblending overflow")
        return real(*a, **k)

    monkeypatch.setattr(sep, "extract", flaky)
    det = detect_sources(img)
    assert calls == [1.5, 3.0] and det.thresh == 3.0 and det.suppressed.any()

    def broken(*a, **k):
        raise Exception("internal pixel buffer full")

    monkeypatch.setattr(sep, "extract", broken)
    np.testing.assert_array_equal(suppress_sources(img), img)


def test_the_pixel_buffer_is_sized_to_each_image_so_a_large_source_never_overflows_it():
    import sep

    from galaxy_retrieval.framing import Framing, frame_box

    img, _ = _scene()
    want = detect_sources(img)
    rng = np.random.default_rng(0)
    frame_box(rng.integers(0, 40, (40, 40, 3), dtype=np.uint8), Framing(mode="auto"))
    assert sep.get_extract_pixstack() == 40 * 40  # sized to the small image (~0.65 ms saved a call)
    # then an image whose central source covers thousands of pixels: the buffer grows to it,
    # no retry at a higher threshold
    big = _stretch(_galaxy(flux=2e6, re=30.0))
    det = detect_sources(big)
    assert (
        det.thresh == SuppressConfig().thresh and det.central > 0 and (det.segmap == det.central).sum() > 1600
    )
    assert sep.get_extract_pixstack() == big.shape[0] * big.shape[1]
    got = detect_sources(img)
    np.testing.assert_array_equal(got.segmap, want.segmap)


def test_config_round_trip():
    cfg = SuppressConfig(thresh=2.0, keep_radius=0.25, fill="background")
    assert SuppressConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="tresh"):
        SuppressConfig.from_dict({"tresh": 2.0})


@pytest.mark.parametrize(
    "field,value",
    [
        ("thresh", 0.0),
        ("thresh", float("nan")),
        ("minarea", 0),
        ("minarea", 2.5),
        ("deblend_cont", 1.5),
        ("deblend_nthresh", 0),
        ("back_size", 2),
        ("dilate", -1),
        ("grow", -0.1),
        ("center_radius", 2.0),
        ("keep_radius", -0.5),
        ("keep_blended", "yes"),
        ("fill", "zero"),
    ],
)
def test_bad_config(field, value):
    with pytest.raises(ConfigError, match=field):
        SuppressConfig(**{field: value})


def test_bad_image():
    with pytest.raises(CatalogError, match="uint8"):
        suppress_sources(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(CatalogError, match="shape"):
        suppress_sources(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match="SuppressConfig"):
        suppress_sources(np.zeros((32, 32, 3), np.uint8), {"thresh": 2})
