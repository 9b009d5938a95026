# conv1_pool (max_pool) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_pool(x: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), pool_max: T.Buffer((n, T.int64(96), T.int64(27), T.int64(27)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for b_k_fused in T.parallel(n * T.int64(96)):
        for i, j in T.grid(T.int64(27), T.int64(27)):
            for rv0 in T.unroll(T.int64(3)):
                for rv1 in T.unroll(T.int64(3)):
                    with T.sblock("pool_max"):
                        v_b = T.axis.spatial(n, b_k_fused // T.int64(96))
                        v_k = T.axis.spatial(T.int64(96), b_k_fused % T.int64(96))
                        v_i, v_j, v_rv0, v_rv1 = T.axis.remap("SSRR", [i, j, rv0, rv1])
                        T.reads(x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1])
                        T.writes(pool_max[v_b, v_k, v_i, v_j])
                        with T.init():
                            pool_max[v_b, v_k, v_i, v_j] = T.float32(-340282346638528859811704183484516925440.0)
                        pool_max[v_b, v_k, v_i, v_j] = T.Select(T.isnan(x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1]) | (x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1] > pool_max[v_b, v_k, v_i, v_j]), x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1], pool_max[v_b, v_k, v_i, v_j])