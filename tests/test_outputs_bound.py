"""The bound that a call with every extra output must meet in cells where the
plain call's time target is out of reach, 1.25 x floor + 2.5 us: bench.py
records it for each cell and counts it in its summary, and report.py counts
it, also in results written before bench.py recorded it."""

import copy
import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "results",
                       "h100-cuda-outputs-subset-2026-12-06.json")


def _cell(floor_us, outputs_us):
    times = {"safe_greedy": {"graph": floor_us}}
    if outputs_us is not None:
        times["safe_greedy_outputs"] = {"graph": outputs_us}
    return {"floor_us": floor_us, "target_us": 1.10 * floor_us + 2.5, "times_us": times}


def test_the_bound_is_a_quarter_over_the_floor_plus_2_5_us(bench):
    at, past, untimed = _cell(10.0, 15.0), _cell(10.0, 15.01), _cell(10.0, None)
    for cell in (at, past, untimed):
        bench.derive_outputs(cell, "graph")
    assert at["outputs"]["within_bound"] is True
    assert past["outputs"]["within_bound"] is False
    assert untimed["outputs"]["within_bound"] is None
    assert bench.summarise_outputs([at, past, untimed])["cells_within_bound"] == 1


def _bound_line(markdown):
    lines = [line for line in markdown.splitlines() if "x floor + 2.5 us" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_report_counts_it_from_each_cells_floor(report):
    with open(RESULTS) as f:
        results = json.load(f)
    cells = results["cells"]
    assert not any("within_bound" in (c.get("outputs") or {}) for c in cells)  # written before it was recorded
    assert _bound_line(report.markdown(results)).endswith(f": {len(cells)} of {len(cells)}.")
    slower = copy.deepcopy(results)
    cell = slower["cells"][0]
    cell["times_us"]["safe_greedy_outputs"]["graph"] = 1.25 * cell["floor_us"] + 2.51
    assert _bound_line(report.markdown(slower)).endswith(f": {len(cells) - 1} of {len(cells)}.")
