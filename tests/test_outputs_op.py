"""greedy_sample_outputs as PyTorch sees it, and its refusals.

Bad arguments (any output of the wrong rank, length, dtype or device, an
output overlapping itself, another output or the logits, a fallback token
outside [0, vocab)) raise a clear error before anything is written; every
output is left untouched. The op has a schema that marks each output as
mutated, a fake kernel that refuses what the kernels refuse, counts its writes
in each written output's version, and runs under opcheck and
torch.compile(fullgraph=True).
"""

import contextlib
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safe_greedy
from helpers import (
    DEVICE_PARAMS,
    SENTINEL,
    kernel_refusal_shared_by_fake,
    make_rows,
    place,
    requires_cuda,
    scaled_examples,
)
from test_outputs import check_outputs

OP = torch.ops.safe_greedy.greedy_sample_outputs.default


def outputs_for(batch, device="cpu"):
    """Sentinel-filled outputs of the right kinds, by name."""
    return dict(
        out=torch.full((batch,), SENTINEL, dtype=torch.int64, device=device),
        logprobs=torch.full((batch,), 123.0, device=device),
        logsumexp=torch.full((batch,), 456.0, device=device),
        valid=torch.ones(batch, dtype=torch.bool, device=device),
    )


def call(outputs, logits, fallback_token=None):
    OP(outputs["out"], logits, outputs.get("logprobs"), outputs.get("logsumexp"), outputs.get("valid"),
       fallback_token)  # fmt: skip


def assert_refused_untouched(outputs, logits, exc, *patterns, fallback_token=None, watched=()):
    """The call raises ``exc`` matching every pattern; every output, and every
    tensor in ``watched``, holds what it held before."""
    tensors = [t for t in outputs.values() if t is not None] + list(watched)
    before = [t.clone() for t in tensors]
    with pytest.raises(exc) as info:
        call(outputs, logits, fallback_token)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in {str(info.value)!r}"
    for t, b in zip(tensors, before):
        # Compared as bytes: a view may read as NaN.
        same = torch.equal(t.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))
        assert same, "an output was written by a failing call"


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ["logprobs", "logsumexp", "valid"])
@pytest.mark.parametrize(
    "defect, pattern",
    [("short", r"one entry per row of logits \(4\), got 3"), ("2d", r"must be 1-D \[batch\], got a 2-D"),
     ("dtype", r"must be (float32|bool), got"), ("expanded", r"overlapping entries \(stride 0\)")],  # fmt: skip
)
def test_a_bad_output_is_refused_before_anything_is_written(device, name, defect, pattern):
    logits = torch.randn(4, 9, device=device)
    outputs = outputs_for(4, device)
    good = outputs[name]
    if defect == "short":
        outputs[name] = good[:3]
    elif defect == "2d":
        outputs[name] = good.reshape(4, 1)
    elif defect == "dtype":
        outputs[name] = torch.zeros(4, dtype=torch.float32 if name == "valid" else torch.float64, device=device)
    else:
        outputs[name] = good[:1].expand(4)
    assert_refused_untouched(outputs, logits, RuntimeError, rf"\b{name}\b", pattern, watched=[good])


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["logprobs", "logsumexp", "valid"])
def test_an_output_on_another_device_is_refused(name):
    for logits_on, output_on in (("cuda", "cpu"), ("cpu", "cuda")):
        logits = torch.randn(4, 9, device=logits_on)
        outputs = outputs_for(4, logits_on)
        outputs[name] = outputs_for(4, output_on)[name]
        assert_refused_untouched(outputs, logits, RuntimeError, rf"{name} must be on the logits' device")


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_outputs_sharing_memory_are_refused(device):
    logits = torch.randn(4, 9, device=device)
    # The same tensor twice.
    outputs = outputs_for(4, device)
    outputs["logsumexp"] = outputs["logprobs"]
    assert_refused_untouched(outputs, logits, RuntimeError, r"logsumexp must not share memory with logprobs")
    # logprobs in the bytes of out (a float32 view of the int64 storage).
    outputs = outputs_for(4, device)
    outputs["logprobs"] = outputs["out"].view(torch.float32)[::2]
    assert_refused_untouched(outputs, logits, RuntimeError, r"logprobs must not share memory with out")
    # valid interleaved with logsumexp in one buffer.
    buffer = torch.zeros(16, dtype=torch.uint8, device=device)
    outputs = outputs_for(4, device)
    outputs["logsumexp"] = buffer.view(torch.float32)
    outputs["valid"] = buffer[1::4].view(torch.bool)
    assert_refused_untouched(outputs, logits, RuntimeError, r"valid must not share memory with logsumexp")


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ["logprobs", "logsumexp", "valid"])
def test_an_output_inside_the_logits_is_refused(device, name):
    buffer = torch.randn(4, 16, device=device)
    logits = buffer[:, :9]
    outputs = outputs_for(4, device)
    if name == "valid":  # one byte of each row's padding
        outputs[name] = buffer.view(torch.bool)[:, 4 * 12]
    else:
        outputs[name] = buffer[:, 12]  # in the padding between rows
    assert_refused_untouched(outputs, logits, RuntimeError, rf"{name} must not share memory with logits",
                             watched=[buffer])  # fmt: skip


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("token", [-1, 9, 10, 2**40, -(2**40)])
def test_a_fallback_token_outside_the_vocab_is_refused(device, token):
    logits = torch.full((4, 9), float("nan"), device=device)
    outputs = outputs_for(4, device)
    assert_refused_untouched(outputs, logits, ValueError, r"fallback_token", r"\[0, 9\)", rf"got {token}\b",
                             fallback_token=token)  # fmt: skip


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_the_plain_checks_still_come_first(device):
    # logits of the wrong dtype, with every output given: the logits' error.
    outputs = outputs_for(4, device)
    assert_refused_untouched(outputs, torch.ones(4, 9, dtype=torch.float64, device=device), RuntimeError,
                             r"float32, float16 or bfloat16")  # fmt: skip
    assert_refused_untouched(outputs, torch.ones(4, 0, device=device), IndexError, r"vocab")


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_outputs_beside_each_other_in_one_arena_are_fine(device):
    # One float32 arena holding logits, then logprobs, logsumexp and valid's
    # bytes one after the other: apart, so accepted. (Interleaved outputs are
    # refused: their spans meet.)
    arena = torch.zeros(4 * 9 + 8 + 1, device=device)
    logits = arena[:36].view(4, 9)
    logits.copy_(make_rows(["random", "all_nan", "inf_mix", "all_neg_inf"], 9, torch.float32, 1).to(device))
    outputs = dict(
        out=torch.full((4,), SENTINEL, dtype=torch.int32, device=device),
        logprobs=arena[36:40],
        logsumexp=arena[40:44],
        valid=arena[44:].view(torch.bool),
    )
    call(outputs, logits, 3)
    check_outputs(logits, outputs["out"], {k: v for k, v in outputs.items() if k != "out"}, 3)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_empty_batch_is_a_no_op(device, dtype):
    logits = torch.empty(0, 151936, dtype=dtype, device=device)
    outputs = outputs_for(0, device)
    call(outputs, logits, 5)
    g = safe_greedy.greedy(logits)
    assert all(t.shape == (0,) for t in g)


# ---------------------------------------------------------------------------
# Schema, fake kernel, opcheck
# ---------------------------------------------------------------------------


def test_schema_marks_every_output_as_mutated():
    schema = OP._schema
    assert str(schema) == (
        "safe_greedy::greedy_sample_outputs(Tensor(a!) out, Tensor logits, Tensor(b!)? logprobs, "
        "Tensor(c!)? logsumexp, Tensor(d!)? valid, int? fallback_token) -> ()"
    )
    written = [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    assert written == ["out", "logprobs", "logsumexp", "valid"]
    assert len(schema.returns) == 0
    # The plain op is unchanged.
    assert str(torch.ops.safe_greedy.greedy_sample.default._schema) == (
        "safe_greedy::greedy_sample(Tensor(a!) out, Tensor logits) -> ()"
    )


def test_registered_for_cpu_and_cuda():
    assert torch._C._dispatch_has_kernel_for_dispatch_key(OP.name(), "CPU")
    if torch.cuda.is_available():
        assert torch._C._dispatch_has_kernel_for_dispatch_key(OP.name(), "CUDA")


OPCHECK_CASES = [
    # (dtype, out dtype, layout, which outputs, fallback)
    (torch.float32, torch.int64, "contiguous", ("logprobs", "logsumexp", "valid"), None),
    (torch.float16, torch.int32, "padded", ("logprobs",), 2),
    (torch.bfloat16, torch.int64, "transposed", ("valid",), 0),
    (torch.float32, torch.int32, "offset", ("logsumexp", "valid"), None),
    (torch.bfloat16, torch.int32, "column_stride", (), 16),
]


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dtype, out_dtype, layout, given_names, fallback", OPCHECK_CASES, ids=str)
def test_opcheck(device, dtype, out_dtype, layout, given_names, fallback):
    values = make_rows(["random", "sparse_nan", "negative", "all_neg_inf", "inf_mix"], 33, dtype, 5)
    logits = place(values, layout, device, poison="+inf")
    outputs = outputs_for(5, device)
    outputs["out"] = outputs["out"].to(out_dtype)
    for name in ("logprobs", "logsumexp", "valid"):
        if name not in given_names:
            outputs[name] = None
    args = (outputs["out"], logits, outputs["logprobs"], outputs["logsumexp"], outputs["valid"], fallback)
    torch.library.opcheck(OP, args)
    OP(*args)
    check_outputs(logits, outputs["out"], {k: v for k, v in outputs.items() if k != "out" and v is not None},
                  fallback)  # fmt: skip


OUTPUT_DTYPES_ANY = [torch.float32, torch.float64, torch.bool, torch.uint8, torch.int64]


@settings(max_examples=scaled_examples(0.5))
@given(
    batch=st.integers(0, 3),
    vocab=st.integers(0, 4),
    shapes=st.lists(st.lists(st.integers(0, 4), max_size=2), min_size=3, max_size=3),
    dtypes=st.lists(st.sampled_from(OUTPUT_DTYPES_ANY), min_size=3, max_size=3),
    present=st.lists(st.booleans(), min_size=3, max_size=3),
    fallback=st.one_of(st.none(), st.integers(-2, 5)),
)
def test_fake_kernel_agrees_with_the_kernel_on_any_arguments(batch, vocab, shapes, dtypes, present, fallback):
    # Any ranks, sizes and dtypes of the extra outputs and any fallback: meta
    # tensors and FakeTensorMode refuse exactly what the CPU kernel refuses,
    # with the same exception type.
    def make(device):
        extra = [torch.zeros(s, dtype=d, device=device) if p else None for s, d, p in zip(shapes, dtypes, present)]
        return (torch.zeros(batch, dtype=torch.int64, device=device), torch.zeros(batch, vocab, device=device),
                *extra, fallback)  # fmt: skip

    kernel_refusal_shared_by_fake(OP, make)


# ---------------------------------------------------------------------------
# Writes as in-place writes: versions, inference tensors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [contextlib.nullcontext, torch.inference_mode], ids=["normal", "inference_mode"])
@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_each_written_output_counts_in_its_version(device, mode):
    outputs = outputs_for(3, device)
    outputs["logsumexp"] = None
    before = {k: v._version for k, v in outputs.items() if v is not None}
    with mode():
        call(outputs, torch.randn(3, 5, device=device), 1)
    for name, version in before.items():
        assert outputs[name]._version > version, name


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_a_refused_call_leaves_every_version_as_it_was(device):
    outputs = outputs_for(3, device)
    before = {k: v._version for k, v in outputs.items()}
    with pytest.raises(ValueError):
        call(outputs, torch.randn(3, 5, device=device), 5)
    assert {k: v._version for k, v in outputs.items()} == before


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ["out", "logprobs", "logsumexp", "valid"])
def test_an_inference_tensor_output_is_refused_outside_inference_mode(device, name):
    logits = torch.randn(2, 5, device=device)
    outputs = outputs_for(2, device)
    with torch.inference_mode():
        outputs[name] = outputs_for(2, device)[name]
    assert_refused_untouched(outputs, logits, RuntimeError, rf"{name} is an inference tensor")
    with torch.inference_mode():
        call(outputs, logits)  # inside it, fine
    assert outputs["out"].tolist() == torch.argmax(logits, -1).tolist()


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ["logprobs", "logsumexp"])
def test_a_leaf_output_that_requires_grad_is_refused(device, name):
    # As torch refuses an in-place op on such a tensor: the values written
    # would not be what autograd thinks the leaf holds.
    outputs = outputs_for(2, device)
    outputs[name].requires_grad_(True)
    assert_refused_untouched(outputs, torch.randn(2, 5, device=device), RuntimeError,
                             rf"in-place write to {name}", "leaf tensor that requires grad")  # fmt: skip


def _wrapper_call(outputs, logits):
    safe_greedy.greedy_sample(outputs["out"], logits, logprobs=outputs["logprobs"],
                              logsumexp=outputs["logsumexp"], valid=outputs["valid"])  # fmt: skip


def _with_history(t):
    """`t`'s values in a non-leaf tensor that requires grad, and the leaf behind it."""
    leaf = torch.zeros_like(t, requires_grad=True)
    return leaf + t, leaf


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("name", ["logprobs", "logsumexp"])
@pytest.mark.parametrize("kind", ["leaf", "non-leaf"])
def test_an_output_that_requires_grad_is_refused_by_greedy_sample(device, name, kind):
    # The outputs carry no gradient: written into a non-leaf, autograd would
    # send its gradient to whatever computed the values the call overwrote.
    outputs = outputs_for(2, device)
    if kind == "leaf":
        outputs[name].requires_grad_(True)
    else:
        outputs[name], _ = _with_history(outputs[name])
    logits = torch.randn(2, 5, device=device)
    tensors = [t.detach() for t in outputs.values()]
    before = [t.clone() for t in tensors]
    versions = [t._version for t in outputs.values()]
    with pytest.raises(RuntimeError, match=rf"{name} requires grad, but greedy_sample's outputs carry no gradient"):
        _wrapper_call(outputs, logits)
    assert all(torch.equal(t, b) for t, b in zip(tensors, before)), "an output was written by a failing call"
    assert [t._version for t in outputs.values()] == versions


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_outputs_that_require_grad_are_written_under_no_grad(device):
    # As torch's in-place ops under no_grad: the write is not recorded.
    outputs = outputs_for(2, device)
    outputs["logprobs"], leaf = _with_history(outputs["logprobs"])
    outputs["logsumexp"].requires_grad_(True)
    logits = torch.randn(2, 5, device=device)
    with torch.no_grad():
        _wrapper_call(outputs, logits)
    want = torch.log_softmax(logits, -1).gather(-1, torch.argmax(logits, -1, keepdim=True))[:, 0]
    torch.testing.assert_close(outputs["logprobs"].detach(), want, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(outputs["logsumexp"].detach(), torch.logsumexp(logits, -1), rtol=2e-5, atol=2e-5)
    assert leaf.grad is None


# ---------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def sample_with_outputs(logits):
    n = logits.shape[0]
    out = torch.empty(n, dtype=torch.int32, device=logits.device)
    logprobs = torch.empty(n, device=logits.device)
    valid = torch.empty(n, dtype=torch.bool, device=logits.device)
    safe_greedy.greedy_sample(out, logits, logprobs=logprobs, valid=valid, fallback_token=2)
    # Used in the same graph: reads must follow the writes.
    return out.long() + 1, logprobs * 2, ~valid


def functional_greedy(logits):
    return safe_greedy.greedy(logits, fallback_token=0)


def into_given_outputs(out, logits, logsumexp, valid):
    safe_greedy.greedy_sample(out, logits, logsumexp=logsumexp, valid=valid)


def _nasty(batch, vocab, dtype, device, seed=0):
    kinds = ["random", "all_nan", "all_neg_inf", "inf_mix", "lone_finite", "sparse_nan", "huge_negative"]
    return make_rows([kinds[i % len(kinds)] for i in range(batch)], vocab, dtype, seed).to(device)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_fullgraph_greedy_sample_with_outputs(device):
    logits = _nasty(7, 1001, torch.bfloat16, device)
    token, logprobs, invalid = torch.compile(sample_with_outputs, fullgraph=True)(logits)
    out = token - 1
    check_outputs(logits, out, dict(logprobs=logprobs / 2, valid=~invalid), 2)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_greedy(device, dynamic):
    compiled = torch.compile(functional_greedy, fullgraph=True, dynamic=dynamic)
    for batch, seed in ((6, 0), (11, 1)):
        logits = _nasty(batch, 4097, torch.float32, device, seed).reshape(batch, 4097)
        g = compiled(logits)
        assert isinstance(g, tuple) and len(g) == 4
        check_outputs(logits, g[0], dict(logprobs=g[1], logsumexp=g[2], valid=g[3]), 0)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
def test_compile_fullgraph_mutating_graph_inputs(device):
    compiled = torch.compile(into_given_outputs, fullgraph=True)
    logits = _nasty(6, 130, torch.float16, device)
    outputs = outputs_for(6, device)
    compiled(outputs["out"], logits, outputs["logsumexp"], outputs["valid"])
    check_outputs(logits, outputs["out"], dict(logsumexp=outputs["logsumexp"], valid=outputs["valid"]), None)
    assert bool((outputs["logprobs"] == 123.0).all())  # not passed: untouched


@requires_cuda
@pytest.mark.gpu
def test_cuda_graph_capture_and_replay():
    logits = _nasty(5, 151936, torch.bfloat16, "cuda")
    outputs = outputs_for(5, "cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        call(outputs, logits, 1)  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        call(outputs, logits, 1)
    for seed in (3, 4):
        logits.copy_(_nasty(5, 151936, torch.bfloat16, "cuda", seed))
        graph.replay()
        torch.cuda.synchronize()
        check_outputs(logits, outputs["out"], {k: v for k, v in outputs.items() if k != "out"}, 1)
