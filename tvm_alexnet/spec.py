"""AlexNet variants as data: layers, shapes, kernels, FLOPs and parameter counts.

Everything else (kernels, the torch module, the CLI, reports) reads the network
from here; no layer size is written down anywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .errors import UserError


class SpecError(UserError):
    """A variant, width, class count, LRN convention, pooling or activation that does not exist."""


@dataclass(frozen=True)
class LRN:
    """Local response normalisation in the paper's form.

    b[c] = a[c] / (k + alpha * sum_{j in window(c)} a[j]^2) ** beta, the window
    being channels c - size//2 .. c + (size-1)//2 clipped to the valid range.
    `alpha` multiplies the plain sum: conventions that divide alpha by `size`
    are stored already divided.
    """

    size: int
    alpha: float
    beta: float
    k: float
    # The window stays within each tower's channels, as on the paper's two
    # GPUs (cuda-convnet's two-GPU model normalises each GPU's 48 maps).
    per_tower: bool = False


# torch's and Caffe's LRN divide alpha by the window size, default k to 1 and
# sum across all channels; the paper does none of these. torch and caffe
# compute the same, but users come to us by one name or the other.
LRN_CONVENTIONS = {
    "paper": LRN(size=5, alpha=1e-4, beta=0.75, k=2.0, per_tower=True),
    "caffe": LRN(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0),
    "torch": LRN(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0),
}
# The paper's LRN ablation: `network(..., lrn="none")` drops every LRN layer.
NO_LRN = "none"

# Max-pooling as (window z, stride s): the paper's overlapping z=3, s=2 and the
# ablation it compares against, z=s=2 (0.4%/0.3% worse top-1/top-5).
POOLING = {"overlapping": (3, 2), "non-overlapping": (2, 2)}
# The nonlinearity of every conv and hidden dense layer: the paper's ReLU, or
# the saturating tanh it compares against (its Figure 1: six times slower to 25% error).
ACTIVATIONS = ("relu", "tanh")


@dataclass(frozen=True)
class Conv:
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    groups: int = 1
    lrn: bool = False  # after the activation, before pooling
    pool: bool = False  # max-pool, as Network.pool says (the paper's: overlapping, 3x3 stride 2)
    init_bias: float = 0.0  # the paper starts some biases at 1 "to feed the ReLUs positive inputs"
    activation: str | None = "relu"  # fused into the conv kernel: one of ACTIVATIONS


@dataclass(frozen=True)
class Dense:
    name: str
    in_features: int
    out_features: int
    activation: str | None = "relu"  # fused into the dense kernel: one of ACTIVATIONS, None for fc8
    dropout: float = 0.0  # applied after the activation while training
    init_bias: float = 0.0


@dataclass(frozen=True)
class Kernel:
    """One compiled function. Activation shapes are per image (the batch is
    prepended when built); parameter shapes are whole."""

    name: str  # e.g. "conv2_lrn": unique, a valid identifier
    layer: str  # the layer it belongs to, e.g. "conv2"
    op: str  # a name in ops.OPS: conv2d, lrn, max_pool, ... and their gradients
    inputs: tuple[tuple[int, ...], ...]  # activations, per image
    output: tuple[int, ...]  # per image
    flops: int  # per image
    params: tuple[tuple[int, ...], ...] = ()  # weight, bias
    attrs: dict = field(default_factory=dict, compare=False)
    batch_output: bool = True  # False for parameter gradients: summed over the batch, shaped as the parameter


POOL_SIZE, POOL_STRIDE = POOLING["overlapping"]  # the paper's


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Network:
    variant: str
    image_size: int
    convs: tuple[Conv, ...]
    dense: tuple[Dense, ...]
    lrn: str | None = None  # name of the LRN convention, None for no LRN layers
    pool: str = "overlapping"  # the max-pools' window and stride: a name in POOLING
    avgpool: int | None = None  # adaptive average pool to avgpool x avgpool before fc6
    width: float = 1.0
    init_std: float | None = 0.01  # weights ~ N(0, init_std^2); None: torch's default init
    # One of `towers` towers (towers.py): a layer whose input is wider than the
    # layer before it outputs reads every tower's output (an exchange).
    towers: int = 1

    num_classes = property(lambda self: self.dense[-1].out_features)
    layers = property(lambda self: self.convs + self.dense)

    @property
    def activation(self) -> str:
        """The nonlinearity of the conv and hidden dense layers (one of ACTIVATIONS)."""
        return self.convs[0].activation

    @property
    def pool_window(self) -> tuple[int, int]:
        """(window, stride) of every max-pool."""
        return POOLING[self.pool]

    @property
    def lrn_groups(self) -> int:
        """Channel groups an LRN window stays within: the towers, in the paper's convention."""
        per_tower = self.lrn is not None and LRN_CONVENTIONS[self.lrn].per_tower
        return max(c.groups for c in self.convs) if per_tower else 1

    input_shape = property(lambda self: (3, self.image_size, self.image_size))

    def params(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in the torch module's naming and layout."""
        shapes = {}
        for c in self.convs:
            shapes[f"{c.name}.weight"] = (c.out_channels, c.in_channels // c.groups, c.kernel, c.kernel)
            shapes[f"{c.name}.bias"] = (c.out_channels,)
        for d in self.dense:
            shapes[f"{d.name}.weight"] = (d.out_features, d.in_features)
            shapes[f"{d.name}.bias"] = (d.out_features,)
        return shapes

    num_params = property(lambda self: sum(math.prod(s) for s in self.params().values()))

    def kernels(self, training: bool = False) -> list[Kernel]:
        """Every kernel of the forward pass in execution order.

        FLOPs: 2 per multiply-add in conv and dense (bias and activation,
        fused into them, are not counted); LRN 2*size+3 per output (squares,
        sums, scale, power, divide); pooling one per window element; softmax
        3 per element. Dropout kernels are listed only when `training`.
        """
        out, channels, size = [], 3, self.image_size
        pool_size, pool_stride = self.pool_window
        for c in self.convs:
            s = conv_out(size, c.kernel, c.stride, c.padding)
            shape = (c.out_channels, s, s)
            macs = c.out_channels * s * s * (c.in_channels // c.groups) * c.kernel**2
            out.append(Kernel(f"{c.name}_conv", c.name, "conv2d",
                              ((c.in_channels, size, size),), shape, 2 * macs, self._param_shapes(c.name),
                              dict(stride=c.stride, padding=c.padding, groups=c.groups, activation=c.activation)))
            if c.lrn:
                lrn = LRN_CONVENTIONS[self.lrn]
                out.append(Kernel(f"{c.name}_lrn", c.name, "lrn", (shape,), shape,
                                  math.prod(shape) * (2 * lrn.size + 3), (),
                                  dict(size=lrn.size, alpha=lrn.alpha, beta=lrn.beta, k=lrn.k,
                                       groups=self.lrn_groups)))
            if c.pool:
                p = conv_out(s, pool_size, pool_stride, 0)
                pooled = (c.out_channels, p, p)
                out.append(Kernel(f"{c.name}_pool", c.name, "max_pool", (shape,), pooled,
                                  math.prod(pooled) * pool_size**2, (),
                                  dict(size=pool_size, stride=pool_stride)))
                shape, s = pooled, p
            channels, size = c.out_channels, s
        if self.avgpool is not None:
            pooled = (channels, self.avgpool, self.avgpool)
            # Part of the last conv layer's stage, so that layers stay convs + dense.
            last = self.convs[-1].name
            out.append(Kernel(f"{last}_avgpool", last, "avg_pool", ((channels, size, size),), pooled,
                              channels * size * size, (), dict(output_size=self.avgpool)))
            size = self.avgpool
        features = channels * size * size
        if self.dense[0].in_features not in (features, features * self.towers):
            raise SpecError(f"{self.variant}: conv features {features} != fc input {self.dense[0].in_features}")
        for d in self.dense:
            out.append(Kernel(f"{d.name}_dense", d.name, "dense",
                              ((d.in_features,),), (d.out_features,),
                              2 * d.in_features * d.out_features, self._param_shapes(d.name),
                              dict(activation=d.activation)))
            if training and d.dropout:
                out.append(Kernel(f"{d.name}_dropout", d.name, "dropout",
                                  ((d.out_features,), (d.out_features,)), (d.out_features,),
                                  d.out_features, (), dict(p=d.dropout)))
        out.append(Kernel("softmax", "softmax", "softmax", ((self.num_classes,),), (self.num_classes,),
                          3 * self.num_classes))
        return out

    def compiled_kernels(self) -> list[Kernel]:
        """Every kernel a build holds: the forward ones (with dropout), then the backward ones."""
        return self.kernels(training=True) + self.backward_kernels()

    def backward_kernels(self) -> list[Kernel]:
        """The gradient kernels of training, in the order backpropagation runs
        them (fc8 first). Each takes the gradient of its forward kernel's
        output (`dy`, first input) and what it needs of the forward pass:
        activation gradients their output, parameter gradients the layer
        input, LRN and max-pool gradients their forward input. The image's
        gradient is built too (run only where the image requires one).
        Dropout's gradient is the dropout kernel itself, with the same mask.

        FLOPs: input and weight gradients of conv and dense as many as the
        forward; bias gradients and the activation's one per element of dy;
        LRN 4*size+12 per element; max-pool size^2 per output (the argmax)
        plus 4 per input.
        """
        out = []
        for k in reversed(self.kernels()):
            if k.op == "softmax":
                continue
            layer = k.layer
            if k.op in ("conv2d", "dense"):
                x, (weight, bias) = k.inputs[0], k.params
                activation = k.attrs["activation"]
                if activation is not None:
                    out.append(Kernel(f"{layer}_{activation}_grad", layer, f"{activation}_grad",
                                      (k.output, k.output), k.output, math.prod(k.output)))
                conv = {key: k.attrs[key] for key in ("stride", "padding", "groups")} if k.op == "conv2d" else {}
                out.append(Kernel(f"{k.name}_grad_bias", layer, "bias_grad", (k.output,), bias,
                                  math.prod(k.output), batch_output=False))
                out.append(Kernel(f"{k.name}_grad_weight", layer, f"{k.op}_grad_weight", (k.output, x), weight,
                                  k.flops, attrs=dict(conv, kernel=weight[-1]) if conv else {}, batch_output=False))
                out.append(Kernel(f"{k.name}_grad_input", layer, f"{k.op}_grad_input", (k.output,), x, k.flops,
                                  (weight,), dict(conv, input_size=x[-1]) if conv else {}))
            elif k.op == "lrn":
                out.append(Kernel(f"{k.name}_grad", layer, "lrn_grad", (k.output, k.inputs[0]), k.inputs[0],
                                  math.prod(k.output) * (4 * k.attrs["size"] + 12), attrs=k.attrs))
            elif k.op == "max_pool":
                out.append(Kernel(f"{k.name}_grad", layer, "max_pool_grad", (k.output, k.inputs[0]), k.inputs[0],
                                  k.flops + 4 * math.prod(k.inputs[0]), attrs=k.attrs))
            elif k.op == "avg_pool":
                size = k.inputs[0][-1]
                if size % k.attrs["output_size"]:
                    raise SpecError(f"{k.name}: the gradient of an uneven adaptive pool ({size} -> "
                                    f"{k.attrs['output_size']}) is not implemented")
                out.append(Kernel(f"{k.name}_grad", layer, "avg_pool_grad", (k.output,), k.inputs[0],
                                  math.prod(k.inputs[0]), attrs=dict(input_size=size)))
        return out

    def _param_shapes(self, layer: str) -> tuple[tuple[int, ...], ...]:
        p = self.params()
        return (p[f"{layer}.weight"], p[f"{layer}.bias"])

    def network_kernels(self) -> list[Kernel]:
        """The kernels of inference from image to logits (no dropout, no softmax)."""
        return [k for k in self.kernels() if k.op != "softmax"]

    def flops(self) -> int:
        """Forward FLOPs per image (inference, softmax excluded)."""
        return sum(k.flops for k in self.network_kernels())


def _paper(variant: str, channels: tuple[int, ...], groups: int, lrn: bool) -> Network:
    """The paper's layer sizes with conv1 ... conv5 `channels` kernels."""
    c1, c2, c3, c4, c5 = channels
    return Network(
        variant=variant,
        image_size=227,
        convs=(
            Conv("conv1", 3, c1, 11, 4, 0, 1, lrn=lrn, pool=True),
            Conv("conv2", c1, c2, 5, 1, 2, groups, lrn=lrn, pool=True, init_bias=1.0),
            Conv("conv3", c2, c3, 3, 1, 1),
            Conv("conv4", c3, c4, 3, 1, 1, groups, init_bias=1.0),
            Conv("conv5", c4, c5, 3, 1, 1, groups, pool=True, init_bias=1.0),
        ),
        dense=(
            Dense("fc6", c5 * 6 * 6, 4096, dropout=0.5, init_bias=1.0),
            Dense("fc7", 4096, 4096, dropout=0.5, init_bias=1.0),
            Dense("fc8", 4096, 1000, activation=None),
        ),
        lrn="paper" if lrn else None,
    )


_VARIANTS = {
    # The 2012 paper: two towers, written here as groups=2 on the tower-local layers.
    "paper": _paper("paper", (96, 256, 384, 384, 256), groups=2, lrn=True),
    # The single-tower net of most tutorials: the paper's sizes, no groups, no LRN.
    "ungrouped": _paper("ungrouped", (96, 256, 384, 384, 256), groups=1, lrn=False),
    # The paper's one-GPU comparison net (its section 3.2 and footnote, 1.7%/1.2%
    # worse top-1/top-5): one tower, so half the kernels in conv1-conv4, but conv5
    # and the fully connected layers kept whole; LRN within its one tower.
    "onegpu": _paper("onegpu", (48, 128, 192, 192, 256), groups=1, lrn=True),
    # torchvision.models.alexnet (after "One weird trick", Krizhevsky 2014).
    "torchvision": Network(
        variant="torchvision",
        image_size=224,
        convs=(
            Conv("conv1", 3, 64, 11, 4, 2, pool=True),
            Conv("conv2", 64, 192, 5, 1, 2, pool=True),
            Conv("conv3", 192, 384, 3, 1, 1),
            Conv("conv4", 384, 256, 3, 1, 1),
            Conv("conv5", 256, 256, 3, 1, 1, pool=True),
        ),
        dense=(
            Dense("fc6", 256 * 6 * 6, 4096, dropout=0.5),
            Dense("fc7", 4096, 4096, dropout=0.5),
            Dense("fc8", 4096, 1000, activation=None),
        ),
        avgpool=6,
        init_std=None,
    ),
}

VARIANTS = tuple(_VARIANTS)


def _scaled(channels: int, width: float) -> int:
    return max(2, 2 * round(channels * width / 2))  # even, so that grouped layers still split in two


def network(variant: str = "paper", num_classes: int = 1000, width: float = 1.0,
            lrn: str | None = None, pool: str | None = None, activation: str | None = None) -> Network:
    """The network of `variant`, with `num_classes` outputs, channel counts and
    hidden units scaled by `width`, and the paper's ablations as switches
    (None: the variant's own):

    - `lrn`: LRN in the named convention (only variants with LRN take one),
      or "none": no LRN layers (any variant);
    - `pool`: "overlapping" (z=3, s=2) or "non-overlapping" (z=s=2) max-pooling;
      the map sizes must stay the variant's own (55 -> 27 -> 13 -> 6 for the paper's);
    - `activation`: "relu" or "tanh" after every conv and hidden dense layer.
    """
    if variant not in _VARIANTS:
        raise SpecError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not 0 < width <= 4:
        raise SpecError(f"width must be in (0, 4], got {width!r}")
    net = _VARIANTS[variant]
    if lrn == NO_LRN:
        net = replace(net, lrn=None, convs=tuple(replace(c, lrn=False) for c in net.convs))
    elif lrn is not None:
        if lrn not in LRN_CONVENTIONS:
            raise SpecError(f"unknown LRN convention {lrn!r}; choose one of {', '.join([*LRN_CONVENTIONS, NO_LRN])}")
        if net.lrn is None:
            raise SpecError(f"variant {variant!r} has no LRN layers, so it takes no LRN convention")
        net = replace(net, lrn=lrn)
    if pool is not None and pool != net.pool:
        if pool not in POOLING:
            raise SpecError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLING)}")
        pooled = replace(net, pool=pool)
        if _map_sizes(pooled) != _map_sizes(net):
            raise SpecError(f"variant {variant!r} with {pool} pooling has maps of "
                            f"{' -> '.join(map(str, _map_sizes(pooled)))} instead of "
                            f"{' -> '.join(map(str, _map_sizes(net)))}: fc6's input size would change")
        net = pooled
    if activation is not None and activation != net.activation:
        if activation not in ACTIVATIONS:
            raise SpecError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        net = replace(net, convs=tuple(replace(c, activation=activation) for c in net.convs),
                      dense=tuple(replace(d, activation=d.activation and activation) for d in net.dense))
    convs, channels = [], 3
    for c in net.convs:
        out = _scaled(c.out_channels, width)
        convs.append(replace(c, in_channels=channels, out_channels=out))
        channels = out
    spatial = net.avgpool or _map_sizes(net)[-1]
    dense, features = [], channels * spatial * spatial
    for d in net.dense[:-1]:
        out = _scaled(d.out_features, width)
        dense.append(replace(d, in_features=features, out_features=out))
        features = out
    dense.append(replace(net.dense[-1], in_features=features, out_features=num_classes))
    return replace(net, convs=tuple(convs), dense=tuple(dense), width=width)


def _map_sizes(net: Network) -> list[int]:
    """The map size after each pooled conv layer (before any adaptive pool)."""
    size, sizes = net.image_size, []
    pool_size, pool_stride = net.pool_window
    for c in net.convs:
        size = conv_out(size, c.kernel, c.stride, c.padding)
        if c.pool:
            size = conv_out(size, pool_size, pool_stride, 0)
            sizes.append(size)
    return sizes
