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
    torch.ops.safe_greedy.greedy_sample(out, logits)


def argmax(logits: torch.Tensor) -> torch.Tensor:
    """``torch.argmax(logits, -1)`` for ``[..., vocab]`` logits, as int64."""
    if logits.dim() == 0:
        raise ValueError("argmax: logits must have a vocab dimension, got a 0-D tensor")
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
    out = torch.empty(rows.shape[0], dtype=torch.int64, device=logits.device)
    torch.ops.safe_greedy.greedy_sample(out, rows)
    return out.reshape(leading)


@torch.library.register_fake("safe_greedy::greedy_sample")
def _greedy_sample_fake(out: torch.Tensor, logits: torch.Tensor) -> None:
    # Shapes only: the real kernels check everything else before writing.
    torch._check(logits.dim() == 2, lambda: f"greedy_sample: logits must be 2-D, got {logits.dim()}-D")
    torch._check(out.dim() == 1, lambda: f"greedy_sample: out must be 1-D, got {out.dim()}-D")
    torch._check(
        out.shape[0] == logits.shape[0],
        lambda: f"greedy_sample: out has {out.shape[0]} entries for {logits.shape[0]} rows",
    )
