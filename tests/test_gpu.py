"""GPU-only behaviour: graphs, streams, sizes past 32-bit limits, split rows.

Everything here skips without CUDA (or ROCm). The GPU kernel splits a row
across several blocks when the batch is small and combines them through a
workspace (one per stream, or one per capture) that every launch
returns to zero; many tests below are
about that path (batch 1..64 at large vocab) surviving graph capture, replay,
several streams, and back-to-back calls. At large batch, short rows may share
a block instead; tests of many short rows cover that path. Sizes are chosen from the contract,
not from the kernel's tuning constants, so they stay meaningful if the launch
plan changes.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safe_greedy
from helpers import (
    BITS_DTYPE,
    INDEX_DTYPES,
    LAYOUTS,
    LOGIT_DTYPES,
    ROW_KINDS,
    SENTINEL,
    assert_argmax_result,
    assert_only_out_written,
    from_bits,
    make_rows,
    place,
    scaled_examples,
    strided_out,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA (or ROCm) device"),
]

DEVICE = "cuda"


@pytest.fixture(autouse=True)
def _release_memory():
    # Several tests allocate GBs; give them back so the next test has room.
    yield
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------
# Adversarial batches built on the device
# ---------------------------------------------------------------------------

# Row kinds for large batches. Built with vectorised ops (no per-row Python)
# so that thousands of rows of 150k logits are quick to make.
BATCH_KINDS = [
    "all_neg_inf", "all_nan", "sparse_nan", "tail_nan", "all_minus_1e30",
    "negative", "random", "ties", "late_ties", "tail_max", "late_zeros",
]  # fmt: skip

_NAN_FORMAT = {  # sign bit, exponent bits, largest payload
    torch.float32: (0x80000000, 0x7F800000, 0x7FFFFF),
    torch.float16: (0x8000, 0x7C00, 0x3FF),
    torch.bfloat16: (0x8000, 0x7F80, 0x7F),
}


def adversarial_batch(batch, vocab, dtype, device, seed, *, kind=None):
    """A [batch, vocab] tensor whose row r is of kind BATCH_KINDS[kinds[r]],
    kinds drawn at random (or all `kind`); returns (logits, kinds).

      all_neg_inf, all_nan (random signs and payloads), all_minus_1e30 (-inf in fp16)
      sparse_nan   random logits with a few NaNs anywhere
      tail_nan     random logits with one NaN in the last 15 elements
      negative     all logits below zero
      random       randn
      ties         values in {-3..1}: the maximum repeats from early on
      late_ties    negative logits; the maximum (1.0) repeats ~24 times, all
                   in the second half, so the first of them is far from 0
      tail_max     negative logits; the maximum in the last 15 elements
      late_zeros   negative logits; +0.0 and -0.0 (tied maxima) in the second half
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    kinds = torch.randint(0, len(BATCH_KINDS), (batch,), generator=gen, device=device)
    if kind is not None:
        kinds.fill_(BATCH_KINDS.index(kind))
    logits = torch.empty(batch, vocab, dtype=dtype, device=device)
    col = torch.arange(vocab, device=device)
    edge = min(15, vocab)
    sign, exponent, payload_max = _NAN_FORMAT[dtype]
    # Built a few million elements at a time to bound the temporaries.
    chunk_rows = max(1, 2**22 // vocab)
    for start in range(0, batch, chunk_rows):
        n = min(chunk_rows, batch - start)
        row_kind = kinds[start : start + n, None]
        is_ = lambda name: row_kind == BATCH_KINDS.index(name)  # noqa: E731
        x = torch.randn(n, vocab, generator=gen, device=device)
        negative = -(torch.rand(n, vocab, generator=gen, device=device) * 50 + 0.5)
        uniform = torch.rand(n, vocab, generator=gen, device=device)
        x = torch.where(is_("negative") | is_("late_ties") | is_("tail_max") | is_("late_zeros"), negative, x)
        x = torch.where(is_("all_neg_inf"), float("-inf"), x)
        x = torch.where(is_("all_minus_1e30"), -1e30, x)
        ties = torch.randint(-3, 2, (n, vocab), generator=gen, device=device).float()
        x = torch.where(is_("ties"), ties, x)
        second_half = col >= vocab // 2
        x = torch.where(is_("late_ties") & second_half & (uniform < 48.0 / vocab), 1.0, x)
        tail_pos = vocab - 1 - torch.randint(0, edge, (n, 1), generator=gen, device=device)
        x = torch.where(is_("tail_max") & (col == tail_pos), -0.25, x)
        positive = torch.rand(n, vocab, generator=gen, device=device) < 0.5
        zero = torch.where(positive, 0.0, -0.0)
        x = torch.where(is_("late_zeros") & second_half & (uniform < 32.0 / vocab), zero, x)
        y = x.to(dtype)

        # NaNs are written as bit patterns so that payloads and signs vary.
        nan_at = (
            is_("all_nan")
            | (is_("sparse_nan") & (uniform < 4.0 / vocab))
            | (is_("tail_nan") & (col == tail_pos))
        )
        payload = torch.randint(1, payload_max + 1, (n, vocab), generator=gen, device=device)
        negative_sign = torch.randint(0, 2, (n, vocab), generator=gen, device=device).bool()
        nan_bits = from_bits(exponent | payload | torch.where(negative_sign, sign, 0), dtype)
        y = torch.where(nan_at, nan_bits, y)
        logits[start : start + n].view(BITS_DTYPE[dtype]).copy_(y.view(BITS_DTYPE[dtype]))
    return logits, kinds


def run_greedy(logits, out_dtype=torch.int64):
    out = torch.full((logits.shape[0],), SENTINEL, dtype=out_dtype, device=logits.device)
    safe_greedy.greedy_sample(out, logits)
    return out


# ---------------------------------------------------------------------------
# CUDA graphs
# ---------------------------------------------------------------------------

GRAPH_CASES = [
    # (batch, vocab, dtype, layout): small batches at large vocab split rows.
    (1, 151936, torch.float32, "contiguous"),
    (3, 151666, torch.bfloat16, "padded"),
    (8, 32001, torch.float16, "contiguous"),
    (64, 4097, torch.bfloat16, "transposed"),
    (1024, 32001, torch.float32, "contiguous"),
]


@pytest.mark.parametrize("batch, vocab, dtype, layout", GRAPH_CASES, ids=str)
def test_graph_replay_follows_in_place_input_changes(batch, vocab, dtype, layout):
    inputs = [adversarial_batch(batch, vocab, dtype, DEVICE, seed)[0] for seed in range(4)]
    logits = place(inputs[0].cpu(), layout, DEVICE, poison="nan")
    out = torch.full((batch,), SENTINEL, dtype=torch.int64, device=DEVICE)

    # Warm up on a side stream, as the torch docs prescribe before capture.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            safe_greedy.greedy_sample(out, logits)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert_argmax_result(out, logits)

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        safe_greedy.greedy_sample(out, logits)

    # Each round: new logits in place, out reset, replay. A graph that baked
    # in the warm-up's answer, or a workspace left dirty by the previous
    # replay, shows up as a stale or SENTINEL result.
    for values in inputs[1:] + inputs[:1] + inputs[1:]:
        logits.copy_(values)
        out.fill_(SENTINEL)
        graph.replay()
        torch.cuda.synchronize()
        assert_argmax_result(out, logits)

    # Many replays back to back, no sync in between, then one check.
    logits.copy_(inputs[2])
    out.fill_(SENTINEL)
    for _ in range(50):
        graph.replay()
    torch.cuda.synchronize()
    assert_argmax_result(out, logits)


@pytest.mark.parametrize("batch, vocab, dtype, layout", GRAPH_CASES[:3], ids=str)
def test_graph_capture_without_warm_up_on_a_new_stream(batch, vocab, dtype, layout):
    """No warm-up: the first call on this stream is the captured one (the
    split-row path creates its workspace there). Streams come from
    torch's pool and may have been used before in this process, so the
    subprocess test below is the strict version."""
    values = [adversarial_batch(batch, vocab, dtype, DEVICE, seed)[0] for seed in (11, 12)]
    logits = place(values[0].cpu(), layout, DEVICE, poison="+inf")
    out = torch.full((batch,), SENTINEL, dtype=torch.int32, device=DEVICE)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=torch.cuda.Stream()):
        safe_greedy.greedy_sample(out, logits)
    torch.cuda.synchronize()
    assert bool((out == SENTINEL).all()), "capture must record the kernel, not run it"
    for v in values + values:
        logits.copy_(v)
        out.fill_(SENTINEL)
        graph.replay()
        torch.cuda.synchronize()
        assert_argmax_result(out, logits)


def run_in_new_process(script, **env_overrides):
    """Runs `script` in a fresh Python process that imports this safe_greedy,
    with `env_overrides` added to the environment; it must exit 0 and print
    ALL OK."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(safe_greedy.__file__)))
    env = dict(os.environ, **env_overrides)
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and "ALL OK" in proc.stdout, (
        f"exit code {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )


_FIRST_CALL_IN_CAPTURE = textwrap.dedent(
    """
    import sys
    import torch
    import safe_greedy

    SENTINEL = -12345
    torch.manual_seed(0)

    def nasty(batch, vocab, dtype, round_):
        x = torch.randn(batch, vocab, device="cuda")
        x[0] = [float("-inf"), float("nan"), -1e30, -3.0][round_ % 4]
        if batch > 1:
            x[1] -= 100.0                     # every logit negative
            x[1, vocab - 1 - round_] = -1.0   # the maximum in the tail
        if batch > 2:
            x[2, vocab - 3] = float("nan")    # NaN in the tail
        return x.to(dtype)

    # (logits dtype, out dtype, batch, vocab, transposed). The first case is
    # the first greedy_sample call of this process; each later one is the
    # first call of its kernel instantiation, each on a stream never used.
    cases = [
        (torch.float32, torch.int64, 2, 151936, False),
        (torch.bfloat16, torch.int32, 3, 4097, True),
        (torch.float16, torch.int64, 1, 32001, False),
        (torch.float32, torch.int32, 4096, 33, False),
        (torch.bfloat16, torch.int64, 5, 151666, False),
    ]
    for dtype, out_dtype, batch, vocab, transposed in cases:
        tag = f"{dtype} {out_dtype} {batch}x{vocab} transposed={transposed}"
        if transposed:
            logits = torch.empty(vocab, batch, dtype=dtype, device="cuda").t()
        else:
            logits = torch.empty(batch, vocab, dtype=dtype, device="cuda")
        logits.copy_(nasty(batch, vocab, dtype, 0))
        out = torch.full((batch,), SENTINEL, dtype=out_dtype, device="cuda")
        torch.cuda.synchronize()

        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream()):
            safe_greedy.greedy_sample(out, logits)
        torch.cuda.synchronize()
        # Capture records the kernel without running it.
        if not bool((out == SENTINEL).all()):
            print(f"{tag}: out written during capture: {out.tolist()[:8]}")
            sys.exit(1)

        for round_ in range(4):
            logits.copy_(nasty(batch, vocab, dtype, round_))
            out.fill_(SENTINEL)
            graph.replay()
            torch.cuda.synchronize()
            expected = torch.argmax(logits, -1)
            got = out.long()
            if not torch.equal(got, expected):
                rows = (got != expected).nonzero().flatten().tolist()[:8]
                print(f"{tag} round {round_}: rows {rows}: got {got[rows].tolist()} "
                      f"expected {expected[rows].tolist()}")
                sys.exit(1)
    print("ALL OK")
    """
)


def test_first_call_of_the_process_inside_graph_capture():
    """The very first call (lazy initialisation, workspace creation, kernel
    loading) happens while a fresh stream is being captured. This needs a
    process of its own: in this one, earlier tests already made those calls."""
    run_in_new_process(_FIRST_CALL_IN_CAPTURE)


def _sample(logits):
    out = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)
    safe_greedy.greedy_sample(out, logits)
    return out


def _argmax(logits):
    return safe_greedy.argmax(logits)


@pytest.mark.parametrize("fn", [_sample, _argmax], ids=["greedy_sample", "argmax"])
@pytest.mark.parametrize("batch, vocab, dtype", [(1, 151936, torch.float32), (256, 4097, torch.bfloat16)], ids=str)
def test_compile_reduce_overhead(fn, batch, vocab, dtype):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    skips_before = counters["inductor"]["cudagraph_skips"]
    compiled = torch.compile(fn, fullgraph=True, mode="reduce-overhead")
    logits = torch.empty(batch, vocab, dtype=dtype, device=DEVICE)
    # Warm-up, recording and several replays, each with new input values.
    for seed in range(6):
        torch.compiler.cudagraph_mark_step_begin()
        logits.copy_(adversarial_batch(batch, vocab, dtype, DEVICE, seed)[0])
        result = compiled(logits)
        assert_argmax_result(result, logits)  # read before the next replay reuses it
        del result
    assert counters["inductor"]["cudagraph_skips"] == skips_before, (
        "torch.compile(mode='reduce-overhead') did not use CUDA graphs for the op"
    )
    torch._dynamo.reset()


# ---------------------------------------------------------------------------
# Streams and devices
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch, vocab", [(2, 151936), (512, 4097)], ids=str)
def test_runs_on_the_current_stream(batch, vocab):
    """On a side stream, the logits are written after a long sleep and then
    sampled. Launched on the current stream, the kernel waits and sees the
    new logits; launched on any other stream it would run first and read the
    zeros that were there before (answer 0 for every row)."""
    source, _ = adversarial_batch(batch, vocab, torch.float32, DEVICE, seed=1)
    source[:, 0] = -1e6  # so that the stale answer (0) is wrong for finite rows
    logits = torch.zeros_like(source)
    out = torch.full((batch,), SENTINEL, dtype=torch.int64, device=DEVICE)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(100_000_000)
        logits.copy_(source)
        safe_greedy.greedy_sample(out, logits)
    stream.synchronize()
    assert_argmax_result(out, source)


@pytest.mark.parametrize("batch, vocab, dtype", [(1, 151936, torch.float32), (16, 151936, torch.bfloat16), (4096, 32001, torch.float16)], ids=str)
def test_reads_the_logits_the_kernel_before_it_wrote(batch, vocab, dtype):
    """On GPUs that allow it the kernel starts while the previous kernel in
    the stream is still running, and must wait for it before reading. Here
    the previous kernel is the copy that writes the logits, the last part of a
    larger buffer so that its last blocks write them, and the next call's
    logits differ from this one's; eagerly and in a graph, each answer must be
    of the logits just written. Back-to-back calls also share the split-row
    workspace, which must not be touched before the previous call is done."""
    sources = [adversarial_batch(batch, vocab, dtype, DEVICE, seed)[0] for seed in range(4)]
    expected = [torch.argmax(s, -1) for s in sources]
    staging = torch.zeros(8 * 2**20 + batch * vocab, dtype=dtype, device=DEVICE)
    staged_sources = [torch.cat([staging[: 8 * 2**20], s.flatten()]) for s in sources]
    logits = staging[8 * 2**20 :].view(batch, vocab)
    outs = [torch.full((batch,), SENTINEL, dtype=torch.int64, device=DEVICE) for _ in sources]

    def calls():
        for staged, out in zip(staged_sources, outs):
            staging.copy_(staged)
            safe_greedy.greedy_sample(out, logits)

    def check():
        torch.cuda.synchronize()
        for out, want in zip(outs, expected):
            assert torch.equal(out, want)
            out.fill_(SENTINEL)

    for _ in range(10):
        calls()
        check()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        calls()
    torch.cuda.current_stream().wait_stream(side)
    check()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        calls()
    for _ in range(10):
        graph.replay()
        check()


_EARLY_START_SETTING = textwrap.dedent(
    """
    import torch
    import safe_greedy

    torch.manual_seed(0)
    for batch, vocab in ((1, 151936), (5, 151666), (700, 4097)):
        for dtype in (torch.float32, torch.bfloat16):
            for round_ in range(3):
                x = torch.randn(batch, vocab, device="cuda").to(dtype)
                x[0, vocab - 1 - round_] = float("nan")
                out = torch.empty(batch, dtype=torch.int64, device="cuda")
                safe_greedy.greedy_sample(out, x)
                assert torch.equal(out, torch.argmax(x, -1)), (batch, vocab, dtype, round_)
    print("ALL OK")
    """
)


@pytest.mark.parametrize("setting", ["0", "1"])
def test_with_early_start_on_and_off(setting):
    """SAFE_GREEDY_PDL=0 launches without programmatic dependent launch (the
    path every GPU before compute capability 9.0 takes); it is read once per
    process, so each setting gets a process of its own."""
    run_in_new_process(_EARLY_START_SETTING, SAFE_GREEDY_PDL=setting)


def test_concurrent_streams_do_not_share_split_row_state():
    """Split-row calls queued on two streams run interleaved; each stream's
    rows must combine only with themselves. The two inputs have their maxima
    at different places with different values, so any mixing shows."""
    vocab = 151936
    first = torch.full((1, vocab), -1.0, device=DEVICE)
    first[0, 100_000] = 5.0
    second = torch.full((1, vocab), -2.0, device=DEVICE)
    second[0, 7] = 1.0
    second[0, 120_000] = 1.0
    calls = 50
    out_first = torch.full((calls, 1), SENTINEL, dtype=torch.int64, device=DEVICE)
    out_second = torch.full((calls, 1), SENTINEL, dtype=torch.int32, device=DEVICE)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    for s in streams:
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            torch.cuda._sleep(20_000_000)  # let both queues fill before either runs
    for i in range(calls):
        with torch.cuda.stream(streams[0]):
            safe_greedy.greedy_sample(out_first[i], first)
        with torch.cuda.stream(streams[1]):
            safe_greedy.greedy_sample(out_second[i], second)
    torch.cuda.synchronize()
    assert out_first.flatten().tolist() == [100_000] * calls
    assert out_second.flatten().tolist() == [7] * calls


def _two_sources_with_distinct_maxima(batch, vocab, dtype):
    """Two [batch, vocab] inputs whose rows have their maxima (1.0) in
    different places: the first at 100000 (mod vocab) + row, the second tied
    at 7 + row and vocab - 1 - row. Returns the inputs and torch's answers;
    a combine that mixes the two shows in the first input's rows, since the
    second's first maximum has the lower index."""
    places = (lambda r: (100_000 % vocab + r,), lambda r: (7 + r, vocab - 1 - r))
    sources = []
    for base, place_max in zip((-1.0, -2.0), places):
        logits = torch.full((batch, vocab), base, dtype=dtype, device=DEVICE)
        for r in range(batch):
            for i in place_max(r):
                logits[r, i] = 1.0
        sources.append(logits)
    return sources, [torch.argmax(s, -1) for s in sources]


@pytest.mark.parametrize(
    "batch, vocab, dtype",
    [
        (1, 600000, torch.float32),
        (1, 151936, torch.float32),
        (4, 151936, torch.bfloat16),
        (16, 32000, torch.float32),
    ],
    ids=str,
)
def test_graphs_captured_on_one_stream_replay_concurrently(batch, vocab, dtype):
    """Graphs captured one after another on the same stream, then replayed
    at once on two streams: every call's split rows must combine with their
    own blocks only. Each capture holds a workspace of its own; sharing one,
    the two streams' blocks would max keys into each other's rows (the fenced
    combine) or take each other's tickets (the combine by collection).
    The shapes cover both combines (1x600000 fp32, split over 147 items on
    an H100, the fenced one; the others collection). 74f83ec's one workspace
    per stream fails this test."""
    sources, expected = _two_sources_with_distinct_maxima(batch, vocab, dtype)
    graphs_per_source, calls_per_graph = 6, 8
    outs = [
        torch.full((graphs_per_source, calls_per_graph, batch), SENTINEL, dtype=torch.int64, device=DEVICE)
        for _ in sources
    ]
    capture_stream = torch.cuda.Stream()
    graphs = [[], []]
    for g in range(graphs_per_source):
        for which, logits in enumerate(sources):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=capture_stream):
                for c in range(calls_per_graph):
                    safe_greedy.greedy_sample(outs[which][g, c], logits)
            graphs[which].append(graph)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    for rounds in range(3):
        for s in streams:
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                torch.cuda._sleep(20_000_000)  # let both queues fill before either runs
        for g in range(graphs_per_source):
            for which, s in enumerate(streams):
                with torch.cuda.stream(s):
                    graphs[which][g].replay()
        torch.cuda.synchronize()
        for which in range(2):
            want = expected[which].expand(graphs_per_source, calls_per_graph, batch)
            assert torch.equal(outs[which], want), f"round {rounds}, source {which}"
            outs[which].fill_(SENTINEL)


def test_forked_streams_of_one_capture_do_not_share_split_row_state():
    """A capture that forks onto a second stream: on replay the two
    branches' calls may run at the same time, so each captured stream needs
    a workspace of its own within the one graph (a workspace per capture
    alone would fail this; per stream, as before captures had their own,
    passes it too)."""
    batch, vocab = 4, 151936
    sources, expected = _two_sources_with_distinct_maxima(batch, vocab, torch.bfloat16)
    calls = 8
    outs = [torch.full((calls, batch), SENTINEL, dtype=torch.int64, device=DEVICE) for _ in sources]
    main, branch = torch.cuda.Stream(), torch.cuda.Stream()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=main):
        branch.wait_stream(main)
        for which, s in enumerate((main, branch)):
            with torch.cuda.stream(s):
                torch.cuda._sleep(1_000_000)  # both branches queue behind a wait
                for c in range(calls):
                    safe_greedy.greedy_sample(outs[which][c], sources[which])
        main.wait_stream(branch)
    for _ in range(5):
        graph.replay()
        torch.cuda.synchronize()
        for which in range(2):
            assert torch.equal(outs[which], expected[which].expand(calls, batch)), f"branch {which}"
            outs[which].fill_(SENTINEL)


def test_graph_workspaces_stay_clean_across_graph_lifetimes():
    """A destroyed graph's workspaces go back to a pool that later captures
    draw from (the driver returns them asynchronously, so whether a given
    capture here reuses one is not checked; the next test checks reuse over
    thousands of captures), so a workspace may serve many
    graphs in turn; each capture here must answer as if its workspace were new. Shapes of both split-row
    combines, graphs destroyed in a different order from their capture."""
    import gc

    # 1x600000 fp32 is the fenced combine (147 items on an H100), the others collection.
    shapes = [(1, 600000, torch.float32), (4, 151936, torch.bfloat16), (8, 262144, torch.float16)]
    for round_ in range(4):
        live = []
        for k, (batch, vocab, dtype) in enumerate(shapes):
            logits, _ = adversarial_batch(batch, vocab, dtype, DEVICE, seed=round_ * 10 + k)
            out = torch.full((batch,), SENTINEL, dtype=torch.int64, device=DEVICE)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=torch.cuda.Stream()):
                safe_greedy.greedy_sample(out, logits)
            for _ in range(3):
                out.fill_(SENTINEL)
                graph.replay()
                torch.cuda.synchronize()
                assert_argmax_result(out, logits)
            live.append(graph)
        order = [1, 0, 2] if round_ % 2 else [2, 1, 0]
        for i in order:
            live[i] = None
            gc.collect()
        torch.cuda.synchronize()


@pytest.mark.whole_device
def test_destroyed_graphs_give_their_workspaces_back_for_reuse():
    """Capturing and destroying thousands of graphs of a split row holds
    device memory flat: each capture draws its workspace from those that
    destroyed graphs gave back. A capture that allocated a new workspace each
    time would take a few kilobytes per graph (12 bytes a slot, a slot for
    each of the most items a split launch can have), about 28 MB here on an
    H100 (a build that never reused them, whose workspaces were two thirds
    the size, took 18.0 MiB and failed this test); the driver's memory is
    measured, as the workspaces do not come from torch's allocator."""
    captures = 4000
    logits, _ = adversarial_batch(1, 151936, torch.float32, DEVICE, seed=5)
    out = torch.full((1,), SENTINEL, dtype=torch.int64, device=DEVICE)
    stream = torch.cuda.Stream()

    def capture_replay_destroy():
        graph = torch.cuda.CUDAGraph()
        # capture_begin/end instead of torch.cuda.graph: no garbage
        # collection or cache emptying per capture, which would take minutes.
        with torch.cuda.stream(stream):
            graph.capture_begin()
            safe_greedy.greedy_sample(out, logits)
            graph.capture_end()
        graph.replay()
        del graph
        torch.cuda.synchronize()

    for _ in range(10):  # the first workspaces, and whatever the driver keeps after a first graph
        capture_replay_destroy()
    free_before, _ = torch.cuda.mem_get_info()
    for _ in range(captures):
        capture_replay_destroy()
    free_after, _ = torch.cuda.mem_get_info()
    assert free_before - free_after < 4 * 2**20, (
        f"{captures} captures took {(free_before - free_after) / 2**20:.1f} MiB of device memory"
    )
    out.fill_(SENTINEL)
    capture_replay_destroy()
    assert_argmax_result(out, logits)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("batch, vocab", [(1, 151936), (300, 4097)], ids=str)
def test_logits_on_a_gpu_that_is_not_the_current_one(batch, vocab):
    assert torch.cuda.current_device() == 0
    logits, _ = adversarial_batch(batch, vocab, torch.bfloat16, "cuda:1", seed=3)
    out = run_greedy(logits)
    torch.cuda.synchronize("cuda:1")
    assert out.device == logits.device
    assert_argmax_result(out, logits)


# ---------------------------------------------------------------------------
# Sizes past the 16- and 32-bit limits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch, vocab, dtype, layout",
    [
        (70000, 33, torch.float32, "contiguous"),
        (70000, 4097, torch.bfloat16, "contiguous"),
        (70000, 33, torch.float16, "transposed"),
        (70000, 17, torch.float32, "padded"),
    ],
    ids=str,
)
def test_more_rows_than_a_grid_dimension_allows(batch, vocab, dtype, layout):
    # 70000 > 65535, the limit of gridDim.y and gridDim.z.
    values, _ = adversarial_batch(batch, vocab, dtype, DEVICE, seed=batch + vocab)
    if layout != "contiguous":
        values = place(values, layout, DEVICE, poison="nan")
    for out_dtype in INDEX_DTYPES:
        assert_argmax_result(run_greedy(values, out_dtype), values)


def _huge_strided_logits(dtype, rows, vocab, row_stride, column_stride):
    """A [rows, vocab] view with the given strides into one NaN-filled buffer
    just big enough for it; the rows get distinct adversarial contents."""
    elements = (rows - 1) * row_stride + (vocab - 1) * column_stride + 1
    storage = torch.empty(elements, dtype=dtype, device=DEVICE)
    # NaN everywhere outside the view: a read at a wrong offset wins the argmax.
    storage.view(BITS_DTYPE[dtype]).fill_(0x7FC0 if dtype != torch.float32 else 0x7FC00000)
    logits = storage.as_strided((rows, vocab), (row_stride, column_stride))
    kinds = ["negative", "tail_max", "all_neg_inf", "head_max", "sparse_nan", "random", "lone_finite"]
    values = make_rows([kinds[r % len(kinds)] for r in range(rows)], vocab, dtype, seed=rows + vocab)
    logits.view(BITS_DTYPE[dtype]).copy_(values.view(BITS_DTYPE[dtype]).to(DEVICE))
    return logits, storage


@pytest.mark.parametrize(
    "dtype, vocab, rows",
    [(torch.bfloat16, 4097, 6), (torch.bfloat16, 151936, 5), (torch.float32, 4097, 5)],
    ids=str,
)
def test_row_offsets_past_2_to_the_31(dtype, vocab, rows):
    """batch * row_stride > 2**31 elements (and bytes): the last rows start
    past what a 32-bit offset can address. ~4.3-10.7 GB."""
    row_stride = 2**31 // 4 + 17
    assert (rows - 1) * row_stride > 2**31 - 1
    logits, storage = _huge_strided_logits(dtype, rows, vocab, row_stride, 1)
    for out_dtype in INDEX_DTYPES:
        assert_argmax_result(run_greedy(logits, out_dtype), logits)
    del logits, storage


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_column_offsets_past_2_to_the_31(dtype):
    """A vocab stride so large that the last column of a row is more than 2**31
    elements from its first (the strided, non-vector path). ~4.3-8.6 GB."""
    vocab, rows = 5, 3
    column_stride = 2**29 + 3
    assert (vocab - 1) * column_stride > 2**31 - 1
    logits, storage = _huge_strided_logits(dtype, rows, vocab, 1, column_stride)
    assert_argmax_result(run_greedy(logits), logits)
    del logits, storage


# ---------------------------------------------------------------------------
# Adversarial batches and the split-row path
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("vocab", [151666, 4097, 129280])
def test_thousands_of_adversarial_rows(vocab, dtype):
    logits, kinds = adversarial_batch(4096, vocab, dtype, DEVICE, seed=vocab)
    # Every kind is present (so the test covers what it says).
    assert torch.unique(kinds).numel() == len(BATCH_KINDS)
    for out_dtype in INDEX_DTYPES:
        assert_argmax_result(run_greedy(logits, out_dtype), logits)


def check_adversarial_batches(batch, vocab, dtype, seeds, kinds, *, kind_batch):
    """Back-to-back calls on one device: an adversarial [batch, vocab] batch
    of mixed row kinds per seed, checked with every index dtype, then a
    [kind_batch, vocab] batch of each of `kinds` (seeded by `batch`)."""
    for seed in seeds:
        logits, _ = adversarial_batch(batch, vocab, dtype, DEVICE, seed=seed)
        for out_dtype in INDEX_DTYPES:
            assert_argmax_result(run_greedy(logits, out_dtype), logits)
    for kind in kinds:
        logits, _ = adversarial_batch(kind_batch, vocab, dtype, DEVICE, seed=batch, kind=kind)
        assert_argmax_result(run_greedy(logits), logits)


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("batch", [1, 2, 3, 8, 64, 128, 256, 512, 1024])
def test_split_row_batch_sizes_at_151936(batch, dtype):
    """Small batches at a large vocab split each row over many blocks. Ties
    and NaNs spread over the row (late_ties, late_zeros, sparse_nan) make the
    cross-block combine decide the answer. Several seeds, so every kind of
    row also lands in the single-row batch; back-to-back calls check that
    the combine state is clean for the next call. The larger batches reach
    the other block sizes of the launch plan (one block per row, in wide,
    standard or narrow blocks, depending on the GPU's size)."""
    seeds = [seed * 1000 + batch for seed in range(4 if batch < 64 else 2)]
    # Every kind at batch 1, one after another.
    check_adversarial_batches(batch, 151936, dtype, seeds, BATCH_KINDS, kind_batch=1)


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("dtype, vocab", [(torch.float32, 600000), (torch.bfloat16, 1100000)], ids=str)
def test_rows_longer_than_any_vocabulary_at_small_batch(batch, vocab, dtype):
    """Rows of 0.6-1.1 million logits, longer than any model's vocabulary,
    at batch 1-3: split into so many items that their keys are combined by
    the other of the kernel's two combines (fenced atomics; rows of real
    vocabularies are collected). Ties, NaNs and -inf rows make the combine
    decide; back-to-back calls check that it leaves its state clean."""
    seeds = [seed * 10 + batch for seed in range(3)]
    kinds = ("late_ties", "sparse_nan", "all_neg_inf")
    check_adversarial_batches(batch, vocab, dtype, seeds, kinds, kind_batch=batch)


@pytest.mark.parametrize("offset", [1, 2, 3])
def test_split_row_whose_last_item_is_cut_short(offset):
    """A row that starts off a 128-byte boundary has fewer whole aligned
    vectors than its length suggests; its elements before the boundary are
    read one at a time by the first item. An fp32 row of 263172 at batch 1
    is split into many items, which take turns over strips of 256 vectors
    (the width of a standard block): 257 strips, the last cut to 249 vectors
    by the 1-3 elements before the boundary. The maximum sits three from the
    end: in the last whole vector, the last one that strip's predicated
    loads may read (offsets 1 and 2), or in the tail after it, read one
    element at a time (offset 3)."""
    vocab = 263172
    storage = torch.randn(vocab + offset, device=DEVICE)
    logits = storage[offset:].view(1, vocab)
    logits[0, -3] = 1e30
    for out_dtype in INDEX_DTYPES:
        result = run_greedy(logits, out_dtype)
        assert_argmax_result(result, logits)
        assert result.item() == vocab - 3


@settings(max_examples=scaled_examples(0.5))
@given(
    dtype=st.sampled_from(LOGIT_DTYPES),
    batch=st.integers(1, 4),
    vocab=st.integers(40000, 270000),
    offset=st.integers(0, 7),
    strip_vectors=st.sampled_from([32, 64, 128, 256, 512]),
    strips=st.lists(st.integers(0, 2100), min_size=1, max_size=6),
    shift=st.integers(-70, 70),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_row_ties_where_interleaved_items_meet(
    dtype, batch, vocab, offset, strip_vectors, strips, shift, seed
):
    """Small batches at a large vocab split each row into items that take
    turns over strips of the row, a block's width of 16-byte vectors each.
    Tied maxima around the starts of strips (for several block widths, in
    rows starting anywhere in a cache line) put the answer's rivals in
    different items, so the combine across items decides it: the first
    must win."""
    elements_per_strip = strip_vectors * (16 // dtype.itemsize)
    g = torch.Generator().manual_seed(seed)
    storage = torch.randn(batch, vocab + offset, generator=g).to(dtype)
    logits = storage.to(DEVICE)[:, offset:]
    for strip in strips:
        logits[:, min(max(strip * elements_per_strip + shift, 0), vocab - 1)] = 1e4
    assert_argmax_result(run_greedy(logits), logits)


# Two rivals for a row's answer: (value at the earlier position, value at the
# later one, which of the two must win).
_RIVALS = {
    "ties": (2.0, 2.0, 0),
    "signed_zeros": (-0.0, 0.0, 0),
    "later_greater": (1.0, 2.0, 1),
    "nan_after_inf": (float("inf"), float("nan"), 1),
    "two_nans": (float("nan"), float("nan"), 0),
    "neg_inf_ties": (float("-inf"), float("-inf"), 0),
}


@settings(max_examples=scaled_examples(0.5))
@given(
    dtype=st.sampled_from(LOGIT_DTYPES),
    batch_vocab=st.sampled_from(
        [(1, 151936), (2, 262144), (8, 32000), (64, 40960), (130, 32000), (300, 4096), (2500, 3072)]
    ),
    rivals=st.sampled_from(sorted(_RIVALS)),
    position=st.integers(0, 2**20),
    strip_vectors=st.sampled_from([32, 128, 256, 512]),
    apart=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_rivals_in_two_vectors_of_one_thread(dtype, batch_vocab, rivals, position, strip_vectors,
                                             apart, seed):
    """A thread compares the 16-byte vectors it reads by their greatest value
    alone, keeps the first holding its greatest so far, and only at the end
    finds which element of that vector it is. Two rivals for the answer sit a
    whole number of strips apart (a strip: a block's width of vectors, for
    several block widths), so for some launch plan they are read by one
    thread. The rest of the row is lower (or, for -inf ties, all -inf), rows
    are whole 128-byte lines, and each row places the rivals one element
    further on."""
    batch, vocab = batch_vocab
    earlier, later, winner = _RIVALS[rivals]
    distance = apart * strip_vectors * (16 // dtype.itemsize)
    g = torch.Generator().manual_seed(seed)
    if rivals == "neg_inf_ties":
        logits = torch.full((batch, vocab), float("-inf"))
    else:
        logits = -(torch.rand(batch, vocab, generator=g) + 1)  # all in [-2, -1)
    rows = torch.arange(batch)
    first = (position + rows) % max(vocab - distance, 1)
    second = torch.clamp(first + distance, max=vocab - 1)
    logits[rows, second] = later
    logits[rows, first] = earlier
    logits = logits.to(dtype).to(DEVICE)
    result = run_greedy(logits)
    assert_argmax_result(result, logits)
    if distance < vocab:
        expected = (second if winner else first).to(result.dtype)
        if rivals == "neg_inf_ties":
            expected = torch.zeros_like(expected)  # every element ties: the first
        assert torch.equal(result.cpu(), expected)


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("batch, vocab", [(1, 40000), (3, 40000), (300, 4001), (2000, 4097)], ids=str)
def test_rows_starting_anywhere_in_a_cache_line(batch, vocab, dtype):
    """The kernel reads a row's elements before its first 128-byte boundary
    one at a time and the rest as line-aligned vectors. Rows start at every
    element offset within a line (consecutive rows one element further on),
    with the maximum tied at positions on both sides of the boundary, or a
    NaN just before or after it, so a head read twice, skipped or visited out
    of order changes the answer. Split rows, whole rows and rows sharing a
    block."""
    line = 128 // dtype.itemsize
    stride = vocab + 1
    gen = torch.Generator().manual_seed(batch * 7 + vocab)
    # A batch of at least `line` rows covers every offset in one tensor.
    for start in range(line if batch < line else 1):
        storage = torch.randn(start + batch * stride, generator=gen).to(dtype)
        logits = storage[start:].view(batch, stride)[:, :vocab]
        for r in range(batch):
            head = (line - (start + r * stride) % line) % line  # elements before the boundary
            case = (start + r) % 4
            if case == 0:  # ties straddling the boundary: the first must win
                for i in (max(head - 1, 0), head, head + 1, vocab - 1):
                    logits[r, i] = 100.0
            elif case == 1:  # the first of two ties inside the head
                logits[r, head // 2] = 100.0
                logits[r, max(head - 1, 0)] = 100.0
            elif case == 2:  # a NaN just before the boundary, a larger value after
                logits[r, max(head - 1, 0)] = float("nan")
                logits[r, head + 3] = 1e4
            else:  # a NaN just after it, an infinity in the head
                logits[r, head] = float("nan")
                logits[r, max(head - 2, 0)] = float("inf")
        # A fresh allocation starts on a line, so row r's head is as computed.
        on_device = storage.to(DEVICE)[start:].view(batch, stride)[:, :vocab]
        for out_dtype in INDEX_DTYPES:
            assert_argmax_result(run_greedy(on_device, out_dtype), on_device)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_split_row_path_with_strided_layouts(layout, batch):
    values, _ = adversarial_batch(batch, 151936, torch.bfloat16, "cpu", seed=batch)
    logits = place(values, layout, DEVICE, poison="nan", pad=7, offset=3)
    out, buffer = strided_out(batch, torch.int32, DEVICE, stride=2, offset=1, pad=3)
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)
    assert_only_out_written(buffer, out)


# ---------------------------------------------------------------------------
# Short rows at large batch
# ---------------------------------------------------------------------------

# More rows than several waves of blocks hold on any current GPU, and odd, so
# that a launch packing several short rows into each block has groups to spare
# in its last block.
MANY_ROWS = 20001


def _check_many_short_rows(vocab, dtype, layout, seed, *, offset=3, pad=5):
    values, _ = adversarial_batch(MANY_ROWS, vocab, dtype, DEVICE, seed=seed)
    logits = place(values, layout, DEVICE, poison="nan", pad=pad, offset=offset)
    out, buffer = strided_out(MANY_ROWS, torch.int32, DEVICE, stride=2, offset=1, pad=3)
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)
    assert_only_out_written(buffer, out)


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("vocab", [1, 7, 9, 33, 1000, 3072, 4096, 4097])
@pytest.mark.parametrize("layout", ["contiguous", "padded", "offset"])
def test_short_rows_at_large_batch(vocab, dtype, layout):
    """Rows of a few thousand logits at a batch of many waves, where a block
    may read several whole rows: rows shorter than one 16-byte vector, rows of
    an odd length starting at every alignment (padded), and rows around the
    lengths where the launcher's choice could change."""
    _check_many_short_rows(vocab, dtype, layout, seed=vocab)


@settings(max_examples=scaled_examples(0.15))
@given(
    vocab=st.integers(1, 4500),
    dtype=st.sampled_from(LOGIT_DTYPES),
    layout=st.sampled_from(["contiguous", "padded", "offset"]),
    offset=st.integers(0, 9),
    pad=st.integers(0, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_short_rows_at_large_batch_any_shape(vocab, dtype, layout, offset, pad, seed):
    _check_many_short_rows(vocab, dtype, layout, seed, offset=offset, pad=pad)


# ---------------------------------------------------------------------------
# CPU and CUDA agree
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("batch, vocab", [(2, 151666), (64, 151936), (512, 4097), (37, 33), (5, 1)], ids=str)
def test_cpu_and_cuda_give_identical_results(batch, vocab, dtype):
    values, _ = adversarial_batch(batch, vocab, dtype, "cpu", seed=batch * vocab)
    on_cpu = run_greedy(values)
    on_gpu = run_greedy(values.to(DEVICE))
    assert torch.equal(on_cpu, on_gpu.cpu()), (on_cpu, on_gpu)
    assert_argmax_result(on_cpu, values)


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cpu_and_cuda_agree_on_every_row_kind(dtype, layout):
    values = make_rows(ROW_KINDS * 3, 32001, dtype, seed=17)
    on_cpu = run_greedy(place(values, layout, "cpu", poison="+inf"))
    on_gpu = run_greedy(place(values, layout, DEVICE, poison="+inf"))
    assert torch.equal(on_cpu, on_gpu.cpu())
    assert_argmax_result(on_gpu, values.to(DEVICE))


# ---------------------------------------------------------------------------
# Steady state: no allocation, no host sync
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch, vocab, dtype", [(1, 151936, torch.float32), (2048, 4097, torch.bfloat16), (4, 32001, torch.float16)], ids=str)
def test_no_allocation_in_steady_state(batch, vocab, dtype):
    logits, _ = adversarial_batch(batch, vocab, dtype, DEVICE, seed=5)
    out = torch.full((batch,), SENTINEL, dtype=torch.int64, device=DEVICE)
    for _ in range(3):  # warm-up: any one-time setup happens here
        safe_greedy.greedy_sample(out, logits)
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()["allocation.all.allocated"]
    for _ in range(10):
        safe_greedy.greedy_sample(out, logits)
    torch.cuda.synchronize()
    after = torch.cuda.memory_stats()["allocation.all.allocated"]
    assert after == before, f"{after - before} allocations in 10 calls"
    assert_argmax_result(out, logits)


def test_no_host_sync_in_steady_state():
    # torch's sync debug mode raises on any synchronising call made through
    # torch (e.g. .item(), a blocking copy) while the op runs.
    logits, _ = adversarial_batch(2, 151936, torch.float32, DEVICE, seed=6)
    out = torch.full((2,), SENTINEL, dtype=torch.int64, device=DEVICE)
    safe_greedy.greedy_sample(out, logits)  # warm-up
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            safe_greedy.greedy_sample(out, logits)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()
    assert_argmax_result(out, logits)
