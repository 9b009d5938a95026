# conv1_relu_grad (relu_grad) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def conv1_relu_grad(dy: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), saved: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32"), relu_grad: T.Buffer((n, T.int64(96), T.int64(55), T.int64(55)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for i0_i1_fused in T.parallel(n * T.int64(96)):
        for i2 in range(T.int64(55)):
            for i3 in T.vectorized(T.int64(55)):
                with T.sblock("relu_grad"):
                    v_i0 = T.axis.spatial(n, i0_i1_fused // T.int64(96))
                    v_i1 = T.axis.spatial(T.int64(96), i0_i1_fused % T.int64(96))
                    v_i2, v_i3 = T.axis.remap("SS", [i2, i3])
                    T.reads(saved[v_i0, v_i1, v_i2, v_i3], dy[v_i0, v_i1, v_i2, v_i3])
                    T.writes(relu_grad[v_i0, v_i1, v_i2, v_i3])
                    relu_grad[v_i0, v_i1, v_i2, v_i3] = T.Select(saved[v_i0, v_i1, v_i2, v_i3] <= T.float32(0.0), T.float32(0.0), dy[v_i0, v_i1, v_i2, v_i3])