"""Device choice shared by training and embedding: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from ..errors import ConfigError

__all__ = ["pick_device", "autocast_for", "Precision", "resolve_precision", "train_autocast"]

Precision = Literal["auto", "fp32", "bf16"]


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None → cuda if available, else mps, else cpu; otherwise the named device."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r} requested but MPS is not available here")
    return dev


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; a no-op elsewhere (CPU/MPS run float32: same results, same code)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_has_native_bf16() -> bool:
    """True on CPUs whose matrix units do bf16 natively (AMX, AVX512-BF16): there oneDNN runs
    bf16 convolutions and matmuls several times faster than float32; elsewhere it emulates
    bf16 and is slower, so ``auto`` keeps float32."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # an older torch without the probes
        return False


#: backbones whose CPU training bf16 speeds up (benchmarks/train_speed.py: the polar CNN 2.4x;
#: the ViT presets measured 0.94x, so ``auto`` keeps them in float32 on the CPU)
CPU_BF16_BACKBONES = ("polar",)


def resolve_precision(precision: str, device: torch.device, backbone: str = "polar") -> str:
    """``"auto"`` → ``"bf16"`` on CUDA, and on CPUs with native bf16 for the backbones it
    measured faster on (:data:`CPU_BF16_BACKBONES`); else ``"fp32"``."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"precision {precision!r}; choices: auto, fp32, bf16")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    if device.type == "cpu" and backbone in CPU_BF16_BACKBONES and _cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def train_autocast(device: torch.device, precision: str):
    """Mixed precision for a training step: bf16 autocast (weights, optimiser state and the
    loss stay float32) or none. On a CPU with AMX this is what makes the polar CNN train
    2-2.5x faster (benchmarks/train_speed.py); ``fp32`` reproduces runs made before it."""
    if resolve_precision(precision, device) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
