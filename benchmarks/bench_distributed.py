#!/usr/bin/env python3
"""Latency of safe_greedy.distributed.greedy_sample against all-gather + torch.argmax, per TP size.

    python benchmarks/bench_distributed.py                       # gloo on this CPU, TP 2 and 4
    python benchmarks/bench_distributed.py --tp 2,4,8 --batches 1,16
    torchrun --nproc-per-node 8 benchmarks/bench_distributed.py  # NCCL, one GPU per rank

Without torchrun the script starts the ranks itself (one process per rank,
gloo on the CPU), once per TP size. Under torchrun (RANK and WORLD_SIZE set)
it runs the one TP size torchrun gave it, NCCL when the GPUs allow. Rank 0
writes ``<out>/<backend>-tp<sizes>-<UTC date>.json`` and a markdown table next
to it.

Every cell (batch, vocab): bf16 logits, each rank holding ``ceil(vocab / tp)``
columns (the last rank's tail is padding, as engines pad the vocabulary to a
multiple of the TP size). Two paths, both ending with the token ids on every
rank, both checked against torch.argmax of the full row before timing:

* ``gather``: what engines run today: ``all_gather_into_tensor`` of the
  ``[batch, width]`` shards, the ``[tp, batch, width]`` result laid out as
  ``[batch, tp * width]`` (a copy), the padding sliced off, ``torch.argmax``.
* ``gather_sg``: the same gather and layout copy (into a preallocated
  buffer), then ``safe_greedy.greedy_sample``: what the gather path costs
  with the fast kernel, so the collective's share is seen apart from the
  kernel's.
* ``keys``: ``sgd.greedy_sample``: local_keys, one ``all_reduce(MAX)`` of
  ``batch`` int64 keys, keys_to_tokens into an int64 ``out``.

Timing: calls back to back (the collectives keep the ranks in step), after a
warm-up and a barrier; on the CPU each rank's wall clock over the loop, on a
GPU CUDA events around the loop on every rank. The reported time of a path is
the slowest rank's median per-call time over ``--repeats`` loops. Inputs are
not rotated: the shards of every rank are in cache on the CPU, and on a GPU
the gather path's buffers are L2-resident at small batch, as in a decode
step right after the LM head wrote them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402  (metadata of the run, shared with the single-device benchmark)
import safe_greedy  # noqa: E402
import safe_greedy.distributed as sgd  # noqa: E402

DEFAULT_BATCHES = (1, 4, 16, 64, 256)
DEFAULT_VOCABS = (128256, 151936, 262144)


# all_gather_into_tensor, renamed all_gather_single in newer torch (the old name warns).
_ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def gather_argmax(shard: torch.Tensor, vocab: int, group_size: int) -> Callable[[], torch.Tensor]:
    batch, width = shard.shape
    gathered = torch.empty((group_size * batch, width), dtype=shard.dtype, device=shard.device)

    def call() -> torch.Tensor:
        _ALL_GATHER(gathered, shard)
        full = gathered.view(group_size, batch, width).permute(1, 0, 2).reshape(batch, group_size * width)
        return torch.argmax(full[:, :vocab], -1)

    return call


def gather_safe_greedy(shard: torch.Tensor, vocab: int, group_size: int) -> Callable[[], torch.Tensor]:
    batch, width = shard.shape
    gathered = torch.empty((group_size * batch, width), dtype=shard.dtype, device=shard.device)
    full = torch.empty((batch, group_size * width), dtype=shard.dtype, device=shard.device)
    out = torch.empty(batch, dtype=torch.int64, device=shard.device)

    def call() -> torch.Tensor:
        _ALL_GATHER(gathered, shard)
        full.view(batch, group_size, width).copy_(gathered.view(group_size, batch, width).permute(1, 0, 2))
        safe_greedy.greedy_sample(out, full[:, :vocab])
        return out

    return call


def key_reduce(shard: torch.Tensor, vocab: int, offset: int) -> Callable[[], torch.Tensor]:
    out = torch.empty(shard.shape[0], dtype=torch.int64, device=shard.device)

    def call() -> torch.Tensor:
        sgd.greedy_sample(out, shard, vocab_offset=offset, vocab_size=vocab)
        return out

    return call


def per_call_seconds(call: Callable, calls: int, device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / calls
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - began) / calls


def slowest_rank(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def time_path(call: Callable, device: torch.device, repeats: int, target_s: float) -> float:
    call()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    dist.barrier()
    # Every rank must run the same number of calls: rank 0 decides it.
    first = slowest_rank(per_call_seconds(call, 1, device), device)
    calls = torch.tensor([max(1, min(1000, int(target_s / max(first, 1e-7))))], device=device)
    dist.broadcast(calls, src=0)
    medians = statistics.median(per_call_seconds(call, int(calls.item()), device) for _ in range(repeats))
    return slowest_rank(medians, device)


def run_rank(args, device: torch.device) -> List[Dict]:
    rank, tp = dist.get_rank(), dist.get_world_size()
    rows = []
    for vocab in args.vocabs:
        width = -(-vocab // tp)
        offset = rank * width
        for batch in args.batches:
            gen = torch.Generator().manual_seed(batch * 7 + vocab)
            full = torch.randn(batch, tp * width, generator=gen).to(torch.bfloat16)
            shard = full[:, offset:offset + width].contiguous().to(device)
            expected = torch.argmax(full[:, :vocab], -1)
            paths = {"gather": gather_argmax(shard, vocab, tp), "gather_sg": gather_safe_greedy(shard, vocab, tp),
                     "keys": key_reduce(shard, vocab, offset)}
            row = {"tp": tp, "batch": batch, "vocab": vocab, "shard_width": width}
            for name, call in paths.items():
                row[f"{name}_exact"] = bool(torch.equal(call().cpu(), expected))
                row[f"{name}_us"] = time_path(call, device, args.repeats, args.target_ms / 1e3) * 1e6
            row["speedup"] = row["gather_us"] / row["keys_us"]
            row["speedup_over_gather_sg"] = row["gather_sg_us"] / row["keys_us"]
            rows.append(row)
            if rank == 0:
                bench.progress(f"tp {tp} batch {batch:4d} vocab {vocab}: gather {row['gather_us']:9.1f} us, "
                               f"gather+sg {row['gather_sg_us']:9.1f} us, keys {row['keys_us']:8.1f} us, "
                               f"{row['speedup']:6.2f}x, {row['speedup_over_gather_sg']:6.2f}x")
    return rows


def rank_main(args) -> List[Dict]:
    """Runs inside a process group (started by torchrun or by launch_ranks)."""
    cuda = args.backend == "nccl"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        torch.set_num_threads(max(1, args.threads))
        device = torch.device("cpu")
    return run_rank(args, device)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tp", default="2,4", help="TP sizes to run when this script starts the ranks (gloo)")
    parser.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)))
    parser.add_argument("--vocabs", default=",".join(map(str, DEFAULT_VOCABS)))
    parser.add_argument("--backend", default=None, help="gloo or nccl (default: nccl under torchrun with GPUs, else gloo)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-ms", type=float, default=50.0, help="time per timed loop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank on the CPU")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--commit", default=None)
    # Internal: this process is one rank started by launch_ranks.
    parser.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--init", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    args.vocabs = [int(v) for v in args.vocabs.split(",")]
    args.tp = [int(t) for t in args.tp.split(",")]
    return args


def launch_ranks(args, tp: int, scratch: str) -> List[Dict]:
    store, rows_file = os.path.join(scratch, f"store-{tp}"), os.path.join(scratch, f"rows-{tp}.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--backend", "gloo", "--world", str(tp),
           "--init", f"file://{store}", "--rows-file", rows_file, "--batches", ",".join(map(str, args.batches)),
           "--vocabs", ",".join(map(str, args.vocabs)), "--repeats", str(args.repeats),
           "--target-ms", str(args.target_ms), "--threads", str(args.threads)]
    procs = [subprocess.Popen(cmd + ["--rank", str(rank)]) for rank in range(tp)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"tp {tp}: ranks exited with {codes}")
    with open(rows_file) as f:
        return json.load(f)


def write_results(args, rows: List[Dict], backend: str, device: torch.device) -> None:
    meta = bench.metadata(device, args.commit)
    meta.update({"backend": backend, "threads_per_rank": args.threads if backend == "gloo" else None,
                 "cores": os.cpu_count(),
                 "gpus": torch.cuda.device_count() if device.type == "cuda" else 0})
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    stem = os.path.join(args.out, f"distributed-{backend}-tp{'-'.join(str(t) for t in sorted({r['tp'] for r in rows}))}-{day}")
    os.makedirs(args.out, exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = [f"# safe_greedy.distributed: greedy_sample vs all-gather + torch.argmax ({backend})", "",
             "| device | backend | torch | date (UTC) | commit | load (1 min) |", "|---|---|---|---|---|---|",
             f"| {meta['device_name']} | {backend} | {meta['torch']} | {meta['date_utc']} | "
             f"{(meta['git_commit'] or '-')[:7]}{' (dirty)' if meta.get('git_dirty') else ''} | {meta.get('loadavg_1min', '-')} |", "",
             "bf16 logits, vocabulary padded to a multiple of the TP size. Each cell, as the slowest rank's median "
             "per call: all-gather + torch.argmax / all-gather + safe_greedy.greedy_sample / "
             "sgd.greedy_sample (one all-reduce of keys); then the speed-up of sgd.greedy_sample over each.", ""]
    if backend == "gloo":
        lines += [f"Each rank is one process of {args.threads} torch thread(s); {meta['cores']} cores for all "
                  "of them, shared with whatever else ran (the load average above). The ranks exchange "
                  "data through loopback sockets: these numbers show the CPU's costs, not a GPU link's.", ""]
    all_exact = all(r["gather_exact"] and r["gather_sg_exact"] and r["keys_exact"] for r in rows)
    lines.append(f"All three paths equal torch.argmax of the full row in every cell: {'yes' if all_exact else 'NO'}.")
    for tp in sorted({r["tp"] for r in rows}):
        lines += ["", f"## TP {tp}", "", "| batch | " + " | ".join(str(v) for v in args.vocabs) + " |",
                  "|---:|" + "---:|" * len(args.vocabs)]
        for batch in args.batches:
            cells = []
            for vocab in args.vocabs:
                r = next(r for r in rows if (r["tp"], r["batch"], r["vocab"]) == (tp, batch, vocab))
                cells.append(f"{r['gather_us']:.0f} / {r['gather_sg_us']:.0f} / {r['keys_us']:.0f} us; "
                             f"{r['speedup']:.1f}x, {r['speedup_over_gather_sg']:.1f}x")
            lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    bench.progress(f"wrote {stem}.json and {stem}.md")


def main(argv=None) -> int:
    args = parse_args(argv)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun
        backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
        args.backend = backend
        dist.init_process_group(backend)
        rows = rank_main(args)
        if dist.get_rank() == 0:
            write_results(args, rows, backend, torch.device("cuda" if backend == "nccl" else "cpu"))
        dist.destroy_process_group()
        return 0
    if args.rank is not None:  # one rank started by launch_ranks
        dist.init_process_group(args.backend, init_method=args.init, rank=args.rank, world_size=args.world,
                                timeout=datetime.timedelta(minutes=10))
        rows = rank_main(args)
        if args.rank == 0:
            with open(args.rows_file, "w") as f:
                json.dump(rows, f)
        dist.destroy_process_group()
        return 0
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for tp in args.tp:
            rows += launch_ranks(args, tp, scratch)
    write_results(args, rows, "gloo", torch.device("cpu"))
    exact = all(r["gather_exact"] and r["gather_sg_exact"] and r["keys_exact"] for r in rows)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
