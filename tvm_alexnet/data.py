"""Images in, tensors out: the test-time preprocessing of each variant."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
RESIZE = 256  # shorter side, before the centre crop


class InputError(UserError):
    """An input image or path that cannot be used."""


@dataclass(frozen=True)
class Preprocessing:
    """pixel (0..255, RGB) -> (pixel * scale - mean) / std, per channel."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0


# The paper subtracts the training set's mean image; its per-channel mean is the
# usual stand-in when the mean image is not at hand. torchvision's weights
# expect [0, 1] pixels normalised by ImageNet's mean and std.
PREPROCESSING = {
    "paper": Preprocessing(mean=(123.68, 116.779, 103.939)),
    "ungrouped": Preprocessing(mean=(123.68, 116.779, 103.939)),
    "torchvision": Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255),
}


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The image files among `paths`, folders expanded (sorted)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return files


def load_image(path: Path, size: int, prep: Preprocessing, resize: bool = True) -> torch.Tensor:
    """A (3, size, size) float32 tensor: shorter side scaled to 256 and the
    centre cropped (with `resize`), or the image as it is (without, then it
    must be size x size)."""
    try:
        with Image.open(path) as img:
            img.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    if img.mode != "RGB":
        channels = len(img.getbands())
        raise InputError(f"{path}: image has {channels} channel{'s' * (channels != 1)} (mode {img.mode}), "
                         "expected 3 (RGB)")
    if resize:
        w, h = img.size
        ratio = RESIZE / min(w, h)
        img = img.resize((max(size, round(w * ratio)), max(size, round(h * ratio))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    elif img.size != (size, size):
        raise InputError(f"{path}: image is {img.size[0]}x{img.size[1]}, expected {size}x{size} "
                         "(or let it be resized)")
    pixels = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) * prep.scale
    mean = np.asarray(prep.mean, np.float32)[:, None, None]
    std = np.asarray(prep.std, np.float32)[:, None, None]
    return torch.from_numpy((pixels - mean) / std)
