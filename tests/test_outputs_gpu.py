"""The extra outputs on the GPU: every path of the kernel with kStats.

Rows split across blocks and combined by collection (a handful of splits)
or by fenced atomics (more than the collection allows: very long rows, and
strided long rows), one block per row, several short rows per block; the
pair slots and key slots left ready for the next launch, of either kernel;
the GPU's values against torch and against the CPU kernel. Skips without
CUDA (or ROCm).
"""

import pytest
import torch

import safe_greedy
from helpers import LOGIT_DTYPES, ROW_KINDS, make_rows, place
from test_gpu import _release_memory  # noqa: F401  (autouse: gives each test's GBs back)
from test_outputs import check_outputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA (or ROCm) device"),
]


def kinds_for(batch):
    return [ROW_KINDS[i % len(ROW_KINDS)] for i in range(batch)]


def all_outputs(logits, fallback=None):
    g = safe_greedy.greedy(logits, fallback_token=fallback)
    check_outputs(logits, g.token_ids, g._asdict(), fallback)
    return g


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("batch", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("vocab", [32000, 151936, 262144])
def test_split_rows(batch, vocab, dtype):
    """Batches short enough to split their rows, every row kind."""
    logits = make_rows(kinds_for(batch), vocab, dtype, seed=batch + vocab).cuda()
    all_outputs(logits)
    all_outputs(logits, fallback=vocab - 1)


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "column_stride", "padded"])
@pytest.mark.parametrize("batch, vocab, dtype", [(1, 1_000_003, torch.float32), (2, 2_100_000, torch.bfloat16)],
                         ids=str)
def test_rows_longer_than_collection_allows(layout, batch, vocab, dtype):
    """Rows of more splits than the collecting combine takes go through the
    fenced one: pairs gathered by the last block."""
    kinds = ["random", "sparse_nan", "lone_finite", "inf_mix"][:batch] if batch > 1 else ["random"]
    values = make_rows(kinds, vocab, dtype, seed=vocab)
    logits = place(values, layout, "cuda", poison="+inf")
    all_outputs(logits)
    # The same rows with a NaN near the end and a +inf near the start.
    values[:, vocab - 7] = float("nan")
    values[0, 5] = float("inf")
    all_outputs(place(values, layout, "cuda", poison="nan"))


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("batch, vocab", [(4096, 17), (20001, 3), (3000, 3072), (600, 4097), (1024, 32001)],
                         ids=str)
def test_many_rows(batch, vocab, dtype):
    """Batches long enough for one block per row, or several short rows per
    block (the row groups' reductions of pairs)."""
    logits = make_rows(kinds_for(min(batch, 300)), vocab, dtype, seed=batch).cuda()
    logits = logits.repeat((batch + logits.shape[0] - 1) // logits.shape[0], 1)[:batch]
    all_outputs(logits, fallback=0)


def test_plain_and_outputs_calls_leave_each_other_clean_slots():
    """Alternating both kernels on one stream and one workspace, on split
    rows combined both ways: every call's answer is its own."""
    gen = torch.Generator().manual_seed(3)
    shapes = [(1, 151936), (3, 262144), (2, 1_000_003), (16, 32000)]
    for round_ in range(6):
        for batch, vocab in shapes:
            x = (torch.randn(batch, vocab, generator=gen) * (round_ + 1)).cuda()
            if round_ % 2:
                x[:, round_] = float("nan")
            out = torch.empty(batch, dtype=torch.int64, device="cuda")
            safe_greedy.greedy_sample(out, x)
            assert torch.equal(out.cpu(), torch.argmax(x, -1).cpu())
            all_outputs(x)


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
def test_gpu_agrees_with_the_cpu_kernel(dtype):
    """Both kernels against each other as well as against torch: tokens and
    validity equal, statistics within the same tolerance."""
    values = make_rows(kinds_for(45), 50257, dtype, seed=11)
    gpu = safe_greedy.greedy(values.cuda(), fallback_token=1)
    cpu = safe_greedy.greedy(values, fallback_token=1)
    assert torch.equal(gpu.token_ids.cpu(), cpu.token_ids)
    assert torch.equal(gpu.valid.cpu(), cpu.valid)
    for name in ("logprobs", "logsumexp"):
        got, want = getattr(gpu, name).cpu(), getattr(cpu, name)
        assert torch.equal(torch.isnan(got), torch.isnan(want)), name
        finite = torch.isfinite(want)
        assert torch.equal(got[~finite & ~torch.isnan(want)], want[~finite & ~torch.isnan(want)]), name
        err = (got[finite].double() - want[finite].double()).abs()
        assert bool((err <= 4e-5 * want[finite].double().abs().clamp(min=1)).all()), (name, err.max())


def test_graph_replays_on_split_rows_of_both_combines():
    """Captured once, replayed on new values: the pairs follow the data."""
    shapes = [(1, 151936, torch.bfloat16), (2, 1_000_003, torch.float32)]
    stream = torch.cuda.Stream()
    for batch, vocab, dtype in shapes:
        x = torch.randn(batch, vocab, device="cuda").to(dtype)
        out = torch.empty(batch, dtype=torch.int64, device="cuda")
        outputs = dict(
            logprobs=torch.empty(batch, device="cuda"),
            logsumexp=torch.empty(batch, device="cuda"),
            valid=torch.empty(batch, dtype=torch.bool, device="cuda"),
        )
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            safe_greedy.greedy_sample(out, x, fallback_token=2, **outputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            safe_greedy.greedy_sample(out, x, fallback_token=2, **outputs)
        for seed in range(3):
            x.copy_(make_rows(["random", "all_nan"][:batch] if batch > 1 else ["inf_mix"], vocab, dtype, seed))
            graph.replay()
            torch.cuda.synchronize()
            check_outputs(x, out, outputs, 2)
        del graph
