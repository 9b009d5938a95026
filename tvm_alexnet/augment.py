"""The paper's training augmentation: random 227x227 crops of the 256x256
images with horizontal flips, and PCA colour noise (the training set's RGB
eigenvectors, scaled by their eigenvalues and a per-image N(0, 0.1) draw)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import InputError
from .files import write_atomic


@dataclass(frozen=True)
class ColourPCA:
    """Eigenvalues and eigenvectors (columns) of the training set's RGB
    covariance, pixels in the preprocessing's scale: the paper's colour
    augmentation adds eigvecs @ (alpha * eigvals), alpha ~ N(0, 0.1^2)."""

    eigvals: tuple[float, float, float]
    eigvecs: tuple[tuple[float, float, float], ...]

    def save(self, path: str | os.PathLike) -> None:
        write_atomic(Path(path), json.dumps({"eigvals": self.eigvals, "eigvecs": self.eigvecs}, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ColourPCA":
        try:
            data = json.loads(Path(path).read_text())
            pca = cls(tuple(map(float, data["eigvals"])), tuple(tuple(map(float, r)) for r in data["eigvecs"]))
            if len(pca.eigvals) != 3 or any(len(r) != 3 for r in pca.eigvecs):
                raise ValueError("expected 3 eigenvalues and a 3x3 matrix")
            return pca
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a colour PCA file ({e})") from None


def colour_pca(dataset, images: int = 2000, seed: int = 0) -> ColourPCA:
    """The RGB covariance's eigen-decomposition over (up to) `images`
    randomly chosen training images at 256x256."""
    order = np.random.default_rng(seed).permutation(len(dataset))[:images]
    total, outer, count = np.zeros(3), np.zeros((3, 3)), 0
    for i in order:
        sample = dataset[int(i)]
        if sample is None:  # unreadable, and warned about
            continue
        x = sample[0].double().reshape(3, -1).numpy()
        total += x.sum(1)
        outer += x @ x.T
        count += x.shape[1]
    mean = total / count
    eigvals, eigvecs = np.linalg.eigh(outer / count - np.outer(mean, mean))
    return ColourPCA(tuple(eigvals.tolist()), tuple(map(tuple, eigvecs.tolist())))


class Augmented(torch.utils.data.Dataset):
    """The paper's training input from a data set of 256x256 images: a random
    `crop` x `crop` window, a random horizontal flip, and (with `pca`) colour
    noise along the principal components of RGB. The randomness of each
    sample depends only on (seed, epoch, index), so an interrupted epoch
    resumes with the very same batches. An unreadable image (None) is
    replaced by the next readable one: a batch must be full, since the
    compiled model is built for one batch size."""

    def __init__(self, dataset, crop: int, seed: int, pca: ColourPCA | None = None, flip: bool = True):
        self.dataset, self.crop, self.seed, self.pca, self.flip = dataset, crop, seed, pca, flip
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        size = len(self.dataset)
        sample = self.dataset[index]
        for step in range(1, size):
            if sample is not None:
                break
            sample = self.dataset[(index + step) % size]
        if sample is None:
            raise InputError("no image of the training set can be read")
        x, label = sample
        gen = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % 2**63)
        top, left = torch.randint(0, x.shape[-1] - self.crop + 1, (2,), generator=gen).tolist()
        x = x[:, top:top + self.crop, left:left + self.crop]
        if self.flip and torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)
        if self.pca is not None:
            alpha = torch.randn(3, generator=gen, dtype=torch.float64) * 0.1
            eigvecs, eigvals = (torch.tensor(v, dtype=torch.float64) for v in (self.pca.eigvecs, self.pca.eigvals))
            shift = eigvecs @ (alpha * eigvals)
            x = x + shift.float()[:, None, None]
        return x.contiguous(), label
