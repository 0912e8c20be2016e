"""How the benchmark picks the CPU its eager GPU timings run on (speed.quickest_cpu).

The choice runs only on a GPU machine, so its rules are checked here with a
launch cost that depends on nothing but the CPU the thread is pinned to.
"""

import os

import pytest

from safe_greedy import speed

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="the platform cannot pin threads")


def _cost_by_pinned_cpu(costs):
    def launch_us():
        pinned = os.sched_getaffinity(0)
        assert len(pinned) == 1, f"measured while allowed on {sorted(pinned)}"
        return costs[next(iter(pinned))]

    return launch_us


def test_the_cheapest_cpu_is_chosen_and_the_affinity_restored():
    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    # The cheapest CPU is the last one, so a choice of the first (or of any
    # CPU without measuring) fails.
    costs = {cpu: 10.0 - i for i, cpu in enumerate(cpus)}
    chosen, measured = speed.quickest_cpu(_cost_by_pinned_cpu(costs), cpus)
    assert chosen == cpus[-1]
    assert measured == costs
    assert os.sched_getaffinity(0) == before


def test_a_tie_goes_to_the_lowest_cpu():
    cpus = sorted(os.sched_getaffinity(0))
    chosen, _ = speed.quickest_cpu(_cost_by_pinned_cpu({cpu: 1.0 for cpu in cpus}), list(reversed(cpus)))
    assert chosen == cpus[0]


def test_the_affinity_is_restored_when_a_measurement_fails():
    before = os.sched_getaffinity(0)

    def failing():
        raise RuntimeError("no device")

    with pytest.raises(RuntimeError, match="no device"):
        speed.quickest_cpu(failing, sorted(before))
    assert os.sched_getaffinity(0) == before


def test_no_cpus_is_refused():
    with pytest.raises(ValueError, match="no CPUs"):
        speed.quickest_cpu(lambda: 1.0, [])
