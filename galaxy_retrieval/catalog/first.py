"""The FIRST radio-galaxy data set (Griese et al. 2023) imported as an HDF5 catalog.

2,158 VLA FIRST 1.4 GHz cutouts (300×300 px grayscale; pixels below three times the local
noise RMS set to that threshold) with morphological labels collected from six literature
catalogues (MiraBest, Gendre/CoNFIG, Capetti 2017a/b, Baldi 2018, Proctor 2011) and mapped
onto four classes: FRI, FRII, Compact, Bent. The PyPI package ``firstgalaxydata==0.2.1``
ships the data inside its wheel (``galaxy_data_h5.zip``), so importing needs no network.

We use the *literature* labels and train/valid/test split, as the authors' own loader does
(the package also carries a ``CDL1`` relabelling with a fifth class, which we leave out).

License and provenance — the FIRST images: "Provenance: The FIRST project team: R.J.
Becker, D.H. Helfand, R.L. White, M.D. Gregg, S.A. Laurent-Muehleisen. Copyright: 1994,
University of California. Permission is granted for publication and reproduction of this
material for scholarly, educational, and private non-commercial use." Cite the data set as
Griese, Kummer, Connor, Brüggen & Rustige 2023, Data in Brief 47, 108974
(doi:10.1016/j.dib.2023.108974; data: doi:10.5281/zenodo.7689127) and the survey as
Becker, White & Helfand 1995, ApJ 450, 559. The same note is written into every imported
file as the ``license`` and ``citation`` attributes.

Layout written (read by :class:`~galaxy_retrieval.catalog.HDF5Catalog`):

- ``images`` (N, 300, 300) uint8 grayscale, one gzip chunk per image (the reader repeats
  the channel to RGB; storing it once keeps the file a third of the size);
- ``ans`` uint8 class (0 FRI, 1 FRII, 2 Compact, 3 Bent); ``ra``, ``dec`` float64 degrees;
  ``split`` (``train``/``valid``/``test``) and ``label_source`` (the literature catalogue
  the label comes from) as UTF-8 strings; ``object_id``: an IAU-style ``Jhhmmss.s+ddmmss``
  name from the data set's RA/Dec (which are rounded to 0.001°, so a name can differ from
  the literature designation in its last digit), suffixed ``_2``, ``_3`` … if repeated;
- attributes ``label_names`` (JSON list), ``generator``, ``format_version``, ``count``,
  ``provenance``, ``license``, ``citation``.

Rows follow the integer ``i`` of the source groups ``data_<i>``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import commit_file
from ..errors import CatalogError
from ..paths import check_output_file
from ..progress import NULL_PROGRESS, Progress

__all__ = ["FIRST_CLASSES", "import_first", "first_jname"]

FIRST_CLASSES: tuple[str, ...] = ("FRI", "FRII", "Compact", "Bent")

_PACKAGE = "firstgalaxydata"
_INSTALL_HINT = 'pip install firstgalaxydata==0.2.1 (or pip install -e ".[quality]")'
_ZIP = "galaxy_data_h5.zip"
_MEMBER = "galaxy_data_h5.h5"
_GROUP = re.compile(r"data_(\d+)")
_WRITE_BLOCK = 64  # images per h5py write call: amortises per-call overhead, bounds memory

GENERATOR = "galaxy_retrieval.catalog.first"
FORMAT_VERSION = 1
LICENSE = (
    "FIRST images: Provenance: The FIRST project team: R.J. Becker, D.H. Helfand, R.L. White, "
    "M.D. Gregg, S.A. Laurent-Muehleisen. Copyright: 1994, University of California. Permission is "
    "granted for publication and reproduction of this material for scholarly, educational, and private "
    "non-commercial use. Inquiries for commercial use: Robert Becker, Physics Dept, UC Davis."
)
CITATION = (
    "Griese F., Kummer J., Connor P.L.S., Brüggen M., Rustige L. 2023, Data in Brief 47, 108974, "
    "doi:10.1016/j.dib.2023.108974; data doi:10.5281/zenodo.7689127. "
    "FIRST survey: Becker R.H., White R.L., Helfand D.J. 1995, ApJ 450, 559."
)


def first_jname(ra: float, dec: float) -> str:
    """An IAU-style ``Jhhmmss.s+ddmmss`` name for RA/Dec in degrees.

    Digits are truncated, not rounded (the IAU convention, so 23h59m59.97s never becomes
    24h); the ``round(…, 6)`` first absorbs float noise such as ``116.78499999999``."""
    tenths = int(math.floor(round((ra % 360.0) * 2400.0, 6)))  # tenths of a second of time
    h, rem = divmod(tenths, 36000)
    m, s10 = divmod(rem, 600)
    arcsec = int(math.floor(round(abs(dec) * 3600.0, 6)))
    d, rem = divmod(arcsec, 3600)
    dm, ds = divmod(rem, 60)
    sign = "-" if dec < 0 else "+"
    return f"J{h:02d}{m:02d}{s10 // 10:02d}.{s10 % 10}{sign}{d:02d}{dm:02d}{ds:02d}"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def _package_zip() -> tuple[Path, str]:
    """The data zip inside the installed package, and the package version.

    Found with ``find_spec`` rather than imported: importing ``firstgalaxydata`` pulls in
    torch, torchvision and matplotlib just to locate a data file."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(f"the FIRST data set needs the {_PACKAGE} package: {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / _ZIP
    if not path.is_file():
        raise CatalogError(
            f"{path}: missing from the installed {_PACKAGE} package; reinstall it: {_INSTALL_HINT}"
        )
    try:
        from importlib.metadata import PackageNotFoundError, version

        ver = version(_PACKAGE)
    except PackageNotFoundError:
        ver = "unknown"
    return path, ver


def _is_ours(out: Path) -> dict[str, Any] | None:
    """The attributes of ``out`` if it is a FIRST import by this module, else None."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            attrs = {k: f.attrs[k] for k in ("generator", "format_version", "count") if k in f.attrs}
            attrs["rows"] = int(f["images"].shape[0]) if "images" in f else -1
    except OSError:
        return None
    gen = attrs.get("generator")
    if (gen.decode() if isinstance(gen, bytes) else gen) != GENERATOR:
        return None
    return attrs


def _extract(zip_path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as z, z.open(_MEMBER) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
    except KeyError:
        raise CatalogError(f"{zip_path}: no member {_MEMBER!r}; is this firstgalaxydata 0.2.1?") from None
    except zipfile.BadZipFile as e:
        raise CatalogError(f"{zip_path}: not a readable zip file ({e}); reinstall: {_INSTALL_HINT}") from None


def _read_rows(src) -> tuple[list[int], dict[str, list[Any]]]:
    """Group numbers in order, and each row's label, split, coordinates and catalogue."""
    idx = []
    for key in src:  # an HDF5 group iterates over its member names
        m = _GROUP.fullmatch(key)
        if m is None:
            raise CatalogError(f"{_MEMBER}: unexpected top-level entry {key!r} (expected data_<i> groups)")
        idx.append(int(m.group(1)))
    idx.sort()
    cols: dict[str, list[Any]] = {"ans": [], "ra": [], "dec": [], "split": [], "label_source": []}
    for i in idx:
        g = src[f"data_{i}"]
        try:
            img = g["Img"]
            lab = float(g["Label_literature"][()])
            split = g["Split_literature"][()]
            a = img.attrs
            ra, dec, cat = float(a["RA"]), float(a["DEC"]), a["Source"]
        except KeyError as e:
            raise CatalogError(f"{_MEMBER}: group data_{i} lacks {e}") from None
        if img.shape != (300, 300) or img.dtype != np.uint8:
            raise CatalogError(
                f"{_MEMBER}: data_{i}/Img has shape {img.shape} {img.dtype}; expected (300, 300) uint8"
            )
        if not (lab.is_integer() and 0 <= lab < len(FIRST_CLASSES)):
            raise CatalogError(
                f"{_MEMBER}: data_{i} has Label_literature {lab!r}; expected 0–3 ({', '.join(FIRST_CLASSES)})"
            )
        if not (math.isfinite(ra) and math.isfinite(dec)):
            raise CatalogError(f"{_MEMBER}: data_{i} has RA/DEC {ra!r}/{dec!r}")
        cols["ans"].append(int(lab))
        cols["ra"].append(ra)
        cols["dec"].append(dec)
        cols["split"].append(split.decode() if isinstance(split, bytes) else str(split))
        cols["label_source"].append(cat.decode() if isinstance(cat, bytes) else str(cat))
    return idx, cols


def import_first(
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> Path:
    """Write the FIRST radio-galaxy data set to ``out`` as an HDF5 catalog; return ``out``.

    If ``out`` already holds a complete import it is returned untouched, so repeated calls
    are free (the package need not even be installed then); ``overwrite=True`` imports
    again. A file at ``out`` that is not a FIRST import is never replaced unless
    ``overwrite`` is set. The file is written under a temporary name and renamed into
    place, so a file at ``out`` is always complete. Takes about 3 s.
    """
    import h5py

    out = Path(out)
    if out.is_dir():
        raise CatalogError(f"{out} is a directory; give a file name such as {out / 'first.h5'}")
    if out.exists() and not overwrite:
        attrs = _is_ours(out)
        if attrs is None:
            raise CatalogError(
                f"{out} exists and is not a FIRST import; overwrite it, or choose another output file"
            ).resolved_by("overwrite")
        if (
            int(attrs.get("format_version", -1)) == FORMAT_VERSION
            and int(attrs.get("count", -2)) == attrs["rows"]
        ):
            progress.log(f"{out} already holds the FIRST import ({attrs['rows']} objects); leaving it as is")
            return out
    check_output_file(out)
    zip_path, version = _package_zip()
    out.parent.mkdir(parents=True, exist_ok=True)
    src_tmp = out.with_name(f".{out.name}.{os.getpid()}.src.tmp")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        progress.log(f"extracting {_MEMBER} from {_PACKAGE} {version} ({zip_path})")
        _extract(zip_path, src_tmp)
        with h5py.File(src_tmp, "r") as src:
            idx, cols = _read_rows(src)
            n = len(idx)
            ids = _unique([first_jname(r, d) for r, d in zip(cols["ra"], cols["dec"])])
            text = h5py.string_dtype()
            with h5py.File(tmp, "w") as f:
                f.attrs.update(
                    generator=GENERATOR,
                    format_version=FORMAT_VERSION,
                    count=n,
                    label_names=json.dumps(list(FIRST_CLASSES)),
                    provenance=f"{_PACKAGE} {version}: {_ZIP}/{_MEMBER}, literature labels and split",
                    license=LICENSE,
                    citation=CITATION,
                )
                images = f.create_dataset(
                    "images",
                    (n, 300, 300),
                    np.uint8,
                    chunks=(1, 300, 300),
                    compression="gzip",
                    compression_opts=1,
                )
                f["ans"] = np.asarray(cols["ans"], np.uint8)
                f["ra"] = np.asarray(cols["ra"], np.float64)
                f["dec"] = np.asarray(cols["dec"], np.float64)
                f.create_dataset("split", data=np.array(cols["split"], dtype=object), dtype=text)
                f.create_dataset(
                    "label_source", data=np.array(cols["label_source"], dtype=object), dtype=text
                )
                f.create_dataset("object_id", data=np.array(ids, dtype=object), dtype=text)
                with progress.task("importing FIRST", total=n, unit="img") as task:
                    for lo in range(0, n, _WRITE_BLOCK):
                        block = idx[lo : lo + _WRITE_BLOCK]
                        images[lo : lo + len(block)] = np.stack([src[f"data_{i}/Img"][()] for i in block])
                        task.advance(len(block))
        commit_file(tmp, out)
    finally:
        src_tmp.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out
