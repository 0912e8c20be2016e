#!/usr/bin/env python3
"""Benchmark safe_greedy.greedy_sample against torch.argmax and friends.

    python benchmarks/bench.py                  # the GPU sweep (CPU if torch sees no GPU)
    python benchmarks/bench.py --device cpu     # the CPU sweep
    python benchmarks/bench.py --quick          # a small subset, for smoke tests
    python benchmarks/report.py benchmarks/results/<file>.json

Writes ``<out>/<device>-<UTC date>.json``; progress goes to stderr, a summary
to stdout.

GPU method
----------
Sweep: dtype {fp32, bf16, fp16} x vocab {3072, 32000, 128256, 129280, 151666,
151936, 262144} x batch {1, 2, ..., 1024, 4096}; contiguous randn logits.

Contenders, all timed in this one run on the same inputs:

* ``safe_greedy``: ``greedy_sample(out, logits)`` into a preallocated int64 ``out``.
* ``torch_argmax``: ``torch.argmax(logits, -1)``.
* ``torch_compile``: ``torch.compile(lambda x: torch.argmax(x, -1), dynamic=True)``,
  one compiled function for the whole sweep. Compiling per shape would take
  longer than the rest of the sweep; with ``dynamic=True`` dynamo compiles once
  per dtype plus once for batch 1 (it specialises sizes of 1), about six
  compilations. Inductor picks its reduction configuration from the shapes it
  compiles for, so other shapes may run a configuration tuned for another
  size. A failure (no C compiler, no Triton) is recorded, not fatal.
* ``aiter``: ``aiter.greedy_sample(out_int32, logits)`` when ``import aiter``
  works (ROCm only); otherwise recorded as not installed.
* ``safe_greedy_outputs``: ``greedy_sample(out, logits, logprobs=, logsumexp=,
  valid=)`` into preallocated outputs: every extra output from the one read.
* ``torch_composed``: what servers run today for the same outputs:
  ``torch.argmax`` + ``log_softmax(x.float())`` + ``gather`` +
  ``logsumexp(x.float())`` + ``~isnan(x).any(-1) & (x.amax(-1) > -inf)``.
* ``torch_logprobs``: ``torch.argmax`` + ``log_softmax(x.float())`` + ``gather``
  alone.

``--contenders`` runs a subset (with ``--dtypes``, ``--vocabs``, ``--batches``,
a shortened sweep).

Timing (``safe_greedy.speed``): every call reads one of ``k`` input buffers, the
next call the next one, and the ``k`` buffers together exceed 2x the L2
(``L2_cache_size`` from the device, 50 MiB if absent), so every read comes
from HBM. ``k`` is at most 20000, and all buffers share one pool of at most
20 GiB (or 60% of free memory). Each contender is timed twice:

* graph: one CUDA graph captures one call per buffer (after warm-up on the
  capturing side stream); replays are timed with CUDA events, divided by ``k``;
  median over 5-50 replays (about 20 ms of GPU time).
* eager: loops of ordinary calls, continuing the rotation, between two events;
  median per-call time over 5 loops of 3-500 calls (about 10 ms each). Short
  kernels are bound by launch overhead here, which depends on the CPU core
  (1.5x between the cores of one host), so before anything is timed the
  sweep's thread is pinned to the CPU that launches a small kernel fastest
  (recorded with each CPU's launch cost; ``--no-pin-cpu`` leaves it unpinned).

The whole sweep runs twice (``--passes``), and each contender's time in a cell
is the lower of its two medians; both are recorded. A single pass left one or
two cells of 252 at 1.2-1.7x their time in a rerun on the same machine minutes
later, always a different cell; a second pass far apart in time keeps such a
disturbance out of the table without favouring any contender.

References measured in the same run:

* read bandwidth: ``x.sum()`` over a 1 GiB fp32 buffer (or 8x L2 if larger),
  graph replay; bytes / time.
* empty kernel: ``t.add_(1)`` on a one-element fp32 tensor, 1000 calls in one
  graph: the per-kernel cost a graph replay cannot avoid.

Per cell: each contender's graph and eager time; speed-up = torch_argmax graph
time / safe_greedy graph time; floor = bytes / read bandwidth + empty kernel;
% of floor = floor / safe_greedy graph time; the contract's target, met when
safe_greedy's graph time <= 1.10 x bytes / bandwidth + 2.5 us; the same for
safe_greedy_outputs, whether it is within 1.25 x floor + 2.5 us (the bound
for cells where the exponentials rule out the target), and its speed-up over
torch_composed and over torch_logprobs (their time / its time). Correctness:
each contender's answer against torch.argmax on the first buffer (eager call)
and on the last buffer (after the graph replays), and there safe_greedy_outputs'
logprobs, logsumexp and valid against torch's (the self-check's rule: the same
NaN or infinity, or within 2e-5 x max(1, |torch's value|)), plus eight hard rows per
(dtype, vocab): all -inf, all NaN, all -1e5, all -1e30, max < 0, NaN in the
tail, max in the tail, signed zeros.

CPU method
----------
Sweep: dtype {fp32, bf16, fp16} x batch {1, 16, 256} x vocab {32000, 151936}.
safe_greedy and torch.argmax, safe_greedy_outputs, torch_composed and
torch_logprobs (as on the GPU), and ``torch.sum`` over fp32 data of the same
element count as the byte-rate reference. Buffers rotate over more than 2x the
last-level cache (sysfs); median of per-call wall-clock times (5-2000 calls,
about 0.3 s per contender and cell). Per cell: time, GB/s, speed-up over
torch.argmax, and % of sum's byte rate (reported as "% of floor").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Tuple

import torch

import safe_greedy
from safe_greedy import selfcheck, speed

# The sibling module, whether this file runs as a script or is loaded by path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sweep_results import (OUTPUTS_BOUND_SLACK, TARGET_FIXED_US, TARGET_SLACK, cell_time_us,  # noqa: E402
                           geomean, target_us, within_outputs_bound)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
GPU_VOCABS = (3072, 32000, 128256, 129280, 151666, 151936, 262144)
GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CPU_VOCABS = (32000, 151936)
CPU_BATCHES = (1, 16, 256)
QUICK = {
    "cuda": (("fp32", "bf16"), (32000, 151666), (1, 16, 256)),
    "cpu": (("fp32", "bf16"), (32000, 151936), (1, 16)),
}
# The contract's speed target: time <= SLACK * bytes / bandwidth + FIXED_US.
GPU_MEMORY_CAP = 20 * 2**30
CPU_MEMORY_CAP = 4 * 2**30
BANDWIDTH_BYTES = 2**30
# A contender that fails this many cells in a row is dropped for the rest of the run.
MAX_CONSECUTIVE_FAILURES = 3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# ---------------------------------------------------------------------------
# Metadata


def _run(cmd: List[str], cwd: Optional[str] = None) -> Optional[str]:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _triton_version() -> Optional[str]:
    try:
        import triton
    except Exception:
        return None
    return getattr(triton, "__version__", None)


def metadata(device: torch.device, commit: Optional[str] = None) -> Dict:
    dirty = None
    if commit is None:
        commit = _run(["git", "rev-parse", "HEAD"], cwd=REPO)
        dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    meta = {
        "date_utc": speed.utc_now(),
        "device_type": device.type,
        "device_name": speed.device_name(device),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "python": platform.python_version(),
        "safe_greedy": safe_greedy.__version__,
        "git_commit": commit,
        "git_dirty": bool(dirty) if dirty is not None and commit else None,
        "cuda_runtime": torch.version.cuda,
        "hip_runtime": getattr(torch.version, "hip", None),
        "cpu_model": speed.cpu_model(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        meta.update(
            {
                "driver": _driver_version(),
                "sm_count": props.multi_processor_count,
                "compute_capability": f"{props.major}.{props.minor}",
                "memory_bytes": props.total_memory,
                "l2_bytes": speed.l2_bytes(device),
            }
        )
    else:
        meta.update(
            {
                "threads": torch.get_num_threads(),
                "llc_bytes": speed.llc_bytes(),
                # Other work on the same cores skews every number; say how busy they were.
                "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
                "driver": None,
            }
        )
    return meta


def _driver_version() -> Optional[str]:
    # One driver serves every GPU of a host, so the first line is the answer
    # whatever CUDA_VISIBLE_DEVICES says.
    text = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if text:
        return text.splitlines()[0].strip()
    text = _run(["rocm-smi", "--showdriverversion"])
    if text:
        for line in text.splitlines():
            if "version" in line.lower():
                return line.split(":", 1)[-1].strip()
    return None


# ---------------------------------------------------------------------------
# Contenders


class Contender:
    """One implementation under test; ``make(batch)`` returns the call to time."""

    def __init__(self, name: str, make: Optional[Callable[[int, torch.device], Callable]], status: str):
        self.name = name
        self.make = make
        self.status = status  # "ok", or why it is not run
        self.consecutive_failures = 0

    @property
    def runnable(self) -> bool:
        return self.make is not None and self.status == "ok"

    def failed(self, error: str) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self.status = f"dropped after {MAX_CONSECUTIVE_FAILURES} failures in a row; last: {error}"

    def succeeded(self) -> None:
        self.consecutive_failures = 0


def _make_safe_greedy(batch: int, device: torch.device):
    out = torch.empty(batch, dtype=torch.int64, device=device)

    def call(x):
        safe_greedy.greedy_sample(out, x)
        return out

    return call


def _make_torch_argmax(batch: int, device: torch.device):
    return lambda x: torch.argmax(x, -1)


def _make_safe_greedy_outputs(batch: int, device: torch.device):
    out = torch.empty(batch, dtype=torch.int64, device=device)
    extra = speed.every_extra_output(batch, device)

    def call(x):
        safe_greedy.greedy_sample(out, x, **extra)
        return out

    # Where the latest call left its extra outputs, for their value check
    # (_output_value_mismatches).
    call.extra_outputs = extra
    return call


def _make_torch_composed(batch: int, device: torch.device):
    def call(x):
        token = torch.argmax(x, -1)
        wide = x.float()
        torch.log_softmax(wide, -1).gather(-1, token[:, None])
        torch.logsumexp(wide, -1)
        ~torch.isnan(x).any(-1) & (x.amax(-1) > float("-inf"))
        return token

    return call


def _make_torch_logprobs(batch: int, device: torch.device):
    def call(x):
        token = torch.argmax(x, -1)
        torch.log_softmax(x.float(), -1).gather(-1, token[:, None])
        return token

    return call


# The contenders for the extra outputs, on either device.
OUTPUT_CONTENDERS = (
    ("safe_greedy_outputs", _make_safe_greedy_outputs),
    ("torch_composed", _make_torch_composed),
    ("torch_logprobs", _make_torch_logprobs),
)


def _compiled_argmax():
    import torch._dynamo.config as dynamo_config

    # Three dtypes x {batch 1, batch > 1} are separate entries; keep headroom.
    for name in ("recompile_limit", "cache_size_limit"):  # the newer name first
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 64))
            break
    return torch.compile(lambda x: torch.argmax(x, -1), dynamic=True)


def _aiter_greedy():
    try:
        from aiter import greedy_sample as aiter_greedy_sample  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install that fails to load
        return None, f"not installed ({type(exc).__name__}: {str(exc)[:120]})"
    return aiter_greedy_sample, "ok"


def gpu_contenders() -> List[Contender]:
    contenders = [
        Contender("safe_greedy", _make_safe_greedy, "ok"),
        Contender("torch_argmax", _make_torch_argmax, "ok"),
    ]
    try:
        compiled = _compiled_argmax()
        contenders.append(Contender("torch_compile", lambda batch, device: compiled, "ok"))
    except Exception as exc:
        contenders.append(Contender("torch_compile", None, f"torch.compile failed: {exc}"))
    aiter_fn, status = _aiter_greedy()
    if aiter_fn is None:
        contenders.append(Contender("aiter", None, status))
    else:
        def make_aiter(batch, device, fn=aiter_fn):
            out = torch.empty(batch, dtype=torch.int32, device=device)

            def call(x):
                fn(out, x)
                return out

            return call

        contenders.append(Contender("aiter", make_aiter, "ok"))
    return contenders + [Contender(name, make, "ok") for name, make in OUTPUT_CONTENDERS]


def chosen(contenders: List[Contender], names: Optional[Tuple[str, ...]]) -> List[Contender]:
    """The contenders named in ``--contenders`` (all when None), the others
    recorded as not run."""
    if names:
        for c in contenders:
            if c.name not in names:
                c.status = "not run (--contenders)"
    return contenders


# ---------------------------------------------------------------------------
# Hard rows


HARD_ROWS = ("all -inf", "all NaN", "all -1e5", "all -1e30", "max < 0", "NaN in tail", "max in tail",
             "signed zeros")


def hard_rows(vocab: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(vocab)
    rows = torch.randn(len(HARD_ROWS), vocab, generator=gen)
    rows[0] = float("-inf")
    rows[1] = float("nan")
    rows[2] = -1e5
    rows[3] = -1e30
    rows[4] -= 10.0
    rows[5, -1] = float("nan")
    rows[6, -1] = 100.0
    rows[7] = 0.0
    rows[7, ::2] = -0.0
    return rows.to(dtype).to(device)


def check_hard_rows(contenders: List[Contender], vocab: int, dtype: torch.dtype,
                    device: torch.device) -> Dict[str, object]:
    """Per contender: the names of the hard rows it gets wrong, with its answers."""
    x = hard_rows(vocab, dtype, device)
    ref = torch.argmax(x, -1).tolist()
    report: Dict[str, object] = {}
    for c in contenders:
        if not c.runnable or c.name == "torch_argmax":
            continue
        try:
            got = c.make(x.shape[0], device)(x).to(torch.int64).tolist()
        except Exception as exc:
            report[c.name] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
            continue
        report[c.name] = {HARD_ROWS[i]: {"got": g, "torch": r, "out_of_range": not 0 <= g < vocab}
                          for i, (g, r) in enumerate(zip(got, ref)) if g != r}
    return report


# ---------------------------------------------------------------------------
# GPU sweep


def _cell_plan(dtypes, vocabs, batches, cold: int, cap: int):
    plan = []
    for dtype_name in dtypes:
        size = itemsize(DTYPES[dtype_name])
        for vocab in vocabs:
            for batch in batches:
                nbytes = batch * vocab * size
                k = speed.rotation_count(nbytes, cold, cap)
                plan.append((dtype_name, vocab, batch, nbytes, k))
    return plan


def _mismatches(got: Optional[torch.Tensor], ref: torch.Tensor) -> Optional[int]:
    if got is None:
        return None
    return int((got.to(torch.int64) != ref).sum())


# Logits per piece of torch's reference for the value checks: 64 MB of
# float32, so that the checks never allocate and free gigabytes between
# timings (_output_value_mismatches).
REFERENCE_CHUNK_ELEMENTS = 1 << 24


def _extra_outputs_now(fn: Callable) -> Optional[Dict[str, torch.Tensor]]:
    """A copy of the extra outputs the latest call of ``fn`` left, to be
    checked once the contender's timing is over (_output_value_mismatches);
    None for a contender without extra outputs."""
    extra = getattr(fn, "extra_outputs", None)
    return None if extra is None else {name: t.clone() for name, t in extra.items()}


def _output_value_mismatches(extra: Optional[Dict[str, torch.Tensor]], x: torch.Tensor) -> Optional[int]:
    """How many rows of ``x`` have an extra output in ``extra`` (what a call
    on ``x`` wrote) that is not torch's, by the self-check's rule; None where
    ``extra`` is None. Called only after the contender is timed, and torch's
    reference taken a few rows at a time: computed whole for a 2 GB cell, it
    made the next call timed 1.19x slower on an H100 (see "the benchmark's
    value checks" in docs/PERFORMANCE.md)."""
    if extra is None:
        return None
    rows_per_chunk = max(1, REFERENCE_CHUNK_ELEMENTS // max(1, x.shape[1]))
    wrong = 0
    for first in range(0, x.shape[0], rows_per_chunk):
        rows = slice(first, first + rows_per_chunk)
        # No out: the tokens are checked apart (_mismatches).
        bad = selfcheck.wrong_rows(x[rows], None, None, extra["logprobs"][rows], extra["logsumexp"][rows],
                                   extra["valid"][rows])
        wrong += int((bad["logprobs"] | bad["logsumexp"] | bad["valid"]).sum())
    return wrong


def _value_checks(first: Optional[int], last: Optional[int], names: Tuple[str, str]) -> Dict[str, int]:
    """The extra outputs' value mismatches under ``names``, for contenders that have them."""
    return {} if first is None else dict(zip(names, (first, last)))


def _out_of_range(vocab: int, *answers: Optional[torch.Tensor]) -> Optional[int]:
    """How many answers are not token ids at all (outside [0, vocab)): the
    failure that took aiter's kernel out of service, counted apart from
    ordinary mismatches."""
    if any(got is None for got in answers):
        return None
    return sum(int(((got < 0) | (got >= vocab)).sum()) for got in answers)


def _write(results: Dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"


def _device_ok(device: torch.device) -> bool:
    """False when the GPU is in an error state no later work can recover from."""
    try:
        torch.cuda.synchronize(device)
        return True
    except Exception:
        return False


def start_cell(pool, results: Dict, contenders: List[Contender], device: torch.device,
               dtype_name: str, vocab: int, batch: int, nbytes: int, k: int):
    """Fill the rotation pool for one cell, check the contenders on hard rows once
    per dtype and vocab, and return the cell's inputs, reference answers (first
    and last buffer) and its empty record."""
    dtype = DTYPES[dtype_name]
    pool.fill(dtype, seed=1)
    key = f"{dtype_name}/{vocab}"
    if key not in results["hard_rows"]:
        results["hard_rows"][key] = check_hard_rows(contenders, vocab, dtype, device)
    inputs = pool.views(dtype, batch, vocab, k)
    cell = {
        "dtype": dtype_name, "vocab": vocab, "batch": batch, "bytes": nbytes, "buffers": k,
        "rotation_bytes": k * nbytes, "times_us": {}, "mismatches": {}, "errors": {},
    }
    return inputs, torch.argmax(inputs[0], -1), torch.argmax(inputs[-1], -1), cell


def read_bandwidth_buffer(pool: speed.Pool, nbytes: int) -> torch.Tensor:
    """The first ``nbytes`` of ``pool`` as float32 randn data."""
    pool.fill(torch.float32)
    return pool.raw[:nbytes].view(torch.float32)


def read_bandwidth(big: torch.Tensor) -> Tuple[float, float]:
    """``(us, bytes per second)`` of ``big.sum()`` under graph replay: the read
    bandwidth that the time target is measured against."""
    us, _ = speed.cuda_graph_time(lambda x: x.sum(), [big])
    return us, big.numel() * big.element_size() / (us * 1e-6)


def run_gpu(args, results: Dict, path: str, device: torch.device) -> None:
    l2 = speed.l2_bytes(device)
    cold = speed.COLD_FACTOR * l2
    free, _ = torch.cuda.mem_get_info(device)
    cap = min(GPU_MEMORY_CAP, int(free * 0.6))
    plan = _cell_plan(args.dtypes, args.vocabs, args.batches, cold, cap)
    bw_bytes = max(BANDWIDTH_BYTES, 8 * l2)
    pool_bytes = max([bw_bytes] + [speed.rotation_pool_bytes(n, k) for *_, n, k in plan])
    progress(f"{results['meta']['device_name']}: L2 {l2 / 2**20:.0f} MiB, pool {pool_bytes / 2**30:.2f} GiB, "
             f"{len(plan)} cells")
    pool = speed.Pool(pool_bytes, device)
    if args.pin_cpu:
        results["cpu_pinning"] = speed.pin_to_quickest_cpu(device)
        if results["cpu_pinning"]:
            costs = results["cpu_pinning"]["launch_us_by_cpu"]
            progress(f"pinned to CPU {results['cpu_pinning']['cpu']}: eager launch "
                     f"{min(costs.values()):.2f} us there, {max(costs.values()):.2f} us on the slowest CPU")

    # References: what reading memory costs, and what a kernel costs.
    big = read_bandwidth_buffer(pool, bw_bytes)
    sum_graph, read_bw = read_bandwidth(big)
    sum_eager = speed.cuda_eager_time(lambda x: x.sum(), [big], estimate_us=sum_graph)
    tiny = torch.zeros(1, device=device)
    empty_graph, _ = speed.cuda_graph_time(lambda t: t.add_(1), [tiny] * 1000)
    empty_eager = speed.cuda_eager_time(lambda t: t.add_(1), [tiny] * 1000, estimate_us=empty_graph)
    results["references"] = {
        "read_bandwidth": {"what": "x.sum() over a float32 buffer, graph replay", "bytes": bw_bytes,
                           "graph_us": sum_graph, "eager_us": sum_eager, "bytes_per_s": read_bw},
        "empty_kernel": {"what": "t.add_(1) on a 1-element float32 tensor, 1000 calls per graph",
                         "graph_us": empty_graph, "eager_us": empty_eager},
    }
    progress(f"read bandwidth {read_bw / 1e9:.0f} GB/s; empty kernel {empty_graph:.2f} us (graph), "
             f"{empty_eager:.2f} us (eager)")

    contenders = chosen(gpu_contenders(), args.contenders)
    results["contenders"] = {c.name: c.status for c in contenders}
    results["hard_rows"] = {}
    results["passes"] = args.passes
    began = time.perf_counter()
    for pass_index in range(args.passes):
        for index, cell_plan in enumerate(plan):
            cell, abort = measure_gpu_cell(args, results, pool, contenders, device, cold, cell_plan)
            if pass_index == 0:
                results["cells"].append(cell)
            else:
                keep_lower_times(results["cells"][index], cell)
            if abort:
                results["aborted"] = abort
                _write(results, path)
                raise SystemExit(f"bench: {abort}")
            cell = results["cells"][index]
            derive_gpu(cell, read_bw, empty_graph)
            results["contenders"] = {c.name: c.status for c in contenders}
            progress(f"pass {pass_index + 1}/{args.passes} " + _progress_line(index, len(plan), cell, began))
            if index + 1 == len(plan) or plan[index + 1][0] != plan[index][0]:
                _write(results, path)


def keep_lower_times(kept: Dict, new: Dict) -> None:
    """Merges a later pass's measurement of a cell into the kept one: per
    contender and timer, the lower time (none if any pass has none: a failure
    in one pass is a failure of the cell); every pass's graph time in
    ``pass_graph_us``; mismatches and errors of any pass."""
    for name, times in new["times_us"].items():
        kept["pass_graph_us"].setdefault(name, []).extend(new["pass_graph_us"][name])
        old = kept["times_us"].get(name)
        kept["times_us"][name] = (None if times is None or old is None
                                  else {mode: min(old[mode], times[mode]) for mode in old})
    for name, counts in new["mismatches"].items():
        before = kept["mismatches"].setdefault(name, {})
        for check, count in counts.items():
            if count is not None:
                before[check] = max(before.get(check) or 0, count)
    kept["errors"].update(new["errors"])


def measure_gpu_cell(args, results: Dict, pool, contenders: List[Contender], device: torch.device,
                     cold: int, cell_plan) -> Tuple[Dict, Optional[str]]:
    """One pass's measurement of one cell, every runnable contender, graph and
    eager, with its answers checked; and why the run cannot go on, if so."""
    dtype_name, vocab, batch, nbytes, k = cell_plan
    inputs, ref_first, ref_last, cell = start_cell(
        pool, results, contenders, device, dtype_name, vocab, batch, nbytes, k)
    cell["l2_cold"] = k * nbytes > cold
    try:
        for c in contenders:
            if not c.runnable:
                cell["times_us"][c.name] = None
                continue
            try:
                fn = c.make(batch, device)
                first_out = fn(inputs[0]).clone()
                first_extra = _extra_outputs_now(fn)
                first = _mismatches(first_out, ref_first)
                graph_us, last_out = speed.cuda_graph_time(fn, inputs, target_ms=args.target_ms)
                last_extra = _extra_outputs_now(fn)
                last = _mismatches(last_out, ref_last)
                outside = _out_of_range(vocab, first_out, last_out)
                eager_us = speed.cuda_eager_time(fn, inputs, estimate_us=graph_us)
                first_values = _output_value_mismatches(first_extra, inputs[0])
                last_values = _output_value_mismatches(last_extra, inputs[-1])
                cell["times_us"][c.name] = {"graph": graph_us, "eager": eager_us}
                cell["mismatches"][c.name] = {
                    "first_eager": first, "last_graph": last, "out_of_range": outside,
                    **_value_checks(first_values, last_values, ("outputs_first_eager", "outputs_last_graph"))}
                c.succeeded()
            except Exception as exc:
                error = _error_text(exc)
                cell["times_us"][c.name] = None
                cell["errors"][c.name] = error
                progress(f"  {c.name} failed on {dtype_name} {batch}x{vocab}: {error}")
                if args.verbose:
                    traceback.print_exc()
                c.failed(error)
                if not _device_ok(device):
                    return _with_pass_times(cell), f"GPU unusable after {c.name} failed: {error}"
            finally:
                fn = None
    finally:
        del inputs
    return _with_pass_times(cell), None


def _with_pass_times(cell: Dict) -> Dict:
    cell["pass_graph_us"] = {name: [t["graph"] if t else None] for name, t in cell["times_us"].items()}
    return cell


def derive_gpu(cell: Dict, read_bw: float, empty_us: float) -> None:
    ours = cell["times_us"].get("safe_greedy")
    theirs = cell["times_us"].get("torch_argmax")
    memory_us = cell["bytes"] / read_bw * 1e6
    cell["floor_us"] = memory_us + empty_us
    cell["target_us"] = target_us(cell["bytes"], read_bw)
    cell["speedup"] = theirs["graph"] / ours["graph"] if ours and theirs else None
    cell["speedup_eager"] = theirs["eager"] / ours["eager"] if ours and theirs else None
    cell["pct_floor"] = 100.0 * cell["floor_us"] / ours["graph"] if ours else None
    cell["meets_ratio"] = cell["speedup"] >= 1.0 if cell["speedup"] is not None else None
    cell["meets_target"] = ours["graph"] <= cell["target_us"] if ours else None
    derive_outputs(cell, "graph")


def derive_outputs(cell: Dict, timer: str) -> None:
    """safe_greedy_outputs against the plain call, the floor and target, and
    the composed torch paths, where timed (``timer``: "graph" or "wall")."""
    times = cell["times_us"]

    def t(name):
        return (times.get(name) or {}).get(timer)

    ours = t("safe_greedy_outputs")
    cell["outputs"] = {
        "vs_plain": ours / t("safe_greedy") if ours and t("safe_greedy") else None,
        "speedup_vs_composed": t("torch_composed") / ours if ours and t("torch_composed") else None,
        "speedup_vs_logprobs": t("torch_logprobs") / ours if ours and t("torch_logprobs") else None,
        "pct_floor": 100.0 * cell["floor_us"] / ours if ours and cell.get("floor_us") else None,
        "meets_target": ours <= cell["target_us"] if ours and cell.get("target_us") else None,
        "within_bound": within_outputs_bound(cell),
    }


def _progress_line(index: int, total: int, cell: Dict, began: float) -> str:
    times = cell["times_us"]
    parts = []
    for name, short in (("safe_greedy", "sg"), ("torch_argmax", "torch"), ("torch_compile", "compile"),
                        ("aiter", "aiter"), ("safe_greedy_outputs", "sg+outputs"),
                        ("torch_composed", "composed"), ("torch_logprobs", "logprobs")):
        t = times.get(name)
        if t is not None:
            key = "graph" if "graph" in t else "wall"
            parts.append(f"{short} {t[key]:.1f}")
    speedup = f"{cell['speedup']:.2f}x" if cell.get("speedup") else "-"
    floor = f"{cell['pct_floor']:.0f}%" if cell.get("pct_floor") else "-"
    bad = [n for n, m in cell["mismatches"].items() if any(v for v in m.values() if v)]
    flag = f" MISMATCH {','.join(bad)}" if bad else ""
    return (f"[{index + 1:>3}/{total}] {cell['dtype']} {cell['batch']:>4}x{cell['vocab']:<6} "
            f"{', '.join(parts)} us  {speedup} floor {floor}{flag}  ({time.perf_counter() - began:.0f} s)")


# ---------------------------------------------------------------------------
# CPU sweep


def run_cpu(args, results: Dict, path: str) -> None:
    device = torch.device("cpu")
    cold = speed.cold_bytes(device)
    cap = CPU_MEMORY_CAP // 2  # half for the logits, half for sum's fp32 data
    plan = _cell_plan(args.dtypes, args.vocabs, args.batches, cold, cap)
    pool = speed.Pool(max(speed.rotation_pool_bytes(n, k) for *_, n, k in plan), device)
    sum_plan = {}
    for _, vocab, batch, _, _ in plan:
        n32 = batch * vocab * 4
        sum_plan[(batch, vocab)] = speed.rotation_count(n32, cold, cap)
    sum_pool = speed.Pool(max(speed.rotation_pool_bytes(b * v * 4, k) for (b, v), k in sum_plan.items()), device)
    progress(f"{results['meta']['device_name']}: {torch.get_num_threads()} threads, LLC "
             f"{speed.llc_bytes() / 2**20:.0f} MiB, pools {(pool.nbytes + sum_pool.nbytes) / 2**30:.2f} GiB, "
             f"{len(plan)} cells")
    sum_pool.fill(torch.float32)
    sum_us: Dict = {}
    contenders = chosen([Contender("safe_greedy", _make_safe_greedy, "ok"),
                         Contender("torch_argmax", _make_torch_argmax, "ok")]
                        + [Contender(name, make, "ok") for name, make in OUTPUT_CONTENDERS], args.contenders)
    results["contenders"] = {c.name: c.status for c in contenders}
    results["contenders"]["sum_fp32"] = "reference: torch.sum over fp32 data of the same element count"
    results["hard_rows"] = {}
    results["references"] = {}
    began = time.perf_counter()
    for index, (dtype_name, vocab, batch, nbytes, k) in enumerate(plan):
        inputs, ref_first, ref_last, cell = start_cell(
            pool, results, contenders, device, dtype_name, vocab, batch, nbytes, k)
        cell["llc_cold"] = k * nbytes > cold
        for c in contenders:
            if not c.runnable:
                cell["times_us"][c.name] = None
                continue
            try:
                fn = c.make(batch, device)
                first_out = fn(inputs[0]).clone()
                first_extra = _extra_outputs_now(fn)
                first = _mismatches(first_out, ref_first)
                last_out = fn(inputs[-1])
                last_extra = _extra_outputs_now(fn)
                last = _mismatches(last_out, ref_last)
                outside = _out_of_range(vocab, first_out, last_out)
                cell["times_us"][c.name] = {"wall": speed.cpu_time(fn, inputs, target_s=args.cpu_seconds)}
                first_values = _output_value_mismatches(first_extra, inputs[0])
                last_values = _output_value_mismatches(last_extra, inputs[-1])
                cell["mismatches"][c.name] = {
                    "first": first, "last": last, "out_of_range": outside,
                    **_value_checks(first_values, last_values, ("outputs_first", "outputs_last"))}
            except Exception as exc:
                cell["times_us"][c.name] = None
                cell["errors"][c.name] = _error_text(exc)
                progress(f"  {c.name} failed on {dtype_name} {batch}x{vocab}: {cell['errors'][c.name]}")
        if (batch, vocab) not in sum_us:
            sums = sum_pool.views(torch.float32, batch, vocab, sum_plan[(batch, vocab)])
            sum_us[(batch, vocab)] = speed.cpu_time(lambda x: x.sum(), sums, target_s=args.cpu_seconds)
            del sums
        cell["times_us"]["sum_fp32"] = {"wall": sum_us[(batch, vocab)]}
        derive_cpu(cell)
        results["cells"].append(cell)
        del inputs
        progress(_progress_line(index, len(plan), cell, began))
    _write(results, path)


def derive_cpu(cell: Dict) -> None:
    ours = cell["times_us"].get("safe_greedy")
    theirs = cell["times_us"].get("torch_argmax")
    sum_us = cell["times_us"]["sum_fp32"]["wall"]
    elements = cell["batch"] * cell["vocab"]
    sum_rate = elements * 4 / sum_us * 1e-3  # GB/s
    cell["gbps"] = {
        "safe_greedy": cell["bytes"] / ours["wall"] * 1e-3 if ours else None,
        "torch_argmax": cell["bytes"] / theirs["wall"] * 1e-3 if theirs else None,
        "sum_fp32": sum_rate,
    }
    cell["floor_us"] = cell["bytes"] / sum_rate * 1e-3  # this cell's bytes at sum's byte rate
    cell["target_us"] = None
    cell["speedup"] = theirs["wall"] / ours["wall"] if ours and theirs else None
    cell["speedup_eager"] = None
    cell["pct_floor"] = 100.0 * cell["floor_us"] / ours["wall"] if ours else None
    cell["meets_ratio"] = cell["speedup"] >= 1.0 if cell["speedup"] is not None else None
    cell["meets_target"] = None
    derive_outputs(cell, "wall")


# ---------------------------------------------------------------------------
# Summary


def summarise(results: Dict) -> Dict:
    cells = results["cells"]
    speedups = [c["speedup"] for c in cells if c.get("speedup")]
    summary = {
        "cells": len(cells),
        "geomean_speedup": geomean(speedups),
        "cells_ratio_ge_1": sum(1 for c in cells if c.get("meets_ratio")),
        "cells_meeting_target": (sum(1 for c in cells if c.get("meets_target"))
                                 if results["meta"]["device_type"] == "cuda" else None),
        "cells_with_mismatches": {},
        # contender -> [answers outside [0, vocab), cells with any] on the
        # benchmark inputs, and hard rows answered outside [0, vocab).
        "out_of_range_answers": {},
        "hard_rows_out_of_range": {},
    }
    for c in cells:
        for name, m in c.get("mismatches", {}).items():
            if any(v for v in m.values() if v):
                summary["cells_with_mismatches"][name] = summary["cells_with_mismatches"].get(name, 0) + 1
            if m.get("out_of_range"):
                counts = summary["out_of_range_answers"].setdefault(name, [0, 0])
                counts[0] += m["out_of_range"]
                counts[1] += 1
    hard = {}
    for key, per in results.get("hard_rows", {}).items():
        for name, wrong in per.items():
            if wrong:
                hard.setdefault(name, []).append(key)
            if isinstance(wrong, dict):
                outside = sum(1 for v in wrong.values() if v.get("out_of_range"))
                if outside:
                    summary["hard_rows_out_of_range"][name] = (
                        summary["hard_rows_out_of_range"].get(name, 0) + outside)
    summary["hard_row_failures"] = hard
    summary["outputs"] = summarise_outputs(cells)
    return summary


def summarise_outputs(cells: List[Dict]) -> Dict:
    """The extra outputs over the sweep: speed-ups over the composed torch
    paths (geometric mean and least), cells within the time target."""
    out = [c.get("outputs") or {} for c in cells]
    composed = [o["speedup_vs_composed"] for o in out if o.get("speedup_vs_composed")]
    logprobs = [o["speedup_vs_logprobs"] for o in out if o.get("speedup_vs_logprobs")]
    plain = [o["vs_plain"] for o in out if o.get("vs_plain")]
    return {
        "cells_timed": sum(1 for o in out if o.get("pct_floor") is not None),
        "geomean_speedup_vs_composed": geomean(composed),
        "min_speedup_vs_composed": min(composed) if composed else None,
        "geomean_speedup_vs_logprobs": geomean(logprobs),
        "min_speedup_vs_logprobs": min(logprobs) if logprobs else None,
        "geomean_time_vs_plain": geomean(plain),
        "cells_meeting_target": sum(1 for o in out if o.get("meets_target")),
        "cells_within_bound": sum(1 for o in out if o.get("within_bound")),
    }


def print_summary(results: Dict, path: str) -> None:
    meta, summary = results["meta"], results["summary"]
    print(f"{meta['device_name']}  driver {meta.get('driver')}  torch {meta['torch']}  {meta['date_utc']}")
    refs = results.get("references", {})
    if "read_bandwidth" in refs:
        print(f"read bandwidth {refs['read_bandwidth']['bytes_per_s'] / 1e9:.0f} GB/s, "
              f"empty kernel {refs['empty_kernel']['graph_us']:.2f} us (graph)")
    print("contenders: " + "; ".join(f"{k}: {v}" for k, v in results["contenders"].items()))
    gm = summary["geomean_speedup"]
    line = (f"{summary['cells']} cells; geomean speed-up over torch.argmax {gm:.2f}x; "
            f"ratio >= 1.0 in {summary['cells_ratio_ge_1']}" if gm else f"{summary['cells']} cells")
    if summary["cells_meeting_target"] is not None:
        line += f"; time <= 1.10 x bytes/bw + 2.5 us in {summary['cells_meeting_target']}"
    print(line)
    outputs = summary.get("outputs") or {}
    if outputs.get("cells_timed"):
        print(f"with every output: {outputs['cells_timed']} cells; over torch_composed "
              f"{_ratio(outputs['geomean_speedup_vs_composed'])} geomean, "
              f"{_ratio(outputs['min_speedup_vs_composed'])} least; over torch_logprobs "
              f"{_ratio(outputs['geomean_speedup_vs_logprobs'])} geomean; "
              f"{_ratio(outputs['geomean_time_vs_plain'])} the plain call's time"
              + (f"; within the time target in {outputs['cells_meeting_target']}, within "
                 f"{OUTPUTS_BOUND_SLACK:.2f} x floor + {TARGET_FIXED_US} us in {outputs['cells_within_bound']}"
                 if meta["device_type"] == "cuda" else ""))
    if summary["cells_with_mismatches"]:
        print("cells with answers != torch.argmax: " +
              ", ".join(f"{k} {v}" for k, v in summary["cells_with_mismatches"].items()))
    if summary["hard_row_failures"]:
        print("hard rows wrong: " + "; ".join(f"{k}: {len(v)} dtype/vocab" for k, v in
                                             summary["hard_row_failures"].items()))
    outside = set(summary["out_of_range_answers"]) | set(summary["hard_rows_out_of_range"])
    if outside:
        print("answers outside [0, vocab): " + "; ".join(
            f"{name}: {summary['out_of_range_answers'].get(name, [0, 0])[0]} in "
            f"{summary['out_of_range_answers'].get(name, [0, 0])[1]} cells, "
            f"{summary['hard_rows_out_of_range'].get(name, 0)} hard rows" for name in sorted(outside)))
    for dtype in dict.fromkeys(c["dtype"] for c in results["cells"]):
        cells = [c for c in results["cells"] if c["dtype"] == dtype]
        vocabs = sorted({c["vocab"] for c in cells})
        print(f"\n{dtype}: safe_greedy us / speed-up / % floor")
        print(f"{'batch':>6} " + " ".join(f"{v:>20}" for v in vocabs))
        for batch in sorted({c["batch"] for c in cells}):
            row = []
            for v in vocabs:
                c = next((c for c in cells if c["batch"] == batch and c["vocab"] == v), None)
                row.append(_cell_text(c))
            print(f"{batch:>6} " + " ".join(f"{r:>20}" for r in row))
    print(f"\nwrote {path}")


def _ratio(value: Optional[float]) -> str:
    return f"{value:.2f}x" if value else "-"


def _cell_text(cell: Optional[Dict]) -> str:
    if not cell:
        return "-"
    us = cell_time_us(cell)
    if us is None:
        return "failed"
    speedup = f"{cell['speedup']:.2f}x" if cell.get("speedup") else "-"
    return f"{us:.1f}/{speedup}/{cell['pct_floor']:.0f}%"


# ---------------------------------------------------------------------------


def _list(kind):
    def parse(text: str):
        return tuple(kind(item) for item in text.split(",") if item.strip())
    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a small subset of the sweep")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    parser.add_argument("--dtypes", type=_list(str), help="e.g. fp32,bf16")
    parser.add_argument("--vocabs", type=_list(int), help="e.g. 32000,151936")
    parser.add_argument("--batches", type=_list(int), help="e.g. 1,16,256")
    parser.add_argument("--passes", type=int, default=2,
                        help="GPU: sweeps over every cell; each time is the lowest of the passes' medians")
    parser.add_argument("--target-ms", type=float, default=20.0,
                        help="GPU: about this much GPU time per graph measurement")
    parser.add_argument("--cpu-seconds", type=float, default=0.3,
                        help="CPU: about this much time per contender and cell")
    parser.add_argument("--no-pin-cpu", dest="pin_cpu", action="store_false",
                        help="GPU: leave the process where the scheduler puts it instead of on the "
                        "CPU that launches kernels fastest")
    parser.add_argument("--contenders", type=_list(str),
                        help="only these, e.g. safe_greedy,torch_argmax,safe_greedy_outputs,torch_composed")
    parser.add_argument("--verbose", action="store_true", help="tracebacks of failing contenders")
    parser.add_argument("--commit", help="the commit being measured, where the source tree is a copy "
                        "without git metadata (recorded as given)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no GPU")
    if args.quick:
        dtypes, vocabs, batches = QUICK[args.device]
    elif args.device == "cuda":
        dtypes, vocabs, batches = tuple(DTYPES), GPU_VOCABS, GPU_BATCHES
    else:
        dtypes, vocabs, batches = tuple(DTYPES), CPU_VOCABS, CPU_BATCHES
    args.dtypes = args.dtypes or dtypes
    args.vocabs = args.vocabs or vocabs
    args.batches = args.batches or batches
    unknown = [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype(s) {unknown}; choose from {list(DTYPES)}")

    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    meta = metadata(device, args.commit)
    os.makedirs(args.out, exist_ok=True)
    stamp = meta["date_utc"].replace("-", "").replace(":", "").replace("+0000", "Z")
    path = os.path.join(args.out, f"{args.device}-{stamp}.json")
    results = {
        "meta": meta,
        "sweep": {"dtypes": list(args.dtypes), "vocabs": list(args.vocabs), "batches": list(args.batches),
                  "quick": args.quick, "contenders": list(args.contenders) if args.contenders else None},
        "method": (__doc__.split("GPU method")[1].split("CPU method")[0].strip() if args.device == "cuda"
                   else __doc__.split("CPU method")[1].strip()),
        "target": {"slack": TARGET_SLACK, "fixed_us": TARGET_FIXED_US},
        "cells": [],
    }
    began = time.perf_counter()
    if args.device == "cuda":
        run_gpu(args, results, path, device)
    else:
        run_cpu(args, results, path)
    results["elapsed_s"] = time.perf_counter() - began
    results["summary"] = summarise(results)
    _write(results, path)
    print_summary(results, path)
    return 1 if _safe_greedy_failed(results) else 0


def _safe_greedy_failed(results: Dict) -> bool:
    """Whether safe_greedy, with or without the extra outputs, gave a wrong
    answer or an error anywhere."""
    ours = ("safe_greedy", "safe_greedy_outputs")
    summary = results["summary"]
    if any(name in summary["cells_with_mismatches"] or name in summary["hard_row_failures"] for name in ours):
        return True
    return any(name in c.get("errors", {}) for c in results["cells"] for name in ours)


if __name__ == "__main__":
    sys.exit(main())
