"""The paper's weighted similarity score (§3.6) — one definition for the loss and the reranker.

    s(a, b) = w1·cos(a, b) + w2 / (1 + ‖a − b‖₂) + w3 / (1 + ‖a − b‖₃)

with ‖x‖₃ = (Σ|xᵢ|³)^(1/3). The paper's published code computed the "L3" term with p = 2 by
mistake; we implement the formula as written. Each term lies in [0, 1] for cos ≥ 0, so with
weights summing to one the score's maximum is 1, which is why the loss margin is 1.0 (§3.4).

This module holds the torch version (differentiable, used in training and on a GPU) and a
plain numpy reference. The losses built on it live in :mod:`galaxy_retrieval.train.losses`. The weights can also be learned with the model (the paper's future work, §3.6):
training then scores with w = softmax(θ), so they stay positive and sum to one and the
margin keeps its meaning; :func:`weight_logits` and :func:`weights_from_logits` convert. The fast exact scan used for ground truth and reranking lives in
``galaxy_retrieval.search.exact`` and is tested against :func:`score_terms_numpy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

__all__ = [
    "ScoreWeights",
    "score_terms_numpy",
    "score_numpy",
    "score_terms_torch",
    "score_torch",
    "weight_logits",
    "weights_from_logits",
]

# Added under the roots in the torch version only: d/dx x^(1/p) is infinite at 0, and a
# positive pair can be two identical embeddings.
_EPS = 1e-12


@dataclass(frozen=True)
class ScoreWeights:
    """Weights of the cosine, inverse-L2 and inverse-L3 terms (paper default: 1/3 each)."""

    cos: float = 1.0 / 3.0
    l2: float = 1.0 / 3.0
    l3: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        for name in ("cos", "l2", "l3"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"score weight {name}={value!r} must be a finite number >= 0")
        if self.cos + self.l2 + self.l3 <= 0:
            raise ConfigError("score weights must not all be zero")

    def as_tuple(self) -> tuple[float, float, float]:
        return (float(self.cos), float(self.l2), float(self.l3))

    def to_dict(self) -> dict[str, float]:
        return {"cos": float(self.cos), "l2": float(self.l2), "l3": float(self.l3)}

    @classmethod
    def from_dict(cls, d: dict) -> ScoreWeights:
        return cls(cos=float(d["cos"]), l2=float(d["l2"]), l3=float(d["l3"]))

    def normalized(self) -> ScoreWeights:
        """The same weights scaled to sum to one (what a learned-weights run starts from)."""
        total = self.cos + self.l2 + self.l3
        return ScoreWeights(self.cos / total, self.l2 / total, self.l3 / total)


def weight_logits(weights: ScoreWeights):
    """θ (float32 tensor (3,)) with softmax(θ) = ``weights`` normalised; every weight must be > 0
    (a softmax is never zero)."""
    import torch

    w = weights.normalized().as_tuple()
    if min(w) <= 0:
        raise ConfigError(f"learned score weights start from {weights.to_dict()}: every weight must be > 0")
    return torch.log(torch.tensor(w, dtype=torch.float64)).float()


def weights_from_logits(theta) -> ScoreWeights:
    """softmax(θ) as plain :class:`ScoreWeights` (detached; for validation, history, checkpoints)."""
    import torch

    w = torch.softmax(theta.detach().double().cpu(), dim=0).tolist()
    return ScoreWeights(cos=w[0], l2=w[1], l3=w[2])


def score_terms_numpy(q: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference terms of one query ``q`` (D,) against rows of ``xb`` (N, D), in float64.

    Returns (cos, 1/(1+L2), 1/(1+L3)), each (N,). Slow and simple on purpose: it is the
    yardstick the fast kernels are tested against.
    """
    q = np.asarray(q, dtype=np.float64)
    xb = np.asarray(xb, dtype=np.float64)
    qn = np.linalg.norm(q)
    xn = np.linalg.norm(xb, axis=1)
    denom = np.maximum(qn * xn, 1e-30)
    cos = (xb @ q) / denom
    diff = np.abs(xb - q[None, :])
    l2 = np.sqrt((diff**2).sum(axis=1))
    l3 = np.cbrt((diff**3).sum(axis=1))
    return cos, 1.0 / (1.0 + l2), 1.0 / (1.0 + l3)


def score_numpy(q: np.ndarray, xb: np.ndarray, weights: ScoreWeights = ScoreWeights()) -> np.ndarray:
    """Reference score of one query against each row of ``xb``."""
    c, i2, i3 = score_terms_numpy(q, xb)
    w1, w2, w3 = weights.as_tuple()
    return w1 * c + w2 * i2 + w3 * i3


def score_terms_torch(a, b):
    """Row-wise terms between ``a`` and ``b`` (…, D) tensors, broadcasting; differentiable."""
    import torch

    a32 = a.float()
    b32 = b.float()
    cos = torch.nn.functional.cosine_similarity(a32, b32, dim=-1, eps=1e-8)
    diff = (a32 - b32).abs()
    l2 = torch.sqrt((diff * diff).sum(-1) + _EPS)
    l3 = torch.pow((diff * diff * diff).sum(-1) + _EPS, 1.0 / 3.0)
    return cos, 1.0 / (1.0 + l2), 1.0 / (1.0 + l3)


def score_torch(a, b, weights=ScoreWeights()):
    """Row-wise weighted score s(a, b) for torch tensors (…, D) → (…).

    ``weights``: :class:`ScoreWeights`, or a tensor (3,) of (cos, l2, l3) weights, e.g.
    ``softmax(θ)`` of learned logits, through which the gradient flows."""
    c, i2, i3 = score_terms_torch(a, b)
    if isinstance(weights, ScoreWeights):
        w1, w2, w3 = weights.as_tuple()
    else:
        w1, w2, w3 = weights.to(device=c.device, dtype=c.dtype).unbind(0)
    return w1 * c + w2 * i2 + w3 * i3
