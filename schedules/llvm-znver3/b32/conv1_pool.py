# conv1_pool (max_pool) of paper, batch 32, for llvm-znver3: best of 28 trials in tvm_alexnet/tuning_logs/llvm-znver3, 1.874 ms, 10.8 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tvm_alexnet/tuning_logs/llvm-znver3 --variant paper --batch 32 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_pool(x: T.Buffer((T.int64(32), T.int64(96), T.int64(55), T.int64(55)), "float32"), pool_max: T.Buffer((T.int64(32), T.int64(96), T.int64(27), T.int64(27)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for ax0_ax1_fused in T.parallel(T.int64(3072), annotations={"pragma_auto_unroll_max_step": 64, "pragma_unroll_explicit": 1}):
        for ax2, ax3 in T.grid(T.int64(27), T.int64(27)):
            with T.sblock("pool_max_init"):
                v_ax0 = T.axis.spatial(T.int64(32), ax0_ax1_fused // T.int64(96))
                v_ax1 = T.axis.spatial(T.int64(96), ax0_ax1_fused % T.int64(96))
                v_ax2, v_ax3 = T.axis.remap("SS", [ax2, ax3])
                T.reads()
                T.writes(pool_max[v_ax0, v_ax1, v_ax2, v_ax3])
                pool_max[v_ax0, v_ax1, v_ax2, v_ax3] = T.float32(-340282346638528859811704183484516925440.0)
            for rv0, rv1 in T.grid(T.int64(3), T.int64(3)):
                with T.sblock("pool_max_update"):
                    v_ax0 = T.axis.spatial(T.int64(32), ax0_ax1_fused // T.int64(96))
                    v_ax1 = T.axis.spatial(T.int64(96), ax0_ax1_fused % T.int64(96))
                    v_ax2, v_ax3, v_rv0, v_rv1 = T.axis.remap("SSRR", [ax2, ax3, rv0, rv1])
                    T.reads(pool_max[v_ax0, v_ax1, v_ax2, v_ax3], x[v_ax0, v_ax1, v_ax2 * T.int64(2) + v_rv0, v_ax3 * T.int64(2) + v_rv1])
                    T.writes(pool_max[v_ax0, v_ax1, v_ax2, v_ax3])
                    pool_max[v_ax0, v_ax1, v_ax2, v_ax3] = T.max(pool_max[v_ax0, v_ax1, v_ax2, v_ax3], x[v_ax0, v_ax1, v_ax2 * T.int64(2) + v_rv0, v_ax3 * T.int64(2) + v_rv1])