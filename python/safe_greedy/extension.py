"""Loads the compiled extension, safe_greedy._C, which registers torch.ops.safe_greedy.

The extension is built against PyTorch's stable ABI and the Python limited
API: one build serves torch 2.10 and every later release, on CPython 3.10 and
later. A build with the GPU kernels also needs the GPU runtime it was built
for (a CUDA build of torch of the same CUDA major version, or a ROCm build).
Where it cannot load, importing safe_greedy raises an ImportError that says
so, instead of the loader's bare message.
"""

import re

import torch

OLDEST_TORCH = (2, 10)  # setup.py's TORCH_TARGET_VERSION


def _torch_release(version: str):
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _torch_description() -> str:
    if torch.version.cuda is not None:
        return f"torch {torch.__version__} (CUDA {torch.version.cuda})"
    if getattr(torch.version, "hip", None) is not None:
        return f"torch {torch.__version__} (ROCm {torch.version.hip})"
    return f"torch {torch.__version__} (no CUDA or ROCm)"


def load():
    release = _torch_release(torch.__version__)
    if release is not None and release < OLDEST_TORCH:
        raise ImportError(
            f"safe_greedy needs torch {OLDEST_TORCH[0]}.{OLDEST_TORCH[1]} or later; "
            f"this is {_torch_description()}"
        )
    try:
        from safe_greedy import _C
    except ImportError as error:
        raise ImportError(
            f"safe_greedy's compiled extension could not be loaded under {_torch_description()}: "
            f"{error}. A build with GPU kernels needs a torch of the same GPU platform (a CUDA "
            "build of the same CUDA major version for a CUDA build, a ROCm build for a ROCm one); "
            "install such a torch, or build safe-greedy from source for this one "
            "(SAFE_GREEDY_BUILD=cpu builds the CPU kernel alone)."
        ) from error
    return _C


_C = load()
