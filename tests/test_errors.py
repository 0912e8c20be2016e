"""Bad inputs raise a clear error and leave `out` untouched.

Contract items 5 and 6 (README): vocab == 0 is an error, batch == 0 is a
no-op, and a call that raises writes nothing. Messages say what was expected
and what came, so each test matches both halves.
"""

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import safe_greedy
from helpers import DEVICE_PARAMS, HAS_CUDA, SENTINEL, assert_argmax_result, requires_cuda

ENTRY_POINTS = {
    "wrapper": safe_greedy.greedy_sample,
    "torch_ops": lambda out, logits: torch.ops.safe_greedy.greedy_sample(out, logits),
}


@pytest.fixture(params=list(ENTRY_POINTS))
def greedy_sample(request):
    """Both ways in: the Python wrapper and the registered op."""
    return ENTRY_POINTS[request.param]


def sentinel_out(n, dtype=torch.int64, device="cpu"):
    return torch.full((n,), SENTINEL, dtype=dtype, device=device)


def assert_raises_untouched(call, out, exc, *patterns):
    """`call()` raises `exc` whose message matches every pattern, and every
    slot of `out` still holds what it held before."""
    before = out.clone()
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in message: {message!r}"
    assert torch.equal(out, before), f"out was written by a failing call: {out.tolist()}"


# ---------------------------------------------------------------------------
# logits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("batch", [3, 0])
def test_empty_vocab_is_an_error(device, greedy_sample, batch):
    # As torch.argmax: the argmax of an empty row is undefined, even with no rows.
    logits = torch.empty(batch, 0, device=device)
    with pytest.raises(IndexError):
        torch.argmax(logits, -1)
    out = sentinel_out(batch, device=device)
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, IndexError, r"vocab", re.escape(f"[{batch}, 0]")
    )


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()], ids=["1d", "3d", "0d"])
def test_logits_must_be_2d(device, greedy_sample, shape):
    logits = torch.randn(shape, device=device)
    out = sentinel_out(shape[0] if shape else 1, device=device)
    shown = "[" + ", ".join(str(s) for s in shape) + "]"
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, RuntimeError,
        r"2-D", rf"{len(shape)}-D", re.escape(shown),
    )  # fmt: skip


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize(
    "dtype, shown",
    [(torch.float64, "Double"), (torch.int32, "Int"), (torch.int64, "Long"), (torch.uint8, "Byte"),
     (torch.bool, "Bool")],  # fmt: skip
    ids=str,
)
def test_logits_dtype_must_be_fp32_fp16_or_bf16(device, greedy_sample, dtype, shown):
    logits = torch.ones(4, 7, device=device).to(dtype)
    out = sentinel_out(4, device=device)
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, RuntimeError,
        r"float32, float16 or bfloat16", rf"\b{shown}\b",
    )  # fmt: skip


# ---------------------------------------------------------------------------
# out
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("length", [3, 5, 0])
def test_out_length_must_match_batch(device, greedy_sample, length):
    logits = torch.randn(4, 9, device=device)
    out = sentinel_out(length, device=device)
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, RuntimeError, r"\(4\)", rf"got {length}\b"
    )


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize(
    "dtype, shown",
    [(torch.float32, "Float"), (torch.int16, "Short"), (torch.uint8, "Byte"), (torch.float64, "Double")],
    ids=str,
)
def test_out_dtype_must_be_int32_or_int64(device, greedy_sample, dtype, shown):
    logits = torch.randn(4, 9, device=device)
    out = torch.full((4,), 123, dtype=dtype, device=device)  # 123 fits every dtype here
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, RuntimeError, r"int32 or int64", rf"\b{shown}\b"
    )


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shape", [(4, 1), (1, 4), (2, 2)])
def test_out_must_be_1d(device, greedy_sample, shape):
    logits = torch.randn(4, 9, device=device)
    out = torch.full(shape, SENTINEL, dtype=torch.int64, device=device)
    shown = "[" + ", ".join(str(s) for s in shape) + "]"
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, RuntimeError, r"1-D", r"2-D", re.escape(shown)
    )


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("out_on", ["cpu", "cuda"])
def test_out_must_be_on_the_logits_device(greedy_sample, out_on):
    logits_on = "cuda" if out_on == "cpu" else "cpu"
    logits = torch.randn(4, 9, device=logits_on)
    out = sentinel_out(4, device=out_on)
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), out, RuntimeError,
        r"device", re.escape(str(logits.device)), re.escape(str(out.device)),
    )  # fmt: skip


@requires_cuda
@pytest.mark.gpu
@pytest.mark.skipif(HAS_CUDA and torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_out_must_be_on_the_same_gpu():
    logits = torch.randn(4, 9, device="cuda:0")
    out = sentinel_out(4, device="cuda:1")
    assert_raises_untouched(
        lambda: safe_greedy.greedy_sample(out, logits), out, RuntimeError, r"cuda:0", r"cuda:1"
    )


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_out_with_overlapping_entries_is_rejected(device, greedy_sample):
    # An expanded out (stride 0) would have every row write the same slot.
    logits = torch.randn(4, 9, device=device)
    storage = sentinel_out(1, device=device)
    out = storage.expand(4)
    assert out.stride(0) == 0
    assert_raises_untouched(
        lambda: greedy_sample(out, logits), storage, RuntimeError, r"overlap", r"stride 0"
    )


SHARED_MEMORY = r"out must not share memory with logits"


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_out_sharing_memory_with_logits_is_rejected(device, greedy_sample):
    # out aliases the first elements of logits (an int32 view of the same
    # storage): writing it would change the input being read.
    storage = torch.zeros(4 * 9, dtype=torch.int32, device=device)
    logits = storage.view(torch.float32).view(4, 9)
    out = storage[:4]
    assert_raises_untouched(lambda: greedy_sample(out, logits), storage, RuntimeError, SHARED_MEMORY)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_strided_out_inside_logits_is_rejected(device, greedy_sample):
    # Neither tensor dense, so torch's own overlap test cannot decide: out is a
    # column of the logits' buffer (every row's first element).
    buffer = torch.full((5, 8), -1.0, device=device)
    logits = buffer[:4]
    out = buffer.view(torch.int32)[1:, 0]
    assert_raises_untouched(lambda: greedy_sample(out, logits), buffer, RuntimeError, SHARED_MEMORY)
    # out in the padding of a padded logits buffer: logits never reads those
    # elements, but they lie between rows it does read.
    padded = torch.randn(4, 16, device=device)
    logits = padded[:, :8]
    out = padded.view(torch.int32)[0, 8:12]
    assert_raises_untouched(lambda: greedy_sample(out, logits), padded, RuntimeError, SHARED_MEMORY)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_out_beside_logits_in_one_buffer_is_fine(device, greedy_sample):
    # One arena holding logits and, after them, a strided out.
    arena = torch.zeros(4 * 8 + 8, device=device)
    logits = arena[:32].view(4, 8)
    logits.copy_(torch.randn(4, 8, device=device))
    out = arena[32:].view(torch.int32)[::2]
    greedy_sample(out, logits)
    assert_argmax_result(out, logits)


@given(
    batch=st.integers(1, 5),
    vocab=st.integers(1, 9),
    row_pad=st.integers(0, 4),
    out_offset=st.integers(0, 80),
    out_stride=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_out_anywhere_in_the_logits_buffer(batch, vocab, row_pad, out_offset, out_stride, seed):
    # Any placement of an int32 out in the buffer that holds float32 logits:
    # refused, untouched, exactly when the two spans meet; otherwise the
    # answer of torch.argmax on the logits as they were.
    row_stride = vocab + row_pad
    logits_elements = (batch - 1) * row_stride + vocab
    out_elements = (batch - 1) * out_stride + 1
    buffer = torch.zeros(max(logits_elements, out_offset + out_elements) + 1)
    gen = torch.Generator().manual_seed(seed)
    buffer.copy_(torch.randn(buffer.shape, generator=gen))
    logits = buffer.as_strided((batch, vocab), (row_stride, 1))
    out = buffer.view(torch.int32).as_strided((batch,), (out_stride,), out_offset)
    expected = torch.argmax(logits.clone(), -1)
    if out_offset < logits_elements:  # out starts inside the logits' span
        assert_raises_untouched(
            lambda: safe_greedy.greedy_sample(out, logits), buffer, RuntimeError, SHARED_MEMORY
        )
    else:
        safe_greedy.greedy_sample(out, logits)
        assert torch.equal(out.long(), expected)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_expanded_out_of_one_row_is_fine(device):
    # With a single row, stride 0 overlaps nothing: it is an ordinary out.
    logits = torch.tensor([[1.0, 3.0, 2.0]], device=device)
    storage = sentinel_out(1, device=device)
    out = storage.expand(1)
    safe_greedy.greedy_sample(out, logits)
    assert storage.tolist() == [1]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_several_defects_at_once_raise_and_write_nothing(device, greedy_sample):
    # Several defects at once (wrong length and wrong logits dtype): it
    # raises, and out is still untouched.
    logits = torch.ones(4, 9, dtype=torch.float64, device=device)
    out = sentinel_out(7, device=device)
    assert_raises_untouched(lambda: greedy_sample(out, logits), out, RuntimeError, r"got")


# ---------------------------------------------------------------------------
# batch == 0
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("out_dtype", [torch.int32, torch.int64], ids=str)
def test_empty_batch_is_a_no_op(device, greedy_sample, dtype, out_dtype):
    logits = torch.empty(0, 151666, dtype=dtype, device=device)
    out = torch.empty(0, dtype=out_dtype, device=device)
    assert greedy_sample(out, logits) is None
    assert out.shape == (0,)
    # A zero-row slice of a real buffer is also fine.
    buffer = torch.randn(3, 100, device=device).to(dtype)
    greedy_sample(out, buffer[1:1])


# ---------------------------------------------------------------------------
# safe_greedy.argmax
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("value", [1.0, -float("inf"), float("nan"), -0.0], ids=str)
def test_argmax_of_a_0d_tensor_is_0_like_torch(device, value):
    x = torch.tensor(value, device=device)
    result = safe_greedy.argmax(x)
    assert result.dim() == 0 and result.dtype == torch.int64 and result.device == x.device
    assert torch.equal(result, torch.argmax(x, -1))
    with pytest.raises(RuntimeError, match=r"float32, float16 or bfloat16.*Double"):
        safe_greedy.argmax(torch.tensor(value, dtype=torch.float64, device=device))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_argmax_of_a_1d_tensor_is_0d(device, dtype):
    x = torch.tensor([-1.0, 5.0, float("nan"), 5.0], device=device).to(dtype)
    result = safe_greedy.argmax(x)
    assert result.dim() == 0 and result.dtype == torch.int64 and result.device == x.device
    assert int(result) == 2  # the NaN
    assert torch.equal(result, torch.argmax(x, -1))
    y = torch.tensor([-2.0, 3.0, 3.0], device=device).to(dtype)
    assert torch.equal(safe_greedy.argmax(y), torch.argmax(y, -1))


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shape", [(2, 3, 5), (4, 1, 7), (2, 0, 5), (1, 2, 3, 4)], ids=str)
def test_argmax_keeps_the_leading_shape(device, shape):
    x = torch.randn(shape, device=device)
    result = safe_greedy.argmax(x)
    assert result.shape == shape[:-1] and result.dtype == torch.int64
    assert_argmax_result(result, x)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_argmax_rejects_empty_vocab_and_bad_dtypes(device):
    with pytest.raises(IndexError, match=r"vocab.*\[2, 0\]"):
        safe_greedy.argmax(torch.empty(2, 0, device=device))
    with pytest.raises(IndexError):
        safe_greedy.argmax(torch.empty(2, 3, 0, device=device))
    with pytest.raises(RuntimeError, match=r"float32, float16 or bfloat16.*Double"):
        safe_greedy.argmax(torch.ones(2, 3, dtype=torch.float64, device=device))


def test_argmax_empty_vocab_message_names_the_vocab_dimension():
    # Reshaping [..., 0] to [-1, 0] fails inside torch; argmax must say why first.
    with pytest.raises(IndexError, match=r"vocab.*\(2, 3, 0\)|vocab.*\[2, 3, 0\]"):
        safe_greedy.argmax(torch.empty(2, 3, 0))
