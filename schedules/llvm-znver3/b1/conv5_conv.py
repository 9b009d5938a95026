# conv5_conv (conv2d) of paper, batch 1, for llvm-znver3: best of 97 trials in tuning_logs/llvm-znver3, 1.925 ms, 77.7 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv5_conv(x: T.Buffer((T.int64(1), T.int64(384), T.int64(13), T.int64(13)), "float32"), weight: T.Buffer((T.int64(256), T.int64(192), T.int64(3), T.int64(3)), "float32"), bias: T.Buffer((T.int64(256),), "float32"), compute: T.Buffer((T.int64(1), T.int64(256), T.int64(13), T.int64(13)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pad_temp = T.sblock_alloc_buffer((T.int64(1), T.int64(384), T.int64(15), T.int64(15)))
    group_conv2d_nchw = T.sblock_alloc_buffer((T.int64(1), T.int64(256), T.int64(13), T.int64(13)))
    for nn_0_ff_0_fused_fused in T.parallel(T.int64(2), annotations={"pragma_auto_unroll_max_step": 512, "pragma_unroll_explicit": 1}):
        for ax0, ax1, ax2 in T.grid(T.int64(1), T.int64(192), T.int64(15)):
            for ax3_fused in T.vectorized(T.int64(15)):
                with T.sblock("pad_temp"):
                    v_i0 = T.axis.spatial(T.int64(1), ax0)
                    v_i1 = T.axis.spatial(T.int64(384), nn_0_ff_0_fused_fused * T.int64(192) + ax1)
                    v_i2, v_i3 = T.axis.remap("SS", [ax2, ax3_fused])
                    T.reads(x[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)])
                    T.writes(pad_temp[v_i0, v_i1, v_i2, v_i3])
                    pad_temp[v_i0, v_i1, v_i2, v_i3] = T.if_then_else(T.int64(1) <= v_i2 and v_i2 < T.int64(14) and T.int64(1) <= v_i3 and v_i3 < T.int64(14), x[v_i0, v_i1, v_i2 - T.int64(1), v_i3 - T.int64(1)], T.float32(0.0))
        for yy_0, xx_0, nn_1, ff_1, yy_1, xx_1 in T.grid(T.int64(13), T.int64(1), T.int64(1), T.int64(4), T.int64(1), T.int64(1)):
            for nn_2_init, ff_2_init, yy_2_init, xx_2_init, nn_3_init, ff_3_init, yy_3_init in T.grid(T.int64(1), T.int64(8), T.int64(1), T.int64(1), T.int64(1), T.int64(4), T.int64(1)):
                for xx_3_fused_init in T.vectorized(T.int64(13)):
                    with T.sblock("group_conv2d_nchw_init"):
                        v_nn = T.axis.spatial(T.int64(1), nn_1 + nn_2_init + nn_3_init)
                        v_ff = T.axis.spatial(T.int64(256), nn_0_ff_0_fused_fused * T.int64(128) + ff_1 * T.int64(32) + ff_2_init * T.int64(4) + ff_3_init)
                        v_yy = T.axis.spatial(T.int64(13), yy_0 + yy_1 + yy_2_init + yy_3_init)
                        v_xx = T.axis.spatial(T.int64(13), xx_0 * T.int64(13) + xx_1 * T.int64(13) + xx_2_init * T.int64(13) + xx_3_fused_init)
                        T.reads()
                        T.writes(group_conv2d_nchw[v_nn, v_ff, v_yy, v_xx])
                        T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                        group_conv2d_nchw[v_nn, v_ff, v_yy, v_xx] = T.float32(0.0)
            for rc_0, ry_0, rx_0, nn_2, ff_2, yy_2, xx_2, rc_1, ry_1, rx_1, nn_3, ff_3, yy_3 in T.grid(T.int64(6), T.int64(1), T.int64(3), T.int64(1), T.int64(8), T.int64(1), T.int64(1), T.int64(32), T.int64(3), T.int64(1), T.int64(1), T.int64(4), T.int64(1)):
                for xx_3_fused in T.vectorized(T.int64(13)):
                    with T.sblock("group_conv2d_nchw_update"):
                        v_nn = T.axis.spatial(T.int64(1), nn_1 + nn_2 + nn_3)
                        v_ff = T.axis.spatial(T.int64(256), nn_0_ff_0_fused_fused * T.int64(128) + ff_1 * T.int64(32) + ff_2 * T.int64(4) + ff_3)
                        v_yy = T.axis.spatial(T.int64(13), yy_0 + yy_1 + yy_2 + yy_3)
                        v_xx = T.axis.spatial(T.int64(13), xx_0 * T.int64(13) + xx_1 * T.int64(13) + xx_2 * T.int64(13) + xx_3_fused)
                        v_rc = T.axis.reduce(T.int64(192), rc_0 * T.int64(32) + rc_1)
                        v_ry = T.axis.reduce(T.int64(3), ry_0 * T.int64(3) + ry_1)
                        v_rx = T.axis.reduce(T.int64(3), rx_0 + rx_1)
                        T.reads(group_conv2d_nchw[v_nn, v_ff, v_yy, v_xx], pad_temp[v_nn, v_ff // T.int64(128) * T.int64(192) + v_rc, v_yy + v_ry, v_xx + v_rx], weight[v_ff, v_rc, v_ry, v_rx])
                        T.writes(group_conv2d_nchw[v_nn, v_ff, v_yy, v_xx])
                        T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                        group_conv2d_nchw[v_nn, v_ff, v_yy, v_xx] = group_conv2d_nchw[v_nn, v_ff, v_yy, v_xx] + pad_temp[v_nn, v_ff // T.int64(128) * T.int64(192) + v_rc, v_yy + v_ry, v_xx + v_rx] * weight[v_ff, v_rc, v_ry, v_rx]
            for ax0, ax1 in T.grid(T.int64(1), T.int64(32)):
                for ax2_ax3_fused in T.vectorized(T.int64(13)):
                    with T.sblock("compute"):
                        v_i0 = T.axis.spatial(T.int64(1), ax0)
                        v_i1 = T.axis.spatial(T.int64(256), nn_0_ff_0_fused_fused * T.int64(128) + ff_1 * T.int64(32) + ax1)
                        v_i2, v_i3 = T.axis.remap("SS", [yy_0, ax2_ax3_fused])
                        T.reads(group_conv2d_nchw[v_i0, v_i1, v_i2, v_i3], bias[v_i1])
                        T.writes(compute[v_i0, v_i1, v_i2, v_i3])
                        compute[v_i0, v_i1, v_i2, v_i3] = T.max(group_conv2d_nchw[v_i0, v_i1, v_i2, v_i3] + bias[v_i1], T.float32(0.0))