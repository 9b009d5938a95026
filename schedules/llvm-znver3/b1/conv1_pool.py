# conv1_pool (max_pool) of paper, batch 1, for llvm-znver3: best of 1 trials in tvm_alexnet/tuning_logs/llvm-znver3, 0.115 ms, 5.5 GFLOP/s
# regenerate: tvm-alexnet schedules --tuning-log tvm_alexnet/tuning_logs/llvm-znver3 --variant paper --batch 1 --target llvm:znver3
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@T.prim_func(s_tir=True)
def conv1_pool(x: T.Buffer((T.int64(1), T.int64(96), T.int64(55), T.int64(55)), "float32"), pool_max: T.Buffer((T.int64(1), T.int64(96), T.int64(27), T.int64(27)), "float32")):
    T.func_attr({"tirx.noalias": True})
    # with T.sblock("root"):
    for b_k_fused in T.parallel(T.int64(96)):
        for i in range(T.int64(27)):
            for j_init in T.vectorized(T.int64(27)):
                with T.sblock("pool_max_init"):
                    v_b = T.axis.spatial(T.int64(1), T.int64(0))
                    v_k, v_i, v_j = T.axis.remap("SSS", [b_k_fused, i, j_init])
                    T.reads()
                    T.writes(pool_max[v_b, v_k, v_i, v_j])
                    pool_max[v_b, v_k, v_i, v_j] = T.float32(-340282346638528859811704183484516925440.0)
            for rv0, rv1 in T.grid(T.int64(3), T.int64(3)):
                for j in T.vectorized(T.int64(27)):
                    with T.sblock("pool_max_update"):
                        v_b = T.axis.spatial(T.int64(1), T.int64(0))
                        v_k, v_i, v_j, v_rv0, v_rv1 = T.axis.remap("SSSRR", [b_k_fused, i, j, rv0, rv1])
                        T.reads(pool_max[v_b, v_k, v_i, v_j], x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1])
                        T.writes(pool_max[v_b, v_k, v_i, v_j])
                        pool_max[v_b, v_k, v_i, v_j] = T.Select(T.isnan(x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1]) | (x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1] > pool_max[v_b, v_k, v_i, v_j]), x[v_b, v_k, v_i * T.int64(2) + v_rv0, v_j * T.int64(2) + v_rv1], pool_max[v_b, v_k, v_i, v_j])