"""filters, run --plot, eval's ensembles, mean, saliency and neighbours: what
each computes against float64 (numpy or torch), and the commands' files."""

import dataclasses
import json
import os

import numpy as np
import pytest
import reference
import torch
import torch.nn.functional as F
from helpers import (
    assert_one_line_error,
    decisions_recorded,
    invoke,
    params_of,
    random_image,
    randomize,
)
from PIL import Image

from tvm_alexnet import AlexNet, ensembles, figures, lab, mean_image
from tvm_alexnet.errors import UserError
from tvm_alexnet.preprocessing import CAFFE, PREPROCESSING
from tvm_alexnet.spec import LRN_CONVENTIONS

SMALL = ["--width", "0.25", "--num-classes", "10"]
NET = dict(width=0.25, num_classes=10)


def small_weights(path, seed=0, prep=None):
    model = randomize(AlexNet("paper", **NET), seed)
    if prep is not None:
        model.preprocessing = prep
    model.save(path)
    return model


def image_folder(root, sizes, classes=("a", "b")):
    """root/<class>/<i>.png, random pixels, the sizes spread over the classes."""
    files = []
    for i, size in enumerate(sizes):
        folder = root / classes[i % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        files.append(random_image(folder / f"{i}.png", size=size))
    return sorted(files)


# -- Figure 3 --------------------------------------------------------------------------------------


def coloured_conv1(model, rng):
    """Tower 1's kernels grey (one random pattern in all three channels),
    tower 2's single-channel: kernel 12 red, 13 green, 14 blue, and so on."""
    w = model.conv1.weight
    out, _, k, _ = w.shape
    half = out // 2
    kernels = np.zeros(w.shape)
    for i in range(out):
        pattern = rng.uniform(0.2, 1.0, (k, k))
        if i < half:
            kernels[i] = pattern
        else:
            kernels[i, (i - half) % 3] = pattern
    with torch.no_grad():
        w.copy_(torch.from_numpy(kernels))
    return w.detach().double().numpy()  # as float32 holds them


def test_filter_grid_puts_each_kernel_in_its_cell(tmp_path, rng):
    model = AlexNet("paper", **NET)
    coloured_conv1(model, rng)
    path = tmp_path / "w.safetensors"
    model.save(path)
    result = invoke("filters", "--weights", path, "-o", tmp_path / "conv1.png", "--columns", "4", "--zoom", "3")
    assert result.exit_code == 0, result.output

    kernels = lab.conv1_kernels(model)
    grid, origins = lab.filter_grid(kernels, towers=2, columns=4, zoom=3)
    saved = np.asarray(Image.open(tmp_path / "conv1.png").convert("RGB"))
    np.testing.assert_array_equal(saved, np.clip(np.rint(grid * 255), 0, 255).astype(np.uint8))
    out, k = len(kernels), kernels.shape[-1]
    assert out == 24 and len(origins) == out
    # Tower 1 (output channels 0..11) in the rows above tower 2 (12..23), 4 kernels a row, left to right.
    assert max(top for top, _ in origins[:12]) + 3 * k < min(top for top, _ in origins[12:])
    assert [left for _, left in origins[:4]] == sorted({left for _, left in origins})
    for i, (top, left) in enumerate(origins):
        cell = saved[top:top + 3 * k, left:left + 3 * k].astype(int)
        if i < 12:  # grey: R = G = B everywhere, and not flat
            assert (cell[..., 0] == cell[..., 1]).all() and (cell[..., 1] == cell[..., 2]).all(), i
            assert cell.max() - cell.min() > 100
        else:  # one channel lit, the other two black
            lit = (i - 12) % 3
            others = [c for c in range(3) if c != lit]
            assert (cell[..., others] == 0).all() and cell[..., lit].max() == 255, i
        # Each weight is a zoom x zoom block of equal pixels: the kernel drawn in its own cell, unshifted.
        expected = lab.display_kernel(kernels[i]).repeat(3, 0).repeat(3, 1)
        np.testing.assert_allclose(cell / 255, expected, atol=0.5 / 255 + 1e-9)

    shares = lab.tower_colour_shares(kernels, 2)
    assert shares[0] == pytest.approx(0, abs=1e-12) and shares[1] == pytest.approx(2 / 3)
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert [[c.strip() for c in row] for row in rows] == [["1", "12", "0.000"], ["2", "12", "0.667"]]


def test_colour_share_in_float64(rng):
    kernels = rng.normal(size=(6, 3, 11, 11))
    grey = kernels.mean(axis=1, keepdims=True)
    expected = ((kernels - grey) ** 2).sum(axis=(1, 2, 3)) / (kernels**2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(lab.colour_share(kernels), expected, rtol=1e-13)
    assert lab.tower_colour_shares(kernels, 2) == pytest.approx([expected[:3].mean(), expected[3:].mean()])


def test_conv1_kernels_in_rgb_pixel_space(rng):
    """Caffe's weights see BGR: their channel 2 is red. torchvision's see pixels / 255 / std."""
    model = AlexNet("paper", **NET)
    kernels = coloured_conv1(model, rng)
    model.preprocessing = CAFFE
    np.testing.assert_array_equal(lab.conv1_kernels(model), kernels[:, ::-1])
    tv = AlexNet("torchvision", width=0.25, num_classes=10)
    w = tv.conv1.weight.detach().double().numpy()
    std = np.asarray(PREPROCESSING["torchvision"].std)
    np.testing.assert_allclose(lab.conv1_kernels(tv), w / 255 / std[None, :, None, None], rtol=1e-15)


# -- Figure 4 (left) -------------------------------------------------------------------------------


def test_top_predictions_are_float64_softmax(rng):
    logits = torch.from_numpy(rng.normal(size=(4, 10)) * 5).float()
    idx, probs = lab.top_predictions(logits, 5)
    softmax = reference.softmax(logits.double().numpy())
    order = np.argsort(-logits.numpy(), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx.numpy(), order)
    np.testing.assert_allclose(probs.numpy(), np.take_along_axis(softmax, order, 1), rtol=1e-14)
    # Logits far apart: float32 would read the small probabilities as tied zeros; float64 ranks them.
    idx, probs = lab.top_predictions(torch.tensor([[0.0, -200.0, -100.0, 300.0]]), 4)
    assert idx.tolist() == [[3, 0, 2, 1]] and probs.dtype == torch.float64 and (probs[0, :3] > 0).all()


def test_run_plot_draws_top5_bars(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        random_image(folder / f"{i}.png", size=(300 + 10 * i, 240))
    drawn = []
    original = figures.predictions_figure

    def recording(images, names, indices, probs, labels=None):
        fig = original(images, names, indices, probs, labels)
        drawn.append((names, [[bar.get_width() for bar in ax.patches] for ax in fig.axes[1::2]]))
        return fig

    monkeypatch.setattr(figures, "predictions_figure", recording)
    out = tmp_path / "top5.png"
    result = invoke("run", folder, *SMALL, "--logits", "--plot", out)
    assert result.exit_code == 0, result.output
    logits = np.array([json.loads(line.split(": ", 1)[1]) for line in result.stdout.splitlines()
                       if line.startswith(str(folder))])
    ((names, bars),) = drawn
    assert len(names) == 3 and len(bars) == 3  # one row (image and bars) per image
    softmax = reference.softmax(logits)
    expected = -np.sort(-softmax, axis=1)[:, :5]
    np.testing.assert_allclose(np.array(bars), expected, rtol=1e-4, atol=1e-6)  # the logits printed to 6 places
    with Image.open(out) as png:
        assert png.size[1] == round(3 * figures.ROW_INCHES * figures.DPI)


def test_predictions_figure_rows_and_bars(rng):
    images = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(2)]
    idx, probs = lab.top_predictions(torch.from_numpy(rng.normal(size=(2, 10))), 5)
    fig = figures.predictions_figure(images, ["x", "y"], idx, probs)
    assert len(fig.axes) == 4
    for ax, i, p in zip(fig.axes[1::2], idx, probs):
        assert [b.get_width() for b in ax.patches] == pytest.approx(p.tolist(), rel=1e-12)
        assert [t.get_text() for t in ax.get_yticklabels()] == [f"class {c}" for c in i.tolist()]


# -- ensembles -------------------------------------------------------------------------------------


def prepared_crops(x, size, ten):
    """The crops of 256x256 inputs, written out: four corners and the centre, then their mirror images."""
    far, mid = x.shape[-1] - size, (x.shape[-1] - size) // 2
    crops = [x[..., t:t + size, l:l + size] for t, l in ((0, 0), (0, far), (far, 0), (far, far), (mid, mid))]
    return crops + [c[..., ::-1] for c in crops] if ten else crops[4:]


@pytest.mark.parametrize("ten", [False, True])
def test_ensemble_probabilities_are_the_float64_mean(compiled, rng, ten):
    a = compiled("paper", **NET)
    b = randomize(compiled("paper", **NET), int(rng.integers(2**31)))
    b.preprocessing = CAFFE  # BGR: the ensemble prepares the images each model's way
    pixels = rng.uniform(0, 255, (2, 3, 256, 256))
    rgb_mean = np.asarray(PREPROCESSING["paper"].mean)[:, None, None]
    x = torch.from_numpy(pixels - rgb_mean).float()  # as the first model's preprocessing prepares them
    probs = ensembles.ensemble_probabilities([a, b], x, ten_crop=ten)
    assert probs.dtype == torch.float64 and probs.shape == (2, 10)

    expected = 0
    for model, inputs in ((a, pixels - rgb_mean), (b, pixels[:, ::-1] - rgb_mean[::-1])):
        crops = prepared_crops(inputs, 227, ten)
        expected = expected + sum(reference.softmax(reference.forward(model.spec, params_of(model), c))
                                  for c in crops) / len(crops)
    expected /= 2
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_ensemble_evaluate(compiled, rng):
    from tvm_alexnet.evaluation import evaluate

    a = compiled("paper", **NET)
    b = randomize(compiled("paper", **NET), int(rng.integers(2**31)))
    x = torch.from_numpy(rng.normal(size=(6, 3, 256, 256))).float()
    labels = torch.from_numpy(rng.integers(0, 10, 6))
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]
    one, mine = evaluate(a, batches), ensembles.ensemble_evaluate([a], batches)
    assert {k: v for k, v in mine.items() if k != "images_per_s"} == \
        pytest.approx({k: v for k, v in one.items() if k != "images_per_s"}, rel=1e-12)

    r = ensembles.ensemble_evaluate([a, b], batches, ten_crop=True)
    probs = ensembles.ensemble_probabilities([a, b], x, ten_crop=True)
    top5 = probs.topk(5, 1).indices
    assert r["images"] == 6 and r["skipped"] == 0
    assert r["top1_error"] == pytest.approx((top5[:, 0] != labels).double().mean().item())
    assert r["top5_error"] == pytest.approx((top5 != labels[:, None]).all(1).double().mean().item())
    assert r["loss"] == pytest.approx(-probs[torch.arange(6), labels].clamp_min(1e-12).log().mean().item(), rel=1e-12)


def test_eval_ensemble_command(tmp_path):
    data = tmp_path / "val"
    image_folder(data, [(260, 256), (300, 280), (256, 400), (512, 300)])
    small_weights(tmp_path / "a.safetensors", 1)
    small_weights(tmp_path / "b.safetensors", 2, CAFFE)
    result = invoke("eval", "--weights", tmp_path / "a.safetensors", "--weights", tmp_path / "b.safetensors",
                    "--data", data, "--workers", "0", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert "ensemble of 2" in result.stdout and "10-crop" in result.stdout
    other = randomize(AlexNet("paper", width=0.25, num_classes=5), 3)
    other.save(tmp_path / "c.safetensors")
    assert_one_line_error(invoke("eval", "--weights", tmp_path / "a.safetensors", "--weights",
                                 tmp_path / "c.safetensors", "--data", data),
                          "c.safetensors", "5 classes", "must share their classes")


# -- the mean image --------------------------------------------------------------------------------


def resized_pixels(path):
    """The image as training prepares it before cropping, written out: shorter side 256, the centre 256x256."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    ratio = 256 / min(w, h)
    img = img.resize((max(256, round(w * ratio)), max(256, round(h * ratio))), Image.BILINEAR)
    left, top = (img.size[0] - 256) // 2, (img.size[1] - 256) // 2
    return np.asarray(img.crop((left, top, left + 256, top + 256)), np.float64).transpose(2, 0, 1)


def test_mean_image_is_numpys_float64_mean(tmp_path):
    files = image_folder(tmp_path / "train", [(300, 240), (256, 256), (400, 500), (260, 1000), (1000, 257)])
    (tmp_path / "train" / "a" / "broken.jpg").write_bytes(b"not an image")
    expected = np.mean([resized_pixels(f) for f in files], axis=0)
    mean, count, skipped = mean_image.folder_mean(tmp_path / "train", batch_size=2, progress=False)
    assert (count, skipped) == (5, 1)
    np.testing.assert_allclose(mean, expected, rtol=1e-14)

    result = invoke("mean", "--data", tmp_path / "train", "-o", tmp_path / "mean.npy", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "5 images" in result.stdout and "1 unreadable skipped" in result.stdout
    np.testing.assert_allclose(mean_image.load_mean(tmp_path / "mean.npy"), expected, rtol=1e-14)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["mean.npy"]  # no temporary left behind


@pytest.mark.parametrize("prep", [PREPROCESSING["paper"], CAFFE, PREPROCESSING["torchvision"]],
                         ids=["rgb", "caffe", "torchvision"])
def test_preprocessing_subtracts_the_mean_image(tmp_path, rng, prep):
    from tvm_alexnet.data import FullImage, load_image

    path = random_image(tmp_path / "x.png", size=(300, 260))
    mean = rng.uniform(0, 255, (3, 256, 256))
    prep = prep.with_mean_image(mean)
    expected = (resized_pixels(path) - mean) * prep.scale
    if prep.channels == "BGR":
        expected = expected[::-1]
    expected /= np.asarray(prep.std)[:, None, None]
    got = FullImage(prep)(Image.open(path).convert("RGB")).numpy()  # training's and eval's 256x256
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-6
    got = load_image(path, 227, prep).numpy()  # run's centre crop: the mean image's centre subtracted
    centre = expected[:, 14:241, 14:241]
    assert np.linalg.norm(got - centre) / np.linalg.norm(centre) < 1e-6
    np.testing.assert_array_equal(lab.pixels(torch.from_numpy(got), prep),
                                  resized_pixels(path)[:, 14:241, 14:241].transpose(1, 2, 0).astype(np.uint8))
    other = PREPROCESSING["paper"]  # an ensemble's other member prepares the same pixels its way
    again = lab.reprepare(torch.from_numpy(got)[None], prep, other)[0].numpy()
    want = resized_pixels(path)[:, 14:241, 14:241] - np.asarray(other.mean)[:, None, None]
    assert np.linalg.norm(again - want) / np.linalg.norm(want) < 1e-6


def test_run_subtracts_the_mean_image_the_weights_keep(tmp_path, rng):
    path = random_image(tmp_path / "x.png", size=(300, 260))
    mean = rng.uniform(0, 255, (3, 256, 256))
    model = randomize(AlexNet("paper", **NET), int(rng.integers(2**31)))
    model.preprocessing = model.preprocessing.with_mean_image(mean)
    model.save(tmp_path / "w.safetensors")
    result = invoke("run", path, "--weights", tmp_path / "w.safetensors", "--logits", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "chunks of 1" in result.stderr  # its static build: Winograd convolutions on transformed weights
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(str(path))]
    got = np.asarray(json.loads(line.split(": ", 1)[1]))
    x = (resized_pixels(path) - mean)[None, :, 14:241, 14:241]  # the centre 227 of 256, less the mean's centre
    expected = reference.forward(model.spec, params_of(model), x)[0]
    assert reference.rel_error(got, expected) < 1e-5


def test_a_checkpoints_malformed_mean_image_is_one_line_error(tmp_path, rng):
    from safetensors.torch import save_file

    from tvm_alexnet import weights

    model = AlexNet("paper", **NET)
    state = {**model.state_dict(), weights.MEAN_IMAGE: torch.rand(3, 10, 10) * 255}
    save_file(state, tmp_path / "w.safetensors", metadata=weights.metadata(model.spec, model.preprocessing))
    with pytest.raises(UserError) as e:
        AlexNet.load(tmp_path / "w.safetensors")
    assert str(e.value).startswith(f"{tmp_path / 'w.safetensors'}: ") and "(3, 10, 10), expected (3, 256, 256)" \
        in str(e.value) and "\n" not in str(e.value)


def test_load_mean_errors(tmp_path):
    cases = {"shape.npy": np.zeros((3, 224, 224)), "nan.npy": np.full((3, 256, 256), np.nan)}
    for name, array in cases.items():
        np.save(tmp_path / name, array)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    for name, fragment in [("shape.npy", "(3, 224, 224), expected (3, 256, 256)"), ("nan.npy", "non-finite"),
                           ("junk.npy", "not a mean image"), ("missing.npy", "no such mean image file")]:
        with pytest.raises(UserError) as e:
            mean_image.load_mean(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: ") and fragment in str(e.value)
        assert "\n" not in str(e.value)


# -- saliency --------------------------------------------------------------------------------------


def logits_deciding(model, x, params, decisions, record=False):
    """The network's logits in torch ops, its ReLUs and max-pools deciding
    as `decisions` say (or recording their decisions there)."""
    net = model.spec

    def relu(y, kernel):
        if record:
            decisions[kernel] = y > 0
        return y * decisions[kernel]

    def max_pool(y, kernel):
        if record:
            decisions[kernel] = F.max_pool2d(y, *net.pool_window, return_indices=True)[1]
        argmax = decisions[kernel]
        return y.flatten(2).gather(2, argmax.flatten(2)).view(argmax.shape)

    for c in net.convs:
        x = relu(F.conv2d(x, params[f"{c.name}.weight"], params[f"{c.name}.bias"], c.stride, c.padding, 1, c.groups),
                 f"{c.name}_conv")
        if c.lrn:
            p = LRN_CONVENTIONS[net.lrn]
            x = torch.cat([F.local_response_norm(part, p.size, alpha=p.alpha * p.size, beta=p.beta, k=p.k)
                           for part in x.chunk(net.lrn_groups, 1)], 1)
        if c.pool:
            x = max_pool(x, f"{c.name}_pool")
    x = x.flatten(1)
    for d in net.dense:
        x = F.linear(x, params[f"{d.name}.weight"], params[f"{d.name}.bias"])
        if d.activation == "relu":
            x = relu(x, f"{d.name}_dense")
    return x


def float64_saliency(model, x, classes, decisions):
    params = {k: v.detach().double() for k, v in model.state_dict().items()}
    x = x.detach().double().requires_grad_()
    logits = logits_deciding(model, x, params, decisions)
    (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x)
    return grad.abs().amax(1)


def test_saliency_through_torch_is_float64_autograd(rng):
    model = randomize(AlexNet("paper", **NET), int(rng.integers(2**31))).eval()
    x = torch.from_numpy(rng.normal(size=(2, 3, 227, 227))).float()
    maps, classes = lab.saliency(model, x)
    decisions = {}
    params = {k: v.detach() for k, v in model.state_dict().items()}
    logits = logits_deciding(model, x, params, decisions, record=True)
    assert classes.tolist() == logits.argmax(1).tolist()
    expected = float64_saliency(model, x, classes, decisions)
    assert maps.shape == (2, 227, 227) and reference.rel_error(maps.numpy(), expected.numpy()) < 1e-5
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated in the model


def test_saliency_through_the_compiled_kernels_is_float64_autograd(compiled, rng):
    model = compiled("paper", **NET)
    x = torch.from_numpy(rng.normal(size=(2, 3, 227, 227))).float()
    with decisions_recorded() as recorded:
        maps, classes = lab.saliency(model, x)
    assert classes.tolist() == model(x).argmax(1).tolist()
    expected = float64_saliency(model, x, classes, recorded[model.compiled])
    assert maps.shape == (2, 227, 227) and reference.rel_error(maps.numpy(), expected.numpy()) < 1e-4
    assert all(p.grad is None for p in model.parameters())


def test_saliency_command(tmp_path):
    files = [random_image(tmp_path / f"{name}.png", size=(300, 260)) for name in ("cat", "dog")]
    small_weights(tmp_path / "w.safetensors")
    result = invoke("saliency", *files, "--weights", tmp_path / "w.safetensors", "-o", tmp_path / "maps",
                    "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["cat-saliency.png", "dog-saliency.png"]
    with Image.open(tmp_path / "maps" / "cat-saliency.png") as png:
        assert png.size[0] > png.size[1]  # the image and its map side by side


# -- Figure 4 (right) ------------------------------------------------------------------------------


def test_fc7_features_are_float64(compiled, rng):
    model = compiled("paper", **NET)
    x = torch.from_numpy(rng.normal(size=(3, 3, 227, 227))).float()
    fc7 = dataclasses.replace(model.spec, dense=model.spec.dense[:2])  # the network up to fc7 and its ReLU
    expected = reference.forward(fc7, params_of(model), x.numpy())
    got = lab.features(model, x)
    assert got.shape == (3, fc7.dense[-1].out_features) and reference.rel_error(got.numpy(), expected) < 1e-5
    model.decompile()
    assert reference.rel_error(lab.features(model, x).numpy(), expected) < 1e-5


def test_nearest_matches_brute_force(rng):
    pool = rng.normal(size=(40, 16)).astype(np.float32)
    queries = np.concatenate([pool[[3, 17]], rng.normal(size=(2, 16))])
    idx, dist = lab.nearest(queries, pool, 6, chunk=3)
    brute = np.sqrt(((queries[:, None].astype(np.float64) - pool[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(idx, np.argsort(brute, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :6], rtol=1e-13)
    assert idx[0, 0] == 3 and idx[1, 0] == 17 and dist[0, 0] == 0 and dist[1, 0] == 0


def test_each_image_is_its_own_nearest_neighbour(compiled, tmp_path):
    model = compiled("paper", **NET)
    files = image_folder(tmp_path / "data", [(300 + 7 * i, 260) for i in range(9)])
    weights = tmp_path / "w.safetensors"
    model.save(weights)
    found = lab.neighbours(model, weights, tmp_path / "data", files, k=6, batch_size=4, progress=False)
    assert not found.cached and found.cache.is_file()
    for f, picks in zip(files, found.picks):
        assert picks[0] == (f, 0.0) and len(picks) == 6
        assert all(d > 0 for _, d in picks[1:]) and [d for _, d in picks] == sorted(d for _, d in picks)
    again = lab.neighbours(model, weights, tmp_path / "data", files[:2], k=3, progress=False)
    assert again.cached and again.cache == found.cache and again.picks == [p[:3] for p in found.picks[:2]]
    # The cache is keyed by the files: touching one makes a new one.
    os.utime(files[0], ns=(files[0].stat().st_atime_ns, files[0].stat().st_mtime_ns + 10**9))
    third = lab.neighbours(model, weights, tmp_path / "data", files[:1], k=1, progress=False)
    assert not third.cached and third.cache != found.cache and third.picks == [[(files[0], 0.0)]]


def test_neighbours_command(tmp_path):
    files = image_folder(tmp_path / "data", [(300 + 7 * i, 260) for i in range(8)])
    outside = random_image(tmp_path / "query.png", size=(280, 300))
    small_weights(tmp_path / "w.safetensors")
    args = ["neighbours", files[2], outside, "--weights", tmp_path / "w.safetensors", "--data", tmp_path / "data",
            "-o", tmp_path / "grid.png", "--batch-size", "3"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith((str(files[2]), str(outside)))]
    assert len(lines) == 2 and lines[0].startswith(f"{files[2]}: {files[2]} (0)")
    assert all(line.split(": ", 1)[1].count(str(tmp_path / "data")) == 6 for line in lines)
    assert "cached in" in result.stderr
    with Image.open(tmp_path / "grid.png") as png:
        assert png.size[0] > 3 * png.size[1]  # two rows of seven
    result = invoke(*args)
    assert result.exit_code == 0 and "read from" in result.stderr and lines == [
        line for line in result.stdout.splitlines() if line.startswith((str(files[2]), str(outside)))]
