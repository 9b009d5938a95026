"""Training and evaluation: the paper's recipe, read top to bottom.

SGD with momentum and weight decay on the compiled model (every layer's
forward and backward are TVM kernels, see autograd.py; torch's SGD or the
paper's own rule, optim.PaperSGD), the learning rate divided by 10 when the
validation error stops improving (three times at most), a checkpoint after
every epoch (and every `checkpoint_every` steps) from which `resume`
continues with the very same next batch, a metrics log (JSONL) and a plot.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from . import placement
from .augment import Augmented
from .data import loader as eval_loader
from .data import unwrapped
from .errors import UserError
from .evaluation import evaluate
from .files import check_writable, save_figure, write_atomic
from .model import AlexNet
from .optim import PaperSGD, PlateauSchedule
from .parallel import Parallel, RankError, all_sum, any_rank, shard
from .weights import check_state_dict, non_finite, unsafe_reason

CHECKPOINT = "last.pt"
METRICS = "metrics.jsonl"
PLOT = "training.png"


class CheckpointError(UserError):
    """A checkpoint that cannot be resumed from."""


class DivergedError(UserError):
    """The loss or the weights became non-finite; the last checkpoint is kept."""


# Options a resumed run must share with the checkpoint's: they shape the steps already taken.
# --epochs, --workers and --checkpoint-every may change.
RESUME_FIXED = ("batch_size", "lr", "momentum", "weight_decay", "lr_factor", "patience", "max_lr_drops", "update",
                "seed", "mean")
UPDATES = ("torch", "paper")


@dataclasses.dataclass
class Recipe:
    """Krizhevsky et al. 2012, section 5 (the defaults), plus the run's own settings."""

    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_factor: float = 0.1  # "divide the learning rate by 10 when the validation error rate stopped improving"
    patience: int = 1  # epochs without improvement tolerated before that
    max_lr_drops: int = 3  # the paper divided the rate three times in ~90 epochs
    update: str = "torch"  # torch: torch.optim.SGD; paper: optim.PaperSGD, the velocity holding the rate
    mean: str | None = None  # SHA-256 of the mean image file subtracted from the inputs (train --mean)
    epochs: int = 90
    seed: int = 0
    workers: int = 2
    checkpoint_every: int = 0  # steps; 0: only at the end of each epoch

    def __post_init__(self):
        """UserError naming the command-line option of a value out of range,
        non-finite ones included (NaN passes every comparison)."""
        floats = dict(lr=(0, math.inf, True), momentum=(0, 1, False), weight_decay=(0, math.inf, False),
                      lr_factor=(0, 1, True))
        for name, (low, high, low_open) in floats.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value <= high
                    and (value > low if low_open else value >= low)):
                raise UserError(f"{_option(name)} {value}: expected a finite number in "
                                f"{'(' if low_open else '['}{low}, {high if high < math.inf else 'inf'}"
                                f"{']' if high < math.inf else ')'}")
        if self.update not in UPDATES:
            raise UserError(f"--update {self.update}: expected one of {', '.join(UPDATES)}")
        for name, low in dict(batch_size=1, epochs=1, patience=0, max_lr_drops=0, workers=0,
                              checkpoint_every=0).items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise UserError(f"{_option(name)} {value}: expected an integer of at least {low}")


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's update rule: torch's SGD (fused: one pass over the weights per step, paper net 30 ms
    against foreach's 139; scripts/bench_sgd.py) or the paper's (optim.PaperSGD)."""
    if recipe.update == "paper":
        return PaperSGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           fused=True)


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


class EpochSampler(torch.utils.data.Sampler):
    """A permutation fixed by (seed, epoch), from position `start` on; with
    data parallelism, this rank's slice of every global batch of `batch`."""

    def __init__(self, size: int, seed: int, epoch: int, start: int = 0, batch: int = 1,
                 parallel: Parallel = Parallel()):
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))[start:]
        self.order = shard(order, batch, parallel)

    def __iter__(self):
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


def _save(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path, model: AlexNet, recipe: Recipe | None = None) -> dict:
    """A checkpoint's state, checked against `model` (and, given, the
    recipe: see RESUME_FIXED); one clear error naming the file otherwise.
    Non-finite weights or momenta are refused."""
    try:
        state = torch.load(path, map_location=placement.map_location(), weights_only=True)
        keys = {"model", "optimizer", "scheduler", "rng", "epoch", "step", "history", "network", "recipe"}
        if not isinstance(state, dict) or not keys <= set(state):
            raise ValueError(f"missing {', '.join(sorted(keys - set(state if isinstance(state, dict) else {})))}")
    except Exception as e:  # torch raises many types for truncated or foreign files
        reason = unsafe_reason(e) or (str(e).strip().splitlines()[-1] if isinstance(e, ValueError)
                                      else type(e).__name__)
        raise CheckpointError(f"{path}: not a tvm-alexnet training checkpoint ({reason})") from None
    ours, theirs = dataclasses.asdict(model.spec), _upgraded(state["network"])
    if theirs != ours:
        if not isinstance(theirs, dict):
            raise CheckpointError(f"{path}: the checkpoint's network record is malformed ({type(theirs).__name__})")
        raise CheckpointError(f"{path}: checkpoint is for another network ({_network(theirs)}; this run: "
                              f"{_network(ours)}); train with the same network options")
    if not isinstance(state["model"], dict):
        raise CheckpointError(f"{path}: the checkpoint's model state is a {type(state['model']).__name__}, "
                              "expected a dict of tensors")
    try:
        check_state_dict(model.spec, state["model"], source=str(path))
    except UserError as e:
        raise CheckpointError(str(e)) from None
    bad = non_finite(state["model"])
    if bad:
        raise CheckpointError(f"{path}: tensor {bad!r} holds non-finite values (nan or inf); refused")
    names = list(state["model"])
    optimizer_state = state["optimizer"].get("state", {}) if isinstance(state["optimizer"], dict) else {}
    for index, entry in optimizer_state.items():
        bad = non_finite(entry) if isinstance(entry, dict) else None
        if bad:
            name = names[index] if isinstance(index, int) and index < len(names) else index
            raise CheckpointError(f"{path}: the optimizer's {bad} of {name!r} holds non-finite values "
                                  "(nan or inf); refused")
    if recipe is not None and isinstance(state["recipe"], dict):
        changed = [(name, state["recipe"][name], getattr(recipe, name)) for name in RESUME_FIXED
                   if name in state["recipe"] and state["recipe"][name] != getattr(recipe, name)]
        if changed:
            raise CheckpointError(
                f"{path}: the run was started with "
                + ", ".join(f"{_option(name)} {old}" for name, old, _ in changed)
                + " (now " + ", ".join(f"{_option(name)} {new}" for name, _, new in changed) + "); "
                "resume with the run's options (only --epochs, --workers and --checkpoint-every may change), "
                "or train into another --out")
    return state


def _upgraded(record):
    """A network record from before pooling and activations were options, in today's terms."""
    if not isinstance(record, dict) or "pool" in record:
        return record
    record = dict(record, pool="overlapping")
    record["convs"] = tuple(dict(c, activation=c.get("activation", "relu")) for c in record.get("convs", ()))
    record["dense"] = tuple({k: v for k, v in dict(d, activation="relu" if d.get("relu") else None).items()
                             if k != "relu"} for d in record.get("dense", ()))
    return record


def _network(record: dict) -> str:
    """A recorded spec.Network (dataclasses.asdict) in the words of the network options."""
    try:
        classes = record["dense"][-1]["out_features"]
        activation = record["convs"][0].get("activation")
    except (KeyError, IndexError, TypeError, AttributeError):
        classes = activation = "?"
    return (f"variant {record.get('variant')}, width {record.get('width')}, lrn {record.get('lrn')}, "
            f"pool {record.get('pool')}, activation {activation}, {classes} classes")


def train(model: AlexNet, train_set, val_set, recipe: Recipe, out_dir: str | os.PathLike,
          resume: bool = False, pca=None, progress: bool = True, log=print,
          parallel: Parallel = Parallel()) -> list[dict]:
    """Train `model` (compiled or not) on `train_set` (256x256 images) with
    the recipe; checkpoints, metrics and the plot go to `out_dir`. Returns
    the metrics of every epoch. Under torchrun, `parallel` says how the
    ranks share the work (the model is then this rank's: data-parallel
    ranks hold the whole network, built for their slice of the batch; tower
    ranks a towers.DistributedTowerAlexNet for the whole batch).

    `resume` needs OUT/last.pt and the recipe it was started with (see
    RESUME_FIXED). A non-finite loss stops training before the step that
    would take it in (DivergedError), the last checkpoint kept."""
    out_dir = Path(out_dir)
    check_writable(out_dir, "checkpoints and metrics")
    device = placement.model_device(model)  # the compiled network's: the model, its momenta and batches go there
    placement.move(model, device)
    optimizer = make_optimizer(model.parameters(), recipe)
    scheduler = PlateauSchedule(optimizer, recipe.lr_factor, recipe.patience, recipe.max_lr_drops)
    stepper = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if parallel.mode == "data" else model
    epoch, step, history = 0, 0, []
    running = dict(seen=0, correct=0, loss=0.0, seconds=0.0)  # the epoch's sums before a resume
    torch.manual_seed(recipe.seed + parallel.data_rank)  # dropout masks: each data shard its own
    if resume and not (out_dir / CHECKPOINT).exists():
        raise CheckpointError(f"{out_dir / CHECKPOINT}: no checkpoint to resume from; "
                              "leave out --resume to start a new run")
    if resume:
        state = load_checkpoint(out_dir / CHECKPOINT, model, recipe)
        _load_states(model, optimizer, state, parallel)
        placement.move(model, device, optimizer)
        scheduler.load_state_dict(state["scheduler"], initial_lr=recipe.lr)
        rng = state["rng"]
        if parallel.rank < len(rng):  # a run resumed with more ranks seeds the new ones
            torch.set_rng_state(rng[parallel.rank])
        epoch, step, history = state["epoch"], state["step"], json.loads(state["history"])
        # Data-parallel ranks each add their own part and sum at the epoch's end: one holds the past.
        if step and isinstance(state.get("running"), dict) and parallel.data_rank == 0:
            running = {k: type(v)(state["running"].get(k, v)) for k, v in running.items()}
        log(f"resumed from {out_dir / CHECKPOINT}: epoch {epoch + 1}, step {step}")
    elif (out_dir / CHECKPOINT).exists():
        raise CheckpointError(f"{out_dir / CHECKPOINT} exists: pass --resume to continue it, or another --out")
    augmented = Augmented(train_set, model.spec.image_size, recipe.seed, pca)
    steps_per_epoch = len(train_set) // recipe.batch_size  # full batches only: the build is for one batch size
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_set)} training images make no batch of {recipe.batch_size}")
    local_batch = recipe.batch_size // parallel.data_shards
    # Loaders with their own generator: the global one draws the dropout masks, and
    # a loader would take a seed from it, so a resumed run would draw other masks.
    val_loader = eval_loader(val_set, local_batch, recipe.workers, pin_memory=placement.pin_memory(device),
                             generator=torch.Generator().manual_seed(recipe.seed))
    saved = [(epoch, step)] if resume else []

    def checkpoint(epoch: int, step: int, sums: tuple[float, ...] = (0, 0, 0.0, 0.0)) -> None:
        if any_rank(any(not torch.isfinite(p).all() for p in model.parameters()), parallel):
            when = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
            raise DivergedError(f"{when}: the weights became non-finite (nan or inf); "
                                f"stopped{_kept(saved, out_dir)}; try a lower --lr")
        seen, correct, loss, seconds = all_sum(list(sums[:3]), parallel) + [sums[3]]
        model_state, optimizer_state, rng = _gather_states(model, optimizer, parallel)
        if parallel.main:
            _save(out_dir / CHECKPOINT, dict(
                model=model_state, optimizer=optimizer_state, scheduler=scheduler.state_dict(), rng=rng,
                epoch=epoch, step=step, history=json.dumps(history), network=dataclasses.asdict(model.spec),
                recipe=dataclasses.asdict(recipe),
                running=dict(seen=int(seen), correct=int(correct), loss=loss, seconds=seconds)))
        saved.append((epoch, step))

    try:
        while epoch < recipe.epochs:
            augmented.epoch = epoch
            loader = torch.utils.data.DataLoader(
                augmented, batch_size=local_batch, drop_last=True, num_workers=recipe.workers,
                sampler=EpochSampler(len(augmented), recipe.seed, epoch, step * recipe.batch_size,
                                     recipe.batch_size, parallel),
                generator=torch.Generator().manual_seed(recipe.seed), pin_memory=placement.pin_memory(device))
            model.train()
            seen, correct, total_loss, before = running["seen"], running["correct"], running["loss"], \
                running["seconds"]
            running = dict(seen=0, correct=0, loss=0.0, seconds=0.0)
            start = time.perf_counter()
            bar = tqdm(unwrapped(loader), total=steps_per_epoch - step, desc=f"epoch {epoch + 1}/{recipe.epochs}",
                       disable=not (progress and parallel.main), unit="batch")
            for x, labels in bar:
                x, labels = placement.to_device((x, labels), device)
                logits = stepper(x)
                loss = F.cross_entropy(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                value = loss.item()
                if any_rank(not math.isfinite(value), parallel):  # before the step: the weights stay finite
                    raise DivergedError(
                        f"epoch {epoch + 1}, step {step + 1}: the training loss is "
                        f"{value if not math.isfinite(value) else 'non-finite on another rank'}; "
                        f"stopped before the step{_kept(saved, out_dir)}; try a lower --lr")
                optimizer.step()
                step += 1
                seen += len(labels)
                total_loss += value * len(labels)
                correct += (logits.argmax(1) == labels).sum().item()
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}",
                                img_s=f"{seen * parallel.data_shards / (time.perf_counter() - start):.1f}")
                if recipe.checkpoint_every and step % recipe.checkpoint_every == 0 and step < steps_per_epoch:
                    checkpoint(epoch, step, (seen, correct, total_loss, before + time.perf_counter() - start))
            seconds = before + time.perf_counter() - start
            total_loss, correct, seen = all_sum([total_loss, correct, seen], parallel)
            val = evaluate(model, val_loader)
            if scheduler.step(val["top1_error"]) and parallel.main:
                log(f"validation error not below {100 * scheduler.best:.2f}% for {recipe.patience + 1} epochs: "
                    f"learning rate now {optimizer.param_groups[0]['lr']:g} "
                    f"(drop {scheduler.drops} of at most {recipe.max_lr_drops})")
            history.append(dict(epoch=epoch + 1, train_loss=total_loss / max(seen, 1),
                                train_accuracy=correct / max(seen, 1), val_loss=val["loss"],
                                val_top1_error=val["top1_error"], val_top5_error=val["top5_error"],
                                lr=optimizer.param_groups[0]["lr"], images_per_s=seen / seconds, seconds=seconds))
            if parallel.main:
                log(json.dumps(history[-1]))
            epoch, step = epoch + 1, 0
            checkpoint(epoch, step)
            if parallel.main:
                write_atomic(out_dir / METRICS, "".join(json.dumps(h) + "\n" for h in history))
                plot(history, out_dir / PLOT)
    except (RuntimeError, dist.DistError) as e:
        if parallel.mode == "single":
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RankError(f"rank {parallel.rank}: a collective failed, another rank has probably stopped ({reason}); "
                        f"the last checkpoint in {out_dir} is intact") from None
    return history


def _kept(saved: list[tuple[int, int]], out_dir: Path) -> str:
    if not saved:
        return ", no checkpoint written yet"
    epoch, step = saved[-1]
    where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
    return f"; {out_dir / CHECKPOINT} holds the last good state ({where})"


def _gather_states(model, optimizer, parallel: Parallel) -> tuple[dict, dict, list[torch.Tensor]]:
    """Model and optimizer state in the single-device model's format, and
    every rank's RNG state (collectives under torchrun: every rank calls it)."""
    rng = [torch.get_rng_state()]
    if parallel.mode != "single":
        rng = [None] * parallel.world
        dist.all_gather_object(rng, torch.get_rng_state())
    if parallel.mode == "towers":
        return model.single_state_dict(), model.single_optimizer_state_dict(optimizer), rng
    return model.state_dict(), optimizer.state_dict(), rng


def _load_states(model, optimizer, state: dict, parallel: Parallel) -> None:
    if parallel.mode == "towers":
        model.load_single_state_dict(state["model"])
        model.load_single_optimizer_state_dict(optimizer, state["optimizer"])
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    if isinstance(optimizer, torch.optim.SGD):
        for group in optimizer.param_groups:  # a checkpoint saved before SGD was fused would turn it off
            group["fused"] = True


def plot(history: list[dict], path: Path) -> None:
    """Loss and error per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    left.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    left.set(xlabel="epoch", ylabel="cross-entropy loss (nats)", title="loss")
    right.plot(epochs, [100 * (1 - h["train_accuracy"]) for h in history], "o-", label="train top-1")
    right.plot(epochs, [100 * h["val_top1_error"] for h in history], "o-", label="validation top-1")
    right.plot(epochs, [100 * h["val_top5_error"] for h in history], "o--", label="validation top-5")
    right.set(xlabel="epoch", ylabel="error (%)", title="error", ylim=(0, 100))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)

