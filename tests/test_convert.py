"""Pretrained-weight import: bvlc_alexnet.npy and torchvision .pth against
float64 references that apply each source's own conventions, safe unpickling,
ImageNet-style evaluation inputs."""

import pickle
import re

import numpy as np
import pytest
import torch
from helpers import TorchvisionAlexNet, assert_one_line_error, invoke
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from tvm_alexnet import AlexNet, imagenet
from tvm_alexnet.convert import read_bvlc_npy
from tvm_alexnet.data import InputError, load_image, validation_set
from tvm_alexnet.preprocessing import CAFFE, PREPROCESSING
from tvm_alexnet.weights import WeightsError

# bvlc_alexnet.npy at width 0.25: (kernel, in channels per group, out channels, groups) per conv.
BVLC_CONVS = {"conv1": (11, 3, 24, 1), "conv2": (5, 12, 64, 2), "conv3": (3, 64, 96, 1),
              "conv4": (3, 48, 96, 2), "conv5": (3, 48, 64, 2)}
BVLC_DENSE = {"fc6": (6 * 6 * 64, 1024), "fc7": (1024, 1024), "fc8": (1024, 1000)}


def bvlc_layers(seed: int) -> dict[str, list[np.ndarray]]:
    """Random weights in the file's layout (HWIO convs, (in, out) dense), He-scaled."""
    rng = np.random.default_rng(seed)
    layers = {}
    for name, (k, cin, cout, _) in BVLC_CONVS.items():
        layers[name] = [rng.standard_normal((k, k, cin, cout)) * (2 / (k * k * cin)) ** 0.5,
                        rng.standard_normal(cout) * 0.1]
    for name, (fin, fout) in BVLC_DENSE.items():
        layers[name] = [rng.standard_normal((fin, fout)) * (2 / fin) ** 0.5, rng.standard_normal(fout) * 0.1]
    return {name: [w.astype(np.float32), b.astype(np.float32)] for name, (w, b) in layers.items()}


# -- the float64 reference: Kratzert's TensorFlow AlexNet, in numpy, NHWC ------------------------


def tf_conv(x, w, b, stride, groups):
    """tf.nn.conv2d per group (inputs and HWIO weights split on the channel
    axes), SAME padding for stride 1 and VALID for conv1, then bias and ReLU."""
    k = w.shape[0]
    if stride == 1:
        x = np.pad(x, ((0, 0), ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2), (0, 0)))
    outs = []
    for xg, wg in zip(np.split(x, groups, axis=3), np.split(w, groups, axis=3)):
        windows = sliding_window_view(xg, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # N, H, W, C, kh, kw
        outs.append(np.einsum("nhwcij,ijco->nhwo", windows, wg))
    return np.maximum(np.concatenate(outs, axis=3) + b, 0)


def tf_lrn(x, radius=2, alpha=2e-5, beta=0.75, bias=1.0):
    """tf.nn.local_response_normalization: a / (bias + alpha * sum_{c-r..c+r} a^2)^beta."""
    squares = np.pad(x ** 2, ((0, 0), (0, 0), (0, 0), (radius, radius)))
    window = sum(squares[..., i:i + x.shape[3]] for i in range(2 * radius + 1))
    return x / (bias + alpha * window) ** beta


def tf_max_pool(x):
    return sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-2, -1))


def caffe_reference(layers, rgb_images):
    """Logits for uint8 RGB images (N, 227, 227, 3) as Kratzert's code computes
    them: ImageNet mean subtracted, RGB -> BGR, conv(+ReLU) -> LRN -> pool."""
    p = {name: [a.astype(np.float64) for a in arrays] for name, arrays in layers.items()}
    x = (rgb_images.astype(np.float64) - [123.68, 116.779, 103.939])[..., ::-1]
    x = tf_max_pool(tf_lrn(tf_conv(x, *p["conv1"], 4, 1)))
    x = tf_max_pool(tf_lrn(tf_conv(x, *p["conv2"], 1, 2)))
    x = tf_conv(x, *p["conv3"], 1, 1)
    x = tf_conv(x, *p["conv4"], 1, 2)
    x = tf_max_pool(tf_conv(x, *p["conv5"], 1, 2))
    x = x.reshape(len(x), -1)  # (H, W, C) order
    x = np.maximum(x @ p["fc6"][0] + p["fc6"][1], 0)
    x = np.maximum(x @ p["fc7"][0] + p["fc7"][1], 0)
    return x @ p["fc8"][0] + p["fc8"][1]


def rel_error(out, ref):
    return np.linalg.norm(np.asarray(out, np.float64) - ref) / np.linalg.norm(ref)


def save_images(folder, count, size, rng):
    folder.mkdir(exist_ok=True)
    pixels = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    paths = [folder / f"img{i}.png" for i in range(count)]
    for path, p in zip(paths, pixels):
        Image.fromarray(p).save(path)
    return paths, pixels


@pytest.fixture(scope="module")
def bvlc(tmp_path_factory):
    """(layers, bvlc_alexnet.npy, converted checkpoint)."""
    folder = tmp_path_factory.mktemp("bvlc")
    layers = bvlc_layers(seed=1)
    np.save(folder / "bvlc_alexnet.npy", layers, allow_pickle=True)
    result = invoke("convert", folder / "bvlc_alexnet.npy")
    assert result.exit_code == 0, result.output
    return layers, folder / "bvlc_alexnet.npy", folder / "bvlc_alexnet.safetensors"


def test_bvlc_npy_matches_caffe_reference(bvlc, tmp_path, rng):
    layers, _, checkpoint = bvlc
    model = AlexNet.load(checkpoint).eval()
    assert (model.spec.variant, model.spec.lrn, model.spec.width, model.spec.num_classes) == \
        ("paper", "caffe", 0.25, 1000)
    assert model.preprocessing == CAFFE
    model.compile("llvm")
    paths, pixels = save_images(tmp_path, 2, 227, rng)
    x = torch.stack([load_image(p, 227, model.preprocessing, resize=False) for p in paths])
    with torch.no_grad():
        out = model(x).numpy()
    assert rel_error(out, caffe_reference(layers, pixels)) < 1e-5


def test_run_prints_imagenet_names_of_converted_weights(bvlc, tmp_path, rng):
    layers, _, checkpoint = bvlc
    (path,), pixels = save_images(tmp_path, 1, 227, rng)
    logits = caffe_reference(layers, pixels)[0]
    result = invoke("run", "--weights", checkpoint, path, "--no-resize")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    printed = [int(i) for i in re.findall(r"\((\d+)\)", line)]
    assert len(printed) == 5, line
    for i in printed:
        assert f"{imagenet.names()[i]} ({i})" in line, line
    # Random weights leave near-ties among the top five (float32 may swap them),
    # so the printed classes must hold the reference's five largest logits, in order.
    top5 = np.sort(logits)[::-1][:5]
    assert np.abs(logits[printed] - top5).max() < 1e-4 * np.abs(top5).max(), (line, top5, logits[printed])


def test_eval_with_label_file(bvlc, tmp_path, rng):
    """Labels set to the reference's centre-crop prediction: centre top-1 error must be 0."""
    layers, _, checkpoint = bvlc
    paths, pixels = save_images(tmp_path / "val", 3, 256, rng)
    top = (256 - 227) // 2
    labels = caffe_reference(layers, pixels[:, top:top + 227, top:top + 227]).argmax(1)
    wnids = {i: n for n, i in imagenet.wordnet_index().items()}
    lines = [f"{p.name} {wnids[label] if i % 2 else label}" for i, (p, label) in enumerate(zip(paths, labels))]
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    result = invoke("eval", "--weights", checkpoint, "--data", tmp_path / "val", "--labels", tmp_path / "val.txt",
                    "--workers", 0, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    centre = next(line for line in result.stdout.splitlines() if "centre" in line)
    assert [cell.strip() for cell in centre.split("│")][2] == "0.00%", result.stdout
    assert any("10-crop" in line for line in result.stdout.splitlines())


def test_python2_style_pickle_reads(tmp_path):
    layers = bvlc_layers(seed=2)
    array = np.array(layers, dtype=object)
    with open(tmp_path / "old.npy", "wb") as f:  # np.save, but with the protocol of Python 2 era files
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
        pickle.dump(array, f, protocol=2)
    read = read_bvlc_npy(tmp_path / "old.npy")
    assert sorted(read) == sorted(layers)
    for name in layers:
        for a, b in zip(read[name], layers[name]):
            assert np.array_equal(a, b), name


class CreatesMarker:
    """Unpickling this runs code: it creates the file `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').close()",)


def test_malicious_npy_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    layers = bvlc_layers(seed=3)
    layers["conv1"] = [CreatesMarker(marker), layers["conv1"][1]]
    np.save(tmp_path / "evil.npy", layers, allow_pickle=True)
    np.load(tmp_path / "evil.npy", allow_pickle=True)  # the file is really malicious: numpy runs its code
    assert marker.exists()
    marker.unlink()
    with pytest.raises(WeightsError, match="refused to unpickle builtins.exec"):
        read_bvlc_npy(tmp_path / "evil.npy")
    assert_one_line_error(invoke("convert", tmp_path / "evil.npy"), "evil.npy", "builtins.exec")
    assert not marker.exists()
    assert not (tmp_path / "evil.safetensors").exists()


def test_malicious_pth_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"features.0.weight": CreatesMarker(marker)}, tmp_path / "evil.pth")
    assert_one_line_error(invoke("convert", tmp_path / "evil.pth"), "evil.pth", "not a readable torch checkpoint")
    assert not marker.exists()


def test_bvlc_errors_name_the_layer_and_shapes(tmp_path):
    layers = bvlc_layers(seed=4)
    layers["conv2"][0] = layers["conv2"][0][:, :, :5]
    np.save(tmp_path / "shape.npy", layers, allow_pickle=True)
    assert_one_line_error(invoke("convert", tmp_path / "shape.npy"),
                          "conv2 weights (HWIO)", "(5, 5, 5, 64)", "(5, 5, 12, 64)")
    del layers["conv3"]
    np.save(tmp_path / "missing.npy", layers, allow_pickle=True)
    assert_one_line_error(invoke("convert", tmp_path / "missing.npy"), "missing layer 'conv3'")
    data = (tmp_path / "shape.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(data[:len(data) // 2])
    assert_one_line_error(invoke("convert", tmp_path / "truncated.npy"), "truncated.npy", "not a readable")
    (tmp_path / "junk.npy").write_bytes(b"junk" * 20)
    assert_one_line_error(invoke("convert", tmp_path / "junk.npy"), "junk.npy", "not a .npy file")
    np.save(tmp_path / "array.npy", np.zeros((2, 3)))
    assert_one_line_error(invoke("convert", tmp_path / "array.npy"), "float64 array of shape (2, 3)")


def test_convert_keeps_an_existing_output(bvlc, tmp_path):
    _, npy, _ = bvlc
    out = tmp_path / "kept.safetensors"
    out.write_bytes(b"precious")
    assert_one_line_error(invoke("convert", npy, "-o", out), "kept.safetensors exists", "--force")
    assert out.read_bytes() == b"precious"


def test_torchvision_pth_matches_torchvision_reference(tmp_path, rng):
    torch.manual_seed(5)
    tv = TorchvisionAlexNet().eval()
    torch.save(tv.state_dict(), tmp_path / "alexnet.pth")
    result = invoke("convert", tmp_path / "alexnet.pth", "-o", tmp_path / "tv.safetensors")
    assert result.exit_code == 0, result.output
    model = AlexNet.load(tmp_path / "tv.safetensors").eval()
    assert model.spec.variant == "torchvision" and model.preprocessing == PREPROCESSING["torchvision"]
    model.compile("llvm")
    paths, pixels = save_images(tmp_path, 2, 224, rng)
    x = torch.stack([load_image(p, 224, model.preprocessing, resize=False) for p in paths])
    # torchvision's transforms: ToTensor (/255), Normalize(ImageNet mean, std).
    normalised = (torch.from_numpy(pixels).double().permute(0, 3, 1, 2) / 255
                  - torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)[:, None, None]) \
        / torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)[:, None, None]
    with torch.no_grad():
        expected = tv.double()(normalised).numpy()
        out = model(x).numpy()
    assert rel_error(out, expected) < 1e-5


def test_validation_labels_from_folders_and_file_names(tmp_path):
    for wnid in ("n01440764", "n15075141"):
        (tmp_path / "folders" / wnid).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "folders" / wnid / "a.png")
    dataset = validation_set(tmp_path / "folders", None, None, 1000)
    assert [label for _, label in dataset.samples] == [0, 999]
    (tmp_path / "flat").mkdir()
    for name in ("ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00050000.JPEG"):
        Image.new("RGB", (8, 8)).save(tmp_path / "flat" / name, format="JPEG")
    dataset = validation_set(tmp_path / "flat", None, None, 1000)
    assert [label for _, label in dataset.samples] == [65, 355]
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "other.jpg")
    with pytest.raises(InputError, match="other.jpg is not an ILSVRC2012 validation image name"):
        validation_set(tmp_path / "flat", None, None, 1000)
