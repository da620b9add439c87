"""Names of a checkpoint directory's files and of its format (see :mod:`.checkpoint`)."""

from __future__ import annotations

__all__ = [
    "FORMAT_VERSION",
    "KIND",
    "WEIGHTS_FILE",
    "META_FILE",
    "HISTORY_FILE",
    "PLOT_FILE",
    "LAST_DIR",
    "STATE_TENSORS",
    "STATE_JSON",
    "META_KEY",
]

FORMAT_VERSION = 1
#: what the weights file's metadata says it holds (the name of the paper's model, for every
#: backbone: files of other kinds are refused)
KIND = "galaxidnet-vit"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
HISTORY_FILE = "history.json"
PLOT_FILE = "history.png"
LAST_DIR = "last"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
#: the one safetensors metadata key the package writes (a JSON object)
META_KEY = "galaxy_retrieval"
