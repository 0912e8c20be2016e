"""benchmarks/bench.py counts answers that are no token id at all.

aiter's greedy_sample returned `vocab` for rows whose best logit is below
zero; a benchmark run on ROCm must report how often each contender did that,
apart from ordinary mismatches. A contender with that bug is emulated on the
CPU here and run through the benchmark's own hard-row check and summary.
"""

import torch

VOCAB = 4097  # not a multiple of 16, like the vocabularies that broke aiter


def _past_the_end_when_negative(batch, device):
    """argmax over the row padded with zeros to a multiple of 16, NaN skipped:
    the answer is `vocab` whenever the best real logit is below zero."""
    def call(x):
        padded = torch.nn.functional.pad(x.float().nan_to_num(nan=float("-inf")), (0, 16 - x.shape[1] % 16))
        return torch.argmax(padded, -1)

    return call


def test_hard_rows_answered_past_the_end_are_counted(bench):
    contenders = [bench.Contender("past_the_end", _past_the_end_when_negative, "ok"),
                  bench.Contender("torch_argmax", lambda batch, device: lambda x: torch.argmax(x, -1), "ok")]
    report = bench.check_hard_rows(contenders, VOCAB, torch.float32, torch.device("cpu"))
    wrong = report["past_the_end"]
    outside = {case for case, answer in wrong.items() if answer["out_of_range"]}
    assert {"all -inf", "all -1e5", "all -1e30", "max < 0"} <= outside
    assert all(wrong[case]["got"] == VOCAB for case in outside)
    # A NaN row is wrong (torch returns the first NaN) but still a token id.
    assert "NaN in tail" in wrong and "NaN in tail" not in outside

    results = {"meta": {"device_type": "cpu"}, "hard_rows": {f"fp32/{VOCAB}": report}, "cells": [
        {"mismatches": {"past_the_end": {"first": 3, "last": 1, "out_of_range": 4},
                        "safe_greedy": {"first": 0, "last": 0, "out_of_range": 0}}},
        {"mismatches": {"past_the_end": {"first": 2, "last": 0, "out_of_range": 2}}},
        {"mismatches": {"past_the_end": {"first": 1, "last": 0, "out_of_range": 0}}},
    ]}
    summary = bench.summarise(results)
    assert summary["out_of_range_answers"] == {"past_the_end": [6, 2]}
    assert summary["hard_rows_out_of_range"] == {"past_the_end": len(outside)}


def test_out_of_range_counts_every_answer_outside_the_vocabulary(bench):
    assert bench._out_of_range(10, torch.tensor([0, 9, 10]), torch.tensor([-1, 5, 11])) == 3
    assert bench._out_of_range(10, torch.tensor([0, 9]), None) is None
