"""Flush-denormal mode (torch.set_flush_denormal(True)) on the CPU.

In that mode the CPU reads subnormal fp32 operands as zero, and torch.argmax
ranks fp32 and bf16 subnormals as zeros: they tie with +-0.0 and with each
other. fp16 subnormals widen to normal fp32 values and keep their order. The
mode belongs to each thread; safe_greedy reads the calling thread's and
applies it to every row, whichever thread reads it.

torch applies it only on the threads that have it: threads of its pool that
were started before the mode was switched keep the old one, so torch.argmax of
a large input can flush some rows and not others. The reference here is
torch.argmax on the calling thread alone (torch.set_num_threads(1)), which is
the mode's answer, and the contract written out with subnormals zeroed.
"""

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safe_greedy
from helpers import from_bits, requires_cuda, scaled_examples, spec_argmax, to_bits

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Sign bit, exponent field of each format.
_SIGN_EXPONENT = {torch.float32: (0x80000000, 0x7F800000), torch.bfloat16: (0x8000, 0x7F80),
                  torch.float16: (0x8000, 0x7C00)}  # fmt: skip


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def flush_denormal():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-denormal mode")
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def torch_on_calling_thread(logits: torch.Tensor) -> torch.Tensor:
    with threads(1):
        return torch.argmax(logits, -1)


def flushed_spec(logits: torch.Tensor) -> torch.Tensor:
    """The contract applied to the values the mode compares: fp32 and bf16
    subnormals replaced by zeros (on the bits, so no floating-point mode
    touches it). fp16 keeps its subnormals: they widen to normal fp32."""
    if logits.dtype == torch.float16:
        return spec_argmax(logits)
    bits = to_bits(logits)
    _, exponent = _SIGN_EXPONENT[logits.dtype]
    return spec_argmax(from_bits(torch.where(bits & exponent == 0, 0, bits), logits.dtype))


def check_flushed(logits: torch.Tensor) -> None:
    got = safe_greedy.argmax(logits)
    expected = torch_on_calling_thread(logits)
    assert torch.equal(got, expected), (
        f"safe_greedy {got.tolist()[:8]} vs torch.argmax {expected.tolist()[:8]} "
        f"({logits.dtype}, {tuple(logits.shape)})"
    )
    # The same answer from the contract, so a torch quirk would show as such.
    assert torch.equal(expected, flushed_spec(logits))
    check_flushed_outputs(logits, expected)


def _assert_close(name: str, got: torch.Tensor, want: torch.Tensor) -> None:
    # The documented tolerance; NaN and infinities exactly where torch has them.
    assert torch.equal(got.isnan(), want.isnan()), name
    finite = want.isfinite()
    assert torch.equal(got[~finite & ~want.isnan()], want[~finite & ~want.isnan()]), name
    error = (got[finite] - want[finite]).abs()
    assert bool((error <= 2e-5 * want[finite].abs().clamp(min=1)).all()), (name, error.max().item())


def check_flushed_outputs(logits: torch.Tensor, expected: torch.Tensor) -> None:
    """greedy() in the mode: the token follows it; logsumexp and logprobs are
    torch's on the calling thread within the documented tolerance (a flushed
    subnormal moves them by less than 2^-126); valid does not depend on it."""
    got = safe_greedy.greedy(logits)
    assert torch.equal(got.token_ids, expected)
    with threads(1):
        wide = logits.float()
        logsumexp = torch.logsumexp(wide, -1)
        logprobs = torch.log_softmax(wide, -1).gather(-1, expected[:, None])[:, 0]
    _assert_close("logsumexp", got.logsumexp, logsumexp)
    _assert_close("logprobs", got.logprobs, logprobs)
    valid = ~logits.isnan().any(-1) & (wide.amax(-1) > float("-inf"))
    assert torch.equal(got.valid, valid)


def negative_subnormal_rows(batch: int, vocab: int, dtype: torch.dtype, zero_at: int) -> torch.Tensor:
    """Every element the smallest-magnitude negative subnormal but one +0.0.
    Flushed, they all tie at zero: index 0. Not flushed: index zero_at."""
    sign, _ = _SIGN_EXPONENT[dtype]
    bits = torch.full((batch, vocab), sign | 1, dtype=torch.int64)
    bits[:, zero_at] = 0
    return from_bits(bits, dtype)


def test_the_reported_cases(flush_denormal):
    # bf16: the subnormal 0x0001 ties the zero before it.
    x = from_bits([[0x0000, 0x0001]], torch.bfloat16)
    assert safe_greedy.argmax(x).tolist() == [0] == torch.argmax(x, -1).tolist()
    # fp32: -subnormal (0x80000100) everywhere, 0 at index 9000.
    x = from_bits(torch.full((1, 20000), 0x80000100, dtype=torch.int64), torch.float32)
    x[0, 9000] = 0.0
    assert safe_greedy.argmax(x).tolist() == [0] == torch.argmax(x, -1).tolist()


def test_default_mode_is_unchanged():
    torch.set_flush_denormal(False)
    x = from_bits([[0x0000, 0x0001]], torch.bfloat16)
    assert safe_greedy.argmax(x).tolist() == [1] == torch.argmax(x, -1).tolist()
    for dtype in DTYPES:
        x = negative_subnormal_rows(3, 5000, dtype, zero_at=4321)
        assert safe_greedy.argmax(x).tolist() == [4321] * 3


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 7), (2, 16), (3, 5000), (1, 151936), (64, 4096), (300, 1000)])
@pytest.mark.parametrize("layout", ["contiguous", "column_stride"])
def test_subnormals_tie_with_zero(flush_denormal, dtype, shape, layout):
    batch, vocab = shape
    x = negative_subnormal_rows(batch, vocab, dtype, zero_at=vocab - 1)
    if layout == "column_stride":
        x = torch.stack([x, x], -1)[..., 0]
    check_flushed(x)
    # fp16 subnormals are normal once widened: the zero wins there.
    assert safe_greedy.argmax(x).tolist() == [vocab - 1 if dtype == torch.float16 else 0] * batch


def test_fp16_subnormals_keep_their_order(flush_denormal):
    x = from_bits([[0x0000, 0x0001, 0x8001, 0x03FF, 0x0002]], torch.float16)
    assert safe_greedy.argmax(x).tolist() == [3] == torch.argmax(x, -1).tolist()


def test_the_callers_mode_survives_the_call(flush_denormal):
    x = torch.randn(64, 4096)
    safe_greedy.argmax(x)
    # Still flushing on this thread: torch sees the subnormal tie the zero.
    y = from_bits([[0x0000, 0x0001]], torch.bfloat16)
    assert torch.argmax(y, -1).tolist() == [0]


_KINDS = ["subnormal", "zero", "tiny normal", "nan", "-inf", "about -1"]


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_the_gpu_never_flushes(flush_denormal, dtype):
    """The host thread's mode does not reach the GPU: there subnormals keep
    their values, in torch.argmax and here."""
    bits = torch.zeros((2, 70000), dtype=torch.int64)
    bits[:, 777] = 1  # the least positive subnormal amid zeros
    cases = [(negative_subnormal_rows(3, 5000, dtype, zero_at=4321), [4321] * 3),
             (from_bits(bits, dtype), [777] * 2)]
    for x, unflushed in cases:
        x = x.cuda()
        assert torch.argmax(x, -1).tolist() == unflushed
        assert safe_greedy.argmax(x).tolist() == unflushed


def _bits_of_kind(kind: str, dtype: torch.dtype, n: int, gen: torch.Generator) -> torch.Tensor:
    """n bit patterns of one kind, with random signs and mantissas."""
    sign, exponent = _SIGN_EXPONENT[dtype]
    mantissa = (exponent & -exponent) - 1  # the bits below the exponent field
    signs = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int64) * sign
    mantissas = torch.randint(0, mantissa + 1, (n,), generator=gen, dtype=torch.int64)
    if kind == "subnormal":
        return signs | mantissas.clamp(min=1)
    if kind == "zero":
        return signs
    if kind == "tiny normal":
        return signs | (mantissa + 1) | mantissas
    if kind == "nan":
        return signs | exponent | mantissas.clamp(min=1)
    if kind == "-inf":
        return torch.full((n,), sign | exponent, dtype=torch.int64)
    return sign | (exponent >> 1) | mantissas  # about -1


@settings(max_examples=scaled_examples(0.5))
@given(
    dtype=st.sampled_from(DTYPES),
    batch=st.integers(1, 9),
    vocab=st.one_of(st.integers(1, 300), st.sampled_from([4095, 8193, 16385, 40000])),
    kinds=st.lists(st.sampled_from(_KINDS), min_size=1, max_size=3, unique=True),
    column_stride=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_torch_in_flush_mode(dtype, batch, vocab, kinds, column_stride, seed):
    """Rows mixing the kinds hypothesis picks: subnormals of both signs, zeros,
    the smallest normals, values near -1, -inf and NaN."""
    gen = torch.Generator().manual_seed(seed)
    n = batch * vocab
    choice = torch.randint(0, len(kinds), (n,), generator=gen)
    bits = torch.zeros(n, dtype=torch.int64)
    for k, kind in enumerate(kinds):
        bits = torch.where(choice == k, _bits_of_kind(kind, dtype, n, gen), bits)
    x = from_bits(bits.reshape(batch, vocab), dtype)
    if column_stride:
        x = torch.stack([x, x], -1)[..., 0]
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-denormal mode")
    try:
        check_flushed(x)
    finally:
        torch.set_flush_denormal(False)
    # And the default mode, on the same rows, is the ordinary contract.
    assert torch.equal(safe_greedy.argmax(x), spec_argmax(x))


_POOL_SCRIPT = textwrap.dedent(
    """
    import torch, safe_greedy
    from helpers import from_bits
    torch.set_flush_denormal({pool_mode})
    torch.randn(64, 151936).argmax(-1)  # the pool's threads start in this mode
    torch.set_flush_denormal({call_mode})
    bits = torch.zeros((64, 32000), dtype=torch.int64)
    bits[:, 12345] = 1  # the least subnormal, amid zeros
    x = from_bits(bits, torch.float32)
    print(sorted(set(safe_greedy.argmax(x).tolist())))
    """
)


@pytest.mark.parametrize("pool_mode,call_mode", [(True, False), (False, True)])
def test_pool_threads_follow_the_callers_mode(pool_mode, call_mode):
    """The pool's threads keep the mode they started in; the answer must
    still follow the caller's, for every row (torch.argmax may mix them)."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-denormal mode")
    if torch.get_num_threads() < 2:
        pytest.skip("needs a thread pool of two or more")
    script = _POOL_SCRIPT.format(pool_mode=pool_mode, call_mode=call_mode)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, env=env, cwd=os.path.dirname(__file__))
    assert child.returncode == 0, child.stderr
    assert child.stdout.split("\n")[0] == ("[0]" if call_mode else "[12345]"), child.stdout
