"""Images in, tensors out: loading and resizing, the paper's training augmentation, data sets."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UserError
from .preprocessing import Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
RESIZE = 256  # shorter side, before the centre crop
# Larger images are refused undecoded, since a small file can declare a huge one (a decompression
# bomb); 50 Mpixel is above a 45-Mpixel camera's photos and below PIL's own limit of 89.5.
MAX_PIXELS = 50_000_000


class InputError(UserError):
    """An input image or path that cannot be used."""


def open_image(path: Path) -> Image.Image:
    """The decoded image at `path`; InputError if it cannot be read or
    declares more than MAX_PIXELS pixels (checked before decoding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise InputError(f"{path}: image is {w}x{h}, over the limit of {MAX_PIXELS:,} pixels "
                                     "(refused undecoded: it may be a decompression bomb)")
                img.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(f"{path}: image is over the limit of {MAX_PIXELS:,} pixels "
                             "(refused undecoded: it may be a decompression bomb)") from None
        except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError) as e:
            raise InputError(f"{path}: not a readable image ({e})") from None
    return img


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The image files among `paths`, folders expanded (sorted)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return files


def load_image(path: Path, size: int, prep: Preprocessing, resize: bool = True) -> torch.Tensor:
    """A (3, size, size) float32 tensor: shorter side scaled to 256 and the
    centre cropped (with `resize`), or the image as it is (without, then it
    must be size x size)."""
    img = open_image(path)
    if img.mode != "RGB":
        channels = len(img.getbands())
        raise InputError(f"{path}: image has {channels} channel{'s' * (channels != 1)} (mode {img.mode}), "
                         "expected 3 (RGB)")
    if resize:
        img = centre_crop_image(_resize_centre(img), size)
    elif img.size != (size, size):
        raise InputError(f"{path}: image is {img.size[0]}x{img.size[1]}, expected {size}x{size} "
                         "(or let it be resized)")
    return prep(img)


def centre_crop_image(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


# -- training data -------------------------------------------------------------------------------


class LabelledImages(torch.utils.data.Dataset):
    """(image file, class) samples. An image that cannot be read is reported
    with its path and is None in the data set: `loader` batches skip and
    count it, Augmented puts the next image in its place. One that is not RGB
    (grey, palette, RGBA, CMYK) is converted. InputError naming `source` (by
    default the samples' common folder) when not one image can be read."""

    def __init__(self, samples: list[tuple[Path, int]], transform, source: str | os.PathLike | None = None):
        self.samples, self.transform = samples, transform
        self._check_readable(source)

    def _check_readable(self, source) -> None:
        # Up front, so a folder of unreadable files is one error naming it, not a data worker's traceback.
        first = None
        for path, _ in self.samples:
            try:
                open_image(path)
                return
            except InputError as e:
                first = first or e
        if first is not None:
            source = source or os.path.commonpath([str(Path(p).parent) for p, _ in self.samples])
            raise InputError(f"{source}: none of its {len(self.samples)} images can be read (the first: {first})")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            img = open_image(path)
        except InputError as e:
            warnings.warn(f"{e}; skipped")
            return None
        return self.transform(img.convert("RGB")), label  # a no-op for RGB


def skip_unreadable(samples: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A DataLoader's collate_fn: (images, labels, skipped), the images that
    could not be read (None) left out and counted."""
    kept = [s for s in samples if s is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), len(samples)
    x, labels = torch.utils.data.default_collate(kept)
    return x, labels, len(samples) - len(kept)


def loader(dataset, batch_size: int, workers: int, **kwargs) -> torch.utils.data.DataLoader:
    """Batches of (images, labels, skipped) for evaluation: unreadable images skipped and counted."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                       collate_fn=skip_unreadable, **kwargs)


def unwrapped(batches: Iterable) -> Iterator:
    """`batches` (a DataLoader) with a data worker's UserError raised as
    itself: the loader re-raises it with the worker's whole traceback as its
    message, which the command line would print after `error:`."""
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except UserError as e:
            text = str(e)
            if "\nOriginal Traceback" not in text:
                raise
            # The traceback's last line is "<module>.<class>: <message>".
            message = text.rstrip().splitlines()[-1].split(": ", 1)[-1]
            try:
                error = type(e)(message)
            except Exception:  # a subclass whose constructor takes other arguments
                error = UserError(message)
            raise error from None
        yield batch


def random_images(count: int, shape: tuple[int, ...], batch: int,
                  generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """`count` N(0, 1) images of `shape` in batches of up to `batch`, drawn as
    they are needed: only one batch is ever held."""
    for start in range(0, count, batch):
        yield torch.randn(min(batch, count - start), *shape, generator=generator)


class ImageFolder(LabelledImages):
    """root/<class>/<image>: ImageNet's train and val layout. Classes are the
    sorted folder names, or `class_index[folder]` where given (ImageNet's
    WordNet ids for pretrained weights)."""

    def __init__(self, root: str | os.PathLike, transform, class_index: dict[str, int] | None = None):
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root}: no such folder (expected root/<class>/<image>)")
        self.classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        index = class_index or {name: i for i, name in enumerate(self.classes)}
        unknown = [name for name in self.classes if name not in index]
        if unknown:
            raise InputError(f"{root}: class folder {unknown[0]!r} is not one of the network's classes")
        samples = [(f, index[name]) for name in self.classes
                   for f in sorted((root / name).rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not samples:
            raise InputError(f"{root}: no images in class folders (expected root/<class>/<image>)")
        super().__init__(samples, transform, root)


class ImageList(LabelledImages):
    """Images listed in a label file, one `<image> <label>` per line (Caffe's
    val.txt): the image relative to `root`, the label a class number or a
    key of `class_index` (such as an ImageNet WordNet id)."""

    def __init__(self, root: str | os.PathLike, labels: str | os.PathLike, transform,
                 class_index: dict[str, int] | None = None):
        root = Path(root)
        samples = []
        try:
            lines = Path(labels).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{labels}: not a readable label file ({e})") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            label = parts[-1] if len(parts) == 2 else None
            if label is not None and class_index and label in class_index:
                label = class_index[label]
            elif label is not None and label.isdigit():
                label = int(label)
            else:
                raise InputError(f"{labels}:{number}: expected '<image> <class number>', got {line.strip()!r}")
            if not (root / parts[0]).is_file():
                raise InputError(f"{labels}:{number}: no image {root / parts[0]}")
            samples.append((root / parts[0], label))
        if not samples:
            raise InputError(f"{labels}: lists no images")
        super().__init__(samples, transform, f"{root} (listed in {labels})")


class Digits(torch.utils.data.Dataset):
    """The demo data set: scikit-learn's 1,797 handwritten digits (8x8, 10
    classes), scaled up to 256x256 RGB images; a fixed 80/20 split into
    train and validation."""

    classes = [str(d) for d in range(10)]

    def __init__(self, train: bool, transform):
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(0).permutation(len(digits.target))
        cut = int(0.8 * len(order))
        self.indices = order[:cut] if train else order[cut:]
        self.images, self.targets, self.transform = digits.images, digits.target, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        i = self.indices[index]
        pixels = (self.images[i] * (255 / 16)).astype(np.uint8)
        img = Image.fromarray(pixels).resize((RESIZE, RESIZE), Image.BILINEAR).convert("RGB")
        return self.transform(img), int(self.targets[i])


def _resize_centre(img: Image.Image, size: int = RESIZE) -> Image.Image:
    """Shorter side to `size`, then the centre size x size (the paper's 256x256 images)."""
    w, h = img.size
    ratio = size / min(w, h)
    img = img.resize((max(size, round(w * ratio)), max(size, round(h * ratio))), Image.BILINEAR)
    return centre_crop_image(img, size)


class FullImage:
    """256x256 and normalised, uncropped: training and evaluation crop it."""

    def __init__(self, prep: Preprocessing):
        self.prep = prep

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.prep(_resize_centre(img))


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    top = (x.shape[-1] - size) // 2
    return x[..., top:top + size, top:top + size]


def ten_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The paper's test crops of a batch (N, 3, 256, 256): four corners and
    the centre, and their horizontal flips."""
    far = x.shape[-1] - size
    crops = [x[..., top:top + size, left:left + size] for top, left in ((0, 0), (0, far), (far, 0), (far, far))]
    crops.append(centre_crop(x, size))
    return crops + [c.flip(-1) for c in crops]


def training_sets(root: str | os.PathLike | None, transform) -> tuple[torch.utils.data.Dataset,
                                                                      torch.utils.data.Dataset, list[str]]:
    """(train, validation, class names): the ImageFolders ROOT/train and
    ROOT/val, or with no ROOT the demo digits."""
    if root is None:
        return Digits(True, transform), Digits(False, transform), Digits.classes
    root = Path(root)
    train_set, val_set = ImageFolder(root / "train", transform), ImageFolder(root / "val", transform)
    if train_set.classes != val_set.classes:
        raise InputError(f"{root}/train and {root}/val hold different class folders")
    return train_set, val_set, train_set.classes


def validation_set(root: str | os.PathLike, labels: str | os.PathLike | None, transform,
                   num_classes: int) -> LabelledImages:
    """Validation images of a network with `num_classes` outputs: ROOT/<class>/
    folders, a flat ROOT with a `labels` file (see ImageList), or a flat ROOT
    of ILSVRC2012 validation images, labelled by their file names. Class
    folders and labels may be ImageNet WordNet ids where there are 1000 classes."""
    from . import imagenet

    root = Path(root)
    index = imagenet.wordnet_index() if num_classes == imagenet.CLASSES else None
    if labels is not None:
        dataset = ImageList(root, labels, transform, index)
    elif any(p.is_dir() for p in root.iterdir()):
        folders = {p.name for p in root.iterdir() if p.is_dir()}
        dataset = ImageFolder(root, transform, index if index and folders <= index.keys() else None)
    else:
        samples = [(f, imagenet.val_label(f)) for f in image_files([root])]
        unknown = [f for f, label in samples if label is None]
        if unknown:
            raise InputError(f"{unknown[0]} is not an ILSVRC2012 validation image name and no labels file "
                             "was given")
        dataset = LabelledImages(samples, transform)
    largest = max(label for _, label in dataset.samples)
    if largest >= num_classes:
        raise InputError(f"{root}: label {largest} is out of range for a network with {num_classes} classes")
    return dataset
