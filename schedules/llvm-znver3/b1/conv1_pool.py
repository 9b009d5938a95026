# conv1_pool (max_pool) of paper, batch 1, for llvm-znver3
# best of 28 trials in tuning_logs/llvm-znver3: 0.070 ms, 9.0 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_pool(x: T.Buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)), "float32"), pool_max: T.Buffer((T.int64(1), T.int64(96), T.int64(27), T.int64(27)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pool_max_rf = T.sblock_alloc_buffer((T.int64(1), T.int64(96), T.int64(27), T.int64(27), T.int64(1)))
    for ax0_ax1_fused in T.parallel(T.int64(96), annotations={"pragma_auto_unroll_max_step": 16, "pragma_unroll_explicit": 1}):
        for ax2, ax3, rv0_rv1_fused_0 in T.grid(T.int64(27), T.int64(27), T.int64(1)):
            with T.sblock("pool_max_rf_init"):
                vrv0_rv1_fused_0 = T.axis.spatial(T.int64(1), rv0_rv1_fused_0)
                v_ax0 = T.axis.spatial(T.int64(1), T.int64(0))
                v_ax1, v_ax2, v_ax3 = T.axis.remap("SSS", [ax0_ax1_fused, ax2, ax3])
                T.reads()
                T.writes(pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0])
                pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0] = T.float32(-340282346638528859811704183484516925440.0)
            for rv0_rv1_fused_1 in range(T.int64(9)):
                with T.sblock("pool_max_rf_update"):
                    vrv0_rv1_fused_0 = T.axis.spatial(T.int64(1), rv0_rv1_fused_0)
                    v_ax0 = T.axis.spatial(T.int64(1), T.int64(0))
                    v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_1 = T.axis.remap("SSSR", [ax0_ax1_fused, ax2, ax3, rv0_rv1_fused_1])
                    T.reads(pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0], x[v_ax0, v_ax1, v_ax2 * T.int64(2) + (vrv0_rv1_fused_0 * T.int64(9) + vrv0_rv1_fused_1) // T.int64(3), v_ax3 * T.int64(2) + (vrv0_rv1_fused_0 * T.int64(9) + vrv0_rv1_fused_1) % T.int64(3)])
                    T.writes(pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0])
                    pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0] = T.max(pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0], x[v_ax0, v_ax1, v_ax2 * T.int64(2) + (vrv0_rv1_fused_0 * T.int64(9) + vrv0_rv1_fused_1) // T.int64(3), v_ax3 * T.int64(2) + (vrv0_rv1_fused_0 * T.int64(9) + vrv0_rv1_fused_1) % T.int64(3)])
    for ax0_ax1_fused in T.parallel(T.int64(96), annotations={"pragma_auto_unroll_max_step": 16, "pragma_unroll_explicit": 1}):
        for ax2, ax3 in T.grid(T.int64(27), T.int64(27)):
            with T.sblock("pool_max_init"):
                v_ax0 = T.axis.spatial(T.int64(1), T.int64(0))
                v_ax1, v_ax2, v_ax3 = T.axis.remap("SSS", [ax0_ax1_fused, ax2, ax3])
                T.reads()
                T.writes(pool_max[v_ax0, v_ax1, v_ax2, v_ax3])
                T.sblock_attr({"meta_schedule.random_compute_producer": 1})
                pool_max[v_ax0, v_ax1, v_ax2, v_ax3] = T.float32(-340282346638528859811704183484516925440.0)
            for rv0_rv1_fused_0 in range(T.int64(1)):
                with T.sblock("pool_max_update"):
                    vrv0_rv1_fused_0 = T.axis.reduce(T.int64(1), rv0_rv1_fused_0)
                    v_ax0 = T.axis.spatial(T.int64(1), T.int64(0))
                    v_ax1, v_ax2, v_ax3 = T.axis.remap("SSS", [ax0_ax1_fused, ax2, ax3])
                    T.reads(pool_max[v_ax0, v_ax1, v_ax2, v_ax3], pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0])
                    T.writes(pool_max[v_ax0, v_ax1, v_ax2, v_ax3])
                    T.sblock_attr({"meta_schedule.random_compute_producer": 1})
                    pool_max[v_ax0, v_ax1, v_ax2, v_ax3] = T.max(pool_max[v_ax0, v_ax1, v_ax2, v_ax3], pool_max_rf[v_ax0, v_ax1, v_ax2, v_ax3, vrv0_rv1_fused_0])