#!/usr/bin/env bash
# The GPU checks of greedy_sample's extra outputs (logprobs, logsumexp, valid,
# fallback_token), for one H100 in under 9 minutes: build in place; the tests
# of the extra outputs and the existing GPU tests; compute-sanitizer's
# memcheck, racecheck and synccheck over the extra outputs' tests (split and
# unsplit rows, both combines, a few examples each); a shortened benchmark
# sweep with the plain call, torch.argmax, the extra outputs and both
# composed torch paths side by side, and its report.
#
#   bash scripts/outputs_gpu_checks.sh [OUTDIR]   # default: $OUT, else build/outputs-gpu-checks
#
# Each step has a time limit, and no step starts or runs past 8.5 minutes from
# the start (the steps come in order of importance: build, the extra outputs'
# tests, the sanitizers, the benchmark, the existing GPU tests); a summary is
# printed, logs and results go to OUTDIR.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
logs=${1:-${OUT:-build/outputs-gpu-checks}}
mkdir -p "$logs"
export PYTHONPATH="$(pwd)/python${PYTHONPATH:+:$PYTHONPATH}"
# One architecture: the H100's; the build is one translation unit per file.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-default}
began=$SECONDS
deadline=$((began + 510))
status=0

step() {  # step NAME LIMIT_S COMMAND...: runs it with a time limit, logs to NAME.log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS left=$((deadline - SECONDS))
  if [[ $left -lt 20 ]]; then
    printf '%-22s SKIPPED (out of time)\n' "$name"
    status=1
    return
  fi
  [[ $limit -le $left ]] || limit=$left
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  [[ $rc -eq 0 ]] || status=1
  printf '%-22s rc=%-3s %4d s  %s\n' "$name" "$rc" $((SECONDS - start)) \
    "$(grep -E 'passed|failed|ERROR SUMMARY|RACECHECK SUMMARY|error' "$logs/$name.log" | tail -1)"
}

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/card.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$logs/card.txt"
git log -1 --format='commit %H' 2>/dev/null | tee -a "$logs/card.txt"

step build 240 python3 -m pip install --no-build-isolation -e .
python3 -c "import safe_greedy, torch; assert torch.ops.safe_greedy.greedy_sample_outputs" \
  || { echo "build failed: see $logs/build.log"; tail -30 "$logs/build.log"; exit 1; }

# The extra outputs' GPU tests (their CPU halves pass without a GPU).
step test-outputs 120 python3 -m pytest tests/test_outputs.py tests/test_outputs_op.py \
  tests/test_outputs_gpu.py tests/test_vmap.py -q -p no:cacheprovider -m gpu

# Under the sanitizers: split rows (collected and fenced combines), one
# block per row, rows sharing a block, graph replay, all with every output.
sanitized="(test_split_rows and (32000-1-torch.float32 or 151936-3-torch.float32))"
sanitized+=" or (longer_than and 1000003 and contiguous) or (many_rows and bfloat16 and (4096-17 or 600-4097))"
sanitized+=" or graph_replays"
for tool in memcheck racecheck synccheck; do
  step "sanitizer-$tool" 60 compute-sanitizer --tool "$tool" --kernel-name kns=greedy_sample_kernel \
    --target-processes all --error-exitcode 99 python3 -m pytest tests/test_outputs_gpu.py -q \
    -p no:cacheprovider -k "$sanitized"
done

# The benchmark, shortened: plain and with every output side by side, against
# torch.argmax and both composed torch paths, one pass.
step bench 120 python3 benchmarks/bench.py --out "$logs" --passes 1 --target-ms 10 \
  --dtypes bf16,fp32 --vocabs 32000,151936 --batches 1,16,256,1024 \
  --contenders safe_greedy,torch_argmax,safe_greedy_outputs,torch_composed,torch_logprobs
for json in "$logs"/cuda-*.json; do
  [[ -f $json ]] && python3 benchmarks/report.py "$json" >>"$logs/bench.log" 2>&1
done
grep -E "^with every output|geomean" "$logs/bench.log" | head -3

# The existing GPU tests with what time is left, the slowest left out (they
# cover no code the extra outputs changed: compile, offsets past 2^31, 70000
# rows, thousands of rows).
step test-gpu 150 python3 -m pytest tests/test_gpu.py tests/test_aiter_regression.py -q \
  -p no:cacheprovider -x -k "not compile and not past_2_to_the_31 and not more_rows and not thousands"

echo "total $((SECONDS - began)) s; $([[ $status -eq 0 ]] && echo 'all steps passed' || echo 'some step FAILED')"
exit $status
