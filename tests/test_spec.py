import pytest

from tvm_alexnet.spec import LRN_CONVENTIONS, VARIANTS, SpecError, network


def test_parameter_counts():
    # Weights plus biases by hand: conv1 96 * 363 + 96 = 34_944, conv2 256 * 1_200 + 256 = 307_456,
    # conv3 384 * 2_304 + 384 = 885_120, conv4 384 * 1_728 + 384 = 663_936, conv5 256 * 1_728 + 256 = 442_624,
    # fc6 4_096 * 9_216 + 4_096 = 37_752_832, fc7 4_096 * 4_096 + 4_096 = 16_781_312, fc8 1_000 * 4_096 + 1_000
    # = 4_097_000: 60_965_224. Ungrouped adds 256 * 1_200 + 384 * 1_728 + 256 * 1_728 = 1_413_120.
    assert network("paper").num_params == 60_965_224
    assert network("torchvision").num_params == 61_100_840
    assert network("ungrouped").num_params == 62_378_344
    # The paper's one-GPU net: conv1 48 * 363 + 48 = 17_472, conv2 128 * (48 * 25) + 128 = 153_728,
    # conv3 192 * (128 * 9) + 192 = 221_376, conv4 192 * (192 * 9) + 192 = 331_968, conv5 256 * (192 * 9) + 256
    # = 442_624: 1_167_168 in the convs; fc6, fc7, fc8 as the paper's (58_631_144).
    assert network("onegpu").num_params == 59_798_312


def test_onegpu_layers():
    net = network("onegpu")
    assert [(c.in_channels, c.out_channels, c.groups) for c in net.convs] == \
        [(3, 48, 1), (48, 128, 1), (128, 192, 1), (192, 192, 1), (192, 256, 1)]
    assert [(d.in_features, d.out_features) for d in net.dense] == [(9216, 4096), (4096, 4096), (4096, 1000)]
    assert [c.lrn for c in net.convs] == [True, True, False, False, False]
    assert net.lrn == "paper" and net.lrn_groups == 1  # the paper's LRN, within its one tower
    assert net.image_size == 227 and net.pool == "overlapping"


@pytest.mark.parametrize("variant", VARIANTS)
def test_switches_keep_the_parameters(variant):
    """LRN, pooling and the activation have no parameters, and the pools
    keep the map sizes, so no switch changes a parameter count."""
    count = network(variant).num_params
    for switch in (dict(lrn="none"), dict(pool="non-overlapping"), dict(activation="tanh"),
                   dict(lrn="none", pool="non-overlapping", activation="tanh")):
        assert network(variant, **switch).num_params == count, switch


def test_lrn_none():
    net = network("paper", lrn="none")
    assert net.lrn is None and not any(c.lrn for c in net.convs)
    assert not [k for k in net.compiled_kernels() if k.op in ("lrn", "lrn_grad")]
    assert network("paper").flops() - net.flops() == 3_775_200 + 2_426_112  # conv1's and conv2's LRN
    assert network("torchvision", lrn="none") == network("torchvision")  # none to remove


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_overlapping_pools_keep_the_map_sizes(variant):
    # (55 - 2) // 2 + 1 = 27, (27 - 2) // 2 + 1 = 13, (13 - 2) // 2 + 1 = 6: the last row and column go unpooled.
    net = network(variant, pool="non-overlapping")
    out = {k.name: k.output for k in net.kernels()}
    assert [out[f"{c}_pool"][1:] for c in ("conv1", "conv2", "conv5")] == [(27, 27), (13, 13), (6, 6)]
    pools = [k for k in net.compiled_kernels() if k.op in ("max_pool", "max_pool_grad")]
    assert pools and all((k.attrs["size"], k.attrs["stride"]) == (2, 2) for k in pools)
    assert net.dense[0].in_features == network(variant).dense[0].in_features


def test_pooling_that_changes_the_maps_names_the_variant(monkeypatch):
    from tvm_alexnet import spec

    monkeypatch.setitem(spec.POOLING, "non-overlapping", (3, 3))  # 55 -> 18 -> 6 -> 2
    with pytest.raises(SpecError, match="variant 'paper' with non-overlapping pooling has maps of 18 -> 6 -> 2"):
        network("paper", pool="non-overlapping")


def test_tanh_everywhere_but_fc8():
    net = network("paper", activation="tanh")
    assert [c.activation for c in net.convs] == ["tanh"] * 5
    assert [d.activation for d in net.dense] == ["tanh", "tanh", None]
    forward = {k.name: k for k in net.kernels()}
    assert forward["conv3_conv"].attrs["activation"] == "tanh" and forward["fc8_dense"].attrs["activation"] is None
    backward = [k.name for k in net.backward_kernels()]
    assert "fc7_tanh_grad" in backward and "conv1_tanh_grad" in backward
    assert not [k for k in net.backward_kernels() if k.op == "relu_grad"]
    assert network("paper").activation == "relu" and net.activation == "tanh"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_layer_has_an_input_gradient_kernel(variant):
    """conv1's too (the image's gradient: saliency, adversarial inputs), strided as its forward."""
    net = network(variant)
    names = {k.name: k for k in net.backward_kernels()}
    assert all(f"{k.name}_grad_input" in names for k in net.kernels() if k.op in ("conv2d", "dense"))
    conv1 = names["conv1_conv_grad_input"]
    assert conv1.output == net.input_shape and conv1.flops == {k.name: k for k in net.kernels()}["conv1_conv"].flops
    assert conv1.attrs == dict(stride=4, padding=net.convs[0].padding, groups=1, input_size=net.image_size)


def test_paper_parameters_per_layer():
    params = network("paper").params()
    per_layer = {}
    for name, shape in params.items():
        n = 1
        for d in shape:
            n *= d
        per_layer[name.split(".")[0]] = per_layer.get(name.split(".")[0], 0) + n
    assert per_layer == {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936,
                         "conv5": 442_624, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}
    assert params["conv2.weight"] == (256, 48, 5, 5)  # grouped: each tower sees 48 channels


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_after_conv1_and_pools(variant):
    out = {k.name: k.output for k in network(variant).kernels()}
    assert out["conv1_conv"][1:] == (55, 55)
    assert out["conv1_pool"][1:] == (27, 27)
    assert out["conv2_pool"][1:] == (13, 13)
    assert out["conv5_pool"][1:] == (6, 6)


def test_paper_towers_and_lrn():
    net = network("paper")
    assert [c.groups for c in net.convs] == [1, 2, 1, 2, 2]
    assert [c.lrn for c in net.convs] == [True, True, False, False, False]
    assert net.image_size == 227
    lrn = LRN_CONVENTIONS[net.lrn]
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)


# FLOPs per image of the paper's network, worked out by hand from the paper's
# layer sizes: a conv is 2 * (outputs) * (inputs per group * k * k), a dense
# layer 2 * in * out, an LRN (2 * size + 3) = 13 per element (5 squares, 5 adds
# with k's, alpha's multiply, the power, the divide), a 3x3 max-pool 9 per output.
PAPER_FLOPS = {
    "conv1_conv": 210_830_400,  # 2 * (96 * 55 * 55 = 290_400) * (3 * 11 * 11 = 363)
    "conv1_lrn": 3_775_200,  # 290_400 * 13
    "conv1_pool": 629_856,  # (96 * 27 * 27 = 69_984) * 9
    "conv2_conv": 447_897_600,  # 2 * (256 * 27 * 27 = 186_624) * (48 * 5 * 5 = 1_200): two towers of 48 channels
    "conv2_lrn": 2_426_112,  # 186_624 * 13
    "conv2_pool": 389_376,  # (256 * 13 * 13 = 43_264) * 9
    "conv3_conv": 299_040_768,  # 2 * (384 * 13 * 13 = 64_896) * (256 * 3 * 3 = 2_304): across the towers
    "conv4_conv": 224_280_576,  # 2 * 64_896 * (192 * 3 * 3 = 1_728)
    "conv5_conv": 149_520_384,  # 2 * 43_264 * 1_728
    "conv5_pool": 82_944,  # (256 * 6 * 6 = 9_216) * 9
    "fc6_dense": 75_497_472,  # 2 * 9_216 * 4_096
    "fc7_dense": 33_554_432,  # 2 * 4_096 * 4_096
    "fc8_dense": 8_192_000,  # 2 * 4_096 * 1_000
}


def test_flops_worked_out_by_hand():
    net = network("paper")
    assert {k.name: k.flops for k in net.kernels() if k.op != "softmax"} == PAPER_FLOPS
    # 1_331_569_728 in the convs + 117_243_904 dense + 6_201_312 LRN + 1_102_176 pools;
    # the convs and dense layers are 724_406_816 multiply-adds.
    assert net.flops() == 1_456_117_120
    # Ungrouped: conv2, conv4, conv5 see all 96, 384, 384 channels (twice the
    # grouped FLOPs: +447_897_600 + 224_280_576 + 149_520_384), and no LRN (-6_201_312).
    assert network("ungrouped").flops() == 2_271_614_368


def test_width_and_classes():
    net = network("paper", num_classes=10, width=0.5)
    assert [c.out_channels for c in net.convs] == [48, 128, 192, 192, 128]
    assert [d.out_features for d in net.dense] == [2048, 2048, 10]
    assert net.dense[0].in_features == 128 * 6 * 6
    assert all(c.in_channels % c.groups == 0 and c.out_channels % c.groups == 0 for c in net.convs)


def test_training_kernels_include_dropout():
    names = [k.name for k in network("paper").kernels(training=True)]
    assert "fc6_dropout" in names and "fc7_dropout" in names
    assert "fc6_dropout" not in [k.name for k in network("paper").kernels()]


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="vgg"), "unknown variant 'vgg'"),
    (dict(width=0), "width must be in"),
    (dict(num_classes=0), "num_classes must be a positive integer"),
    (dict(lrn="tf"), "unknown LRN convention 'tf'"),
    (dict(variant="torchvision", lrn="paper"), "has no LRN layers"),
    (dict(pool="average"), "unknown pooling 'average'; choose one of overlapping, non-overlapping"),
    (dict(activation="sigmoid"), "unknown activation 'sigmoid'; choose one of relu, tanh"),
])
def test_bad_specs(kwargs, message):
    with pytest.raises(SpecError, match=message):
        network(**kwargs)
