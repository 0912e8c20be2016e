"""Helpers of the safe_greedy test suite: devices, bit-level views, the
reference argmax and the result checks, adversarial rows and layouts.

Everything here is about *checking* results; the adversarial inputs live next
to the tests that use them (tests/test_contract.py builds the general ones).
The hypothesis profiles and the fixtures are in conftest.py.
"""

import pytest
import torch
from hypothesis import settings

import safe_greedy  # noqa: F401  (registers torch.ops.safe_greedy)


def scaled_examples(fraction: float) -> int:
    """A share of the active profile's max_examples, for expensive tests."""
    return max(10, int(settings().max_examples * fraction))


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

HAS_CUDA = torch.cuda.is_available()

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA (or ROCm) device")

# Devices present on this machine: CPU always, CUDA when there is one.
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])

# For parametrisation: CUDA is always listed, so that on a CPU-only machine the
# GPU variants are counted in the summary instead of silently disappearing.
DEVICE_PARAMS = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[requires_cuda, pytest.mark.gpu]),
]

LOGIT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
INDEX_DTYPES = [torch.int32, torch.int64]


# ---------------------------------------------------------------------------
# Bit-level helpers
# ---------------------------------------------------------------------------

# Integer type with the same width as each logits type, for .view().
BITS_DTYPE = {
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def from_bits(bits, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of `dtype` whose elements have exactly the given bit patterns.

    `bits` are unsigned patterns (e.g. 0xFFC00001 for fp32, 0xFE01 for 16-bit
    types) as an int64 tensor or a sequence. The result is built with .view(),
    so NaN payloads and signs survive untouched.
    """
    bits = torch.as_tensor(bits, dtype=torch.int64)
    width = torch.finfo(dtype).bits
    # Reinterpret the unsigned pattern as the signed integer of that width.
    signed = torch.where(bits >= 2 ** (width - 1), bits - 2**width, bits)
    return signed.to(BITS_DTYPE[dtype]).view(dtype)


def to_bits(x: torch.Tensor) -> torch.Tensor:
    """The unsigned bit patterns of a float tensor, as int64 (for messages)."""
    width = torch.finfo(x.dtype).bits
    b = x.contiguous().view(BITS_DTYPE[x.dtype]).to(torch.int64)
    return torch.where(b < 0, b + 2**width, b)


# ---------------------------------------------------------------------------
# The reference and the check
# ---------------------------------------------------------------------------


def spec_argmax(logits: torch.Tensor) -> torch.Tensor:
    """The README's contract written out without torch.argmax.

    First NaN of the row if it has one; otherwise the lowest index whose value
    equals the row maximum (IEEE equality, so -0.0 ties +0.0 and -inf ties
    -inf). Computed in fp32 (fp16/bf16 widen exactly), in row chunks so that
    large GPU inputs do not need several full-size temporaries.
    """
    vocab = logits.shape[-1]
    rows = logits.reshape(-1, vocab)
    idx = torch.arange(vocab, device=logits.device)
    results = []
    chunk = max(1, 2**24 // max(vocab, 1))
    for start in range(0, rows.shape[0], chunk):
        x = rows[start : start + chunk].float()
        nan = torch.isnan(x)
        first_nan = torch.where(nan, idx, vocab).amin(-1)
        best = x.masked_fill(nan, float("-inf")).amax(-1, keepdim=True)
        first_best = torch.where(x == best, idx, vocab).amin(-1)
        results.append(torch.where(nan.any(-1), first_nan, first_best))
    if not results:
        return torch.empty(logits.shape[:-1], dtype=torch.int64)
    return torch.cat(results).reshape(logits.shape[:-1]).cpu()


def _describe_rows(rows, got, expected, logits2d, limit=8) -> str:
    lines = []
    for r in rows[:limit]:
        g, e = int(got[r]), int(expected[r])
        row = logits2d[r].cpu()  # one row at a time: the logits may be GBs on a GPU
        vocab = row.shape[0]
        value_at = lambda i: (
            f"{row[i].item()!r} (bits {to_bits(row[i : i + 1])[0].item():#x})"
            if 0 <= i < vocab
            else "out of range"
        )
        lines.append(
            f"  row {r}: got {g} -> {value_at(g)}, expected {e} -> {value_at(e)}"
        )
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more rows")
    return "\n".join(lines)


def assert_argmax_result(result: torch.Tensor, logits: torch.Tensor, *, check_spec: bool = True) -> None:
    """Check `result` against torch.argmax(logits, -1), bit for bit.

    Also checks, separately and first, that every entry is in [0, vocab): the
    aiter failure returned `vocab` itself, and the message should say so
    plainly. With check_spec, the result is also compared with spec_argmax, an
    independent statement of the contract, so that a disagreement between
    torch.argmax and the contract is reported as such rather than blamed on
    the library.
    """
    vocab = logits.shape[-1]
    assert result.dtype in (torch.int32, torch.int64), result.dtype
    assert tuple(result.shape) == tuple(logits.shape[:-1]), (result.shape, logits.shape)
    got = result.detach().cpu().to(torch.int64).reshape(-1)
    logits2d = logits.detach().reshape(-1, vocab)

    bad = ((got < 0) | (got >= vocab)).nonzero().flatten().tolist()
    assert not bad, (
        f"{len(bad)} of {got.numel()} results outside [0, {vocab}) "
        f"(logits {tuple(logits.shape)} {logits.dtype} on {logits.device}): "
        + ", ".join(f"row {r} -> {int(got[r])}" for r in bad[:16])
    )

    expected = torch.argmax(logits, -1).cpu().reshape(-1)
    if not torch.equal(got, expected):
        rows = (got != expected).nonzero().flatten().tolist()
        raise AssertionError(
            f"{len(rows)} of {got.numel()} rows differ from torch.argmax "
            f"(logits {tuple(logits.shape)} {logits.dtype}, strides {logits.stride()}, "
            f"on {logits.device}):\n" + _describe_rows(rows, got, expected, logits2d)
        )
    # Same check with rtol=0/atol=0 semantics, kept for its standard message
    # should the equality above ever be loosened.
    torch.testing.assert_close(got, expected, rtol=0, atol=0)

    if check_spec:
        spec = spec_argmax(logits).reshape(-1)
        if not torch.equal(expected, spec):
            rows = (expected != spec).nonzero().flatten().tolist()
            raise AssertionError(
                "torch.argmax itself disagrees with the README's contract "
                "(the library matched torch.argmax):\n"
                + _describe_rows(rows, expected, spec, logits2d)
            )


# ---------------------------------------------------------------------------
# Adversarial rows
# ---------------------------------------------------------------------------

# Sign bit, exponent-all-ones pattern and largest mantissa per type.
_FORMAT = {
    torch.float32: (0x80000000, 0x7F800000, 0x7FFFFF),
    torch.float16: (0x8000, 0x7C00, 0x3FF),
    torch.bfloat16: (0x8000, 0x7F80, 0x7F),
}

# A value that never is a valid index, for slots that must not be written.
SENTINEL = -12345


def random_nans(n: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """n NaNs with random signs and random non-zero payloads (quiet and signalling)."""
    sign, exponent, mantissa = _FORMAT[dtype]
    payload = torch.randint(1, mantissa + 1, (n,), generator=gen, dtype=torch.int64)
    negative = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int64).bool()
    bits = exponent | payload | torch.where(negative, sign, 0)
    return from_bits(bits, dtype)


def random_denormals(n: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """n subnormal numbers with random signs (some zeros of either sign mixed in)."""
    sign, _, mantissa = _FORMAT[dtype]
    payload = torch.randint(0, mantissa + 1, (n,), generator=gen, dtype=torch.int64)
    negative = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int64).bool()
    return from_bits(payload | torch.where(negative, sign, 0), dtype)


def special_value(name: str, dtype: torch.dtype) -> torch.Tensor:
    """One named special value as a 1-element tensor of `dtype` (exact bits)."""
    sign, exponent, mantissa = _FORMAT[dtype]
    fi = torch.finfo(dtype)
    bits = {
        "nan": exponent | (mantissa + 1) // 2,  # the canonical quiet NaN
        "-nan": sign | exponent | (mantissa + 1) // 2,
        "snan": exponent | 1,  # signalling, smallest payload
        "-snan": sign | exponent | 1,
        "nan_max_payload": exponent | mantissa,
        "+inf": exponent,
        "-inf": sign | exponent,
        "+0.0": 0,
        "-0.0": sign,
        "+denorm_min": 1,
        "-denorm_min": sign | 1,
        "+denorm_max": mantissa,
        "-denorm_max": sign | mantissa,
    }.get(name)
    if bits is not None:
        return from_bits([bits], dtype)
    value = {
        "max": fi.max,
        "min": fi.min,  # the most negative finite value
        "-1e30": -1e30,
        "-3.4e38": -3.4e38,
        "-1e5": -1e5,
        "-1.0": -1.0,
        "1.0": 1.0,
        "tiny": fi.tiny,
        "-tiny": -fi.tiny,
    }[name]
    # fp32 -> narrower types rounds like torch does (-1e30 is -inf in fp16).
    return torch.tensor([value], dtype=torch.float32).to(dtype)


SPECIAL_NAMES = [
    "nan", "-nan", "snan", "-snan", "nan_max_payload", "+inf", "-inf", "+0.0", "-0.0",
    "+denorm_min", "-denorm_min", "+denorm_max", "-denorm_max", "max", "min", "-1e30",
    "-3.4e38", "-1e5", "-1.0", "1.0", "tiny", "-tiny",
]  # fmt: skip


def _pick(gen: torch.Generator, options):
    return options[int(torch.randint(0, len(options), (1,), generator=gen))]


def _positions(n: int, count: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, n, (count,), generator=gen)


def make_row(kind: str, vocab: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """One row of `vocab` logits of `dtype` (on the CPU) of the given kind.

    The kinds are the inputs that broke or nearly broke greedy kernels: rows
    with no positive value (the aiter bug), NaNs anywhere, ties of every sort,
    and the maximum in the first or last few elements, where vector kernels
    peel a head and a tail.
    """
    edge = min(16, vocab)  # "the first/last few elements"

    def randn(scale=1.0, shift=0.0):
        return (torch.randn(vocab, generator=gen) * scale + shift).to(dtype)

    def negative():
        # Largest logit below zero: -(0.5 .. 50.5).
        return (-(torch.rand(vocab, generator=gen) * 50 + 0.5)).to(dtype)

    if kind == "random":
        return randn(scale=_pick(gen, [1e-3, 1.0, 30.0, 1e4]))
    if kind == "negative":
        return negative()
    if kind == "all_neg_inf":
        return special_value("-inf", dtype).expand(vocab).clone()
    if kind == "all_nan":
        return random_nans(vocab, dtype, gen)
    if kind == "all_equal":
        name = _pick(gen, ["-inf", "+inf", "+0.0", "-0.0", "-1e30", "-1e5", "min", "max",
                           "-denorm_min", "+denorm_max", "-1.0", "1.0"])  # fmt: skip
        return special_value(name, dtype).expand(vocab).clone()
    if kind == "huge_negative":
        # What NaN sanitisers write: everything at -1e30 / -3.4e38 / the type's
        # minimum (several of these round to -inf in fp16/bf16).
        choices = torch.cat([special_value(n, dtype) for n in ["-1e30", "-3.4e38", "min", "-1e5"]])
        return choices[torch.randint(0, 4, (vocab,), generator=gen)]
    if kind == "signed_zeros":
        # +0.0 and -0.0 tie: the first zero of either sign wins.
        zeros = torch.cat([special_value("+0.0", dtype), special_value("-0.0", dtype)])
        row = zeros[torch.randint(0, 2, (vocab,), generator=gen)]
        neg = torch.rand(vocab, generator=gen) < 0.3
        return torch.where(neg, negative(), row)
    if kind == "denormals":
        return random_denormals(vocab, dtype, gen)
    if kind == "ties":
        # Few distinct values: the maximum repeats many times.
        return torch.randint(-3, 2, (vocab,), generator=gen).to(dtype)
    if kind == "head_max":
        row = negative()
        k = int(torch.randint(0, edge, (1,), generator=gen))
        row[k] = 1.0
        # A tie later in the row: the head occurrence must win.
        row[int(torch.randint(k, vocab, (1,), generator=gen))] = 1.0
        return row
    if kind == "tail_max":
        row = negative()
        k = int(torch.randint(0, edge, (1,), generator=gen))
        row[vocab - 1 - k] = -0.25
        return row
    if kind == "tail_nan":
        row = randn()
        count = int(torch.randint(1, 3, (1,), generator=gen))
        pos = vocab - 1 - _positions(edge, count, gen)
        row[pos] = random_nans(count, dtype, gen)
        return row
    if kind == "sparse_nan":
        row = randn(scale=10.0)
        count = int(torch.randint(1, 4, (1,), generator=gen))
        row[_positions(vocab, count, gen)] = random_nans(count, dtype, gen)
        return row
    if kind == "inf_mix":
        row = randn()
        count = int(torch.randint(1, 4, (1,), generator=gen))
        row[_positions(vocab, count, gen)] = special_value("+inf", dtype)
        row[_positions(vocab, count, gen)] = special_value("-inf", dtype)
        return row
    if kind == "lone_finite":
        # All -inf but one negative finite value.
        row = special_value("-inf", dtype).expand(vocab).clone()
        row[int(torch.randint(0, vocab, (1,), generator=gen))] = -1e4 if dtype != torch.float16 else -6e4
        return row
    raise ValueError(f"unknown row kind {kind!r}")


ROW_KINDS = [
    "random", "negative", "all_neg_inf", "all_nan", "all_equal", "huge_negative",
    "signed_zeros", "denormals", "ties", "head_max", "tail_max", "tail_nan",
    "sparse_nan", "inf_mix", "lone_finite",
]  # fmt: skip


def make_rows(kinds, vocab: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """A [len(kinds), vocab] CPU tensor, row r of kind kinds[r]."""
    gen = torch.Generator().manual_seed(seed)
    if not kinds:
        return torch.empty(0, vocab, dtype=dtype)
    return torch.stack([make_row(k, vocab, dtype, gen) for k in kinds])


# ---------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------

LAYOUTS = ["contiguous", "padded", "offset", "transposed", "column_stride"]
POISONS = ["nan", "+inf", "max", "+0.0"]


def _filled(shape, dtype, poison: str, device) -> torch.Tensor:
    buf = torch.empty(shape, dtype=dtype, device=device)
    pattern = to_bits(special_value(poison, dtype))[0].item()
    width = torch.finfo(dtype).bits
    signed = pattern - 2**width if pattern >= 2 ** (width - 1) else pattern
    buf.view(BITS_DTYPE[dtype]).fill_(signed)
    return buf


def place(
    values: torch.Tensor,
    layout: str,
    device,
    *,
    poison: str = "nan",
    pad: int = 3,
    offset: int = 1,
    step: int = 2,
) -> torch.Tensor:
    """`values` ([batch, vocab], CPU) laid out on `device` as `layout`.

    Every element of the backing buffer that is not part of the view holds
    `poison` (NaN, +inf, the largest finite value or 0.0), so a kernel that
    reads past a row, between columns or before the first element picks up a
    value that wins the argmax, and the wrong answer shows.

      contiguous     a plain [batch, vocab] tensor
      padded         columns [offset, offset + vocab) of a [batch, W] buffer
                     with W odd: row starts have every alignment (SGLang's case)
      offset         a contiguous block starting `offset` elements into its
                     storage, so the first element is not 16-byte aligned
      transposed     the transpose of a [vocab, batch + pad] buffer's first
                     batch columns: vocab stride batch + pad, row stride 1
      column_stride  every `step`-th column of a wider buffer
    """
    batch, vocab = values.shape
    dtype = values.dtype
    bits = BITS_DTYPE[dtype]
    src = values.contiguous().view(bits).to(device)
    if layout == "contiguous":
        view = torch.empty(batch, vocab, dtype=dtype, device=device)
    elif layout == "padded":
        width = offset + vocab + pad
        width += 1 - width % 2  # odd row stride
        view = _filled((batch, width), dtype, poison, device)[:, offset : offset + vocab]
    elif layout == "offset":
        buf = _filled((offset + batch * vocab + pad,), dtype, poison, device)
        view = buf[offset : offset + batch * vocab].view(batch, vocab)
    elif layout == "transposed":
        view = _filled((vocab, batch + pad), dtype, poison, device)[:, :batch].t()
    elif layout == "column_stride":
        buf = _filled((batch, vocab * step + pad), dtype, poison, device)
        view = buf[:, : vocab * step : step]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    assert view.shape == (batch, vocab)
    # Copy the bits through an integer view: NaN payloads arrive exactly.
    view.view(bits).copy_(src)
    return view


def strided_out(batch: int, dtype: torch.dtype, device, *, stride: int = 1, offset: int = 0, pad: int = 0):
    """(out, buffer): `out` is a [batch] view of `buffer` with the given stride
    and offset; every slot of buffer holds SENTINEL."""
    buffer = torch.full((offset + batch * stride + pad,), SENTINEL, dtype=dtype, device=device)
    out = buffer[offset : offset + batch * stride : stride]
    assert out.shape == (batch,)
    return out, buffer


def assert_only_out_written(buffer: torch.Tensor, out: torch.Tensor) -> None:
    """Every slot of `buffer` outside the view `out` still holds SENTINEL."""
    mask = torch.ones(buffer.shape, dtype=torch.bool, device=buffer.device)
    if out.numel():
        start = out.storage_offset() - buffer.storage_offset()
        mask[start : start + out.numel() * out.stride(0) : out.stride(0)] = False
    others = buffer[mask].cpu()
    written = (others != SENTINEL).nonzero().flatten().tolist()
    assert not written, f"slots outside out were written: {written[:16]} -> {others[written[:16]].tolist()}"


def _refusal(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001  (the type is what is compared)
        return type(error)
    return None


def kernel_refusal_shared_by_fake(op, make_args):
    """The exception type the CPU kernel raises for ``op(*make_args(device))``
    (None if it accepts), after checking that meta tensors and FakeTensorMode
    give the same."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    real = _refusal(lambda: op(*make_args("cpu")))
    assert _refusal(lambda: op(*make_args("meta"))) is real
    with FakeTensorMode():
        assert _refusal(lambda: op(*make_args("cpu"))) is real
    return real
