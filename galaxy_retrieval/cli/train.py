"""Training and evaluating a model: gr train, gr evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .errors import friendly
from .options import COLUMNS_HELP, AugmentChoice, LossChoice, OnErrorChoice, PairModeChoice, PresetChoice, SelectByChoice, SplitChoice, SuppressChoice, opened_catalog
from .render import RichProgress, render_eval, render_train, report_skipped

app = typer.Typer()


@app.command()
@friendly
def train(
    catalog: Path = typer.Option(..., help="HDF5 catalog or image folder (labels, if any, are ignored)."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory, e.g. runs/NAME."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder."),
    columns: Optional[str] = typer.Option(None, help=COLUMNS_HELP),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
    preset: PresetChoice = typer.Option(PresetChoice.polar, help="Model preset: polar (the rotation-invariant CNN on a polar resampling: measured best on real cutouts), small (the paper's ViT at 64 px), paper (the paper's ViT at 224 px), tiny."),
    epochs: int = typer.Option(30, help="Maximum epochs (early stopping may end sooner)."),
    batch_size: int = typer.Option(128, help="Images per training batch."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    weight_decay: float = typer.Option(5e-4, help="Adam weight decay."),
    augment: AugmentChoice = typer.Option(AugmentChoice.galaxy, help="Positive transforms: galaxy (every view gets any rotation, flips, zoom and shift, PSF blur, colour, stretch, brightness and noise: measured on real cutouts) or paper (§3.4's sets, --num-augmentations of them per image)."),
    num_augmentations: int = typer.Option(3, help="With --augment paper: transforms drawn per positive/negative image (§3.4)."),
    select_by: SelectByChoice = typer.Option(SelectByChoice.split_loose_acc, help="What picks the best epoch: split_loose_acc (loose accuracy against the whole validation split, label-free; tracks retrieval on real cutouts) or val_loss."),
    pair_mode: PairModeChoice = typer.Option(PairModeChoice.in_batch, help="in_batch: every other image of the batch is a negative (default, measured better); paper: one positive + one negative pair per image (§3.4)."),
    augment_anchors: bool = typer.Option(True, "--augment-anchors/--no-augment-anchors", help="Also augment the anchor image of each pair."),
    save_computations: bool = typer.Option(False, "--save-computations", help="Each image gets a positive OR a negative pair (paper option)."),
    patience: int = typer.Option(6, help="Early stopping: epochs without a better validation loss."),
    time_budget: Optional[float] = typer.Option(None, help="Stop before an epoch that would end past this many seconds."),
    loss: Optional[LossChoice] = typer.Option(
        None, help="Default: info_nce (InfoNCE over the batch, measured better) with in_batch pairs, contrastive (the paper's margin loss, §3.4) with paper pairs.", show_default=False
    ),
    temperature: float = typer.Option(0.1, help="InfoNCE temperature."),
    learn_weights: bool = typer.Option(False, "--learn-weights", help="Learn the score's cosine/L2/L3 weights with the model (§3.6); the index then reranks with them."),
    suppress_sources: SuppressChoice = typer.Option(SuppressChoice.none, help="Replace sources other than the central object by sky before training, indexing and querying: none, optical (stars, neighbours) or radio (keeps sources near the centre, e.g. lobes)."),
    framing: str = typer.Option("auto", help="The square the model sees: auto (around the central source, measured in each image: survey cutouts), auto:MARGIN (box half-side in Petrosian radii, default 1.5), fixed:F (central fraction F, e.g. fixed:0.4 for FIRST radio images), none (whole frame)."),
    seed: int = typer.Option(0, help="Seed of the split, initialisation and augmentations."),
    init: str = typer.Option("auto", help="Start from trained weights: auto (the shipped model when the preset matches it, i.e. polar: fine-tuning measured better than from scratch), pretrained, none (from scratch) or a run directory of the same preset."),
    fusion_share: Optional[float] = typer.Option(None, help="Append the polar Fourier descriptor to every indexed vector with this share of its norm (0-1, e.g. 0.5); default: the network's vector alone."),
    precision: str = typer.Option("auto", help="auto (bf16 where the CPU/GPU has it natively, else fp32), fp32 or bf16."),
    compile_mode: str = typer.Option("auto", "--compile", help="torch.compile the model: auto (long runs), on or off."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), or a torch device."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last epoch."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --out."),
) -> None:
    """Train a model label-free on a catalog (contrastive pairs of augmented views, paper §3.4)."""
    from ..framing import Framing
    from ..model.presets import preset as preset_config
    from ..model.pretrained import resolve_init
    from ..suppress import PRESETS as SUPPRESS_PRESETS
    from ..train import TrainConfig
    from ..train import train as train_fn
    from ..train.augment import GALAXY_AUGMENT

    cfg = TrainConfig(
        preset=preset.value, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        num_augmentations=num_augmentations, augment=GALAXY_AUGMENT if augment == AugmentChoice.galaxy else None,
        select_by=select_by.value, pair_mode=pair_mode.value, augment_anchors=augment_anchors, save_computations=save_computations,
        patience=patience, time_budget_s=time_budget, seed=seed, device=device, learn_score_weights=learn_weights,
        loss=None if loss is None else loss.value, temperature=temperature,
        suppress_sources=None if suppress_sources == SuppressChoice.none else SUPPRESS_PRESETS[suppress_sources.value],
        framing=Framing.parse(framing), init=resolve_init(init, preset_config(preset.value)), fusion_share=fusion_share, precision=precision, compile=compile_mode,
    )
    with opened_catalog(catalog, metadata, on_error.value, columns) as cat:
        res = train_fn(cfg, cat, out_dir, progress=RichProgress(), resume=resume, overwrite=overwrite)
        render_train(res)
        report_skipped(cat)



@app.command()
@friendly
def evaluate(
    checkpoint: Path = typer.Option(..., help="Trained model (runs/NAME)."),
    catalog: Path = typer.Option(..., help="The catalog it was trained on (split by the training seed)."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder."),
    columns: Optional[str] = typer.Option(None, help=COLUMNS_HELP),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
    split: SplitChoice = typer.Option(SplitChoice.test, help="Which part of the training split the queries come from."),
    baselines: bool = typer.Option(True, help="Also score the baselines: the untrained network, raw pixels, the polar Fourier descriptor and morphology."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Loose accuracy (batch 8, 64) and label retrieval precision/mAP against baselines."""
    from ..evaluate import evaluate as evaluate_fn

    with opened_catalog(catalog, metadata, on_error.value, columns) as cat:
        rep = evaluate_fn(checkpoint, cat, split=split.value, progress=RichProgress(), baselines=baselines)
        if as_json:
            print(json.dumps(rep.to_dict(), default=str))
            return
        render_eval(rep)
        report_skipped(cat)
