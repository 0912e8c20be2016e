#!/usr/bin/env python3
"""How far safe_greedy is from a plain read of the same bytes (CUDA only).

    python benchmarks/read_floor.py bf16:64x151936 fp32:8x151936
    python benchmarks/read_floor.py --missed-in benchmarks/results/h100-cuda-2026-11-28.json

For each cell (DTYPE:BATCHxVOCAB), L2-cold under graph replay with the timer of
bench.py (``safe_greedy.speed``), in one run:

* ``safe_greedy``: ``greedy_sample(out, logits)``, checked against ``torch.argmax``;
  its launch (blocks, threads per block) is read from a profiler trace;
* ``chunked``: a pure read with that launch's shape: as many blocks of as many
  threads, each reading one contiguous chunk (where safe_greedy's items of a
  split row interleave in strips of a block's width) with four 16-byte loads
  in flight a thread, with no per-element key work, no block reduction and no
  combine (pure reads skip the last bytes of a tensor that is not a whole
  number of 16-byte vectors: under 16 bytes);
* ``grid_stride``: the fastest of grid-stride pure reads of 1-16 blocks of 256
  threads per multiprocessor and 4 or 8 loads in flight a thread: what reading
  these bytes costs with the best launch found here;
* ``target_us``: the contract's target, from the read bandwidth (``x.sum()``
  over 1 GiB) measured in the same run.

So ``safe_greedy - chunked`` is what the kernel's own work costs on top of its
reads (with whatever its interleaved items gain over chunks, which is
subtracted), and ``chunked - grid_stride`` what a launch of that shape costs. Each time is
the lowest of two measurements (three for safe_greedy). The pure-read kernels (read_floor_kernels.cu)
are compiled on first use with torch's extension builder (nvcc and ninja).

Writes ``<out>/cuda-read-floor-<UTC time>.json`` and prints a markdown table.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import torch

import bench
import safe_greedy
from profile_cells import parse_cell
from safe_greedy import speed

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, "read_floor_kernels.cu")
GRID_STRIDE_BLOCKS_PER_SM = (1, 2, 4, 8, 16)
GRID_STRIDE_UNROLLS = (4, 8)
MEASUREMENTS = 2
DTYPE_NAMES = {dtype: name for name, dtype in bench.DTYPES.items()}


def missed_cells(sweep: Dict) -> List[Tuple[torch.dtype, int, int]]:
    """The (dtype, batch, vocab) cells of a bench.py GPU result that missed the time target."""
    return [(bench.DTYPES[c["dtype"]], c["batch"], c["vocab"]) for c in sweep["cells"]
            if c.get("meets_target") is False]


def kernel_launch(call: Callable[[], None], kernel_name: str) -> Tuple[int, int]:
    """(blocks, threads per block) of the last launch of ``kernel_name`` that ``call`` makes,
    as the CUDA profiler recorded it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    launches = [e["args"] for e in events
                if e.get("cat") == "kernel" and kernel_name in e.get("name", "")]
    if not launches:
        raise RuntimeError(f"the profiler recorded no launch of {kernel_name}")
    grid, block = launches[-1]["grid"], launches[-1]["block"]
    return grid[0] * grid[1] * grid[2], block[0] * block[1] * block[2]


def load_kernels():
    from torch.utils.cpp_extension import load

    return load(name="safe_greedy_read_floor", sources=[KERNELS], extra_cuda_cflags=["-O3"])


def graph_us(fn: Callable[[torch.Tensor], object], inputs: List[torch.Tensor]) -> float:
    return min(speed.cuda_graph_time(fn, inputs)[0] for _ in range(MEASUREMENTS))


def measure_cell(kernels, pool: speed.Pool, cold: int, sms: int, dtype: torch.dtype, batch: int,
                 vocab: int, bytes_per_s: float) -> Dict:
    pool.fill(dtype)
    nbytes = batch * vocab * bench.itemsize(dtype)
    inputs = pool.views(dtype, batch, vocab, speed.rotation_count(nbytes, cold, pool.nbytes))
    out = torch.empty(batch, dtype=torch.int64, device=pool.device)
    sink = torch.zeros(1, dtype=torch.int32, device=pool.device)

    def ours(x: torch.Tensor) -> torch.Tensor:
        safe_greedy.greedy_sample(out, x)
        return out

    cell = {"dtype": DTYPE_NAMES[dtype], "batch": batch, "vocab": vocab, "bytes": nbytes,
            "target_us": bench.target_us(nbytes, bytes_per_s)}
    first_us, last = speed.cuda_graph_time(ours, inputs)
    cell["safe_greedy_us"] = min(first_us, graph_us(ours, inputs))
    cell["safe_greedy_matches_argmax"] = bool(torch.equal(last, torch.argmax(inputs[-1], -1)))
    blocks, threads = kernel_launch(lambda: ours(inputs[0]), "greedy_sample_kernel")
    cell["safe_greedy_launch"] = {"blocks": blocks, "threads": threads}
    cell["chunked_us"] = graph_us(lambda x: kernels.read_chunked(x, sink, blocks, threads), inputs)
    best = None
    for per_sm in GRID_STRIDE_BLOCKS_PER_SM:
        for unroll in GRID_STRIDE_UNROLLS:
            us = graph_us(lambda x: kernels.read_grid_stride(x, sink, sms * per_sm, unroll), inputs)
            if best is None or us < best[0]:
                best = (us, per_sm, unroll)
    cell["grid_stride_us"], cell["grid_stride_blocks_per_sm"], cell["grid_stride_unroll"] = best
    torch.cuda.synchronize()
    if sink.item() != 0:
        raise RuntimeError("a pure-read kernel found its sentinel in the data; its times are not pure reads")
    return cell


def markdown(results: Dict) -> str:
    meta = results["meta"]
    lines = [f"{meta['device_name']}, driver {meta.get('driver')}, torch {meta['torch']}, {meta['date_utc']}; "
             f"read bandwidth {results['read_bandwidth']['bytes_per_s'] / 1e9:.0f} GB/s. Times in us, graph replay, L2-cold.",
             "",
             "| cell | MB | target | safe_greedy | launch | chunked | grid-stride (blocks/SM, loads) | own work | layout |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for c in results["cells"]:
        launch = c["safe_greedy_launch"]
        lines.append(
            f"| {c['dtype']} {c['batch']}x{c['vocab']} | {c['bytes'] / 1e6:.1f} | {c['target_us']:.2f} "
            f"| {c['safe_greedy_us']:.2f} | {launch['blocks']} x {launch['threads']} | {c['chunked_us']:.2f} "
            f"| {c['grid_stride_us']:.2f} ({c['grid_stride_blocks_per_sm']}, {c['grid_stride_unroll']}) "
            f"| {c['safe_greedy_us'] - c['chunked_us']:.2f} | {c['chunked_us'] - c['grid_stride_us']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", type=parse_cell, help="DTYPE:BATCHxVOCAB, e.g. bf16:64x151936")
    parser.add_argument("--missed-in", metavar="JSON",
                        help="also every cell that missed the time target in this bench.py GPU result")
    parser.add_argument("--out", default=os.path.join(bench.REPO, "benchmarks", "results"))
    parser.add_argument("--commit", help="the commit being measured, where the source tree is a copy without git")
    args = parser.parse_args(argv)
    cells = list(args.cells)
    if args.missed_in:
        with open(args.missed_in) as f:
            cells += [c for c in missed_cells(json.load(f)) if c not in cells]
    if not cells:
        parser.error("no cells: name some, or give --missed-in")
    if not torch.cuda.is_available():
        print("read_floor.py measures CUDA kernels; torch sees no CUDA device here", file=sys.stderr)
        return 2

    device = torch.device("cuda", torch.cuda.current_device())
    began = time.perf_counter()
    kernels = load_kernels()
    bench.progress(f"pure-read kernels ready in {time.perf_counter() - began:.0f} s")
    cold = 2 * speed.l2_bytes(device)
    largest = max(batch * vocab * bench.itemsize(dtype) for dtype, batch, vocab in cells)
    pool_bytes = max(bench.BANDWIDTH_BYTES,
                     speed.rotation_pool_bytes(largest, speed.rotation_count(largest, cold, 2**62)))
    pool = speed.Pool(pool_bytes, device)
    bw_us, bytes_per_s = bench.read_bandwidth(bench.read_bandwidth_buffer(pool, bench.BANDWIDTH_BYTES))
    results = {
        "meta": bench.metadata(device, args.commit),
        "method": __doc__.split("For each cell")[1].split("Writes")[0].strip(),
        "read_bandwidth": {"what": "x.sum() over a float32 buffer, graph replay",
                           "bytes": bench.BANDWIDTH_BYTES, "graph_us": bw_us, "bytes_per_s": bytes_per_s},
        "cells": [],
    }
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    for dtype, batch, vocab in cells:
        cell = measure_cell(kernels, pool, cold, sms, dtype, batch, vocab, bytes_per_s)
        results["cells"].append(cell)
        bench.progress(f"{cell['dtype']} {batch}x{vocab}: safe_greedy {cell['safe_greedy_us']:.2f} us, "
                       f"chunked {cell['chunked_us']:.2f}, grid-stride {cell['grid_stride_us']:.2f}, "
                       f"target {cell['target_us']:.2f}")
    results["elapsed_s"] = time.perf_counter() - began
    os.makedirs(args.out, exist_ok=True)
    stamp = results["meta"]["date_utc"].replace("-", "").replace(":", "").replace("+0000", "Z")
    path = os.path.join(args.out, f"cuda-read-floor-{stamp}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(markdown(results))
    print(f"\nwrote {path}")
    wrong = [c for c in results["cells"] if not c["safe_greedy_matches_argmax"]]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
