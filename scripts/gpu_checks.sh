#!/usr/bin/env bash
# The checks that need an NVIDIA GPU: build in place, the whole test suite,
# then compute-sanitizer's memcheck, racecheck, synccheck and initcheck over
# scripts/sanitizer_probe.py (every kernel kind, with and without the extra
# outputs, in seconds), and memcheck, racecheck and synccheck over the GPU
# tests (many minutes under each tool). Logs go to $1 (default
# build/gpu-checks); a summary is printed.
#
# initcheck runs on the probe only, not the tests: it must see every kernel
# to know what was written (so it cannot be narrowed to this project's
# kernel), and torch.argmax's own CUDA reduction and copies of deliberately
# unwritten test padding would drown out the report.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
logs=${1:-build/gpu-checks}
mkdir -p "$logs"
export PYTHONPATH="$(pwd)/python${PYTHONPATH:+:$PYTHONPATH}"

python3 setup.py build_ext --inplace >"$logs/build.log" 2>&1 || { tail -30 "$logs/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/card.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$logs/card.txt"

status=0
python3 -m pytest tests -q -p no:cacheprovider >"$logs/pytest.log" 2>&1 || status=1
echo "pytest: $(tail -1 "$logs/pytest.log")"
# The tests that measure the whole device, alone (they skip under
# pytest-xdist, which PYTEST_ADDOPTS may have asked for above).
PYTEST_ADDOPTS= python3 -m pytest tests -q -p no:cacheprovider -m whole_device \
  >"$logs/pytest-whole-device.log" 2>&1 || status=1
echo "pytest, whole-device tests alone: $(tail -1 "$logs/pytest-whole-device.log")"

for tool in memcheck racecheck synccheck initcheck; do
  narrow=(--kernel-name kns=greedy_sample_kernel)
  [[ $tool == initcheck ]] && narrow=()
  compute-sanitizer --tool "$tool" "${narrow[@]}" --error-exitcode 99 python3 scripts/sanitizer_probe.py \
    >"$logs/sanitizer-probe-$tool.log" 2>&1 || status=1
  echo "$tool over the probe: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$logs/sanitizer-probe-$tool.log" | tail -1)"
done
# The slowest GPU tests (compile, > 2^31 offsets, 70000 rows, thousands of
# rows, short rows of any shape or in every layout) add time under the
# sanitizer but no code path the others miss.
skip="not compile and not past_2_to_the_31 and not more_rows and not thousands and not identical"
skip+=" and not every_row_kind and not any_shape and not (short_rows and (padded or offset))"
for tool in memcheck racecheck synccheck; do
  compute-sanitizer --tool "$tool" --kernel-name kns=greedy_sample_kernel --target-processes all \
    --error-exitcode 99 python3 -m pytest tests/test_gpu.py tests/test_aiter_regression.py -q \
    -p no:cacheprovider -k "$skip" >"$logs/sanitizer-$tool.log" 2>&1 || status=1
  echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$logs/sanitizer-$tool.log" | tail -1)"
done
exit $status
