"""Activations (ReLU, tanh), dropout (with a mask drawn by the caller) and softmax."""

from tvm import te, tirx, topi


def relu(y: te.Tensor) -> te.Tensor:
    # max(0, y) rather than topi's max(y, 0): LLVM's select then passes a NaN
    # through, as torch's ReLU does, instead of turning it into 0.
    zero = tirx.const(0, y.dtype)
    return te.compute(y.shape, lambda *i: tirx.max(zero, y(*i)), name="compute")


def tanh(y: te.Tensor) -> te.Tensor:
    return te.compute(y.shape, lambda *i: te.tanh(y(*i)), name="compute")


def activate(y: te.Tensor, activation: str | None) -> te.Tensor:
    """`y` through the named activation (spec.ACTIVATIONS), or as it is for
    None. Every activation is one block named "compute", which the CPU and
    GPU schedules inline into the conv's and dense layer's tiles."""
    if activation is None:
        return y
    return {"relu": relu, "tanh": tanh}[activation](y)


def dropout(x: te.Tensor, mask: te.Tensor, *, p: float) -> te.Tensor:
    # The mask holds 0 or 1/(1-p) (inverted dropout); drawing it is the caller's
    # job, so that torch's RNG decides it and the same mask serves the backward.
    del p
    return te.compute(x.shape, lambda *i: x(*i) * mask(*i), name="dropout")


def softmax(x: te.Tensor) -> te.Tensor:
    return topi.nn.softmax(x, axis=-1)
