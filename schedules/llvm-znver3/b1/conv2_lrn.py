# conv2_lrn (lrn) of paper, batch 1, for llvm-znver3: best of 64 trials in tvm_alexnet/tuning_logs/llvm-znver3, 0.086 ms, 28.2 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tvm_alexnet/tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm:znver3
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv2_lrn(x: T.Buffer((T.int64(1), T.int64(256), T.int64(27), T.int64(27)), "float32"), lrn: T.Buffer((T.int64(1), T.int64(256), T.int64(27), T.int64(27)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    lrn_square = T.sblock_alloc_buffer((T.int64(1), T.int64(260), T.int64(27), T.int64(27)))
    lrn_sum = T.sblock_alloc_buffer((T.int64(1), T.int64(256), T.int64(27), T.int64(27)))
    lrn_sum_rf = T.sblock_alloc_buffer((T.int64(1), T.int64(256), T.int64(27), T.int64(27), T.int64(1)))
    for b_c_fused in T.parallel(T.int64(260)):
        for i in range(T.int64(27)):
            for j_fused in T.vectorized(T.int64(27)):
                with T.sblock("lrn_square"):
                    v_b = T.axis.spatial(T.int64(1), T.int64(0))
                    v_c, v_i, v_j = T.axis.remap("SSS", [b_c_fused, i, j_fused])
                    T.reads(x[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(255)), v_i, v_j])
                    T.writes(lrn_square[v_b, v_c, v_i, v_j])
                    lrn_square[v_b, v_c, v_i, v_j] = x[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(255)), v_i, v_j] * x[v_b, T.min(T.max(v_c - T.int64(2), T.int64(0)), T.int64(255)), v_i, v_j] * T.Cast("float32", T.int64(2) <= v_c and v_c < T.int64(258))
    for b_c_fused in T.parallel(T.int64(256), annotations={"pragma_auto_unroll_max_step": 64, "pragma_unroll_explicit": 1}):
        for i in range(T.int64(27)):
            for ax4_init, ax0_init, ax1_init, ax2_init, ax3_init, ax4_init_1 in T.grid(T.int64(27), T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(1)):
                with T.sblock("lrn_sum_rf_init"):
                    vr_1, v_b = T.axis.remap("SS", [ax0_init, ax1_init])
                    v_c = T.axis.spatial(T.int64(256), b_c_fused + ax2_init)
                    v_i = T.axis.spatial(T.int64(27), i + ax3_init)
                    v_j = T.axis.spatial(T.int64(27), ax4_init + ax4_init_1)
                    T.reads()
                    T.writes(lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1])
                    lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1] = T.float32(0.0)
            for ax1_init, ax2_init, ax3_init, ax4_init in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(27)):
                with T.sblock("lrn_sum_init"):
                    v_b = T.axis.spatial(T.int64(1), ax1_init)
                    v_c = T.axis.spatial(T.int64(256), b_c_fused + ax2_init)
                    v_i = T.axis.spatial(T.int64(27), i + ax3_init)
                    v_j = T.axis.spatial(T.int64(27), ax4_init)
                    T.reads()
                    T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                    lrn_sum[v_b, v_c, v_i, v_j] = T.float32(0.0)
            for ax0, ax1, ax2, ax3, ax4 in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(27)):
                for ax0_1, ax1_1, ax2_1, ax3_1, ax4_1, ax5 in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(5)):
                    with T.sblock("lrn_sum_rf_update"):
                        vr_1, v_b = T.axis.remap("SS", [ax0_1, ax1_1])
                        v_c = T.axis.spatial(T.int64(256), b_c_fused + ax2_1)
                        v_i = T.axis.spatial(T.int64(27), i + ax3_1)
                        v_j = T.axis.spatial(T.int64(27), ax4 + ax4_1)
                        vr_0 = T.axis.reduce(T.int64(5), ax5)
                        T.reads(lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1], lrn_square[v_b, v_c + (vr_0 + vr_1), v_i, v_j])
                        T.writes(lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1])
                        lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1] = lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1] + lrn_square[v_b, v_c + (vr_0 + vr_1), v_i, v_j] * T.Cast("float32", (v_c + (vr_0 + vr_1) - T.int64(2)) // T.int64(128) == v_c // T.int64(128))
                with T.sblock("lrn_sum_update"):
                    vr_1, v_b = T.axis.remap("RS", [ax0, ax1])
                    v_c = T.axis.spatial(T.int64(256), b_c_fused + ax2)
                    v_i = T.axis.spatial(T.int64(27), i + ax3)
                    v_j = T.axis.spatial(T.int64(27), ax4)
                    T.reads(lrn_sum[v_b, v_c, v_i, v_j], lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1])
                    T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                    lrn_sum[v_b, v_c, v_i, v_j] = lrn_sum[v_b, v_c, v_i, v_j] + lrn_sum_rf[v_b, v_c, v_i, v_j, vr_1]
            for j_fused in T.vectorized(T.int64(27)):
                with T.sblock("lrn"):
                    v_b = T.axis.spatial(T.int64(1), T.int64(0))
                    v_c, v_i, v_j = T.axis.remap("SSS", [b_c_fused, i, j_fused])
                    T.reads(x[v_b, v_c, v_i, v_j], lrn_sum[v_b, v_c, v_i, v_j])
                    T.writes(lrn[v_b, v_c, v_i, v_j])
                    lrn[v_b, v_c, v_i, v_j] = x[v_b, v_c, v_i, v_j] / (T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j]) * T.sqrt(T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j])))