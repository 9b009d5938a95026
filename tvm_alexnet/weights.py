"""Checkpoints: validate state dicts, save and load safetensors, map torchvision names."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import torch

from .errors import UserError
from .files import replaced_atomically
from .preprocessing import Preprocessing
from .spec import NO_LRN, Network, SpecError, network


class WeightsError(UserError):
    """A checkpoint that is unreadable or does not fit the network."""


# The mean image a network was trained with, stored beside its weights (RGB pixels, float32).
MEAN_IMAGE = "preprocessing.mean_image"


# torchvision.models.alexnet's module indices -> our layer names.
TORCHVISION_LAYERS = {
    "features.0": "conv1", "features.3": "conv2", "features.6": "conv3", "features.8": "conv4",
    "features.10": "conv5", "classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8",
}


def check_state_dict(net: Network, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Raise WeightsError naming the first missing, unexpected or wrongly
    shaped tensor (with both shapes)."""
    expected = net.params()
    for name, shape in expected.items():
        if name not in state:
            raise WeightsError(f"{source}: missing tensor {name!r} (expected shape {tuple(shape)})")
        got = tuple(state[name].shape)
        if got != tuple(shape):
            raise WeightsError(f"{source}: tensor {name!r} has shape {got}, expected {tuple(shape)} "
                               f"for variant {net.variant!r} (width {net.width}, {net.num_classes} classes)")
        if not state[name].is_floating_point():
            raise WeightsError(f"{source}: tensor {name!r} has dtype {state[name].dtype}, expected a float")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise WeightsError(f"{source}: unexpected tensor {unexpected[0]!r}"
                           + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))


def from_torchvision_names(state: dict[str, torch.Tensor],
                           source: str = "torchvision state dict") -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in state.items():
        module, _, kind = name.rpartition(".")
        if module not in TORCHVISION_LAYERS:
            raise WeightsError(f"{source}: unexpected tensor {name!r}")
        out[f"{TORCHVISION_LAYERS[module]}.{kind}"] = tensor
    return out


def check_torchvision(state: dict[str, torch.Tensor], source: str) -> None:
    """WeightsError naming `source` where a torchvision alexnet state dict
    lacks a tensor or has a wrong one (width and classes read from conv1 and
    fc8 as AlexNet.from_torchvision does)."""
    source = f"{source} (torchvision state dict)"
    mapped = from_torchvision_names(state, source)
    try:
        classes = mapped["fc8.bias"].shape[0] if "fc8.bias" in mapped else 1000
        width = mapped["conv1.bias"].shape[0] / network("torchvision").convs[0].out_channels \
            if "conv1.bias" in mapped else 1.0
        net = network("torchvision", num_classes=classes, width=width)
    except SpecError as e:
        raise WeightsError(f"{source}: conv1 and fc8 give no valid network ({e})") from None
    check_state_dict(net, mapped, source)


def non_finite(state: dict) -> str | None:
    """The name of the first floating-point tensor in `state` holding a NaN or an infinity."""
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def unsafe_reason(error: Exception) -> str | None:
    """For torch.load(weights_only=True)'s refusal of a pickled object, what
    the file holds, without torch's advice to load it with weights_only=False
    (which would run whatever code the file carries)."""
    text = str(error)
    if "Weights only load failed" not in text:
        return None
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    return ("the file holds objects that are not plain tensors" + (f", such as {found.group(1)}" if found else "")
            + "; refused for safety, since loading them could run code")


def metadata(net: Network, prep: Preprocessing, mean_image: dict[str, str] | None = None) -> dict[str, str]:
    """What a checkpoint records beside its tensors: the network and the input its weights expect
    (and, when they were trained with one subtracted, the mean image's file: path and sha256)."""
    record = {"variant": net.variant, "num_classes": str(net.num_classes), "width": repr(net.width),
              "lrn": net.lrn or NO_LRN, "pool": net.pool, "activation": net.activation,
              "preprocessing": prep.to_json()}
    if mean_image:
        record["mean_image"] = json.dumps(mean_image)
    return record


def check_save_path(path: str | os.PathLike) -> None:
    """WeightsError unless `path` ends in .safetensors: a checkpoint written
    under another name (.pth, .pt) would be read back as a torch pickle."""
    if Path(path).suffix != ".safetensors":
        raise WeightsError(f"{path}: checkpoints are written as safetensors; name the file *.safetensors")


def save(path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically: a crash leaves the old file whole.
    Refused: a name not ending in .safetensors, and non-finite tensors."""
    from safetensors.torch import save_file

    check_save_path(path)
    bad = non_finite(state)
    if bad:
        raise WeightsError(f"{path}: not written: tensor {bad!r} holds non-finite values (nan or inf)")
    with replaced_atomically(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, tmp, metadata=metadata)


def load(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A state dict and its metadata from .safetensors, or from .pt/.pth
    (loaded with weights_only=True: no code runs). Checked here, where the
    file's name is known: the metadata's network and preprocessing, a
    torchvision state dict's tensors, and every tensor finite."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                state, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    else:
        try:
            state, metadata = torch.load(path, map_location="cpu", weights_only=True), {}
        except Exception as e:  # torch raises several unrelated types for bad files
            reason = unsafe_reason(e) or str(e).splitlines()[0]
            raise WeightsError(f"{path}: not a readable torch checkpoint ({reason})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path}: expected a state dict of tensors")
    args = describe(metadata, str(path))
    if args:
        try:
            network(**args)
        except SpecError as e:
            raise WeightsError(f"{path}: checkpoint metadata names no valid network ({e})") from None
    preprocessing(metadata, str(path))
    if any(name.startswith("features.") for name in state):
        check_torchvision(state, str(path))
    bad = non_finite(state)
    if bad:
        raise WeightsError(f"{path}: tensor {bad!r} holds non-finite values (nan or inf); refused")
    return state, metadata


def describe(metadata: dict[str, str], source: str = "checkpoint") -> dict:
    """Network arguments recorded in a checkpoint's metadata (WeightsError naming `source` if malformed)."""
    if "variant" not in metadata:
        return {}
    try:
        # Checkpoints from before pool and activation were recorded have the defaults.
        return {"variant": metadata["variant"], "num_classes": int(metadata["num_classes"]),
                "width": float(metadata["width"]), "lrn": metadata.get("lrn") or None,
                "pool": metadata.get("pool") or None, "activation": metadata.get("activation") or None}
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{source}: checkpoint metadata is malformed: {json.dumps(metadata)} ({e})") from None


def mean_image(metadata: dict[str, str], source: str) -> dict[str, str] | None:
    """The mean image file a checkpoint's weights were trained with ({"path", "sha256"}), or None."""
    if "mean_image" not in metadata:
        return None
    try:
        record = json.loads(metadata["mean_image"])
        return {"path": str(record["path"]), "sha256": str(record["sha256"])}
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{source}: malformed mean_image record {metadata['mean_image']!r} ({e})") from None


def preprocessing_tensors(prep: Preprocessing) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores for its preprocessing: the mean image, if it has one."""
    if prep.mean_image is None:
        return {}
    return {MEAN_IMAGE: torch.from_numpy(prep.mean_image)}


def preprocessing(metadata: dict[str, str], source: str,
                  state: dict[str, torch.Tensor] | None = None) -> Preprocessing | None:
    """The preprocessing a checkpoint records (checkpoints from before it was
    recorded have none), with the mean image taken out of `state` if there."""
    prep = Preprocessing.from_json(metadata["preprocessing"], source) if "preprocessing" in metadata else None
    mean = state.pop(MEAN_IMAGE, None) if state is not None else None
    if mean is None:
        return prep
    from .mean_image import MEAN_SHAPE

    if prep is None or tuple(mean.shape) != MEAN_SHAPE:
        raise WeightsError(f"{source}: tensor {MEAN_IMAGE!r} has shape {tuple(mean.shape)}, expected {MEAN_SHAPE}"
                           + ("" if prep else " and a preprocessing record beside it"))
    return replace(prep, mean_image=mean.float().numpy())
