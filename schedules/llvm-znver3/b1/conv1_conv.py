# conv1_conv (conv2d) of paper, batch 1, for llvm-znver3
# best of 160 trials in tuning_logs/llvm-znver3: 4.449 ms, 47.4 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_conv(x: T.Buffer((T.int64(1), T.int64(3), T.int64(227), T.int64(227)), "float32"), weight: T.Buffer((T.int64(96), T.int64(3), T.int64(11), T.int64(11)), "float32"), bias: T.Buffer((T.int64(96),), "float32"), compute: T.Buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    conv2d_nchw = T.sblock_alloc_buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)))
    for nn_0_ff_0_yy_0_xx_0_nn_1_ff_1_yy_1_xx_1_fused in T.parallel(T.int64(22), annotations={"pragma_auto_unroll_max_step": 64, "pragma_unroll_explicit": 1}):
        for nn_2_init, ff_2_init, yy_2_init, xx_2_init, nn_3_init, ff_3_init, yy_3_init in T.grid(T.int64(1), T.int64(12), T.int64(5), T.int64(11), T.int64(1), T.int64(4), T.int64(1)):
            for xx_3_fused_init in T.vectorized(T.int64(5)):
                with T.sblock("conv2d_nchw_init"):
                    v_nn = T.axis.spatial(T.int64(1), nn_2_init + nn_3_init)
                    v_ff = T.axis.spatial(T.int64(96), nn_0_ff_0_yy_0_xx_0_nn_1_ff_1_yy_1_xx_1_fused // T.int64(11) * T.int64(48) + ff_2_init * T.int64(4) + ff_3_init)
                    v_yy = T.axis.spatial(T.int64(55), nn_0_ff_0_yy_0_xx_0_nn_1_ff_1_yy_1_xx_1_fused % T.int64(11) * T.int64(5) + yy_2_init + yy_3_init)
                    v_xx = T.axis.spatial(T.int64(55), xx_2_init * T.int64(5) + xx_3_fused_init)
                    T.reads()
                    T.writes(conv2d_nchw[v_nn, v_ff, v_yy, v_xx])
                    T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                    conv2d_nchw[v_nn, v_ff, v_yy, v_xx] = T.float32(0.0)
        for rc_0, ry_0, rx_0, nn_2, ff_2, yy_2, xx_2, rc_1, ry_1, rx_1, nn_3, ff_3, yy_3 in T.grid(T.int64(1), T.int64(1), T.int64(1), T.int64(1), T.int64(12), T.int64(5), T.int64(11), T.int64(3), T.int64(11), T.int64(11), T.int64(1), T.int64(4), T.int64(1)):
            for xx_3_fused in T.vectorized(T.int64(5)):
                with T.sblock("conv2d_nchw_update"):
                    v_nn = T.axis.spatial(T.int64(1), nn_2 + nn_3)
                    v_ff = T.axis.spatial(T.int64(96), nn_0_ff_0_yy_0_xx_0_nn_1_ff_1_yy_1_xx_1_fused // T.int64(11) * T.int64(48) + ff_2 * T.int64(4) + ff_3)
                    v_yy = T.axis.spatial(T.int64(55), nn_0_ff_0_yy_0_xx_0_nn_1_ff_1_yy_1_xx_1_fused % T.int64(11) * T.int64(5) + yy_2 + yy_3)
                    v_xx = T.axis.spatial(T.int64(55), xx_2 * T.int64(5) + xx_3_fused)
                    v_rc = T.axis.reduce(T.int64(3), rc_0 * T.int64(3) + rc_1)
                    v_ry = T.axis.reduce(T.int64(11), ry_0 * T.int64(11) + ry_1)
                    v_rx = T.axis.reduce(T.int64(11), rx_0 * T.int64(11) + rx_1)
                    T.reads(conv2d_nchw[v_nn, v_ff, v_yy, v_xx], x[v_nn, v_rc, v_yy * T.int64(4) + v_ry, v_xx * T.int64(4) + v_rx], weight[v_ff, v_rc, v_ry, v_rx])
                    T.writes(conv2d_nchw[v_nn, v_ff, v_yy, v_xx])
                    T.sblock_attr({"meta_schedule.tiling_structure": "SSRSRS"})
                    conv2d_nchw[v_nn, v_ff, v_yy, v_xx] = conv2d_nchw[v_nn, v_ff, v_yy, v_xx] + x[v_nn, v_rc, v_yy * T.int64(4) + v_ry, v_xx * T.int64(4) + v_rx] * weight[v_ff, v_rc, v_ry, v_rx]
    for i0_i1_i2_i3_fused_0 in T.parallel(T.int64(4538)):
        for i0_i1_i2_i3_fused_1 in T.vectorized(T.int64(64)):
            with T.sblock("compute"):
                v_i0 = T.axis.spatial(T.int64(1), T.int64(0))
                v_i1 = T.axis.spatial(T.int64(96), (i0_i1_i2_i3_fused_0 * T.int64(64) + i0_i1_i2_i3_fused_1) // T.int64(3025))
                v_i2 = T.axis.spatial(T.int64(55), (i0_i1_i2_i3_fused_0 * T.int64(64) + i0_i1_i2_i3_fused_1) % T.int64(3025) // T.int64(55))
                v_i3 = T.axis.spatial(T.int64(55), (i0_i1_i2_i3_fused_0 * T.int64(64) + i0_i1_i2_i3_fused_1) % T.int64(55))
                T.where(i0_i1_i2_i3_fused_0 * T.int64(64) + i0_i1_i2_i3_fused_1 < T.int64(290400))
                T.reads(conv2d_nchw[v_i0, v_i1, v_i2, v_i3], bias[v_i1])
                T.writes(compute[v_i0, v_i1, v_i2, v_i3])
                compute[v_i0, v_i1, v_i2, v_i3] = T.max(conv2d_nchw[v_i0, v_i1, v_i2, v_i3] + bias[v_i1], T.float32(0.0))