"""The default CUDA schedules (tvm_alexnet.ops.gpu_schedules, ops.gpu_conv; checks in gpu_checks), checked statically:
the scheduled TIR is well formed and keeps the kernel's signature,
verify_gpu_code accepts it within every GPU's limits, nvcc compiles it for
sm_80 and sm_90, ptxas spills nothing, and the big kernels launch at least
128 threads a block. Running them needs a GPU (tests/test_cuda.py, marked
gpu); schedules change loops, not what is computed, so compiling is what
can be checked here."""

import shutil

import pytest
import tvm
from click.testing import CliRunner

from tvm_alexnet import gpu_checks, graph
from tvm_alexnet.ops import gpu_default_schedule
from tvm_alexnet.spec import network
from tvm_alexnet.target import parse_target

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None,
                                reason="nvcc is not on PATH: CUDA code cannot be compiled here")

ARCHS = ("sm_80", "sm_90")
# Kernels that take milliseconds at batch 128: at least 128 threads a block there.
BIG_OPS = {"conv2d", "conv2d_grad_input", "conv2d_grad_weight", "dense", "dense_grad_input", "dense_grad_weight",
           "lrn", "lrn_grad", "max_pool", "max_pool_grad"}

_networks = {}


def kernel(variant: str, name: str):
    if variant not in _networks:
        _networks[variant] = {k.name: k for k in network(variant).compiled_kernels()}
    return _networks[variant][name]


def check(k, batch, arch: str) -> dict:
    """Schedule, verify and compile one kernel; assert what every kernel must meet."""
    result = gpu_checks.static_check(k, batch, parse_target(f"cuda:{arch}"))
    meets_limits(k, batch, arch, result)
    return result


def meets_limits(k, batch, arch: str, result: dict) -> None:
    where = f"{k.name} at batch {batch} for {arch} ({result['scheduler']})"
    assert result["verified"], f"verify_gpu_code rejects {where}"
    assert result["functions"], f"no __global__ function for {where}"
    for name, f in result["functions"].items():
        assert f["spill_stores"] == 0 and f["spill_loads"] == 0, f"{name}: ptxas spills ({f}) in {where}"
        assert f["stack"] == 0, f"{name}: a stack frame ({f}) in {where}"
        assert f["smem"] <= gpu_checks.GPU_LIMITS["max_shared_memory_per_block"], f"{name}: {f}"
        if k.op in BIG_OPS and (batch is None or batch >= 32):
            assert f["threads"] >= 128, f"{name}: {f['threads']} threads a block in {where}"


# One kernel of each op and shape class: grouped, strided, padded, overhanging
# tiles, symbolic batch, the ops dlight schedules.
CASES = [
    ("paper", "conv1_conv", 128),  # stride 4, no padding, tiles overhang the 55x55 output
    ("torchvision", "conv1_conv", 128),  # stride 4, padded
    ("paper", "conv2_conv", None),  # grouped 5x5, symbolic batch
    ("paper", "conv4_conv", 32),  # grouped 3x3
    ("paper", "conv2_conv_grad_input", 128),
    ("torchvision", "conv3_conv_grad_input", None),
    ("paper", "conv1_conv_grad_input", 32),  # stride 4: in phases
    ("paper", "conv1_conv_grad_weight", 128),
    ("paper", "conv4_conv_grad_weight", None),
    ("paper", "fc6_dense", 1),  # our GEMV
    ("paper", "fc7_dense", 128),  # dlight's Matmul
    ("paper", "fc6_dense_grad_input", 128),
    ("paper", "fc6_dense_grad_weight", None),
    ("paper", "conv1_lrn", 128),
    ("paper", "conv2_lrn_grad", None),
    ("paper", "conv1_pool", 128),
    ("paper", "conv2_pool_grad", 128),
    ("torchvision", "conv5_avgpool", 32),
    ("torchvision", "conv5_avgpool_grad", 32),
    ("paper", "conv3_relu_grad", None),
    ("paper", "fc6_dropout", 128),
    ("paper", "conv2_conv_grad_bias", 128),
    ("paper", "fc7_dense_grad_bias", 128),
    ("paper", "softmax", 128),
]


@pytest.mark.parametrize("variant,name,batch", CASES, ids=[f"{v}-{n}-{b}" for v, n, b in CASES])
def test_kernel_compiles_within_limits(variant, name, batch):
    k = kernel(variant, name)
    for arch in ARCHS:
        check(k, batch, arch)


@pytest.mark.parametrize("variant,name,batch", CASES, ids=[f"{v}-{n}-{b}" for v, n, b in CASES])
def test_schedule_is_a_valid_transformation(variant, name, batch):
    # Schedules transform loops, never what a kernel computes: the result
    # must be well-formed TIR with the kernel's own signature, marked
    # scheduled (so dlight leaves it alone) where this module scheduled it.
    k = kernel(variant, name)
    func = graph.kernel_func(k, batch)
    scheduled = gpu_default_schedule(func, k, batch)
    if scheduled is None:
        assert k.op in ("dense", "dense_grad_input", "dense_grad_weight", "softmax")
        return
    assert tvm.s_tir.analysis.verify_well_formed(scheduled)
    assert [str(p.shape) for p in scheduled.params] == [str(p.shape) for p in func.params]
    assert scheduled.attrs["tirx.is_scheduled"] and scheduled.attrs["global_symbol"] == k.name
    assert "threadIdx.x" in scheduled.script()


def test_narrow_network_schedules():
    # Widths other than 1 give channel counts the tiles must still divide
    # (verify_gpu_code only: compiling them all is the slow sweep's job).
    target = parse_target("cuda:sm_90")
    net = network("paper", width=0.25, num_classes=10)
    for k in net.compiled_kernels():
        if k.op in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "lrn_grad", "max_pool_grad"):
            func, scheduler = gpu_checks.scheduled_kernel(k, None, target)
            assert scheduler == "default" and gpu_checks.verify(func, target), k.name


def test_estimates():
    net = network("torchvision")
    rows = gpu_checks.estimates(net, 128, "H200")
    assert [r["kernel"] for r in rows] == [k.name for k in net.compiled_kernels()]
    by_name = {r["kernel"]: r for r in rows}
    assert by_name["conv2_conv"]["bound"] == "compute" and by_name["conv1_relu_grad"]["bound"] == "memory"
    k = kernel("torchvision", "conv2_conv")
    assert by_name["conv2_conv"]["flops"] == k.flops * 128
    assert by_name["conv2_conv"]["seconds"] == pytest.approx(k.flops * 128 / gpu_checks.GPUS["H200"]["flops"])
    # The same work bounds a slower GPU's time from further up.
    h200, titan = (sum(r["seconds"] for r in gpu_checks.estimates(net, 128, gpu)) for gpu in ("H200", "TitanX"))
    assert 0 < h200 < titan


def test_estimates_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "gpu_estimates.py"
    spec = importlib.util.spec_from_file_location("gpu_estimates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = CliRunner().invoke(module.main, ["--variant", "torchvision", "--batch", "128"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "| conv2_conv | forward |" in result.output and "per training step" in result.output
    assert "cuDNN R4, fp32 81 ms" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 128, None])
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_every_kernel_compiles_within_limits(variant, batch):
    # The sweep: every kernel of both variants at a batch of 1 (the GEMVs), a
    # large one and any, for the H200's sm_90, in one nvcc run each (CASES
    # above cover each op and shape class for both archs).
    failures = []
    kernels = network(variant).compiled_kernels()
    for arch in ("sm_90",):
        results = gpu_checks.static_checks(kernels, batch, parse_target(f"cuda:{arch}"))
        for k, result in zip(kernels, results):
            try:
                meets_limits(k, batch, arch, result)
            except AssertionError as e:
                failures.append(str(e).splitlines()[0])
    assert not failures, "\n".join(failures)
