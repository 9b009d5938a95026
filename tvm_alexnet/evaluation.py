"""Top-1 and top-5 error of a model on a data set: the centre crop, or the
paper's ten crops (four corners and the centre, and their flips) with their
softmax averaged."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import placement
from .data import InputError, centre_crop, ten_crops, unwrapped
from .model import AlexNet


def evaluate(model: AlexNet, loader, ten_crop: bool = False, progress: bool = False) -> dict[str, float]:
    """Top-1 and top-5 error (and mean loss) over a loader of 256x256 images:
    the centre crop, or the paper's ten crops with their softmax averaged.
    Batches from data.loader also count the images that could not be read:
    they are left out of the errors and reported as `skipped`."""
    model.eval()
    device = placement.model_device(model)
    size = model.spec.image_size

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        crops = ten_crops(x, size) if ten_crop else [centre_crop(x, size)]
        # float64: float32 probabilities underflow to tied zeros, which topk could rank either way
        return sum(logits(model, c.contiguous()).double().softmax(-1) for c in crops) / len(crops)

    return score(loader, probabilities, device, progress)


def score(loader, probabilities, device=None, progress: bool = False, desc: str = "eval") -> dict[str, float]:
    """Top-1 and top-5 error and mean loss of `probabilities(images)` (float64
    softmax rows) over a loader's (images, labels[, skipped]) batches, each
    batch moved to `device` first where one is given."""
    top1 = top5 = loss = count = 0.0
    skipped = 0
    start = time.perf_counter()
    with torch.no_grad():
        for x, labels, *rest in tqdm(unwrapped(loader), desc=desc, leave=False, disable=not progress,
                                     total=len(loader) if hasattr(loader, "__len__") else None):
            skipped += rest[0] if rest else 0
            if len(labels) == 0:
                continue
            if device is not None:
                x, labels = placement.to_device((x, labels), device)
            probs = probabilities(x)
            labels = labels.to(probs.device)
            loss += F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum").item()
            best = probs.topk(min(5, probs.shape[1]), dim=1).indices
            top1 += (best[:, 0] != labels).sum().item()
            top5 += (best != labels[:, None]).all(dim=1).sum().item()
            count += len(labels)
    seconds = time.perf_counter() - start
    if count == 0:
        raise InputError(f"no image could be read ({skipped} skipped)")
    return dict(top1_error=top1 / count, top5_error=top5 / count, loss=loss / count, images=int(count),
                skipped=skipped, images_per_s=count / seconds)


def logits(model: AlexNet, x: torch.Tensor) -> torch.Tensor:
    """Logits of a batch; a build for a fixed batch size gets the batch padded."""
    batch = model.compiled.manifest.batch if model.compiled is not None else None
    if batch is None or len(x) == batch:
        return model(x)
    padded = torch.cat([x, x.new_zeros((batch - len(x), *x.shape[1:]))])
    return model(padded)[:len(x)]
