"""Object-aware framing: the box of a galaxy of known size, fallbacks, specs."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.framing import Framing, FramingStats, frame_box, frame_images


def _scene(
    size: int, re: float, cx: float, cy: float, seed: int = 0, star: tuple[float, float] | None = None
) -> np.ndarray:
    """An exponential disc of scale length ``re`` px at (cx, cy) on noisy sky, uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    r = np.hypot(xx - cx, yy - cy)
    img = 200.0 * np.exp(-r / re)
    if star is not None:  # a bright point source with a PSF-sized core
        img += 255.0 * np.exp(-0.5 * (np.hypot(xx - star[0], yy - star[1]) / 1.5) ** 2)
    img = img + 10 + rng.normal(0, 2.0, img.shape)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _petrosian_exp(re: float) -> float:
    # Petrosian radius (η = 0.2) of an exponential profile I0·exp(−r/h): the root of
    # e^−x / (2/x² · (1 − (1 + x)·e^−x)) = 0.2, x = r/h ≈ 3.6
    return 3.6 * re


@pytest.mark.parametrize("re", [4.0, 8.0, 16.0])
@pytest.mark.parametrize("offset", [(0, 0), (4, -3)])
def test_auto_box_scales_with_the_galaxy_and_is_centred_on_it(re, offset):
    size = 256
    cx, cy = (size - 1) / 2 + offset[0], (size - 1) / 2 + offset[1]
    f = Framing.parse("auto")
    box = frame_box(_scene(size, re, cx, cy), f)
    assert box.found
    want = 2 * f.margin * _petrosian_exp(re)
    assert 0.85 * want <= box.side <= 1.2 * want, (box.side, want)
    # the galaxy's centre is the box's centre (within 2 px)
    assert abs(box.left + box.side / 2 - (cx + 0.5)) <= 2 and abs(box.top + box.side / 2 - (cy + 0.5)) <= 2


def test_auto_box_ignores_a_bright_star_beside_the_galaxy():
    size, re = 256, 6.0
    c = (size - 1) / 2
    plain = frame_box(_scene(size, re, c, c), Framing(mode="auto"))
    starred = frame_box(_scene(size, re, c, c, star=(c + 40, c - 10)), Framing(mode="auto"))
    assert starred.found and abs(starred.side - plain.side) <= 0.15 * plain.side


def test_a_galaxy_filling_the_frame_keeps_the_whole_frame():
    size = 128
    box = frame_box(_scene(size, 40.0, 63.5, 63.5), Framing(mode="auto"))
    assert box.found and box.side == size and (box.top, box.left) == (0, 0)


def test_a_tiny_source_gets_the_minimum_box_and_boxes_stay_inside_the_frame():
    size = 200
    f = Framing(mode="auto")
    box = frame_box(_scene(size, 0.6, 99.5, 99.5), f)
    assert box.found and box.side == round(f.min_fraction * size)
    # a galaxy near an edge: the box is shifted to stay inside
    edge = frame_box(_scene(size, 8.0, 120.0, 110.0), Framing(mode="auto", center_radius=0.2))
    assert edge.top >= 0 and edge.left >= 0 and edge.top + edge.side <= size and edge.left + edge.side <= size


def test_empty_or_blank_frames_fall_back_to_the_whole_frame_and_are_counted():
    rng = np.random.default_rng(1)
    sky = np.clip(rng.normal(20, 2, (100, 120, 3)), 0, 255).astype(np.uint8)
    blank = np.zeros((100, 120, 3), np.uint8)
    tiny = np.zeros((5, 5, 3), np.uint8)
    stats = FramingStats()
    views = frame_images([sky, blank, tiny, _scene(100, 4.0, 49.5, 49.5)], Framing(mode="auto"), stats)
    assert [v.shape[:2] for v in views[:3]] == [(100, 100), (100, 100), (5, 5)]
    assert stats.images == 4 and stats.fallback == 3
    assert views[3].shape[0] < 100


def test_fixed_and_none_framing_are_centred_squares():
    im = np.zeros((100, 140, 3), np.uint8)
    assert frame_box(im, Framing()).side == 100
    b = frame_box(im, Framing.parse("fixed:0.5"))
    assert (b.top, b.left, b.side) == (25, 45, 50)


def test_specs_parse_and_print_and_bad_ones_are_refused():
    assert Framing.parse("auto") == Framing(mode="auto")
    assert Framing.parse("AUTO:2").margin == 2.0
    assert Framing.parse("fixed:0.3") == Framing(mode="fixed", fraction=0.3)
    for spec in ("none", "auto", "auto:2", "fixed:0.3"):
        assert Framing.parse(spec).spec == spec
    assert Framing.from_dict(Framing.parse("auto:2").to_dict()) == Framing.parse("auto:2")
    for bad in ("centre", "fixed", "fixed:x", "fixed:2", "auto:0.1", "none:3"):
        with pytest.raises(ConfigError, match="framing"):
            Framing.parse(bad)


def test_auto_framing_through_preprocessing_matches_cutting_then_resizing():
    import torch

    from galaxy_retrieval.model.preprocess import images_to_float

    ims = [_scene(160, 5.0, 79.5, 79.5, seed=s) for s in range(3)]
    f = Framing(mode="auto")
    got = images_to_float(ims, 32, framing=f)
    boxes = [frame_box(im, f) for im in ims]
    want = torch.cat([images_to_float([b.cut(im)], 32) for b, im in zip(boxes, ims)])
    assert torch.equal(got, want)
    # a channel-first uint8 tensor gives the same
    t = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)
    assert torch.equal(images_to_float(t, 32, framing=f), got)


def test_the_checkpoint_framing_makes_embeddings_independent_of_the_cutout_size():
    """A galaxy cut out at 96 px or at 192 px (the same pixels plus more sky) is the same
    object: with auto framing the model sees the same square, so the vectors agree."""
    from galaxy_retrieval.model import Embedder, create_model
    from galaxy_retrieval.model.presets import preset

    big = _scene(192, 5.0, 95.5, 95.5, seed=3)
    small = big[48:144, 48:144]
    cfg = preset("tiny", framing=Framing(mode="auto"))
    framed = Embedder.from_model(create_model(cfg, seed=0), device="cpu")
    whole = Embedder.from_model(create_model("tiny", seed=0), device="cpu")
    a, b = framed.embed([big, small])
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    c, d = whole.embed([big, small])  # the same network without framing sees two sizes
    assert np.abs(c - d).max() > 2 * np.abs(a - b).max()
    # what the model sees: the galaxy at the same apparent size with framing, at half the
    # size in the larger cutout without
    from galaxy_retrieval.model.preprocess import images_to_float

    def size(x):  # flux-weighted rms radius of the grey image above its border level
        g = x.mean(dim=0)
        g = (g - g[0].median()).clamp(min=0)
        yy, xx = np.indices(g.shape)
        c = (g.shape[0] - 1) / 2
        return float(np.sqrt((g.numpy() * ((yy - c) ** 2 + (xx - c) ** 2)).sum() / g.numpy().sum()))

    xf = images_to_float([big, small], 32, framing=Framing(mode="auto"))
    xw = images_to_float([big, small], 32)
    assert abs(size(xf[0]) / size(xf[1]) - 1) < 0.15
    assert size(xw[0]) / size(xw[1]) < 0.8  # 0.5 for the light alone; sky noise pulls it up


def test_framing_cut_is_the_one_cut_for_every_mode():
    """``Framing.cut``: none/fixed slice a batch (either channel order, arrays or tensors)
    with one centred box; auto cuts each image to its own box; images_to_float uses it."""
    import torch

    from galaxy_retrieval.model.preprocess import images_to_float

    rng = np.random.default_rng(0)
    ims = rng.integers(0, 256, (2, 60, 80, 3), dtype=np.uint8)
    fixed = Framing.parse("fixed:0.5")
    batch = fixed.cut(ims)
    assert batch.shape == (2, 30, 30, 3) and np.shares_memory(batch, ims)
    assert np.array_equal(batch, ims[:, 15:45, 25:55])
    t = torch.from_numpy(ims).permute(0, 3, 1, 2)
    assert torch.equal(fixed.cut(t, channels_first=True), t[:, :, 15:45, 25:55])
    assert np.array_equal(Framing().cut(ims), ims[:, :, 10:70])
    # a list: one view per image, whatever its size
    views = fixed.cut([ims[0], ims[1, :40, :40]])
    assert [v.shape for v in views] == [(30, 30, 3), (20, 20, 3)]
    auto = Framing(mode="auto")
    scene = _scene(100, 4.0, 49.5, 49.5)
    (v,) = auto.cut(np.stack([scene]))
    box = frame_box(scene, auto)
    assert np.array_equal(v, box.cut(scene)) and v.shape[0] < 100
    assert torch.equal(
        images_to_float(np.stack([scene]), 16, framing=auto), images_to_float([box.cut(scene)], 16)
    )


def test_the_measuring_scale_is_the_power_of_two_a_jpeg_draft_decode_has():
    from galaxy_retrieval.catalog.images import draft_scale
    from galaxy_retrieval.framing import MEASURE_SIDE, measure_scale

    assert MEASURE_SIDE == 64
    # 128-px SDSS cutouts at 64 px, 424-px GZ2 ones at 106 px, 256-px DECaLS ones at 64 px
    assert [measure_scale(s, s) for s in (63, 100, 127, 128, 256, 424, 1024)] == [1, 1, 1, 2, 4, 4, 16]
    assert measure_scale(424, 300) == 4 and measure_scale(424, 424, side=0) == 1
    for s in (100, 128, 256, 424, 1024):  # the decoder stops at 1/8; binning goes on from there
        assert draft_scale(s, s, MEASURE_SIDE) == min(8, measure_scale(s, s))


def _reference_detection_image(a: np.ndarray, f: int) -> np.ndarray:
    """The channel sum in float64, averaged over f × f blocks (what framing measured on)."""
    det = a.astype(np.float64).sum(axis=2)
    hb, wb = det.shape[0] // f, det.shape[1] // f
    return det[: hb * f, : wb * f].reshape(hb, f, wb, f).mean(axis=(1, 3))


@pytest.mark.parametrize("f", [1, 2, 4, 8])
def test_the_binned_detection_image_is_the_float_block_mean_exactly(f):
    from galaxy_retrieval.framing import _detection_image

    rng = np.random.default_rng(f)
    for shape in ((128, 128, 3), (131, 97, 3), (64, 80, 1)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(_detection_image(a, f), _reference_detection_image(a, f))
    a = rng.random((40, 48, 3))  # float pixels: summed as floats
    np.testing.assert_allclose(_detection_image(a, f), _reference_detection_image(a, f), rtol=1e-12)


def _reference_petrosian(data, x, y, usable, eta):
    """The Petrosian radius as first written (whole-image index grids, masked gathers)."""
    h, w = data.shape
    yy, xx = np.indices((h, w))
    ri = np.floor(np.hypot(xx - x, yy - y)).astype(np.int64)
    rmax = int(min(x, y, w - 1 - x, h - 1 - y)) + 1
    sel = usable & (ri < rmax)
    if rmax < 3 or not sel.any():
        return None
    s = np.bincount(ri[sel], weights=data[sel], minlength=rmax)[:rmax]
    n = np.bincount(ri[sel], minlength=rmax)[:rmax].astype(np.float64)
    ok = n > 0
    if not ok.all():
        idx = np.arange(rmax)
        mu = np.interp(idx, idx[ok], s[ok] / n[ok])
        n = np.where(ok, n, 2 * np.pi * (idx + 0.5))
        s = np.where(ok, s, mu * n)
    local = np.convolve(np.pad(s / n, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    inner = np.cumsum(s) / np.cumsum(n)
    below = np.nonzero((np.arange(rmax) >= 2) & (inner > 0) & (local <= eta * inner))[0]
    return float(rmax) if below.size == 0 else float(below[0]) + 0.5


def test_the_petrosian_radius_is_the_reference_one_exactly():
    from galaxy_retrieval.framing import _petrosian_radius

    rng = np.random.default_rng(3)
    for t in range(300):
        h, w = int(rng.integers(8, 100)), int(rng.integers(8, 100))
        x, y = float(rng.uniform(-1, w)), float(rng.uniform(-1, h))
        if t % 4 == 0:
            x, y = float(round(x)), float(round(y))  # whole-pixel centres: exact distances
        yy, xx = np.indices((h, w))
        data = rng.normal(0, 1, (h, w)) + 50 * np.exp(-np.hypot(xx - x, yy - y) / rng.uniform(1, 10))
        usable = rng.random((h, w)) > rng.uniform(0, 0.6)
        assert _petrosian_radius(data, x, y, usable, 0.2) == _reference_petrosian(data, x, y, usable, 0.2)


def test_a_small_galaxy_is_measured_again_finer_and_a_large_one_once_at_the_coarse_scale(monkeypatch):
    import galaxy_retrieval.framing as framing

    sides: list[int] = []
    measure = framing._measure
    monkeypatch.setattr(framing, "_measure", lambda det, *a: sides.append(det.shape[0]) or measure(det, *a))
    f = Framing(mode="auto", margin=1.49)  # a setting of its own: not in frame_box's cache
    # R_P ≈ 11 px in a 128-px frame: 5 px when binned by 2, too few: remeasured at full size
    small = _scene(128, 3.0, 63.5, 63.5)
    assert frame_box(small, f) == framing.measure_box(small, f, (128, 128), side=0)
    assert sides == [64, 128, 128]
    # a 256-px frame binned by 4: R_P ≈ 14 px is 3.6 binned pixels, remeasured unbinned
    sides.clear()
    tiny = _scene(256, 4.0, 127.5, 127.5)
    assert frame_box(tiny, f) == framing.measure_box(tiny, f, (256, 256), side=0)
    assert sides == [64, 256, 256]
    # R_P ≈ 29 px: 14 binned pixels, resolved at 64 px; within a few pixels of the full-size box
    sides.clear()
    large = _scene(128, 8.0, 63.5, 63.5)
    coarse, exact = frame_box(large, f), framing.measure_box(large, f, (128, 128), side=0)
    assert sides == [64, 128]
    assert abs(coarse.side - exact.side) <= 0.1 * exact.side
