"""The input a set of weights expects (channel order, scale, mean, std),
recorded in every checkpoint so images are prepared the way the weights were trained."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from .errors import UserError


@dataclass(frozen=True)
class Preprocessing:
    """pixel (0..255, RGB) -> channels in `channels` order -> (pixel * scale - mean) / std,
    with mean and std given in that order."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    channels: str = "RGB"

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """A (3, H, W) float32 tensor from an RGB image."""
        pixels = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) * self.scale
        if self.channels == "BGR":
            pixels = pixels[::-1]
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        return torch.from_numpy((pixels - mean) / std)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, source: str) -> "Preprocessing":
        try:
            data = json.loads(text)
            prep = cls(mean=tuple(map(float, data["mean"])), std=tuple(map(float, data["std"])),
                       scale=float(data["scale"]), channels=str(data["channels"]))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{source}: malformed preprocessing {text!r} ({e})") from None
        if len(prep.mean) != 3 or len(prep.std) != 3 or prep.channels not in ("RGB", "BGR"):
            raise UserError(f"{source}: malformed preprocessing {text!r} "
                            "(expected 3 means, 3 stds and channels RGB or BGR)")
        if not np.isfinite([*prep.mean, *prep.std, prep.scale]).all() or 0 in prep.std or prep.scale == 0:
            raise UserError(f"{source}: malformed preprocessing {text!r} "
                            "(expected finite numbers, the stds and the scale not zero)")
        return prep


IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)

# The paper subtracts the training set's mean image; its per-channel mean is the
# usual stand-in when the mean image is not at hand. torchvision's weights
# expect [0, 1] pixels normalised by ImageNet's mean and std.
PREPROCESSING = {
    "paper": Preprocessing(mean=IMAGENET_MEAN_RGB),
    "ungrouped": Preprocessing(mean=IMAGENET_MEAN_RGB),
    "onegpu": Preprocessing(mean=IMAGENET_MEAN_RGB),
    "torchvision": Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255),
}

# BVLC's Caffe weights: 0..255 pixels in BGR order, the ImageNet mean subtracted.
CAFFE = Preprocessing(mean=IMAGENET_MEAN_RGB[::-1], channels="BGR")
