"""benchmarks/read_floor.py's cell selection, table and refusals (the timing itself needs a GPU)."""

import importlib
import os
import sys

import pytest
import torch

_BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def read_floor():
    sys.path.insert(0, _BENCHMARKS)
    try:
        yield importlib.import_module("read_floor")
    finally:
        sys.path.remove(_BENCHMARKS)


def _sweep_cell(dtype, batch, vocab, meets_target):
    return {"dtype": dtype, "batch": batch, "vocab": vocab, "meets_target": meets_target}


def test_missed_cells_are_exactly_those_that_missed(read_floor):
    sweep = {"cells": [_sweep_cell("bf16", 64, 151936, False), _sweep_cell("fp32", 1, 32000, True),
                       _sweep_cell("fp16", 8, 262144, None), _sweep_cell("fp32", 16, 3072, False)]}
    assert read_floor.missed_cells(sweep) == [(torch.bfloat16, 64, 151936), (torch.float32, 16, 3072)]


def test_table_row_splits_the_gap_into_own_work_and_layout(read_floor):
    results = {
        "meta": {"device_name": "card", "driver": "1", "torch": "2", "date_utc": "2026-11-28T00:00:00+0000"},
        "read_bandwidth": {"bytes_per_s": 3e12},
        "cells": [{"dtype": "bf16", "batch": 64, "vocab": 151936, "bytes": 19_447_808, "target_us": 9.5,
                   "safe_greedy_us": 10.25, "safe_greedy_launch": {"blocks": 384, "threads": 256},
                   "chunked_us": 8.5, "grid_stride_us": 8.0, "grid_stride_blocks_per_sm": 8,
                   "grid_stride_unroll": 4}],
    }
    row = read_floor.markdown(results).splitlines()[-1]
    assert row == "| bf16 64x151936 | 19.4 | 9.50 | 10.25 | 384 x 256 | 8.50 | 8.00 (8, 4) | 1.75 | 0.50 |"


def test_no_cells_is_a_usage_error(read_floor):
    with pytest.raises(SystemExit) as exc:
        read_floor.main([])
    assert exc.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no CUDA device")
def test_refuses_without_cuda(read_floor, tmp_path, capsys):
    assert read_floor.main(["bf16:1x32000", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
