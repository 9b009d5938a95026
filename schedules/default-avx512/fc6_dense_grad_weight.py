# fc6_dense_grad_weight (dense_grad_weight) of paper, hand-written default for AVX-512 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:sapphirerapids
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc6_dense_grad_weight(dy: T.Buffer((n, T.int64(4096)), "float32"), saved: T.Buffer((n, T.int64(9216)), "float32"), dense_grad_weight: T.Buffer((T.int64(4096), T.int64(9216)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    dy_global = T.sblock_alloc_buffer((T.int64(512), n, T.int64(8)))
    saved_global = T.sblock_alloc_buffer((T.int64(288), n, T.int64(32)))
    dense_grad_weight_local = T.sblock_alloc_buffer((T.int64(4096), T.int64(9216)), scope="local")
    for ax0, ax1_0 in T.grid(n, T.int64(512)):
        for ax1_1 in T.vectorized(T.int64(8)):
            with T.sblock("dy_global"):
                v0 = T.axis.spatial(n, ax0)
                v1 = T.axis.spatial(T.int64(4096), ax1_0 * T.int64(8) + ax1_1)
                T.reads(dy[v0, v1])
                T.writes(dy_global[v1 // T.int64(8), v0, v1 % T.int64(8)])
                dy_global[v1 // T.int64(8), v0, v1 % T.int64(8)] = dy[v0, v1]
    for i_0 in range(T.int64(9)):
        for ax0, ax1_0 in T.grid(n, T.int64(64)):
            for ax1_1 in T.vectorized(T.int64(16)):
                with T.sblock("saved_global"):
                    v0 = T.axis.spatial(n, ax0)
                    v1 = T.axis.spatial(T.int64(9216), i_0 * T.int64(1024) + ax1_0 * T.int64(16) + ax1_1)
                    T.reads(saved[v0, v1])
                    T.writes(saved_global[v1 // T.int64(32), v0, v1 % T.int64(32)])
                    saved_global[v1 // T.int64(32), v0, v1 % T.int64(32)] = saved[v0, v1]
        for j_0 in T.parallel(T.int64(512)):
            for i_1_0 in range(T.int64(32)):
                for j_1_init in T.unroll(T.int64(8)):
                    for i_1_1_0_init in T.unroll(T.int64(2)):
                        for i_1_1_1_init in T.vectorized(T.int64(16)):
                            with T.sblock("dense_grad_weight_init"):
                                v_j = T.axis.spatial(T.int64(4096), j_0 * T.int64(8) + j_1_init)
                                v_i = T.axis.spatial(T.int64(9216), i_0 * T.int64(1024) + i_1_0 * T.int64(32) + i_1_1_0_init * T.int64(16) + i_1_1_1_init)
                                T.reads()
                                T.writes(dense_grad_weight_local[v_j, v_i])
                                dense_grad_weight_local[v_j, v_i] = T.float32(0.0)
                for n_1 in range(n):
                    for j_1 in T.unroll(T.int64(8)):
                        for i_1_1_0 in T.unroll(T.int64(2)):
                            for i_1_1_1 in T.vectorized(T.int64(16)):
                                with T.sblock("dense_grad_weight_update"):
                                    v_j = T.axis.spatial(T.int64(4096), j_0 * T.int64(8) + j_1)
                                    v_i = T.axis.spatial(T.int64(9216), i_0 * T.int64(1024) + i_1_0 * T.int64(32) + i_1_1_0 * T.int64(16) + i_1_1_1)
                                    v_n = T.axis.reduce(n, n_1)
                                    T.reads(dense_grad_weight_local[v_j, v_i], dy_global[v_j // T.int64(8), v_n, v_j % T.int64(8)], saved_global[v_i // T.int64(32), v_n, v_i % T.int64(32)])
                                    T.writes(dense_grad_weight_local[v_j, v_i])
                                    dense_grad_weight_local[v_j, v_i] = dense_grad_weight_local[v_j, v_i] + dy_global[v_j // T.int64(8), v_n, v_j % T.int64(8)] * saved_global[v_i // T.int64(32), v_n, v_i % T.int64(32)]
                for ax0, ax1 in T.grid(T.int64(8), T.int64(32)):
                    with T.sblock("dense_grad_weight_local"):
                        v0 = T.axis.spatial(T.int64(4096), j_0 * T.int64(8) + ax0)
                        v1 = T.axis.spatial(T.int64(9216), i_0 * T.int64(1024) + i_1_0 * T.int64(32) + ax1)
                        T.reads(dense_grad_weight_local[v0, v1])
                        T.writes(dense_grad_weight[v0, v1])
                        dense_grad_weight[v0, v1] = dense_grad_weight_local[v0, v1]