"""The op as PyTorch sees it: schema, fake kernel, opcheck, torch.compile.

The README's API: the op is registered (through the stable ABI) as
`safe_greedy::greedy_sample(Tensor(a!) out, Tensor logits) -> ()` with CPU and
CUDA kernels and a fake kernel, so that torch.library.opcheck and
torch.compile(fullgraph=True) work. torch.compile on the CPU is slow (it builds
C++), so the compiled tests here are few and small.
"""

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch._subclasses.fake_tensor import FakeTensorMode

import safe_greedy
from helpers import (
    DEVICE_PARAMS,
    SENTINEL,
    assert_argmax_result,
    kernel_refusal_shared_by_fake,
    make_rows,
    place,
    scaled_examples,
)

OP = torch.ops.safe_greedy.greedy_sample.default


def test_schema_marks_out_as_mutated_and_returns_nothing():
    schema = OP._schema
    assert str(schema) == "safe_greedy::greedy_sample(Tensor(a!) out, Tensor logits) -> ()"
    out_arg, logits_arg = schema.arguments
    assert out_arg.alias_info is not None and out_arg.alias_info.is_write
    assert logits_arg.alias_info is None
    assert len(schema.returns) == 0


def test_registered_for_cpu_and_cuda():
    # The CUDA kernel is registered in CUDA (and ROCm) builds only; a CPU-only
    # build is fine on a machine without a GPU, but a GPU machine needs it.
    assert torch._C._dispatch_has_kernel_for_dispatch_key(OP.name(), "CPU")
    if torch.cuda.is_available():
        assert torch._C._dispatch_has_kernel_for_dispatch_key(OP.name(), "CUDA")


OPCHECK_CASES = [
    # (dtype, out dtype, layout, batch, vocab)
    (torch.float32, torch.int64, "contiguous", 4, 33),
    (torch.float16, torch.int32, "padded", 3, 129),
    (torch.bfloat16, torch.int64, "transposed", 5, 17),
    (torch.float32, torch.int32, "offset", 2, 4097),
    (torch.bfloat16, torch.int32, "column_stride", 3, 65),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype, out_dtype, layout, batch, vocab", OPCHECK_CASES, ids=str)
def test_opcheck(device, dtype, out_dtype, layout, batch, vocab):
    values = make_rows(["random", "sparse_nan", "negative", "all_neg_inf", "ties"][:batch], vocab, dtype, 5)
    logits = place(values, layout, device, poison="+inf")
    out = torch.full((batch,), SENTINEL, dtype=out_dtype, device=device)
    # Raises with the failing sub-test's name if schema, fake kernel, autograd
    # registration or AOT dispatch is inconsistent with the real kernel.
    torch.library.opcheck(OP, (out, logits))
    # opcheck runs the op on copies; run it for real and check the result too.
    OP(out, logits)
    assert_argmax_result(out, logits)


def test_fake_kernel_checks_shapes_without_data():
    # Under FakeTensorMode the real kernel never runs; the fake kernel still
    # rejects a mismatched out.
    with FakeTensorMode():
        logits = torch.empty(4, 10)
        OP(torch.empty(4, dtype=torch.int64), logits)  # fine, returns nothing
        with pytest.raises(Exception, match=r"4"):
            OP(torch.empty(3, dtype=torch.int64), logits)
        with pytest.raises(Exception, match=r"2-D"):
            OP(torch.empty(4, dtype=torch.int64), torch.empty(4, 10, 2))


# Arguments the kernels refuse without reading any data: (out, logits) as
# (shape, dtype) pairs.
BAD_ARGUMENTS = {
    "logits_1d": (((4,), torch.int64), ((4,), torch.float32)),
    "logits_3d": (((4,), torch.int64), ((4, 3, 2), torch.float32)),
    "logits_float64": (((4,), torch.int64), ((4, 3), torch.float64)),
    "logits_int32": (((4,), torch.int64), ((4, 3), torch.int32)),
    "empty_vocab": (((4,), torch.int64), ((4, 0), torch.bfloat16)),
    "out_2d": (((4, 1), torch.int64), ((4, 3), torch.float32)),
    "out_too_short": (((3,), torch.int64), ((4, 3), torch.float16)),
    "out_float32": (((4,), torch.float32), ((4, 3), torch.float32)),
    "out_uint8": (((4,), torch.uint8), ((4, 3), torch.float32)),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_fake_kernel_refuses_what_the_kernel_refuses(case):
    # The same refusal, and the same exception type, from the CPU kernel, from
    # meta tensors and under FakeTensorMode: tracing must not accept a call
    # that would fail when run.
    (out_shape, out_dtype), (logits_shape, logits_dtype) = BAD_ARGUMENTS[case]
    real = kernel_refusal_shared_by_fake(
        OP,
        lambda device: (
            torch.empty(out_shape, dtype=out_dtype, device=device),
            torch.empty(logits_shape, dtype=logits_dtype, device=device),
        )
    )
    assert real is not None, f"the CPU kernel accepted {case}"


LOGITS_DTYPES_ANY = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.bool]
OUT_DTYPES_ANY = [torch.int64, torch.int32, torch.int16, torch.uint8, torch.float32]


@settings(max_examples=scaled_examples(0.5))
@given(
    logits_shape=st.lists(st.integers(0, 3), max_size=3),
    logits_dtype=st.sampled_from(LOGITS_DTYPES_ANY),
    out_shape=st.lists(st.integers(0, 4), max_size=2),
    out_dtype=st.sampled_from(OUT_DTYPES_ANY),
)
def test_fake_kernel_agrees_with_the_kernel_on_any_arguments(logits_shape, logits_dtype, out_shape, out_dtype):
    # Any ranks, sizes (empty ones included) and dtypes: the fake kernel, on
    # meta tensors and under FakeTensorMode, accepts exactly what the CPU
    # kernel accepts, and refuses the rest with the same exception type.
    kernel_refusal_shared_by_fake(
        OP,
        lambda device: (
            torch.zeros(out_shape, dtype=out_dtype, device=device),
            torch.zeros(logits_shape, dtype=logits_dtype, device=device),
        )
    )


@pytest.mark.parametrize("rows", [1, 4])
def test_fake_kernel_agrees_on_an_expanded_out(rows):
    # Stride 0: one slot for every row, which the kernels refuse for more than
    # one row; meta and fake tensors must agree.
    real = kernel_refusal_shared_by_fake(
        OP,
        lambda device: (
            torch.zeros(1, dtype=torch.int64, device=device).expand(rows),
            torch.zeros(rows, 5, device=device),
        )
    )
    assert (real is None) == (rows == 1)


def test_meta_logits_with_a_cpu_out_are_refused():
    # Mixed devices are refused by the fake kernel too (meta takes the call).
    out = torch.full((2,), SENTINEL, dtype=torch.int64)
    with pytest.raises(RuntimeError, match=r"out must be on the logits' device \(meta\), got cpu"):
        OP(out, torch.empty(2, 5, device="meta"))
    assert out.tolist() == [SENTINEL, SENTINEL]


# ---------------------------------------------------------------------------
# out as an in-place write, for autograd and inference mode
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [contextlib.nullcontext, torch.inference_mode], ids=["normal", "inference_mode"])
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_writing_out_counts_in_its_version(device, mode):
    # Inside inference mode too, as for torch's own in-place ops: it skips
    # autograd, not the version counters of normal tensors.
    out = torch.zeros(3, dtype=torch.int64, device=device)
    before = out._version
    with mode():
        safe_greedy.greedy_sample(out, torch.randn(3, 5, device=device))
    assert out._version > before


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_refused_call_leaves_the_version_as_it_was(device):
    # Nothing was written, so autograd has nothing to refuse.
    out = torch.zeros(3, dtype=torch.int64, device=device)
    before = out._version
    with pytest.raises(RuntimeError, match=r"one entry per row"):
        safe_greedy.greedy_sample(out, torch.randn(4, 5, device=device))
    assert out._version == before


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_backward_refuses_an_index_overwritten_after_it_was_saved(device):
    # gather saves its index for backward; overwriting the index in place must
    # make backward raise, as it does for torch's own in-place ops, not
    # silently route gradients by the new values.
    x = torch.randn(5, device=device, requires_grad=True)
    index = torch.tensor([3, 2], device=device)
    y = x.gather(0, index).sum()
    safe_greedy.greedy_sample(index, torch.randn(2, 5, device=device))
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation"):
        y.backward()


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_inference_tensor_out(device):
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 0.0]], device=device)
    with torch.inference_mode():
        out = torch.full((2,), SENTINEL, dtype=torch.int64, device=device)
        safe_greedy.greedy_sample(out, logits)  # written inside inference mode
    assert out.tolist() == [1, 0]
    # Outside inference mode torch refuses in-place writes to it; so does this
    # op, before writing, whether logits is an inference tensor or not.
    out_before = out.clone()
    with torch.inference_mode():
        inference_logits = logits.flip(1)
    for other_logits in (logits.flip(1), inference_logits):
        with pytest.raises(RuntimeError, match=r"out is an inference tensor"):
            safe_greedy.greedy_sample(out, other_logits)
    assert torch.equal(out, out_before)


# ---------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------


def sample_into_new_out(logits):
    out = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)
    safe_greedy.greedy_sample(out, logits)
    return out


def sample_and_use(logits):
    # The op's result feeds further computation in the same graph: the
    # compiler must order the read of out after the in-place write.
    out = torch.empty(logits.shape[0], dtype=torch.int32, device=logits.device)
    safe_greedy.greedy_sample(out, logits * 2.0)
    return out.long() + 1


def functional_argmax(logits):
    return safe_greedy.argmax(logits)


def sample_into_given_out(out, logits):
    torch.ops.safe_greedy.greedy_sample(out, logits)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Each compiled test starts from a clean cache so they do not interfere.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _nasty_logits(batch, vocab, dtype, device, seed=0):
    kinds = ["random", "all_nan", "all_neg_inf", "negative", "tail_max", "sparse_nan", "signed_zeros"]
    return make_rows([kinds[i % len(kinds)] for i in range(batch)], vocab, dtype, seed).to(device)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_fullgraph_greedy_sample(device):
    compiled = torch.compile(sample_into_new_out, fullgraph=True)
    logits = _nasty_logits(7, 1001, torch.float32, device)
    result = compiled(logits)
    assert result.dtype == torch.int64
    assert_argmax_result(result, logits)

    compiled_use = torch.compile(sample_and_use, fullgraph=True)
    logits = _nasty_logits(5, 257, torch.bfloat16, device, seed=1)
    assert torch.equal(compiled_use(logits).cpu(), torch.argmax(logits * 2.0, -1).cpu() + 1)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_fullgraph_argmax(device):
    compiled = torch.compile(functional_argmax, fullgraph=True)
    logits = _nasty_logits(6, 4097, torch.float16, device).reshape(2, 3, 4097)
    result = compiled(logits)
    assert result.shape == (2, 3)
    assert_argmax_result(result, logits)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_fullgraph_mutating_a_graph_input(device):
    # out passed in from outside: the mutation must be visible to the caller.
    compiled = torch.compile(sample_into_given_out, fullgraph=True)
    logits = _nasty_logits(6, 130, torch.float32, device)
    out = torch.full((6,), SENTINEL, dtype=torch.int64, device=device)
    compiled(out, logits)
    assert_argmax_result(out, logits)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_dynamic_batch(device):
    compiled = torch.compile(sample_into_new_out, fullgraph=True, dynamic=True)
    for batch, seed in ((3, 0), (11, 1), (3, 2)):
        logits = _nasty_logits(batch, 509, torch.bfloat16, device, seed=seed)
        result = compiled(logits)
        assert result.shape == (batch,)
        assert_argmax_result(result, logits)
