"""benchmarks/profile_cells.py: the calls it makes for a profiler check their
answers, with and without the extra outputs (on the CPU here; the same calls
on a GPU are what a profiler attaches to)."""

import argparse

import pytest
import torch

import safe_greedy


def test_a_cell_is_parsed(profile_cells):
    assert profile_cells.parse_cell("bf16:16x151936") == (torch.bfloat16, 16, 151936)
    with pytest.raises(argparse.ArgumentTypeError, match="DTYPE:BATCHxVOCAB"):
        profile_cells.parse_cell("bf16:16")


@pytest.mark.parametrize("outputs", [[], ["--outputs"]])
def test_the_calls_run_and_agree_with_torch(profile_cells, outputs):
    profile_cells.main(["--device", "cpu", "fp32:3x1000", "bf16:2x4097", *outputs])


def test_a_wrong_logsumexp_is_caught(profile_cells, monkeypatch):
    real = safe_greedy.greedy_sample

    def off_by_one(out, logits, **extra):
        real(out, logits, **extra)
        if extra.get("logsumexp") is not None:
            extra["logsumexp"].add_(1)

    monkeypatch.setattr(safe_greedy, "greedy_sample", off_by_one)
    profile_cells.main(["--device", "cpu", "fp32:2x100"])  # no outputs asked for: not checked
    with pytest.raises(SystemExit, match="logsumexp"):
        profile_cells.main(["--device", "cpu", "fp32:2x100", "--outputs"])
