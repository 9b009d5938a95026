"""The training set's mean image (the paper subtracted "the mean activity
over the training set from each pixel"): computed, saved and checked on
load; Preprocessing.with_mean_image subtracts it."""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from .data import (
    RESIZE,
    FullImage,
    ImageFolder,
    InputError,
    loader,
    unwrapped,
)
from .errors import UserError
from .files import replaced_atomically
from .preprocessing import Preprocessing

MEAN_SHAPE = (3, RESIZE, RESIZE)


def folder_mean(root: str | os.PathLike, batch_size: int = 32, workers: int = 0,
               progress: bool = True) -> tuple[np.ndarray, int, int]:
    """The per-pixel mean (3, 256, 256) float64 of the RGB pixels (0..255) of
    an ImageFolder's images, each prepared as training's are before their
    random crop (shorter side to 256, the centre 256x256), streamed through
    batches: (mean, images, skipped), unreadable images skipped."""
    dataset = ImageFolder(root, FullImage(Preprocessing(mean=(0.0, 0.0, 0.0))))
    total = np.zeros(MEAN_SHAPE)
    count = skipped = 0
    batches = loader(dataset, batch_size, workers)
    for x, _, lost in tqdm(unwrapped(batches), desc="mean image", unit="batch", total=len(batches),
                           disable=not progress):
        skipped += lost
        if len(x):
            total += x.double().sum(0).numpy()
            count += len(x)
    if count == 0:
        raise InputError(f"{root}: no image could be read ({skipped} skipped)")
    return total / count, count, skipped


def save_mean(path: str | os.PathLike, mean: np.ndarray) -> None:
    with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(mean, np.float64))


def load_mean(path: str | os.PathLike) -> np.ndarray:
    """A mean image written by `tvm-alexnet mean`: (3, 256, 256) float64 RGB
    pixels (0..255); UserError in one line naming the file otherwise."""
    try:
        mean = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: no such mean image file") from None
    except (OSError, ValueError, EOFError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a mean image (.npy) file ({reason})") from None
    if not isinstance(mean, np.ndarray) or mean.shape != MEAN_SHAPE:
        shape = getattr(mean, "shape", None)
        raise UserError(f"{path}: mean image has shape {shape}, expected {MEAN_SHAPE} (RGB, 256x256)")
    if not np.issubdtype(mean.dtype, np.floating) and not np.issubdtype(mean.dtype, np.integer):
        raise UserError(f"{path}: mean image has dtype {mean.dtype}, expected numbers")
    if not np.isfinite(mean).all():
        raise UserError(f"{path}: mean image holds {int((~np.isfinite(mean)).sum())} non-finite value(s)")
    return mean.astype(np.float64)
