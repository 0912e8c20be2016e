"""torch.vmap over safe_greedy.argmax and over in-place greedy_sample calls.

Each vmapped call must answer as the same call made on its own slice: the
answers are compared with torch.argmax of every slice, for every dtype,
vmapped dimension, nesting and layout of out, and a refused call leaves out
as it was.
"""

import pytest
import torch

import safe_greedy
from helpers import DEVICE_PARAMS, LOGIT_DTYPES, make_rows

KINDS = ["random", "all_nan", "all_neg_inf", "signed_zeros", "ties", "tail_nan", "negative"]


def stacked_rows(slices: int, batch: int, vocab: int, dtype, device, seed=0) -> torch.Tensor:
    """[slices, batch, vocab] of adversarial rows (a different mix per slice)."""
    rows = [make_rows([KINDS[(s + r) % len(KINDS)] for r in range(batch)], vocab, dtype, seed + s)
            for s in range(slices)]
    return torch.stack(rows).to(device)


def sample_into(out, logits):
    safe_greedy.greedy_sample(out, logits)
    return out


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("vocab", [1, 17, 4099, 40000])
def test_vmap_argmax(device, dtype, vocab):
    x = stacked_rows(4, 3, vocab, dtype, device)
    assert torch.equal(torch.vmap(safe_greedy.argmax)(x), torch.argmax(x, -1))
    # Over the middle dimension, and nested.
    assert torch.equal(torch.vmap(safe_greedy.argmax, in_dims=1)(x), torch.argmax(x, -1).t())
    assert torch.equal(torch.vmap(torch.vmap(safe_greedy.argmax))(x), torch.argmax(x, -1))
    # One row per call, and a 0-D tensor per call.
    assert torch.equal(torch.vmap(safe_greedy.argmax)(x[:, 0]), torch.argmax(x[:, 0], -1))
    assert torch.equal(torch.vmap(safe_greedy.argmax)(x[:, 0, 0]), torch.zeros(4, dtype=torch.int64, device=device))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("out_dtype", [torch.int32, torch.int64], ids=str)
def test_vmap_in_place(device, out_dtype):
    x = stacked_rows(5, 3, 1000, torch.float32, device)
    expected = torch.argmax(x, -1).to(out_dtype)
    out = torch.full((5, 3), -1, dtype=out_dtype, device=device)
    torch.vmap(sample_into)(out, x)
    assert torch.equal(out, expected)
    # out vmapped over its second dimension: a non-contiguous slice per call.
    out = torch.full((3, 5), -1, dtype=out_dtype, device=device)
    torch.vmap(sample_into, in_dims=(1, 0))(out, x)
    assert torch.equal(out.t(), expected)
    # logits shared by every call, out not.
    out = torch.full((5, 3), -1, dtype=out_dtype, device=device)
    torch.vmap(sample_into, in_dims=(0, None))(out, x[2])
    assert torch.equal(out, expected[2].expand(5, 3))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_vmap_refusals_leave_out_untouched(device):
    x = torch.randn(5, 3, 100, device=device)
    cases = [
        (RuntimeError, "out is not", lambda out: torch.vmap(sample_into, in_dims=(None, 0))(out[0], x)),
        (RuntimeError, "float32, float16 or bfloat16", lambda out: torch.vmap(sample_into)(out, x.double())),
        (RuntimeError, "one entry per row", lambda out: torch.vmap(sample_into)(out[:, :2], x)),
        (IndexError, "vocab dimension", lambda out: torch.vmap(sample_into)(out, x[..., :0])),
    ]
    for error, message, call in cases:
        out = torch.full((5, 3), -7, dtype=torch.int64, device=device)
        with pytest.raises(error, match=message):
            call(out)
        assert bool((out == -7).all()), message


def test_vmap_under_torch_compile():
    x = stacked_rows(4, 3, 1000, torch.bfloat16, "cpu")
    compiled = torch.compile(lambda t: torch.vmap(safe_greedy.argmax)(t), fullgraph=True)
    assert torch.equal(compiled(x), torch.argmax(x, -1))


def assert_same_outputs(got, want):
    for name, a, b in zip(safe_greedy.Greedy._fields, got, want):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if a.dtype == torch.float32:
            # A GPU may split the rows of a call of another batch size
            # differently, which sums in another order.
            torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5, equal_nan=True, msg=name)
        else:
            assert torch.equal(a, b), name


@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_vmap_greedy(device, dtype):
    x = stacked_rows(4, 3, 4099, dtype, device)
    assert_same_outputs(torch.vmap(safe_greedy.greedy)(x), safe_greedy.greedy(x))
    fallback = lambda t: safe_greedy.greedy(t, fallback_token=7)  # noqa: E731
    want = safe_greedy.greedy(x.transpose(0, 1), fallback_token=7)
    assert_same_outputs(torch.vmap(fallback, in_dims=1)(x), want)
    assert_same_outputs(torch.vmap(torch.vmap(fallback))(x), safe_greedy.greedy(x, fallback_token=7))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_vmap_in_place_extra_outputs(device):
    x = stacked_rows(5, 3, 1000, torch.float32, device)
    want = safe_greedy.greedy(x, fallback_token=2)

    def sample(out, logprobs, valid, logits):
        safe_greedy.greedy_sample(out, logits, logprobs=logprobs, valid=valid, fallback_token=2)
        return out

    out = torch.full((3, 5), -1, dtype=torch.int32, device=device)  # a non-contiguous slice per call
    logprobs = torch.full((5, 3), -1.0, device=device)
    valid = torch.zeros((5, 3), dtype=torch.bool, device=device)
    torch.vmap(sample, in_dims=(1, 0, 0, 0))(out, logprobs, valid, x)
    assert torch.equal(out.t(), want.token_ids.int())
    torch.testing.assert_close(logprobs, want.logprobs, rtol=2e-5, atol=2e-5, equal_nan=True)
    assert torch.equal(valid, want.valid)
    # An output shared by every call is refused before anything is written.
    logprobs.fill_(-1.0)
    with pytest.raises(RuntimeError, match="logprobs is not"):
        torch.vmap(sample, in_dims=(1, None, 0, 0))(out, logprobs[0], valid, x)
    assert bool((logprobs == -1.0).all())
