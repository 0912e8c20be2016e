"""The extra outputs of greedy_sample: logprobs, logsumexp, valid, fallback_token.

For every row r, against torch on the same logits:
  out[r]       torch.argmax(logits[r]), or fallback_token where the row is not valid
  logprobs[r]  torch.log_softmax(logits[r].float()).gather(out[r])
  logsumexp[r] torch.logsumexp(logits[r].float())
  valid[r]     no NaN in the row and its maximum above -inf
NaN and infinities exactly where torch has them; finite values within
2e-5 * max(1, |torch's value|) of torch's float32 result, and within 5e-6 of
the same computed in float64. Each output optional and independent, any
strides, nothing around them written.
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
    ROW_KINDS,
    SENTINEL,
    assert_argmax_result,
    assert_only_out_written,
    make_rows,
    place,
    scaled_examples,
    strided_out,
    to_bits,
)
from test_contract import build_values, cases

# What each extra output holds, for sentinel buffers: (dtype, the sentinel).
# A bool output's buffer is uint8 holding 7, a byte no bool write produces.
OUTPUTS = {
    "logprobs": (torch.float32, 12345.0),
    "logsumexp": (torch.float32, 12345.0),
    "valid": (torch.uint8, 7),
}
TORCH_TOLERANCE = 2e-5  # relative to max(1, |torch's float32 value|)
FLOAT64_TOLERANCE = 5e-6  # relative to max(1, |the float64 value|)


def reference(logits: torch.Tensor, fallback_token=None):
    """torch's answers for every output, on the CPU: (token, logprobs in
    float32 and float64, logsumexp in float32 and float64, valid)."""
    x = logits.detach().cpu()
    token = torch.argmax(x, -1)
    xf = x.float()
    valid = ~torch.isnan(xf).any(-1) & (xf.amax(-1) > float("-inf"))
    if fallback_token is not None:
        token = torch.where(valid, token, torch.full_like(token, fallback_token))
    index = token[:, None]
    return dict(
        token=token,
        logprobs=torch.log_softmax(xf, -1).gather(-1, index)[:, 0],
        logprobs64=torch.log_softmax(xf.double(), -1).gather(-1, index)[:, 0],
        logsumexp=torch.logsumexp(xf, -1),
        logsumexp64=torch.logsumexp(xf.double(), -1),
        valid=valid,
    )


def assert_close_to_torch(name, got, want32, want64, logits):
    """NaN where torch has NaN, the same infinities, finite values close."""
    got = got.detach().cpu()
    bad = []
    nan = torch.isnan(want32)
    bad.append(("NaN where torch has none, or none where it has", nan != torch.isnan(got)))
    inf = torch.isinf(want32)
    bad.append(("infinity unlike torch's", inf & (got != want32)))
    finite = ~nan & ~inf
    err32 = (got.double() - want32.double()).abs()
    err64 = (got.double() - want64).abs()
    # torch's float32 sum drifts with the row's length (7e-4 off the float64
    # value at -14.55 for 2.1 million bf16 logits): a value closer to the
    # float64 result than torch's own is not held to torch's.
    torch_err64 = (want32.double() - want64).abs()
    near_torch = err32 <= TORCH_TOLERANCE * want32.double().abs().clamp(min=1)
    bad.append(("far from torch's float32", finite & ~near_torch & ~(err64 <= torch_err64)))
    bad.append(("far from the float64 result", finite & ~(err64 <= FLOAT64_TOLERANCE * want64.abs().clamp(min=1))))
    for what, rows in bad:
        rows = rows.nonzero().flatten().tolist()
        assert not rows, (
            f"{name}: {len(rows)} rows {what} (logits {tuple(logits.shape)} {logits.dtype}, strides "
            f"{logits.stride()}, on {logits.device}): "
            + "; ".join(
                f"row {r}: got {got[r].item()!r}, torch {want32[r].item()!r}, float64 {want64[r].item()!r}"
                for r in rows[:8]
            )
        )


def sentinel_output(name, batch, device, stride=1, offset=0):
    """(output, buffer): a [batch] view of a sentinel buffer; a bool view for valid."""
    dtype, fill = OUTPUTS[name]
    buffer = torch.full((offset + batch * stride + 2,), fill, dtype=dtype, device=device)
    view = buffer[offset : offset + batch * stride : stride]
    return (view.view(torch.bool) if name == "valid" else view), buffer


def assert_only_view_written(name, buffer, view):
    """Every slot of ``buffer`` outside ``view`` still holds the sentinel of ``name``."""
    _, fill = OUTPUTS[name]
    # the check of helpers.py, on a copy where the sentinel reads as SENTINEL.
    shifted = buffer.to(torch.int64) + (SENTINEL - int(fill))
    moved = shifted.as_strided(view.shape, view.stride(), view.storage_offset() - buffer.storage_offset())
    assert_only_out_written(shifted, moved)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_logits_near_the_ends_of_the_float_range(device, dtype):
    """Maxima beyond 2^127 / log2(e) (about 2.36e38) in magnitude, where the
    shift times log2(e) is no longer a float, and just within it: spread,
    tied, and mixed with the other end of the range."""
    top = torch.finfo(dtype).max
    gen = torch.Generator().manual_seed(7)
    n = 4099

    def spread(centre):
        return centre * (1 - torch.rand(n, generator=gen, dtype=torch.float64) * 0.3)

    rows = [
        torch.full((n,), top, dtype=torch.float64),
        torch.full((n,), -top, dtype=torch.float64),
        torch.full((n,), 2.4e38, dtype=torch.float64),
        torch.full((n,), -2.3e38, dtype=torch.float64),
        spread(top),
        spread(-top),
        torch.where(torch.rand(n, generator=gen) < 0.5, top, -top).double(),
    ]
    logits = torch.stack(rows).to(dtype).to(device)
    g = safe_greedy.greedy(logits)
    assert bool(torch.isfinite(g.logsumexp.cpu()).all()), g.logsumexp.tolist()
    check_outputs(logits, g.token_ids, g._asdict(), None)


def check_outputs(logits, out, given_outputs, fallback_token):
    """Every output that was passed, against torch."""
    want = reference(logits, fallback_token)
    got_token = out.cpu().long()
    if fallback_token is None:
        assert_argmax_result(out, logits)
    else:
        rows = (got_token != want["token"]).nonzero().flatten().tolist()
        assert not rows, f"out differs (fallback {fallback_token}) at rows {rows[:16]}: " + ", ".join(
            f"{got_token[r].item()} vs {want['token'][r].item()}" for r in rows[:8]
        )
    if "valid" in given_outputs:
        got = given_outputs["valid"].cpu()
        # Each byte exactly 0 or 1: a bool tensor holding anything else
        # misbehaves in torch's own ops.
        assert set(given_outputs["valid"].view(torch.uint8).cpu().tolist()) <= {0, 1}
        assert torch.equal(got, want["valid"]), (got.tolist(), want["valid"].tolist())
    for name in ("logprobs", "logsumexp"):
        if name in given_outputs:
            assert_close_to_torch(name, given_outputs[name], want[name], want[name + "64"], logits)


# ---------------------------------------------------------------------------
# The property: every output, every layout, adversarial rows
# ---------------------------------------------------------------------------


@st.composite
def output_choices(draw):
    return dict(
        outputs=draw(st.sets(st.sampled_from(sorted(OUTPUTS)))),
        fallback=draw(st.one_of(st.none(), st.floats(0, 1, exclude_max=True))),
        stride=draw(st.sampled_from([1, 1, 2, 3])),
        offset=draw(st.integers(0, 3)),
        via_torch_ops=draw(st.booleans()),
    )


@st.composite
def cases_with_long_rows(draw):
    """test_contract's cases, one in ten with rows past 262144 (at most two)."""
    case = draw(cases())
    if draw(st.integers(0, 9)) == 0:
        case["vocab"] = draw(st.integers(262145, 300000))
        case["batch"] = min(case["batch"], 2)
        case["kinds"] = case["kinds"][: case["batch"]]
    return case


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=scaled_examples(0.5))
@given(case=cases_with_long_rows(), choice=output_choices())
def test_outputs_match_torch(device, layout, case, choice):
    values = build_values(case)
    logits = place(
        values, layout, device,
        poison=case["poison"], pad=case["pad"], offset=case["offset"], step=case["step"],
    )  # fmt: skip
    batch, vocab = values.shape
    out, out_buffer = strided_out(
        batch, case["out_dtype"], device, stride=case["out_stride"], offset=case["out_offset"], pad=2
    )
    given_outputs, buffers = {}, {}
    for name in sorted(choice["outputs"]):
        given_outputs[name], buffers[name] = sentinel_output(
            name, batch, device, stride=choice["stride"], offset=choice["offset"]
        )
    fallback = None if choice["fallback"] is None else int(choice["fallback"] * vocab)

    if choice["via_torch_ops"]:
        torch.ops.safe_greedy.greedy_sample_outputs(
            out, logits, given_outputs.get("logprobs"), given_outputs.get("logsumexp"),
            given_outputs.get("valid"), fallback,
        )  # fmt: skip
    else:
        safe_greedy.greedy_sample(out, logits, fallback_token=fallback, **given_outputs)

    check_outputs(logits, out, given_outputs, fallback)
    for name in given_outputs:
        assert_only_view_written(name, buffers[name], given_outputs[name])
    assert torch.equal(to_bits(logits.cpu()), to_bits(values)), "greedy_sample modified logits"


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("vocab", [1, 151936, 262147])
def test_every_row_kind_at_real_and_long_vocabs(device, layout, vocab):
    """Every adversarial row kind once, each dtype, all outputs, with and
    without a fallback: the long rows are split on the GPU, and on a CPU
    with more threads than rows."""
    for dtype in LOGIT_DTYPES:
        values = make_rows(ROW_KINDS, vocab, dtype, seed=vocab + 1)
        logits = place(values, layout, device, poison="+inf", pad=5, offset=3)
        for fallback in (None, vocab - 1):
            g = safe_greedy.greedy(logits, fallback_token=fallback)
            check_outputs(logits, g.token_ids, g._asdict(), fallback)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
def test_huge_magnitudes_do_not_overflow(device, dtype):
    """Logits near 2e4 (6e4 in fp16), spread and tied: exp must be taken
    relative to the maximum, or the sums overflow to inf."""
    big = 6e4 if dtype == torch.float16 else 2e4
    gen = torch.Generator().manual_seed(5)
    rows = [
        torch.full((4099,), big),
        big - torch.rand(4099, generator=gen) * 30,
        -big + torch.rand(4099, generator=gen) * 30,
        torch.where(torch.rand(4099, generator=gen) < 0.5, big, -big),
    ]
    logits = torch.stack(rows).to(dtype).to(device)
    g = safe_greedy.greedy(logits)
    assert bool(torch.isfinite(g.logsumexp.cpu()).all())
    check_outputs(logits, g.token_ids, g._asdict(), None)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("dtype", LOGIT_DTYPES, ids=str)
def test_cpu_split_rows_combine_their_statistics(threads, dtype):
    """Fewer rows than threads: the CPU splits rows into segments and
    combines their pairs; NaN, +inf and all -inf segments among them."""
    vocab = 151666
    kinds = ["random", "sparse_nan", "inf_mix", "lone_finite", "all_neg_inf", "huge_negative"]
    values = make_rows(kinds, vocab, dtype, seed=threads)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for batch in (1, 2, 3, 6):
            logits = values[:batch]
            for out_dtype in INDEX_DTYPES:
                out = torch.full((batch,), SENTINEL, dtype=out_dtype)
                outputs = dict(
                    logprobs=torch.empty(batch),
                    logsumexp=torch.empty(batch),
                    valid=torch.empty(batch, dtype=torch.bool),
                )
                safe_greedy.greedy_sample(out, logits, fallback_token=7, **outputs)
                check_outputs(logits, out, outputs, 7)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_each_output_alone(device, name):
    """One output at a time: the others are not needed for it."""
    logits = make_rows(["random", "all_nan", "all_neg_inf", "inf_mix", "lone_finite"], 1031, torch.bfloat16, 9)
    logits = logits.to(device)
    out = torch.full((5,), SENTINEL, dtype=torch.int64, device=device)
    output, buffer = sentinel_output(name, 5, device, stride=2, offset=1)
    safe_greedy.greedy_sample(out, logits, **{name: output})
    check_outputs(logits, out, {name: output}, None)
    assert_only_view_written(name, buffer, output)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_fallback_token_alone_replaces_exactly_the_invalid_rows(device):
    values = make_rows(["random", "all_nan", "all_neg_inf", "lone_finite", "sparse_nan", "all_equal"], 77,
                       torch.float32, 2)  # fmt: skip
    values[5] = float("inf")  # all +inf: valid, token 0
    logits = values.to(device)
    out = torch.full((6,), SENTINEL, dtype=torch.int32, device=device)
    safe_greedy.greedy_sample(out, logits, fallback_token=76)
    check_outputs(logits, out, {}, 76)
    assert out.tolist()[1:3] == [76, 76] and out.tolist()[4] == 76 and out.tolist()[5] == 0


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_special_rows_exactly_as_torch(device):
    """The special values the issue names, row by row."""
    nan, inf = float("nan"), float("inf")
    logits = torch.tensor(
        [
            [1.0, nan, 2.0],  # NaN: logsumexp NaN, logprob NaN, invalid
            [1.0, inf, inf],  # +inf: logsumexp +inf, the chosen +inf's logprob NaN, valid
            [-inf, -inf, -inf],  # all -inf: logsumexp -inf, logprob NaN, invalid
            [-inf, -3.0, -inf],  # one finite: logsumexp -3, logprob 0
            [0.0, -0.0, 0.0],  # ties of zeros: log(3)
        ],
        device=device,
    )
    g = safe_greedy.greedy(logits)
    assert g.token_ids.tolist() == [1, 1, 0, 1, 0]
    assert g.valid.tolist() == [False, True, False, True, True]
    lse = g.logsumexp.cpu()
    assert torch.isnan(lse[0]) and lse[1] == inf and lse[2] == -inf and lse[3] == -3.0
    assert abs(lse[4].item() - torch.log(torch.tensor(3.0)).item()) < 1e-6
    lp = g.logprobs.cpu()
    assert torch.isnan(lp[:3]).all() and lp[3] == 0.0 and abs(lp[4].item() + 1.0986123) < 1e-6
    check_outputs(logits, g.token_ids, g._asdict(), None)


# ---------------------------------------------------------------------------
# The functional form
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 7), (4, 0, 9)], ids=str)
def test_greedy_keeps_the_leading_shape(device, shape):
    x = torch.randn(shape, device=device)
    g = safe_greedy.greedy(x)
    assert isinstance(g, safe_greedy.Greedy)
    leading = shape[:-1] if shape else ()
    for value, dtype in zip(g, (torch.int64, torch.float32, torch.float32, torch.bool)):
        assert value.shape == leading and value.dtype == dtype and value.device == x.device
    rows = x.reshape(-1, shape[-1] if shape else 1)
    if rows.shape[0]:
        flat = safe_greedy.Greedy(*(t.reshape(-1) for t in g))
        check_outputs(rows, flat.token_ids, flat._asdict(), None)


def test_greedy_rejects_empty_vocab_and_bad_fallback():
    with pytest.raises(IndexError, match=r"vocab"):
        safe_greedy.greedy(torch.empty(2, 0))
    with pytest.raises(ValueError, match=r"fallback_token.*\[0, 5\).*got 5"):
        safe_greedy.greedy(torch.randn(2, 5), fallback_token=5)
