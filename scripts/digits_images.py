"""Write the demo's validation digits as 256x256 PNGs, as the demo data set
draws them (DIR/<digit>/<index>.png): a folder for `neighbours`, `saliency`
and `run` to read."""

from pathlib import Path

import click
import numpy as np
from PIL import Image


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(min=1), default=120, show_default=True)
def main(out: Path, count: int) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))  # tvm_alexnet.data.Digits' split
    for i in order[int(0.8 * len(order)):][:count]:
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        folder = out / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).resize((256, 256), Image.BILINEAR).convert("RGB").save(folder / f"{i}.png")
    click.echo(f"wrote {min(count, len(order) - int(0.8 * len(order)))} images to {out}")


if __name__ == "__main__":
    main()
