"""The weight gradient of an r x r, stride-1 convolution padded by r // 2,
by Winograd F(r, s) over s x s tiles of dy (winograd.grad_weight_plan; CPU
builds: conv2's, F(5,3)); scheduled by cpu_winograd.schedule_grad_weight."""

from __future__ import annotations

from tvm import te, tirx

from .winograd import Plan, _const, input_transform, transform_matrices


def grad_weight_compute(plan: Plan, dtype: str = "float32") -> list[te.Tensor]:
    """(dy, x, dw): the weight gradient of an r x r, stride-1 convolution
    padded by r // 2, `plan` a grad_weight_plan. Per s x s tile p of dy and
    the alpha x alpha patch of x it meets, dw = A^T [(G dy_p G^T) * (B^T x_p B)] A
    of F(r, s), summed over the tiles in the transformed domain: per position
    e a GEMM M[e, g, co, ci] = sum over p of D[e, g, p, co] V[e, g, p, ci],
    per chunk of images, the chunks summed by the output transform."""
    r, s, alpha, t, size = plan.r, plan.m, plan.alpha, plan.tiles, plan.size
    a_mat, _, g_mat = transform_matrices(r, s)  # A: alpha x r, G: alpha x s
    x = te.placeholder((plan.batch, plan.in_channels, size, size), dtype, name="x")
    dy = te.placeholder((plan.batch, plan.out_channels, size, size), dtype, name="dy")
    v = input_transform(x, plan)
    side, go, zero = t * s, plan.cout, tirx.const(0, dtype)

    def padded(k, i, y, xx, c):  # dy, channels last, with zeros to whole tiles
        inside = tirx.all(k * plan.images + i < plan.batch, y < size, xx < size)
        return tirx.if_then_else(inside, dy[k * plan.images + i, c, y, xx], zero)

    pad = te.compute((plan.chunks, plan.images, side, side, plan.out_channels), padded, name="wgrad_dy_pad")
    tile = te.compute((plan.chunks, plan.groups, plan.p, s, s, go),
                      lambda k, g, p, y, xx, co: pad[k, p // (t * t), p // t % t * s + y, p % t * s + xx, g * go + co],
                      name="wgrad_dy_d")
    rk, rj = te.reduce_axis((0, s), "rk"), te.reduce_axis((0, s), "rj")
    half = te.compute((plan.chunks, plan.groups, plan.p, alpha, s, go),
                      lambda k, g, p, a, j, co: te.sum(_const(g_mat, a, rk) * tile[k, g, p, rk, j, co], axis=rk),
                      name="wgrad_dy_h")
    d = te.compute((plan.chunks, alpha * alpha, plan.groups, plan.p, go),
                   lambda k, e, g, p, co: te.sum(_const(g_mat, e % alpha, rj) * half[k, g, p, e // alpha, rj, co],
                                                 axis=rj),
                   name="wgrad_dy_v")
    rp = te.reduce_axis((0, plan.p), "rp")
    mm = te.compute((plan.chunks, alpha * alpha, plan.groups, go, plan.cin),
                    lambda k, e, g, co, ci: te.sum(d[k, e, g, rp, co] * v[k, e, g, rp, ci], axis=rp), name="wgrad_m")
    rc, rb, ra = te.reduce_axis((0, plan.chunks), "rc"), te.reduce_axis((0, alpha), "rb"), te.reduce_axis((0, alpha), "ra")
    mh = te.compute((plan.groups, go, plan.cin, alpha, r),
                    lambda g, co, ci, a, j: te.sum(_const(a_mat, rb, j) * mm[rc, a * alpha + rb, g, co, ci],
                                                   axis=[rc, rb]),
                    name="wgrad_o")
    dw = te.compute((plan.out_channels, plan.cin, r, r),
                    lambda o, ci, u, j: te.sum(_const(a_mat, ra, u) * mh[o // go, o % go, ci, ra, j], axis=ra),
                    name="wgrad_y")
    return [dy, x, dw]
