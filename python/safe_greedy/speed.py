"""Timing: cache-cold rotation buffers, CUDA-graph and eager GPU timers, a CPU timer.

Used by ``python -m safe_greedy`` (the short speed table at the end of this
file) and by ``benchmarks/bench.py`` (the full sweep), so both measure the same
way:

* Inputs are cache-cold. A call reads one of ``k`` same-shaped buffers and the
  next call reads the next one, round robin; ``k`` is chosen so the buffers
  together exceed twice the cache in front of memory (the GPU's L2, or the
  CPU's last-level cache). Each buffer starts on a 512-byte boundary, as a
  freshly allocated logits tensor would, so no contender pays for a misaligned
  start that serving never shows it.
* GPU, graph: one CUDA graph captures one call per buffer; a replay is timed
  with CUDA events and divided by ``k``; the result is the median over several
  replays. Launch overhead is gone, the gap between consecutive kernels of a
  graph (about one empty kernel) stays.
* GPU, eager: a loop of ordinary calls, continuing the same rotation, between
  two events, divided by the number of calls; median over several loops. Small
  problems are bound by the CPU's launch cost here, which is what a server
  without graphs pays.
* CPU: wall-clock time of each call (``time.perf_counter_ns``), median.
"""

from __future__ import annotations

import datetime
import glob
import math
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

# What to assume when the device does not say (H100's L2 is 50 MiB).
DEFAULT_L2_BYTES = 50 * 2**20
DEFAULT_LLC_BYTES = 32 * 2**20
# Buffers in a rotation together exceed this many caches.
COLD_FACTOR = 2
# A buffer's start, in bytes: 16 B vector loads and TMA-style alignment are
# both satisfied, and it matches what the caching allocator hands out.
SLOT_ALIGN = 512
# More calls than this in one graph makes capture and instantiation dominate.
MAX_BUFFERS = 20000


# ---------------------------------------------------------------------------
# Machine facts


def l2_bytes(device: torch.device) -> int:
    """The GPU's L2 size in bytes, or 50 MiB when torch does not report it."""
    props = torch.cuda.get_device_properties(device)
    size = getattr(props, "L2_cache_size", None) or getattr(props, "l2_cache_size", None)
    return int(size) if size else DEFAULT_L2_BYTES


def llc_bytes() -> int:
    """The largest CPU cache the kernel reports in sysfs, else 32 MiB."""
    best_level, best_size = -1, 0
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(index, "level")) as f:
                level = int(f.read().strip())
            with open(os.path.join(index, "size")) as f:
                text = f.read().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        try:
            size = int(digits) * scale
        except ValueError:
            continue
        if (level, size) > (best_level, best_size):
            best_level, best_size = level, size
    return best_size or DEFAULT_LLC_BYTES


def cold_bytes(device: torch.device) -> int:
    """Bytes a rotation must exceed to be cache-cold on ``device``."""
    cache = l2_bytes(device) if device.type == "cuda" else llc_bytes()
    return COLD_FACTOR * cache


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------
# Rotation buffers


def _slot(nbytes: int) -> int:
    return (nbytes + SLOT_ALIGN - 1) // SLOT_ALIGN * SLOT_ALIGN


def rotation_count(nbytes: int, cold: int, max_total: int, max_buffers: int = MAX_BUFFERS) -> int:
    """Buffers of ``nbytes`` each whose total exceeds ``cold`` (at least 2),
    within ``max_total`` bytes of slots and ``max_buffers`` buffers."""
    k = max(2, cold // max(nbytes, 1) + 1)
    k = min(k, max_buffers, max(1, max_total // _slot(nbytes)))
    return k


def rotation_pool_bytes(nbytes: int, count: int) -> int:
    return _slot(nbytes) * count


class Pool:
    """One raw allocation that rotation buffers of any shape and dtype are cut from.

    Reusing it across a sweep keeps the allocator out of the measurements and
    the memory bounded by the largest cell instead of the sum of them.
    """

    def __init__(self, nbytes: int, device: torch.device):
        nbytes = (max(nbytes, 4096) + 4095) // 4096 * 4096
        self.device = device
        self.raw = torch.empty(nbytes, dtype=torch.uint8, device=device)
        self.filled: Optional[torch.dtype] = None

    @property
    def nbytes(self) -> int:
        return self.raw.numel()

    def fill(self, dtype: torch.dtype, seed: int = 0) -> None:
        """Standard-normal values of ``dtype`` everywhere: the same as
        ``torch.randn`` logits, with a positive row maximum at any real vocab."""
        if self.filled == dtype:
            return
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        self.raw.view(dtype).normal_(generator=gen)
        self.filled = dtype

    def views(self, dtype: torch.dtype, batch: int, vocab: int, count: int) -> List[torch.Tensor]:
        """``count`` disjoint contiguous ``[batch, vocab]`` tensors, each on its own slot."""
        itemsize = torch.empty((), dtype=dtype).element_size()
        nbytes = batch * vocab * itemsize
        slot = _slot(nbytes)
        if slot * count > self.nbytes:
            raise ValueError(f"pool of {self.nbytes} B cannot hold {count} x {slot} B")
        return [
            self.raw[i * slot : i * slot + nbytes].view(dtype).view(batch, vocab)
            for i in range(count)
        ]


# ---------------------------------------------------------------------------
# Outputs of the timed calls


def every_extra_output(batch: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """Uninitialised ``logprobs``, ``logsumexp`` and ``valid`` for ``batch`` rows:
    the keyword arguments of a ``greedy_sample`` call that asks for every extra
    output."""
    return {
        "logprobs": torch.empty(batch, dtype=torch.float32, device=device),
        "logsumexp": torch.empty(batch, dtype=torch.float32, device=device),
        "valid": torch.empty(batch, dtype=torch.bool, device=device),
    }


# ---------------------------------------------------------------------------
# Timers

Call = Callable[[torch.Tensor], Optional[torch.Tensor]]

_capture_streams: dict = {}


def _capture_stream(device: torch.device) -> "torch.cuda.Stream":
    # One side stream per device for every capture: the kernels under test may
    # keep per-stream state (safe_greedy's eager calls keep a workspace per
    # stream), and a fresh stream per capture would create it again each time.
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _capture_streams:
        _capture_streams[index] = torch.cuda.Stream(device=index)
    return _capture_streams[index]


def _clamp(value: float, low: int, high: int) -> int:
    return int(min(max(math.ceil(value), low), high))


def cuda_graph_time(fn: Call, inputs: Sequence[torch.Tensor], **options) -> Tuple[float, Optional[torch.Tensor]]:
    """Median microseconds per call of ``fn`` over ``inputs`` under graph
    replay, and ``out`` (see cuda_graph_samples, which takes the same options)."""
    samples, out = cuda_graph_samples(fn, inputs, **options)
    return statistics.median(samples), out


def cuda_graph_samples(
    fn: Call,
    inputs: Sequence[torch.Tensor],
    *,
    target_ms: float = 20.0,
    min_replays: int = 5,
    max_replays: int = 50,
) -> Tuple[List[float], Optional[torch.Tensor]]:
    """Microseconds per call of ``fn`` over ``inputs`` in each timed graph replay.

    Returns ``(samples, out)`` where ``out`` is a copy of what the last captured
    call returned after the final replay (None if ``fn`` returns nothing), so a
    caller can check that replays compute the right answer.
    """
    device = inputs[0].device
    stream = _capture_stream(device)
    # Warm-up outside capture, on the stream that will capture: compilation,
    # autotuning, lazy workspaces and cuBLAS-style handles must not happen
    # inside it. The first, second and last input differ in storage offset.
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for x in (inputs[0], inputs[min(1, len(inputs) - 1)], inputs[-1]):
            fn(x)
    torch.cuda.current_stream(device).wait_stream(stream)
    torch.cuda.synchronize(device)

    graph = torch.cuda.CUDAGraph()
    out = None
    with torch.cuda.graph(graph, stream=stream):
        for x in inputs:
            out = fn(x)

    graph.replay()  # the first replay uploads the graph; keep it out of the numbers
    torch.cuda.synchronize(device)

    def timed(replays: int) -> List[float]:
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(replays)
        ]
        for start, end in events:
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) for start, end in events]

    first = timed(1)[0]
    replays = _clamp(target_ms / max(first, 1e-3), min_replays, max_replays)
    per_call_us = [ms * 1e3 / len(inputs) for ms in timed(replays)]
    result = out.clone() if isinstance(out, torch.Tensor) else None
    torch.cuda.synchronize(device)
    return per_call_us, result


def cuda_eager_time(
    fn: Call,
    inputs: Sequence[torch.Tensor],
    *,
    estimate_us: float = 10.0,
    target_ms: float = 10.0,
    max_calls: int = 500,
    loops: int = 5,
) -> float:
    """Median microseconds per call of ``fn`` called eagerly, round robin over ``inputs``.

    ``estimate_us`` (e.g. the graph time) sizes the loops to about ``target_ms``.
    """
    device = inputs[0].device
    calls = _clamp(target_ms * 1e3 / max(estimate_us, 0.5), 3, max_calls)
    fn(inputs[-1])  # warm-up
    torch.cuda.synchronize(device)
    index = 0
    events = []
    for _ in range(loops):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn(inputs[index])
            index = (index + 1) % len(inputs)
        end.record()
        events.append((start, end))
    torch.cuda.synchronize(device)
    return statistics.median(start.elapsed_time(end) * 1e3 / calls for start, end in events)


def cpu_time(fn: Call, inputs: Sequence[torch.Tensor], **options) -> float:
    """Median wall-clock microseconds per call of ``fn``, round robin over
    ``inputs`` (the options of cpu_samples)."""
    return statistics.median(cpu_samples(fn, inputs, **options))


def cpu_samples(
    fn: Call,
    inputs: Sequence[torch.Tensor],
    *,
    target_s: float = 0.3,
    min_calls: int = 5,
    max_calls: int = 2000,
) -> List[float]:
    """Wall-clock microseconds of each call of ``fn``, round robin over ``inputs``."""
    fn(inputs[-1])  # warm-up: thread pool, page faults of the output
    samples: List[float] = []
    index = 0
    began = time.perf_counter()
    while len(samples) < max_calls:
        x = inputs[index]
        index = (index + 1) % len(inputs)
        t0 = time.perf_counter_ns()
        fn(x)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
        if len(samples) >= min_calls and time.perf_counter() - began >= target_s:
            break
    return samples


# ---------------------------------------------------------------------------
# CPU placement of eager GPU timing
#
# An eager call on a small problem costs what the CPU spends launching it, and
# that depends on the CPU core: on one 16-core H200 host, 8 cores launched a
# safe_greedy call in 5.6-6.6 us and the other 8 in 8.3-9.5 us (torch.argmax
# 8.3-10.7 us against 12.2-13.7 us). A process the scheduler moves between
# such cores mixes both: in two unpinned sweeps on an H100 host, one build's
# eager time of a batch-1 to 4 cell was about 5.5 us in one run and 8-11 us
# in the other, cell by cell, either way round.


def quickest_cpu(launch_us: Callable[[], float], cpus: Sequence[int]) -> Tuple[int, Dict[int, float]]:
    """The CPU among ``cpus`` where ``launch_us()`` returned least, run with the
    calling thread pinned to each in turn, and what it returned on each. The
    thread's affinity is restored before returning."""
    if not cpus:
        raise ValueError("quickest_cpu: no CPUs to choose from")
    before = os.sched_getaffinity(0)
    costs: Dict[int, float] = {}
    try:
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            costs[cpu] = launch_us()
    finally:
        os.sched_setaffinity(0, before)
    return min(costs, key=lambda cpu: (costs[cpu], cpu)), costs


def pin_to_quickest_cpu(device: torch.device, launches: int = 200, repeats: int = 3) -> Optional[Dict]:
    """Pins the calling thread to the allowed CPU that launches a small kernel
    on ``device`` fastest, so that every eager time of a run is taken from
    the same core. Returns the choice and each CPU's launch cost in
    microseconds (median of ``repeats`` loops of ``launches`` calls), or None
    where the platform cannot pin threads."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    tiny = torch.zeros(1, device=device)

    def launch_us() -> float:
        samples = []
        for _ in range(repeats):
            torch.cuda.synchronize(device)
            began = time.perf_counter()
            for _ in range(launches):
                tiny.add_(1)
            samples.append((time.perf_counter() - began) / launches * 1e6)
        torch.cuda.synchronize(device)
        return statistics.median(samples)

    launch_us()  # warm-up: the first launches pay for loading the kernel
    cpu, costs = quickest_cpu(launch_us, sorted(os.sched_getaffinity(0)))
    os.sched_setaffinity(0, {cpu})
    return {"cpu": cpu, "launch_us_by_cpu": {str(c): round(t, 3) for c, t in costs.items()}}


# ---------------------------------------------------------------------------
# The short speed table of `python -m safe_greedy`

TABLE_BATCHES = (1, 16, 256)
TABLE_VOCABS = (32000, 151936)
TABLE_DTYPES = (torch.bfloat16, torch.float32)
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


# A row is flagged noisy when its middle half of samples spans more than this
# share of the median, or its median is more than NOISY_MEDIAN_OVER_MIN times
# its fastest sample: other work on the machine took the time, not the call.
NOISY_IQR = 0.10
NOISY_MEDIAN_OVER_MIN = 1.5


class Spread:
    """The fastest, median and quartiles of one cell's samples (microseconds)."""

    def __init__(self, samples: Sequence[float]):
        ordered = sorted(samples)
        self.fastest = ordered[0]
        self.median = statistics.median(ordered)
        if len(ordered) >= 2:
            self.q1, _, self.q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            self.q1 = self.q3 = ordered[0]

    @property
    def relative_iqr(self) -> float:
        return (self.q3 - self.q1) / self.median

    @property
    def noisy(self) -> bool:
        return self.relative_iqr > NOISY_IQR or self.median > NOISY_MEDIAN_OVER_MIN * self.fastest

    def cell(self) -> str:
        """``fastest / median us, IQR %``, fixed width."""
        return f"{self.fastest:>8.1f} / {self.median:>8.1f} us {100 * self.relative_iqr:>4.0f}%"


def busy_warning() -> Optional[str]:
    """A line saying the machine is busy, when the 1-minute load average
    exceeds the CPUs this process may use, else None."""
    if not hasattr(os, "getloadavg"):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0]
    if load <= cpus:
        return None
    return (f"    the machine is busy (load average {load:.1f} on {cpus} CPUs): "
            "other work shares the cores, so the times below are not the kernels' own")


def _memory_cap(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return min(4 * 2**30, free // 2)
    return 2 * 2**30


def speed_table(device: torch.device, log=print) -> None:
    """safe_greedy against torch.argmax on a few serving shapes, cache-cold."""
    from safe_greedy import greedy_sample

    cold = cold_bytes(device)
    cap = _memory_cap(device)
    shapes = [(b, v) for v in TABLE_VOCABS for b in TABLE_BATCHES]
    need = 0
    for dtype in TABLE_DTYPES:
        itemsize = torch.empty((), dtype=dtype).element_size()
        for b, v in shapes:
            k = rotation_count(b * v * itemsize, cold, cap)
            need = max(need, rotation_pool_bytes(b * v * itemsize, k))
    pool = Pool(need, device)
    if device.type == "cuda":
        method = "CUDA-graph replay, time per call of each replay"
    else:
        method = f"wall clock of each call, {torch.get_num_threads()} threads"
    log(
        f"    {method}; inputs rotated over > {cold / 2**20:.0f} MiB "
        f"({COLD_FACTOR}x the {'L2' if device.type == 'cuda' else 'last-level cache'}), cold"
    )
    busy = busy_warning()
    if busy:
        log(busy)
    log(f"    {'dtype':5} {'batch':>5} {'vocab':>7}  {'safe_greedy: fastest / median, IQR':>34}  "
        f"{'torch.argmax: fastest / median, IQR':>35}  {'speed-up':>8} {'sg GB/s':>8}")
    noisy_rows = 0
    for dtype in TABLE_DTYPES:
        pool.fill(dtype)
        itemsize = torch.empty((), dtype=dtype).element_size()
        for b, v in shapes:
            nbytes = b * v * itemsize
            inputs = pool.views(dtype, b, v, rotation_count(nbytes, cold, cap))
            out = torch.empty(b, dtype=torch.int64, device=device)

            def ours(x, out=out):
                greedy_sample(out, x)
                return out

            def theirs(x):
                return torch.argmax(x, -1)

            if device.type == "cuda":
                s_ours = Spread(cuda_graph_samples(ours, inputs)[0])
                s_theirs = Spread(cuda_graph_samples(theirs, inputs)[0])
            else:
                s_ours = Spread(cpu_samples(ours, inputs, target_s=0.2))
                s_theirs = Spread(cpu_samples(theirs, inputs, target_s=0.2))
            noisy = s_ours.noisy or s_theirs.noisy
            noisy_rows += noisy
            log(
                f"    {_DTYPE_NAMES[dtype]:5} {b:>5} {v:>7}  {s_ours.cell():>34}  {s_theirs.cell():>35}  "
                f"{s_theirs.median / s_ours.median:>7.2f}x {nbytes / s_ours.median / 1e3:>8.1f}"
                + ("  NOISY" if noisy else "")
            )
            del inputs
    log(
        f"    speed-up and GB/s from the medians. IQR: the middle half of the samples, as a share of\n"
        f"    the median. NOISY: an IQR over {100 * NOISY_IQR:.0f}% or a median over {NOISY_MEDIAN_OVER_MIN}x the "
        f"fastest sample\n    on either side ({noisy_rows} of {len(TABLE_DTYPES) * len(shapes)} rows): "
        "other work shared the machine; rerun when it is idle."
    )
    del pool
