"""Spec -> Relax IRModule.

The module holds one PrimFunc per kernel, named as in the spec (`conv2_lrn`),
one Relax function per layer that chains that layer's kernels (`conv2`), and
`forward`, the whole network from image to logits, built from the same
kernels (not for one tower of a network: towers.py chains those).
`softmax` and the `<layer>_dropout` functions serve prediction and
training. A batch of None gives a symbolic batch dimension `n`.

A build may hand in kernels whose weights `forward` takes transformed
(`Transformed`: on CPU, Winograd's, and the dense layers' packed); forward then transforms them by a kernel
of their own, which relax.transform.LiftTransformParams lifts out into
`forward_transform_params`, run once per weight version (runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import tvm
from tvm import relax, te, tirx

from .ops import op_of
from .spec import Kernel, Network

DTYPE = "float32"


def _batch(batch: int | None):
    return tirx.Var("n", "int64") if batch is None else batch


def kernel_func(kernel: Kernel, batch: int | None) -> tirx.PrimFunc:
    """The kernel as a TIR PrimFunc in destination-passing style:
    (activations..., weight, bias, out)."""
    n = te.var("n", "int64") if batch is None else batch
    op = op_of(kernel)
    names = ("dy", "saved") if op.gradient else ("x", "mask")
    inputs = [te.placeholder((n, *s), DTYPE, name=names[i]) for i, s in enumerate(kernel.inputs)]
    params = [te.placeholder(s, DTYPE, name=name) for s, name in zip(kernel.params, ("weight", "bias"))]
    out = op.compute(*inputs, *params, **kernel.attrs)
    # int64 indices throughout, as Relax's shapes are: dlight's rules reject a mix.
    func = te.create_prim_func([*inputs, *params, out], index_dtype_override="int64")
    # topi marks dense weights "layout free": MetaSchedule then tunes as if their
    # layout change were done once ahead of time, but here every call gets the
    # weights as torch holds them, so its records would promise times no call reaches.
    return func.without_attr("layout_free_buffers").with_attr("global_symbol", kernel.name)


@dataclass(frozen=True)
class Transformed:
    """A kernel as `forward` runs it on transformed weights: `transform`
    (weight, out) makes them, of shape `shape`; `kernel` (x, transformed, bias, out) uses them."""

    transform: tirx.PrimFunc
    kernel: tirx.PrimFunc
    shape: tuple[int, ...]


class _Emitter:
    """Emits call_tir chains of the spec's kernels into Relax functions."""

    def __init__(self, net: Network, batch: int | None, transformed: dict[str, Transformed]):
        self.bb = relax.BlockBuilder()
        self.kernels = net.kernels(training=True)
        self.gvs = {k.name: self.bb.add_func(kernel_func(k, batch), k.name) for k in net.compiled_kernels()}
        self.transformed = transformed
        for name, t in transformed.items():
            for suffix, func in (("weight_transform", t.transform), ("transformed", t.kernel)):
                self.gvs[f"{name}_{suffix}"] = self.bb.add_func(
                    func.with_attr("global_symbol", f"{name}_{suffix}"), f"{name}_{suffix}")

    def tensor(self, name: str, shape, n=None) -> relax.Var:
        return relax.Var(name, relax.TensorType(shape if n is None else (n, *shape), DTYPE))

    def call(self, kernel: Kernel, args: list, n) -> relax.Var:
        out = relax.TensorType((n, *kernel.output), DTYPE)
        return self.bb.emit(relax.call_tir(self.gvs[kernel.name], args, out), name_hint=kernel.name)

    def stage(self, kernels: list[Kernel], x, params: dict, n, transform: bool = False):
        """One layer's inference kernels (masked ops, dropout, are the identity
        there); with `transform`, those in `transformed` on transformed weights."""
        for k in kernels:
            if op_of(k).masked:
                continue
            if transform and k.name in self.transformed:
                weight, bias = params[k.layer]
                t = relax.TensorType(self.transformed[k.name].shape, DTYPE)
                u = self.bb.emit(relax.call_tir(self.gvs[f"{k.name}_weight_transform"], [weight], t))
                out = relax.TensorType((n, *k.output), DTYPE)
                x = self.bb.emit(relax.call_tir(self.gvs[f"{k.name}_transformed"], [x, u, bias], out),
                                 name_hint=k.name)
                continue
            x = self.call(k, [x, *params[k.layer]] if k.params else [x], n)
        return x

    def function(self, name: str, inputs: list[relax.Var], body, attrs: dict | None = None) -> None:
        with self.bb.function(name, inputs, attrs=attrs):
            with self.bb.dataflow():
                out = self.bb.emit_output(body())
            self.bb.emit_func_output(out)


def build_module(net: Network, batch: int | None = None,
                 transformed: dict[str, Transformed] | None = None) -> tvm.IRModule:
    e = _Emitter(net, batch, transformed or {})
    # softmax is a kernel of its own, called on the logits, not a layer of `forward`.
    layers = [(layer, list(ks)) for layer, ks in groupby(e.kernels, key=lambda k: k.layer) if layer != "softmax"]
    param_shapes = net.params()

    def layer_params(layer):
        return [e.tensor(f"{layer}_{p}", param_shapes[f"{layer}.{p}"]) for p in ("weight", "bias")
                if f"{layer}.{p}" in param_shapes]

    # One function per layer, taking its input as the previous layer returns it.
    for layer, kernels in layers:
        n = _batch(batch)
        x = e.tensor("x", kernels[0].inputs[0], n)
        params = layer_params(layer)
        e.function(layer, [x, *params], lambda: e.stage(kernels, x, {layer: params}, n))

    if net.towers > 1:  # a tower's layers are chained by towers.py, across the exchanges
        return e.bb.get()

    # The whole network, parameters in the spec's (and the state dict's) order.
    n = _batch(batch)
    image = e.tensor("image", net.input_shape, n)
    params = {layer: layer_params(layer) for layer, _ in layers}
    flat_params = [p for ps in params.values() for p in ps]

    def forward():
        x = image
        for layer, kernels in layers:
            if layer == net.dense[0].name:
                x = e.bb.emit(relax.op.reshape(x, relax.ShapeExpr([n, net.dense[0].in_features])))
            x = e.stage(kernels, x, params, n, transform=True)
        return x

    # num_input: what follows the image are weights, for LiftTransformParams.
    e.function("forward", [image, *flat_params], forward, {"num_input": 1} if e.transformed else None)
    return e.bb.get()
