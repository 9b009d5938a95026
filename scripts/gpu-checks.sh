#!/usr/bin/env bash
# Everything this project checks on a lent GPU, in one call, from the project
# root, once TVM is installed (../shared/gpu/README.md) and with .gpu3 from
# scripts/pack-gpu-deps.sh present:
#     source .gpu2/install.sh && bash scripts/gpu-checks.sh
# Results go to $OUT (the device tool brings that folder back).
set -uo pipefail
out="${OUT:-gpu-results}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /root/tvmsite .gpu3/*.whl
export PYTHONPATH="/root/tvmsite:$PWD" TVM_CUDA_COMPILE_MODE=nvcc
arch="sm_$(python3 -c 'import torch; print("".join(map(str, torch.cuda.get_device_capability())))')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
# Two towers on cuda:0 (a stream each), the CUDA network and kernels against float64.
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_cuda.py tests/test_towers.py \
  2>&1 | tail -30 | tee "$out/pytest-gpu.txt"
# Training step: both towers on cuda:0 against the unsplit network.
timeout 200 python3 scripts/bench_towers.py --batch 128 --rounds 3 --target "cuda:$arch" 2>&1 \
  | tail -25 | tee "$out/towers-cuda.txt"
