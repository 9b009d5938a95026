"""What the paper looked at besides error rates, computed: conv1's kernels and
their colour (Figure 3), top-5 predictions and fc7 nearest neighbours (Figure
4), ensembles of several networks (its 5-CNN result), the training set's mean
image, and saliency maps (Simonyan et al., 2013). figures.py draws them.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import placement
from .data import (
    RESIZE,
    FullImage,
    ImageFolder,
    InputError,
    centre_crop,
    load_image,
    loader,
    ten_crops,
    unwrapped,
)
from .errors import UserError
from .files import replaced_atomically
from .model import AlexNet
from .preprocessing import Preprocessing
from .spec import Network

# -- images as the network sees them, and back ---------------------------------------------------


def pixels(x: torch.Tensor, prep: Preprocessing) -> np.ndarray:
    """An input (3, H, W) prepared by `prep` back as RGB pixels: (H, W, 3) uint8."""
    x = x.detach().cpu().double().numpy()
    mean, std = np.asarray(prep.mean)[:, None, None], np.asarray(prep.std)[:, None, None]
    p = (x * std + mean) / prep.scale
    if prep.channels == "BGR":
        p = p[::-1]
    return np.clip(np.rint(p), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def reprepare(x: torch.Tensor, source: Preprocessing, target: Preprocessing) -> torch.Tensor:
    """Inputs (N, 3, H, W) prepared by `source` as `target` prepares them
    (both are affine per channel, so nothing is lost but rounding)."""
    if source == target:
        return x
    dev, dt = x.device, x.dtype
    s_mean, s_std = (torch.tensor(v, dtype=torch.float64, device=dev)[:, None, None] for v in (source.mean, source.std))
    t_mean, t_std = (torch.tensor(v, dtype=torch.float64, device=dev)[:, None, None] for v in (target.mean, target.std))
    p = (x.double() * s_std + s_mean) / source.scale  # pixels 0..255 in source's channel order
    if source.channels != target.channels:
        p = p.flip(-3)
    return ((p * target.scale - t_mean) / t_std).to(dt)


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


# -- ensembles ---------------------------------------------------------------------------------


def _logits(model: AlexNet, x: torch.Tensor) -> torch.Tensor:
    """Logits of a batch on the model's device; a build for one fixed batch size gets the batch padded."""
    x = placement.to_device(x, placement.model_device(model))
    batch = model.compiled.manifest.batch if model.compiled is not None else None
    if batch is None or len(x) == batch:
        return model(x).cpu()
    return model(torch.cat([x, x.new_zeros((batch - len(x), *x.shape[1:]))]))[:len(x)].cpu()


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
    """train.evaluate for several models: top-1 and top-5 error and the mean
    loss of their averaged softmax (the paper averaged five CNNs), over a
    loader of 256x256 images prepared as `preprocessing` says (default the
    first model's). Returns evaluate's dict."""
    check_ensemble(models)
    for model in models:
        model.eval()
    top1 = top5 = loss = count = 0.0
    skipped = 0
    start = time.perf_counter()
    for x, labels, *rest in tqdm(unwrapped(loader), desc=f"eval ({len(models)} models)", leave=False,
                                 disable=not progress, total=len(loader) if hasattr(loader, "__len__") else None):
        skipped += rest[0] if rest else 0
        if len(labels) == 0:
            continue
        probs = ensemble_probabilities(models, x, preprocessing, ten_crop)
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


# -- the mean image ----------------------------------------------------------------------------

MEAN_SHAPE = (3, RESIZE, RESIZE)


def mean_image(root: str | os.PathLike, batch_size: int = 32, workers: int = 0,
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


def mean_image_shift(mean: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """What to add to a 256x256 image prepared by `prep` (data.FullImage)
    so that the mean image (load_mean's: RGB pixels) is subtracted from it
    instead of prep's per-channel mean: (3, 256, 256) float32 in prep's
    channel order and scale, ((pixel - mean) * scale / std after adding)."""
    m = np.asarray(mean, np.float64)
    if prep.channels == "BGR":
        m = m[::-1]
    shift = (np.asarray(prep.mean)[:, None, None] - m * prep.scale) / np.asarray(prep.std)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(shift, np.float32))


def mean_channels(mean: np.ndarray, prep: Preprocessing) -> Preprocessing:
    """`prep` with its per-channel mean replaced by the mean image's
    per-channel average (in prep's channel order and scale): the closest a
    per-channel mean comes to subtracting the mean image."""
    m = np.asarray(mean, np.float64).mean(axis=(1, 2)) * prep.scale
    if prep.channels == "BGR":
        m = m[::-1]
    return replace(prep, mean=tuple(float(v) for v in m))


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
