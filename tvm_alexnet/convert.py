"""Pretrained weights from elsewhere as our checkpoints: BVLC's Caffe AlexNet
as `bvlc_alexnet.npy` and torchvision's `alexnet` state dict.

`bvlc_alexnet.npy` is the file of Kratzert's TensorFlow fine-tuning tutorial
(made by caffe-tensorflow from Caffe's bvlc_alexnet): np.save of a dict
{"conv1": [W, b], ..., "fc8": [W, b]}, conv weights HWIO with each group's
input channels (the groups split the output axis), dense weights (in, out)
with fc6's rows in TensorFlow's (6, 6, 256) HWC flatten order. Its network
is the paper's, with Caffe's LRN (k=1, alpha 1e-4 / 5) before pooling, and it
expects BGR pixels in 0..255 less the ImageNet mean.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .model import AlexNet
from .preprocessing import CAFFE
from .spec import Network, SpecError, network
from .weights import WeightsError

BVLC_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts, lists and plain scalars and nothing else:
    any other global (os.system, builtins.eval, a class) is refused before it
    is looked up, so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "scalar"): np.float32(0).__reduce__()[0],
        ("numpy._core.multiarray", "scalar"): np.float32(0).__reduce__()[0],
        # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): __import__("codecs").encode,
    }

    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")  # Python 2 pickles: arrays' raw bytes as str
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise WeightsError(f"{self.source}: refused to unpickle {module}.{name} (only numpy arrays, dicts, "
                               "lists and scalars are allowed; the file may be malicious)")
        return self.ALLOWED[module, name]


def read_bvlc_npy(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """The {layer: [weights, biases]} dict of a bvlc_alexnet.npy, unpickled safely."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror})") from None
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except ValueError as e:
        raise WeightsError(f"{path}: not a .npy file ({e})") from None
    if dtype != np.dtype(object) or shape != ():
        raise WeightsError(f"{path}: holds a {dtype} array of shape {shape}, expected a pickled dict of layers "
                           "(np.save of {'conv1': [W, b], ...})")
    try:
        weights = _NumpyOnlyUnpickler(f, str(path)).load()
    except WeightsError:
        raise
    except Exception as e:  # truncated or garbled pickles raise many types
        raise WeightsError(f"{path}: not a readable pickled dict ({type(e).__name__}: {e})") from None
    weights = weights.item() if isinstance(weights, np.ndarray) else weights
    if not isinstance(weights, dict):
        raise WeightsError(f"{path}: holds a {type(weights).__name__}, expected a dict of layers")
    layers = {}
    for name, params in weights.items():
        name = name.decode() if isinstance(name, bytes) else str(name)
        arrays = [p for p in params if isinstance(p, np.ndarray)] if isinstance(params, (list, tuple)) else []
        if len(arrays) != 2 or len(params) != 2:
            raise WeightsError(f"{path}: layer {name!r} should be [weights, biases], got {_describe(params)}")
        # caffe-tensorflow lists weights first; tell them apart by rank as Kratzert's loader does.
        layers[name] = sorted(arrays, key=lambda a: -a.ndim)
    return layers


def _describe(value) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {', '.join(_describe(v) for v in value)}"
    if isinstance(value, np.ndarray):
        return f"array {value.shape}"
    return type(value).__name__


def from_bvlc(layers: dict[str, list[np.ndarray]], source: str) -> tuple[Network, dict[str, torch.Tensor]]:
    """The paper network (Caffe LRN; width and classes read from conv1 and
    fc8) and its state dict from BVLC's layers."""
    missing = [name for name in BVLC_LAYERS if name not in layers]
    if missing:
        raise WeightsError(f"{source}: missing layer {missing[0]!r} (has {', '.join(sorted(layers)) or 'none'})")
    unexpected = sorted(set(layers) - set(BVLC_LAYERS))
    if unexpected:
        raise WeightsError(f"{source}: unexpected layer {unexpected[0]!r}")
    conv1, fc8 = layers["conv1"][0], layers["fc8"][0]
    if conv1.ndim != 4 or fc8.ndim != 2:
        raise WeightsError(f"{source}: conv1 weights have shape {conv1.shape} and fc8 weights {fc8.shape}, "
                           "expected (11, 11, 3, 96) (HWIO) and (4096, 1000) (in, out)")
    try:
        net = network("paper", num_classes=fc8.shape[1], width=conv1.shape[3] / 96, lrn="caffe")
    except SpecError as e:
        raise WeightsError(f"{source}: conv1 has {conv1.shape[3]} filters and fc8 {fc8.shape[1]} outputs: {e}") \
            from None
    state = {}
    for c in net.convs:
        w = _checked(layers[c.name][0], (c.kernel, c.kernel, c.in_channels // c.groups, c.out_channels),
                     f"{source}: {c.name} weights (HWIO)", net)
        state[f"{c.name}.weight"] = w.transpose(3, 2, 0, 1)
    channels = net.convs[-1].out_channels
    side = round((net.dense[0].in_features // channels) ** 0.5)
    for d in net.dense:
        w = _checked(layers[d.name][0], (d.in_features, d.out_features), f"{source}: {d.name} weights (in, out)", net)
        if d is net.dense[0]:  # TensorFlow flattened (H, W, C); torch flattens (C, H, W)
            w = w.reshape(side, side, channels, d.out_features).transpose(2, 0, 1, 3).reshape(d.in_features, -1)
        state[f"{d.name}.weight"] = w.T
    for layer in net.layers:
        state[f"{layer.name}.bias"] = _checked(layers[layer.name][1], net.params()[f"{layer.name}.bias"],
                                               f"{source}: {layer.name} biases", net)
    return net, {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def _checked(array: np.ndarray, shape: tuple[int, ...], what: str, net: Network) -> np.ndarray:
    if array.shape != shape:
        raise WeightsError(f"{what} have shape {array.shape}, expected {shape} "
                           f"(from conv1 and fc8: width {net.width:g}, {net.num_classes} classes)")
    if not np.issubdtype(array.dtype, np.floating):
        raise WeightsError(f"{what} have dtype {array.dtype}, expected a float")
    if not np.isfinite(array).all() or np.abs(array).max(initial=0) > np.finfo(np.float32).max:
        raise WeightsError(f"{what} hold non-finite values (nan or inf, or beyond float32's range)")
    return array


FORMATS = {".npy": "bvlc", ".pth": "torchvision", ".pt": "torchvision"}


def convert(source: str | os.PathLike, fmt: str | None = None) -> AlexNet:
    """A model with the weights of `source`: bvlc_alexnet.npy ("bvlc") or a
    torchvision alexnet state dict ("torchvision"), told apart by suffix
    unless `fmt` says."""
    source = Path(source)
    fmt = fmt or FORMATS.get(source.suffix.lower())
    if fmt == "bvlc":
        net, state = from_bvlc(read_bvlc_npy(source), str(source))
        model = AlexNet(net.variant, net.num_classes, net.width, net.lrn)
        model.load_state_dict(state)
        model.preprocessing = CAFFE
        return model
    if fmt == "torchvision":
        from .weights import load

        state, _ = load(source)
        if not any(name.startswith("features.") for name in state):
            raise WeightsError(f"{source}: not a torchvision alexnet state dict (no features.N tensors)")
        return AlexNet.from_torchvision(state)
    raise UserError(f"{source}: unknown format (suffix {source.suffix or 'none'}); "
                    f"give --from bvlc or --from torchvision")
