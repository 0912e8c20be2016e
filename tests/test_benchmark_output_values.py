"""benchmarks/bench.py checks the values of safe_greedy_outputs' extra outputs.

A build whose tokens are right but whose log-probabilities are wrong must not
run clean through the benchmark: the extra outputs of the first (eager) and
last (graph) call of each cell are compared with torch's, by the self-check's
rule, and counted beside the token mismatches. Contenders that break the
values one way each are emulated on the CPU here.
"""

import pytest
import torch

import safe_greedy

VOCAB = 1000


def _rows():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, VOCAB, generator=gen)
    x[1] = float("-inf")  # not valid: logprob and logsumexp are NaN and -inf
    x[2, 17] = float("nan")
    x[3] *= 1e4
    return x


def _with_outputs(break_outputs=None):
    """A contender like the benchmark's safe_greedy_outputs, whose extra
    outputs `break_outputs` then changes in place."""
    def make(batch, device):
        out = torch.empty(batch, dtype=torch.int64, device=device)
        extra = {"logprobs": torch.empty(batch), "logsumexp": torch.empty(batch),
                 "valid": torch.empty(batch, dtype=torch.bool)}

        def call(x):
            safe_greedy.greedy_sample(out, x, **extra)
            if break_outputs is not None:
                break_outputs(extra)
            return out

        call.extra_outputs = extra
        return call

    return make


def _written(bench, make, x):
    """The extra outputs of one call of the contender `make` on `x`, as the
    benchmark keeps them for checking (None without extra outputs)."""
    fn = make(x.shape[0], x.device)
    fn(x)
    return bench._extra_outputs_now(fn)


def test_the_benchmarks_own_contender_has_checked_values(bench):
    x = _rows()
    assert bench._output_value_mismatches(_written(bench, bench._make_safe_greedy_outputs, x), x) == 0


def test_the_values_checked_are_those_of_the_call_kept(bench):
    # The benchmark checks the first call's outputs after the graph replays
    # and the eager loops, which overwrite them: it must keep a copy.
    x, later = _rows(), -_rows()
    fn = bench._make_safe_greedy_outputs(x.shape[0], x.device)
    fn(x)
    kept = bench._extra_outputs_now(fn)
    fn(later)
    assert bench._output_value_mismatches(kept, x) == 0
    assert bench._output_value_mismatches(bench._extra_outputs_now(fn), x) > 0


def test_contenders_without_extra_outputs_are_not_checked(bench):
    x = _rows()
    assert _written(bench, bench._make_safe_greedy, x) is None
    assert bench._output_value_mismatches(None, x) is None
    assert bench._value_checks(None, None, ("outputs_first", "outputs_last")) == {}


def _shift_logprob(extra):
    extra["logprobs"][0] += 1e-3


def _finite_for_nan_row(extra):
    extra["logsumexp"][2] = 0.0


def _nan_for_inf(extra):
    extra["logsumexp"][1] = float("nan")


def _flip_valid(extra):
    extra["valid"][4] = ~extra["valid"][4]


@pytest.mark.parametrize("break_outputs", [_shift_logprob, _finite_for_nan_row, _nan_for_inf, _flip_valid])
def test_each_kind_of_wrong_value_counts_its_row(bench, break_outputs):
    x = _rows()
    assert bench._output_value_mismatches(_written(bench, _with_outputs(), x), x) == 0
    assert bench._output_value_mismatches(_written(bench, _with_outputs(break_outputs), x), x) == 1


def test_wrong_values_fail_the_run_and_show_in_the_report(bench, report):
    checks = {"safe_greedy": {"first": 0, "last": 0, "out_of_range": 0},
              "safe_greedy_outputs": {"first": 0, "last": 0, "out_of_range": 0,
                                      **bench._value_checks(0, 2, ("outputs_first", "outputs_last"))}}
    results = {"meta": {"device_type": "cpu"}, "hard_rows": {},
               "cells": [{"dtype": "fp32", "batch": 4, "vocab": VOCAB, "mismatches": checks, "errors": {}}]}
    results["summary"] = bench.summarise(results)
    assert results["summary"]["cells_with_mismatches"] == {"safe_greedy_outputs": 1}
    assert bench._safe_greedy_failed(results)
    lines = report._correctness(results)
    assert any("safe_greedy_outputs's extra outputs differ from torch's in 1 cells: fp32 4x1000" in line
               for line in lines), lines
    assert any("every timed contender matched torch.argmax" in line for line in lines), lines

    checks["safe_greedy_outputs"].update(outputs_last=0)
    results["summary"] = bench.summarise(results)
    assert not bench._safe_greedy_failed(results)
    assert any("every extra output (logprobs, logsumexp, valid) matched torch's" in line
               for line in report._correctness(results))


def test_the_reference_taken_in_pieces_checks_every_row(bench, monkeypatch):
    # A piece of two rows: a wrong value in the last, partial piece still counts.
    monkeypatch.setattr(bench, "REFERENCE_CHUNK_ELEMENTS", 2 * VOCAB)
    x = _rows()[:5]

    def last_row_wrong(extra):
        extra["logprobs"][4] += 1e-3

    assert bench._output_value_mismatches(_written(bench, _with_outputs(), x), x) == 0
    assert bench._output_value_mismatches(_written(bench, _with_outputs(last_row_wrong), x), x) == 1
    assert bench._output_value_mismatches(_written(bench, _with_outputs(_shift_logprob), x), x) == 1
