"""train, pca: train with the paper's recipe, and the colour PCA its augmentation uses."""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from ..data import FullImage, training_sets
from ..files import check_writable
from ..mean_image import load_mean
from ..model import AlexNet
from ..preprocessing import PREPROCESSING
from ..spec import ACTIVATIONS, LRN_CONVENTIONS, NO_LRN, POOLING, VARIANTS, network
from ..tuning import resolve_log
from .common import notes, results, target_option, target_text, tuning_log_option


def _data_sets(data: Path | None, demo: bool, variant: str, mean: Path | None = None):
    """(train, validation, classes, preprocessing) of 256x256 images: the demo
    digits, or DATA/train and DATA/val; with `mean` (a .npy from `tvm-alexnet
    mean`), that mean image subtracted instead of the per-channel mean."""
    if not demo and data is None:
        raise click.UsageError("give --data DIR (holding train/<class>/ and val/<class>/) or --demo")
    network(variant)  # an unknown variant fails before any image is read
    prep = PREPROCESSING[variant].with_mean_image(load_mean(mean) if mean else None)
    return (*training_sets(None if demo else data, FullImage(prep)), prep)


@click.command("train")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="An ImageFolder tree: DATA/train/<class>/*.jpg and DATA/val/<class>/*.jpg (ImageNet's layout).")
@click.option("--demo", is_flag=True, help="Train on scikit-learn's handwritten digits (no download), "
                                           "width 0.25 and torch's initialisation unless given.")
@click.option("--variant", default="paper", show_default=True, metavar="|".join(VARIANTS))
@click.option("--width", type=float, default=None, help="Channel multiplier (default 1, or 0.25 with --demo).")
@click.option("--lrn", metavar="|".join([*LRN_CONVENTIONS, NO_LRN]), default=None,
              help="LRN convention (default: the variant's own), or none: no LRN layers.")
@click.option("--pool", metavar="|".join(POOLING), default=None,
              help="Max-pooling: overlapping (3x3 stride 2, the default) or non-overlapping (2x2 stride 2).")
@click.option("--activation", metavar="|".join(ACTIVATIONS), default=None,
              help="Nonlinearity of the conv and hidden dense layers: relu (the default) or tanh.")
@click.option("--init", type=click.Choice(["paper", "torch"]), default=None,
              help="Weight initialisation (default paper, or torch with --demo).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Default 90, or 3 with --demo.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default 128, or 32 with --demo.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--lr-factor", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="Multiply the learning rate by this when the validation error stops improving.")
@click.option("--patience", type=click.IntRange(min=0), default=1, show_default=True,
              help="Epochs without improvement of the validation top-1 error tolerated before the rate is "
                   "divided: 1 lets one noisy epoch pass, the second in a row divides it (0: every epoch "
                   "without improvement does).")
@click.option("--max-lr-drops", type=click.IntRange(min=0), default=3, show_default=True,
              help="Divide the rate at most this many times (the paper: three times in ~90 epochs).")
@click.option("--update", type=click.Choice(["torch", "paper"]), default="torch", show_default=True,
              help="Momentum rule. torch: torch.optim.SGD (v = m*v + g + wd*w; w -= lr*v). paper: the paper's "
                   "v = m*v - wd*lr*w - lr*g; w += v. The same steps at a constant rate; after a rate drop the "
                   "paper's velocity still carries the old rate's steps (docs/training.md).")
@click.option("--mean", "mean_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Subtract this per-pixel mean image (from `tvm-alexnet mean`) as the paper did, instead of "
                   "the per-channel mean.")
@click.option("--pca", "pca_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Colour PCA from `tvm-alexnet pca`: enables the paper's colour augmentation.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data loading processes.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also checkpoint every N steps (0: at the end of each epoch only).")
@click.option("--seed", type=int, default=0, show_default=True)
@target_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoint (last.pt), metrics.jsonl, training.png and final weights (default runs/alexnet, "
                   "or a new runs/demo-<time> with --demo).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt with the same next batch.")
@click.option("--towers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Under torchrun with 2 processes: 2 runs the paper's towers, one per process (else the "
                   "processes are data-parallel).")
@click.option("--dist-timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Under torchrun: seconds a rank waits for the others before it gives up with an error.")
@tuning_log_option
def train_cmd(data, demo, variant, width, lrn, pool, activation, init, epochs, batch_size, lr, momentum, weight_decay,
              lr_factor, patience, max_lr_drops, update, mean_file, pca_file, workers, checkpoint_every, seed, target, out, resume, towers,
              dist_timeout, tuning_log):
    """Train with the paper's recipe: every layer's forward and backward compiled by TVM.

    SGD (momentum 0.9, weight decay 5e-4, batch 128), learning rate 0.01
    divided by 10 when the validation error stops improving, random 227x227
    crops of 256x256 images with flips (and, with --pca, colour noise).
    Interrupt it and run it again with --resume: it continues from the last
    checkpoint with the same next batch.

    Launched by `torchrun --nproc-per-node M [--nnodes N ...] -m tvm_alexnet
    train ...` the processes train data-parallel (the batch split between
    them, gradients averaged), or with --towers 2 as the paper's two towers.
    """
    from .. import placement
    from ..augment import ColourPCA
    from ..lab import file_digest
    from ..parallel import close, from_environment
    from ..train import CHECKPOINT, Recipe, load_checkpoint, train

    width = width if width is not None else (0.25 if demo else 1.0)
    out = out or (Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S") if demo else Path("runs/alexnet"))
    recipe = Recipe(batch_size=batch_size or (32 if demo else 128), lr=lr, momentum=momentum,
                    weight_decay=weight_decay, lr_factor=lr_factor, patience=patience,
                    max_lr_drops=max_lr_drops, update=update, mean=file_digest(mean_file) if mean_file else None,
                    epochs=epochs or (3 if demo else 90), seed=seed, workers=workers,
                    checkpoint_every=checkpoint_every)
    parallel = from_environment(towers, dist_timeout, target)  # gloo for llvm, NCCL on GPU LOCAL_RANK for cuda
    placement.check_ranks(target)  # a cuda target on a machine without a GPU fails here, not on the first batch
    if recipe.batch_size % parallel.data_shards:
        raise click.BadParameter(f"{recipe.batch_size} does not split over {parallel.data_shards} processes",
                                 param_hint="'--batch-size'")
    train_set, val_set, classes, prep = _data_sets(data, demo, variant, mean_file)
    pca = ColourPCA.load(pca_file) if pca_file else None
    torch.manual_seed(seed)
    model = AlexNet(variant, len(classes), width, lrn, pool, activation)
    model.reset_parameters(init or ("torch" if demo else "paper"))
    model.preprocessing = prep  # saved with the weights, mean image and all, for run and eval
    if mean_file:
        model.mean_image_file = dict(path=str(mean_file), sha256=recipe.mean)
    if (out / CHECKPOINT).exists():  # before compiling: a checkpoint that cannot be resumed fails at once
        if not resume:
            raise click.UsageError(f"{out / CHECKPOINT} exists: add --resume to continue it, or choose another --out")
        load_checkpoint(out / CHECKPOINT, model, recipe)
    elif resume:
        raise click.UsageError(f"{out / CHECKPOINT}: no checkpoint to resume from; leave out --resume to start a new run")
    check_writable(out, "checkpoints and metrics")
    if parallel.main:
        notes.print(f"{variant} width {width}: {model.spec.num_params:,} parameters, {len(classes)} classes, "
                    f"{len(train_set)} training and {len(val_set)} validation images"
                    + (f"; {parallel.world} processes, {parallel.mode} parallel" if parallel.world > 1 else ""))
    local = model
    if parallel.mode == "towers":
        from ..towers import DistributedTowerAlexNet

        local = placement.move(DistributedTowerAlexNet(model.spec), parallel.device)
        local.load_single_state_dict(model.state_dict())  # the same initial weights as one process
    else:
        placement.move(model, parallel.device)  # compiled for the GPU its parameters are on
    shard = recipe.batch_size // parallel.data_shards
    log = None
    if parallel.mode != "towers":  # a log holds the whole network's kernels; a tower's are half as wide
        log, message = resolve_log(tuning_log, model.spec, shard, target)
        if parallel.main:
            notes.print(message)
    with notes.status(f"compiling forward and backward kernels for {target_text(target)}, batch {shard} ..."):
        if parallel.mode == "towers":
            local.compile(target, batch=shard)
        else:
            local.compile(target, batch=shard, tuning_log=log)
    if log and parallel.main:
        notes.print(f"{log}: {len(local.compiled.manifest.tuned)} of {len(model.spec.compiled_kernels())} kernels "
                    f"tuned at batch {shard}, the rest on the default schedules")
    history = train(local, train_set, val_set, recipe, out, resume=resume, pca=pca, log=notes.print,
                    parallel=parallel)
    if parallel.mode == "towers":
        model.load_state_dict(local.single_state_dict())
    close(parallel)
    if not parallel.main:
        return
    model.save(out / "weights.safetensors")
    last = history[-1]
    results.print(f"epoch {last['epoch']}: validation top-1 error {100 * last['val_top1_error']:.1f}%, "
                  f"top-5 {100 * last['val_top5_error']:.1f}% (chance {100 * (1 - 1 / len(classes)):.0f}%); "
                  f"{last['images_per_s']:.1f} images/s; wrote {out}/weights.safetensors, metrics.jsonl, "
                  "training.png")


@click.command("pca")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="An ImageFolder tree; its train/ folder is used.")
@click.option("--demo", is_flag=True)
@click.option("--variant", default="paper", show_default=True, metavar="|".join(VARIANTS))
@click.option("--images", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Training images sampled for the covariance.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("pca.json"),
              show_default=True)
def pca_cmd(data, demo, variant, images, output):
    """Eigenvectors and eigenvalues of the training set's RGB covariance, for
    the paper's colour augmentation (`train --pca`)."""
    from ..augment import colour_pca

    train_set, *_ = _data_sets(data, demo, variant)
    pca = colour_pca(train_set, images)
    pca.save(output)
    results.print(f"eigenvalues {', '.join(f'{v:.3g}' for v in pca.eigvals)}; wrote {output}")
