"""The Python face of torch.ops.safe_greedy.greedy_sample."""

import torch

from safe_greedy import _C  # noqa: F401  (registers torch.ops.safe_greedy)


def greedy_sample(out: torch.Tensor, logits: torch.Tensor) -> None:
    """Write ``torch.argmax(logits[r])`` into ``out[r]`` for every row ``r``.

    ``logits`` is ``[batch, vocab]`` float32, float16 or bfloat16 with any
    strides; ``out`` is ``[batch]`` int32 or int64 on the same device. The first
    NaN of a row wins; otherwise the lowest index of the maximum (``-0.0`` ties
    ``+0.0``). Every result lies in ``[0, vocab)``. On bad input it raises and
    leaves ``out`` untouched.
    """
    _require_tensor("greedy_sample(): out", out)
    _require_tensor("greedy_sample(): logits", logits)
    torch.ops.safe_greedy.greedy_sample(out, logits)


def argmax(logits: torch.Tensor) -> torch.Tensor:
    """``torch.argmax(logits, -1)`` for ``[..., vocab]`` logits, as int64.

    A 0-D tensor is one row of one element, as for torch: the answer is 0.
    """
    _require_tensor("argmax(): logits", logits)
    if logits.dim() == 0:
        out = logits.new_empty(1, dtype=torch.int64)
        torch.ops.safe_greedy.greedy_sample(out, logits.reshape(1, 1))
        return out.reshape(())
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
    # new_empty, not torch.empty: under torch.vmap it makes one out per call.
    out = rows.new_empty(rows.shape[0], dtype=torch.int64)
    torch.ops.safe_greedy.greedy_sample(out, rows)
    return out.reshape(leading)


def _require_tensor(what: str, value) -> None:
    # TypeError, as torch's own functions raise for a list or None.
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a Tensor, not {type(value).__name__}")


_LOGITS_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_OUT_DTYPES = (torch.int32, torch.int64)
_MAX_VOCAB = 2**31 - 1  # kMaxVocab of csrc/kernels/greedy_key.h


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
        logits.dtype in _LOGITS_DTYPES,
        lambda: f"greedy_sample: logits must be float32, float16 or bfloat16, got {logits.dtype}",
    )
    torch._check_index(
        logits.shape[1] != 0,
        lambda: f"greedy_sample: the vocab dimension of logits is empty (shape {list(logits.shape)})",
    )
    torch._check(
        logits.shape[1] <= _MAX_VOCAB,
        lambda: f"greedy_sample: vocab must be at most 2^31 - 1, got {logits.shape[1]}",
    )
    torch._check(out.dim() == 1, lambda: f"greedy_sample: out must be 1-D [batch], got a {out.dim()}-D tensor")
    torch._check(
        out.shape[0] == logits.shape[0],
        lambda: f"greedy_sample: out must have one entry per row of logits ({logits.shape[0]}), got {out.shape[0]}",
    )
    torch._check(
        out.dtype in _OUT_DTYPES, lambda: f"greedy_sample: out must be int32 or int64, got {out.dtype}"
    )
    torch._check(
        out.device == logits.device,
        lambda: f"greedy_sample: out must be on the logits' device ({logits.device}), got {out.device}",
    )
    # A 1-D out overlaps itself only when several entries share stride 0. The
    # stride is tested first: it is a plain number for any out made by
    # torch.empty, so a symbolic batch gets no guard from this check.
    torch._check(
        out.stride(0) != 0 or out.shape[0] <= 1,
        lambda: f"greedy_sample: out has overlapping entries (stride {out.stride(0)}); every row needs its own slot",
    )
