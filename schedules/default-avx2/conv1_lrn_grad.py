# conv1_lrn_grad (lrn_grad) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_lrn_grad(dy: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), saved: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), lrn_grad: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    lrn_sum = T.sblock_alloc_buffer((n, T.int64(96), T.int64(55), T.int64(55)))
    lrn_t = T.sblock_alloc_buffer((n, T.int64(100), T.int64(55), T.int64(55)))
    lrn_back = T.sblock_alloc_buffer((n, T.int64(96), T.int64(55), T.int64(55)))
    for b in range(n):
        for ax0 in T.parallel(T.int64(96)):
            for ax1 in range(T.int64(55)):
                for ax2_init in T.vectorized(T.int64(55)):
                    with T.sblock("lrn_sum_init"):
                        v_b, v_c, v_i, v_j = T.axis.remap("SSSS", [b, ax0, ax1, ax2_init])
                        T.reads()
                        T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                        lrn_sum[v_b, v_c, v_i, v_j] = T.float32(0.0)
                for ax3 in range(T.int64(5)):
                    for ax2 in T.vectorized(T.int64(55)):
                        with T.sblock("lrn_sum_update"):
                            v_b, v_c, v_i, v_j, v_r = T.axis.remap("SSSSR", [b, ax0, ax1, ax2, ax3])
                            T.reads(lrn_sum[v_b, v_c, v_i, v_j], saved[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j])
                            T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                            lrn_sum[v_b, v_c, v_i, v_j] = lrn_sum[v_b, v_c, v_i, v_j] + saved[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * saved[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * T.Cast("float32", T.int64(2) <= v_c + v_r and v_c + v_r < T.int64(98)) * T.Cast("float32", (v_c + v_r - T.int64(2)) // T.int64(48) == v_c // T.int64(48))
        for ax0 in T.parallel(T.int64(100)):
            for ax1 in range(T.int64(55)):
                for ax2 in T.vectorized(T.int64(55)):
                    with T.sblock("lrn_t"):
                        v_b, v_c, v_i, v_j = T.axis.remap("SSSS", [b, ax0, ax1, ax2])
                        T.reads(dy[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j], saved[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j], lrn_sum[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j])
                        T.writes(lrn_t[v_b, v_c, v_i, v_j])
                        lrn_t[v_b, v_c, v_i, v_j] = dy[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * saved[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * (T.float32(1.0) / (T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j]) * T.sqrt(T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j])))) / (T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j]) * T.Cast("float32", T.int64(2) <= v_c and v_c < T.int64(98))
        for ax0 in T.parallel(T.int64(96)):
            for ax1 in range(T.int64(55)):
                for ax2_init in T.vectorized(T.int64(55)):
                    with T.sblock("lrn_back_init"):
                        v_b, v_c, v_i, v_j = T.axis.remap("SSSS", [b, ax0, ax1, ax2_init])
                        T.reads()
                        T.writes(lrn_back[v_b, v_c, v_i, v_j])
                        lrn_back[v_b, v_c, v_i, v_j] = T.float32(0.0)
                for ax3 in range(T.int64(5)):
                    for ax2 in T.vectorized(T.int64(55)):
                        with T.sblock("lrn_back_update"):
                            v_b, v_c, v_i, v_j, v_q = T.axis.remap("SSSSR", [b, ax0, ax1, ax2, ax3])
                            T.reads(lrn_back[v_b, v_c, v_i, v_j], lrn_t[v_b, v_c + v_q, v_i, v_j])
                            T.writes(lrn_back[v_b, v_c, v_i, v_j])
                            lrn_back[v_b, v_c, v_i, v_j] = lrn_back[v_b, v_c, v_i, v_j] + lrn_t[v_b, v_c + v_q, v_i, v_j] * T.Cast("float32", (v_c + v_q - T.int64(2)) // T.int64(48) == v_c // T.int64(48))
        for c in T.parallel(T.int64(96)):
            for i in range(T.int64(55)):
                for j in T.vectorized(T.int64(55)):
                    with T.sblock("lrn_grad"):
                        v_b, v_c, v_i, v_j = T.axis.remap("SSSS", [b, c, i, j])
                        T.reads(dy[v_b, v_c, v_i, v_j], lrn_sum[v_b, v_c, v_i, v_j], saved[v_b, v_c, v_i, v_j], lrn_back[v_b, v_c, v_i, v_j])
                        T.writes(lrn_grad[v_b, v_c, v_i, v_j])
                        lrn_grad[v_b, v_c, v_i, v_j] = dy[v_b, v_c, v_i, v_j] * (T.float32(1.0) / (T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j]) * T.sqrt(T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j])))) - T.float32(0.00015000000000000001) * saved[v_b, v_c, v_i, v_j] * lrn_back[v_b, v_c, v_i, v_j]