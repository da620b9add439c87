"""Training configuration: one frozen dataclass, saved in every checkpoint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import ConfigError
from ..framing import Framing
from ..model.compat import model_config_from_dict
from ..model.config import ModelConfig
from ..model.device import Precision
from ..model.fusion import DEFAULT_COMPONENTS, DEFAULT_SHARE
from ..model.registry import model_config as preset_config
from ..score import ScoreWeights
from ..suppress import SuppressConfig
from .augment import GALAXY_AUGMENT, AugmentConfig

__all__ = ["TrainConfig", "PairMode", "LrSchedule", "CompileMode", "COMPILE_AUTO_MIN_IMAGES"]

PairMode = Literal["paper", "in_batch"]
SelectBy = Literal["val_loss", "split_loose_acc"]
LossKind = Literal["contrastive", "info_nce"]
LrSchedule = Literal["constant", "cosine"]
CompileMode = Literal["auto", "on", "off"]
# torch.compile costs ~25-60 s of compilation per run on 2 cores and then trains the polar
# CNN ~1.7x faster than eager bf16 (benchmarks/train_speed.py): "auto" compiles only runs that
# will push at least this many images through the model, where the compile is < ~10 % of the run
COMPILE_AUTO_MIN_IMAGES = 60_000


#: ``gr train``'s recipe where it differs from :class:`TrainConfig`'s own defaults (those stay
#: as they were, so that configs recorded before read back the same): the descriptor target
#: (weight 3) and the descriptor fused into the indexed vector (share 0.1 on 32 principal
#: axes). Measured with 3 seeds on both real development sets against the network alone
#: (benchmarks/quality/README.md, variants finetune-desc3-fused32 and finetune).
RECIPE_DESCRIPTOR_WEIGHT = 3.0
RECIPE_FUSION_SHARE = DEFAULT_SHARE


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run.

    Defaults: the recipe measured on real survey cutouts (the quality protocol,
    benchmarks/quality/README.md, on the Galaxy Zoo 2 SDSS development set): the
    rotation-invariant ``polar`` backbone (:mod:`galaxy_retrieval.model.polar`), ``auto``
    framing around the central source (:mod:`galaxy_retrieval.framing`), InfoNCE at τ 0.1
    over batches of 128 with every other image of the batch a negative, both views with the
    galaxy transforms (:data:`~galaxy_retrieval.train.augment.GALAXY_AUGMENT`), and the
    best epoch picked by loose accuracy against the whole validation split
    (``select_by="split_loose_acc"``). The score, and so the index's ranking, is the
    paper's. Why each piece: on real cutouts the paper's ViT learned little beyond colour and
    size (no better than raw pixels); the photometric transforms stop the network telling
    instances apart by their colour histograms; the batch-8/64 loose accuracy saturates and
    the validation loss does not rank runs as retrieval does.

    :meth:`paper_faithful` gives the paper's recipe (ViT ``small``, its pairs, margin loss and
    transform sets, whole frame, best epoch by validation loss). Training configs recorded
    before an option existed read back with the value they were trained with.

    pair_mode
        ``"paper"``: each image i yields a positive pair (i, T⁺(i)) and a negative pair
        (i, T⁻(j)) with j a different random image; the contrastive loss averages over
        pairs. ``"in_batch"``: each image yields (i, T⁺(i)) and every other image's T⁺(j)
        in the batch is a negative of i (B positive and B·(B−1) negative pairs; the two
        groups are averaged separately and weighted equally, as paper mode's one positive
        and one negative pair per image are), no harsh negatives. Same loss, same score.
    save_computations
        paper option: each image gets *either* its positive or its negative pair
        (at random, half on average) instead of both — two images per pair instead of three.
    augment_anchors
        also give the anchor of every pair its own random positive transforms (two
        augmented views per image, as in SimCLR) instead of the untouched image (paper).
    loss
        ``"contrastive"``: the paper's margin loss on the weighted score (§3.4).
        ``"info_nce"`` (needs ``pair_mode="in_batch"``): symmetric InfoNCE on the B×B score
        matrix with ``temperature`` (:func:`galaxy_retrieval.train.losses.info_nce_loss`); the
        score itself, and so the index's ranking, is the paper's. Validation then reports
        the InfoNCE of the validation pairs as ``val_loss``, so the best epoch is chosen by
        the loss being optimised.
    time_budget_s
        stop before an epoch that would end past this many seconds (None: no limit).
    learn_score_weights
        learn the score's weights with the model (the paper's future work, §3.6): the loss
        scores with w = softmax(θ), θ a 3-vector starting where w equals ``score_weights``
        normalised (so every initial weight must be > 0) and optimised by the same loss and
        learning rate, without weight decay. The weights stay positive and sum to one, so
        the maximum score stays 1 and the margin of 1.0 keeps its meaning. Validation uses
        the current weights; the history records them (``w_cos``, ``w_l2``, ``w_l3``) and
        the checkpoint those of the best epoch (``checkpoint.json`` key ``score_weights``),
        which evaluation and index building then use by default.
    select_by
        what picks the best epoch (whose weights the run keeps) and drives early stopping:
        ``"val_loss"``, the training objective on the validation pairs, or
        ``"split_loose_acc"``, loose accuracy against the whole validation split
        (:func:`~galaxy_retrieval.metrics.split_loose_accuracy`), label-free and
        unlike the loss or batch-8/64 loose accuracy not saturated on real cutouts.
    precision
        ``"auto"`` (bf16 autocast on CUDA and on CPUs with native bf16 such as AMX, float32
        elsewhere), ``"fp32"`` or ``"bf16"``. Weights, optimiser and loss stay float32. A
        speed setting: ``"fp32"`` reproduces runs recorded before the option existed.
    compile
        ``torch.compile`` the model's training forward: ``"on"``, ``"off"`` or ``"auto"``
        (on for runs of at least ``COMPILE_AUTO_MIN_IMAGES`` model images, where the
        compile time pays for itself). Speed only; results equal eager within float error.
    fusion_share
        append the standardised polar Fourier descriptor to every vector the checkpoint
        embeds, with this share of the vector's squared norm
        (:mod:`galaxy_retrieval.model.fusion`); its statistics come from the training images
        (label-free) and are stored in the weights file. None: the network's vector alone.
        Training itself is unchanged: the fusion only shapes what is indexed and searched.
    fusion_components
        with ``fusion_share``: project the standardised descriptor on this many of its
        principal axes over the training images before fusing (label-free; the module doc of
        :mod:`galaxy_retrieval.model.fusion` says why 32); None fuses all 432 numbers.
    descriptor_weight
        weight of an auxiliary, label-free loss: a linear head on the embedding must predict
        the standardised polar Fourier descriptor of each training image (both augmented
        views, the clean image's descriptor;
        :mod:`galaxy_retrieval.train.descriptor_target`), so the vector keeps the radial
        profile the contrastive loss alone may drop. 0 turns it off. Unlike
        ``fusion_share`` it changes training only: the indexed vector keeps its length.
    init
        start from trained weights instead of a random initialisation: ``"pretrained"`` (the
        model shipped in the package) or a run directory / weights file of the same shape.
        Fine-tuning then continues with this config's recipe on the catalog.
    framing
        the square cut from each cutout before it is resized
        (:class:`~galaxy_retrieval.framing.Framing`); None keeps the model config's.
    suppress_sources
        replace every source but the central galaxy by sky (:mod:`galaxy_retrieval.suppress`)
        in the full-resolution catalog images before they are cropped and resized, for
        training and validation alike; None keeps the model config's (off in every preset).

    Both become the trained model's :class:`~galaxy_retrieval.model.Preprocessing`
    (:meth:`model_config`), stored once in the checkpoint's model config, so indexing,
    queries, evaluation and explanations treat every image the same way.
    """

    preset: str = "polar"
    model: ModelConfig | None = None  # overrides ``preset`` when given
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-4
    lr_schedule: LrSchedule = "constant"
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    margin: float = 1.0
    score_weights: ScoreWeights = field(default_factory=ScoreWeights)
    num_augmentations: int = 3
    num_neg_augmentations: int | None = None  # None: same as num_augmentations
    # full control of the transforms and their strengths; overrides the two above (None:
    # the paper's sets, num_augmentations of them per image)
    augment: AugmentConfig | None = GALAXY_AUGMENT
    pair_mode: PairMode = "in_batch"
    loss: LossKind | None = None  # None: "info_nce" with in_batch pairs, else "contrastive"
    temperature: float = 0.1
    save_computations: bool = False
    augment_anchors: bool = True
    patience: int = 6
    seed: int = 0
    loose_batch_sizes: tuple[int, ...] = (8, 64)
    max_val_images: int = 2048
    time_budget_s: float | None = None
    device: str = "auto"
    preload_max_bytes: int = 2 << 30
    learn_score_weights: bool = False
    suppress_sources: SuppressConfig | None = None
    framing: Framing | None = Framing(mode="auto")
    select_by: SelectBy = "split_loose_acc"
    precision: Precision = "auto"
    compile: CompileMode = "auto"
    fusion_share: float | None = None
    fusion_components: int | None = DEFAULT_COMPONENTS
    descriptor_weight: float = 0.0
    init: str | None = None

    def __post_init__(self) -> None:
        self._check_optimiser()
        self._check_loss()
        self._check_schedule()
        self._check_scoring()
        self._check_model_options()
        self._check_model_and_augmentation()

    def _check_int(self, name: str, lo: int) -> None:
        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"train config {name}={v!r} must be an integer >= {lo}")

    def _check_optimiser(self) -> None:
        """Counts, learning rate, margin, weight decay, warmup, gradient clipping."""
        for name, lo in (
            ("epochs", 1),
            ("batch_size", 2),
            ("patience", 1),
            ("seed", 0),
            ("max_val_images", 2),
            ("num_augmentations", 0),
            ("preload_max_bytes", 0),
        ):
            self._check_int(name, lo)
        for name in ("lr", "margin"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"train config {name}={v!r} must be a finite number > 0")
        if (
            not isinstance(self.weight_decay, (int, float))
            or not math.isfinite(self.weight_decay)
            or self.weight_decay < 0
        ):
            raise ConfigError(f"train config weight_decay={self.weight_decay!r} must be a finite number >= 0")
        if self.warmup_epochs < 0:
            raise ConfigError(f"train config warmup_epochs={self.warmup_epochs!r} must be >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train config grad_clip={self.grad_clip!r} must be > 0 or None")

    def _check_loss(self) -> None:
        """Pair mode, loss (its default follows the pair mode), temperature, save_computations."""
        if self.pair_mode not in ("paper", "in_batch"):
            raise ConfigError(f"train config pair_mode={self.pair_mode!r}; choices: paper, in_batch")
        if self.loss is None:
            object.__setattr__(self, "loss", "info_nce" if self.pair_mode == "in_batch" else "contrastive")
        if self.loss not in ("contrastive", "info_nce"):
            raise ConfigError(f"train config loss={self.loss!r}; choices: contrastive, info_nce")
        if self.loss == "info_nce" and self.pair_mode != "in_batch":
            raise ConfigError(
                "loss='info_nce' needs pair_mode='in_batch' (it contrasts each image with the rest of its batch)"
            )
        if (
            not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or self.temperature <= 0
        ):
            raise ConfigError(f"train config temperature={self.temperature!r} must be a finite number > 0")
        if self.save_computations and self.pair_mode != "paper":
            raise ConfigError(
                "save_computations applies to pair_mode='paper' (in_batch pairs cost no extra images)"
            )

    def _check_schedule(self) -> None:
        """Learning-rate schedule, time budget, the loose-accuracy batch sizes."""
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"train config lr_schedule={self.lr_schedule!r}; choices: constant, cosine")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"train config time_budget_s={self.time_budget_s!r} must be > 0 or None")
        sizes = tuple(int(b) for b in self.loose_batch_sizes)
        if not sizes or min(sizes) < 2:
            raise ConfigError(
                f"train config loose_batch_sizes={self.loose_batch_sizes!r} must be integers >= 2"
            )
        object.__setattr__(self, "loose_batch_sizes", sizes)

    def _check_scoring(self) -> None:
        """Score weights (fixed or learned), source suppression, model selection."""
        if not isinstance(self.score_weights, ScoreWeights):
            raise ConfigError(
                f"train config score_weights must be a ScoreWeights, got {type(self.score_weights).__name__}"
            )
        if not isinstance(self.learn_score_weights, bool):
            raise ConfigError(
                f"train config learn_score_weights={self.learn_score_weights!r} must be True or False"
            )
        if self.learn_score_weights and min(self.score_weights.as_tuple()) <= 0:
            raise ConfigError(
                f"train config learn_score_weights starts from score_weights={self.score_weights.to_dict()}: "
                "every weight must be > 0 (learned weights are a softmax, never exactly zero)"
            )
        if self.suppress_sources is not None and not isinstance(self.suppress_sources, SuppressConfig):
            raise ConfigError(
                f"train config suppress_sources must be a SuppressConfig or None, got {type(self.suppress_sources).__name__}"
            )
        if self.select_by not in ("val_loss", "split_loose_acc"):
            raise ConfigError(
                f"train config select_by={self.select_by!r}; choices: val_loss, split_loose_acc"
            )

    def _check_model_options(self) -> None:
        """Precision, fusion share, descriptor weight, initialisation, compile mode."""
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"train config precision={self.precision!r}; choices: auto, fp32, bf16")
        if self.fusion_share is not None and (
            isinstance(self.fusion_share, bool)
            or not isinstance(self.fusion_share, (int, float))
            or not 0 <= self.fusion_share < 1
        ):
            raise ConfigError(
                f"train config fusion_share={self.fusion_share!r} must be a number in [0, 1) or None"
            )
        fc = self.fusion_components
        if fc is not None and (isinstance(fc, bool) or not isinstance(fc, int) or fc < 1):
            raise ConfigError(f"train config fusion_components={fc!r} must be an integer >= 1 or None")
        dw = self.descriptor_weight
        if isinstance(dw, bool) or not isinstance(dw, (int, float)) or not math.isfinite(dw) or dw < 0:
            raise ConfigError(f"train config descriptor_weight={dw!r} must be a finite number >= 0")
        if self.init is not None and (not isinstance(self.init, str) or not self.init.strip()):
            raise ConfigError(
                f"train config init={self.init!r} must be 'pretrained', a checkpoint path or None"
            )
        if self.compile not in ("auto", "on", "off"):
            raise ConfigError(f"train config compile={self.compile!r}; choices: auto, on, off")

    def _check_model_and_augmentation(self) -> None:
        """Framing (from a dict), the model or preset, the augmentation counts."""
        if self.framing is not None and not isinstance(self.framing, Framing):
            object.__setattr__(self, "framing", Framing.from_dict(self.framing))
        if self.model is None:
            preset_config(self.preset)  # raises ConfigError naming the choices
        elif not isinstance(self.model, ModelConfig):
            raise ConfigError(
                f"train config model must be a ModelConfig or None, got {type(self.model).__name__}"
            )
        self.augment_config()  # validates augmentation counts

    @classmethod
    def paper_faithful(cls, **overrides: Any) -> TrainConfig:
        """The paper's training recipe (§3.4): untouched anchors, one positive and one
        harsh-negative pair per image, constant learning rate."""
        base = dict(
            preset="small",
            pair_mode="paper",
            loss="contrastive",
            augment_anchors=False,
            lr_schedule="constant",
            warmup_epochs=0.0,
            augment=None,
            framing=None,
            select_by="val_loss",
            epochs=25,
            batch_size=64,
        )
        return cls(**{**base, **overrides})

    def model_config(self) -> ModelConfig:
        """The model to train: ``model`` if given, else the named preset; ``framing`` and
        ``suppress_sources``, when set, replace its preprocessing's."""
        base = self.model if self.model is not None else preset_config(self.preset)
        changes: dict[str, Any] = {}
        if self.framing is not None:
            changes["framing"] = self.framing
        if self.suppress_sources is not None:
            changes["suppress"] = self.suppress_sources
        return base.with_preprocessing(**changes) if changes else base

    def augment_config(self) -> AugmentConfig:
        if self.augment is not None:
            return self.augment
        neg = self.num_augmentations if self.num_neg_augmentations is None else self.num_neg_augmentations
        from .augment import NEGATIVE_TRANSFORMS, POSITIVE_TRANSFORMS

        return AugmentConfig(
            num_positive=min(self.num_augmentations, len(POSITIVE_TRANSFORMS)),
            num_negative=min(neg, len(NEGATIVE_TRANSFORMS)),
        )

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (ModelConfig, ScoreWeights, SuppressConfig, Framing)):
                v = v.to_dict()
            elif isinstance(v, AugmentConfig):
                v = {k: (list(x) if isinstance(x, tuple) else x) for k, x in asdict(v).items()}
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"train config has unknown field(s) {', '.join(unknown)}")
        kw = dict(d)
        # runs recorded before an option existed were trained without it: the paper's loss,
        # the whole frame, the best epoch by validation loss
        kw.setdefault("loss", "contrastive")
        kw.setdefault("temperature", 0.1)  # the default when the option was added
        kw.setdefault("framing", None)
        kw.setdefault("preset", "small")
        kw.setdefault("select_by", "val_loss")
        kw.setdefault("precision", "fp32")  # trained before mixed precision on the CPU
        kw.setdefault("compile", "off")
        kw.setdefault("init", None)
        kw.setdefault("fusion_components", None)  # fused the whole descriptor
        if kw.get("model") is not None:
            kw["model"] = model_config_from_dict(kw["model"])
        if "score_weights" in kw:
            kw["score_weights"] = ScoreWeights.from_dict(kw["score_weights"])
        if kw.get("framing") is not None:
            kw["framing"] = Framing.from_dict(kw["framing"])
        if kw.get("suppress_sources") is not None:
            kw["suppress_sources"] = SuppressConfig.from_dict(kw["suppress_sources"])
        if kw.get("augment") is not None:
            kw["augment"] = AugmentConfig(
                **{k: (tuple(v) if isinstance(v, list) else v) for k, v in kw["augment"].items()}
            )
        if "loose_batch_sizes" in kw:
            kw["loose_batch_sizes"] = tuple(kw["loose_batch_sizes"])
        return cls(**kw)
