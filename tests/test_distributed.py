"""safe_greedy.distributed: the exact argmax of a vocab-parallel row, one all-reduce of keys.

Three layers:
- the key algebra, in one process: the max of the shards' keys, for any cut of
  the row, any padding, and any order and grouping of the reduction, names
  torch.argmax of the full row (hypothesis);
- the ops as torch sees them (opcheck, argument errors raised before any
  collective, the in-place write);
- real process groups over gloo with 2, 3 and 4 ranks (tests/distributed_worker.py,
  one group per world size running all its cases), and on a GPU the CUDA
  kernels, CUDA graph capture and a one-rank NCCL group; with 2, 3, 4 and 8
  GPUs, NCCL groups of that many ranks, one GPU a rank (skipped where fewer
  GPUs are present).
"""

import multiprocessing
import os
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import safe_greedy.distributed as sgd
from helpers import LOGIT_DTYPES, from_bits, requires_cuda

NAN, INF = float("nan"), float("inf")
EMPTY_KEY = -(2**63)


# ---------------------------------------------------------------------------
# The key algebra, in one process


def shard_keys(full: torch.Tensor, cuts, vocab_size, pass_vocab_size=True):
    """Every shard's keys for the row cut at `cuts` (sorted global column numbers)."""
    bounds = list(zip([0] + cuts, cuts + [full.shape[1]]))
    return [
        sgd.local_keys(full[:, lo:hi], vocab_offset=lo, vocab_size=vocab_size if pass_vocab_size else None)
        for lo, hi in bounds
    ]


def reduce_in_random_groups(keys, rnd: random.Random) -> torch.Tensor:
    """The signed max of the keys, combined two at a time in a random order and grouping."""
    keys = list(keys)
    while len(keys) > 1:
        a = keys.pop(rnd.randrange(len(keys)))
        b = keys.pop(rnd.randrange(len(keys)))
        keys.append(torch.maximum(a, b))
    return keys[0]


SPECIAL_BITS = [
    0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF, 0x7FA00000,  # NaNs: quiet, negative, signalling, payloads
    0x7F800000, 0xFF800000,  # +inf, -inf
    0x00000000, 0x80000000,  # +0.0, -0.0
    0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x80000001,  # largest finite, smallest subnormal, both signs
    0x3F800000, 0xBF800000, 0x40000000,  # 1, -1, 2
]


@st.composite
def sharded_rows(draw):
    dtype = draw(st.sampled_from(LOGIT_DTYPES))
    batch = draw(st.integers(1, 3))
    vocab = draw(st.integers(1, 200))
    # A few distinct values make ties and NaN collisions across shards likely.
    pool = draw(st.lists(st.sampled_from(SPECIAL_BITS) | st.integers(0, 2**32 - 1), min_size=1, max_size=6))
    bits = draw(st.lists(st.sampled_from(pool), min_size=batch * vocab, max_size=batch * vocab))
    padding = draw(st.integers(0, 9))
    fill = draw(st.sampled_from([0x7F800000, 0x7FC00000, 0x7F7FFFFF]))  # padding that would win if read
    real = from_bits(torch.tensor(bits), torch.float32).reshape(batch, vocab)
    full = torch.cat([real, from_bits(torch.full((batch, padding), fill), torch.float32)], dim=1).to(dtype)
    cuts = sorted(draw(st.lists(st.integers(0, vocab + padding), max_size=7)))
    return full, vocab, cuts


@given(sharded_rows(), st.randoms(use_true_random=False), st.booleans())
def test_max_of_the_shards_keys_names_the_argmax_of_the_full_row(case, rnd, pass_vocab_size):
    full, vocab, cuts = case
    pass_vocab_size = pass_vocab_size or full.shape[1] > vocab  # padding needs vocab_size
    keys = shard_keys(full, cuts, vocab, pass_vocab_size)
    got = sgd.keys_to_tokens(reduce_in_random_groups(keys, rnd))
    assert torch.equal(got, torch.argmax(full[:, :vocab], -1))
    # The key of the row taken whole is the max too, whichever way it was reached.
    whole = sgd.local_keys(full, vocab_offset=0, vocab_size=vocab)
    assert torch.equal(torch.stack(keys).amax(0), whole)


def test_keys_order_as_documented():
    row = torch.tensor([[-INF, -INF], [1.0, 2.0], [NAN, INF], [-0.0, 0.0]])
    keys = sgd.local_keys(row, vocab_offset=5).tolist()
    empty = sgd.local_keys(row[:, :0], vocab_offset=0).tolist()
    padding_only = sgd.local_keys(row, vocab_offset=5, vocab_size=5).tolist()
    assert empty == padding_only == [EMPTY_KEY] * 4
    # An all -inf row's key is above the empty key; a NaN's is above +inf's.
    assert all(k > EMPTY_KEY for k in keys)
    inf_key = sgd.local_keys(row[2:3, 1:], vocab_offset=6).item()
    assert keys[2] > inf_key > keys[1]
    # -0.0 at global 5 beats +0.0 at global 6: equal values, lower index.
    assert keys[3] > sgd.local_keys(row[3:, 1:], vocab_offset=6).item()
    assert sgd.keys_to_tokens(torch.tensor(keys)).tolist() == [5, 6, 5, 5]
    assert sgd.keys_to_tokens(torch.tensor(empty)).tolist() == [-1] * 4


def test_largest_vocabulary_indices_survive_the_key():
    row = torch.tensor([[1.0, 3.0, 2.0]])
    last = 2**31 - 4  # global columns 2^31 - 4 .. 2^31 - 2, the last index of the largest vocabulary
    assert sgd.keys_to_tokens(sgd.local_keys(row, vocab_offset=last)).item() == last + 1
    with pytest.raises(RuntimeError, match="at most 2\\^31 - 1"):
        sgd.local_keys(row, vocab_offset=last + 1)
    # Padding past the limit is fine: it is never read as a token.
    assert sgd.local_keys(row, vocab_offset=last + 1, vocab_size=last + 3).item() != EMPTY_KEY


# ---------------------------------------------------------------------------
# The ops as torch sees them


@pytest.mark.parametrize("dtype", LOGIT_DTYPES)
def test_opcheck(dtype):
    shard = torch.randn(4, 130).to(dtype)[:, 3:101]
    torch.library.opcheck(torch.ops.safe_greedy.local_keys, (shard, 1000, 90))
    torch.library.opcheck(torch.ops.safe_greedy.local_keys, (shard, 1000, 0))
    keys = sgd.local_keys(shard, vocab_offset=1000)
    for out_dtype in (torch.int32, torch.int64):
        out = torch.full((8,), -7, dtype=out_dtype)[::2]
        torch.library.opcheck(torch.ops.safe_greedy.write_tokens, (out, keys))


def test_local_keys_returns_a_fresh_tensor():
    # Like torch's functional ops, whose results start at version 0: the keys'
    # own argmax is written without counting a write nobody could have seen.
    keys = torch.ops.safe_greedy.local_keys(torch.randn(3, 9), 2, 9)
    assert keys._version == 0 and torch.argmax(torch.randn(3, 9), -1)._version == 0


def test_write_tokens_counts_its_write_and_may_write_over_the_keys():
    keys = sgd.local_keys(torch.randn(3, 9), vocab_offset=2)
    expected = sgd.keys_to_tokens(keys)
    out = torch.zeros(3, dtype=torch.int32)
    version = out._version
    torch.ops.safe_greedy.write_tokens(out, keys)
    assert out._version == version + 1 and torch.equal(out.long(), expected)
    torch.ops.safe_greedy.write_tokens(keys, keys)  # each entry read before it is written
    assert torch.equal(keys, expected)


BAD_CALLS = [
    # (what is wrong, out, shard, kwargs, exception, message)
    ("1-D shard", torch.zeros(4, dtype=torch.int64), torch.randn(4), {}, RuntimeError, "2-D"),
    ("int shard", torch.zeros(4, dtype=torch.int64), torch.zeros(4, 3, dtype=torch.int32), {}, RuntimeError, "float32"),
    ("float64 shard", torch.zeros(4, dtype=torch.int64), torch.zeros(4, 3, dtype=torch.float64), {}, RuntimeError, "float32"),
    ("negative offset", torch.zeros(4, dtype=torch.int64), torch.randn(4, 3), {"vocab_offset": -1}, RuntimeError, "at least 0"),
    ("float offset", torch.zeros(4, dtype=torch.int64), torch.randn(4, 3), {"vocab_offset": 1.0}, TypeError, "int"),
    ("empty vocabulary", torch.zeros(4, dtype=torch.int64), torch.randn(4, 3), {"vocab_size": 0}, IndexError, "at least 1"),
    ("vocabulary too large", torch.zeros(4, dtype=torch.int64), torch.randn(4, 3), {"vocab_size": 2**31}, RuntimeError, "2\\^31"),
    ("out too short", torch.zeros(3, dtype=torch.int64), torch.randn(4, 3), {}, RuntimeError, "one entry per key"),
    ("2-D out", torch.zeros(4, 1, dtype=torch.int64), torch.randn(4, 3), {}, RuntimeError, "1-D"),
    ("float out", torch.zeros(4), torch.randn(4, 3), {}, RuntimeError, "int32 or int64"),
    ("int16 out", torch.zeros(4, dtype=torch.int16), torch.randn(4, 3), {}, RuntimeError, "int32 or int64"),
    ("out broadcast", torch.zeros(1, dtype=torch.int64).expand(4), torch.randn(4, 3), {}, RuntimeError, "overlapping"),
]


@pytest.mark.parametrize("what,out,shard,kwargs,exc,message", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_raise_before_the_collective(what, out, shard, kwargs, exc, message):
    # No process group exists in this process: a call that got as far as the
    # all-reduce would fail there, with torch.distributed's own message.
    kwargs = {"vocab_offset": 0, **kwargs}
    before = out.clone()
    with pytest.raises(exc, match=message):
        sgd.greedy_sample(out, shard, **kwargs)
    assert torch.equal(out, before)


def test_a_good_call_gets_as_far_as_the_collective():
    # The other half of the test above: without a process group, a valid call
    # fails in torch.distributed, not in the checks.
    out = torch.zeros(2, dtype=torch.int64)
    with pytest.raises((RuntimeError, ValueError), match="process group"):
        sgd.greedy_sample(out, torch.randn(2, 5), vocab_offset=0)


# ---------------------------------------------------------------------------
# Real process groups


def _rank_main(results, backend, world, rank, init, device):
    try:
        import distributed_worker

        results.put(distributed_worker.run_rank(backend, world, rank, init, device))
    except BaseException:
        import traceback

        results.put({"rank": rank, "error": traceback.format_exc()})


def run_group(world: int, backend: str, device: str, tmp_path) -> None:
    """Run `world` ranks of tests/distributed_worker.py; every rank must report no mismatch.

    The ranks are forked from a server process that imports torch once
    (forkserver), not started afresh: an import of torch costs more than all
    of a rank's cases.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch.distributed", "safe_greedy.distributed"])
    results = ctx.Queue()
    init = f"file://{tmp_path / 'store'}"
    ranks = [ctx.Process(target=_rank_main, args=(results, backend, world, rank, init, device))
             for rank in range(world)]
    for proc in ranks:
        proc.start()
    try:
        reports = sorted((results.get(timeout=300) for _ in ranks), key=lambda r: r["rank"])
    finally:
        for proc in ranks:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    for report in reports:
        where = f"rank {report['rank']} of {world}"
        assert "error" not in report, f"{where} raised:\n{report.get('error')}"
        assert report["failures"] == [], f"{where}:\n" + "\n".join(report["failures"][:10])
        assert report["cases"] >= 80, report  # the worker really ran its cases
    assert [proc.exitcode for proc in ranks] == [0] * world


@pytest.mark.parametrize("world", [2, 3, 4])
def test_gloo_group_gives_every_rank_the_argmax_of_the_full_row(world, tmp_path):
    run_group(world, "gloo", "cpu", tmp_path)


# ---------------------------------------------------------------------------
# GPU


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", LOGIT_DTYPES)
def test_cuda_keys_and_tokens_equal_the_cpu_ones(dtype):
    gen = torch.Generator().manual_seed(22)
    for batch, width in [(1, 1), (3, 1000), (64, 4099), (300, 257), (2, 151936 // 4 + 7), (5000, 33)]:
        full = torch.randn(batch, width + 9, generator=gen)
        full[torch.rand(full.shape, generator=gen) < 0.001] = NAN
        full[:, -9:] = INF  # padding
        full = full.to(dtype)
        for shard in (full, full.t().contiguous().t()):
            offset = 1234
            cpu_keys = sgd.local_keys(shard, vocab_offset=offset, vocab_size=offset + width)
            cuda_keys = sgd.local_keys(shard.cuda(), vocab_offset=offset, vocab_size=offset + width)
            assert cuda_keys.device.type == "cuda" and cuda_keys._version == 0
            assert torch.equal(cuda_keys.cpu(), cpu_keys)
            for out_dtype in (torch.int32, torch.int64):
                out = torch.full((batch,), -7, dtype=out_dtype, device="cuda")
                torch.ops.safe_greedy.write_tokens(out, cuda_keys)
                assert torch.equal(out.cpu().long(), torch.argmax(full[:, :width], -1) + offset)
    empty = sgd.local_keys(torch.empty(3, 0, device="cuda", dtype=dtype), vocab_offset=0)
    assert empty.tolist() == [EMPTY_KEY] * 3
    assert sgd.keys_to_tokens(empty).tolist() == [-1] * 3


@requires_cuda
@pytest.mark.gpu
def test_cuda_graph_replays_local_keys_and_tokens():
    shard = torch.randn(16, 32064, device="cuda", dtype=torch.bfloat16)
    out = torch.full((16,), -7, dtype=torch.int32, device="cuda")

    def step():
        keys = sgd.local_keys(shard, vocab_offset=32064, vocab_size=32064 + 32000)
        torch.ops.safe_greedy.write_tokens(out, keys)

    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        step()  # warm-up outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for _ in range(3):
        shard.copy_(torch.randn_like(shard))
        shard[5, 17] = NAN
        out.fill_(-7)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out.long().cpu(), torch.argmax(shard[:, :32000], -1).cpu() + 32064)


@requires_cuda
@pytest.mark.gpu
def test_one_rank_nccl_group(tmp_path):
    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch has no NCCL")
    run_group(1, "nccl", "cuda", tmp_path)


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("world", [2, 3, 4, 8])
def test_nccl_group_gives_every_rank_the_argmax_of_the_full_row(world, tmp_path):
    # The gloo test's cases, and the CUDA graph capture, with one GPU a rank:
    # NCCL refuses two ranks on one GPU.
    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch has no NCCL")
    if torch.cuda.device_count() < world:
        pytest.skip(f"needs {world} GPUs, one a rank")
    run_group(world, "nccl", "cuda", tmp_path)
