"""Training losses, one module each; both take scores of the paper's weighted score
(:func:`galaxy_retrieval.score.score_torch`), never embeddings."""

from __future__ import annotations

from .info_nce import info_nce_loss
from .margin import contrastive_loss

__all__ = ["info_nce_loss", "contrastive_loss"]
