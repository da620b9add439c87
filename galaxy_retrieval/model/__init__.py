"""The models that turn a galaxy image into a vector: the rotation-invariant polar CNN (the
default) and the paper's GalaxIDNet vision transformer; their configuration, registry,
preprocessing, checkpoints and the embedder.

    from galaxy_retrieval.model import create_model, load_checkpoint
    model = create_model("polar", out_dim=128)      # a preset, timm-style
    emb = load_checkpoint("runs/demo")              # images → vectors, as training saw them
"""

from __future__ import annotations

from .backbone import Backbone, count_parameters, parameter_breakdown
from .checkpoint import load_model, save_weights, weights_sha256
from .config import BACKBONES, ModelConfig, PolarSettings, ViTSettings
from .device import autocast_for, pick_device
from .embedder import Embedder, load_checkpoint
from .layout import FORMAT_VERSION

# the backbones and presets register themselves on import, as timm's models do
from .polar import PolarCNN
from .preprocess import (
    Preprocessing,
    images_to_float,
    normalize,
    resize_uint8,
    suppress_images,
    to_model_input,
)
from .presets import PRESETS, preset, preset_names
from .registry import create_model, list_models, model_config, register_backbone, register_model
from .vit import GalaxIDNetViT

#: ``build_model(config, seed=None)``: the name before the registry, for callers that have it
build_model = create_model

__all__ = [
    "ModelConfig",
    "ViTSettings",
    "PolarSettings",
    "Preprocessing",
    "BACKBONES",
    "Backbone",
    "create_model",
    "model_config",
    "list_models",
    "register_backbone",
    "register_model",
    "PRESETS",
    "preset",
    "preset_names",
    "GalaxIDNetViT",
    "PolarCNN",
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
    "suppress_images",
]
