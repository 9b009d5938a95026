# fc7_relu_grad (relu_grad) of paper, hand-written default for AVX-512 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:sapphirerapids
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc7_relu_grad(dy: T.Buffer((n, T.int64(4096)), "float32"), saved: T.Buffer((n, T.int64(4096)), "float32"), relu_grad: T.Buffer((n, T.int64(4096)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for i0_i1_0_fused in T.parallel(n * T.int64(256)):
        for i1_1 in T.vectorized(T.int64(16)):
            with T.sblock("relu_grad"):
                v_i0 = T.axis.spatial(n, i0_i1_0_fused // T.int64(256))
                v_i1 = T.axis.spatial(T.int64(4096), i0_i1_0_fused % T.int64(256) * T.int64(16) + i1_1)
                T.reads(saved[v_i0, v_i1], dy[v_i0, v_i1])
                T.writes(relu_grad[v_i0, v_i1])
                relu_grad[v_i0, v_i1] = T.Select(saved[v_i0, v_i1] <= T.float32(0.0), T.float32(0.0), dy[v_i0, v_i1])