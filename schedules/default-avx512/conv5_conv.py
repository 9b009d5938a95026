# conv5_conv (conv2d) of paper, hand-written default for AVX-512 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:sapphirerapids
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv5_conv(x: T.Buffer((n, T.int64(384), T.int64(13), T.int64(13)), "float32"), weight: T.Buffer((T.int64(256), T.int64(192), T.int64(3), T.int64(3)), "float32"), bias: T.Buffer((T.int64(256),), "float32"), compute: T.Buffer((n, T.int64(256), T.int64(13), T.int64(13)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pad_temp = T.sblock_alloc_buffer((n, T.int64(384), T.int64(15), T.int64(15)))
    weight_global = T.sblock_alloc_buffer((T.int64(16), T.int64(192), T.int64(3), T.int64(3), T.int64(16)))
    group_conv2d_nchw_local = T.sblock_alloc_buffer((n, T.int64(13), T.int64(13), T.int64(256)), scope="local")
    for ax0_0_ax1_fused in T.parallel(T.int64(3072)):
        for ax2, ax3 in T.grid(T.int64(3), T.int64(3)):
            for ax0_1_0 in T.unroll(T.int64(1)):
                for ax0_1_1 in T.vectorized(T.int64(16)):
                    with T.sblock("weight_global"):
                        v0 = T.axis.spatial(T.int64(256), ax0_0_ax1_fused // T.int64(192) * T.int64(16) + ax0_1_0 * T.int64(16) + ax0_1_1)
                        v1 = T.axis.spatial(T.int64(192), ax0_0_ax1_fused % T.int64(192))
                        v2, v3 = T.axis.remap("SS", [ax2, ax3])
                        T.reads(weight[v0, v1, v2, v3])
                        T.writes(weight_global[v0 // T.int64(16), v1, v2, v3, v0 % T.int64(16)])
                        weight_global[v0 // T.int64(16), v1, v2, v3, v0 % T.int64(16)] = weight[v0, v1, v2, v3]
    for i0_i1_fused in T.parallel(n * T.int64(384)):
        for i2, i3 in T.grid(T.int64(15), T.int64(15)):
            with T.sblock("pad_temp"):
                v_i0 = T.axis.spatial(n, i0_i1_fused // T.int64(384))
                v_i1 = T.axis.spatial(T.int64(384), i0_i1_fused % T.int64(384))
                v_i2, v_i3 = T.axis.remap("SS", [i2, i3])
                T.reads(x[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)])
                T.writes(pad_temp[v_i0, v_i1, v_i2, v_i3])
                pad_temp[v_i0, v_i1, v_i2, v_i3] = T.if_then_else(T.int64(1) <= v_i2 and v_i2 < T.int64(14) and T.int64(1) <= v_i3 and v_i3 < T.int64(14), x[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)], T.float32(0.0))
    for nn_ff_0_yy_fused in T.parallel(n * T.int64(208)):
        for xx_0 in range(T.int64(1)):
            for xx_1_init in T.unroll(T.int64(13)):
                for ff_1_init in T.vectorized(T.int64(16)):
                    with T.sblock("group_conv2d_nchw_init"):
                        v_nn = T.axis.spatial(n, nn_ff_0_yy_fused // T.int64(208))
                        v_ff = T.axis.spatial(T.int64(256), nn_ff_0_yy_fused % T.int64(208) // T.int64(13) * T.int64(16) + ff_1_init)
                        v_yy = T.axis.spatial(T.int64(13), nn_ff_0_yy_fused % T.int64(13))
                        v_xx = T.axis.spatial(T.int64(13), xx_0 * T.int64(13) + xx_1_init)
                        T.reads()
                        T.writes(group_conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff])
                        group_conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff] = T.float32(0.0)
            for rc, ry, rx in T.grid(T.int64(192), T.int64(3), T.int64(3)):
                for xx_1 in T.unroll(T.int64(13)):
                    for ff_1 in T.vectorized(T.int64(16)):
                        with T.sblock("group_conv2d_nchw_update"):
                            v_nn = T.axis.spatial(n, nn_ff_0_yy_fused // T.int64(208))
                            v_ff = T.axis.spatial(T.int64(256), nn_ff_0_yy_fused % T.int64(208) // T.int64(13) * T.int64(16) + ff_1)
                            v_yy = T.axis.spatial(T.int64(13), nn_ff_0_yy_fused % T.int64(13))
                            v_xx = T.axis.spatial(T.int64(13), xx_0 * T.int64(13) + xx_1)
                            v_rc, v_ry, v_rx = T.axis.remap("RRR", [rc, ry, rx])
                            T.reads(group_conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff], pad_temp[v_nn, v_ff // T.int64(128) * T.int64(192) + v_rc, v_yy + v_ry, v_xx + v_rx], weight_global[v_ff // T.int64(16), v_rc, v_ry, v_rx, v_ff % T.int64(16)])
                            T.writes(group_conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff])
                            group_conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff] = group_conv2d_nchw_local[v_nn, v_yy, v_xx, v_ff] + pad_temp[v_nn, v_ff // T.int64(128) * T.int64(192) + v_rc, v_yy + v_ry, v_xx + v_rx] * weight_global[v_ff // T.int64(16), v_rc, v_ry, v_rx, v_ff % T.int64(16)]
            for ax0, ax1 in T.grid(T.int64(16), T.int64(13)):
                with T.sblock("compute"):
                    v_i0 = T.axis.spatial(n, nn_ff_0_yy_fused // T.int64(208))
                    v_i1 = T.axis.spatial(T.int64(256), nn_ff_0_yy_fused % T.int64(208) // T.int64(13) * T.int64(16) + ax0)
                    v_i2 = T.axis.spatial(T.int64(13), nn_ff_0_yy_fused % T.int64(13))
                    v_i3 = T.axis.spatial(T.int64(13), ax1)
                    T.reads(group_conv2d_nchw_local[v_i0, v_i2, v_i3, v_i1], bias[v_i1])
                    T.writes(compute[v_i0, v_i1, v_i2, v_i3])
                    compute[v_i0, v_i1, v_i2, v_i3] = T.max(T.float32(0.0), group_conv2d_nchw_local[v_i0, v_i2, v_i3, v_i1] + bias[v_i1])