"""Greedy sampling of a vocab-parallel (tensor-parallel) row without gathering the logits.

Under tensor parallelism the LM head is sharded by vocabulary: each rank holds
some columns of every row. Instead of all-gathering the full ``[batch, vocab]``
logits and taking ``torch.argmax``, each rank reduces its own columns to one
64-bit key per row, and one all-reduce (MAX) of ``batch`` keys gives every rank
the exact ``torch.argmax`` of the full row::

    import safe_greedy.distributed as sgd
    sgd.greedy_sample(out, shard, vocab_offset=rank_offset, vocab_size=vocab, group=tp_group)

or, for an engine with its own communicator, the two halves around any
max-reduction of int64 values::

    keys = sgd.local_keys(shard, vocab_offset=rank_offset, vocab_size=vocab)
    ...  # any max-reduce of keys over the ranks, in any order and grouping
    ids = sgd.keys_to_tokens(keys)

How the keys order (csrc/kernels/greedy_key.h, the one place that defines it): a key
is the signed form of ``image(value) << 32 | (0xFFFFFFFF - global_index)``,
where the image is order-preserving with every NaN above ``+inf`` and ``-0.0``
equal to ``+0.0``. A larger signed key is a better token under torch's rule
(first NaN, else the lowest index of the maximum), so a plain signed 64-bit max
is the whole reduction. A rank with no valid column (an empty shard, or one
holding only padding) contributes ``-2**63``, below every real key; a key that
stays there decodes to -1 (no rank held a column below ``vocab_size``).
"""

from __future__ import annotations

import operator
from typing import Optional, Tuple

import torch
import torch.distributed as dist

from safe_greedy import extension  # noqa: F401  (loads _C, which registers torch.ops.safe_greedy)
from safe_greedy.ops import LOGITS_DTYPES, MAX_VOCAB, OUT_DTYPES, EntriesOf, check_entry_output

__all__ = ["greedy_sample", "local_keys", "keys_to_tokens"]


def _as_int(name: str, value) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def _valid_width(shard: torch.Tensor, vocab_offset, vocab_size) -> Tuple[int, int]:
    """(vocab_offset, valid_width): how many of the shard's columns are real."""
    vocab_offset = _as_int("vocab_offset", vocab_offset)
    torch._check(vocab_offset >= 0, lambda: f"local_keys: vocab_offset must be at least 0, got {vocab_offset}")
    _check_shard_is_2d(shard)
    width = shard.shape[1]
    if vocab_size is None:
        return vocab_offset, width
    vocab_size = _as_int("vocab_size", vocab_size)
    # IndexError, as torch.argmax raises for an empty row.
    torch._check_index(
        vocab_size > 0,
        lambda: f"local_keys: vocab_size must be at least 1, got {vocab_size}; argmax of an empty row is undefined",
    )
    torch._check(vocab_size <= MAX_VOCAB, lambda: f"local_keys: vocab_size must be at most 2^31 - 1, got {vocab_size}")
    return vocab_offset, max(0, min(width, vocab_size - vocab_offset))


def local_keys(shard: torch.Tensor, *, vocab_offset: int,
               vocab_size: Optional[int] = None) -> torch.Tensor:
    """This rank's signed key of every row: int64 ``[batch]`` on the shard's device.

    ``shard`` is ``[batch, width]`` float32, float16 or bfloat16 with any
    strides, holding the global columns ``vocab_offset .. vocab_offset + width - 1``.
    Columns at or past ``vocab_size`` (default: none) are padding and never
    chosen. The signed max of the ranks' keys, taken in any order and grouping,
    is the key of the full row's ``torch.argmax``; see the module's docstring.
    """
    vocab_offset, valid_width = _valid_width(shard, vocab_offset, vocab_size)
    return torch.ops.safe_greedy.local_keys(shard, vocab_offset, valid_width)


def keys_to_tokens(keys: torch.Tensor) -> torch.Tensor:
    """The token ids (int64 ``[batch]``) that max-reduced keys name.

    A key no rank filled (every rank's shard was empty or padding) gives -1.
    """
    out = torch.empty(keys.shape, dtype=torch.int64, device=keys.device)
    torch.ops.safe_greedy.write_tokens(out, keys)
    return out


def greedy_sample(out: torch.Tensor, shard: torch.Tensor, *, vocab_offset: int,
                  vocab_size: Optional[int] = None, group=None) -> None:
    """Write, on every rank, ``torch.argmax(full[:, :vocab_size], -1)`` into ``out``.

    ``full`` is the unsharded ``[batch, vocab]`` logits; this rank holds
    ``shard = full[:, vocab_offset:vocab_offset + width]`` (any width,
    including 0; the ranks' slices may come in any order). ``out`` is
    ``[batch]`` int32 or int64 on the shard's device. Every rank of ``group``
    (default: the default process group) must call it with the same batch.

    One collective: an all-reduce (MAX) of ``batch`` int64 keys; no host
    sync. Whatever one rank can check (shapes, dtypes, devices, offsets) is
    checked before the collective, so a bad call raises and leaves ``out``
    untouched without reaching it.
    """
    keys = local_keys(shard, vocab_offset=vocab_offset, vocab_size=vocab_size)
    _check_write_tokens(out, keys)
    dist.all_reduce(keys, op=dist.ReduceOp.MAX, group=group)
    torch.ops.safe_greedy.write_tokens(out, keys)


# ---------------------------------------------------------------------------
# Fake kernels: the checks of csrc/extension/distributed_checks.h that need no data, in
# its order and with its exception types, so that tracing refuses what the
# kernels refuse.


def _check_shard_is_2d(shard: torch.Tensor) -> None:
    torch._check(
        shard.dim() == 2,
        lambda: f"local_keys: shard must be 2-D [batch, width], got a {shard.dim()}-D tensor "
        f"of shape {list(shard.shape)}",
    )


@torch.library.register_fake("safe_greedy::local_keys")
def _local_keys_fake(shard: torch.Tensor, vocab_offset: int, valid_width: int) -> torch.Tensor:
    _check_shard_is_2d(shard)
    torch._check(
        shard.dtype in LOGITS_DTYPES,
        lambda: f"local_keys: shard must be float32, float16 or bfloat16, got {shard.dtype}",
    )
    torch._check(vocab_offset >= 0, lambda: f"local_keys: vocab_offset must be at least 0, got {vocab_offset}")
    torch._check(
        0 <= valid_width <= shard.shape[1],
        lambda: f"local_keys: valid_width must lie in [0, {shard.shape[1]}] (the shard's width), got {valid_width}",
    )
    torch._check(
        valid_width == 0 or vocab_offset + valid_width <= MAX_VOCAB,
        lambda: f"local_keys: the shard's valid columns reach global index {vocab_offset + valid_width - 1}; "
        "the vocabulary must hold at most 2^31 - 1 tokens",
    )
    return shard.new_empty((shard.shape[0],), dtype=torch.int64)


def _check_write_tokens(out: torch.Tensor, keys: torch.Tensor) -> None:
    torch._check(
        keys.dim() == 1,
        lambda: f"keys_to_tokens: keys must be 1-D [batch], got a {keys.dim()}-D tensor of shape {list(keys.shape)}",
    )
    torch._check(keys.dtype == torch.int64, lambda: f"keys_to_tokens: keys must be int64, got {keys.dtype}")
    check_entry_output(
        EntriesOf("keys_to_tokens", keys, "key", "keys'", "key"), out, "out", OUT_DTYPES, "int32 or int64"
    )


torch.library.register_fake("safe_greedy::write_tokens")(_check_write_tokens)
