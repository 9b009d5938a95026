# fc7_dense_grad_input (dense_grad_input) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc7_dense_grad_input(dy: T.Buffer((n, T.int64(4096)), "float32"), weight: T.Buffer((T.int64(4096), T.int64(4096)), "float32"), dense_grad_input: T.Buffer((n, T.int64(4096)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for i_0 in T.parallel(T.int64(8)):
        for i_1_init, n_init in T.grid(T.int64(16), n):
            for i_2_0_init in T.unroll(T.int64(4)):
                for i_2_1_init in T.vectorized(T.int64(8)):
                    with T.sblock("dense_grad_input_init"):
                        v_n = T.axis.spatial(n, n_init)
                        v_i = T.axis.spatial(T.int64(4096), i_0 * T.int64(512) + i_1_init * T.int64(32) + i_2_0_init * T.int64(8) + i_2_1_init)
                        T.reads()
                        T.writes(dense_grad_input[v_n, v_i])
                        dense_grad_input[v_n, v_i] = T.float32(0.0)
        for j_0, i_1, n_1, j_1 in T.grid(T.int64(512), T.int64(16), n, T.int64(8)):
            for i_2_0 in T.unroll(T.int64(4)):
                for i_2_1 in T.vectorized(T.int64(8)):
                    with T.sblock("dense_grad_input_update"):
                        v_n = T.axis.spatial(n, n_1)
                        v_i = T.axis.spatial(T.int64(4096), i_0 * T.int64(512) + i_1 * T.int64(32) + i_2_0 * T.int64(8) + i_2_1)
                        v_j = T.axis.reduce(T.int64(4096), j_0 * T.int64(8) + j_1)
                        T.reads(dense_grad_input[v_n, v_i], dy[v_n, v_j], weight[v_j, v_i])
                        T.writes(dense_grad_input[v_n, v_i])
                        dense_grad_input[v_n, v_i] = dense_grad_input[v_n, v_i] + dy[v_n, v_j] * weight[v_j, v_i]