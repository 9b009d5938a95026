# conv2_conv_grad_bias (bias_grad) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv2_conv_grad_bias(dy: T.Buffer((n, T.int64(256), T.int64(27), T.int64(27)), "float32"), bias_grad: T.Buffer((T.int64(256),), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    bias_grad_rf = T.sblock_alloc_buffer((T.int64(256), T.int64(27)))
    for c in T.parallel(T.int64(256)):
        for r1_init in range(T.int64(27)):
            with T.sblock("bias_grad_rf_init"):
                vr1, v_c = T.axis.remap("SS", [r1_init, c])
                T.reads()
                T.writes(bias_grad_rf[v_c, vr1])
                bias_grad_rf[v_c, vr1] = T.float32(0.0)
        for rn, r0, r1 in T.grid(n, T.int64(27), T.int64(27)):
            with T.sblock("bias_grad_rf_update"):
                vr1, v_c, v_rn, v_r0 = T.axis.remap("SSRR", [r1, c, rn, r0])
                T.reads(bias_grad_rf[v_c, vr1], dy[v_rn, v_c, v_r0, vr1])
                T.writes(bias_grad_rf[v_c, vr1])
                bias_grad_rf[v_c, vr1] = bias_grad_rf[v_c, vr1] + dy[v_rn, v_c, v_r0, vr1]
        for ax0 in range(T.int64(27)):
            with T.sblock("bias_grad"):
                vr1, v_c = T.axis.remap("RS", [ax0, c])
                T.reads(bias_grad_rf[v_c, vr1])
                T.writes(bias_grad[v_c])
                with T.init():
                    bias_grad[v_c] = T.float32(0.0)
                bias_grad[v_c] = bias_grad[v_c] + bias_grad_rf[v_c, vr1]