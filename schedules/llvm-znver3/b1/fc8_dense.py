# fc8_dense (dense) of paper, batch 1, for llvm-znver3
# best of 31 trials in tuning_logs/llvm-znver3: 0.259 ms, 31.6 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def fc8_dense(x: T.Buffer((T.int64(1), T.int64(4096)), "float32"), weight: T.Buffer((T.int64(1000), T.int64(4096)), "float32"), bias: T.Buffer((T.int64(1000),), "float32"), T_add: T.Buffer((T.int64(1), T.int64(1000)), "float32")):
    T.func_attr({"layout_free_buffers": [1], "tirx.noalias": True})
    # with T.sblock("root"):
    T_matmul_NT = T.sblock_alloc_buffer((T.int64(1), T.int64(1000)))
    weight_global = T.sblock_alloc_buffer((T.int64(50), T.int64(64), T.int64(64), T.int64(20)))
    for ax0, ax1 in T.grid(T.int64(1000), T.int64(4096)):
        with T.sblock("weight_global"):
            v0, v1 = T.axis.remap("SS", [ax0, ax1])
            T.reads(weight[v0, v1])
            T.writes(weight_global[v0 // T.int64(20), v1 // T.int64(64), v1 % T.int64(64), v0 % T.int64(20)])
            T.sblock_attr({"meta_schedule.layout_rewrite_preproc": 1})
            weight_global[v0 // T.int64(20), v1 // T.int64(64), v1 % T.int64(64), v0 % T.int64(20)] = weight[v0, v1]
    for i0_0_i1_0_fused in T.parallel(T.int64(50), annotations={"pragma_auto_unroll_max_step": 512, "pragma_unroll_explicit": 1}):
        for i0_1, i1_1 in T.grid(T.int64(1), T.int64(1)):
            for i0_2_init, i1_2_init, i0_3_init in T.grid(T.int64(1), T.int64(1), T.int64(1)):
                for i1_3_fused_init in T.vectorized(T.int64(20)):
                    with T.sblock("T_matmul_NT_init"):
                        v_i0 = T.axis.spatial(T.int64(1), i0_1 + i0_2_init + i0_3_init)
                        v_i1 = T.axis.spatial(T.int64(1000), i0_0_i1_0_fused * T.int64(20) + i1_1 * T.int64(20) + i1_2_init * T.int64(20) + i1_3_fused_init)
                        T.reads()
                        T.writes(T_matmul_NT[v_i0, v_i1])
                        T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                        T_matmul_NT[v_i0, v_i1] = T.float32(0.0)
            for k_0, i0_2, i1_2, k_1, i0_3 in T.grid(T.int64(64), T.int64(1), T.int64(1), T.int64(64), T.int64(1)):
                for i1_3_fused in T.vectorized(T.int64(20)):
                    with T.sblock("T_matmul_NT_update"):
                        v_i0 = T.axis.spatial(T.int64(1), i0_1 + i0_2 + i0_3)
                        v_i1 = T.axis.spatial(T.int64(1000), i0_0_i1_0_fused * T.int64(20) + i1_1 * T.int64(20) + i1_2 * T.int64(20) + i1_3_fused)
                        v_k = T.axis.reduce(T.int64(4096), k_0 * T.int64(64) + k_1)
                        T.reads(T_matmul_NT[v_i0, v_i1], x[v_i0, v_k], weight_global[v_i1 // T.int64(20), v_k // T.int64(64), v_k % T.int64(64), v_i1 % T.int64(20)])
                        T.writes(T_matmul_NT[v_i0, v_i1])
                        T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                        T_matmul_NT[v_i0, v_i1] = T_matmul_NT[v_i0, v_i1] + x[v_i0, v_k] * weight_global[v_i1 // T.int64(20), v_k // T.int64(64), v_k % T.int64(64), v_i1 % T.int64(20)]
        for ax0 in range(T.int64(1)):
            for ax1_fused in T.vectorized(T.int64(20)):
                with T.sblock("T_add"):
                    v_ax0 = T.axis.spatial(T.int64(1), ax0)
                    v_ax1 = T.axis.spatial(T.int64(1000), i0_0_i1_0_fused * T.int64(20) + ax1_fused)
                    T.reads(T_matmul_NT[v_ax0, v_ax1], bias[v_ax1])
                    T.writes(T_add[v_ax0, v_ax1])
                    T_add[v_ax0, v_ax1] = T_matmul_NT[v_ax0, v_ax1] + bias[v_ax1]