#!/usr/bin/env bash
# Compile a torch-free source with nvcc for H100 (sm_90) on a machine without a
# GPU, and check the SASS for the 16-byte loads the kernels depend on (each
# iteration's issued together), and for the wait on the previous grid (ACQBULK,
# from griddepcontrol.wait) ahead of every global memory access: the launcher
# lets these kernels start early. It also compiles the source for sm_75 and
# sm_80 (no SASS checks): a build for a GPU present takes that GPU's
# architecture, so instructions newer than sm_75 (the oldest target nvcc 13
# supports) must stay behind architecture guards.
#   usage: scripts/check_cuda_build.sh SOURCE.cu [OUTDIR]
# NVCC (default: nvcc on PATH) and PYTHON (default: python3) may be overridden.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 SOURCE.cu [OUTDIR]" >&2
  exit 2
fi
src=$1
out=${2:-${TMPDIR:-/tmp}/check_cuda_build}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=$(basename "${src%.*}")
nvcc=${NVCC:-nvcc}
python=${PYTHON:-python3}
mkdir -p "$out"

for arch in sm_75 sm_80; do
  "$nvcc" -arch=$arch -O3 -std=c++17 -I"$repo/csrc/kernels" -c "$src" -o "$out/$name.$arch.o"
done
obj=$out/$name.sm_90.o
"$nvcc" -arch=sm_90 -O3 -std=c++17 -I"$repo/csrc/kernels" -c "$src" -o "$obj"

# cuobjdump -sass hands the disassembly to nvdisasm. Toolkits installed from
# pip wheels (as here) have neither, so look beside the real nvcc (the one on
# PATH may be a wrapper script) and otherwise fetch NVIDIA's wheels of the two
# tools into the build folder, away from the Python environment.
toolkit_bin() {
  local top
  top=$("$nvcc" -v --dryrun -c "$src" -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)
  [[ -n $top ]] && echo "$top/bin"
}
tools=""
if command -v cuobjdump >/dev/null && command -v nvdisasm >/dev/null; then
  tools=$(dirname "$(command -v cuobjdump)")
fi
if [[ -z $tools ]]; then
  bin=$(toolkit_bin || true)
  if [[ -n $bin && -x $bin/cuobjdump && -x $bin/nvdisasm ]]; then tools=$bin; fi
fi
if [[ -z $tools ]]; then
  cache=$repo/build/cuda-tools
  tools=$cache/nvidia/cu13/bin
  if [[ ! -x $tools/cuobjdump || ! -x $tools/nvdisasm ]]; then
    echo "installing cuobjdump and nvdisasm into $cache..." >&2
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$cache" \
      'nvidia-cuda-cuobjdump>=13,<14' 'nvidia-cuda-nvdisasm>=13,<14'
    chmod +x "$tools"/* 2>/dev/null || true
  fi
fi

sass=$out/$name.sm_90.sass
PATH=$tools:$PATH "$tools/cuobjdump" -sass "$obj" > "$sass"

# One line per kernel: its mangled name, how many 16-byte global loads it has,
# and whether its first global memory access (load, store, atomic, reduction
# or prefetch) comes after the grid-dependency wait. nvcc 13 writes 16-byte
# loads as LDG.E.128 on sm_90, with the load's cache qualifiers between E and
# 128 (LDG.E.NA.128 for the kernels' loads that do not allocate in L1); all
# count.
#
# A fourth field counts the floating-point comparisons that sit between the
# 16-byte loads of one iteration. The contiguous kernels have two runs of
# loads, the whole iterations' loop and the last, partial iteration, each of
# kUnroll loads meant to be in flight together; a comparison among them means
# the compiler waits for one load before issuing the next (ptxas does this to
# fit a loop into fewer registers), which costs a memory round trip per load.
# A 16-byte global load, whatever its cache qualifiers (brackets, not
# backslashes: awk -v would take \. as an escape).
load_re='LDG[.]E([.][A-Z0-9]+)*[.]128'
summary=$(awk -v load_re="$load_re" '
  function flush() {
    if (fn == "") return
    interleaved = 0
    half = n / 2
    for (r = 0; r < 2 && n > 0; r++) {
      first = r * half + 1
      last = (r + 1) * half
      for (c = 1; c <= ncmp; c++) if (cmp_at[c] > load_at[first] && cmp_at[c] < load_at[last]) interleaved++
    }
    print fn, n, (waited_first ? "yes" : "no"), interleaved
  }
  /Function :/ { flush(); fn = $NF; n = 0; ncmp = 0; line = 0; waited = 0; accessed = 0; waited_first = 0; next }
  { line++ }
  /[[:space:]](FSETP|HSETP2|HSET2)[.[:space:]]/ { cmp_at[++ncmp] = line }
  /[[:space:]]ACQBULK[[:space:];]/ { waited = 1 }
  /[[:space:]](LDG|STG|ATOMG|ATOM|RED|CCTL)[.[:space:]]/ {
    if (!accessed) waited_first = waited
    accessed = 1
  }
  $0 ~ load_re { load_at[++n] = line }
  END { flush() }' "$sass")
if [[ -z $summary ]]; then
  echo "FAIL: no kernels in $sass" >&2
  exit 1
fi
fail=0
kernels=0
while read -r fn loads waits_first interleaved; do
  kernels=$((kernels + 1))
  if [[ $waits_first != yes ]]; then
    echo "FAIL: $fn touches global memory before its griddepcontrol.wait (ACQBULK)" >&2
    fail=1
  fi
  # kContiguous=true instantiations (the template argument before kStats, the
  # last one: `Lb1ELb0E` or `Lb1ELb1E`) are the vectorised path: each must
  # use 16-byte loads.
  if [[ $fn =~ Lb1ELb[01]EEEv && $loads -eq 0 ]]; then
    echo "FAIL: $fn has no 16-byte load (LDG.E...128): they were split or lost" >&2
    fail=1
  fi
  if [[ $interleaved -ne 0 ]]; then
    echo "FAIL: $fn compares values between the 16-byte loads of one iteration" \
      "($interleaved comparisons): the loads are no longer in flight together" >&2
    fail=1
  fi
done <<< "$summary"
total=$(grep -cE "$load_re" "$sass" || true)
if [[ $total -eq 0 ]]; then
  echo "FAIL: no 16-byte load (LDG.E...128) anywhere in $sass" >&2
  fail=1
fi
[[ $fail -eq 0 ]] || exit 1

echo "OK: $obj ($kernels kernels, each waiting for the previous grid first; 16-byte loads: $total," \
  "each iteration's issued together), $sass; also built for sm_75 and sm_80"
