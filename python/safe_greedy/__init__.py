"""safe_greedy: greedy sampling that is exactly torch.argmax, always in range.

    greedy_sample(out, logits)  # in place: out[r] = argmax(logits[r])
    argmax(logits)              # functional, int64, like torch.argmax(logits, -1)
"""

from safe_greedy.ops import argmax, greedy_sample

__all__ = ["argmax", "greedy_sample"]
__version__ = "0.1.0"
