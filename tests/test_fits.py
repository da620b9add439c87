"""FITS cutouts as surveys serve them: band cubes, one band per HDU, NaN pixels, 16-bit data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog, read_image
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import ImageReadError

fits = pytest.importorskip("astropy.io.fits")


def _blob(n: int = 24, amp: float = 1.0, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - n / 2
    sky = np.random.default_rng(seed).normal(0, 0.01, (n, n))
    return amp * np.exp(-np.hypot(x, y) / 3) + sky


def test_legacy_style_cube_puts_the_reddest_band_in_red(tmp_path: Path) -> None:
    # g faint, r middle, z bright: shown as z, r, g → R, G, B like the Legacy viewer
    cube = np.stack([_blob(amp=0.2), _blob(amp=1.0), _blob(amp=5.0)]).astype(np.float32)
    hdr = fits.Header({"BAND0": "g", "BAND1": "r", "BAND2": "z"})
    fits.PrimaryHDU(cube, header=hdr).writeto(tmp_path / "cube.fits")
    im = read_image(tmp_path / "cube.fits")
    assert im.shape == (24, 24, 3) and im.dtype == np.uint8
    r, g, b = (int(v) for v in im[12, 12])
    assert r == 255 and r > g > b  # saturated in red, the ratios kept below it
    # light in one band only shows in that band's channel
    cube2 = np.zeros((3, 8, 8), np.float32)
    cube2[2, 4, 4] = 1.0  # z only
    cube2 += np.random.default_rng(1).normal(0, 1e-3, cube2.shape).astype(np.float32)
    fits.PrimaryHDU(cube2, header=hdr).writeto(tmp_path / "z.fits")
    im2 = read_image(tmp_path / "z.fits")
    assert im2[4, 4, 0] == 255 and im2[4, 4, 2] < 30  # z → red


def _galaxy_cube(colour: str, n: int = 48) -> np.ndarray:
    """A Sérsic-like galaxy in g, r, z (nanomaggies, with sky noise): an elliptical's light
    rises to the red (z), a star-forming disc's to the blue (g)."""
    y, x = np.mgrid[:n, :n] - n / 2
    profile = 2.0 * np.exp(-np.hypot(x, y) / 4)
    sed = {"red": (0.25, 0.7, 1.4), "blue": (1.0, 0.8, 0.5)}[colour]
    rng = np.random.default_rng(0 if colour == "red" else 1)
    return np.stack([f * profile + rng.normal(0, 0.005, (n, n)) for f in sed]).astype(np.float32)


@pytest.mark.parametrize("header", [{"BAND0": "g", "BAND1": "r", "BAND2": "z"}, {}])
def test_a_red_and_a_blue_galaxy_keep_their_colours(tmp_path: Path, header: dict) -> None:
    # with band names (fixed per-band scales) and without (one scale for all bands): per-band
    # normalisation, the old stretch, made both white
    colours = {}
    for c in ("red", "blue"):
        cube = _galaxy_cube(c)
        if not header:  # no names: bands as given, first → R; write them red → blue
            cube = cube[::-1]
        fits.PrimaryHDU(cube, header=fits.Header(header)).writeto(tmp_path / f"{c}.fits")
        im = read_image(tmp_path / f"{c}.fits").astype(float)
        disc = im[18:30, 18:30].reshape(-1, 3).mean(axis=0)  # the galaxy's inner region
        colours[c] = disc[0] / max(disc[2], 1.0)  # R/B
    assert colours["red"] > 1.5 and colours["blue"] < 0.8, colours
    # the same galaxy twice as bright keeps its colour (no per-image colour balance)
    fits.PrimaryHDU(
        _galaxy_cube("red") * 0.5, header=fits.Header({"BAND0": "g", "BAND1": "r", "BAND2": "z"})
    ).writeto(tmp_path / "faint.fits")
    faint = read_image(tmp_path / "faint.fits").astype(float)[18:30, 18:30].reshape(-1, 3).mean(axis=0)
    if header:
        assert faint[0] / faint[2] > 1.5


def test_one_band_per_hdu_nan_pixels_and_16_bit(tmp_path: Path) -> None:
    hdus = [fits.PrimaryHDU()]  # an empty primary, as many archives write
    for b, amp in (("g", 1.0), ("r", 2.0), ("i", 3.0)):
        d = _blob(amp=amp)
        d[:3, :] = np.nan  # off the survey footprint
        hdus.append(fits.ImageHDU(d.astype(np.float32), header=fits.Header({"FILTER": b})))
    fits.HDUList(hdus).writeto(tmp_path / "bands.fits")
    im = read_image(tmp_path / "bands.fits")
    assert im.shape == (24, 24, 3)
    assert (
        (im[:3] == 0).all() and im[12, 12, 0] == 255 and im[12, 12].min() > 60
    )  # NaN → sky, centre bright in all bands

    counts = (np.clip(_blob(amp=3000), 0, None) + 1000).astype(np.int16)  # raw 16-bit counts
    fits.PrimaryHDU(counts).writeto(tmp_path / "counts.fits")
    im = read_image(tmp_path / "counts.fits")
    assert im[12, 12, 0] > 200 and im[0, 0, 0] < 40 and np.array_equal(im[..., 0], im[..., 2])

    allnan = np.full((8, 8), np.nan, np.float32)
    fits.PrimaryHDU(allnan).writeto(tmp_path / "empty.fits")
    with pytest.raises(ImageReadError, match="no finite pixel"):
        read_image(tmp_path / "empty.fits")
    data = (tmp_path / "counts.fits").read_bytes()
    (tmp_path / "short.fits").write_bytes(data[: len(data) - 500])  # astropy would pad it with zeros
    with pytest.raises(ImageReadError, match="short.fits: corrupt FITS file .*truncated"):
        read_image(tmp_path / "short.fits")
    fits.PrimaryHDU().writeto(tmp_path / "nodata.fits")
    with pytest.raises(ImageReadError, match="no 2-D image HDU"):
        read_image(tmp_path / "nodata.fits")


def test_info_states_the_stretch(tmp_path: Path) -> None:
    cube = np.stack([_blob(), _blob(), _blob()]).astype(np.float32)
    fits.PrimaryHDU(cube, header=fits.Header({"BAND0": "g", "BAND1": "r", "BAND2": "z"})).writeto(
        tmp_path / "a.fits"
    )
    from PIL import Image

    Image.fromarray(np.full((6, 6), 4000, np.uint16)).save(tmp_path / "b.png")
    cat = open_catalog(tmp_path)
    stretch = cat.info().extra["pixel_stretch"]
    assert stretch.startswith("FITS HDU 0 cube of 3 bands; z, r, g → RGB; Lupton et al. (2004) colour")
    assert stretch.endswith(" | 16-bit PNG: linear: 0–65535 → 0–255")
    r = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert r.exit_code == 0 and "pixel_stretch" in r.output and "asinh" in r.output
