#!/usr/bin/env bash
# The CUDA wheel on an NVIDIA machine, as a user without a compiler meets it:
# installed (no build) into a virtual environment that sees the machine's
# torch, the whole test suite run against the installed wheel from outside the
# source tree, compute-sanitizer's memcheck, racecheck, synccheck and
# initcheck over scripts/sanitizer_probe.py, and, given BASELINE (a folder
# holding another build's safe_greedy package, e.g. an in-place build of an
# earlier commit), the per-call host overhead of both side by side
# (benchmarks/host_overhead.py). Logs go to LOGS; a summary is printed.
#   usage: scripts/cuda_wheel_gpu_checks.sh WHEEL [BASELINE] [LOGS]
set -uo pipefail

[[ $# -ge 1 && $# -le 3 ]] || { echo "usage: $0 WHEEL [BASELINE] [LOGS]" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wheel=$(realpath "$1")
baseline=${2:+$(realpath "$2")}
logs=$(mkdir -p "${3:-$repo/build/cuda-wheel-gpu-checks}" && cd "${3:-$repo/build/cuda-wheel-gpu-checks}" && pwd)
venv=$logs/venv vpy=$logs/venv/bin/python suite=$logs/suite
unset PYTHONPATH

# The machine's torch may live outside the interpreter's own site-packages
# (a --user or PYTHONPATH install), where --system-site-packages alone would
# not find it: a .pth file names its folder.
rm -rf "$venv" && python3 -m venv --system-site-packages "$venv" || exit 1
torch_dir=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))') || exit 1
"$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | xargs -I{} sh -c "echo '$torch_dir' > {}/machine-torch.pth"
"$vpy" -m pip install -q --no-deps --no-index "$wheel" >"$logs/install.log" 2>&1 || { cat "$logs/install.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/card.txt"
"$vpy" -c 'import torch; print("torch", torch.__version__)' | tee -a "$logs/card.txt"

rm -rf "$suite" && mkdir -p "$suite" && cp -r "$repo/tests" "$repo/benchmarks" "$repo/scripts" "$repo/pyproject.toml" "$suite/"
cd "$suite" || exit 1
"$vpy" - "$venv" <<'EOF' || exit 1
import os, sys
import safe_greedy
where = os.path.realpath(safe_greedy.__file__)
assert where.startswith(os.path.realpath(sys.argv[1]) + os.sep), f"safe_greedy comes from {where}"
print(f"safe_greedy from {where}")
EOF

status=0
"$vpy" -m pytest tests -q -p no:cacheprovider >"$logs/pytest.log" 2>&1 || status=1
echo "pytest: $(tail -1 "$logs/pytest.log")"
# The tests that measure the whole device, alone (they skip under
# pytest-xdist, which PYTEST_ADDOPTS may have asked for above).
PYTEST_ADDOPTS= "$vpy" -m pytest tests -q -p no:cacheprovider -m whole_device \
  >"$logs/pytest-whole-device.log" 2>&1 || status=1
echo "pytest, whole-device tests alone: $(tail -1 "$logs/pytest-whole-device.log")"
for tool in memcheck racecheck synccheck initcheck; do
  narrow=(--kernel-name kns=greedy_sample_kernel)
  [[ $tool == initcheck ]] && narrow=()
  compute-sanitizer --tool "$tool" "${narrow[@]}" --error-exitcode 99 "$vpy" scripts/sanitizer_probe.py \
    >"$logs/sanitizer-probe-$tool.log" 2>&1 || status=1
  echo "$tool over the probe: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$logs/sanitizer-probe-$tool.log" | tail -1)"
done
if [[ -n $baseline ]]; then
  site=$("$vpy" -c 'import os, safe_greedy; print(os.path.dirname(os.path.dirname(safe_greedy.__file__)))')
  "$vpy" benchmarks/host_overhead.py --device cuda --trees "$baseline" "$site" --names baseline wheel \
    --json "$logs/host-overhead.json" | tee "$logs/host-overhead.md" || status=1
fi
exit $status
