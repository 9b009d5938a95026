# conv1_lrn (lrn) of paper, batch 1, for llvm-znver3: best of 64 trials in tuning_logs/llvm-znver3, 0.174 ms, 21.8 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_lrn(x: T.Buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)), "float32"), lrn: T.Buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    lrn_square = T.sblock_alloc_buffer((T.int64(1), T.int64(100), T.int64(55), T.int64(55)))
    lrn_sum = T.sblock_alloc_buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)))
    for b_c_fused in T.parallel(T.int64(100)):
        for i in range(T.int64(55)):
            for j_fused in T.vectorized(T.int64(55)):
                with T.sblock("lrn_square"):
                    v_b = T.axis.spatial(T.int64(1), T.int64(0))
                    v_c, v_i, v_j = T.axis.remap("SSS", [b_c_fused, i, j_fused])
                    T.reads(x[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j])
                    T.writes(lrn_square[v_b, v_c, v_i, v_j])
                    lrn_square[v_b, v_c, v_i, v_j] = x[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * x[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * T.Cast("float32", T.int64(2) <= v_c and v_c < T.int64(98))
    for b_c_fused in T.parallel(T.int64(96), annotations={"pragma_auto_unroll_max_step": 512, "pragma_unroll_explicit": 1}):
        for ax0, ax1, ax2, ax3 in T.grid(T.int64(1), T.int64(1), T.int64(55), T.int64(55)):
            with T.sblock("lrn_sum_init"):
                v_b = T.axis.spatial(T.int64(1), ax0)
                v_c = T.axis.spatial(T.int64(96), b_c_fused + ax1)
                v_i, v_j = T.axis.remap("SS", [ax2, ax3])
                T.reads()
                T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                lrn_sum[v_b, v_c, v_i, v_j] = T.float32(0.0)
            for ax4 in range(T.int64(5)):
                with T.sblock("lrn_sum_update"):
                    v_b = T.axis.spatial(T.int64(1), ax0)
                    v_c = T.axis.spatial(T.int64(96), b_c_fused + ax1)
                    v_i, v_j, v_r = T.axis.remap("SSR", [ax2, ax3, ax4])
                    T.reads(lrn_sum[v_b, v_c, v_i, v_j], lrn_square[v_b, v_c + v_r, v_i, v_j])
                    T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                    lrn_sum[v_b, v_c, v_i, v_j] = lrn_sum[v_b, v_c, v_i, v_j] + lrn_square[v_b, v_c + v_r, v_i, v_j] * T.Cast("float32", (v_c + v_r - T.int64(2)) // T.int64(48) == v_c // T.int64(48))
        for i in range(T.int64(55)):
            for j_fused in T.vectorized(T.int64(55)):
                with T.sblock("lrn"):
                    v_b = T.axis.spatial(T.int64(1), T.int64(0))
                    v_c, v_i, v_j = T.axis.remap("SSS", [b_c_fused, i, j_fused])
                    T.reads(x[v_b, v_c, v_i, v_j], lrn_sum[v_b, v_c, v_i, v_j])
                    T.writes(lrn[v_b, v_c, v_i, v_j])
                    lrn[v_b, v_c, v_i, v_j] = x[v_b, v_c, v_i, v_j] / (T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j]) * T.sqrt(T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j])))