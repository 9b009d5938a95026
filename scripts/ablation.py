"""The paper's ablations, small: each setting trained on the demo digits with
the same seed, data and recipe, its validation error per epoch compared.

    python scripts/ablation.py                          # 6 settings, 3 epochs, width 0.25
    python scripts/ablation.py --epochs 1 --setting paper --setting tanh --out /tmp/ablation.md

Settings: the paper's net (baseline); without LRN (the paper: +1.4%/1.2%
top-1/top-5 error); non-overlapping pooling z=s=2 (+0.4%/0.3%); tanh instead
of ReLU (its Figure 1: six times slower to 25% training error); the paper's
one-GPU net (half the kernels in conv1-conv4, +1.7%/1.2%); the ungrouped
single-tower net of tutorials. Each is compiled by TVM (forward and
backward), initialised by torch's rule from the same seed and trained by
tvm_alexnet.train with the demo's recipe (batch 32, lr 0.01 divided by 10
after two epochs without improvement, the paper's augmentation without colour
noise). Writes a Markdown table to docs/ablation.md and the validation error
per epoch to docs/ablation.png. The digits are 8x8 images scaled up, ten
classes, not ImageNet: a net of a quarter of the width learns them in a
few epochs, so differences of a point or two are within the noise of one
seed, and none of this measures what the paper measured.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import harness

from tvm_alexnet.files import save_figure

# name -> (variant, lrn, pool, activation); None: the variant's own
SETTINGS = {
    "paper": ("paper", None, None, None),
    "lrn-none": ("paper", "none", None, None),
    "pool-non-overlapping": ("paper", None, "non-overlapping", None),
    "tanh": ("paper", None, None, "tanh"),
    "onegpu": ("onegpu", None, None, None),
    "ungrouped": ("ungrouped", None, None, None),
}
WHAT = {
    "paper": "the paper's two-tower net, LRN, overlapping 3x3/2 pooling, ReLU (baseline)",
    "lrn-none": "`--lrn none`",
    "pool-non-overlapping": "`--pool non-overlapping` (2x2/2)",
    "tanh": "`--activation tanh`",
    "onegpu": "`--variant onegpu`: the paper's one-GPU net",
    "ungrouped": "`--variant ungrouped`: one tower, no groups (tutorials' net)",
}
BATCH = 32
CAVEAT = ("The demo digits (scikit-learn's 1,797 8x8 handwritten digits scaled to 256x256, 1,437 for training, "
          "360 for validation, ten classes) are not ImageNet: a narrow net learns them in a few epochs, one "
          "seed decides differences of a few images (one image is 0.28%), and the paper's ablations (LRN 1.4%, "
          "overlapping pooling 0.4%, two GPUs 1.7% top-1 on ImageNet) cannot show at this scale. The table "
          "checks that every switch trains, and how fast; it does not reproduce the paper's numbers.")


def train_setting(name: str, epochs: int, width: float, seed: int, workers: int, runs: Path, data) -> dict:
    import torch

    from tvm_alexnet import AlexNet
    from tvm_alexnet.train import METRICS, DivergedError, Recipe, train

    variant, lrn, pool, activation = SETTINGS[name]
    train_set, val_set = data
    torch.manual_seed(seed)
    model = AlexNet(variant, 10, width, lrn, pool, activation)
    model.reset_parameters("torch")
    start = time.perf_counter()
    model.compile("llvm", batch=BATCH)
    compile_s = time.perf_counter() - start
    recipe = Recipe(batch_size=BATCH, epochs=epochs, seed=seed, workers=workers)

    def log(line: str) -> None:
        if line.startswith("{"):
            h = json.loads(line)
            click.echo(f"  {name}: epoch {h['epoch']}: validation top-1 error {100 * h['val_top1_error']:.2f}%, "
                       f"train loss {h['train_loss']:.3f}, {h['seconds']:.0f} s", err=True)
        else:
            click.echo(f"  {name}: {line}", err=True)

    try:
        history, diverged = train(model, train_set, val_set, recipe, runs / name, progress=False, log=log), ""
    except DivergedError as e:  # a setting that diverges is a result too: its epochs up to then
        metrics = runs / name / METRICS
        history = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
        diverged = f"diverged in epoch {len(history) + 1}"
        click.echo(f"  {name}: {e}", err=True)
    return dict(name=name, params=model.spec.num_params, compile_s=compile_s, diverged=diverged,
                errors=[h["val_top1_error"] for h in history], seconds=[h["seconds"] for h in history])


def table(results: list[dict]) -> str:
    def percent(value) -> str:
        return f"{100 * value:.2f}" if value is not None else "-"

    rows = [[f"{r['name']}", WHAT[r["name"]], f"{r['params']:,}", percent(r["errors"][-1] if r["errors"] else None),
             percent(min(r["errors"], default=None)), len(r["errors"]),
             f"{sum(r['seconds']) / len(r['seconds']):.0f}" if r["seconds"] else "-", r["diverged"]]
            for r in results]
    return harness.markdown_table(["setting", "what", "parameters", "final val top-1 error (%)",
                                   "best (%)", "epochs", "s/epoch", "note"], rows, left=2)


def plot(results: list[dict], path: Path, width: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ax.plot(range(1, len(r["errors"]) + 1), [100 * e for e in r["errors"]], "o-", label=r["name"])
    ax.set(xlabel="epoch", ylabel="validation top-1 error (%)",
           title=f"Ablations on the demo digits (width {width}; not ImageNet)")
    ax.set_xticks(range(1, max((len(r["errors"]) for r in results), default=0) + 1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


@click.command()
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Epochs per setting. At width 0.25 on 2 busy cores an epoch took 40 s (paper) to 67 s "
                   "(tanh): 6 settings x 3 epochs, about 15 min.")
@click.option("--width", type=float, default=0.25, show_default=True, help="Channel multiplier of every net.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same for every setting.")
@click.option("--setting", "settings", multiple=True, type=click.Choice(list(SETTINGS)),
              help="Only these settings (repeatable; default all six).")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True, help="Data loading processes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=harness.ROOT / "docs/ablation.md",
              show_default=True, help="The Markdown table; the plot goes beside it (same name, .png).")
def main(epochs, width, seed, settings, workers, out):
    """Train each of the paper's ablations on the demo digits and compare their validation error."""
    from tvm_alexnet.data import Digits, FullImage
    from tvm_alexnet.preprocessing import PREPROCESSING

    names = list(settings) or list(SETTINGS)
    prep = FullImage(PREPROCESSING["paper"])  # every setting's variant subtracts the same mean
    data = Digits(True, prep), Digits(False, prep)
    info = harness.machine()
    results = []
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tvm-alexnet-ablation-") as runs:
        for i, name in enumerate(names):
            click.echo(f"{name} ({i + 1}/{len(names)}) ...", err=True)
            results.append(train_setting(name, epochs, width, seed, workers, Path(runs), data))
            if i == 0 and len(names) > 1:
                r = results[0]
                each = r["compile_s"] + sum(r["seconds"])
                click.echo(f"{name}: compiled in {r['compile_s']:.0f} s, {sum(r['seconds']) / epochs:.0f} s per "
                           f"epoch: the other {harness.plural(len(names) - 1, 'setting')} need about "
                           f"{(len(names) - 1) * each / 60:.0f} min more (tanh and ungrouped somewhat longer)",
                           err=True)
    total = time.perf_counter() - begin
    most = max((len(r["errors"]) for r in results), default=0)
    png = out.with_suffix(".png")
    plot(results, png, width)
    text = "\n\n".join([
        "# The paper's ablations on the demo digits",
        f"Every setting at width {width}, trained {epochs} epoch{'s' * (epochs != 1)} from seed {seed} on the same "
        f"batches (batch {BATCH}, lr 0.01 divided by 10 after two epochs without improvement, momentum 0.9, "
        "weight decay 5e-4, random 227 crops with flips, torch's initialisation), every layer compiled by TVM; "
        "the validation error is the centre crop's.",
        f"**Caveat.** {CAVEAT}",
        table(results),
        f"![validation error per epoch]({png.name})",
        "Validation top-1 error (%) per epoch:\n\n" + harness.markdown_table(
            ["setting", *[str(e + 1) for e in range(most)]],
            [[r["name"], *[f"{100 * e:.2f}" for e in r["errors"]], *["-"] * (most - len(r["errors"]))]
             for r in results]),
        f"$ {harness.command_line()}  \n{harness.machine_line(info)}; {total / 60:.1f} min in all",
    ]) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(text)
    click.echo(f"wrote {out} and {png}", err=True)


if __name__ == "__main__":
    main()
