#!/usr/bin/env bash
# Compile a torch-free source as HIP for AMD GPUs on a machine without AMD hardware
# (Debian's ROCm 5.2 packages + clang-19): MI200 and MI300 (wave64) and RDNA3
# (wave32). Check the MI300 assembly for the instructions the kernels depend on.
#   usage: scripts/check_hip_build.sh SOURCE.cu [OUTDIR]
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 SOURCE.cu [OUTDIR]" >&2
  exit 2
fi
src=$1
out=${2:-${TMPDIR:-/tmp}/check_hip_build}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=$(basename "${src%.*}")
mkdir -p "$out"

# The device-lib path is needed for a full object (clang links ocml/ockl bitcode);
# ask dpkg rather than hard-coding the multiarch folder.
bitcode_dir() { dirname "$(dpkg -L rocm-device-libs 2>/dev/null | grep '/ocml\.bc$' | head -n1)"; }
bc=$(bitcode_dir)
# clang-tools-19 is only a Recommends of clang-19 but holds clang-offload-bundler,
# without which the full-object build fails.
if ! command -v clang++-19 >/dev/null || ! command -v clang-offload-bundler-19 >/dev/null ||
   [[ ! -f $bc/ocml.bc ]]; then
  echo "installing HIP toolchain (needs root)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    hipcc libamdhip64-dev rocm-device-libs clang-19 clang-tools-19 lld-19 >/dev/null
  bc=$(bitcode_dir)
fi

common=(-x hip --rocm-path=/usr -O3 -std=c++17 -I"$repo/csrc/kernels")

# MI200: full object (host + device), proves the source links against the device libs.
clang++-19 "${common[@]}" --offload-arch=gfx90a --rocm-device-lib-path="$bc" \
  -c "$src" -o "$out/$name.gfx90a.o"

# MI300: device assembly only, so the generated code can be inspected.
asm=$out/$name.gfx942.s
clang++-19 "${common[@]}" --offload-arch=gfx942 -nogpulib --cuda-device-only \
  -S "$src" -o "$asm"

# RDNA3: wave32, where a group of kShortRowThreads (64) threads spans two
# waves, so the block-synchronised group reduction is compiled too.
rdna_asm=$out/$name.gfx1100.s
clang++-19 "${common[@]}" --offload-arch=gfx1100 -nogpulib --cuda-device-only \
  -S "$src" -o "$rdna_asm"

fail=0
if ! grep -q '\.wavefront_size: *32' "$rdna_asm"; then
  echo "FAIL: no wave32 kernel in $rdna_asm" >&2
  fail=1
fi
# 16-byte vector loads are what the bandwidth numbers rely on.
if ! grep -q 'global_load_dwordx4' "$asm"; then
  echo "FAIL: no global_load_dwordx4 in $asm (16-byte loads were split or lost)" >&2
  fail=1
fi
# In ROCm 5.2 headers __shfl_xor is built on ds_bpermute, at every width; it must be
# present, in a wave64 kernel, for the warp reductions to be there at all.
if ! grep -q 'ds_bpermute_b32' "$asm"; then
  echo "FAIL: no ds_bpermute_b32 (cross-lane shuffle) in $asm" >&2
  fail=1
fi
if ! grep -q '\.wavefront_size: *64' "$asm"; then
  echo "FAIL: no wave64 kernel in $asm" >&2
  fail=1
fi
[[ $fail -eq 0 ]] || exit 1

echo "OK: $out/$name.gfx90a.o, $asm, $rdna_asm" \
  "(dwordx4 loads: $(grep -c global_load_dwordx4 "$asm")," \
  "ds_bpermute: $(grep -c ds_bpermute_b32 "$asm"))"
