"""safe_greedy: greedy sampling that is exactly torch.argmax, always in range.

    greedy_sample(out, logits)  # in place: out[r] = argmax(logits[r])
    greedy_sample(out, logits, logprobs=..., logsumexp=..., valid=..., fallback_token=...)
    argmax(logits)              # functional, int64, like torch.argmax(logits, -1)
    greedy(logits)              # functional: token_ids, logprobs, logsumexp, valid
"""

import warnings

with warnings.catch_warnings():
    # Without numpy, importing torch warns that it could not initialise
    # numpy; safe_greedy never uses numpy, and the warning would make
    # `python -W error -c "import safe_greedy"` fail.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch  # noqa: F401

from safe_greedy import batching  # noqa: F401  (registers the vmap rule)
from safe_greedy.ops import Greedy, argmax, greedy, greedy_sample

__all__ = ["Greedy", "argmax", "greedy", "greedy_sample"]
__version__ = "0.1.0"
