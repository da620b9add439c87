"""Fixed sine/cosine position table (paper §3.3: "cosine position embeddings").

A 2-D version of the Transformer's sinusoidal encoding (as in MAE): a quarter of the hidden
vector encodes the patch row with sines, a quarter with cosines, and likewise for the
column. It is computed from the grid size, never learned, and lives in the model as a
non-persistent buffer: it is recomputed from the config on load, so a checkpoint cannot
carry a stale or tampered table.
"""

from __future__ import annotations

import torch

__all__ = ["sincos_position_table"]


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    # dim/2 frequencies from 1 to 1/10000, as in "Attention is all you need"
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / (10000.0**omega)
    out = pos.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_position_table(grid: int, dim: int) -> torch.Tensor:
    """(grid·grid, dim) float32 table, row-major over the patch grid; ``dim`` % 4 == 0."""
    if dim % 4:
        raise ValueError(f"position table dim={dim} must be a multiple of 4")
    coords = torch.arange(grid)
    rows = coords.repeat_interleave(grid)  # patch p sits at (p // grid, p % grid)
    cols = coords.repeat(grid)
    table = torch.cat([_sincos_1d(dim // 2, rows), _sincos_1d(dim // 2, cols)], dim=1)
    return table.to(torch.float32)
