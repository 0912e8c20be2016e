"""Calls of greedy_sample on fully initialised inputs, for compute-sanitizer.

Every kernel kind on an H100: rows read whole, rows sharing a block, rows
split over blocks (both combines), strided rows, both index types, with and
without the extra outputs. Written for initcheck, and short enough to run
under memcheck, racecheck and synccheck too.

Every input comes from torch.randn and answers are checked on the CPU, so no
other CUDA kernel that initcheck might flag runs on the GPU: a finding here is
a read of unwritten memory by this project's kernel (the split-row workspace
included). Run as `compute-sanitizer --tool initcheck python3 scripts/sanitizer_probe.py`.
"""

import torch

import safe_greedy

# Small batches split rows over blocks (collected; 2000003 fenced, on an
# H100); 20001 short rows may share blocks.
SHAPES = [(1, 151936), (3, 151666), (8, 32001), (64, 4097), (1, 7), (5, 17), (300, 4097), (20001, 2001),
          (1, 2000003)]


def check_outputs(logits: torch.Tensor) -> None:
    g = safe_greedy.greedy(logits)
    rows = logits.cpu().float()
    assert torch.equal(g.token_ids.cpu(), rows.argmax(-1))
    assert bool(g.valid.all())
    torch.testing.assert_close(g.logsumexp.cpu(), rows.logsumexp(-1), rtol=2e-5, atol=2e-5)


def main() -> None:
    calls = 0
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for batch, vocab in SHAPES:
            padded = torch.randn(batch, vocab + 9, device="cuda").to(dtype)
            # Aligned rows, and rows whose first element is off the 16-byte grid.
            for logits in (padded[:, :vocab], padded[:, 1 : vocab + 1], padded[:, 3 : vocab + 3]):
                for out_dtype in (torch.int64, torch.int32):
                    out = torch.empty(batch, dtype=out_dtype, device="cuda")
                    safe_greedy.greedy_sample(out, logits)
                    assert torch.equal(out.long().cpu(), logits.cpu().argmax(-1))
                    calls += 1
                check_outputs(logits)
                calls += 1
            if batch * vocab < 3_000_000:  # vocab dimension with stride != 1
                logits = torch.randn(vocab, batch, device="cuda").to(dtype).t()
                out = torch.empty(batch, dtype=torch.int64, device="cuda")
                safe_greedy.greedy_sample(out, logits)
                assert torch.equal(out.cpu(), logits.cpu().argmax(-1))
                check_outputs(logits)
                calls += 2
    torch.cuda.synchronize()
    print(f"sanitizer probe: {calls} calls, all equal to torch")


if __name__ == "__main__":
    main()
