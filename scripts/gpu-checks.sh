#!/usr/bin/env bash
# Everything this project checks on a lent GPU, from the project root, once
# TVM is installed (../shared/gpu/README.md) and with .gpu3 from
# scripts/pack-gpu-deps.sh present:
#     source .gpu2/install.sh && bash scripts/gpu-checks.sh            # limits: 9.3 minutes
#     source .gpu2/install.sh && bash scripts/gpu-checks.sh transfer   # a second call, if time is left
# Results go to $OUT (the device tool brings that folder back); commit
# $OUT/tuning_logs/cuda-sm_90 as tvm_alexnet/tuning_logs/cuda-sm_90 and the tables as
# bench-logs/. Each step has its own time limit, so that one that runs long
# costs only its own results; tuning is stopped by SIGINT, which leaves a
# valid log that the same command continues.
set -uo pipefail
out="${OUT:-gpu-results}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /root/tvmsite .gpu3/*.whl
export PYTHONPATH="/root/tvmsite:$PWD" TVM_CUDA_COMPILE_MODE=nvcc COLUMNS=160  # rich tables: full width in the files
arch="sm_$(python3 -c 'import torch; print("".join(map(str, torch.cuda.get_device_capability())))')"
log="$out/tuning_logs/cuda-$arch"
cli=(python3 -m tvm_alexnet)  # an array: `timeout` runs programs, not shell functions
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

if [ "${1:-}" = transfer ]; then
  # Issue 4's sm_80 -> sm_90 measure: a full tuning for sm_80 (run on this
  # GPU), one for this GPU, and the first re-targeted (see bench_transfer.py).
  timeout -s INT -k 30 540 python3 scripts/bench_transfer.py --source cuda:sm_80 --target "cuda:$arch" \
    --batch 32 --trials 96 --kernel conv2_conv --kernel conv3_conv --kernel fc6_dense \
    --work "$out/transfer-work" 2>&1 | tail -20 | tee "$out/transfer.txt"
  exit 0
fi

# Issue 7: two towers on cuda:0 (a stream each); the CUDA network and kernels against float64.
timeout 180 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_cuda.py tests/test_towers.py \
  2>&1 | tail -30 | tee "$out/pytest-gpu.txt"
# Issue 7: a training step, both towers on cuda:0 against the unsplit network.
timeout 120 python3 scripts/bench_towers.py --batch 128 --rounds 3 --target "cuda:$arch" 2>&1 \
  | tail -25 | tee "$out/towers-cuda.txt"
# Issue 4: every kernel (dlight's schedules) against cuDNN and aten at batch 1 and 32.
timeout 120 "${cli[@]}" report --batch 1 --batch 32 --target "cuda:$arch" --tuning-log none --repeat 5 \
  --min-repeat-ms 20 --no-torch-compile --out "$out/reports" 2>&1 | tail -5 | tee "$out/report.txt"
# Issue 4: tune for this GPU at batch 32 (the slowest kernels first), then what the log holds.
timeout -s INT -k 20 120 "${cli[@]}" tune --batch 32 --target "cuda:$arch" --log-dir "$log" --trials 2000 \
  --trials-per-round 32 2>&1 | tail -30 | tee "$out/tune.txt"
"${cli[@]}" logs "$log" --batch 32 2>&1 | tail -40 | tee "$out/logs.txt"
