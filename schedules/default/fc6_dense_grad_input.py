# fc6_dense_grad_input (dense_grad_input) of paper, hand-written default (tvm_alexnet/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc6_dense_grad_input(dy: T.Buffer((n, T.int64(4096)), "float32"), weight: T.Buffer((T.int64(4096), T.int64(9216)), "float32"), dense_grad_input: T.Buffer((n, T.int64(9216)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    weight_global = T.sblock_alloc_buffer((T.int64(576), T.int64(4096), T.int64(16)))
    dense_grad_input_local = T.sblock_alloc_buffer((n, T.int64(9216)), scope="local")
    for ax0 in T.parallel(T.int64(4096)):
        for ax1 in range(T.int64(9216)):
            with T.sblock("weight_global"):
                v0, v1 = T.axis.remap("SS", [ax0, ax1])
                T.reads(weight[v0, v1])
                T.writes(weight_global[v1 // T.int64(16), v0, v1 % T.int64(16)])
                weight_global[v1 // T.int64(16), v0, v1 % T.int64(16)] = weight[v0, v1]
    for i_0 in T.parallel(T.int64(576)):
        for n_0 in range(n):
            for n_1_init in T.unroll(T.int64(1)):
                for i_1_init in T.vectorized(T.int64(16)):
                    with T.sblock("dense_grad_input_init"):
                        v_n = T.axis.spatial(n, n_0 + n_1_init)
                        v_i = T.axis.spatial(T.int64(9216), i_0 * T.int64(16) + i_1_init)
                        T.reads()
                        T.writes(dense_grad_input_local[v_n, v_i])
                        dense_grad_input_local[v_n, v_i] = T.float32(0.0)
            for j in range(T.int64(4096)):
                for n_1 in T.unroll(T.int64(1)):
                    for i_1 in T.vectorized(T.int64(16)):
                        with T.sblock("dense_grad_input_update"):
                            v_n = T.axis.spatial(n, n_0 + n_1)
                            v_i = T.axis.spatial(T.int64(9216), i_0 * T.int64(16) + i_1)
                            v_j = T.axis.reduce(T.int64(4096), j)
                            T.reads(dense_grad_input_local[v_n, v_i], dy[v_n, v_j], weight_global[v_i // T.int64(16), v_j, v_i % T.int64(16)])
                            T.writes(dense_grad_input_local[v_n, v_i])
                            dense_grad_input_local[v_n, v_i] = dense_grad_input_local[v_n, v_i] + dy[v_n, v_j] * weight_global[v_i // T.int64(16), v_j, v_i % T.int64(16)]
            for ax0 in range(T.int64(16)):
                with T.sblock("dense_grad_input_local"):
                    v0 = T.axis.spatial(n, n_0)
                    v1 = T.axis.spatial(T.int64(9216), i_0 * T.int64(16) + ax0)
                    T.reads(dense_grad_input_local[v0, v1])
                    T.writes(dense_grad_input[v0, v1])
                    dense_grad_input[v0, v1] = dense_grad_input_local[v0, v1]