"""benchmarks/tune_splits.py: its arguments, its table, and its refusal to
time anything but a tuning build (the split counts it sets would be ignored)."""

import argparse

import pytest
import torch

from helpers import requires_cuda


def test_cells_and_split_counts_are_parsed(tune_splits):
    assert tune_splits.parse_cells("bf16:16x151936, fp32:1X32000") == [("bf16", 16, 151936), ("fp32", 1, 32000)]
    assert tune_splits.parse_splits("0,8,64") == [0, 8, 64]


@pytest.mark.parametrize("text", ["bf16:16", "bf16", "int8:1x2", "bf16:0x5", "fp16:4x0", "bf16:axb"])
def test_a_bad_cell_is_refused(tune_splits, text):
    with pytest.raises(argparse.ArgumentTypeError, match="cell"):
        tune_splits.parse_cells(text)


@pytest.mark.parametrize("text", ["-1", "8,x", ""])
def test_a_bad_split_count_is_refused(tune_splits, text):
    with pytest.raises(argparse.ArgumentTypeError, match="split counts"):
        tune_splits.parse_splits(text)


def test_the_table_marks_the_fastest_count(tune_splits):
    text = tune_splits.table("bf16", 16, 151936, {0: 5.5, 16: 4.25, 32: 4.75})
    assert "| plan's own | 5.50 |" in text and "| 16 | 4.25 (fastest) |" in text and "| 32 | 4.75 |" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_it_says_so(tune_splits, capsys):
    assert tune_splits.main(["--cells", "bf16:1x1000"]) == 2
    assert "needs a CUDA or ROCm GPU" in capsys.readouterr().err


@pytest.mark.gpu
@requires_cuda
def test_a_normal_build_is_not_taken_for_a_tuning_build(tune_splits, capsys):
    # The tests run against a normal build, which ignores the setting.
    assert not tune_splits.is_tuning_build(torch.device("cuda"))
    assert tune_splits.main(["--cells", "bf16:1x1000", "--splits", "0,8"]) == 2
    assert "not a tuning build" in capsys.readouterr().err
