# conv3_conv_grad_input (conv2d_grad_input) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv3_conv_grad_input(dy: T.Buffer((n, T.int64(384), T.int64(13), T.int64(13)), "float32"), weight: T.Buffer((T.int64(384), T.int64(256), T.int64(3), T.int64(3)), "float32"), conv2d_nchw: T.Buffer((n, T.int64(256), T.int64(13), T.int64(13)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pad_temp = T.sblock_alloc_buffer((n, T.int64(384), T.int64(15), T.int64(15)))
    weight_flip = T.sblock_alloc_buffer((T.int64(16), T.int64(384), T.int64(3), T.int64(3), T.int64(16)))
    conv2d_nchw_local = T.sblock_alloc_buffer((n, T.int64(13), T.int64(13), T.int64(256)), scope="local")
    for i0_i1_fused in T.parallel(n * T.int64(384)):
        for i2, i3 in T.grid(T.int64(15), T.int64(15)):
            with T.sblock("pad_temp"):
                v_i0 = T.axis.spatial(n, i0_i1_fused // T.int64(384))
                v_i1 = T.axis.spatial(T.int64(384), i0_i1_fused % T.int64(384))
                v_i2, v_i3 = T.axis.remap("SS", [i2, i3])
                T.reads(dy[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)])
                T.writes(pad_temp[v_i0, v_i1, v_i2, v_i3])
                pad_temp[v_i0, v_i1, v_i2, v_i3] = T.if_then_else(T.int64(1) <= v_i2 and v_i2 < T.int64(14) and T.int64(1) <= v_i3 and v_i3 < T.int64(14), dy[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)], T.float32(0.0))
    for i_0_o_fused in T.parallel(T.int64(6144)):
        for h, w in T.grid(T.int64(3), T.int64(3)):
            for i_1_0 in T.unroll(T.int64(2)):
                for i_1_1 in T.vectorized(T.int64(8)):
                    with T.sblock("weight_flip"):
                        v_i = T.axis.spatial(T.int64(256), i_0_o_fused // T.int64(384) * T.int64(16) + i_1_0 * T.int64(8) + i_1_1)
                        v_o = T.axis.spatial(T.int64(384), i_0_o_fused % T.int64(384))
                        v_h, v_w = T.axis.remap("SS", [h, w])
                        T.reads(weight[v_i // T.int64(256) * T.int64(384) + v_o, v_i % T.int64(256), T.int64(2) - v_h, T.int64(2) - v_w])
                        T.writes(weight_flip[v_i // T.int64(16), v_o, v_h, v_w, v_i % T.int64(16)])
                        weight_flip[v_i // T.int64(16), v_o, v_h, v_w, v_i % T.int64(16)] = weight[v_i // T.int64(256) * T.int64(384) + v_o, v_i % T.int64(256), T.int64(2) - v_h, T.int64(2) - v_w]
    for nn_ff_0_yy_fused in T.parallel(n * T.int64(208)):
        for xx_0 in range(T.int64(3)):
            for xx_1_init in T.unroll(T.int64(5)):
                for ff_1_0_init in T.unroll(T.int64(2)):
                    for ff_1_1_init in T.vectorized(T.int64(8)):
                        with T.sblock("conv2d_nchw_init"):
                            v_nn = T.axis.spatial(n, nn_ff_0_yy_fused // T.int64(208))
                            v_ff = T.axis.spatial(T.int64(256), nn_ff_0_yy_fused % T.int64(208) // T.int64(13) * T.int64(16) + ff_1_0_init * T.int64(8) + ff_1_1_init)
                            v_yy = T.axis.spatial(T.int64(13), nn_ff_0_yy_fused % T.int64(13))
                            v_xx = T.axis.spatial(T.int64(13), xx_0 * T.int64(5) + xx_1_init)
                            T.where(xx_0 * T.int64(5) + xx_1_init < T.int64(13))
                            T.reads()
                            T.writes(conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff])
                            conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff] = T.float32(0.0)
            for rc, ry, rx in T.grid(T.int64(384), T.int64(3), T.int64(3)):
                for xx_1 in T.unroll(T.int64(5)):
                    for ff_1_0 in T.unroll(T.int64(2)):
                        for ff_1_1 in T.vectorized(T.int64(8)):
                            with T.sblock("conv2d_nchw_update"):
                                v_nn = T.axis.spatial(n, nn_ff_0_yy_fused // T.int64(208))
                                v_ff = T.axis.spatial(T.int64(256), nn_ff_0_yy_fused % T.int64(208) // T.int64(13) * T.int64(16) + ff_1_0 * T.int64(8) + ff_1_1)
                                v_yy = T.axis.spatial(T.int64(13), nn_ff_0_yy_fused % T.int64(13))
                                v_xx = T.axis.spatial(T.int64(13), xx_0 * T.int64(5) + xx_1)
                                v_rc, v_ry, v_rx = T.axis.remap("RRR", [rc, ry, rx])
                                T.where(xx_0 * T.int64(5) + xx_1 < T.int64(13))
                                T.reads(conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff], pad_temp[v_nn, v_rc, v_yy + v_ry, v_xx + v_rx], weight_flip[v_ff // T.int64(16), v_rc, v_ry, v_rx, v_ff % T.int64(16)])
                                T.writes(conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff])
                                conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff] = conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff] + pad_temp[v_nn, v_rc, v_yy + v_ry, v_xx + v_rx] * weight_flip[v_ff // T.int64(16), v_rc, v_ry, v_rx, v_ff % T.int64(16)]
            for ax0, ax1 in T.grid(T.int64(16), T.int64(5)):
                with T.sblock("conv2d_nchw_local"):
                    v0 = T.axis.spatial(n, nn_ff_0_yy_fused // T.int64(208))
                    v1 = T.axis.spatial(T.int64(256), nn_ff_0_yy_fused % T.int64(208) // T.int64(13) * T.int64(16) + ax0)
                    v2 = T.axis.spatial(T.int64(13), nn_ff_0_yy_fused % T.int64(13))
                    v3 = T.axis.spatial(T.int64(13), xx_0 * T.int64(5) + ax1)
                    T.where(xx_0 * T.int64(5) + ax1 < T.int64(13))
                    T.reads(conv2d_nchw_local[v0, v2, v3, v1])
                    T.writes(conv2d_nchw[v0, v1, v2, v3])
                    conv2d_nchw[v0, v1, v2, v3] = conv2d_nchw_local[v0, v2, v3, v1]