# conv1_lrn (lrn) of paper, hand-written default for AVX-512 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:sapphirerapids
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_lrn(x: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), lrn: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    lrn_sum = T.sblock_alloc_buffer((n, T.int64(96), T.int64(55), T.int64(55)))
    for b_c_fused in T.parallel(n * T.int64(96)):
        for i in range(T.int64(55)):
            for ax0_init in T.vectorized(T.int64(55)):
                with T.sblock("lrn_sum_init"):
                    v_b = T.axis.spatial(n, b_c_fused // T.int64(96))
                    v_c = T.axis.spatial(T.int64(96), b_c_fused % T.int64(96))
                    v_i, v_j = T.axis.remap("SS", [i, ax0_init])
                    T.reads()
                    T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                    lrn_sum[v_b, v_c, v_i, v_j] = T.float32(0.0)
            for ax1 in range(T.int64(5)):
                for ax0 in T.vectorized(T.int64(55)):
                    with T.sblock("lrn_sum_update"):
                        v_b = T.axis.spatial(n, b_c_fused // T.int64(96))
                        v_c = T.axis.spatial(T.int64(96), b_c_fused % T.int64(96))
                        v_i, v_j, v_r = T.axis.remap("SSR", [i, ax0, ax1])
                        T.reads(lrn_sum[v_b, v_c, v_i, v_j], x[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j])
                        T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                        lrn_sum[v_b, v_c, v_i, v_j] = lrn_sum[v_b, v_c, v_i, v_j] + x[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * x[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * T.Cast("float32", T.int64(2) <= v_c + v_r and v_c + v_r < T.int64(98)) * T.Cast("float32", (v_c + v_r - T.int64(2)) // T.int64(48) == v_c // T.int64(48))
            for j in T.vectorized(T.int64(55)):
                with T.sblock("lrn"):
                    v_b = T.axis.spatial(n, b_c_fused // T.int64(96))
                    v_c = T.axis.spatial(T.int64(96), b_c_fused % T.int64(96))
                    v_i, v_j = T.axis.remap("SS", [i, j])
                    T.reads(x[v_b, v_c, v_i, v_j], lrn_sum[v_b, v_c, v_i, v_j])
                    T.writes(lrn[v_b, v_c, v_i, v_j])
                    lrn[v_b, v_c, v_i, v_j] = x[v_b, v_c, v_i, v_j] / (T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j]) * T.sqrt(T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j])))