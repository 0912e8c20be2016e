"""safe_greedy: greedy sampling that is exactly torch.argmax, always in range.

    greedy_sample(out, logits)  # in place: out[r] = argmax(logits[r])
    greedy_sample(out, logits, logprobs=..., logsumexp=..., valid=..., fallback_token=...)
    argmax(logits)              # functional, int64, like torch.argmax(logits, -1)
    greedy(logits)              # functional: token_ids, logprobs, logsumexp, valid
"""

from safe_greedy.ops import Greedy, argmax, greedy, greedy_sample

__all__ = ["Greedy", "argmax", "greedy", "greedy_sample"]
__version__ = "0.1.0"
