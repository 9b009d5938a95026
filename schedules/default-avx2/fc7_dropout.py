# fc7_dropout (dropout) of paper, hand-written default for AVX2 (tvm_alexnet/ops/cpu_schedules.py), batch n
# regenerate: tvm-alexnet schedules --variant paper --target llvm:znver3
# from typing import TypeVar
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

n = TypeVar("n")
@T.prim_func(s_tir=True)
def fc7_dropout(x: T.Buffer((n, T.int64(4096)), "float32"), mask: T.Buffer((n, T.int64(4096)), "float32"), dropout: T.Buffer((n, T.int64(4096)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for i0 in T.parallel(n):
        for i1_0 in range(T.int64(512)):
            for i1_1 in T.vectorized(T.int64(8)):
                with T.sblock("dropout"):
                    v_i0 = T.axis.spatial(n, i0)
                    v_i1 = T.axis.spatial(T.int64(4096), i1_0 * T.int64(8) + i1_1)
                    T.reads(x[v_i0, v_i1], mask[v_i0, v_i1])
                    T.writes(dropout[v_i0, v_i1])
                    dropout[v_i0, v_i1] = x[v_i0, v_i1] * mask[v_i0, v_i1]