"""Device choice shared by training and embedding: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from ..errors import ConfigError

__all__ = [
    "pick_device",
    "autocast_for",
    "Precision",
    "PRECISIONS",
    "resolve_precision",
    "train_autocast",
    "memory_format",
    "unrecorded_precision",
]

Precision = Literal["auto", "fp32", "bf16"]
#: the precisions a model runs in (training, embedding): ``auto`` is resolved by :func:`resolve_precision`
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


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


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast when ``precision`` (resolved: ``fp32`` or ``bf16``) is bf16 on CUDA or the
    CPU; a no-op otherwise (float32 weights and activations)."""
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def unrecorded_precision(device: torch.device) -> str:
    """The precision vectors were embedded with before it was recorded (in an index manifest):
    bf16 autocast on CUDA, float32 everywhere else. Queries and adds of such an index embed
    exactly as they did then."""
    return "bf16" if device.type == "cuda" else "fp32"


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
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}; choices: {', '.join(PRECISIONS)}")
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
    return autocast_for(device, resolve_precision(precision, device))


def memory_format(precision: str, device: torch.device) -> torch.memory_format:
    """channels-last where bf16 runs on a CPU: oneDNN's AMX convolutions want NHWC, and NCHW
    tensors are reordered at every layer otherwise (benchmarks/train_speed.py for training;
    inference of the polar model at 1 thread, batch 32: 0.81 → 0.72 ms an image). In float32
    it measured no faster, so float32 keeps the default layout (and its exact vectors)."""
    if device.type == "cpu" and resolve_precision(precision, device) == "bf16":
        return torch.channels_last
    return torch.contiguous_format
