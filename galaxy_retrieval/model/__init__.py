"""The GalaxIDNet vision transformer: configuration, presets, checkpoints and the embedder."""

from __future__ import annotations

from .checkpoint import FORMAT_VERSION, load_model, save_weights, weights_sha256
from .config import ViTConfig
from .device import autocast_for, pick_device
from .embedder import Embedder, load_checkpoint
from .preprocess import images_to_float, normalize, resize_uint8, to_model_input
from .presets import PRESETS, preset, preset_names
from .vit import GalaxIDNetViT, build_model, count_parameters, parameter_breakdown

__all__ = [
    "ViTConfig",
    "PRESETS",
    "preset",
    "preset_names",
    "GalaxIDNetViT",
    "build_model",
    "count_parameters",
    "parameter_breakdown",
    "Embedder",
    "load_checkpoint",
    "load_model",
    "save_weights",
    "weights_sha256",
    "FORMAT_VERSION",
    "pick_device",
    "autocast_for",
    "images_to_float",
    "resize_uint8",
    "normalize",
    "to_model_input",
]
