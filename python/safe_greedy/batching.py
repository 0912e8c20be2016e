"""The vmap rule of torch.ops.safe_greedy.greedy_sample, so that
``torch.vmap(safe_greedy.argmax)`` and vmapped in-place calls work.

Under vmap each call sees one ``[batch, vocab]`` slice of a stacked input; the
rule runs the kernel once over all the slices, as ``[slices * batch, vocab]``
rows, and writes each slice's answers into its own slice of ``out``.
"""

import torch

from safe_greedy import _C  # noqa: F401  (registers torch.ops.safe_greedy)


def _greedy_sample_vmap(info, in_dims, out, logits):
    out_dim, logits_dim = in_dims
    if out_dim is None:
        # Every vmapped call would write its own answers into the one shared
        # out, as torch refuses for in-place ops under vmap.
        raise RuntimeError(
            "greedy_sample under vmap: logits is batched but out is not; each vmapped "
            "call needs its own out (make it inside the vmapped function, or vmap over it too)"
        )
    out = out.movedim(out_dim, 0)
    if logits_dim is None:
        logits = logits.expand(info.batch_size, *logits.shape)
    else:
        logits = logits.movedim(logits_dim, 0)
    if info.batch_size == 0:
        return None, None
    if logits.dim() != 3 or out.dim() != 2 or logits.shape[1:2] != out.shape[1:] or logits.shape[2] == 0:
        # A per-call shape the kernel refuses: one call of the kernel on the
        # first slice raises with the message of an unbatched call.
        torch.ops.safe_greedy.greedy_sample(out[0], logits[0])
    rows = logits.reshape(-1, logits.shape[-1])
    if out.is_contiguous():
        torch.ops.safe_greedy.greedy_sample(out.view(-1), rows)
    else:
        answers = torch.empty(out.numel(), dtype=out.dtype, device=out.device)
        torch.ops.safe_greedy.greedy_sample(answers, rows)
        out.copy_(answers.view(out.shape))
    return None, None


torch.library.register_vmap("safe_greedy::greedy_sample", _greedy_sample_vmap)
