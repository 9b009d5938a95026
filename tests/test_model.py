"""The torch module: parameter names, checkpoints, torchvision weights, bad input."""

import os
import stat

import pytest
import reference as ref
import torch
from helpers import TorchvisionAlexNet, params_of, randomize

from tvm_alexnet import AlexNet
from tvm_alexnet.errors import UserError
from tvm_alexnet.files import replaced_atomically, write_atomic
from tvm_alexnet.runtime import batch_chunks
from tvm_alexnet.weights import WeightsError


def test_parameter_names_and_layout():
    model = AlexNet("paper")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == [f"{layer}.{p}" for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                                                           "fc8") for p in ("weight", "bias")]
    assert shapes["conv2.weight"] == (256, 48, 5, 5)
    assert shapes["fc6.weight"] == (4096, 9216)
    assert sum(p.numel() for p in model.parameters()) == 60_965_224


def test_paper_initialisation():
    model = AlexNet("paper")
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            assert abs(p.std().item() - 0.01) < 1e-3, name
        else:
            one = name.split(".")[0] in ("conv2", "conv4", "conv5", "fc6", "fc7")
            assert torch.all(p == (1.0 if one else 0.0)), name


def test_safetensors_round_trip(tmp_path):
    model = randomize(AlexNet("paper", width=0.25, num_classes=10, lrn="caffe"), seed=1)
    path = tmp_path / "ckpt.safetensors"
    model.save(path)
    loaded = AlexNet.load(path)
    assert (loaded.spec.variant, loaded.spec.num_classes, loaded.spec.width, loaded.spec.lrn) == \
        ("paper", 10, 0.25, "caffe")
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


@pytest.mark.parametrize("variant, switches", [
    ("paper", dict(lrn="none", pool="non-overlapping", activation="tanh")),
    ("onegpu", dict(activation="tanh")),
    ("torchvision", dict(pool="non-overlapping")),
], ids=["paper-ablations", "onegpu-tanh", "torchvision-non-overlapping"])
def test_checkpoints_record_the_ablations(tmp_path, variant, switches):
    """A model saved with LRN off, other pools or tanh loads as the same network,
    whatever the loader's defaults (the parameters alone could not tell)."""
    model = randomize(AlexNet(variant, width=0.25, num_classes=10, **switches), seed=1).eval()
    model.save(tmp_path / "ckpt.safetensors")
    loaded = AlexNet.load(tmp_path / "ckpt.safetensors", lrn="paper", pool="overlapping", activation="relu").eval()
    assert loaded.spec == model.spec
    x = torch.randn(2, *model.spec.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_checkpoints_from_before_the_switches_load_with_the_defaults(tmp_path):
    from safetensors.torch import save_file

    model = randomize(AlexNet("paper", width=0.25, num_classes=10), seed=1)
    metadata = {"variant": "paper", "num_classes": "10", "width": "0.25", "lrn": "paper"}
    save_file(model.state_dict(), tmp_path / "old.safetensors", metadata=metadata)
    assert AlexNet.load(tmp_path / "old.safetensors").spec == model.spec


def test_saved_files_get_the_mode_the_umask_gives_and_nothing_half_written(tmp_path):
    """Atomic writes go through a temporary file, which mkstemp makes 0600."""
    model = AlexNet("paper", width=0.25, num_classes=10)
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "ckpt.safetensors")
        write_atomic(tmp_path / "report.json", "{}")
        with pytest.raises(RuntimeError), replaced_atomically(tmp_path / "report.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    finally:
        os.umask(old)
    for name in ("ckpt.safetensors", "report.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert (tmp_path / "report.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors", "report.json"]  # no temporaries left


def test_torch_state_dict_loads_with_weights_only(tmp_path):
    model = randomize(AlexNet("paper", width=0.25, num_classes=10), seed=2)
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    loaded = AlexNet.load(path, width=0.25)
    assert torch.equal(loaded.fc8.weight, model.fc8.weight)


def test_from_torchvision_matches_torchvision(rng):
    torch.manual_seed(0)
    tv = TorchvisionAlexNet().eval()
    model = AlexNet.from_torchvision(tv.state_dict()).eval().compile("llvm")
    x = torch.from_numpy(rng.standard_normal((2, 3, 224, 224))).float()
    with torch.no_grad():
        expected = tv.double()(x.double()).numpy()
        out = model(x).numpy()
    assert ref.rel_error(out, expected) < 1e-5
    assert ref.rel_error(out, ref.forward(model.spec, params_of(model), x.double().numpy())) < 1e-5


def test_torchvision_pth_file_loads(tmp_path):
    tv = TorchvisionAlexNet(num_classes=10)
    torch.save(tv.state_dict(), tmp_path / "alexnet.pth")
    model = AlexNet.load(tmp_path / "alexnet.pth")
    assert model.spec.variant == "torchvision" and model.spec.num_classes == 10
    assert torch.equal(model.conv2.weight, tv.features[3].weight)


def test_wrong_shape_names_tensor_and_both_shapes():
    state = AlexNet("paper").state_dict()
    state["conv2.weight"] = torch.zeros(256, 96, 5, 5)
    with pytest.raises(WeightsError, match=r"'conv2.weight' has shape \(256, 96, 5, 5\), expected \(256, 48, 5, 5\)"):
        AlexNet("paper").load_state_dict(state)


def test_missing_and_unexpected_tensors():
    state = AlexNet("paper").state_dict()
    del state["fc7.bias"]
    with pytest.raises(WeightsError, match=r"missing tensor 'fc7.bias' \(expected shape \(4096,\)\)"):
        AlexNet("paper").load_state_dict(state)
    state = AlexNet("paper").state_dict()
    state["fc9.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="unexpected tensor 'fc9.weight'"):
        AlexNet("paper").load_state_dict(state)


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        AlexNet.load(path)


def test_bad_input_shape(compiled):
    model = compiled("paper", width=0.25, num_classes=10)
    with pytest.raises(UserError, match=r"input has shape \(2, 3, 224, 224\), expected \(N, 3, 227, 227\)"):
        model(torch.randn(2, 3, 224, 224))
    with pytest.raises(UserError, match=r"expected \(N, 3, 227, 227\)"):
        model(torch.randn(2, 1, 227, 227))


def test_misaligned_input_is_copied_not_crashed(compiled, rng):
    model = compiled("paper", width=0.25, num_classes=10)
    flat = torch.from_numpy(rng.standard_normal(1 + 2 * 3 * 227 * 227)).float()
    x = flat[1:].view(2, 3, 227, 227)  # 4 bytes off a 64-byte boundary
    assert x.data_ptr() % 64 != 0
    with torch.no_grad():
        out = model(x)
    assert ref.rel_error(out.numpy(), ref.forward(model.spec, params_of(model), x.double().numpy())) < 1e-5


@pytest.mark.parametrize("n, fixed, chunks", [
    (32, [1, 32], [(32, 32)]),
    (70, [1, 32], [(32, 32), (32, 32), (6, None)]),
    (33, [1, 32], [(32, 32), (1, 1)]),
    (5, [1, 32], [(5, None)]),
    (5, [], [(5, None)]),
    (9, [2, 4], [(4, 4), (4, 4), (1, None)]),
])
def test_batch_chunks(n, fixed, chunks):
    assert batch_chunks(n, fixed) == chunks
