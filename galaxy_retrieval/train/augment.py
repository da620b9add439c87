"""Positive and negative image transformations for training pairs (paper §3.4).

Positive transforms keep a galaxy's structure while changing its pixels (flips, rotations by
multiples of 90° and by any angle, a slight perspective change, centre-crop-and-pad, mild
Gaussian noise — the paper's set — plus a mild zoom and a brightness change, which a
galaxy's class does not depend on either). Negative transforms may destroy it (strong perspective warp, Gaussian blur,
random erasing, strong noise, any rotation); they are applied to a *different* image.
Each image gets a random subset of ``k`` transforms of its set, with its own parameters.

Everything works on a batch (B, 3, S, S) of float images in [0, 1] with per-sample random
parameters drawn from a ``torch.Generator`` (reproducible for a fixed seed). torchvision's
v2 transforms draw one set of parameters per call, so on a batch tensor every pair would
share one transform; instead the geometric transforms of each sample are composed into one
3×3 homography and the whole batch is resampled by a single ``grid_sample`` call, and the
photometric ones are masked, vectorised tensor operations (blur is one grouped
convolution with a kernel per sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = [
    "POSITIVE_TRANSFORMS",
    "EXTRA_POSITIVE_TRANSFORMS",
    "NEGATIVE_TRANSFORMS",
    "AugmentConfig",
    "PairAugmenter",
    "GALAXY_AUGMENT",
]

# the default positive set (the paper's plus zoom and brightness); kept as it was so that
# every recorded training config resolves to the transforms it was trained with
POSITIVE_TRANSFORMS = (
    "hflip",
    "vflip",
    "rot90",
    "rotate",
    "perspective",
    "crop_pad",
    "noise",
    "scale",
    "brightness",
)
# opt-in positives measured on real cutouts (GALAXY_AUGMENT): a random shift of the zoomed
# view, a PSF-like blur, per-band gains (a colour change) and a change of stretch (gamma).
# Without the photometric ones a network tells instances apart by their colour histogram,
# which is what raw pixels already do.
EXTRA_POSITIVE_TRANSFORMS = ("shift", "blur", "colour", "gamma")
_ALL_POSITIVE = POSITIVE_TRANSFORMS + EXTRA_POSITIVE_TRANSFORMS
NEGATIVE_TRANSFORMS = ("perspective", "blur", "erase", "noise", "rotate")


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the transforms; sizes are fractions of the image side."""

    num_positive: int = 3  # transforms drawn per positive image (paper: a training option)
    num_negative: int = 3  # transforms drawn per negative image
    positive_set: tuple[str, ...] = POSITIVE_TRANSFORMS  # the transforms drawn from
    negative_set: tuple[str, ...] = NEGATIVE_TRANSFORMS
    fill: str = "zeros"  # what warps bring in past the border: "zeros" (black) or "reflection"
    pos_perspective: float = 0.10  # corner displacement, fraction of the half-side
    pos_crop_keep: tuple[float, float] = (0.70, 0.95)  # side fraction kept by crop-and-pad
    pos_noise: tuple[float, float] = (0.005, 0.03)  # Gaussian σ, in [0, 1] pixel units
    pos_scale: tuple[float, float] = (0.8, 1.25)  # zoom about the centre (log-uniform)
    pos_brightness: tuple[float, float] = (0.7, 1.4)  # flux multiplier (log-uniform)
    neg_perspective: tuple[float, float] = (0.25, 0.50)
    neg_blur: tuple[float, float] = (0.015, 0.05)  # σ as a fraction of the side
    neg_erase_area: tuple[float, float] = (0.10, 0.35)
    neg_noise: tuple[float, float] = (0.05, 0.15)
    pos_shift: float = 0.1  # largest shift, fraction of the half-side
    pos_blur: tuple[float, float] = (0.0, 0.02)  # σ as a fraction of the side (0.02 of 64 px: 1.3 px)
    pos_colour: float = 0.25  # per-band gain within [1/(1+c), 1+c] (log-uniform)
    pos_gamma: float = 0.3  # x ↦ x^γ with γ within [1/(1+g), 1+g] (log-uniform)

    def __post_init__(self) -> None:
        if self.fill not in ("zeros", "reflection"):
            raise ConfigError(f"augment fill={self.fill!r}; choices: zeros, reflection")
        for f in ("pos_shift", "pos_colour", "pos_gamma"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ConfigError(f"augment {f}={v!r} must be a number between 0 and 1")
            object.__setattr__(self, f, float(v))
        for f in (
            "pos_crop_keep",
            "pos_noise",
            "pos_scale",
            "pos_brightness",
            "neg_perspective",
            "neg_blur",
            "neg_erase_area",
            "neg_noise",
            "pos_blur",
        ):
            lo, hi = (float(v) for v in getattr(self, f))
            if not 0 <= lo <= hi:
                raise ConfigError(f"augment {f}=({lo}, {hi}) must be a range 0 <= low <= high")
            object.__setattr__(self, f, (lo, hi))
        for kind, names, known in (
            ("positive", self.positive_set, _ALL_POSITIVE),
            ("negative", self.negative_set, NEGATIVE_TRANSFORMS),
        ):
            names = tuple(names)
            bad = [n for n in names if n not in known]
            if bad or len(set(names)) != len(names):
                raise ConfigError(
                    f"{kind}_set={names!r}: unknown or repeated transform(s) {', '.join(bad) or ''}; "
                    f"choices: {', '.join(known)}"
                )
            object.__setattr__(self, f"{kind}_set", names)
            k = getattr(self, f"num_{kind}")
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(names):
                raise ConfigError(f"num_{kind}={k!r} must be between 0 and {len(names)} ({', '.join(names)})")


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _choose(n: int, k: int, m: int, g: torch.Generator) -> torch.Tensor:
    """(n, m) bool: for each row, a uniformly random subset of k of the m transforms."""
    if k == 0:
        return torch.zeros(n, m, dtype=torch.bool)
    r = torch.rand(n, m, generator=g)
    idx = r.topk(k, dim=1).indices
    return torch.zeros(n, m, dtype=torch.bool).scatter_(1, idx, True)


def _columns(
    n: int, k: int, chosen: tuple[str, ...], known: tuple[str, ...], g: torch.Generator
) -> dict[str, torch.Tensor]:
    """name → (n,) bool: which samples get that transform (k of the ``chosen`` ones each)."""
    use = _choose(n, k, len(chosen), g)
    col = {name: torch.zeros(n, dtype=torch.bool) for name in known}
    col.update({name: use[:, i] for i, name in enumerate(chosen)})
    return col


def _rows(mask: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the set rows of a CPU mask, on the CPU (for parameters) and on ``device`` (for images)."""
    ic = mask.nonzero().squeeze(1)
    return ic, ic.to(device)


def _eye(n: int) -> torch.Tensor:
    return torch.eye(3, dtype=torch.float32).repeat(n, 1, 1)


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(theta.shape[0])
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _rot90(k: torch.Tensor) -> torch.Tensor:
    # exact 0/±1 entries so that pixel centres map onto pixel centres
    c = torch.tensor([1.0, 0.0, -1.0, 0.0])[k]
    s = torch.tensor([0.0, 1.0, 0.0, -1.0])[k]
    m = _eye(k.shape[0])
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _perspective(amount: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Homographies sending the corners (±1, ±1) to corners displaced by up to ``amount``."""
    n = amount.shape[0]
    src = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]).expand(n, 4, 2)
    dst = src + (torch.rand(n, 4, 2, generator=g) * 2 - 1) * amount[:, None, None]
    # direct linear transform: 8 equations in the 8 unknowns of H (h33 = 1)
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1).double()
    b = torch.cat([u, v], dim=1).double()
    h = torch.linalg.solve(a, b).float()
    return torch.cat([h, torch.ones(n, 1)], dim=1).reshape(n, 3, 3)


def _warp(x: torch.Tensor, mats: torch.Tensor, fill: str = "zeros") -> torch.Tensor:
    """Resample each image at ``mats[i] @ (u, v, 1)`` for its output coordinates (u, v)."""
    b, _, h, w = x.shape
    dev = x.device
    ys = (
        torch.arange(h, dtype=torch.float32, device=dev) * 2 + 1
    ) / h - 1  # pixel centres, align_corners=False
    xs = (torch.arange(w, dtype=torch.float32, device=dev) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, h * w, 3)
    src = coords @ mats.to(dev, torch.float32).transpose(1, 2)  # (B, HW, 3)
    grid = src[..., :2] / src[..., 2:].clamp(min=1e-6)
    grid = grid.reshape(b, h, w, 2).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=fill, align_corners=False)


def _gaussian_blur(x: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one σ (pixels) per image: one grouped convolution."""
    b, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * float(sigma_px.max()))))
    radius = min(radius, (min(h, w) - 1) // 2)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sigma_px[:, None].clamp(min=1e-3)) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0).to(x.device, x.dtype)  # (B·C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    return y.reshape(b, c, h, w)


def _centre_box_mask(keep: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, 1, H, W) 1 inside a centred square covering ``keep`` of the side, else 0."""
    ys = ((torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1).abs()
    xs = ((torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1).abs()
    inside = (ys[None, :, None] < keep[:, None, None]) & (xs[None, None, :] < keep[:, None, None])
    return inside[:, None].float()


def _erase_mask(area: torch.Tensor, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) 0 inside a random rectangle of the given area fraction, else 1."""
    n = area.shape[0]
    log_r = _uniform(math.log(0.3), math.log(1 / 0.3), n, g)
    r = torch.exp(log_r)
    eh = (torch.sqrt(area * r) * h).clamp(1, h)
    ew = (torch.sqrt(area / r) * w).clamp(1, w)
    top = torch.rand(n, generator=g) * (h - eh)
    left = torch.rand(n, generator=g) * (w - ew)
    yy = torch.arange(h, dtype=torch.float32)[None, :, None]
    xx = torch.arange(w, dtype=torch.float32)[None, None, :]
    inside = (
        (yy >= top[:, None, None])
        & (yy < (top + eh)[:, None, None])
        & (xx >= left[:, None, None])
        & (xx < (left + ew)[:, None, None])
    )
    return (~inside)[:, None].float()


def _add_noise(x: torch.Tensor, sigma: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
    return x + noise * sigma.to(x.device, x.dtype)[:, None, None, None]


class PairAugmenter:
    """Draws per-sample transforms for positive and negative images."""

    def __init__(self, config: AugmentConfig = AugmentConfig()) -> None:
        self.config = config

    def positive(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """A random subset of ``num_positive`` structure-preserving transforms per image."""
        cfg = self.config
        n, _, h, w = x.shape
        col = _columns(n, cfg.num_positive, cfg.positive_set, _ALL_POSITIVE, g)
        k90 = torch.randint(1, 4, (n,), generator=g)
        theta = _uniform(0.0, 2 * math.pi, n, g)
        persp = _perspective(torch.full((n,), cfg.pos_perspective), g)
        keep = _uniform(*cfg.pos_crop_keep, n, g)
        sigma = _uniform(*cfg.pos_noise, n, g)
        zoom = torch.exp(_uniform(math.log(cfg.pos_scale[0]), math.log(cfg.pos_scale[1]), n, g))
        gain = torch.exp(_uniform(math.log(cfg.pos_brightness[0]), math.log(cfg.pos_brightness[1]), n, g))
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * cfg.pos_shift
        blur = _uniform(*cfg.pos_blur, n, g) * min(h, w)
        band = torch.exp((torch.rand(n, x.shape[1], generator=g) * 2 - 1) * math.log1p(cfg.pos_colour))
        gamma = torch.exp((torch.rand(n, generator=g) * 2 - 1) * math.log1p(cfg.pos_gamma))

        mats = _eye(n)
        mats[:, 0, 0] = torch.where(col["hflip"], -1.0, 1.0)
        mats[:, 1, 1] = torch.where(col["vflip"], -1.0, 1.0)
        mats = mats @ torch.where(col["rot90"][:, None, None], _rot90(k90), _eye(n))
        mats = mats @ torch.where(col["rotate"][:, None, None], _rotation(theta), _eye(n))
        mats = mats @ torch.where(col["perspective"][:, None, None], persp, _eye(n))
        zm = _eye(n)
        zm[:, 0, 0] = zm[:, 1, 1] = torch.where(col["scale"], 1.0 / zoom, 1.0)  # sample closer in = zoom in
        mats = mats @ zm
        sh = _eye(n)
        sh[:, 0, 2] = torch.where(col["shift"], shift[:, 0], 0.0)
        sh[:, 1, 2] = torch.where(col["shift"], shift[:, 1], 0.0)
        mats = sh @ mats  # the shift moves the final view: the object leaves the centre
        out = x.clone()
        geo = (
            col["hflip"]
            | col["vflip"]
            | col["rot90"]
            | col["rotate"]
            | col["perspective"]
            | col["scale"]
            | col["shift"]
        )
        if geo.any():
            ic, idx = _rows(geo, x.device)
            out[idx] = _warp(x[idx], mats[ic], cfg.fill)
        if col["crop_pad"].any():
            ic, idx = _rows(col["crop_pad"], x.device)
            out[idx] = out[idx] * _centre_box_mask(keep[ic], h, w).to(x.device, x.dtype)
        if col["blur"].any():  # a PSF-like blur before the photometric changes and the noise
            ic, idx = _rows(col["blur"], x.device)
            out[idx] = _gaussian_blur(out[idx], blur[ic].clamp(min=1e-3))
        if col["gamma"].any():
            ic, idx = _rows(col["gamma"], x.device)
            out[idx] = out[idx].clamp(min=1e-4) ** gamma[ic].to(x.device, x.dtype)[:, None, None, None]
        if col["colour"].any():
            ic, idx = _rows(col["colour"], x.device)
            out[idx] = out[idx] * band[ic].to(x.device, x.dtype)[:, :, None, None]
        if col["brightness"].any():
            ic, idx = _rows(col["brightness"], x.device)
            out[idx] = out[idx] * gain[ic].to(x.device, x.dtype)[:, None, None, None]
        if col["noise"].any():
            ic, idx = _rows(col["noise"], x.device)
            out[idx] = _add_noise(out[idx], sigma[ic], g)
        return out.clamp_(0.0, 1.0)

    def negative(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """A random subset of ``num_negative`` harsher transforms per image (§3.4)."""
        cfg = self.config
        n, _, h, w = x.shape
        col = _columns(n, cfg.num_negative, cfg.negative_set, NEGATIVE_TRANSFORMS, g)
        amount = _uniform(*cfg.neg_perspective, n, g)
        persp = _perspective(amount, g)
        theta = _uniform(0.0, 2 * math.pi, n, g)
        blur = _uniform(*cfg.neg_blur, n, g) * min(h, w)
        area = _uniform(*cfg.neg_erase_area, n, g)
        erase = _erase_mask(area, h, w, g)
        sigma = _uniform(*cfg.neg_noise, n, g)

        out = x.clone()
        mats = torch.where(col["perspective"][:, None, None], persp, _eye(n))
        mats = mats @ torch.where(col["rotate"][:, None, None], _rotation(theta), _eye(n))
        geo = col["perspective"] | col["rotate"]
        if geo.any():
            ic, idx = _rows(geo, x.device)
            out[idx] = _warp(x[idx], mats[ic], cfg.fill)
        if col["blur"].any():
            ic, idx = _rows(col["blur"], x.device)
            out[idx] = _gaussian_blur(out[idx], blur[ic])
        if col["erase"].any():
            ic, idx = _rows(col["erase"], x.device)
            out[idx] = out[idx] * erase[ic].to(x.device, x.dtype)
        if col["noise"].any():
            ic, idx = _rows(col["noise"], x.device)
            out[idx] = _add_noise(out[idx], sigma[ic], g)
        return out.clamp_(0.0, 1.0)


#: The positive transforms measured on real survey cutouts (benchmarks/quality/README.md):
#: every one applied to every view, each with its own random strength — any rotation and
#: flips (a galaxy has no preferred orientation), a zoom in or out with a shift (random
#: resized crops, with the reflected sky brought in rather than black borders), a PSF-like
#: blur, per-band gains, brightness and stretch changes and noise (what differs between two
#: exposures and reductions of one galaxy; without them the network tells instances apart by
#: their colour histograms, as raw pixels do).
GALAXY_AUGMENT = AugmentConfig(
    num_positive=10,
    positive_set=(
        "hflip",
        "rot90",
        "rotate",
        "scale",
        "shift",
        "blur",
        "gamma",
        "colour",
        "brightness",
        "noise",
    ),
    fill="reflection",
    pos_scale=(0.8, 1.5),
    pos_brightness=(0.67, 1.5),
    pos_noise=(0.0, 0.03),
)
