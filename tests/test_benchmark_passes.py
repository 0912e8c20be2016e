"""How benchmarks/bench.py merges the passes of its GPU sweep (keep_lower_times).

The merge decides every number in the recorded tables, and it runs only on a
GPU machine, so its rules are checked here on plain dictionaries.
"""

import pytest


def _cell(times, mismatches=None, errors=None):
    return {
        "times_us": times,
        "mismatches": mismatches or {name: {"first_eager": 0, "last_graph": 0} for name in times},
        "errors": errors or {},
        "pass_graph_us": {name: [t["graph"] if t else None] for name, t in times.items()},
    }


def test_each_timer_keeps_its_lower_time(bench):
    kept = _cell({"safe_greedy": {"graph": 10.8, "eager": 9.0}, "torch_argmax": {"graph": 20.0, "eager": 30.0}})
    later = _cell({"safe_greedy": {"graph": 6.5, "eager": 9.5}, "torch_argmax": {"graph": 21.0, "eager": 29.0}})
    bench.keep_lower_times(kept, later)
    assert kept["times_us"]["safe_greedy"] == {"graph": 6.5, "eager": 9.0}
    assert kept["times_us"]["torch_argmax"] == {"graph": 20.0, "eager": 29.0}
    assert kept["pass_graph_us"] == {"safe_greedy": [10.8, 6.5], "torch_argmax": [20.0, 21.0]}


@pytest.mark.parametrize("failed_pass", ["first", "later"])
def test_a_failure_in_any_pass_leaves_no_time(bench, failed_pass):
    ok = {"aiter": {"graph": 5.0, "eager": 6.0}}
    failed = {"aiter": None}
    first, later = (failed, ok) if failed_pass == "first" else (ok, failed)
    kept = _cell(dict(first), errors={"aiter": "boom"} if failed_pass == "first" else None)
    bench.keep_lower_times(kept, _cell(dict(later), errors={"aiter": "boom"} if failed_pass == "later" else None))
    assert kept["times_us"]["aiter"] is None
    assert kept["errors"] == {"aiter": "boom"}
    assert len(kept["pass_graph_us"]["aiter"]) == 2


def test_mismatches_of_any_pass_are_kept(bench):
    times = {"safe_greedy": {"graph": 1.0, "eager": 2.0}}
    kept = _cell(dict(times))
    later = _cell(dict(times), mismatches={"safe_greedy": {"first_eager": 0, "last_graph": 3}})
    bench.keep_lower_times(kept, later)
    assert kept["mismatches"]["safe_greedy"] == {"first_eager": 0, "last_graph": 3}
    # A clean later pass does not clear an earlier mismatch.
    bench.keep_lower_times(kept, _cell(dict(times)))
    assert kept["mismatches"]["safe_greedy"]["last_graph"] == 3
