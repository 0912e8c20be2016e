"""Property tests: greedy_sample and argmax are exactly torch.argmax(logits, -1).

The contract (README): the first NaN of a row wins; otherwise the lowest
index of the maximum (IEEE equality: -0.0 ties +0.0, -inf ties -inf); every
result lies in [0, vocab); the same answer for every dtype, layout, batch and
vocab size; `out` may be a strided view and nothing around it is written.

Hypothesis draws a *recipe* (sizes, dtypes, layout, one kind per row, a few
special values at chosen positions, a seed for the bulk) rather than the
elements themselves, so large rows stay cheap and failures shrink to small
readable recipes.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safe_greedy
from helpers import (
    DEVICE_PARAMS,
    INDEX_DTYPES,
    LAYOUTS,
    LOGIT_DTYPES,
    POISONS,
    ROW_KINDS,
    SENTINEL,
    SPECIAL_NAMES,
    assert_argmax_result,
    assert_only_out_written,
    from_bits,
    make_rows,
    place,
    scaled_examples,
    special_value,
    strided_out,
    to_bits,
)

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def vocab_sizes():
    """Vocab sizes, biased toward the ones that break vector kernels: tiny
    rows, one off a multiple of the vector width or of a chunk size, and the
    vocabularies of real models (32001: Llama-2 + pad token; 151666:
    MiniCPM-V-2.6, the aiter failure; 151936: Qwen2)."""
    near_multiple = st.builds(
        lambda m, k, d: max(1, m * k + d),
        st.sampled_from([4, 8, 16, 32, 64, 256]),
        st.integers(1, 64),
        st.integers(-1, 1),
    )
    near_4096 = st.builds(lambda k, d: 4096 * k + d, st.integers(1, 17), st.integers(-1, 1))
    real = st.sampled_from(
        [1000, 16383, 16384, 16385, 32000, 32001, 32003, 32768, 50257, 65535, 65536, 65537,
         69999, 70000, 151666, 151936]  # fmt: skip
    )
    return st.one_of(st.integers(1, 20), near_multiple, near_4096, real, st.integers(1, 70000))


def max_batch_for(vocab: int) -> int:
    # Keeps one example at a few MB at most: large vocabularies get few rows.
    if vocab <= 2048:
        return 40
    if vocab <= 16384:
        return 16
    if vocab <= 70000:
        return 6
    return 2


@st.composite
def overrides(draw):
    """A special value written at a chosen place: (row, where, k, frac, value)."""
    return (
        draw(st.integers(0, 10**6)),  # row, taken modulo batch
        draw(st.sampled_from(["head", "tail", "anywhere"])),
        draw(st.integers(0, 15)),  # distance from the head or the tail
        draw(st.floats(0, 1, exclude_max=True)),  # relative position for "anywhere"
        draw(st.sampled_from(SPECIAL_NAMES)),
    )


@st.composite
def cases(draw):
    vocab = draw(vocab_sizes())
    batch = draw(st.integers(0, max_batch_for(vocab)))
    return dict(
        dtype=draw(st.sampled_from(LOGIT_DTYPES)),
        out_dtype=draw(st.sampled_from(INDEX_DTYPES)),
        vocab=vocab,
        batch=batch,
        kinds=draw(st.lists(st.sampled_from(ROW_KINDS), min_size=batch, max_size=batch)),
        overrides=draw(st.lists(overrides(), max_size=6)),
        poison=draw(st.sampled_from(POISONS)),
        pad=draw(st.integers(0, 9)),
        offset=draw(st.integers(1, 7)),  # elements: misaligned, except 4 for fp32
        step=draw(st.integers(2, 3)),
        out_stride=draw(st.sampled_from([1, 1, 2, 3])),
        out_offset=draw(st.integers(0, 3)),
        via_torch_ops=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def build_values(case) -> torch.Tensor:
    """The logical [batch, vocab] values of a case, on the CPU."""
    values = make_rows(case["kinds"], case["vocab"], case["dtype"], case["seed"])
    batch, vocab = values.shape
    if batch:
        for row, where, k, frac, name in case["overrides"]:
            k = min(k, vocab - 1)
            col = {"head": k, "tail": vocab - 1 - k, "anywhere": int(frac * vocab)}[where]
            values[row % batch, col] = special_value(name, case["dtype"])[0]
    return values


# ---------------------------------------------------------------------------
# The main property
# ---------------------------------------------------------------------------


# One run per layout, so each layout gets its full share of examples (drawn
# from a strategy, the simplest layout would dominate).
@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=scaled_examples(1.0))
@given(case=cases())
def test_greedy_sample_matches_torch_argmax(device, layout, case):
    values = build_values(case)
    logits = place(
        values, layout, device,
        poison=case["poison"], pad=case["pad"], offset=case["offset"], step=case["step"],
    )  # fmt: skip
    out, out_buffer = strided_out(
        case["batch"], case["out_dtype"], device,
        stride=case["out_stride"], offset=case["out_offset"], pad=2,
    )  # fmt: skip

    if case["via_torch_ops"]:
        torch.ops.safe_greedy.greedy_sample(out, logits)
    else:
        assert safe_greedy.greedy_sample(out, logits) is None  # in place, like aiter's

    assert out.dtype == case["out_dtype"]
    assert_argmax_result(out, logits)
    assert_only_out_written(out_buffer, out)
    # The call must not have modified its input (compared bit for bit).
    assert torch.equal(to_bits(logits.cpu()), to_bits(values)), "greedy_sample modified logits"


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@settings(max_examples=scaled_examples(1.0))
@given(
    leading=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    vocab=st.one_of(st.integers(1, 40), st.sampled_from([4095, 4097, 32001])),
    dtype=st.sampled_from(LOGIT_DTYPES),
    kind=st.sampled_from(ROW_KINDS),
    transpose=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_functional_argmax_matches_torch(device, leading, vocab, dtype, kind, transpose, seed):
    rows = 1
    for n in leading:
        rows *= n
    if rows * vocab > 2**20:
        leading = [1] * len(leading)
        rows = 1
    values = make_rows([kind] * rows, vocab, dtype, seed).reshape(*leading, vocab).to(device)
    if transpose and len(leading) >= 1:
        # A non-contiguous input whose leading dims cannot simply be viewed as rows.
        values = values.transpose(0, -1).contiguous().transpose(0, -1)
    result = safe_greedy.argmax(values)
    assert result.dtype == torch.int64
    assert result.device == values.device
    assert result.shape == values.shape[:-1]
    assert_argmax_result(result, values)


# ---------------------------------------------------------------------------
# Exhaustive checks of the 16-bit formats
# ---------------------------------------------------------------------------


def _all_16bit_values(dtype):
    bits = torch.arange(0, 2**16, dtype=torch.int64)
    signed = torch.where(bits >= 2**15, bits - 2**16, bits).to(torch.int16)
    return signed.view(dtype)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_every_adjacent_pair_of_16bit_values_orders_like_torch(device, dtype):
    """Sort all non-NaN fp16/bf16 values; for each adjacent pair (a <= b) put
    b then a, and a then b, into a row of -inf. This pins the ordering of
    every value (both zeros, every subnormal, both infinities) against its
    neighbour, at positions in the scalar head, the vector body and the tail."""
    values = _all_16bit_values(dtype)
    ladder = values[~values.float().isnan()]
    ladder = ladder[torch.argsort(ladder.float(), stable=True)]
    lo, hi = ladder[:-1], ladder[1:]
    pairs = torch.cat([torch.stack([lo, hi], 1), torch.stack([hi, lo], 1)])
    n, vocab = pairs.shape[0], 37
    rows = torch.full((n, vocab), float("-inf"), dtype=dtype)
    # The pair sits at a different position in each row, sweeping the row.
    col = torch.arange(n) % (vocab - 1)
    rows[torch.arange(n), col] = pairs[:, 0]
    rows[torch.arange(n), col + 1] = pairs[:, 1]
    logits = rows.to(device)
    out = torch.full((n,), SENTINEL, dtype=torch.int64, device=device)
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_every_16bit_nan_pattern_beats_inf_and_loses_to_an_earlier_nan(device, dtype):
    """Each NaN bit pattern (both signs, every payload, quiet and signalling)
    sits after +inf and the max finite value; half the rows have a second,
    earlier NaN. The first NaN must win, whatever its payload."""
    values = _all_16bit_values(dtype)
    nans = values[values.float().isnan()]
    n, vocab = nans.shape[0], 53
    gen = torch.Generator().manual_seed(7)
    rows = torch.randn(n, vocab, generator=gen).to(dtype)
    rows[:, 0] = float("inf")
    rows[:, 1] = torch.finfo(dtype).max
    col = 2 + torch.arange(n) % (vocab - 2)
    rows[torch.arange(n), col] = nans
    earlier = (torch.arange(n) % 2 == 1) & (col > 3)
    rows[earlier, 3] = nans.flip(0)[earlier]
    logits = rows.to(device)
    out = torch.full((n,), SENTINEL, dtype=torch.int32, device=device)
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)


def _two_candidates_in_one_vector(kind, dtype, vocab, first):
    """Rows of `vocab` elements, one for each ordered pair (i, j) of positions
    of the 16-byte vector that starts at element `first`: the row's winner is
    decided between those two positions (or one, where i == j)."""
    per_vector = 16 // dtype.itemsize
    i, j = torch.meshgrid(torch.arange(per_vector), torch.arange(per_vector), indexing="ij")
    i, j = first + i.flatten(), first + j.flatten()
    n = i.numel()
    rows = torch.arange(n)
    gen = torch.Generator().manual_seed(per_vector + vocab)
    if kind == "nans":  # NaNs of different payloads and signs: the first wins
        x = torch.randn(n, vocab, generator=gen).to(dtype)
        x[rows, j] = from_bits([0xFFC00003 if dtype == torch.float32 else 0xFE01] * n, dtype)
        x[rows, i] = from_bits([0x7FC00001 if dtype == torch.float32 else 0x7E03] * n, dtype)
        return x
    x = -(torch.rand(n, vocab, generator=gen) + 1).to(dtype)  # all in [-2, -1)
    if kind == "ties":  # equal maxima: the lower index wins
        x[rows, i] = 2.0
        x[rows, j] = 2.0
    elif kind == "signed_zeros":  # -0.0 ties +0.0
        x[rows, j] = 0.0
        x[rows, i] = -0.0
    elif kind == "nan_after_inf":  # a NaN anywhere beats +inf
        x[rows, i] = float("inf")
        x[rows, j] = float("nan")
    return x


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["ties", "signed_zeros", "nans", "nan_after_inf"])
@pytest.mark.parametrize("vocab", [64, 32768])
def test_two_candidates_at_every_pair_of_positions_in_a_vector(device, dtype, kind, vocab):
    """The GPU kernel finds each 16-byte vector's best element by comparing
    its elements pairwise, not in index order. Every ordered pair of
    positions in one vector holds the two candidates for the row's answer.
    Rows are whole 128-byte lines, so the vector is one the kernel loads as a
    vector; short rows are read whole, long ones (a few per call) in
    several parts, with the vector in the middle."""
    assert vocab * dtype.itemsize % 128 == 0, "each row must be whole 128-byte lines"
    first = vocab // 2 + 16 // dtype.itemsize  # the second vector of the row's second half
    logits = _two_candidates_in_one_vector(kind, dtype, vocab, first).to(device)
    rows_per_call = 8 if vocab > 4096 else logits.shape[0]
    for start in range(0, logits.shape[0], rows_per_call):
        chunk = logits[start : start + rows_per_call]
        out = torch.full((chunk.shape[0],), SENTINEL, dtype=torch.int64, device=device)
        safe_greedy.greedy_sample(out, chunk)
        assert_argmax_result(out, chunk)


# ---------------------------------------------------------------------------
# out is a strided view
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("out_dtype", INDEX_DTYPES, ids=str)
@pytest.mark.parametrize("batch", [1, 5, 64])
def test_strided_out_writes_only_its_own_slots(device, out_dtype, batch):
    """out = every third slot of a sentinel buffer, starting at slot 2: the
    results land in those slots and every other slot keeps the sentinel
    (a kernel that assumed out contiguous would scribble over neighbours)."""
    values = make_rows(["random", "all_nan", "all_neg_inf", "negative", "tail_max"] * 13, 4099, torch.float32, 3)
    logits = values[:batch].to(device)
    out, buffer = strided_out(batch, out_dtype, device, stride=3, offset=2, pad=4)
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)
    assert_only_out_written(buffer, out)
    # And the untouched slots of the buffer are exactly those not in out.
    assert int((buffer != SENTINEL).sum()) == batch


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_out_that_is_a_column_of_a_2d_buffer(device):
    """out = one column of an int64 [batch, 4] buffer (stride 4): the other
    columns stay as they were."""
    logits = make_rows(["random", "negative", "all_nan"] * 3, 129, torch.bfloat16, 11).to(device)
    buffer = torch.full((9, 4), SENTINEL, dtype=torch.int64, device=device)
    out = buffer[:, 2]
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)
    others = buffer[:, [0, 1, 3]]
    assert bool((others == SENTINEL).all()), others


# ---------------------------------------------------------------------------
# CPU threading: rows split across threads must combine exactly
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
def test_cpu_result_does_not_depend_on_thread_count(threads, dtype):
    """With fewer rows than threads the CPU kernel splits a row into segments
    and combines them. Ties and NaNs spread over the whole row make the
    combine order matter: the earliest maximum or NaN must still win. The
    positions are spread at fine granularity so some fall on whatever segment
    boundaries the thread count produces."""
    vocab = 151666
    gen = torch.Generator().manual_seed(threads)
    rows = []
    # Row 0: the maximum (2.0) appears many times; the first is what counts.
    row = (torch.rand(vocab, generator=gen) - 1).to(dtype)
    row[torch.randint(vocab // 3, vocab, (200,), generator=gen)] = 2.0
    rows.append(row)
    # Row 1: several NaNs and +inf everywhere; the first NaN wins.
    row = torch.randn(vocab, generator=gen).to(dtype)
    row[torch.randint(0, vocab, (50,), generator=gen)] = float("inf")
    row[torch.randint(vocab // 2, vocab, (50,), generator=gen)] = float("nan")
    rows.append(row)
    # Row 2: all -inf but the very last element.
    row = torch.full((vocab,), float("-inf"), dtype=dtype)
    row[-1] = -1.0
    rows.append(row)
    # Row 3: -0.0 everywhere except +0.0 late: the first zero (index 0) wins.
    row = torch.full((vocab,), -0.0, dtype=dtype)
    row[vocab - 5] = 0.0
    rows.append(row)
    # Row 4: a maximum at the last index of each 1/8, 1/7 .. 1/2 of the row,
    # and just before/after each, all equal: the smallest of them wins.
    row = torch.full((vocab,), -5.0, dtype=dtype)
    for parts in range(2, 9):
        for p in range(1, parts):
            b = (vocab * p + parts - 1) // parts
            row[b - 1 : b + 1] = 3.0
    row[: vocab // 2] = -5.0  # only boundaries in the second half remain
    rows.append(row)
    values = torch.stack(rows)

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for batch in (1, 2, 3, 5):  # fewer rows than threads: split rows
            logits = values[:batch]
            for out_dtype in INDEX_DTYPES:
                out = torch.full((batch,), SENTINEL, dtype=out_dtype)
                safe_greedy.greedy_sample(out, logits)
                assert_argmax_result(out, logits)
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# Real vocabularies at small batch (cheap enough to run always)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("vocab", [151666, 151936])
def test_real_vocab_every_row_kind(device, layout, vocab):
    """Every row kind once, in each layout, at the vocabularies of the aiter
    failure (151666) and of Qwen2 (151936)."""
    for dtype in LOGIT_DTYPES:
        values = make_rows(ROW_KINDS, vocab, dtype, seed=vocab)
        logits = place(values, layout, device, poison="+inf", pad=5, offset=3)
        out = torch.full((len(ROW_KINDS),), SENTINEL, dtype=torch.int32, device=device)
        safe_greedy.greedy_sample(out, logits)
        assert_argmax_result(out, logits)
