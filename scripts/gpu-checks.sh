#!/usr/bin/env bash
# Everything this project checks on a lent GPU, from the project root, once
# TVM is installed (../shared/gpu/README.md) and with .gpu3 from
# scripts/pack-gpu-deps.sh present:
#     source .gpu2/install.sh && bash scripts/gpu-checks.sh            # one 10-minute call (limits: 9.1 min)
#     source .gpu2/install.sh && bash scripts/gpu-checks.sh transfer   # a second call, if time is left
#     bash scripts/gpu-checks.sh rehearse   # here, no GPU: the CPU-possible steps on llvm, width 0.25 (3.5 min on 2 idle cores)
# Results go to $OUT (the device tool brings that folder back); commit
# $OUT/tuning_logs/cuda-sm_XX as tvm_alexnet/tuning_logs/cuda-sm_XX and the tables as
# bench-logs/. Each step has its own time limit, so that one that runs long
# costs only its own results (steps.txt: each step's exit status and seconds); tuning is
# stopped by SIGINT, which leaves a valid log that the same command continues.
set -uo pipefail
mode="${1:-checks}"
out="${OUT:-gpu-results}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cli=(python3 -m tvm_alexnet)  # an array: `timeout` runs programs, not shell functions
export COLUMNS=160  # rich tables: full width in the files
: > "$out/steps.txt"

# step NAME SECONDS FILE COMMAND...: run with a time limit, its output into $out/FILE, its status and time into steps.txt.
step() {
  local name="$1" limit="$2" file="$3"; shift 3
  local start=$SECONDS
  timeout -s INT -k 20 "$limit" "$@" > "$out/$file" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$out/steps.txt"
  tail -5 "$out/$file"
}

if [ "$mode" = rehearse ]; then
  # The steps a CPU can run, on llvm at width 0.25 and tiny sizes: the script's plumbing, not the GPU's numbers.
  # The demo's own batch sizes (32), whose builds the test suite's demo training may have cached already.
  target=llvm; other=llvm:haswell; width=(--width 0.25); batch=2; train_batch=32; eval_batch=32; only=(--kernel fc8_dense)
  train_limit=240; eval_limit=180; towers_limit=150;  # a CPU, maybe shared with another test
  report_batches=(--batch 1 --no-backward)
  export TVM_ALEXNET_CACHE="${TVM_ALEXNET_CACHE:-$out/cache}"
else
  python3 -m pip install -q --no-index --no-deps --no-compile --target /root/tvmsite .gpu3/*.whl
  export PYTHONPATH="/root/tvmsite:$PWD" TVM_CUDA_COMPILE_MODE=nvcc
  arch="sm_$(python3 -c 'import torch; print("".join(map(str, torch.cuda.get_device_capability())))')"
  target="cuda:$arch"; other="cuda:$([ "$arch" = sm_80 ] && echo sm_90 || echo sm_80)"
  width=(); only=(); train_limit=90; eval_limit=40; towers_limit=60; batch=32; train_batch=32; eval_batch=64; report_batches=(--batch 1 --batch 128)
fi
log="$out/tuning_logs/$(python3 -c "from tvm_alexnet.target import parse_target, target_dirname; print(target_dirname(parse_target('$target')))")"

# What ran where: GPU name and driver, nvcc's and torch's CUDA versions.
{
  echo "mode: $mode; target: $target"
  nvidia-smi --query-gpu=name,driver_version --format=csv 2>&1 || echo "nvidia-smi: none"
  nvcc --version 2>&1 | tail -2 || echo "nvcc: none"
  python3 -c 'import torch, tvm; print(f"torch {torch.__version__}, torch.version.cuda {torch.version.cuda}, '\
'GPUs {torch.cuda.device_count()}, tvm {tvm.__version__}")'
} > "$out/versions.txt" 2>&1
cat "$out/versions.txt"

if [ "$mode" = transfer ] || [ "$mode" = rehearse ]; then
  if [ "$mode" = rehearse ]; then  # the log to re-target: a few trials of the first kernels
    step tune 120 tune.txt "${cli[@]}" tune "${width[@]}" --batch "$batch" --target "$target" --log-dir "$log" \
      --trials 2 --trials-per-round 2 "${only[@]}"
  fi
  # Re-target the log tuned here ($target) to $other: re-validated and rebuilt for $other (0 trials: no search).
  # It is measured only where $other's hardware is at hand; timing it on this card is not evidence for $other.
  olog="$out/tuning_logs/retargeted-${other//:/-}"
  step retarget 240 retarget.txt "${cli[@]}" tune "${width[@]}" --batch "$batch" --target "$other" \
    --from "$log" --trials 0 "${only[@]}" --log-dir "$olog"
  step rebuild 180 rebuild.txt "${cli[@]}" compile "${width[@]}" --batch "$batch" --target "$other" \
    --tuning-log "$olog" -o "$out/build-${other//:/-}"
  if [ "$mode" = rehearse ]; then  # llvm:haswell code runs on this x86 CPU: its arch is at hand
    step measure-retargeted 120 transfer.txt "${cli[@]}" report "${width[@]}" --batch "$batch" --target "$other" \
      --tuning-log "$olog" --repeat 1 --min-repeat-ms 1 --no-backward --no-torch-compile
  else
    echo "$other: re-targeted and rebuilt from $log; not measured (no $other GPU here)" | tee "$out/transfer.txt"
  fi
  [ "$mode" = transfer ] && exit 0
fi

if [ "$mode" != rehearse ]; then
  # The CUDA network and kernels against float64; the two towers on one GPU in one process, a CUDA stream each.
  step pytest-gpu 100 pytest-gpu.txt python3 -m pytest -q -m gpu -p no:cacheprovider tests/
fi
step demo 40 demo.txt "${cli[@]}" demo "${width[@]}" --target "$target" --repeat 1
# Train one epoch of the demo digits on the target, then evaluate and run what it wrote.
step train "$train_limit" train.txt "${cli[@]}" train --demo --target "$target" --epochs 1 --batch-size "$train_batch" \
  --workers 2 --out "$out/run"
step eval "$eval_limit" eval.txt "${cli[@]}" eval --weights "$out/run/weights.safetensors" --demo --target "$target" \
  --batch-size "$eval_batch" --workers 2
python3 -c "from PIL import Image; import numpy as np; Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 300, 3), dtype=np.uint8)).save('$out/image.png')"
step run 30 run.txt "${cli[@]}" run "$out/image.png" --weights "$out/run/weights.safetensors" --target "$target"
# Every kernel against torch on the same device (cuDNN on a GPU, oneDNN on a CPU).
step report 90 report.txt "${cli[@]}" report "${width[@]}" "${report_batches[@]}" --target "$target" \
  --tuning-log none --repeat 2 --min-repeat-ms 5 --no-torch-compile --out "$out/reports"
# The two towers in one process (on a GPU: both on cuda:0, a stream each) against the unsplit network.
step towers "$towers_limit" towers.txt python3 scripts/bench_towers.py "${width[@]}" --batch "$batch" --rounds 1 \
  --repeat 1 --warmup 0 --target "$target" --out "$out/towers.txt.table"
if [ "$mode" != rehearse ]; then
  # A time-limited tuning for this GPU at batch 32, leaving a log (continued by the same command; re-targeted by `transfer`).
  step tune 80 tune.txt "${cli[@]}" tune --batch 32 --target "$target" --log-dir "$log" --trials 2000 \
    --trials-per-round 32
fi
step logs 15 logs.txt "${cli[@]}" logs "${width[@]}" "$log" --batch "$batch"
exit 0
