# conv3_conv_grad_weight (conv2d_grad_weight) of paper, hand-written default for AVX-512 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:sapphirerapids
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv3_conv_grad_weight(dy: T.Buffer((n, T.int64(384), T.int64(13), T.int64(13)), "float32"), saved: T.Buffer((n, T.int64(256), T.int64(13), T.int64(13)), "float32"), join_groups: T.Buffer((T.int64(384), T.int64(256), T.int64(3), T.int64(3)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pad_temp = T.sblock_alloc_buffer((n, T.int64(256), T.int64(15), T.int64(15)))
    conv2d_grad_weight = T.sblock_alloc_buffer((T.int64(1), T.int64(384), T.int64(256), T.int64(3), T.int64(3)))
    dy_global = T.sblock_alloc_buffer((T.int64(12), n, T.int64(13), T.int64(13), T.int64(32)))
    conv2d_grad_weight_local = T.sblock_alloc_buffer((T.int64(1), T.int64(256), T.int64(3), T.int64(3), T.int64(384)), scope="local")
    for ax0 in T.parallel(n):
        for ax1_0, ax2, ax3 in T.grid(T.int64(12), T.int64(13), T.int64(13)):
            for ax1_1_0 in T.unroll(T.int64(2)):
                for ax1_1_1 in T.vectorized(T.int64(16)):
                    with T.sblock("dy_global"):
                        v0 = T.axis.spatial(n, ax0)
                        v1 = T.axis.spatial(T.int64(384), ax1_0 * T.int64(32) + ax1_1_0 * T.int64(16) + ax1_1_1)
                        v2, v3 = T.axis.remap("SS", [ax2, ax3])
                        T.reads(dy[v0, v1, v2, v3])
                        T.writes(dy_global[v1 // T.int64(32), v0, v2, v3, v1 % T.int64(32)])
                        dy_global[v1 // T.int64(32), v0, v2, v3, v1 % T.int64(32)] = dy[v0, v1, v2, v3]
    for i0 in T.parallel(n):
        for i1, i2, i3 in T.grid(T.int64(256), T.int64(15), T.int64(15)):
            with T.sblock("pad_temp"):
                v_i0, v_i1, v_i2, v_i3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
                T.reads(saved[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)])
                T.writes(pad_temp[v_i0, v_i1, v_i2, v_i3])
                pad_temp[v_i0, v_i1, v_i2, v_i3] = T.if_then_else(T.int64(1) <= v_i2 and v_i2 < T.int64(14) and T.int64(1) <= v_i3 and v_i3 < T.int64(14), saved[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)], T.float32(0.0))
    for g_o_0_i_0_h_w_0_fused in T.parallel(T.int64(2304)):
        for i_1_init in T.unroll(T.int64(4)):
            for w_1_init in T.unroll(T.int64(3)):
                for o_1_0_init in T.unroll(T.int64(2)):
                    for o_1_1_init in T.vectorized(T.int64(16)):
                        with T.sblock("conv2d_grad_weight_init"):
                            v_g = T.axis.spatial(T.int64(1), T.int64(0))
                            v_o = T.axis.spatial(T.int64(384), g_o_0_i_0_h_w_0_fused // T.int64(192) * T.int64(32) + o_1_0_init * T.int64(16) + o_1_1_init)
                            v_i = T.axis.spatial(T.int64(256), g_o_0_i_0_h_w_0_fused % T.int64(192) // T.int64(3) * T.int64(4) + i_1_init)
                            v_h = T.axis.spatial(T.int64(3), g_o_0_i_0_h_w_0_fused % T.int64(3))
                            v_w = T.axis.spatial(T.int64(3), w_1_init)
                            T.reads()
                            T.writes(conv2d_grad_weight_local[v_g, v_i, v_h, v_w, v_o])
                            conv2d_grad_weight_local[v_g, v_i, v_h, v_w, v_o] = T.float32(0.0)
        for rn, ry, rx in T.grid(n, T.int64(13), T.int64(13)):
            for i_1 in T.unroll(T.int64(4)):
                for w_1 in T.unroll(T.int64(3)):
                    for o_1_0 in T.unroll(T.int64(2)):
                        for o_1_1 in T.vectorized(T.int64(16)):
                            with T.sblock("conv2d_grad_weight_update"):
                                v_g = T.axis.spatial(T.int64(1), T.int64(0))
                                v_o = T.axis.spatial(T.int64(384), g_o_0_i_0_h_w_0_fused // T.int64(192) * T.int64(32) + o_1_0 * T.int64(16) + o_1_1)
                                v_i = T.axis.spatial(T.int64(256), g_o_0_i_0_h_w_0_fused % T.int64(192) // T.int64(3) * T.int64(4) + i_1)
                                v_h = T.axis.spatial(T.int64(3), g_o_0_i_0_h_w_0_fused % T.int64(3))
                                v_w, v_rn, v_ry, v_rx = T.axis.remap("SRRR", [w_1, rn, ry, rx])
                                T.reads(conv2d_grad_weight_local[v_g, v_i, v_h, v_w, v_o], dy_global[v_o // T.int64(32), v_rn, v_ry, v_rx, v_o % T.int64(32)], pad_temp[v_rn, v_g * T.int64(256) + v_i, v_ry + v_h, v_rx + v_w])
                                T.writes(conv2d_grad_weight_local[v_g, v_i, v_h, v_w, v_o])
                                conv2d_grad_weight_local[v_g, v_i, v_h, v_w, v_o] = conv2d_grad_weight_local[v_g, v_i, v_h, v_w, v_o] + dy_global[v_o // T.int64(32), v_rn, v_ry, v_rx, v_o % T.int64(32)] * pad_temp[v_rn, v_g * T.int64(256) + v_i, v_ry + v_h, v_rx + v_w]
        for ax0, ax1, ax2 in T.grid(T.int64(32), T.int64(4), T.int64(3)):
            with T.sblock("conv2d_grad_weight_local"):
                v0 = T.axis.spatial(T.int64(1), T.int64(0))
                v1 = T.axis.spatial(T.int64(384), g_o_0_i_0_h_w_0_fused // T.int64(192) * T.int64(32) + ax0)
                v2 = T.axis.spatial(T.int64(256), g_o_0_i_0_h_w_0_fused % T.int64(192) // T.int64(3) * T.int64(4) + ax1)
                v3 = T.axis.spatial(T.int64(3), g_o_0_i_0_h_w_0_fused % T.int64(3))
                v4 = T.axis.spatial(T.int64(3), ax2)
                T.reads(conv2d_grad_weight_local[v0, v2, v3, v4, v1])
                T.writes(conv2d_grad_weight[v0, v1, v2, v3, v4])
                conv2d_grad_weight[v0, v1, v2, v3, v4] = conv2d_grad_weight_local[v0, v2, v3, v4, v1]
    for o in T.parallel(T.int64(384)):
        for i, h, w in T.grid(T.int64(256), T.int64(3), T.int64(3)):
            with T.sblock("join_groups"):
                v_o, v_i, v_h, v_w = T.axis.remap("SSSS", [o, i, h, w])
                T.reads(conv2d_grad_weight[v_o // T.int64(384), v_o % T.int64(384), v_i, v_h, v_w])
                T.writes(join_groups[v_o, v_i, v_h, v_w])
                join_groups[v_o, v_i, v_h, v_w] = conv2d_grad_weight[v_o // T.int64(384), v_o % T.int64(384), v_i, v_h, v_w]