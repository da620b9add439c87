"""The GalSim synthetic Galaxy10 generator on tiny catalogs (20 objects of 64² px)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from galaxy_retrieval.catalog import HDF5Catalog, open_catalog
from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.synth import SynthConfig, balanced_labels, generate_catalog
from galaxy_retrieval.viz import contact_sheet

TINY = dict(n=20, size=64, seed=3, chunk_size=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a parent that does not exist yet: the generator must create it
    out = tmp_path_factory.mktemp("synth") / "nested" / "tiny.h5"
    return generate_catalog(SynthConfig(**TINY, workers=1), out)


def _read(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as f:
        data = {k: f[k][()] for k in ("images", "ans", "ra", "dec", "redshift", "pxscale", "object_id")}
        data.update({f"truth/{k}": v[()] for k, v in f["truth"].items()})
    return data


def test_layout_shapes_and_dtypes(tiny: Path) -> None:
    with h5py.File(tiny) as f:
        assert f["images"].shape == (20, 64, 64, 3) and f["images"].dtype == np.uint8
        assert f["images"].chunks == (1, 64, 64, 3)
        assert f["ans"].dtype == np.uint8
        assert f["ra"].dtype == np.float64 and f["dec"].dtype == np.float64
        assert f["redshift"].dtype == np.float32 and f["pxscale"].dtype == np.float32
        assert f["object_id"].asstr()[:3].tolist() == ["synth-000000", "synth-000001", "synth-000002"]
        assert f.attrs["generator"] == "galaxy_retrieval.synth"
        assert int(f.attrs["seed"]) == 3 and int(f.attrs["size"]) == 64 and f.attrs["version"]
        ra, dec = f["ra"][:], f["dec"][:]
        assert ((ra >= 0) & (ra < 360)).all() and ((dec >= -20) & (dec <= 35)).all()
        np.testing.assert_allclose(f["pxscale"][:], 0.262, rtol=1e-6)
        images = f["images"][:]
    # the galaxy sits in the middle: the centre is brighter than the corners in every image
    centre = images[:, 28:36, 28:36].astype(float).mean(axis=(1, 2, 3))
    corners = (
        np.stack([images[:, a : a + 8, b : b + 8] for a in (0, 56) for b in (0, 56)])
        .astype(float)
        .mean(axis=(0, 2, 3, 4))
    )
    assert (centre > corners).all()


def test_all_ten_classes_balanced(tiny: Path) -> None:
    with h5py.File(tiny) as f:
        ans = f["ans"][:]
        np.testing.assert_array_equal(f["truth/class"][:], ans)
    assert np.bincount(ans, minlength=10).tolist() == [2] * 10
    np.testing.assert_array_equal(ans, balanced_labels(20, 3))
    # uneven n: counts differ by at most one
    counts = np.bincount(balanced_labels(23, 0), minlength=10)
    assert counts.max() - counts.min() == 1 and counts.sum() == 23


def test_truth_group(tiny: Path) -> None:
    cfg = SynthConfig(**TINY)
    with h5py.File(tiny) as f:
        t = f["truth"]
        for name in (
            "class",
            "sersic_n",
            "bulge_frac",
            "axis_ratio",
            "position_angle",
            "half_light_radius",
            "arm_pitch_deg",
            "n_arms",
            "has_bar",
            "n_stars",
            "n_neighbours",
        ):
            assert t[name].shape == (20,), name
        assert t["star_x"].shape == (20, cfg.max_stars) and t["neighbour_flux"].shape == (
            20,
            cfg.max_neighbours,
        )
        assert t["star_mask"].shape == (20, 64, 64)
        ans = f["ans"][:]
        n_stars, sx, sy, sf = t["n_stars"][:], t["star_x"][:], t["star_y"][:], t["star_flux"][:]
        pitch, has_bar, q = t["arm_pitch_deg"][:], t["has_bar"][:], t["axis_ratio"][:]
        mask = t["star_mask"][:]
    # the padded star table holds exactly n_stars rows per object, all inside the frame
    np.testing.assert_array_equal((~np.isnan(sx)).sum(axis=1), n_stars)
    ok = ~np.isnan(sx)
    assert ((sx[ok] >= 0) & (sx[ok] < 64) & (sy[ok] >= 0) & (sy[ok] < 64) & (sf[ok] > 0)).all()
    assert n_stars.sum() > 0, "foreground stars must appear"
    # a star bright enough to be masked is masked at its own position
    bright = ok & (sf > 200)
    for i, j in zip(*np.nonzero(bright)):
        assert mask[i, int(round(sy[i, j])), int(round(sx[i, j]))] == 1
    # class-specific truth: arms only on spirals, tight pitch < loose pitch, bars only on barred
    spiral = np.isin(ans, (5, 6, 7))
    assert (pitch[spiral] > 0).all() and (pitch[~spiral] == 0).all()
    assert pitch[ans == 6].max() < pitch[ans == 7].min()
    np.testing.assert_array_equal(has_bar == 1, ans == 5)
    assert q[np.isin(ans, (8, 9))].max() < q[ans == 2].min()


def test_same_seed_same_pixels_whatever_the_workers(tiny: Path, tmp_path: Path) -> None:
    # two processes and a different chunking: every object depends on (seed, index) only
    again = generate_catalog(SynthConfig(**{**TINY, "chunk_size": 4}, workers=2), tmp_path / "w2.h5")
    a, b = _read(tiny), _read(again)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    other = _read(generate_catalog(SynthConfig(**{**TINY, "n": 4, "seed": 4}, workers=1), tmp_path / "s4.h5"))
    assert not np.array_equal(other["images"], a["images"][:4])


def test_readable_by_the_catalog_reader(tiny: Path) -> None:
    cat = open_catalog(tiny)
    assert isinstance(cat, HDF5Catalog) and len(cat) == 20
    assert cat.image_shape == (64, 64, 3)
    assert {"label", "ra", "dec", "redshift", "pxscale"} <= set(cat.columns)
    with h5py.File(tiny) as f:
        ans = f["ans"][:]
        img7 = f["images"][7]
    np.testing.assert_array_equal(cat.labels(), ans)
    rec = cat[7]
    assert rec.object_id == "synth-000007" and rec.metadata["label"] == ans[7]
    np.testing.assert_array_equal(rec.image, img7)
    info = cat.info()
    assert info.extra["generator"] == "galaxy_retrieval.synth" and "truth" in info.extra["groups"]


@pytest.mark.parametrize(
    "bad, shown",
    [
        (dict(n=0), "n=0"),
        (dict(size=16), "size=16"),
        (dict(workers=0), "workers=0"),
        (dict(pixel_scale=-1.0), "pixel_scale=-1.0"),
        (dict(psf_fwhm=(1.4, 1.1)), "psf_fwhm=(1.4, 1.1)"),
        (dict(sky_sigma=(0.01, 0.0, 0.02)), "sky_sigma"),
        (dict(star_density=-1.0), "star_density=-1.0"),
        (dict(compression="zstd"), "compression='zstd'"),
        (dict(n=2.5), "n=2.5"),
    ],
)
def test_bad_config_raises_config_error(bad: dict[str, Any], shown: str) -> None:
    with pytest.raises(ConfigError) as e:
        SynthConfig(**bad)
    assert shown in str(e.value)
    assert isinstance(e.value, ValueError)


def test_failure_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import galaxy_retrieval.synth.generate as gen

    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(gen, "render_chunk", boom)
    out = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        generate_catalog(SynthConfig(n=3, size=32, workers=1), out)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="directory"):
        generate_catalog(SynthConfig(n=1, size=32, workers=1), tmp_path)


def test_progress_is_reported(tmp_path: Path) -> None:
    from contextlib import contextmanager

    seen: dict[str, Any] = {"advanced": 0, "logs": []}

    class Recorder:
        @contextmanager
        def task(self, description: str, total: float | None = None, unit: str = "it"):
            seen.update(description=description, total=total, unit=unit)

            class H:
                def advance(self, n: float = 1) -> None:
                    seen["advanced"] += n

                def update(self, **fields: Any) -> None:
                    seen["fields"] = fields

            yield H()

        def log(self, message: str) -> None:
            seen["logs"].append(message)

    generate_catalog(
        SynthConfig(n=5, size=32, workers=1, chunk_size=2), tmp_path / "p.h5", progress=Recorder()
    )
    assert seen["description"] == "rendering" and seen["total"] == 5 and seen["unit"] == "gal"
    assert seen["advanced"] == 5 and seen["logs"]


def test_light_lands_where_the_truth_says(tmp_path: Path) -> None:
    """GalSim profiles (a star) and the numpy texture (a knot) share one pixel convention."""
    from galaxy_retrieval.synth.params import sample_scene
    from galaxy_retrieval.synth.render import render_scene
    from galaxy_retrieval.synth.scene import Blobs, Stars

    cfg = SynthConfig(size=64, sky_sigma=(1e-6, 1e-6, 1e-6))
    scene = sample_scene(2, np.random.default_rng(0), cfg)
    quiet = replace(scene.main, flux=1e-9)
    star = Stars(np.array([10.0]), np.array([-7.0]), np.array([300.0]), np.array([1.0]), np.array([1.0]))
    knot = Blobs(*(np.array([v]) for v in (-12.0, 9.0, 0.8, 300.0, 1.0, 1.0)))
    for kw in (dict(stars=star), dict(blobs=knot)):
        empty = {"stars": Stars(*(np.zeros(0),) * 5), "blobs": Blobs.empty()}
        s = replace(scene, main=quiet, companion=None, neighbours=(), streams=(), **{**empty, **kw})
        r = render_scene(s, cfg, np.random.default_rng(1))[1]
        x, y = (10.0, -7.0) if "stars" in kw else (-12.0, 9.0)
        c0 = (64 - 1) / 2
        iy, ix = np.unravel_index(np.argmax(r), r.shape)
        assert abs(ix - (c0 + x)) <= 0.5 and abs(iy - (c0 + y)) <= 0.5
        assert r.sum() == pytest.approx(300.0, rel=0.02)


def test_contact_sheet_size_and_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(13)]
    images[3] = images[3][:, :, 0]  # grayscale is accepted
    out = contact_sheet(
        images, [f"#{i}" for i in range(13)], tmp_path / "deep" / "sheet.png", ncols=5, tile=32
    )
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (5 * 32, 3 * 32)
    with Image.open(contact_sheet(images[:3], None, tmp_path / "s3.png", ncols=10, tile=20)) as im:
        assert im.size == (60, 20)
    with pytest.raises(ConfigError, match="captions"):
        contact_sheet(images, ["a"], tmp_path / "x.png")
    with pytest.raises(ConfigError, match="no images"):
        contact_sheet([], None, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="tile=2"):
        contact_sheet(images, None, tmp_path / "x.png", tile=2)


def test_psf_table_matches_galsim() -> None:
    """The interpolated Moffat ⊗ pixel transform agrees with GalSim's own drawKImage."""
    import galsim

    from galaxy_retrieval.synth.render import _GSP, _k_image, _psf_k_image

    n, scale = 64, 0.262
    for beta, fwhm in ((2.8, 1.13), (3.7, 1.52)):
        ref = _k_image(
            galsim.Convolve(galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=_GSP), galsim.Pixel(scale)), n, scale
        )
        fast = _psf_k_image(beta, fwhm, n, scale)
        assert fast.shape == ref.shape
        np.testing.assert_allclose(fast, ref, atol=2e-4)
