"""Run greedy_sample on a few cells, for a profiler to attach to.

    ncu --set full -k regex:greedy_sample_kernel --launch-skip 2 --launch-count 1 \\
        python benchmarks/profile_cells.py bf16:16x151936

Each cell is DTYPE:BATCHxVOCAB (dtype fp32, bf16 or fp16). Every cell gets
three launches on fresh random logits, so `--launch-skip 2 --launch-count 1`
profiles the third (warm) launch of the first cell; add cells to profile more.
`--outputs` makes every call ask for every extra output (logprobs, logsumexp,
valid), to profile those kernels beside the plain ones. `--device cpu` runs
the same calls on the CPU (for checking the arguments).
"""

import argparse
import re

import torch

import safe_greedy
from safe_greedy import speed

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LAUNCHES_PER_CELL = 3


def parse_cell(text: str):
    match = re.fullmatch(r"(fp32|bf16|fp16):(\d+)x(\d+)", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not DTYPE:BATCHxVOCAB, e.g. bf16:16x151936")
    return DTYPES[match.group(1)], int(match.group(2)), int(match.group(3))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="+", type=parse_cell)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--outputs", action="store_true", help="ask for every extra output too")
    args = parser.parse_args(argv)
    for dtype, batch, vocab in args.cells:
        logits = torch.randn(batch, vocab, device=args.device).to(dtype)
        out = torch.empty(batch, dtype=torch.int64, device=args.device)
        extra = speed.every_extra_output(batch, args.device) if args.outputs else {}
        for _ in range(LAUNCHES_PER_CELL):
            safe_greedy.greedy_sample(out, logits, **extra)
        if not torch.equal(out, torch.argmax(logits, -1)):
            raise SystemExit(f"greedy_sample disagrees with torch.argmax at {batch}x{vocab}")
        if args.outputs and not torch.allclose(extra["logsumexp"], logits.float().logsumexp(-1), rtol=2e-5, atol=2e-5):
            raise SystemExit(f"greedy_sample's logsumexp disagrees with torch's at {batch}x{vocab}")
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
