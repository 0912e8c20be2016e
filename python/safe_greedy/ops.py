"""The Python face of torch.ops.safe_greedy.greedy_sample and greedy_sample_outputs."""

from typing import NamedTuple, Optional

import torch

from safe_greedy import extension  # noqa: F401  (loads _C, which registers torch.ops.safe_greedy)

# Looked up once: finding an op through torch.ops on every call costs about
# as much as the rest of a small CPU call's host work.
_GREEDY_SAMPLE = torch.ops.safe_greedy.greedy_sample.default
_GREEDY_SAMPLE_OUTPUTS = torch.ops.safe_greedy.greedy_sample_outputs.default
_grad_enabled = torch.is_grad_enabled


def greedy_sample(
    out: torch.Tensor,
    logits: torch.Tensor,
    *,
    logprobs: Optional[torch.Tensor] = None,
    logsumexp: Optional[torch.Tensor] = None,
    valid: Optional[torch.Tensor] = None,
    fallback_token: Optional[int] = None,
) -> None:
    """Write ``torch.argmax(logits[r])`` into ``out[r]`` for every row ``r``.

    ``logits`` is ``[batch, vocab]`` float32, float16 or bfloat16 with any
    strides; ``out`` is ``[batch]`` int32 or int64 on the same device. The first
    NaN of a row wins; otherwise the lowest index of the maximum (``-0.0`` ties
    ``+0.0``). Every result lies in ``[0, vocab)``. On bad input it raises and
    leaves every output untouched.

    From the same read of the logits, where given (each ``[batch]``, on the
    logits' device, any stride):

    - ``logprobs`` (float32): ``log_softmax(logits[r].float())[out[r]]``;
    - ``logsumexp`` (float32): ``logsumexp(logits[r].float())``;
    - ``valid`` (bool): the row holds no NaN and its maximum is above ``-inf``;
    - ``fallback_token`` (an int in ``[0, vocab)``): written to ``out[r]`` for
      the rows that are not valid, instead of torch's answer for them.

    NaN and infinities as torch gives them: a row with a NaN has NaN
    ``logsumexp``, one with a ``+inf`` ``+inf``, an all ``-inf`` row ``-inf``;
    ``logprobs`` is NaN for those rows. The outputs carry no gradient: a
    ``logprobs`` or ``logsumexp`` that requires grad is refused while grad
    mode is on.
    """
    _require_tensor("greedy_sample(): out", out)
    _require_tensor("greedy_sample(): logits", logits)
    if logprobs is None and logsumexp is None and valid is None and fallback_token is None:
        _GREEDY_SAMPLE(out, logits)
    else:
        _require_optional_tensor("greedy_sample(): logprobs", logprobs)
        _require_optional_tensor("greedy_sample(): logsumexp", logsumexp)
        _require_optional_tensor("greedy_sample(): valid", valid)
        _require_optional_int("greedy_sample(): fallback_token", fallback_token)
        # Tested inline, grad mode first (off where servers sample): the
        # call's whole host time is a few microseconds.
        if _grad_enabled():
            if logprobs is not None and logprobs.requires_grad:
                _refuse_output_with_grad("logprobs")
            if logsumexp is not None and logsumexp.requires_grad:
                _refuse_output_with_grad("logsumexp")
        _GREEDY_SAMPLE_OUTPUTS(out, logits, logprobs, logsumexp, valid, fallback_token)


class Greedy(NamedTuple):
    """What :func:`greedy` returns, one entry per row."""

    token_ids: torch.Tensor  # int64
    logprobs: torch.Tensor  # float32
    logsumexp: torch.Tensor  # float32
    valid: torch.Tensor  # bool


def greedy(logits: torch.Tensor, *, fallback_token: Optional[int] = None) -> Greedy:
    """Every output of :func:`greedy_sample` for ``[..., vocab]`` logits, from one read.

    ``token_ids`` is ``torch.argmax(logits, -1)`` as int64 (``fallback_token``
    instead for the rows that are not valid, when given), ``logprobs`` the
    chosen tokens' log-probabilities, ``logsumexp`` the rows' logsumexp,
    ``valid`` whether each row holds no NaN and a maximum above ``-inf``.
    """
    rows, leading = _as_rows("greedy(): logits", logits)
    _require_optional_int("greedy(): fallback_token", fallback_token)
    n = rows.shape[0]
    token_ids = rows.new_empty(n, dtype=torch.int64)
    logprobs = rows.new_empty(n, dtype=torch.float32)
    logsumexp = rows.new_empty(n, dtype=torch.float32)
    valid = rows.new_empty(n, dtype=torch.bool)
    _GREEDY_SAMPLE_OUTPUTS(token_ids, rows, logprobs, logsumexp, valid, fallback_token)
    return Greedy(
        token_ids.reshape(leading), logprobs.reshape(leading), logsumexp.reshape(leading), valid.reshape(leading)
    )


def _as_rows(what: str, logits: torch.Tensor):
    """``logits`` as ``[rows, vocab]`` and the leading shape of the results.

    A 0-D tensor is one row of one element, as for torch.argmax.
    """
    _require_tensor(what, logits)
    if logits.dim() == 0:
        return logits.reshape(1, 1), ()
    if logits.shape[-1] == 0:
        # Checked here: flattening the leading dimensions of an empty tensor
        # would fail first, with a message about reshaping. IndexError, as
        # torch.argmax raises.
        raise IndexError(
            f"argmax: the vocab dimension of logits is empty (shape {list(logits.shape)}); "
            "argmax of an empty row is undefined"
        )
    leading = logits.shape[:-1]
    rows = logits.reshape(-1, logits.shape[-1]) if logits.dim() != 2 else logits
    return rows, leading


def argmax(logits: torch.Tensor) -> torch.Tensor:
    """``torch.argmax(logits, -1)`` for ``[..., vocab]`` logits, as int64.

    A 0-D tensor is one row of one element, as for torch: the answer is 0.
    """
    rows, leading = _as_rows("argmax(): logits", logits)
    # new_empty, not torch.empty: under torch.vmap it makes one out per call.
    out = rows.new_empty(rows.shape[0], dtype=torch.int64)
    _GREEDY_SAMPLE(out, rows)
    return out.reshape(leading)


def _require_tensor(what: str, value) -> None:
    # TypeError, as torch's own functions raise for a list or None.
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a Tensor, not {type(value).__name__}")


def _require_optional_tensor(what: str, value) -> None:
    if value is not None:
        _require_tensor(what, value)


def _refuse_output_with_grad(name: str) -> None:
    # The outputs carry no gradient. Written into a tensor that requires grad,
    # autograd would send that tensor's gradient through the values it held
    # before the call, as torch's out= functions refuse to let it. The op
    # itself refuses only a leaf (torch's in-place check, which its write
    # passes through: csrc/extension/inplace_write.h); here every such
    # output is refused, before anything is written.
    raise RuntimeError(
        f"greedy_sample: {name} requires grad, but greedy_sample's outputs carry no gradient, "
        f"and autograd would send {name}'s gradient through the values it held before the call; "
        f"pass a tensor that does not require grad ({name}.detach()), or call under torch.no_grad()"
    )


def _require_optional_int(what: str, value) -> None:
    # bool is an int to Python but not a token id; a SymInt is what
    # torch.compile may pass for an int.
    if value is not None and (not isinstance(value, (int, torch.SymInt)) or isinstance(value, bool)):
        raise TypeError(f"{what} must be an int or None, not {type(value).__name__}")


LOGITS_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
OUT_DTYPES = (torch.int32, torch.int64)
MAX_VOCAB = 2**31 - 1  # kMaxVocab of csrc/kernels/greedy_key.h


@torch.library.register_fake("safe_greedy::greedy_sample")
def _greedy_sample_fake(out: torch.Tensor, logits: torch.Tensor) -> None:
    # The checks of csrc/extension/greedy_checks.h that need no data, in its order, so
    # that meta and fake tensors (tracing, torch.compile) refuse what the
    # kernels refuse, with the same exception types. Whether out shares
    # memory with logits needs real addresses and stays with the kernels.
    torch._check(
        logits.dim() == 2,
        lambda: f"greedy_sample: logits must be 2-D [batch, vocab], got a {logits.dim()}-D tensor",
    )
    torch._check(
        logits.dtype in LOGITS_DTYPES,
        lambda: f"greedy_sample: logits must be float32, float16 or bfloat16, got {logits.dtype}",
    )
    torch._check_index(
        logits.shape[1] != 0,
        lambda: f"greedy_sample: the vocab dimension of logits is empty (shape {list(logits.shape)})",
    )
    torch._check(
        logits.shape[1] <= MAX_VOCAB,
        lambda: f"greedy_sample: vocab must be at most 2^31 - 1, got {logits.shape[1]}",
    )
    check_entry_output(_rows_of_logits(logits), out, "out", OUT_DTYPES, "int32 or int64")


class EntriesOf(NamedTuple):
    """What the 1-D outputs of an op line up with (EntriesOf of
    csrc/extension/greedy_checks.h): one entry per row of logits or per key."""

    op: str  # the name the messages start with
    source: torch.Tensor  # its shape[0] entries and its device
    per_entry: str  # "row of logits": an output has one entry per ...
    owner: str  # "logits'": ... and lies on the ... device
    entry: str  # "row": every ... needs its own slot


def _rows_of_logits(logits: torch.Tensor) -> EntriesOf:
    return EntriesOf("greedy_sample", logits, "row of logits", "logits'", "row")


def check_entry_output(of: EntriesOf, t: torch.Tensor, name: str, dtypes, dtype_text: str) -> None:
    """The checks of check_entry_output() in csrc/extension/greedy_checks.h, in its order."""
    torch._check(
        t.dim() == 1,
        lambda: f"{of.op}: {name} must be 1-D [batch], got a {t.dim()}-D tensor of shape {list(t.shape)}",
    )
    entries = of.source.shape[0]
    torch._check(
        t.shape[0] == entries,
        lambda: f"{of.op}: {name} must have one entry per {of.per_entry} ({entries}), got {t.shape[0]}",
    )
    torch._check(t.dtype in dtypes, lambda: f"{of.op}: {name} must be {dtype_text}, got {t.dtype}")
    torch._check(
        t.device == of.source.device,
        lambda: f"{of.op}: {name} must be on the {of.owner} device ({of.source.device}), got {t.device}",
    )
    # A 1-D output overlaps itself only when several entries share stride 0.
    # The stride is tested first: it is a plain number for any output made by
    # torch.empty, so a symbolic batch gets no guard from this check.
    torch._check(
        t.stride(0) != 0 or t.shape[0] <= 1,
        lambda: f"{of.op}: {name} has overlapping entries (stride {t.stride(0)}); every {of.entry} "
        "needs its own slot",
    )


@torch.library.register_fake("safe_greedy::greedy_sample_outputs")
def _greedy_sample_outputs_fake(
    out: torch.Tensor,
    logits: torch.Tensor,
    logprobs: Optional[torch.Tensor],
    logsumexp: Optional[torch.Tensor],
    valid: Optional[torch.Tensor],
    fallback_token: Optional[int],
) -> None:
    # As _greedy_sample_fake, for the extra outputs too (check_greedy_outputs_args).
    _greedy_sample_fake(out, logits)
    for t, name, dtype, text in (
        (logprobs, "logprobs", torch.float32, "float32"),
        (logsumexp, "logsumexp", torch.float32, "float32"),
        (valid, "valid", torch.bool, "bool"),
    ):
        if t is not None:
            check_entry_output(_rows_of_logits(logits), t, name, (dtype,), text)
    if fallback_token is not None:
        vocab = logits.shape[1]
        torch._check_value(
            0 <= fallback_token < vocab,
            lambda: f"greedy_sample: fallback_token must be a token id in [0, vocab) = [0, {vocab}), "
            f"got {fallback_token}",
        )
