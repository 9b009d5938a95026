# conv1_conv_grad_input (conv2d_grad_input) of paper, hand-written default for AVX-512 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:sapphirerapids
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_conv_grad_input(dy: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), weight: T.Buffer((T.int64(96), T.int64(3), T.int64(11), T.int64(11)), "float32"), conv2d_grad_input: T.Buffer((n, T.int64(3), T.int64(227), T.int64(227)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    dy_pad = T.sblock_alloc_buffer((n, T.int64(96), T.int64(59), T.int64(66)))
    weight_taps = T.sblock_alloc_buffer((T.int64(3), T.int64(4), T.int64(96), T.int64(3), T.int64(3), T.int64(4)))
    conv2d_grad_input_phases = T.sblock_alloc_buffer((n, T.int64(3), T.int64(227), T.int64(4), T.int64(64)))
    conv2d_grad_input_phases_local = T.sblock_alloc_buffer((n, T.int64(3), T.int64(227), T.int64(4), T.int64(64)), scope="local")
    for b_o_fused in T.parallel(n * T.int64(96)):
        for y, x in T.grid(T.int64(59), T.int64(66)):
            with T.sblock("dy_pad"):
                v_b = T.axis.spatial(n, b_o_fused // T.int64(96))
                v_o = T.axis.spatial(T.int64(96), b_o_fused % T.int64(96))
                v_y, v_x = T.axis.remap("SS", [y, x])
                T.reads(dy[v_b, v_o, v_y - T.int64(2), v_x - T.int64(2)])
                T.writes(dy_pad[v_b, v_o, v_y, v_x])
                dy_pad[v_b, v_o, v_y, v_x] = T.if_then_else(T.int64(2) <= v_y and v_y < T.int64(57) and T.int64(2) <= v_x and v_x < T.int64(57), dy[v_b, v_o, v_y - T.int64(2), v_x - T.int64(2)], T.float32(0.0))
    for c_r_fused in T.parallel(T.int64(12)):
        for o, a, b, q in T.grid(T.int64(96), T.int64(3), T.int64(3), T.int64(4)):
            with T.sblock("weight_taps"):
                v_c = T.axis.spatial(T.int64(3), c_r_fused // T.int64(4))
                v_r = T.axis.spatial(T.int64(4), c_r_fused % T.int64(4))
                v_o, v_a, v_b, v_q = T.axis.remap("SSSS", [o, a, b, q])
                T.reads(weight[v_o, v_c, v_a * T.int64(4) + v_r, v_b * T.int64(4) + v_q])
                T.writes(weight_taps[v_c, v_r, v_o, v_a, v_b, v_q])
                weight_taps[v_c, v_r, v_o, v_a, v_b, v_q] = T.if_then_else(v_a * T.int64(4) + v_r < T.int64(11) and v_b * T.int64(4) + v_q < T.int64(11), weight[v_o, v_c, v_a * T.int64(4) + v_r, v_b * T.int64(4) + v_q], T.float32(0.0))
    for b_c_i_fused in T.parallel(n * T.int64(681)):
        for v_0 in range(T.int64(1)):
            for q_init in T.unroll(T.int64(4)):
                for v_1_init in T.unroll(T.int64(4)):
                    for v_2_init in T.vectorized(T.int64(16)):
                        with T.sblock("conv2d_grad_input_phases_init"):
                            v_b = T.axis.spatial(n, b_c_i_fused // T.int64(681))
                            v_c = T.axis.spatial(T.int64(3), b_c_i_fused % T.int64(681) // T.int64(227))
                            v_i = T.axis.spatial(T.int64(227), b_c_i_fused % T.int64(227))
                            v_q = T.axis.spatial(T.int64(4), q_init)
                            v_v = T.axis.spatial(T.int64(64), v_0 * T.int64(64) + v_1_init * T.int64(16) + v_2_init)
                            T.reads()
                            T.writes(conv2d_grad_input_phases_local[v_b, v_c, v_i, v_q, v_v])
                            conv2d_grad_input_phases_local[v_b, v_c, v_i, v_q, v_v] = T.float32(0.0)
            for ro, ra, rb in T.grid(T.int64(96), T.int64(3), T.int64(3)):
                for q in T.unroll(T.int64(4)):
                    for v_1 in T.unroll(T.int64(4)):
                        for v_2 in T.vectorized(T.int64(16)):
                            with T.sblock("conv2d_grad_input_phases_update"):
                                v_b = T.axis.spatial(n, b_c_i_fused // T.int64(681))
                                v_c = T.axis.spatial(T.int64(3), b_c_i_fused % T.int64(681) // T.int64(227))
                                v_i = T.axis.spatial(T.int64(227), b_c_i_fused % T.int64(227))
                                v_q = T.axis.spatial(T.int64(4), q)
                                v_v = T.axis.spatial(T.int64(64), v_0 * T.int64(64) + v_1 * T.int64(16) + v_2)
                                v_ro, v_ra, v_rb = T.axis.remap("RRR", [ro, ra, rb])
                                T.reads(conv2d_grad_input_phases_local[v_b, v_c, v_i, v_q, v_v], dy_pad[v_b, v_c // T.int64(3) * T.int64(96) + v_ro, v_i // T.int64(4) + T.int64(2) - v_ra, v_v + T.int64(2) - v_rb], weight_taps[v_c % T.int64(3), v_i % T.int64(4), v_c // T.int64(3) * T.int64(96) + v_ro, v_ra, v_rb, v_q])
                                T.writes(conv2d_grad_input_phases_local[v_b, v_c, v_i, v_q, v_v])
                                conv2d_grad_input_phases_local[v_b, v_c, v_i, v_q, v_v] = conv2d_grad_input_phases_local[v_b, v_c, v_i, v_q, v_v] + dy_pad[v_b, v_c // T.int64(3) * T.int64(96) + v_ro, v_i // T.int64(4) + T.int64(2) - v_ra, v_v + T.int64(2) - v_rb] * weight_taps[v_c % T.int64(3), v_i % T.int64(4), v_c // T.int64(3) * T.int64(96) + v_ro, v_ra, v_rb, v_q]
            for ax0, ax1 in T.grid(T.int64(4), T.int64(64)):
                with T.sblock("conv2d_grad_input_phases_local"):
                    v0 = T.axis.spatial(n, b_c_i_fused // T.int64(681))
                    v1 = T.axis.spatial(T.int64(3), b_c_i_fused % T.int64(681) // T.int64(227))
                    v2 = T.axis.spatial(T.int64(227), b_c_i_fused % T.int64(227))
                    v3, v4 = T.axis.remap("SS", [ax0, ax1])
                    T.reads(conv2d_grad_input_phases_local[v0, v1, v2, v3, v4])
                    T.writes(conv2d_grad_input_phases[v0, v1, v2, v3, v4])
                    conv2d_grad_input_phases[v0, v1, v2, v3, v4] = conv2d_grad_input_phases_local[v0, v1, v2, v3, v4]
        for ax0 in range(T.int64(227)):
            with T.sblock("conv2d_grad_input"):
                v_b = T.axis.spatial(n, b_c_i_fused // T.int64(681))
                v_c = T.axis.spatial(T.int64(3), b_c_i_fused % T.int64(681) // T.int64(227))
                v_i = T.axis.spatial(T.int64(227), b_c_i_fused % T.int64(227))
                v_j = T.axis.spatial(T.int64(227), ax0)
                T.reads(conv2d_grad_input_phases[v_b, v_c, v_i, v_j % T.int64(4), v_j // T.int64(4)])
                T.writes(conv2d_grad_input[v_b, v_c, v_i, v_j])
                conv2d_grad_input[v_b, v_c, v_i, v_j] = conv2d_grad_input_phases[v_b, v_c, v_i, v_j % T.int64(4), v_j // T.int64(4)]