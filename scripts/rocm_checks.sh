#!/usr/bin/env bash
# For a machine with an AMD GPU (MI300, MI350/MI355X, ...) and a ROCm build of
# torch: build the extension, run the test suite, the self-check and the
# benchmark (with aiter's greedy_sample side by side when aiter imports, its
# answers outside [0, vocab) counted), and write everything worth sending into
# one file, OUTDIR/rocm-results.md. Every step runs even if an earlier one
# failed (a failing build skips the rest); the exit status is non-zero if any
# failed.
#   usage: scripts/rocm_checks.sh [--quick] [OUTDIR]   (OUTDIR: build/rocm-checks)
#   --quick: the benchmark's small subset instead of the full sweep
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=()
if [[ ${1:-} == --quick ]]; then
  quick=(--quick)
  shift
fi
out=${1:-build/rocm-checks}
mkdir -p "$out"
out=$(cd "$out" && pwd)
results=$out/rocm-results.md
PYTHON=${PYTHON:-python3}
status=0
: >"$results"

section() { printf '\n## %s\n\n' "$1" >>"$results"; }
# The file's text inside a fenced block; the last $2 lines if given.
quote() {
  echo '```' >>"$results"
  if [[ -n ${2:-} ]]; then tail -n "$2" "$1" >>"$results"; else cat "$1" >>"$results"; fi
  echo '```' >>"$results"
}
# Runs a step, its output to OUTDIR/NAME.log; records its exit status.
run_step() {
  local name=$1
  shift
  echo "== $name" >&2
  local start=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  printf -- '- %s: exit %d, %d s\n' "$name" "$rc" $((SECONDS - start)) >>"$out/steps.txt"
  [[ $rc -eq 0 ]] || status=1
  return $rc
}

echo "# safe-greedy on ROCm: results" >>"$results"
: >"$out/steps.txt"

section "Machine"
{
  echo "date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout')$(
    git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  echo "uname: $(uname -srm)"
  "$PYTHON" - <<'EOF'
import importlib.metadata, platform
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, HIP {torch.version.hip}")
if torch.version.hip is None:
    print("WARNING: this torch is not a ROCm build")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"GPU {i}: {p.name}, {getattr(p, 'gcnArchName', '?')}, {p.multi_processor_count} CUs, "
          f"{p.total_memory / 2**30:.0f} GiB")
try:
    print(f"aiter {importlib.metadata.version('aiter')}")
except importlib.metadata.PackageNotFoundError:
    print("aiter: not installed")
EOF
  command -v hipcc >/dev/null && hipcc --version 2>&1 | grep -m2 -i -e 'HIP version' -e 'clang version'
  command -v amd-smi >/dev/null && amd-smi version 2>&1 | head -n 3
} >"$out/machine.txt" 2>&1
quote "$out/machine.txt"

section "Build (pip install --no-build-isolation -e .)"
if run_step build "$PYTHON" -m pip install --no-build-isolation -v -e .; then
  grep -h -e 'safe-greedy setup:' "$out/build.log" | sort -u >"$out/build-notes.txt"
  echo "built; setup.py said:" >>"$results"
  quote "$out/build-notes.txt"
else
  echo "the build failed; the end of its log:" >>"$results"
  quote "$out/build.log" 80
fi

if [[ $status -eq 0 ]]; then
  section "Test suite (python3 -m pytest tests)"
  run_step pytest "$PYTHON" -m pytest tests -q -rfE -p no:cacheprovider
  # The summary of failures and errors, and the closing count.
  sed -n '/short test summary info/,$p' "$out/pytest.log" >"$out/pytest-summary.txt"
  [[ -s $out/pytest-summary.txt ]] || tail -n 3 "$out/pytest.log" >"$out/pytest-summary.txt"
  quote "$out/pytest-summary.txt" 200
  # The tests that measure the whole device, alone (they skip under
  # pytest-xdist, which PYTEST_ADDOPTS may ask for).
  run_step pytest-whole-device env PYTEST_ADDOPTS= "$PYTHON" -m pytest tests -q -p no:cacheprovider -m whole_device
  echo "Whole-device tests alone: $(tail -n 1 "$out/pytest-whole-device.log")" >>"$results"

  section "Self-check (python3 -m safe_greedy)"
  run_step selfcheck "$PYTHON" -m safe_greedy
  quote "$out/selfcheck.log"

  section "Benchmark (benchmarks/bench.py ${quick[*]:-full sweep})"
  mkdir -p "$out/bench"
  if run_step bench "$PYTHON" benchmarks/bench.py "${quick[@]}" --out "$out/bench"; then :; fi
  bench_json=$(ls -t "$out"/bench/*.json 2>/dev/null | head -n 1)
  if [[ -n $bench_json ]]; then
    "$PYTHON" benchmarks/report.py --no-plot "$bench_json" >/dev/null 2>&1
    echo "Summary (aiter's answers outside [0, vocab), if any, are counted on the" \
         "\"answers outside\" line):" >>"$results"
    sed -n '/  driver .*  torch /,/^$/p' "$out/bench.log" >"$out/bench-summary.txt"
    quote "$out/bench-summary.txt"
    [[ -f ${bench_json%.json}.md ]] && cat "${bench_json%.json}.md" >>"$results"
  else
    echo "no results were written; the end of its log:" >>"$results"
    quote "$out/bench.log" 60
  fi
fi

section "Steps"
cat "$out/steps.txt" >>"$results"
echo >&2
cat "$out/steps.txt" >&2
echo "Attach $results to the report (logs beside it)." >&2
exit $status
