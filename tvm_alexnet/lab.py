"""What the paper looked at besides error rates, computed: conv1's kernels and
their colour (Figure 3), top-5 predictions and fc7 nearest neighbours (Figure
4), ensembles of several networks (its 5-CNN result), the training set's mean
image, and saliency maps (Simonyan et al., 2013). figures.py draws them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import placement
from .data import (
    InputError,
    load_image,
)
from .errors import UserError
from .files import replaced_atomically
from .model import AlexNet
from .preprocessing import Preprocessing
from .spec import Network

# -- images as the network sees them, and back ---------------------------------------------------


def pixels(x: torch.Tensor, prep: Preprocessing) -> np.ndarray:
    """An input (3, H, W) prepared by `prep` back as RGB pixels: (H, W, 3) uint8."""
    p = prep.unprepare(x.detach().cpu().double().numpy())
    return np.clip(np.rint(p), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def reprepare(x: torch.Tensor, source: Preprocessing, target: Preprocessing) -> torch.Tensor:
    """Inputs (N, 3, H, W) prepared by `source` as `target` prepares them
    (both are affine per pixel, so nothing is lost but rounding)."""
    if source.same_as(target):
        return x
    return target.prepare(source.unprepare(x.double())).to(x.dtype)


def towers_of(net: Network) -> int:
    """How many towers the network's channels split into (paper: 2, as its grouped layers say)."""
    return max(c.groups for c in net.convs)


# -- Figure 3: conv1's kernels -------------------------------------------------------------------


def conv1_kernels(model: AlexNet) -> np.ndarray:
    """conv1's kernels as they act on RGB pixels: (out, 3, k, k) float64, the
    weights of each input channel divided by its preprocessing std and put
    in RGB order (converted Caffe weights see BGR)."""
    w = model.conv1.weight.detach().cpu().double().numpy()
    prep = model.preprocessing
    w = w * prep.scale / np.asarray(prep.std)[None, :, None, None]
    return np.ascontiguousarray(w[:, ::-1]) if prep.channels == "BGR" else w


def colour_share(kernels: np.ndarray) -> np.ndarray:
    """Per kernel (out, 3, k, k), the share of its energy outside its grey
    component (the mean over colour channels): 0 for a colour-agnostic
    kernel, up to 2/3 for one that sees a single channel."""
    kernels = np.asarray(kernels, np.float64)
    colour = kernels - kernels.mean(axis=1, keepdims=True)
    total = (kernels**2).sum(axis=(1, 2, 3))
    return np.divide((colour**2).sum(axis=(1, 2, 3)), total, out=np.zeros_like(total), where=total > 0)


def tower_colour_shares(kernels: np.ndarray, towers: int) -> list[float]:
    """colour_share averaged over each tower's kernels (tower t: the t-th
    slice of the output channels, as conv2's groups read them)."""
    return [float(s.mean()) for s in np.split(colour_share(kernels), towers)]


def display_kernel(kernel: np.ndarray) -> np.ndarray:
    """One kernel (3, k, k) as an (k, k, 3) picture in [0, 1]: its own
    minimum black, maximum white (a constant kernel mid-grey)."""
    lo, hi = kernel.min(), kernel.max()
    scaled = np.full(kernel.shape, 0.5) if hi == lo else (kernel - lo) / (hi - lo)
    return scaled.transpose(1, 2, 0)


def filter_grid(kernels: np.ndarray, towers: int = 1, columns: int | None = None, zoom: int = 4, pad: int = 1,
                gap: int = 4) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Kernels (out, 3, k, k) drawn in a grid, each scaled by display_kernel
    and enlarged `zoom` times: tower 1's kernels in the first rows, tower 2's
    below them after `gap` blank pixels. Returns the (H, W, 3) picture in
    [0, 1] (white between cells) and each kernel's cell origin (row, column)."""
    out, k = kernels.shape[0], kernels.shape[-1]
    per_tower = out // towers
    columns = columns or min(per_tower, 16)
    rows = -(-per_tower // columns)
    cell = k * zoom + pad
    tower_height = rows * cell
    height = towers * tower_height + (towers - 1) * gap + pad
    grid = np.ones((height, columns * cell + pad, 3))
    origins = []
    for i in range(out):
        tower, j = divmod(i, per_tower)
        r, c = divmod(j, columns)
        top, left = tower * (tower_height + gap) + r * cell + pad, c * cell + pad
        picture = display_kernel(kernels[i]).repeat(zoom, 0).repeat(zoom, 1)
        grid[top:top + k * zoom, left:left + k * zoom] = picture
        origins.append((top, left))
    return grid, origins


# -- Figure 4 (left): top-5 --------------------------------------------------------------------


def top_predictions(logits: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The top `k` classes of each row of `logits` (ranked by logit:
    probabilities too small for float32 all read 0 and would tie) and their
    softmax probabilities in float64: ((N, k) indices, (N, k) float64)."""
    logits = logits.detach().cpu()
    idx = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return idx, logits.double().softmax(-1).gather(1, idx)


# -- saliency --------------------------------------------------------------------------------------


def saliency(model: AlexNet, x: torch.Tensor, classes: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Simonyan et al.'s image-specific class saliency: the gradient of each
    image's top class's logit (or `classes`') with respect to the image, the
    maximum of its magnitude over the colour channels. Returns ((N, H, W)
    maps, (N,) classes). Runs wherever the model does: the compiled kernels
    backwards once compiled, torch's autograd before."""
    was_training = model.training
    model.eval()
    x = placement.to_device(x.detach(), placement.model_device(model)).clone().requires_grad_()
    try:
        with torch.enable_grad():
            logits = model(x)
            if classes is None:
                classes = logits.detach().argmax(1)
            classes = classes.to(logits.device)
            (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x, allow_unused=True)
    finally:
        model.train(was_training)
    if grad is None:
        raise UserError("the compiled network gives no gradient with respect to its input "
                        "(its conv1 has no input-gradient kernel)")
    return grad.abs().amax(1).cpu(), classes.cpu()


# -- Figure 4 (right): fc7 neighbours -------------------------------------------------------------

FEATURE_LAYER = "fc7"


def features(model: AlexNet, x: torch.Tensor, layer: str = FEATURE_LAYER) -> torch.Tensor:
    """The activations of `layer` (AlexNet.features: fc7's after its activation) for a batch, on the CPU."""
    with torch.no_grad():
        return model.features(placement.to_device(x, placement.model_device(model)), layer).cpu()


def _file_key(files: list[Path], root: Path) -> list[str]:
    out = []
    for f in files:
        st = f.stat()
        out.append(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}")
    return out


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def features_cache_path(root: Path, files: list[Path], weights_digest: str, model: AlexNet, resize: bool,
                        layer: str = FEATURE_LAYER) -> Path:
    """ROOT/.tvm-alexnet-features-<hash>.npz, the hash over the weights file's
    contents, the network (spec and preprocessing), the layer, and every
    image's path, size and modification time: any change makes a new file."""
    h = hashlib.sha256()
    for part in (weights_digest, repr(model.spec), model.preprocessing.to_json(), layer, str(resize),
                 *_file_key(files, root)):
        h.update(part.encode())
        h.update(b"\n")
    return root / f".tvm-alexnet-features-{h.hexdigest()[:20]}.npz"


def folder_features(model: AlexNet, files: list[Path], batch_size: int = 32, resize: bool = True,
                    progress: bool = True, layer: str = FEATURE_LAYER) -> tuple[np.ndarray, list[Path]]:
    """`layer`'s activations (float32, one row per image) of the images that
    can be read, in batches with a progress bar: (features, their files).
    Unreadable images are warned about and left out."""
    size = model.spec.image_size
    rows, kept = [], []
    bar = tqdm(total=len(files), desc=f"{layer} features", unit="image", disable=not progress)
    for start in range(0, len(files), batch_size):
        images = []
        for f in files[start:start + batch_size]:
            try:
                images.append(load_image(f, size, model.preprocessing, resize))
                kept.append(f)
            except InputError as e:
                warnings.warn(f"{e}; skipped")
        if images:
            rows.append(features(model, torch.stack(images), layer).numpy().astype(np.float32))
        bar.update(len(files[start:start + batch_size]))
    bar.close()
    if not kept:
        raise InputError(f"none of the {len(files)} images can be read")
    return np.concatenate(rows), kept


def cached_folder_features(model: AlexNet, weights: str | os.PathLike, root: str | os.PathLike,
                           batch_size: int = 32, resize: bool = True, progress: bool = True, cache: bool = True,
                           layer: str = FEATURE_LAYER) -> tuple[np.ndarray, list[Path], Path | None, bool]:
    """folder_features of every image under `root`, kept on disk in `root`
    (features_cache_path) and read back while nothing changed: (features,
    files, the cache file read or written (None where none was), whether
    it was read)."""
    from .data import image_files

    root = Path(root)
    files = image_files([root])
    path = features_cache_path(root, files, file_digest(weights), model, resize, layer) if cache else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                feats, names = stored["features"], [root / n for n in stored["files"].tolist()]
            if feats.ndim == 2 and len(feats) == len(names) and np.isfinite(feats).all():
                return feats, names, path, True
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache is computed again and replaced
        warnings.warn(f"{path}: damaged feature cache; computing the features again")
    feats, kept = folder_features(model, files, batch_size, resize, progress, layer)
    if path is not None:
        try:
            with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, features=feats, files=np.array([str(p.relative_to(root)) for p in kept]))
        except OSError as e:
            warnings.warn(f"{path}: cannot cache the features there ({e.strerror or e}); continuing without")
            path = None
    return feats, kept, path, False


@dataclass
class Neighbours:
    picks: list[list[tuple[Path, float]]]  # per query, its nearest images and their distances, nearest first
    cache: Path | None  # the feature cache read or written
    cached: bool  # whether the folder's features were read from it


def neighbours(model: AlexNet, weights: str | os.PathLike, root: str | os.PathLike, queries: list[Path],
               k: int = 6, batch_size: int = 32, cache: bool = True, progress: bool = True,
               layer: str = FEATURE_LAYER) -> Neighbours:
    """The `k` images under `root` nearest to each query in `layer`'s
    activations (Euclidean). A query that is one of the folder's images
    takes its features from the folder's (so its distance to itself is 0)."""
    feats, files, path, cached = cached_folder_features(model, weights, root, batch_size, progress=progress,
                                                        cache=cache, layer=layer)
    index = {f.resolve(): i for i, f in enumerate(files)}
    missing = [q for q in queries if q.resolve() not in index]
    extra = {}
    if missing:  # unreadable queries are errors, not skipped
        x = torch.stack([load_image(q, model.spec.image_size, model.preprocessing) for q in missing])
        rows = np.concatenate([features(model, b, layer).numpy() for b in x.split(batch_size)])
        extra = dict(zip(missing, rows))
    query_feats = np.stack([feats[index[q.resolve()]] if q.resolve() in index else extra[q] for q in queries])
    found, distances = nearest(query_feats, feats, k)
    return Neighbours([[(files[i], float(d)) for i, d in zip(row, dist)] for row, dist in zip(found, distances)],
                      path, cached)


def nearest(queries: np.ndarray, pool: np.ndarray, k: int = 6, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest rows of `pool` to each row of `queries` in Euclidean
    distance: ((Q, k) indices, (Q, k) float64 distances), nearest first.
    Candidates come from |q|^2 + |p|^2 - 2 q.p (float64); the distances of
    the best are then computed directly, so an image's distance to itself is 0."""
    queries, pool = np.asarray(queries, np.float64), np.asarray(pool, np.float64)
    k = min(k, len(pool))
    extra = min(len(pool), k + 8)
    norms = (pool**2).sum(1)
    indices, distances = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        d2 = (q**2).sum(1)[:, None] + norms[None] - 2 * q @ pool.T
        candidates = np.argpartition(d2, extra - 1, axis=1)[:, :extra] if extra < len(pool) else \
            np.broadcast_to(np.arange(len(pool)), (len(q), len(pool)))
        exact = np.sqrt(((q[:, None, :] - pool[candidates]) ** 2).sum(-1))
        order = np.lexsort((candidates, exact), axis=1)[:, :k]  # ties: the lower index first
        indices.append(np.take_along_axis(candidates, order, 1))
        distances.append(np.take_along_axis(exact, order, 1))
    return np.concatenate(indices), np.concatenate(distances)
