# fc6_dense (dense) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc6_dense(x: T.Buffer((n, T.int64(9216)), "float32"), weight: T.Buffer((T.int64(4096), T.int64(9216)), "float32"), bias: T.Buffer((T.int64(4096),), "float32"), compute: T.Buffer((n, T.int64(4096)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    T_matmul_NT = T.sblock_alloc_buffer((n, T.int64(4096)))
    T_matmul_NT_rf = T.sblock_alloc_buffer((n, T.int64(4096), T.int64(8)))
    T_matmul_NT_rf_local = T.sblock_alloc_buffer((n, T.int64(4096), T.int64(8)), scope="local")
    for i1_0 in T.parallel(T.int64(512)):
        for i0_0 in range(n):
            for i0_1_init in T.unroll(T.int64(1)):
                for i1_1_init in T.unroll(T.int64(8)):
                    for k_1_init in T.vectorized(T.int64(8)):
                        with T.sblock("T_matmul_NT_rf_init"):
                            vk_1 = T.axis.spatial(T.int64(8), k_1_init)
                            v_i0 = T.axis.spatial(n, i0_0 + i0_1_init)
                            v_i1 = T.axis.spatial(T.int64(4096), i1_0 * T.int64(8) + i1_1_init)
                            T.reads()
                            T.writes(T_matmul_NT_rf_local[v_i0, v_i1, vk_1])
                            T_matmul_NT_rf_local[v_i0, v_i1, vk_1] = T.float32(0.0)
            for k_0 in range(T.int64(1152)):
                for i0_1 in T.unroll(T.int64(1)):
                    for i1_1 in T.unroll(T.int64(8)):
                        for k_1 in T.vectorized(T.int64(8)):
                            with T.sblock("T_matmul_NT_rf_update"):
                                vk_1 = T.axis.spatial(T.int64(8), k_1)
                                v_i0 = T.axis.spatial(n, i0_0 + i0_1)
                                v_i1 = T.axis.spatial(T.int64(4096), i1_0 * T.int64(8) + i1_1)
                                vk_0 = T.axis.reduce(T.int64(1152), k_0)
                                T.reads(T_matmul_NT_rf_local[v_i0, v_i1, vk_1], x[v_i0, vk_0 * T.int64(8) + vk_1], weight[v_i1, vk_0 * T.int64(8) + vk_1])
                                T.writes(T_matmul_NT_rf_local[v_i0, v_i1, vk_1])
                                T_matmul_NT_rf_local[v_i0, v_i1, vk_1] = T_matmul_NT_rf_local[v_i0, v_i1, vk_1] + x[v_i0, vk_0 * T.int64(8) + vk_1] * weight[v_i1, vk_0 * T.int64(8) + vk_1]
            for ax0, ax1 in T.grid(T.int64(8), T.int64(8)):
                with T.sblock("T_matmul_NT.rf_local"):
                    v0 = T.axis.spatial(n, i0_0)
                    v1 = T.axis.spatial(T.int64(4096), i1_0 * T.int64(8) + ax0)
                    v2 = T.axis.spatial(T.int64(8), ax1)
                    T.reads(T_matmul_NT_rf_local[v0, v1, v2])
                    T.writes(T_matmul_NT_rf[v0, v1, v2])
                    T_matmul_NT_rf[v0, v1, v2] = T_matmul_NT_rf_local[v0, v1, v2]
            for ax0, ax1 in T.grid(T.int64(8), T.int64(8)):
                with T.sblock("T_matmul_NT"):
                    vk_1, v_i0 = T.axis.remap("RS", [ax0, i0_0])
                    v_i1 = T.axis.spatial(T.int64(4096), i1_0 * T.int64(8) + ax1)
                    T.reads(T_matmul_NT_rf[v_i0, v_i1, vk_1])
                    T.writes(T_matmul_NT[v_i0, v_i1])
                    with T.init():
                        T_matmul_NT[v_i0, v_i1] = T.float32(0.0)
                    T_matmul_NT[v_i0, v_i1] = T_matmul_NT[v_i0, v_i1] + T_matmul_NT_rf[v_i0, v_i1, vk_1]
            for ax0 in range(T.int64(8)):
                with T.sblock("compute_1"):
                    v_i0 = T.axis.spatial(n, i0_0)
                    v_i1 = T.axis.spatial(T.int64(4096), i1_0 * T.int64(8) + ax0)
                    T.reads(T_matmul_NT[v_i0, v_i1], bias[v_i1])
                    T.writes(compute[v_i0, v_i1])
                    compute[v_i0, v_i1] = T.max(T.float32(0.0), T_matmul_NT[v_i0, v_i1] + bias[v_i1])