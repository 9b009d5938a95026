"""The network in float64 numpy, written from the formulas: the oracle of the tests.

It shares only the spec's hyper-parameters with the code under test, none of
its arithmetic (no TVM, no torch).
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tvm_alexnet.spec import LRN_CONVENTIONS, POOL_SIZE, POOL_STRIDE, Network


def conv2d(x, w, b, stride, padding, groups):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = w.shape[-1]
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]  # N C OH OW k k
    cin, cout = w.shape[1], w.shape[0] // groups
    out = [np.einsum("nchwij,ocij->nohw", windows[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout],
                     optimize=True) for g in range(groups)]
    return np.concatenate(out, axis=1) + b[None, :, None, None]


def relu(x):
    return np.maximum(x, 0)


def activation(x, name):
    """The spec's activation by name (None: x as it is)."""
    return {"relu": relu, "tanh": np.tanh, None: lambda t: t}[name](x)


def lrn(x, size, alpha, beta, k, groups=1):
    """b[c] = a[c] / (k + alpha * sum_{j=max(g0,c-size//2)}^{min(g1,c+(size-1)//2)} a[j]^2)^beta,
    g0..g1 the channels of c's group."""
    out = np.empty_like(x)
    channels = x.shape[1]
    per = channels // groups
    for c in range(channels):
        g0 = c // per * per
        lo, hi = max(g0, c - size // 2), min(g0 + per - 1, c + (size - 1) // 2)
        s = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        out[:, c] = x[:, c] / (k + alpha * s) ** beta
    return out


def max_pool(x, size=POOL_SIZE, stride=POOL_STRIDE):
    return sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(-1, -2))


def adaptive_avg_pool(x, out_size):
    n, c, h, w = x.shape
    out = np.empty((n, c, out_size, out_size))
    for i in range(out_size):
        h0, h1 = (i * h) // out_size, math.ceil((i + 1) * h / out_size)
        for j in range(out_size):
            w0, w1 = (j * w) // out_size, math.ceil((j + 1) * w / out_size)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(-1, -2))
    return out


def dense(x, w, b):
    return x @ w.T + b


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def forward(net: Network, params: dict, x, until: str | None = None):
    """Logits of `net` (inference: no dropout) in float64; with `until`, the
    output of that layer (a conv layer's after its activation, LRN and pools)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    for c in net.convs:
        x = activation(conv2d(x, p[f"{c.name}.weight"], p[f"{c.name}.bias"], c.stride, c.padding, c.groups),
                       c.activation)
        if c.lrn:
            q = LRN_CONVENTIONS[net.lrn]
            x = lrn(x, q.size, q.alpha, q.beta, q.k, net.lrn_groups)
        if c.pool:
            x = max_pool(x, *net.pool_window)
        if c is net.convs[-1] and net.avgpool is not None:
            x = adaptive_avg_pool(x, net.avgpool)
        if c.name == until:
            return x
    x = x.reshape(x.shape[0], -1)
    for d in net.dense:
        x = activation(dense(x, p[f"{d.name}.weight"], p[f"{d.name}.bias"]), d.activation)
        if d.name == until:
            return x
    return x


def rel_error(out, ref) -> float:
    out = np.asarray(out, np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
