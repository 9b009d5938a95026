"""filters, mean, saliency, neighbours: the paper's Figures 3 and 4, the mean
image, and saliency maps (lab.py computes, figures.py draws)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import figures, lab, mean_image, placement
from ..data import image_files
from .common import (
    load_model,
    network_options,
    notes,
    results,
    table,
    target_option,
    tuning_log_option,
)
from .infer import _compile_any_batch

weights_required = click.option(
    "--weights", type=click.Path(dir_okay=False, exists=True), required=True,
    help="Checkpoint (.safetensors records the network; a torch state dict is read with the network options).")


@click.command("filters")
@weights_required
@network_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default="conv1.png",
              show_default=True, help="The PNG to write.")
@click.option("--columns", type=click.IntRange(min=1), default=None, help="Kernels per row (default 16).")
@click.option("--zoom", type=click.IntRange(min=1), default=4, show_default=True, help="Pixels per kernel weight.")
def filters_cmd(weights, output, columns, zoom, **net):
    """Figure 3: conv1's kernels in a grid, tower 1's above tower 2's, each
    scaled to its own range; prints each tower's colour share (a kernel's
    energy outside its grey, channel-mean, component: 0 colour-agnostic,
    2/3 a single channel). The paper saw tower 1 learn mostly
    colour-agnostic kernels, tower 2 colour-specific ones."""
    model = load_model(weights, **net)
    kernels = lab.conv1_kernels(model)
    towers = lab.towers_of(model.spec)
    grid, _ = lab.filter_grid(kernels, towers, columns, zoom)
    figures.save_png(output, grid)
    shares = lab.tower_colour_shares(kernels, towers)
    per = len(kernels) // towers
    k = kernels.shape[-1]
    results.print(f"{output}: {len(kernels)} conv1 kernels {k}x{k}x3"
                  + (f", tower 1's {per} above tower 2's" if towers == 2 else ""))
    results.print(table("colour share per tower", ("tower", "kernels", "colour share"),
                        [[str(t + 1), str(per), f"{s:.3f}"] for t, s in enumerate(shares)]))


@click.command("mean")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="Training images: DATA/<class>/*.jpg (ImageNet's train layout).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default="mean.npy",
              show_default=True, help="The .npy to write: (3, 256, 256) float64 RGB pixels, 0..255.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
def mean_cmd(data, output, batch_size, workers):
    """The training set's mean image: every image scaled (shorter side 256)
    and centre-cropped to 256x256 as training prepares it, averaged per
    pixel, which the paper subtracts from its inputs."""
    mean, count, skipped = mean_image.folder_mean(data, batch_size, workers)
    mean_image.save_mean(output, mean)
    per_channel = ", ".join(f"{c} {v:.2f}" for c, v in zip("RGB", mean.mean(axis=(1, 2))))
    results.print(f"{output}: mean of {count} images ({per_channel})"
                  + (f", {skipped} unreadable skipped" if skipped else ""))


@click.command("saliency")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@weights_required
@network_options
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the pictures: <image>-saliency.png each.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@target_option
@tuning_log_option
def saliency_cmd(images, weights, output, batch_size, target, tuning_log, **net):
    """Saliency maps (Simonyan et al., 2013): the gradient of each image's
    top class's logit with respect to its pixels, run backwards through the
    compiled kernels; the maximum magnitude over RGB, beside the image."""
    model = load_model(weights, **net).eval()
    files = image_files(images)
    _compile_any_batch(model, target, tuning_log)
    placement.move(model, placement.model_device(model))
    for file, path, cls in figures.saliency_maps(model, files, output, batch_size):
        results.print(f"{file} -> {path} (class {cls})")


@click.command("neighbours")
@click.argument("queries", nargs=-1, required=True, type=click.Path(path_type=Path))
@weights_required
@network_options
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="The folder searched (its images, in subfolders too).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default="neighbours.png",
              show_default=True, help="The PNG to write: each query, then its nearest.")
@click.option("--top", type=click.IntRange(min=1), default=6, show_default=True, help="Neighbours per query.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Keep the folder's features in DATA/.tvm-alexnet-features-<hash>.npz.")
@target_option
@tuning_log_option
def neighbours_cmd(queries, weights, data, output, top, batch_size, cache, target, tuning_log, **net):
    """Figure 4 (right): the images of DATA nearest to each query in
    Euclidean distance between their 4096-d fc7 activations."""
    model = load_model(weights, **net).eval()
    query_files = image_files(queries)
    _compile_any_batch(model, target, tuning_log)
    placement.move(model, placement.model_device(model))
    found = lab.neighbours(model, weights, data, query_files, top, batch_size, cache)
    if found.cache is not None:
        notes.print(f"features {'read from' if found.cached else 'cached in'} {found.cache}")
    for query, picks in zip(query_files, found.picks):
        results.print(f"{query}: " + ", ".join(f"{f} ({d:.4g})" for f, d in picks))
    figures.save_figure(figures.neighbours_figure(model, query_files, found.picks), output)
    results.print(f"-> {output}")
