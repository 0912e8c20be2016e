"""The vmap rules of torch.ops.safe_greedy.greedy_sample and
greedy_sample_outputs, so that ``torch.vmap(safe_greedy.argmax)``,
``torch.vmap(safe_greedy.greedy)`` and vmapped in-place calls work.

Under vmap each call sees one ``[batch, vocab]`` slice of a stacked input; a
rule runs the kernel once over all the slices, as ``[slices * batch, vocab]``
rows, and writes each slice's answers into its own slice of every output.
"""

import torch

from safe_greedy import extension  # noqa: F401  (loads _C, which registers torch.ops.safe_greedy)


_OUTPUT_NAMES = ("out", "logprobs", "logsumexp", "valid")


def _run_over_slices(info, outputs, output_dims, logits, logits_dim, kernel):
    """``kernel(outputs, logits)`` once for every vmapped slice.

    ``outputs``: the op's output tensors (None where not asked for), in the
    order of _OUTPUT_NAMES; ``kernel`` takes them and the logits in the unbatched shapes.
    """
    for name, output, dim in zip(_OUTPUT_NAMES, outputs, output_dims):
        if output is not None and dim is None:
            # Every vmapped call would write its own answers into the one
            # shared output, as torch refuses for in-place ops under vmap.
            raise RuntimeError(
                f"greedy_sample under vmap: logits is batched but {name} is not; each vmapped "
                f"call needs its own {name} (make it inside the vmapped function, or vmap over it too)"
            )
    outputs = [None if o is None else o.movedim(d, 0) for o, d in zip(outputs, output_dims)]
    if logits_dim is None:
        logits = logits.expand(info.batch_size, *logits.shape)
    else:
        logits = logits.movedim(logits_dim, 0)
    if info.batch_size == 0:
        return None, None
    given = [o for o in outputs if o is not None]
    if logits.dim() != 3 or logits.shape[2] == 0 or any(
        o.dim() != 2 or o.shape[1:] != logits.shape[1:2] for o in given
    ):
        # A per-call shape the kernel refuses: one call of the kernel on the
        # first slice raises with the message of an unbatched call.
        kernel([None if o is None else o[0] for o in outputs], logits[0])
    rows = logits.reshape(-1, logits.shape[-1])
    flat = [
        None if o is None else (o.view(-1) if o.is_contiguous() else torch.empty(o.numel(), dtype=o.dtype, device=o.device))
        for o in outputs
    ]
    kernel(flat, rows)
    for o, f in zip(outputs, flat):
        if o is not None and not o.is_contiguous():
            o.copy_(f.view(o.shape))
    return None, None


def _greedy_sample_vmap(info, in_dims, out, logits):
    out_dim, logits_dim = in_dims
    return _run_over_slices(
        info, [out], [out_dim], logits, logits_dim,
        lambda outputs, rows: torch.ops.safe_greedy.greedy_sample(outputs[0], rows),
    )


def _greedy_sample_outputs_vmap(info, in_dims, out, logits, logprobs, logsumexp, valid, fallback_token):
    out_dim, logits_dim, logprobs_dim, logsumexp_dim, valid_dim, _ = in_dims

    def kernel(outputs, rows):
        token_ids, lp, lse, ok = outputs
        torch.ops.safe_greedy.greedy_sample_outputs(token_ids, rows, lp, lse, ok, fallback_token)

    return _run_over_slices(
        info, [out, logprobs, logsumexp, valid], [out_dim, logprobs_dim, logsumexp_dim, valid_dim],
        logits, logits_dim, kernel,
    )


torch.library.register_vmap("safe_greedy::greedy_sample", _greedy_sample_vmap)
torch.library.register_vmap("safe_greedy::greedy_sample_outputs", _greedy_sample_outputs_vmap)
