# conv1_lrn (lrn) of paper, batch 32, for llvm-znver3: best of 64 trials in tvm_alexnet/tuning_logs/llvm-znver3, 5.504 ms, 21.9 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tvm_alexnet/tuning_logs/llvm-znver3 --variant paper --batch 32 --target llvm:znver3
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_lrn(x: T.Buffer((T.int64(32), T.int64(96), T.int64(55), T.int64(55)), "float32"), lrn: T.Buffer((T.int64(32), T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    lrn_sum = T.sblock_alloc_buffer((T.int64(32), T.int64(96), T.int64(55), T.int64(55)))
    for b_c_fused in T.parallel(T.int64(3072), annotations={"pragma_auto_unroll_max_step": 512, "pragma_unroll_explicit": 1}):
        for i in range(T.int64(55)):
            for ax0, ax1, ax2, ax3 in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(55)):
                with T.sblock("lrn_sum_init"):
                    v_b = T.axis.spatial(T.int64(32), b_c_fused // T.int64(96) + ax0)
                    v_c = T.axis.spatial(T.int64(96), b_c_fused % T.int64(96) + ax1)
                    v_i = T.axis.spatial(T.int64(55), i + ax2)
                    v_j = T.axis.spatial(T.int64(55), ax3)
                    T.reads()
                    T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                    lrn_sum[v_b, v_c, v_i, v_j] = T.float32(0.0)
                for ax4 in range(T.int64(5)):
                    with T.sblock("lrn_sum_update"):
                        v_b = T.axis.spatial(T.int64(32), b_c_fused // T.int64(96) + ax0)
                        v_c = T.axis.spatial(T.int64(96), b_c_fused % T.int64(96) + ax1)
                        v_i = T.axis.spatial(T.int64(55), i + ax2)
                        v_j, v_r = T.axis.remap("SR", [ax3, ax4])
                        T.reads(lrn_sum[v_b, v_c, v_i, v_j], x[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j])
                        T.writes(lrn_sum[v_b, v_c, v_i, v_j])
                        lrn_sum[v_b, v_c, v_i, v_j] = lrn_sum[v_b, v_c, v_i, v_j] + x[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * x[v_b, T.min(T.max(v_c + v_r - T.int64(2), T.int64(0)), T.int64(95)), v_i, v_j] * T.Cast("float32", T.int64(2) <= v_c + v_r and v_c + v_r < T.int64(98)) * T.Cast("float32", (v_c + v_r - T.int64(2)) // T.int64(48) == v_c // T.int64(48))
            for j_fused in T.vectorized(T.int64(55)):
                with T.sblock("lrn"):
                    v_b = T.axis.spatial(T.int64(32), b_c_fused // T.int64(96))
                    v_c = T.axis.spatial(T.int64(96), b_c_fused % T.int64(96))
                    v_i, v_j = T.axis.remap("SS", [i, j_fused])
                    T.reads(x[v_b, v_c, v_i, v_j], lrn_sum[v_b, v_c, v_i, v_j])
                    T.writes(lrn[v_b, v_c, v_i, v_j])
                    lrn[v_b, v_c, v_i, v_j] = x[v_b, v_c, v_i, v_j] / (T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j]) * T.sqrt(T.sqrt(T.float32(2.0) + T.float32(0.0001) * lrn_sum[v_b, v_c, v_i, v_j])))