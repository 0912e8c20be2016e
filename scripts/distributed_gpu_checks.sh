#!/usr/bin/env bash
# The single-GPU checks of safe_greedy.distributed, on any NVIDIA machine:
# build in place, tests/test_distributed.py (the CUDA kernels of local_keys and
# write_tokens against the CPU ones, CUDA graph replay, a one-rank NCCL group
# running every case of the gloo tests plus sgd.greedy_sample captured in a
# graph, and the CPU tests), compute-sanitizer memcheck over the CUDA tests,
# and the benchmark under torchrun with one rank (the local cost of each path:
# NCCL collectives of one rank move nothing). Logs and results go to $OUT
# (default build/distributed-gpu-checks); a summary is printed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-build/distributed-gpu-checks}
mkdir -p "$out"

python3 -m pip install --no-build-isolation -e . >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version())"
  git rev-parse HEAD 2>/dev/null || true; } | tee "$out/card.txt"

status=0
timeout 300 python3 -m pytest tests/test_distributed.py -v -p no:cacheprovider >"$out/pytest.log" 2>&1 || status=1
echo "pytest tests/test_distributed.py: $(tail -1 "$out/pytest.log")"

timeout 180 compute-sanitizer --tool memcheck --error-exitcode 99 \
  python3 -m pytest tests/test_distributed.py -q -p no:cacheprovider -k "cuda and not nccl" \
  >"$out/sanitizer-memcheck.log" 2>&1 || status=1
echo "memcheck: $(grep -E 'ERROR SUMMARY' "$out/sanitizer-memcheck.log" | tail -1)"

timeout 150 torchrun --nproc-per-node 1 benchmarks/bench_distributed.py --batches 1,16,64,256 \
  --repeats 5 --out "$out" >"$out/bench.log" 2>&1 || status=1
echo "benchmark (NCCL, one rank): $(tail -1 "$out/bench.log")"
cat "$out"/distributed-nccl-*.md 2>/dev/null
exit $status
