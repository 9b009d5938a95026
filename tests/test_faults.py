"""Hostile input to the library's data, training, weights and conversion
code: every fault is one error naming its file, folder or option, found
before work is spent, and never a silently wrong number."""

import json
import math
import struct
import zlib

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, invoke, random_image

from tvm_alexnet import AlexNet, weights
from tvm_alexnet.augment import Augmented
from tvm_alexnet.data import (
    MAX_PIXELS,
    Digits,
    FullImage,
    ImageFolder,
    InputError,
    loader,
    random_images,
    unwrapped,
)
from tvm_alexnet.errors import UserError
from tvm_alexnet.evaluation import evaluate
from tvm_alexnet.files import check_writable
from tvm_alexnet.preprocessing import PREPROCESSING
from tvm_alexnet.train import (
    CHECKPOINT,
    METRICS,
    CheckpointError,
    DivergedError,
    Recipe,
    load_checkpoint,
    train,
)

SMALL = ["--width", "0.25", "--num-classes", "10"]
PREP = FullImage(PREPROCESSING["paper"])


class Unsafe:
    """An object torch.load(weights_only=True) refuses to unpickle."""


def digits(n: int, train_split: bool = True):
    return torch.utils.data.Subset(Digits(train_split, PREP), range(n))


def tiny_model(classes: int = 10) -> AlexNet:
    torch.manual_seed(0)
    model = AlexNet("paper", classes, 0.125)  # uncompiled: the torch reference, fast enough to train on
    model.reset_parameters("torch")
    return model


def quiet_train(model, train_set, out, resume=False, **recipe):
    recipe = Recipe(**{"batch_size": 4, "epochs": 1, "workers": 0, **recipe})
    return train(model, train_set, digits(4, False), recipe, out, resume=resume, progress=False,
                 log=lambda *_: None)


def png_header(path, width: int, height: int):
    """A PNG that declares width x height pixels and holds none: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def torchvision_state(classes: int = 10, width: float = 0.25) -> dict:
    state = AlexNet("torchvision", classes, width).state_dict()
    names = {ours: theirs for theirs, ours in weights.TORCHVISION_LAYERS.items()}
    return {f"{names[k.rpartition('.')[0]]}.{k.rpartition('.')[2]}": v for k, v in state.items()}


class Counting(torch.utils.data.Dataset):
    """A data set that counts reads and, from read `poison_after` on, returns NaN images."""

    def __init__(self, dataset, poison_after: int | None = None):
        self.dataset, self.poison_after, self.reads = dataset, poison_after, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads += 1
        x, label = self.dataset[index]
        if self.poison_after is not None and self.reads > self.poison_after:
            x = x * math.nan
        return x, label


# -- (4) an unwritable --out fails before training ------------------------------------------------


def test_unwritable_out_fails_before_any_training(tmp_path):
    check_writable(tmp_path / "new" / "folder", "checkpoints")  # made where it is missing
    assert (tmp_path / "new" / "folder").is_dir() and not list((tmp_path / "new" / "folder").iterdir())
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    train_set = Counting(digits(8))
    with pytest.raises(UserError, match=r"file/run: cannot write the checkpoints and metrics there"):
        quiet_train(tiny_model(), train_set, blocker / "run")
    with pytest.raises(UserError, match=r"file: cannot write"):
        quiet_train(tiny_model(), train_set, blocker)
    assert train_set.reads == 0


def test_read_only_out_fails_before_any_training(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    out = tmp_path / "ro"
    out.mkdir(mode=0o555)
    train_set = Counting(digits(8))
    with pytest.raises(UserError, match=r"ro: cannot write the checkpoints and metrics there \(Permission denied"):
        quiet_train(tiny_model(), train_set, out)
    assert train_set.reads == 0


# -- (8) non-finite numbers ---------------------------------------------------------------------------


def test_non_finite_weights_are_refused_on_load(tmp_path):
    from safetensors.torch import save_file

    model = AlexNet("paper", 10, 0.25)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc8.bias"][3] = math.nan
    save_file(state, tmp_path / "nan.safetensors", metadata=weights.metadata(model.spec, model.preprocessing))
    assert_one_line_error(invoke("run", "--weights", tmp_path / "nan.safetensors", "--random", "1", *SMALL),
                          "nan.safetensors", "'fc8.bias'", "non-finite")
    state["fc8.bias"][3] = 0
    state["conv2.weight"][0, 0, 0, 0] = math.inf
    torch.save(state, tmp_path / "inf.pt")
    with pytest.raises(UserError, match=r"inf\.pt: tensor 'conv2\.weight' holds non-finite values"):
        AlexNet.load(tmp_path / "inf.pt")
    with pytest.raises(UserError, match=r"x\.safetensors: not written: tensor 'conv2\.weight' holds non-finite"):
        weights.save(tmp_path / "x.safetensors", state, {})
    assert not (tmp_path / "x.safetensors").exists()


def test_checkpoint_with_non_finite_weights_or_momentum_is_refused(tmp_path):
    model = tiny_model()
    quiet_train(model, digits(4), tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    state["optimizer"]["state"][0]["momentum_buffer"][0] = math.inf
    torch.save(state, tmp_path / "momentum.pt")
    with pytest.raises(CheckpointError, match=r"momentum\.pt: the optimizer's momentum_buffer of 'conv1\.weight'"):
        load_checkpoint(tmp_path / "momentum.pt", tiny_model())
    state["model"]["fc7.weight"][1, 2] = math.nan
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan\.pt: tensor 'fc7\.weight' holds non-finite values"):
        load_checkpoint(tmp_path / "nan.pt", tiny_model())


def test_convert_refuses_non_finite_weights(tmp_path):
    state = torchvision_state()
    state["classifier.6.bias"][0] = math.nan
    torch.save(state, tmp_path / "tv.pth")
    assert_one_line_error(invoke("convert", tmp_path / "tv.pth"), "tv.pth", "non-finite")
    assert not (tmp_path / "tv.safetensors").exists()
    model = AlexNet("paper", 10, 0.25, lrn="caffe")
    layers = {}
    for layer in model.spec.layers:
        w, b = getattr(model, layer.name).weight.detach(), getattr(model, layer.name).bias.detach()
        w = w.permute(2, 3, 1, 0) if w.dim() == 4 else w.T  # Caffe-TensorFlow's HWIO and (in, out)
        layers[layer.name] = [w.numpy().copy(), b.numpy().copy()]
    layers["conv4"][1][5] = -np.inf
    np.save(tmp_path / "bvlc.npy", layers, allow_pickle=True)
    assert_one_line_error(invoke("convert", tmp_path / "bvlc.npy"), "bvlc.npy: conv4 biases", "non-finite")


@pytest.mark.parametrize("option, value", [("lr", math.nan), ("lr", math.inf), ("momentum", math.nan),
                                           ("weight_decay", math.inf), ("lr_factor", math.nan), ("lr", -1.0)])
def test_hyper_parameters_must_be_finite(option, value):
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UserError, match=f"{flag} {value}: expected a finite number"):
        Recipe(**{option: value})


def test_nan_learning_rate_is_one_error_naming_the_option(tmp_path):
    assert_one_line_error(invoke("train", "--demo", "--lr", "nan", "--out", tmp_path / "run"), "--lr nan")
    assert not (tmp_path / "run").exists()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train_set = Counting(digits(16), poison_after=8)  # steps 1 and 2 read 8 images, step 3 gets NaN
    with pytest.raises(DivergedError, match=r"epoch 1, step 3: the training loss is nan; stopped before the step; "
                                            r".*last\.pt holds the last good state \(epoch 1, step 2\)"):
        quiet_train(tiny_model(), train_set, tmp_path, checkpoint_every=1)
    state = load_checkpoint(tmp_path / CHECKPOINT, tiny_model())  # would refuse NaN weights
    assert (state["epoch"], state["step"]) == (0, 2)
    assert not (tmp_path / METRICS).exists()


# -- (9) decompression bombs ------------------------------------------------------------------------


def test_decompression_bomb_is_one_error_naming_the_file_and_the_limit(tmp_path):
    assert MAX_PIXELS == 50_000_000
    huge = png_header(tmp_path / "huge.png", 30000, 30000)  # over PIL's own limit: it raises on open
    assert_one_line_error(invoke("run", huge, *SMALL), "huge.png", "50,000,000 pixels", "decompression bomb")
    large = png_header(tmp_path / "large.png", 8000, 7000)  # 56 Mpixel: under PIL's limit, over ours
    assert_one_line_error(invoke("run", large, *SMALL), "large.png: image is 8000x7000", "50,000,000 pixels")


def test_decompression_bomb_in_a_data_set_is_skipped(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        random_image(tmp_path / name / "1.png")
    png_header(tmp_path / "a" / "0.png", 30000, 30000)
    dataset = ImageFolder(tmp_path, PREP)
    with pytest.warns(UserWarning, match=r"0\.png: image is over the limit of 50,000,000 pixels"):
        assert dataset[0] is None
    with pytest.warns(UserWarning, match="0.png"):
        x, label = Augmented(dataset, 227, seed=0)[0]  # training: the next image stands in
    assert x.shape == (3, 227, 227) and label == 0


# -- (10) data workers' errors ------------------------------------------------------------------------


class Broken(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise InputError(f"/data/{index}.png: broken")


def test_a_data_workers_error_is_its_own_message():
    batches = torch.utils.data.DataLoader(Broken(), batch_size=1, num_workers=1)
    with pytest.raises(InputError) as caught:
        list(unwrapped(batches))
    assert str(caught.value) == "/data/0.png: broken"
    with pytest.raises(InputError) as caught:
        evaluate(tiny_model(2), batches)
    assert str(caught.value) == "/data/0.png: broken"


def test_training_folder_with_no_readable_image_is_one_error_naming_it(tmp_path):
    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(2):
                if split == "train":
                    (tmp_path / split / name / f"{i}.jpg").write_bytes(b"not a jpeg")
                else:
                    random_image(tmp_path / split / name / f"{i}.png")
    result = invoke("train", "--data", tmp_path, "--width", "0.25", "--epochs", "1", "--batch-size", "2",
                    "--workers", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, f"{tmp_path / 'train'}: none of its 4 images can be read",
                          "a/0.jpg: not a readable image")
    assert "Traceback" not in result.stderr


# -- (11) evaluation skips unreadable images, never replaces them --------------------------------------


def test_evaluation_skips_and_counts_unreadable_images(tmp_path):
    for name, count in (("a", 2), ("b", 2)):
        (tmp_path / name).mkdir()
        for i in range(count):
            random_image(tmp_path / name / f"{i}.png")
    (tmp_path / "b" / "1.png").write_bytes(b"truncated")
    dataset = ImageFolder(tmp_path, PREP)
    with pytest.warns(UserWarning, match=r"b/1\.png: not a readable image"):
        assert dataset[3] is None  # not the next image in its place
    with pytest.warns(UserWarning):
        result = evaluate(tiny_model(2), loader(dataset, 2, 0))
    assert result["images"] == 3 and result["skipped"] == 1
    assert result["top1_error"] in (0, 1 / 3, 2 / 3, 1)


# -- (12) metrics after a resume -------------------------------------------------------------------------


def test_resumed_metrics_equal_uninterrupted_ones(tmp_path, monkeypatch):
    train_set, recipe = digits(12), {"batch_size": 2, "epochs": 1, "checkpoint_every": 2}  # 6 steps
    quiet_train(tiny_model(), train_set, tmp_path / "whole", **recipe)
    step, calls = torch.optim.SGD.step, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # after the checkpoint at step 4
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quiet_train(tiny_model(), train_set, tmp_path / "cut", **recipe)
    monkeypatch.setattr(torch.optim.SGD, "step", step)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT, tiny_model())["step"] == 4
    quiet_train(tiny_model(), train_set, tmp_path / "cut", resume=True, **recipe)
    whole, cut = ([json.loads(line) for line in (tmp_path / run / METRICS).read_text().splitlines()]
                  for run in ("whole", "cut"))
    assert len(whole) == len(cut) == 1
    for a, b in zip(whole, cut):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_top1_error", "val_top5_error", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-6), key


# -- (13) random images are drawn a batch at a time -------------------------------------------------------


def test_random_images_come_in_batches():
    batches = random_images(100_000, (3, 227, 227), 8, torch.Generator().manual_seed(0))
    first = next(batches)  # drawn alone: 100,000 images would take 62 GB
    assert first.shape == (8, 3, 227, 227) and first.dtype == torch.float32
    sizes = [len(b) for b in random_images(10, (3, 4, 4), 4)]
    assert sizes == [4, 4, 2]
    again = next(random_images(100_000, (3, 227, 227), 8, torch.Generator().manual_seed(0)))
    assert torch.equal(first, again)


# -- (14) errors name the file ------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, fragment", [
    ("variant", "vgg16", "unknown variant 'vgg16'"),
    ("width", "abc", "checkpoint metadata is malformed"),
    ("width", "nan", "width must be in (0, 4]"),
    ("num_classes", "0", "num_classes must be a positive integer"),
    ("preprocessing", '{"mean": [0, 0, 0], "std": [1, 0, 1], "scale": 1, "channels": "RGB"}',
     "malformed preprocessing"),
])
def test_checkpoint_metadata_errors_name_the_file(tmp_path, field, value, fragment):
    from safetensors.torch import save_file

    model = AlexNet("paper", 10, 0.25)
    metadata = {**weights.metadata(model.spec, model.preprocessing), field: value}
    save_file(model.state_dict(), tmp_path / "meta.safetensors", metadata=metadata)
    assert_one_line_error(invoke("run", "--weights", tmp_path / "meta.safetensors", "--random", "1"),
                          f"{tmp_path / 'meta.safetensors'}: ", fragment)


def test_torchvision_state_dict_errors_name_the_file(tmp_path):
    state = torchvision_state()
    del state["classifier.1.bias"]
    torch.save(state, tmp_path / "tv.pth")
    for args in (("run", "--weights", tmp_path / "tv.pth", "--random", "1"), ("convert", tmp_path / "tv.pth")):
        assert_one_line_error(invoke(*args), f"{tmp_path / 'tv.pth'} (torchvision state dict): missing tensor "
                                             "'fc6.bias'")


def test_checkpoint_errors_name_the_file_and_the_network(tmp_path):
    quiet_train(tiny_model(), digits(4), tmp_path)
    with pytest.raises(CheckpointError, match=r"last\.pt: checkpoint is for another network \(variant paper, "
                                              r"width 0\.125, lrn paper, pool overlapping, activation relu, 10 classes; this run: .*, 5 classes\)"):
        load_checkpoint(tmp_path / CHECKPOINT, tiny_model(5))
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    state["model"]["conv3.weight"] = state["model"]["conv3.weight"][:, :5]
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"shape\.pt: tensor 'conv3\.weight' has shape"):
        load_checkpoint(tmp_path / "shape.pt", tiny_model())


# -- (16) convert writes safetensors only under a .safetensors name -----------------------------------------


def test_convert_refuses_an_output_that_is_not_safetensors(tmp_path):
    torch.save(torchvision_state(), tmp_path / "tv.pth")
    assert_one_line_error(invoke("convert", tmp_path / "tv.pth", "-o", tmp_path / "out.pth"),
                          "out.pth: checkpoints are written as safetensors", "*.safetensors")
    assert not (tmp_path / "out.pth").exists()
    result = invoke("convert", tmp_path / "tv.pth", "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 0, result.output
    assert AlexNet.load(tmp_path / "out.safetensors").spec.variant == "torchvision"


# -- (17) resuming ---------------------------------------------------------------------------------------------


def test_resume_refuses_changed_hyper_parameters(tmp_path):
    quiet_train(tiny_model(), digits(4), tmp_path)
    with pytest.raises(CheckpointError, match=r"last\.pt: the run was started with --lr 0\.01, --seed 0 "
                                              r"\(now --lr 0\.02, --seed 3\)"):
        quiet_train(tiny_model(), digits(4), tmp_path, resume=True, lr=0.02, seed=3, epochs=2)
    history = quiet_train(tiny_model(), digits(4), tmp_path, resume=True, epochs=2, workers=1)  # may change
    assert [h["epoch"] for h in history] == [1, 2]


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"last\.pt: no checkpoint to resume from"):
        quiet_train(tiny_model(), digits(4), tmp_path, resume=True)
    assert not (tmp_path / CHECKPOINT).exists()


def test_unsafe_files_are_refused_without_torchs_advice(tmp_path):
    torch.save({"conv1.weight": Unsafe()}, tmp_path / "unsafe.pt")
    errors = []
    for load in (lambda p: load_checkpoint(p, tiny_model()), weights.load):
        with pytest.raises(UserError) as caught:
            load(tmp_path / "unsafe.pt")
        errors.append(str(caught.value))
    result = invoke("run", "--weights", tmp_path / "unsafe.pt", *SMALL)
    assert_one_line_error(result, "unsafe.pt")
    errors.append(result.stderr)
    for error in errors:
        assert "unsafe.pt" in error and "not plain tensors, such as test_faults.Unsafe" in error, error
        assert "refused for safety" in error and "weights_only" not in error and "trust" not in error, error
