# conv1_conv_grad_bias (bias_grad) of paper, hand-written default (tvm_alexnet/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_conv_grad_bias(dy: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), bias_grad: T.Buffer((T.int64(96),), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for c in T.parallel(T.int64(96)):
        for rn, r0, r1 in T.grid(n, T.int64(55), T.int64(55)):
            with T.sblock("bias_grad"):
                v_c, v_rn, v_r0, v_r1 = T.axis.remap("SRRR", [c, rn, r0, r1])
                T.reads(dy[v_rn, v_c, v_r0, v_r1])
                T.writes(bias_grad[v_c])
                with T.init():
                    bias_grad[v_c] = T.float32(0.0)
                bias_grad[v_c] = bias_grad[v_c] + dy[v_rn, v_c, v_r0, v_r1]