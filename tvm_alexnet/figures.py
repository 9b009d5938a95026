"""The paper's pictures, drawn: Figure 3 (conv1's kernels), Figure 4 (top-5
bars; fc7 nearest neighbours), and saliency maps. lab.py computes what they
show; every file is written whole or not at all (files.write_atomic)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from . import files

DPI = 100
ROW_INCHES = 1.6  # one image's row in the top-5 and neighbour figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(path: str | os.PathLike, picture: np.ndarray) -> Path:
    """An (H, W, 3) picture, floats in [0, 1] or uint8, as a PNG pixel for pixel."""
    from PIL import Image

    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        picture = np.clip(np.rint(picture * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(picture, "RGB").save(buffer, format="png")
    files.write_atomic(path, buffer.getvalue())
    return Path(path)


def save_figure(fig, path: str | os.PathLike) -> Path:
    return files.save_figure(fig, path, DPI)


def predictions_figure(images: list[np.ndarray], names: list[str], indices, probs, labels: list[str] | None = None):
    """Figure 4 (left): per row an image and its top classes as horizontal
    bars, each as long as the class's probability (`probs`, the bars'
    widths; `indices` the classes). One row per image, ROW_INCHES high."""
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(n, 2, figsize=(7, ROW_INCHES * n), squeeze=False,
                             gridspec_kw=dict(width_ratios=(1, 2.2)))
    for (image_ax, bar_ax), image, name, idx, p in zip(axes, images, names, indices, probs):
        idx, p = list(map(int, idx)), [float(v) for v in p]
        image_ax.imshow(image)
        image_ax.set_axis_off()
        image_ax.set_title(Path(name).name if len(name) > 28 else name, fontsize=7)
        rows = range(len(idx))
        bar_ax.barh(rows, p, color=["tab:red"] + ["tab:blue"] * (len(idx) - 1), height=0.7)
        bar_ax.set_yticks(list(rows), [labels[i] if labels else f"class {i}" for i in idx], fontsize=7)
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.tick_params(axis="x", labelsize=6)
        for r, v in zip(rows, p):
            bar_ax.text(min(v, 0.8) + 0.01, r, f"{v:.3f}", va="center", fontsize=6)
    axes[-1][1].set_xlabel("softmax probability", fontsize=7)
    fig.tight_layout()
    return fig


def saliency_figure(image: np.ndarray, heat: np.ndarray, title: str):
    """The image beside its saliency map (a heat map, 0 to its own maximum)."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.4, 3.4))
    a.imshow(image)
    a.set_axis_off()
    b.imshow(heat, cmap="hot", vmin=0, vmax=float(heat.max()) or 1.0)
    b.set_axis_off()
    b.set_title("max over RGB of |d logit / d input|", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def saliency_maps(model, files: list[Path], out_dir: str | os.PathLike, batch_size: int = 8
                  ) -> list[tuple[Path, Path, int]]:
    """Each image's saliency map (lab.saliency) beside the crop the network
    saw, as OUT_DIR/<stem>-saliency.png (<index>-<stem> where stems repeat):
    (image, picture, class) per image."""
    from . import imagenet, lab
    from .data import load_image

    out_dir = Path(out_dir)
    labels = imagenet.class_names(model.spec.num_classes)
    stems = [f.stem for f in files]
    done = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        x = torch.stack([load_image(f, model.spec.image_size, model.preprocessing) for f in chunk])
        maps, classes = lab.saliency(model, x)
        for i, (image, heat, cls) in enumerate(zip(x, maps, classes.tolist()), start):
            stem = stems[i] if stems.count(stems[i]) == 1 else f"{i:04d}-{stems[i]}"
            path = out_dir / f"{stem}-saliency.png"
            title = f"{files[i].name}: {labels[cls] if labels else 'class'} ({cls})"
            fig = saliency_figure(lab.pixels(image, model.preprocessing), heat.numpy(), title)
            done.append((files[i], save_figure(fig, path), cls))
    return done


def neighbours_figure(model, queries: list[Path], picks: list[list[tuple[Path, float]]]):
    """Figure 4 (right): per row a query image, then its nearest neighbours
    (lab.neighbours' picks: image and distance) left to right, each shown as
    the crop the network saw."""
    from . import lab
    from .data import load_image

    def show(f):
        return lab.pixels(load_image(f, model.spec.image_size, model.preprocessing), model.preprocessing)

    plt = _plt()
    columns = 1 + max(len(p) for p in picks)
    fig, axes = plt.subplots(len(queries), columns, figsize=(ROW_INCHES * columns, (ROW_INCHES + 0.2) * len(queries)),
                             squeeze=False)
    for ax_row, query, found in zip(axes, queries, picks):
        for ax in ax_row:
            ax.set_axis_off()
        ax_row[0].imshow(show(query))
        ax_row[0].set_title(f"query\n{query.name}", fontsize=6, color="tab:red")
        for ax, (image, distance) in zip(ax_row[1:], found):
            ax.imshow(show(image))
            ax.set_title(f"{image.name}\n{distance:.4g}", fontsize=6)
    fig.tight_layout()
    return fig
