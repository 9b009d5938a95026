# conv5_pool_grad (max_pool_grad) of paper, hand-written default (tvm_alexnet/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv5_pool_grad(dy: T.Buffer((n, T.int64(256), T.int64(6), T.int64(6)), "float32"), saved: T.Buffer((n, T.int64(256), T.int64(13), T.int64(13)), "float32"), max_pool_grad: T.Buffer((n, T.int64(256), T.int64(13), T.int64(13)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pool_argmax_v0 = T.sblock_alloc_buffer((n, T.int64(256), T.int64(6), T.int64(6)), "int32")
    pool_argmax_v1 = T.sblock_alloc_buffer((n, T.int64(256), T.int64(6), T.int64(6)))
    for b_c_fused in T.parallel(n * T.int64(256)):
        for i, j, r0, r1 in T.grid(T.int64(6), T.int64(6), T.int64(3), T.int64(3)):
            with T.sblock("pool_argmax"):
                v_b = T.axis.spatial(n, b_c_fused // T.int64(256))
                v_c = T.axis.spatial(T.int64(256), b_c_fused % T.int64(256))
                v_i, v_j, v_r0, v_r1 = T.axis.remap("SSRR", [i, j, r0, r1])
                T.reads(saved[v_b, v_c, v_i * T.int64(2) + v_r0, v_j * T.int64(2) + v_r1])
                T.writes(pool_argmax_v0[v_b, v_c, v_i, v_j], pool_argmax_v1[v_b, v_c, v_i, v_j])
                with T.init():
                    pool_argmax_v0[v_b, v_c, v_i, v_j] = 9
                    pool_argmax_v1[v_b, v_c, v_i, v_j] = T.float32(-340282346638528859811704183484516925440.0)
                v_pool_argmax_v0: T.let[T.int64] = T.Select(saved[v_b, v_c, v_i * T.int64(2) + v_r0, v_j * T.int64(2) + v_r1] > pool_argmax_v1[v_b, v_c, v_i, v_j] or saved[v_b, v_c, v_i * T.int64(2) + v_r0, v_j * T.int64(2) + v_r1] == pool_argmax_v1[v_b, v_c, v_i, v_j] and v_r0 * T.int64(3) + v_r1 < T.Cast("int64", pool_argmax_v0[v_b, v_c, v_i, v_j]), v_r0 * T.int64(3) + v_r1, T.Cast("int64", pool_argmax_v0[v_b, v_c, v_i, v_j]))
                v_pool_argmax_v1: T.let[T.float32] = T.Select(saved[v_b, v_c, v_i * T.int64(2) + v_r0, v_j * T.int64(2) + v_r1] > pool_argmax_v1[v_b, v_c, v_i, v_j] or saved[v_b, v_c, v_i * T.int64(2) + v_r0, v_j * T.int64(2) + v_r1] == pool_argmax_v1[v_b, v_c, v_i, v_j] and v_r0 * T.int64(3) + v_r1 < T.Cast("int64", pool_argmax_v0[v_b, v_c, v_i, v_j]), saved[v_b, v_c, v_i * T.int64(2) + v_r0, v_j * T.int64(2) + v_r1], pool_argmax_v1[v_b, v_c, v_i, v_j])
                pool_argmax_v0[v_b, v_c, v_i, v_j] = T.Cast("int32", v_pool_argmax_v0)
                pool_argmax_v1[v_b, v_c, v_i, v_j] = v_pool_argmax_v1
    for b_c_fused in T.parallel(n * T.int64(256)):
        for i, j, a0, a1 in T.grid(T.int64(13), T.int64(13), T.int64(2), T.int64(2)):
            with T.sblock("max_pool_grad"):
                v_b = T.axis.spatial(n, b_c_fused // T.int64(256))
                v_c = T.axis.spatial(T.int64(256), b_c_fused % T.int64(256))
                v_i, v_j, v_a0, v_a1 = T.axis.remap("SSRR", [i, j, a0, a1])
                T.reads(pool_argmax_v0[v_b, v_c, T.max(v_i // T.int64(2) - v_a0, T.int64(0)), T.max(v_j // T.int64(2) - v_a1, T.int64(0))], dy[v_b, v_c, v_i // T.int64(2) - v_a0, v_j // T.int64(2) - v_a1])
                T.writes(max_pool_grad[v_b, v_c, v_i, v_j])
                with T.init():
                    max_pool_grad[v_b, v_c, v_i, v_j] = T.float32(0.0)
                max_pool_grad[v_b, v_c, v_i, v_j] = max_pool_grad[v_b, v_c, v_i, v_j] + T.if_then_else(T.int64(0) <= v_i // T.int64(2) - v_a0 and v_i // T.int64(2) - v_a0 < T.int64(6) and T.int64(0) <= v_j // T.int64(2) - v_a1 and v_j // T.int64(2) - v_a1 < T.int64(6) and v_a0 * T.int64(2) + v_i - v_i // T.int64(2) * T.int64(2) < T.int64(3) and v_a1 * T.int64(2) + v_j - v_j // T.int64(2) * T.int64(2) < T.int64(3) and T.Cast("int64", pool_argmax_v0[v_b, v_c, T.max(v_i // T.int64(2) - v_a0, T.int64(0)), T.max(v_j // T.int64(2) - v_a1, T.int64(0))]) == v_a0 * T.int64(6) + v_i * T.int64(3) + v_a1 * T.int64(2) + v_j - v_j // T.int64(2) * T.int64(2) - v_i // T.int64(2) * T.int64(6), dy[v_b, v_c, v_i // T.int64(2) - v_a0, v_j // T.int64(2) - v_a1], T.float32(0.0))