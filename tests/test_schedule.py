"""The paper's learning-rate schedule and update rule (optim.py), and training with a mean image."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tvm_alexnet import AlexNet, lab, mean_image
from tvm_alexnet.cli.train import _data_sets
from tvm_alexnet.data import Digits, FullImage
from tvm_alexnet.optim import PaperSGD, PlateauSchedule
from tvm_alexnet.preprocessing import PREPROCESSING, Preprocessing
from tvm_alexnet.train import (
    CHECKPOINT,
    CheckpointError,
    Recipe,
    load_checkpoint,
    train,
)


def _schedule(patience=1, max_drops=3, lr=0.01):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    return optimizer, PlateauSchedule(optimizer, 0.1, patience, max_drops)


def test_rate_divided_after_patience_epochs_without_improvement_at_most_max_times():
    optimizer, schedule = _schedule(patience=1, max_drops=3)
    errors = [0.9, 0.8, 0.81, 0.7,  # one noisy epoch: tolerated
              0.7, 0.72,  # two without improvement (equal is not better): drop 1
              0.6, 0.65, 0.66,  # drop 2
              0.61, 0.62,  # drop 3
              0.7, 0.7, 0.7, 0.7, 0.7]  # no more: capped
    dropped = [schedule.step(e) for e in errors]
    assert [i for i, d in enumerate(dropped) if d] == [5, 8, 10]
    assert schedule.drops == 3 and schedule.best == 0.6
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_patience_zero_drops_on_every_bad_epoch_and_no_drops_with_max_zero():
    optimizer, schedule = _schedule(patience=0, max_drops=2)
    assert [schedule.step(e) for e in (0.5, 0.6, 0.4, 0.5, 0.5)] == [False, True, False, True, False]
    optimizer, schedule = _schedule(patience=0, max_drops=0)
    assert not any(schedule.step(e) for e in (0.5, 0.6, 0.7))
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_old_reduce_on_plateau_state_counts_its_drops():
    optimizer, schedule = _schedule(lr=1e-4)
    schedule.load_state_dict({"best": 0.3, "num_bad_epochs": 1, "factor": 0.1}, initial_lr=0.01)
    assert (schedule.drops, schedule.best, schedule.since) == (2, 0.3, 1)


def test_paper_update_follows_the_formula_in_float64_through_a_rate_change():
    torch.manual_seed(0)
    w0 = [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]  # a weight and a bias
    params = [w.clone().requires_grad_() for w in w0]
    optimizer = PaperSGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    sgd_params = [w.clone().requires_grad_() for w in w0]
    sgd = torch.optim.SGD(sgd_params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    w, v = [x.clone() for x in w0], [torch.zeros_like(x) for x in w0]
    rates = [0.1, 0.1, 0.1, 0.01, 0.01]  # divided by 10 before the fourth step
    for step, lr in enumerate(rates):
        grads = [torch.randn_like(x) for x in w0]
        for group in (*optimizer.param_groups, *sgd.param_groups):
            group["lr"] = lr
        for p, q, g in zip(params, sgd_params, grads):
            p.grad, q.grad = g.clone(), g.clone()
        optimizer.step()
        sgd.step()
        for i, g in enumerate(grads):  # the paper's rule, biases decayed too
            v[i] = 0.9 * v[i] - 5e-4 * lr * w[i] - lr * g
            w[i] = w[i] + v[i]
            assert torch.allclose(params[i].detach(), w[i], rtol=0, atol=1e-12), (step, i)
            assert torch.allclose(optimizer.state[params[i]]["velocity"], v[i], rtol=0, atol=1e-12)
            same = torch.allclose(params[i].detach(), sgd_params[i].detach(), rtol=0, atol=1e-12)
            # torch's SGD takes the same steps at a constant rate, other ones right after the drop
            assert same == (step < 3), (step, i)
            if step < 3:
                assert torch.allclose(v[i], -lr * sgd.state[sgd_params[i]]["momentum_buffer"], atol=1e-12)


def _random_sets(train_images=8, val_images=4, classes=3):
    """256x256 tensors and labels: train() on an uncompiled network runs torch's reference ops."""
    gen = torch.Generator().manual_seed(0)

    def make(n):
        return torch.utils.data.TensorDataset(torch.randn(n, 3, 256, 256, generator=gen) * 50,
                                              torch.arange(n) % classes)

    return make(train_images), make(val_images)


def _tiny_model():
    torch.manual_seed(0)
    model = AlexNet("paper", 3, 0.0625)
    model.reset_parameters("torch")
    return model


def _recipe(**changes):
    # a rate too small to change the validation error: the second epoch is one without improvement
    return Recipe(**{**dict(batch_size=4, lr=1e-5, epochs=2, workers=0, patience=0, max_lr_drops=1,
                            update="paper", mean="ab" * 32), **changes})


@pytest.mark.parametrize("update", ["paper", "torch"])
def test_schedule_and_velocity_survive_a_checkpoint_round_trip(tmp_path, update):
    train_set, val_set = _random_sets()
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(_tiny_model(), train_set, val_set, _recipe(epochs=3, update=update), whole, progress=False,
          log=lambda *_: None)
    train(_tiny_model(), train_set, val_set, _recipe(epochs=2, update=update), parts, progress=False,
          log=lambda *_: None)
    state = load_checkpoint(parts / CHECKPOINT, _tiny_model(), _recipe(update=update))
    assert set(state["scheduler"]) == {"drops", "best", "since"}
    assert state["recipe"]["mean"] == "ab" * 32 and state["recipe"]["update"] == update
    if update == "paper":
        assert all("velocity" in entry for entry in state["optimizer"]["state"].values())
    with pytest.raises(CheckpointError, match="--max-lr-drops 1 .*now --max-lr-drops 3"):
        train(_tiny_model(), train_set, val_set, _recipe(epochs=3, max_lr_drops=3, update=update), parts,
              resume=True, progress=False, log=lambda *_: None)
    with pytest.raises(CheckpointError, match="--mean"):
        train(_tiny_model(), train_set, val_set, _recipe(epochs=3, mean=None, update=update), parts,
              resume=True, progress=False, log=lambda *_: None)
    train(_tiny_model(), train_set, val_set, _recipe(epochs=3, update=update), parts, resume=True, progress=False,
          log=lambda *_: None)
    a, b = (torch.load(d / CHECKPOINT, weights_only=True) for d in (whole, parts))
    assert a["scheduler"] == b["scheduler"]
    assert [h["lr"] for h in json.loads(a["history"])] == [h["lr"] for h in json.loads(b["history"])] \
        == pytest.approx([1e-5, 1e-6, 1e-6])  # divided once, then capped
    assert a["scheduler"]["drops"] == 1
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_mean_image_is_subtracted_from_the_training_images_and_kept_with_the_weights(tmp_path):
    rng = np.random.default_rng(0)
    mean = rng.uniform(0, 255, (3, 256, 256))
    mean_image.save_mean(tmp_path / "mean.npy", mean)
    train_set, val_set, _, prep = _data_sets(None, True, "paper", tmp_path / "mean.npy")
    assert train_set.transform.prep is prep and val_set.transform.prep is prep
    x, label = train_set[0]
    plain = Digits(True, FullImage(Preprocessing(mean=(0.0, 0.0, 0.0))))  # the raw 256x256 pixels
    raw, same = plain[0]
    assert same == label
    assert torch.allclose(x, raw - torch.from_numpy(mean).float(), atol=1e-3)
    # the weights keep the mean image and its file's record; loaded, they subtract it again
    model = _tiny_model()
    model.preprocessing = prep
    model.mean_image_file = dict(path=str(tmp_path / "mean.npy"), sha256=lab.file_digest(tmp_path / "mean.npy"))
    model.save(tmp_path / "w.safetensors")
    loaded = AlexNet.load(tmp_path / "w.safetensors")
    assert loaded.mean_image_file == model.mean_image_file
    assert loaded.preprocessing.same_as(prep)
    np.testing.assert_allclose(loaded.preprocessing.mean_image, mean, rtol=1e-7)
    assert loaded.preprocessing.mean == pytest.approx(tuple(mean.mean(axis=(1, 2))))
    img = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    centre = (np.asarray(img, np.float64).transpose(2, 0, 1) - mean)[:, 14:241, 14:241]  # 227 of 256
    got = loaded.preprocessing(img.crop((14, 14, 241, 241)))
    assert np.linalg.norm(got.numpy() - centre) / np.linalg.norm(centre) < 1e-6
