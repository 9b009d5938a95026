# conv1_conv_grad_weight (conv2d_grad_weight) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_conv_grad_weight(dy: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), saved: T.Buffer((n, T.int64(3), T.int64(227), T.int64(227)), "float32"), join_groups: T.Buffer((T.int64(96), T.int64(3), T.int64(11), T.int64(11)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    conv2d_grad_weight = T.sblock_alloc_buffer((T.int64(1), T.int64(96), T.int64(3), T.int64(11), T.int64(11)))
    dy_global = T.sblock_alloc_buffer((T.int64(6), n, T.int64(55), T.int64(55), T.int64(16)))
    conv2d_grad_weight_rf = T.sblock_alloc_buffer((n, T.int64(1), T.int64(96), T.int64(3), T.int64(11), T.int64(11)))
    conv2d_grad_weight_rf_local = T.sblock_alloc_buffer((n, T.int64(1), T.int64(3), T.int64(11), T.int64(11), T.int64(96)), scope="local")
    for ax0 in T.parallel(n):
        for ax1_0, ax2, ax3 in T.grid(T.int64(6), T.int64(55), T.int64(55)):
            for ax1_1_0 in T.unroll(T.int64(2)):
                for ax1_1_1 in T.vectorized(T.int64(8)):
                    with T.sblock("dy_global"):
                        v0 = T.axis.spatial(n, ax0)
                        v1 = T.axis.spatial(T.int64(96), ax1_0 * T.int64(16) + ax1_1_0 * T.int64(8) + ax1_1_1)
                        v2, v3 = T.axis.remap("SS", [ax2, ax3])
                        T.reads(dy[v0, v1, v2, v3])
                        T.writes(dy_global[v1 // T.int64(16), v0, v2, v3, v1 % T.int64(16)])
                        dy_global[v1 // T.int64(16), v0, v2, v3, v1 % T.int64(16)] = dy[v0, v1, v2, v3]
    for rn_g_o_0_i_0_h_w_0_fused in T.parallel(n * T.int64(396)):
        for i_1_init in T.unroll(T.int64(1)):
            for w_1_init in T.unroll(T.int64(6)):
                for o_1_0_init in T.unroll(T.int64(2)):
                    for o_1_1_init in T.vectorized(T.int64(8)):
                        with T.sblock("conv2d_grad_weight_rf_init"):
                            vrn = T.axis.spatial(n, rn_g_o_0_i_0_h_w_0_fused // T.int64(396))
                            v_g = T.axis.spatial(T.int64(1), T.int64(0))
                            v_o = T.axis.spatial(T.int64(96), rn_g_o_0_i_0_h_w_0_fused % T.int64(396) // T.int64(66) * T.int64(16) + o_1_0_init * T.int64(8) + o_1_1_init)
                            v_i = T.axis.spatial(T.int64(3), rn_g_o_0_i_0_h_w_0_fused % T.int64(66) // T.int64(22) + i_1_init)
                            v_h = T.axis.spatial(T.int64(11), rn_g_o_0_i_0_h_w_0_fused % T.int64(22) // T.int64(2))
                            v_w = T.axis.spatial(T.int64(11), rn_g_o_0_i_0_h_w_0_fused % T.int64(2) * T.int64(6) + w_1_init)
                            T.where(rn_g_o_0_i_0_h_w_0_fused % T.int64(2) * T.int64(6) + w_1_init < T.int64(11))
                            T.reads()
                            T.writes(conv2d_grad_weight_rf_local[vrn, v_g, v_i, v_h, v_w, v_o])
                            conv2d_grad_weight_rf_local[vrn, v_g, v_i, v_h, v_w, v_o] = T.float32(0.0)
        for ry, rx in T.grid(T.int64(55), T.int64(55)):
            for i_1 in T.unroll(T.int64(1)):
                for w_1 in T.unroll(T.int64(6)):
                    for o_1_0 in T.unroll(T.int64(2)):
                        for o_1_1 in T.vectorized(T.int64(8)):
                            with T.sblock("conv2d_grad_weight_rf_update"):
                                vrn = T.axis.spatial(n, rn_g_o_0_i_0_h_w_0_fused // T.int64(396))
                                v_g = T.axis.spatial(T.int64(1), T.int64(0))
                                v_o = T.axis.spatial(T.int64(96), rn_g_o_0_i_0_h_w_0_fused % T.int64(396) // T.int64(66) * T.int64(16) + o_1_0 * T.int64(8) + o_1_1)
                                v_i = T.axis.spatial(T.int64(3), rn_g_o_0_i_0_h_w_0_fused % T.int64(66) // T.int64(22) + i_1)
                                v_h = T.axis.spatial(T.int64(11), rn_g_o_0_i_0_h_w_0_fused % T.int64(22) // T.int64(2))
                                v_w = T.axis.spatial(T.int64(11), rn_g_o_0_i_0_h_w_0_fused % T.int64(2) * T.int64(6) + w_1)
                                v_ry, v_rx = T.axis.remap("RR", [ry, rx])
                                T.where(rn_g_o_0_i_0_h_w_0_fused % T.int64(2) * T.int64(6) + w_1 < T.int64(11))
                                T.reads(conv2d_grad_weight_rf_local[vrn, v_g, v_i, v_h, v_w, v_o], dy_global[v_o // T.int64(16), vrn, v_ry, v_rx, v_o % T.int64(16)], saved[vrn, v_g * T.int64(3) + v_i, v_ry * T.int64(4) + v_h, v_rx * T.int64(4) + v_w])
                                T.writes(conv2d_grad_weight_rf_local[vrn, v_g, v_i, v_h, v_w, v_o])
                                conv2d_grad_weight_rf_local[vrn, v_g, v_i, v_h, v_w, v_o] = conv2d_grad_weight_rf_local[vrn, v_g, v_i, v_h, v_w, v_o] + dy_global[v_o // T.int64(16), vrn, v_ry, v_rx, v_o % T.int64(16)] * saved[vrn, v_g * T.int64(3) + v_i, v_ry * T.int64(4) + v_h, v_rx * T.int64(4) + v_w]
        for ax0, ax1 in T.grid(T.int64(16), T.int64(6)):
            with T.sblock("conv2d_grad_weight.rf_local"):
                v0 = T.axis.spatial(n, rn_g_o_0_i_0_h_w_0_fused // T.int64(396))
                v1 = T.axis.spatial(T.int64(1), T.int64(0))
                v2 = T.axis.spatial(T.int64(96), rn_g_o_0_i_0_h_w_0_fused % T.int64(396) // T.int64(66) * T.int64(16) + ax0)
                v3 = T.axis.spatial(T.int64(3), rn_g_o_0_i_0_h_w_0_fused % T.int64(66) // T.int64(22))
                v4 = T.axis.spatial(T.int64(11), rn_g_o_0_i_0_h_w_0_fused % T.int64(22) // T.int64(2))
                v5 = T.axis.spatial(T.int64(11), rn_g_o_0_i_0_h_w_0_fused % T.int64(2) * T.int64(6) + ax1)
                T.where(rn_g_o_0_i_0_h_w_0_fused % T.int64(2) * T.int64(6) + ax1 < T.int64(11))
                T.reads(conv2d_grad_weight_rf_local[v0, v1, v3, v4, v5, v2])
                T.writes(conv2d_grad_weight_rf[v0, v1, v2, v3, v4, v5])
                conv2d_grad_weight_rf[v0, v1, v2, v3, v4, v5] = conv2d_grad_weight_rf_local[v0, v1, v3, v4, v5, v2]
    for g_o_i_fused in T.parallel(T.int64(288)):
        for h, w, rn in T.grid(T.int64(11), T.int64(11), n):
            with T.sblock("conv2d_grad_weight"):
                vrn = T.axis.reduce(n, rn)
                v_g = T.axis.spatial(T.int64(1), T.int64(0))
                v_o = T.axis.spatial(T.int64(96), g_o_i_fused // T.int64(3))
                v_i = T.axis.spatial(T.int64(3), g_o_i_fused % T.int64(3))
                v_h, v_w = T.axis.remap("SS", [h, w])
                T.reads(conv2d_grad_weight_rf[vrn, v_g, v_o, v_i, v_h, v_w])
                T.writes(conv2d_grad_weight[v_g, v_o, v_i, v_h, v_w])
                with T.init():
                    conv2d_grad_weight[v_g, v_o, v_i, v_h, v_w] = T.float32(0.0)
                conv2d_grad_weight[v_g, v_o, v_i, v_h, v_w] = conv2d_grad_weight[v_g, v_o, v_i, v_h, v_w] + conv2d_grad_weight_rf[vrn, v_g, v_o, v_i, v_h, v_w]
    for o in T.parallel(T.int64(96)):
        for i, h, w in T.grid(T.int64(3), T.int64(11), T.int64(11)):
            with T.sblock("join_groups"):
                v_o, v_i, v_h, v_w = T.axis.remap("SSSS", [o, i, h, w])
                T.reads(conv2d_grad_weight[v_o // T.int64(96), v_o % T.int64(96), v_i, v_h, v_w])
                T.writes(join_groups[v_o, v_i, v_h, v_w])
                join_groups[v_o, v_i, v_h, v_w] = conv2d_grad_weight[v_o // T.int64(96), v_o % T.int64(96), v_i, v_h, v_w]