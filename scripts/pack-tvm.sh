#!/usr/bin/env bash
# Packs Apache TVM (and the few Python wheels a bare GPU image lacks) for an
# offline GPU machine with Python 3.12, torch, numpy, ml_dtypes, psutil and
# cloudpickle but no TVM and no package registry.
#
# The TVM wheel is ~100 MB, so the bundle is split in two folders of under
# 45 MB each, to be copied over one after the other:
#   .gpu1/  first half of the compressed TVM tree
#   .gpu2/  second half + tvm-ffi and xgboost wheels + install.sh
#
# Run from the project root:   scripts/pack-tvm.sh   (see docs/gpu.md)
set -euo pipefail
TVM_VERSION="${TVM_VERSION:-0.27.0.post1}"
FFI_VERSION="${FFI_VERSION:-0.1.14.post1}"
XGB_VERSION="${XGB_VERSION:-3.4.1}"
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for d in .gpu1 .gpu2; do
  grep -qxF "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
rm -rf .gpu1 .gpu2 && mkdir -p .gpu1 .gpu2

plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64)
dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${plat[@]}" -d "$1" "$2"; }

dl "$work" "apache-tvm==$TVM_VERSION"
dl .gpu2 "apache-tvm-ffi==$FFI_VERSION"
dl .gpu2 "xgboost-cpu==$XGB_VERSION"

mkdir "$work/tree"
(cd "$work/tree" && unzip -q "$work"/apache_tvm-*.whl)
# CUTLASS headers are only needed for the CUTLASS BYOC path; dropping them saves ~20 MB.
tar -C "$work/tree" --exclude=tvm/3rdparty/cutlass -cf - . | xz -T0 -6 > "$work/tvm.tar.xz"
split -b 40M -d "$work/tvm.tar.xz" "$work/tvm.tar.xz.part"
mv "$work"/tvm.tar.xz.part00 .gpu1/
mv "$work"/tvm.tar.xz.part0[1-9] .gpu2/

cat > .gpu2/install.sh <<'EOS'
# Sourced on the GPU machine once .gpu1's part is in /root/tvmstage: installs TVM into /root/tvmsite.
set -e
mkdir -p /root/tvmstage /root/tvmsite
cp .gpu2/tvm.tar.xz.part* /root/tvmstage/
[ -f /root/tvmstage/tvm.tar.xz.part00 ] || { echo "part00 missing: copy .gpu1/* into /root/tvmstage first"; return 1; }
cat /root/tvmstage/tvm.tar.xz.part* | xz -d | tar -x -C /root/tvmsite
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/tvmsite .gpu2/*.whl
export PYTHONPATH=/root/tvmsite${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import tvm; print('tvm', tvm.__version__, 'cuda', tvm.cuda(0).exist)"
EOS
du -sh .gpu1 .gpu2
