# fc7_dense_grad_bias (bias_grad) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc7_dense_grad_bias(dy: T.Buffer((n, T.int64(4096)), "float32"), bias_grad: T.Buffer((T.int64(4096),), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for c_0 in T.parallel(T.int64(128)):
        for c_1_init in T.vectorized(T.int64(32)):
            with T.sblock("bias_grad_init"):
                v_c = T.axis.spatial(T.int64(4096), c_0 * T.int64(32) + c_1_init)
                T.reads()
                T.writes(bias_grad[v_c])
                bias_grad[v_c] = T.float32(0.0)
        for rn in range(n):
            for c_1 in T.vectorized(T.int64(32)):
                with T.sblock("bias_grad_update"):
                    v_c = T.axis.spatial(T.int64(4096), c_0 * T.int64(32) + c_1)
                    v_rn = T.axis.reduce(n, rn)
                    T.reads(bias_grad[v_c], dy[v_rn, v_c])
                    T.writes(bias_grad[v_c])
                    bias_grad[v_c] = bias_grad[v_c] + dy[v_rn, v_c]