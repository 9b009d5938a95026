# conv1_conv (conv2d) of paper, batch 32, for llvm-znver3: best of 112 trials in tvm_alexnet/tuning_logs/llvm-znver3, 51.512 ms, 131.0 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tvm_alexnet/tuning_logs/llvm-znver3 --variant paper --batch 32 --target llvm:znver3
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_conv(x: T.Buffer((T.int64(32), T.int64(3), T.int64(227), T.int64(227)), "float32"), weight: T.Buffer((T.int64(96), T.int64(3), T.int64(11), T.int64(11)), "float32"), bias: T.Buffer((T.int64(96),), "float32"), compute: T.Buffer((T.int64(32), T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    pad_temp = T.sblock_alloc_buffer((T.int64(32), T.int64(3), T.int64(227), T.int64(227)))
    weight_global = T.sblock_alloc_buffer((T.int64(6), T.int64(3), T.int64(11), T.int64(11), T.int64(16)))
    conv2d_nchw_local = T.sblock_alloc_buffer((T.int64(32), T.int64(96), T.int64(55), T.int64(55)), scope="local")
    for ax0_ax1_fused in T.parallel(T.int64(288)):
        for ax2, ax3 in T.grid(T.int64(11), T.int64(11)):
            with T.sblock("weight_global"):
                v0 = T.axis.spatial(T.int64(96), ax0_ax1_fused // T.int64(3))
                v1 = T.axis.spatial(T.int64(3), ax0_ax1_fused % T.int64(3))
                v2, v3 = T.axis.remap("SS", [ax2, ax3])
                T.reads(weight[v0, v1, v2, v3])
                T.writes(weight_global[v0 // T.int64(16), v1, v2, v3, v0 % T.int64(16)])
                weight_global[v0 // T.int64(16), v1, v2, v3, v0 % T.int64(16)] = weight[v0, v1, v2, v3]
    for i0_i1_fused in T.parallel(T.int64(96)):
        for i2, i3 in T.grid(T.int64(227), T.int64(227)):
            with T.sblock("pad_temp"):
                v_i0 = T.axis.spatial(T.int64(32), i0_i1_fused // T.int64(3))
                v_i1 = T.axis.spatial(T.int64(3), i0_i1_fused % T.int64(3))
                v_i2, v_i3 = T.axis.remap("SS", [i2, i3])
                T.reads(x[v_i0, v_i1, v_i2, v_i3])
                T.writes(pad_temp[v_i0, v_i1, v_i2, v_i3])
                pad_temp[v_i0, v_i1, v_i2, v_i3] = x[v_i0, v_i1, v_i2, v_i3]
    for nn_ff_0_yy_fused in T.parallel(T.int64(10560)):
        for xx_0 in range(T.int64(11)):
            for xx_1_init in T.unroll(T.int64(5)):
                for ff_1_0_init in T.unroll(T.int64(2)):
                    for ff_1_1_init in T.vectorized(T.int64(8)):
                        with T.sblock("conv2d_nchw_init"):
                            v_nn = T.axis.spatial(T.int64(32), nn_ff_0_yy_fused // T.int64(330))
                            v_ff = T.axis.spatial(T.int64(96), nn_ff_0_yy_fused % T.int64(330) // T.int64(55) * T.int64(16) + ff_1_0_init * T.int64(8) + ff_1_1_init)
                            v_yy = T.axis.spatial(T.int64(55), nn_ff_0_yy_fused % T.int64(55))
                            v_xx = T.axis.spatial(T.int64(55), xx_0 * T.int64(5) + xx_1_init)
                            T.reads()
                            T.writes(conv2d_nchw_local[v_nn, v_ff, v_yy, v_xx])
                            conv2d_nchw_local[v_nn, v_ff, v_yy, v_xx] = T.float32(0.0)
            for rc, ry, rx in T.grid(T.int64(3), T.int64(11), T.int64(11)):
                for xx_1 in T.unroll(T.int64(5)):
                    for ff_1_0 in T.unroll(T.int64(2)):
                        for ff_1_1 in T.vectorized(T.int64(8)):
                            with T.sblock("conv2d_nchw_update"):
                                v_nn = T.axis.spatial(T.int64(32), nn_ff_0_yy_fused // T.int64(330))
                                v_ff = T.axis.spatial(T.int64(96), nn_ff_0_yy_fused % T.int64(330) // T.int64(55) * T.int64(16) + ff_1_0 * T.int64(8) + ff_1_1)
                                v_yy = T.axis.spatial(T.int64(55), nn_ff_0_yy_fused % T.int64(55))
                                v_xx = T.axis.spatial(T.int64(55), xx_0 * T.int64(5) + xx_1)
                                v_rc, v_ry, v_rx = T.axis.remap("RRR", [rc, ry, rx])
                                T.reads(conv2d_nchw_local[v_nn, v_ff, v_yy, v_xx], pad_temp[v_nn, v_rc, v_yy * T.int64(4) + v_ry, v_xx * T.int64(4) + v_rx], weight_global[v_ff // T.int64(16), v_rc, v_ry, v_rx, v_ff % T.int64(16)])
                                T.writes(conv2d_nchw_local[v_nn, v_ff, v_yy, v_xx])
                                conv2d_nchw_local[v_nn, v_ff, v_yy, v_xx] = conv2d_nchw_local[v_nn, v_ff, v_yy, v_xx] + pad_temp[v_nn, v_rc, v_yy * T.int64(4) + v_ry, v_xx * T.int64(4) + v_rx] * weight_global[v_ff // T.int64(16), v_rc, v_ry, v_rx, v_ff % T.int64(16)]
            for ax0, ax1 in T.grid(T.int64(16), T.int64(5)):
                with T.sblock("compute"):
                    v_i0 = T.axis.spatial(T.int64(32), nn_ff_0_yy_fused // T.int64(330))
                    v_i1 = T.axis.spatial(T.int64(96), nn_ff_0_yy_fused % T.int64(330) // T.int64(55) * T.int64(16) + ax0)
                    v_i2 = T.axis.spatial(T.int64(55), nn_ff_0_yy_fused % T.int64(55))
                    v_i3 = T.axis.spatial(T.int64(55), xx_0 * T.int64(5) + ax1)
                    T.reads(conv2d_nchw_local[v_i0, v_i1, v_i2, v_i3], bias[v_i1])
                    T.writes(compute[v_i0, v_i1, v_i2, v_i3])
                    compute[v_i0, v_i1, v_i2, v_i3] = T.max(T.float32(0.0), conv2d_nchw_local[v_i0, v_i1, v_i2, v_i3] + bias[v_i1])