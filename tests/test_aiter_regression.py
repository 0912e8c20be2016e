"""Regression tests for the aiter greedy_sample failure (the README's "Why").

aiter's kernel read the last 16-wide vector of a row past its end when
vocab % 16 != 0, saw 0.0 in the missing lanes, and never checked index < vocab.
Any row whose largest non-NaN value was below zero therefore came back as
`vocab`, an id that does not exist (151666 for MiniCPM-V-2.6): all -inf rows,
all-NaN rows, rows a NaN sanitiser rewrote to -1e30 or -1e5, and ordinary rows
whose best logit is negative. It also skipped NaNs, while torch returns the
first NaN's index.

Each test builds a batch of 8 such rows at a vocabulary that is not a multiple
of 16 (151666, 32001, 4097) or is one (151936), for every dtype, and checks the
answer against torch.argmax and the range [0, vocab).
"""

import pytest
import torch

import safe_greedy
from helpers import (
    DEVICE_PARAMS,
    INDEX_DTYPES,
    LOGIT_DTYPES,
    SENTINEL,
    assert_argmax_result,
    place,
    random_nans,
)

VOCABS = [151666, 32001, 151936, 4097]
BATCH = 8


def _rows(kind: str, vocab: int, dtype: torch.dtype) -> torch.Tensor:
    """A [BATCH, vocab] CPU batch of one kind of row that aiter got wrong."""
    gen = torch.Generator().manual_seed(vocab * 31 + len(kind))
    shape = (BATCH, vocab)
    if kind == "all_neg_inf":
        return torch.full(shape, float("-inf"), dtype=dtype)
    if kind == "all_nan":
        # Random signs and payloads: torch answers 0 whatever the NaN looks like.
        return random_nans(BATCH * vocab, dtype, gen).reshape(shape)
    if kind == "all_minus_1e30":
        # -1e30 is -inf in fp16; the rows are all-equal either way.
        return torch.full(shape, -1e30, dtype=torch.float32).to(dtype)
    if kind == "all_minus_1e5":
        return torch.full(shape, -1e5, dtype=torch.float32).to(dtype)
    if kind == "negative_max":
        # Ordinary logits shifted so that the best one is negative.
        return (torch.randn(shape, generator=gen) - 20).to(dtype)
    if kind == "nan_in_tail":
        # Finite logits with a NaN somewhere in the last 15 elements (the part
        # a 16-wide vector kernel handles separately, or not at all).
        rows = torch.randn(shape, generator=gen).to(dtype)
        k = torch.randint(1, 16, (BATCH,), generator=gen)
        rows[torch.arange(BATCH), vocab - k] = random_nans(BATCH, dtype, gen)
        return rows
    if kind == "max_in_tail":
        # Negative logits with the maximum in the last 15 elements.
        rows = (torch.rand(shape, generator=gen) * -10 - 1).to(dtype)
        k = torch.randint(1, 16, (BATCH,), generator=gen)
        rows[torch.arange(BATCH), vocab - k] = -0.5
        return rows
    if kind == "max_is_last":
        rows = (torch.rand(shape, generator=gen) * -10 - 1).to(dtype)
        rows[:, -1] = -0.5
        return rows
    raise ValueError(kind)


KINDS = [
    "all_neg_inf", "all_nan", "all_minus_1e30", "all_minus_1e5",
    "negative_max", "nan_in_tail", "max_in_tail", "max_is_last",
]  # fmt: skip


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("vocab", VOCABS)
@pytest.mark.parametrize("kind", KINDS)
def test_aiter_failure_rows(device, dtype, vocab, kind):
    logits = _rows(kind, vocab, dtype).to(device)
    for out_dtype in INDEX_DTYPES:
        out = torch.full((BATCH,), SENTINEL, dtype=out_dtype, device=device)
        safe_greedy.greedy_sample(out, logits)
        # In range first: `vocab` itself is exactly what aiter returned.
        assert bool((out != vocab).all()), f"returned vocab ({vocab}): {out.tolist()}"
        assert_argmax_result(out, logits)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("vocab", VOCABS)
@pytest.mark.parametrize("poison", ["+0.0", "+inf", "nan"])
def test_padding_after_a_row_never_wins(device, dtype, vocab, poison):
    """SGLang passes a row slice of a padded buffer. Whatever sits in the
    padding right after each row (0.0, as aiter's out-of-bounds lanes read, or
    +inf, or NaN) must not be read: all-negative rows still answer inside the
    row."""
    values = torch.cat([_rows("negative_max", vocab, dtype), _rows("all_neg_inf", vocab, dtype)])
    logits = place(values, "padded", device, poison=poison, pad=16, offset=0)
    assert logits.stride(1) == 1 and logits.stride(0) > vocab
    out = torch.full((values.shape[0],), SENTINEL, dtype=torch.int64, device=device)
    safe_greedy.greedy_sample(out, logits)
    assert_argmax_result(out, logits)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
def test_known_answers_at_151666(device, dtype):
    """The MiniCPM-V-2.6 case with answers written out, independent of
    torch.argmax: all -inf -> 0, all NaN -> 0, NaN at 151660 after a finite
    maximum -> 151660, maximum (negative) at the last index -> 151665."""
    vocab = 151666
    rows = torch.full((4, vocab), float("-inf"), dtype=dtype)
    rows[1] = float("nan")
    rows[2] = -3.0
    rows[2, 100] = -1.0
    rows[2, 151660] = float("nan")
    rows[3] = -3.0
    rows[3, vocab - 1] = -2.0
    logits = rows.to(device)
    out = torch.full((4,), SENTINEL, dtype=torch.int64, device=device)
    safe_greedy.greedy_sample(out, logits)
    assert out.cpu().tolist() == [0, 0, 151660, 151665]
    assert_argmax_result(out, logits)
