"""The input a set of weights expects (channel order, scale, mean, std),
recorded in every checkpoint so images are prepared the way the weights were trained."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from .errors import UserError


@dataclass(frozen=True)
class Preprocessing:
    """pixel (0..255, RGB) -> channels in `channels` order -> (pixel * scale - mean) / std,
    with mean and std given in that order. With a `mean_image` (the training
    set's per-pixel mean, (3, 256, 256) RGB pixels, as the paper subtracted)
    that is subtracted instead of `mean`: all of it from a 256x256 image, its
    centre from a centre crop."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    channels: str = "RGB"
    mean_image: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """A (3, H, W) float32 tensor from an RGB image."""
        pixels = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
        return torch.from_numpy(self.prepare(pixels).astype(np.float32))

    def prepare(self, pixels):
        """Pixels (..., 3, H, W), RGB 0..255, as the network takes them: a
        numpy array or a torch tensor, in its dtype (and device)."""
        p = _channels_flipped(pixels * self.scale) if self.channels == "BGR" else pixels * self.scale
        return (p - _like(self.offset(*p.shape[-2:]), p)) / _like(np.asarray(self.std)[:, None, None], p)

    def unprepare(self, x):
        """`prepare` undone: RGB pixels 0..255 (..., 3, H, W) from the network's input."""
        p = (x * _like(np.asarray(self.std)[:, None, None], x) + _like(self.offset(*x.shape[-2:]), x)) / self.scale
        return _channels_flipped(p) if self.channels == "BGR" else p

    def offset(self, height: int, width: int) -> np.ndarray:
        """What is subtracted from the scaled pixels in `channels` order:
        (3, 1, 1) per channel, or the mean image's centre (3, height, width)."""
        if self.mean_image is None:
            return np.asarray(self.mean, np.float64)[:, None, None]
        m = self.mean_image[::-1] if self.channels == "BGR" else self.mean_image
        size = m.shape[-1]
        if height > size or width > size:
            raise UserError(f"image is {width}x{height}, larger than the {size}x{size} mean image subtracted from it")
        top, left = (size - height) // 2, (size - width) // 2
        return m[:, top:top + height, left:left + width].astype(np.float64) * self.scale

    def with_mean_image(self, mean_image: np.ndarray | None) -> "Preprocessing":
        """This preprocessing subtracting `mean_image` (RGB pixels (3, 256, 256)),
        its per-channel average recorded as `mean`; None: back to `mean` alone."""
        if mean_image is None:
            return replace(self, mean_image=None)
        m = np.asarray(mean_image, np.float32)
        channels = m.astype(np.float64).mean(axis=(1, 2)) * self.scale
        channels = channels[::-1] if self.channels == "BGR" else channels
        return replace(self, mean=tuple(float(v) for v in channels), mean_image=m)

    def same_as(self, other: "Preprocessing") -> bool:
        """Prepares every image as `other` does."""
        if self != other or (self.mean_image is None) != (other.mean_image is None):
            return False
        return self.mean_image is None or np.array_equal(self.mean_image, other.mean_image)

    def to_json(self) -> str:
        """Everything but the mean image, which a checkpoint stores as a tensor."""
        record = asdict(replace(self, mean_image=None))
        del record["mean_image"]
        return json.dumps(record)

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


def _like(a: np.ndarray, x):
    """`a` as `x` is: a numpy array of its dtype, or a tensor of its dtype and device."""
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=x.dtype, device=x.device)
    return np.asarray(a, x.dtype)


def _channels_flipped(x):
    return x.flip(-3) if isinstance(x, torch.Tensor) else x[..., ::-1, :, :]


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
