"""Device choice shared by training and embedding: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError

__all__ = ["pick_device", "autocast_for"]


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
