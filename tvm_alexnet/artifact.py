"""A build on disk: its library, its manifest, and the checks made before loading it.

A build folder holds the library (LIBRARY) and manifest.json, which
describes the kernels and records each file's size and SHA-256. A library
that is truncated or changed would crash the process that maps it (SIGBUS)
rather than fail, so `check` compares them before anything loads it. This
module needs neither the compiler nor the tuner: runtime.py loads builds
through it alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError

LIBRARY = "alexnet.so"
MANIFEST = "manifest.json"


class ArtifactError(UserError):
    """A build folder whose files are missing, truncated or changed."""


@dataclass
class Manifest:
    variant: str
    width: float
    num_classes: int
    lrn: str | None
    batch: int | None
    target: dict
    tvm_version: str
    build_seconds: float
    kernels: list[dict]
    functions: list[str]
    tuning_log: str | None = None
    tuned: list[str] = field(default_factory=list)  # kernels scheduled from the log; the rest use defaults
    # kernel -> the shape of its weights as `forward` takes them (graph.Transformed), made by
    # `<kernel>_weight_transform` and used by `<kernel>_transformed`
    transformed_weights: dict[str, list[int]] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)  # name -> {"size", "sha256"}, what `check` compares

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ArtifactError(f"{path}: no such build manifest") from None
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{path}: not a build manifest ({e})") from None


def cache_dir() -> Path:
    """Where builds are cached: $TVM_ALEXNET_CACHE, else ~/.cache/tvm-alexnet."""
    return Path(os.environ.get("TVM_ALEXNET_CACHE", Path.home() / ".cache" / "tvm-alexnet"))


def describe(path: Path) -> dict:
    """A file's size and SHA-256, as a manifest records them."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def check_file(path: Path, expected: dict) -> None:
    """An ArtifactError unless the file has the size and SHA-256 `expected`."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ArtifactError(f"{path}: {e.strerror}") from None
    if size != expected.get("size"):
        raise ArtifactError(f"{path}: {size} bytes, its manifest says {expected.get('size')} (truncated?)")
    if describe(path)["sha256"] != expected.get("sha256"):
        raise ArtifactError(f"{path}: its SHA-256 differs from its manifest's (changed since it was built)")


def check(directory: str | os.PathLike) -> Manifest:
    """The build's manifest, once the library it lists matches its recorded
    size and SHA-256; an ArtifactError naming the file otherwise."""
    directory = Path(directory)
    manifest = Manifest.load(directory / MANIFEST)
    if LIBRARY not in manifest.files:
        raise ArtifactError(f"{directory / MANIFEST}: records no size and SHA-256 of {LIBRARY} "
                            "(made by an older version): build it again")
    for name, expected in manifest.files.items():
        check_file(directory / name, expected)
    return manifest
