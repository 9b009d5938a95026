"""Ensembles: several networks' softmax averaged, as the paper averaged five
CNNs for its best result; each network sees the images prepared its own way."""

from __future__ import annotations

import torch

from . import placement
from .data import (
    centre_crop,
    ten_crops,
)
from .errors import UserError
from .evaluation import logits, score
from .lab import reprepare
from .model import AlexNet
from .preprocessing import Preprocessing


def _logits(model: AlexNet, x: torch.Tensor) -> torch.Tensor:
    """Logits of a batch, computed on the model's device, on the CPU."""
    return logits(model, placement.to_device(x, placement.model_device(model))).cpu()


def check_ensemble(models: list[AlexNet], names: list[str] | None = None) -> None:
    """UserError naming the first model whose class count differs from the
    first's (input sizes may differ: each model crops its own from 256x256)."""
    names = names or [f"model {i + 1}" for i in range(len(models))]
    first = models[0].spec
    for name, model in zip(names[1:], models[1:]):
        net = model.spec
        if net.num_classes != first.num_classes:
            raise UserError(f"{name}: {net.num_classes} classes, {names[0]} has {first.num_classes}: "
                            "an ensemble's networks must share their classes")


def ensemble_probabilities(models: list[AlexNet], x: torch.Tensor, preprocessing: Preprocessing | None = None,
                           ten_crop: bool = False) -> torch.Tensor:
    """The ensemble's class probabilities (N, C) in float64: each model's
    softmax averaged over the crops (centre, or the paper's ten), then over
    the models. `x` (N, 3, 256, 256) is prepared as `preprocessing` says
    (default the first model's); each model gets it prepared its own way."""
    preprocessing = preprocessing or models[0].preprocessing
    total = 0
    with torch.no_grad():
        for model in models:
            y = reprepare(x, preprocessing, model.preprocessing)
            size = model.spec.image_size
            crops = ten_crops(y, size) if ten_crop else [centre_crop(y, size)]
            total = total + sum(_logits(model, c.contiguous()).double().softmax(-1) for c in crops) / len(crops)
    return total / len(models)


def ensemble_evaluate(models: list[AlexNet], loader, ten_crop: bool = False, progress: bool = False,
                      preprocessing: Preprocessing | None = None) -> dict[str, float]:
    """evaluation.evaluate for several models: top-1 and top-5 error and the mean
    loss of their averaged softmax (the paper averaged five CNNs), over a
    loader of 256x256 images prepared as `preprocessing` says (default the
    first model's). Returns evaluate's dict."""
    check_ensemble(models)
    for model in models:
        model.eval()
    return score(loader, lambda x: ensemble_probabilities(models, x, preprocessing, ten_crop),
                 progress=progress, desc=f"eval ({len(models)} models)")
