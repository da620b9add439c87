"""Training and evaluating a model: gr train, gr evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from .errors import friendly
from .options import AsJson, Columns, MetadataCsv, OnErrorFail, Precision, Suppress, opened_catalog
from .render import RichProgress, render_eval, render_train, report_skipped

app = typer.Typer()


Catalog = Annotated[Path, typer.Option(help="HDF5 catalog or image folder (labels, if any, are ignored).")]
Preset = Annotated[
    str,
    typer.Option(
        help=(
            "Model preset: polar (the rotation-invariant CNN on a polar resampling: measured best on real "
            "cutouts), small (the paper's ViT at 64 px), paper (the paper's ViT at 224 px), tiny."
        )
    ),
]
# the command line's two names for TrainConfig.augment: GALAXY_AUGMENT, or None (the paper's §3.4 sets)
Augment = Annotated[
    Literal["galaxy", "paper"],
    typer.Option(
        help=(
            "Positive transforms: galaxy (every view gets any rotation, flips, zoom and shift, PSF blur, "
            "colour, stretch, brightness and noise: measured on real cutouts) or paper (§3.4's sets, "
            "--num-augmentations of them per image)."
        )
    ),
]
NumAugmentations = Annotated[
    int, typer.Option(help="With --augment paper: transforms drawn per positive/negative image (§3.4).")
]
SelectBy = Annotated[
    str,
    typer.Option(
        help=(
            "What picks the best epoch: split_loose_acc (loose accuracy against the whole validation split, "
            "label-free; tracks retrieval on real cutouts) or val_loss."
        )
    ),
]
PairMode = Annotated[
    str,
    typer.Option(
        help=(
            "in_batch: every other image of the batch is a negative (default, measured better); paper: one "
            "positive + one negative pair per image (§3.4)."
        )
    ),
]
AugmentAnchors = Annotated[
    bool,
    typer.Option(
        "--augment-anchors/--no-augment-anchors", help="Also augment the anchor image of each pair."
    ),
]
SaveComputations = Annotated[
    bool,
    typer.Option("--save-computations", help="Each image gets a positive OR a negative pair (paper option)."),
]
Patience = Annotated[int, typer.Option(help="Early stopping: epochs without a better validation loss.")]
TimeBudget = Annotated[
    float | None, typer.Option(help="Stop before an epoch that would end past this many seconds.")
]
Loss = Annotated[
    str | None,
    typer.Option(
        help=(
            "Default: info_nce (InfoNCE over the batch, measured better) with in_batch pairs, contrastive "
            "(the paper's margin loss, §3.4) with paper pairs."
        ),
        show_default=False,
    ),
]
LearnWeights = Annotated[
    bool,
    typer.Option(
        "--learn-weights",
        help="Learn the score's cosine/L2/L3 weights with the model (§3.6); "
        "the index then reranks with them.",
    ),
]
SuppressSources = Annotated[
    Suppress,
    typer.Option(
        help=(
            "Replace sources other than the central object by sky before training, indexing and querying: "
            "none, optical (stars, neighbours) or radio (keeps sources near the centre, e.g. lobes)."
        )
    ),
]
FramingSpec = Annotated[
    str,
    typer.Option(
        help=(
            "The square the model sees: auto (around the central source, measured in each image: survey "
            "cutouts), auto:MARGIN (box half-side in Petrosian radii, default 1.5), fixed:F (central "
            "fraction F, e.g. fixed:0.4 for FIRST radio images), none (whole frame)."
        )
    ),
]
Init = Annotated[
    str,
    typer.Option(
        help=(
            "Start from trained weights: auto (the shipped model when the preset matches it, i.e. polar: "
            "fine-tuning measured better than from scratch), pretrained, none (from scratch) or a run "
            "directory of the same preset."
        )
    ),
]
FusionShare = Annotated[
    float | None,
    typer.Option(
        help=(
            "Append the polar Fourier descriptor to every indexed vector with this share of its squared norm "
            "(0 to <1; 0: the network's vector alone); default: 0.1, chosen on simulated galaxies."
        )
    ),
]
FusionComponents = Annotated[
    int | None,
    typer.Option(
        help=(
            "With descriptor fusion: project the descriptor on this many of its principal axes over the "
            "training images (0: all 432 numbers); default: 32."
        )
    ),
]
DescriptorWeight = Annotated[
    float | None,
    typer.Option(
        help=(
            "Weight of a label-free auxiliary loss: the embedding must predict each image's polar Fourier "
            "descriptor (0: off; default: 3). Changes training only, not the vector's length."
        )
    ),
]
CompileMode = Annotated[
    str, typer.Option("--compile", help="torch.compile the model: auto (long runs), on or off.")
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last epoch.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run in --out.")]


@app.command()
@friendly
def train(
    catalog: Catalog,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory, e.g. runs/NAME.")],
    metadata: MetadataCsv = None,
    columns: Columns = None,
    on_error: OnErrorFail = "fail",
    preset: Preset = "polar",
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping may end sooner).")] = 30,
    batch_size: Annotated[int, typer.Option(help="Images per training batch.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 5e-4,
    augment: Augment = "galaxy",
    num_augmentations: NumAugmentations = 3,
    select_by: SelectBy = "split_loose_acc",
    pair_mode: PairMode = "in_batch",
    augment_anchors: AugmentAnchors = True,
    save_computations: SaveComputations = False,
    patience: Patience = 6,
    time_budget: TimeBudget = None,
    loss: Loss = None,
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature.")] = 0.1,
    learn_weights: LearnWeights = False,
    suppress_sources: SuppressSources = "none",
    framing: FramingSpec = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the split, initialisation and augmentations.")] = 0,
    init: Init = "auto",
    fusion_share: FusionShare = None,
    fusion_components: FusionComponents = None,
    descriptor_weight: DescriptorWeight = None,
    precision: Precision = "auto",
    compile_mode: CompileMode = "auto",
    device: Annotated[str, typer.Option(help="auto (cuda, mps, cpu), or a torch device.")] = "auto",
    resume: Resume = False,
    overwrite: Overwrite = False,
) -> None:
    """Train a model label-free on a catalog (contrastive pairs of augmented views, paper §3.4)."""
    from ..framing import Framing
    from ..model.fusion import DEFAULT_COMPONENTS
    from ..model.presets import preset as preset_config
    from ..model.pretrained import resolve_init
    from ..suppress import PRESETS as SUPPRESS_PRESETS
    from ..train import TrainConfig
    from ..train import train as train_fn
    from ..train.augment import GALAXY_AUGMENT
    from ..train.config import RECIPE_DESCRIPTOR_WEIGHT, RECIPE_FUSION_SHARE

    cfg = TrainConfig(
        preset=preset,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        num_augmentations=num_augmentations,
        augment=GALAXY_AUGMENT if augment == "galaxy" else None,
        select_by=select_by,
        pair_mode=pair_mode,
        augment_anchors=augment_anchors,
        save_computations=save_computations,
        patience=patience,
        time_budget_s=time_budget,
        seed=seed,
        device=device,
        learn_score_weights=learn_weights,
        loss=loss,
        temperature=temperature,
        suppress_sources=None if suppress_sources == "none" else SUPPRESS_PRESETS[suppress_sources],
        framing=Framing.parse(framing),
        init=resolve_init(init, preset_config(preset)),
        # gr train's recipe (train/config.py) where the option is not given; 0 turns it off
        fusion_share=(RECIPE_FUSION_SHARE if fusion_share is None else fusion_share) or None,
        fusion_components=(DEFAULT_COMPONENTS if fusion_components is None else fusion_components) or None,
        descriptor_weight=RECIPE_DESCRIPTOR_WEIGHT if descriptor_weight is None else descriptor_weight,
        precision=precision,
        compile=compile_mode,
    )
    with opened_catalog(catalog, metadata, on_error, columns) as cat:
        res = train_fn(cfg, cat, out_dir, progress=RichProgress(), resume=resume, overwrite=overwrite)
        render_train(res)
        report_skipped(getattr(cat, "skipped", []))


EvaluateCatalog = Annotated[
    Path, typer.Option(help="The catalog it was trained on (split by the training seed).")
]
Split = Annotated[
    str, typer.Option(help="Which part of the training split the queries come from: test, val, train or all.")
]
Baselines = Annotated[
    bool,
    typer.Option(
        help=(
            "Also score the baselines: the untrained network, raw pixels, the polar Fourier descriptor and "
            "morphology."
        )
    ),
]


@app.command()
@friendly
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Trained model (runs/NAME).")],
    catalog: EvaluateCatalog,
    metadata: MetadataCsv = None,
    columns: Columns = None,
    on_error: OnErrorFail = "fail",
    split: Split = "test",
    baselines: Baselines = True,
    as_json: AsJson = False,
) -> None:
    """Loose accuracy (batch 8, 64) and label retrieval precision/mAP against baselines."""
    from ..evaluate import evaluate as evaluate_fn

    with opened_catalog(catalog, metadata, on_error, columns) as cat:
        rep = evaluate_fn(checkpoint, cat, split=split, progress=RichProgress(), baselines=baselines)
        if as_json:
            print(json.dumps(rep.to_dict(), default=str))
            return
        render_eval(rep)
        report_skipped(getattr(cat, "skipped", []))
