"""Time chosen GPU cells at forced split counts, to tune the launch plan's numbers.

    NVCC_APPEND_FLAGS=-DSAFE_GREEDY_TUNING pip install --no-build-isolation -e .   # a tuning build
    python benchmarks/tune_splits.py --cells bf16:16x151936,fp16:32x128256 --splits 0,8,16,24,32,48,64
    python benchmarks/tune_splits.py --outputs ...      # the call with every extra output

A tuning build reads SAFE_GREEDY_TUNING_SPLITS on every call and splits each
row that many ways (as far as the row allows; see with_forced_splits() in
csrc/kernels/greedy_plan.h); split count 0 is the plan's own choice. Each
cell is timed at each split count under CUDA-graph replay over rotated
L2-cold inputs, as benchmarks/bench.py times its sweep, after its answers
are checked against torch.argmax. Writes a markdown table per cell to stdout
(the fastest count marked) and, with --json, the numbers. Refuses to run on
a build that is not a tuning build: the numbers would all be the plan's own.
"""

import argparse
import json
import os
import sys
from typing import Dict, List, Tuple

import torch

import safe_greedy
from safe_greedy import speed

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SETTING = "SAFE_GREEDY_TUNING_SPLITS"


def parse_cells(text: str) -> List[Tuple[str, int, int]]:
    """'bf16:16x151936,fp32:1x32000' -> [(dtype, batch, vocab), ...]."""
    cells = []
    for item in text.split(","):
        try:
            dtype, shape = item.strip().split(":")
            batch, vocab = (int(n) for n in shape.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a cell is DTYPE:BATCHxVOCAB, e.g. bf16:16x151936; got {item!r}")
        if dtype not in DTYPES or batch < 1 or vocab < 1:
            raise argparse.ArgumentTypeError(f"bad cell {item!r}: dtype one of {sorted(DTYPES)}, sizes >= 1")
        cells.append((dtype, batch, vocab))
    return cells


def parse_splits(text: str) -> List[int]:
    """'0,8,16' -> [0, 8, 16]; 0 is the plan's own split count."""
    try:
        splits = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"split counts are integers, got {text!r}")
    if any(n < 0 for n in splits):
        raise argparse.ArgumentTypeError(f"split counts are 0 (the plan's) or more, got {text!r}")
    return splits


def is_tuning_build(device: torch.device) -> bool:
    """Whether the loaded extension reads SAFE_GREEDY_TUNING_SPLITS: a tuning
    build refuses a setting that is not a split count; any other ignores it."""
    out = torch.empty(1, dtype=torch.int64, device=device)
    os.environ[SETTING] = "not a split count"
    try:
        safe_greedy.greedy_sample(out, torch.zeros(1, 8, device=device))
        return False
    except ValueError:
        return True
    finally:
        del os.environ[SETTING]


def make_call(batch: int, device: torch.device, outputs: bool):
    out = torch.empty(batch, dtype=torch.int64, device=device)
    extra = speed.every_extra_output(batch, device) if outputs else {}

    def call(x):
        safe_greedy.greedy_sample(out, x, **extra)
        return out

    return call


def time_cell(dtype: str, batch: int, vocab: int, splits: List[int], args, device) -> Dict[int, float]:
    """{split count: median us under graph replay} for one cell."""
    itemsize = torch.empty((), dtype=DTYPES[dtype]).element_size()
    nbytes = batch * vocab * itemsize
    count = speed.rotation_count(nbytes, speed.cold_bytes(device), args.memory_cap)
    pool = speed.Pool(speed.rotation_pool_bytes(nbytes, count), device)
    pool.fill(DTYPES[dtype], seed=1)
    inputs = pool.views(DTYPES[dtype], batch, vocab, count)
    expected = torch.argmax(inputs[-1], -1)
    times = {}
    for n in splits:
        if n:
            os.environ[SETTING] = str(n)
        else:
            os.environ.pop(SETTING, None)
        try:
            # A fresh call each time: a graph captures the plan of its capture.
            us, last = speed.cuda_graph_time(make_call(batch, device, args.outputs), inputs, target_ms=args.target_ms)
        finally:
            os.environ.pop(SETTING, None)
        if not torch.equal(last, expected):
            raise SystemExit(f"{dtype} {batch}x{vocab} at {n} splits: answers differ from torch.argmax")
        times[n] = us
    return times


def table(dtype: str, batch: int, vocab: int, times: Dict[int, float]) -> str:
    best = min(times, key=times.get)
    lines = [f"{dtype} {batch}x{vocab}", "", "| splits | us |", "|---:|---:|"]
    for n, us in times.items():
        name = "plan's own" if n == 0 else str(n)
        lines.append(f"| {name} | {us:.2f}{' (fastest)' if n == best else ''} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=parse_cells, required=True, help="DTYPE:BATCHxVOCAB,...")
    parser.add_argument("--splits", type=parse_splits, default=parse_splits("0,4,8,16,24,32,48,64,96,128"))
    parser.add_argument("--outputs", action="store_true", help="time the call with every extra output")
    parser.add_argument("--target-ms", type=float, default=10.0, help="GPU time per graph measurement")
    parser.add_argument("--memory-cap", type=int, default=8 << 30, help="bytes of rotated inputs, at most")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("tune_splits.py needs a CUDA or ROCm GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    if not is_tuning_build(device):
        print("safe_greedy is not a tuning build (build it with NVCC_APPEND_FLAGS=-DSAFE_GREEDY_TUNING)",
              file=sys.stderr)  # fmt: skip
        return 2
    call = "every output" if args.outputs else "plain"
    print(f"{speed.device_name(device)}, torch {torch.__version__}, {call} call, graph replay, L2-cold\n")
    results = []
    for dtype, batch, vocab in args.cells:
        times = time_cell(dtype, batch, vocab, args.splits, args, device)
        print(table(dtype, batch, vocab, times))
        results.append({"dtype": dtype, "batch": batch, "vocab": vocab, "times_us": times})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": speed.device_name(device), "torch": torch.__version__, "call": call,
                       "utc": speed.utc_now(), "cells": results}, f, indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
