import pytest

from tvm_alexnet.spec import LRN_CONVENTIONS, SpecError, network


def test_parameter_counts():
    assert network("paper").num_params == 60_965_224
    assert network("torchvision").num_params == 61_100_840
    assert network("ungrouped").num_params == 62_378_344


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


@pytest.mark.parametrize("variant", ["paper", "torchvision", "ungrouped"])
def test_shapes_after_conv1_and_pools(variant):
    out = network(variant).layer_outputs()
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


def test_flops_from_the_formula():
    net = network("paper")
    kernels = {k.name: k for k in net.kernels()}
    assert kernels["conv1_conv"].flops == 2 * 96 * 55 * 55 * 3 * 11 * 11
    assert kernels["conv2_conv"].flops == 2 * 256 * 27 * 27 * 48 * 5 * 5
    assert kernels["fc6_dense"].flops == 2 * 9216 * 4096
    assert net.flops() == sum(k.flops for k in net.kernels() if k.op != "softmax")


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
])
def test_bad_specs(kwargs, message):
    with pytest.raises(SpecError, match=message):
        network(**kwargs)
