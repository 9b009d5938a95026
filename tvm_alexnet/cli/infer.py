"""run, eval, convert: classify images, measure top-1 and top-5 error, import pretrained weights."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch

from .. import ensembles, figures, imagenet, lab, placement
from ..data import (
    Digits,
    FullImage,
    image_files,
    load_image,
    random_images,
    validation_set,
)
from ..data import loader as data_loader
from ..model import AlexNet
from ..tuning import resolve_log
from .common import (
    load_model,
    network_options,
    notes,
    results,
    table,
    target_option,
    target_text,
    tuning_log_option,
)


def _compile_any_batch(model: AlexNet, target, tuning_log: str, batch_size: int | None = None,
                       images: int = 0) -> None:
    """Compile for any batch size, with builds for the log's batch sizes and
    for `batch_size` where `images` fill one batch at least (a build costs
    seconds; None where the batches go through autograd, which runs the
    any-batch build)."""
    batch_size = batch_size if batch_size and images >= batch_size else None
    log, message = resolve_log(tuning_log, model.spec, None, target)
    notes.print(message)
    with notes.status(f"compiling for {target_text(target)} ..."):
        model.compile(target, tuning_log=log, batches=(batch_size,) if batch_size else ())
    if model.fixed_batches:
        notes.print(f"batches run in chunks of {' or '.join(map(str, sorted(model.fixed_batches)))} on builds "
                    "for that size where they fit (tuned kernels, Winograd convolutions), the rest on the any-batch build")


@click.command("run")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint: .safetensors written by tvm-alexnet or `convert` (it records the variant, width, "
                   "classes, LRN and preprocessing), or a torch state dict (ours, read with the network options; "
                   "or torchvision's alexnet). Without it the weights are random and so are the predictions.")
@network_options
@target_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per call of the compiled network.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Classes to print per image.")
@click.option("--logits", is_flag=True, help="Print the raw logits instead of the top classes.")
@click.option("--resize/--no-resize", default=True, show_default=True,
              help="Scale the shorter side to 256 and crop the centre (else images must already have the "
                   "network's input size).")
@click.option("--random", "num_random", type=click.IntRange(min=1), default=1, show_default=True,
              help="With no INPUTS: how many random images to run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights and images.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw each image with its top classes as bars of their probabilities into this PNG "
                   "(the paper's Figure 4, left).")
@tuning_log_option
def run_cmd(inputs, weights, variant, num_classes, width, lrn, pool, activation, target, batch_size, top, logits,
            resize, num_random, seed, plot, tuning_log):
    """Classify images (files or folders) with the compiled network.

    With no INPUTS, runs random images. Prints the top classes of each image
    (or its logits) and the time the kernels took.
    """
    torch.manual_seed(seed)
    model = load_model(weights, variant, num_classes, width, lrn, pool, activation).eval()
    net = model.spec
    if inputs:
        files = image_files(inputs)
        images = torch.stack([load_image(f, net.image_size, model.preprocessing, resize) for f in files])
        batches, count, names = images.split(batch_size), len(files), iter([str(f) for f in files])
    else:  # streamed: only one batch of random images is ever held
        batches, count = random_images(num_random, net.input_shape, batch_size), num_random
        names = (f"random[{i}]" for i in range(num_random))
    if not weights:
        notes.print("[yellow]note:[/] no --weights given: random weights, meaningless classes")
    _compile_any_batch(model, target, tuning_log, batch_size, count)
    device = placement.model_device(model)
    placement.move(model, device)
    labels = imagenet.class_names(net.num_classes)
    drawn, seconds = [], 0.0
    with torch.no_grad():
        for batch in batches:
            start = time.perf_counter()
            out = model(placement.to_device(batch, device))
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
            out = out.cpu()
            idx, probs = lab.top_predictions(out, top)  # ranked by logit, float64 softmax
            for x, row, i, p, name in zip(batch, out, idx, probs, names):  # names last: zip takes no extra one
                if logits:
                    click.echo(f"{name}: {json.dumps([round(v, 6) for v in row.tolist()])}")
                else:
                    click.echo(f"{name}: " + ", ".join(f"{q:.4f} {labels[j]} ({j})" if labels else f"{q:.4f} class {j}"
                                                       for q, j in zip(p.tolist(), i.tolist())))
                if plot is not None:
                    drawn.append((lab.pixels(x, model.preprocessing), name, i, p))
    if plot is not None:
        shown, shown_names, idx, probs = zip(*drawn)
        figures.save_figure(figures.predictions_figure(list(shown), list(shown_names), torch.stack(idx),
                                                       torch.stack(probs), labels), plot)
        notes.print(f"top {len(idx[0])} of {len(shown_names)} image(s) drawn in {plot}")
    notes.print(f"{count} image(s) in {seconds * 1e3:.1f} ms ({count / seconds:.1f} images/s, "
                f"{target_text(target)}, batch size {batch_size})")


@click.command("eval")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), required=True, multiple=True,
              help="A checkpoint (its preprocessing, e.g. Caffe's BGR for converted BVLC weights, is applied). "
                   "Given more than once: the ensemble of the networks, their softmax averaged (the paper "
                   "averaged five CNNs).")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Validation images: DATA/<class>/*.jpg (class folders sorted, or ImageNet WordNet ids for "
                   "1000 classes), or a flat folder with --labels or ILSVRC2012_val_*.JPEG names.")
@click.option("--labels", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="With a flat --data folder: '<image> <label>' lines (Caffe's val.txt), the label a class "
                   "number or a WordNet id.")
@click.option("--demo", is_flag=True, help="The demo digits' validation split.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@target_option
@tuning_log_option
def eval_cmd(weights, data, labels, demo, batch_size, workers, target, tuning_log):
    """Top-1 and top-5 error: centre crop and the paper's ten crops (corners,
    centre and their flips, softmax averaged)."""
    from ..evaluation import evaluate

    models = [AlexNet.load(w) for w in weights]
    ensembles.check_ensemble(models, list(weights))
    model = models[0]  # the images are prepared its way; ensembles.ensemble_evaluate converts them for the others
    transform = FullImage(model.preprocessing)
    if demo:
        dataset = Digits(False, transform)
    elif data is not None:
        dataset = validation_set(data, labels, transform, model.spec.num_classes)
    else:
        raise click.UsageError("give --data DIR or --demo")
    for m in models:
        _compile_any_batch(m, target, tuning_log, batch_size, len(dataset))
        placement.move(m, placement.model_device(m))  # evaluate moves each batch there
    batches = data_loader(dataset, batch_size, workers)
    rows = []
    for name, ten in (("centre", False), ("10-crop", True)):
        r = evaluate(model, batches, ten_crop=ten, progress=True) if len(models) == 1 else \
            ensembles.ensemble_evaluate(models, batches, ten_crop=ten, progress=True)
        rows.append([name, f"{100 * r['top1_error']:.2f}%", f"{100 * r['top5_error']:.2f}%",
                     f"{r['images_per_s']:.1f}"])
    title = weights[0] if len(weights) == 1 else f"ensemble of {len(weights)} ({', '.join(weights)})"
    skipped = f", {r['skipped']} unreadable skipped" if r["skipped"] else ""
    results.print(table(f"{title}: {r['images']} images{skipped}", ("crops", "top-1 error", "top-5 error", "images/s"),
                        rows))


@click.command("convert")
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The safetensors checkpoint to write (default: SOURCE with the suffix .safetensors).")
@click.option("--from", "fmt", type=click.Choice(["bvlc", "torchvision"]), default=None,
              help="SOURCE's format (default: from its suffix, .npy bvlc, .pth/.pt torchvision).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def convert_cmd(source, output, fmt, force):
    """Convert pretrained weights into a tvm-alexnet checkpoint.

    bvlc_alexnet.npy (BVLC's Caffe AlexNet, as in Kratzert's TensorFlow
    tutorial; unpickled safely, numpy arrays only) becomes the paper variant
    with Caffe's LRN and BGR, mean-subtracted input; torchvision's alexnet
    state dict (.pth, read with weights_only) the torchvision variant. The
    checkpoint records variant, LRN and preprocessing, so `run --weights`
    and `eval --weights` need nothing else.
    """
    from ..convert import convert

    output = output or source.with_suffix(".safetensors")
    if output.exists() and not force:
        raise click.BadParameter(f"{output} exists (pass --force to replace it)", param_hint="'--output'")
    model = convert(source, fmt)
    model.save(output)
    net = model.spec
    results.print(f"{source} -> {output}: {net.variant} (width {net.width:g}, {net.num_classes} classes, "
                  f"LRN {net.lrn or 'none'}), {net.num_params:,} parameters, input "
                  f"{model.preprocessing.channels} {'x'.join(map(str, net.input_shape))}")
