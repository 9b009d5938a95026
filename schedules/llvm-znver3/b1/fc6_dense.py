# fc6_dense (dense) of paper, batch 1, for llvm-znver3: best of 161 trials in tuning_logs/llvm-znver3, 5.226 ms, 14.4 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def fc6_dense(x: T.Buffer((T.int64(1), T.int64(9216)), "float32"), weight: T.Buffer((T.int64(4096), T.int64(9216)), "float32"), bias: T.Buffer((T.int64(4096),), "float32"), compute: T.Buffer((T.int64(1), T.int64(4096)), "float32")):
    T.func_attr({"layout_free_buffers": [1], "tirx.noalias": True})
    # with T.sblock("root"):
    T_matmul_NT = T.sblock_alloc_buffer((T.int64(1), T.int64(4096)))
    weight_global = T.sblock_alloc_buffer((T.int64(16), T.int64(8), T.int64(144), T.int64(2), T.int64(64), T.int64(16)))
    for ax0, ax1 in T.grid(T.int64(4096), T.int64(9216)):
        with T.sblock("weight_global"):
            v0, v1 = T.axis.remap("SS", [ax0, ax1])
            T.reads(weight[v0, v1])
            T.writes(weight_global[v0 // T.int64(256), v0 % T.int64(256) // T.int64(32), v1 // T.int64(64), v0 % T.int64(32) // T.int64(16), v1 % T.int64(64), v0 % T.int64(16)])
            T.sblock_attr({"meta_schedule.layout_rewrite_preproc": 1})
            weight_global[v0 // T.int64(256), v0 % T.int64(256) // T.int64(32), v1 // T.int64(64), v0 % T.int64(32) // T.int64(16), v1 % T.int64(64), v0 % T.int64(16)] = weight[v0, v1]
    for i0_0_i1_0_fused in T.parallel(T.int64(16), annotations={"pragma_auto_unroll_max_step": 16, "pragma_unroll_explicit": 1}):
        for i0_1, i1_1 in T.grid(T.int64(1), T.int64(8)):
            for i0_2_init, i1_2_init, i0_3_init in T.grid(T.int64(1), T.int64(2), T.int64(1)):
                for i1_3_fused_init in T.vectorized(T.int64(16)):
                    with T.sblock("T_matmul_NT_init"):
                        v_i0 = T.axis.spatial(T.int64(1), i0_1 + i0_2_init + i0_3_init)
                        v_i1 = T.axis.spatial(T.int64(4096), i0_0_i1_0_fused * T.int64(256) + i1_1 * T.int64(32) + i1_2_init * T.int64(16) + i1_3_fused_init)
                        T.reads()
                        T.writes(T_matmul_NT[v_i0, v_i1])
                        T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                        T_matmul_NT[v_i0, v_i1] = T.float32(0.0)
            for k_0, i0_2, i1_2, k_1, i0_3 in T.grid(T.int64(144), T.int64(1), T.int64(2), T.int64(64), T.int64(1)):
                for i1_3_fused in T.vectorized(T.int64(16)):
                    with T.sblock("T_matmul_NT_update"):
                        v_i0 = T.axis.spatial(T.int64(1), i0_1 + i0_2 + i0_3)
                        v_i1 = T.axis.spatial(T.int64(4096), i0_0_i1_0_fused * T.int64(256) + i1_1 * T.int64(32) + i1_2 * T.int64(16) + i1_3_fused)
                        v_k = T.axis.reduce(T.int64(9216), k_0 * T.int64(64) + k_1)
                        T.reads(T_matmul_NT[v_i0, v_i1], x[v_i0, v_k], weight_global[v_i1 // T.int64(256), v_i1 % T.int64(256) // T.int64(32), v_k // T.int64(64), v_i1 % T.int64(32) // T.int64(16), v_k % T.int64(64), v_i1 % T.int64(16)])
                        T.writes(T_matmul_NT[v_i0, v_i1])
                        T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                        T_matmul_NT[v_i0, v_i1] = T_matmul_NT[v_i0, v_i1] + x[v_i0, v_k] * weight_global[v_i1 // T.int64(256), v_i1 % T.int64(256) // T.int64(32), v_k // T.int64(64), v_i1 % T.int64(32) // T.int64(16), v_k % T.int64(64), v_i1 % T.int64(16)]
        for ax0, ax1 in T.grid(T.int64(1), T.int64(256)):
            with T.sblock("compute_1"):
                v_i0 = T.axis.spatial(T.int64(1), ax0)
                v_i1 = T.axis.spatial(T.int64(4096), i0_0_i1_0_fused * T.int64(256) + ax1)
                T.reads(T_matmul_NT[v_i0, v_i1], bias[v_i1])
                T.writes(compute[v_i0, v_i1])
                compute[v_i0, v_i1] = T.max(T_matmul_NT[v_i0, v_i1] + bias[v_i1], T.float32(0.0))