"""What a sweep's results mean, shared by bench.py (which writes them) and
report.py (which reads them): the time target, a cell's time, the geometric
mean. Torch-free, so that report.py runs anywhere."""

from __future__ import annotations

import math
import statistics
from typing import Dict, List, Optional

# The time target: time <= TARGET_SLACK x bytes / read bandwidth + TARGET_FIXED_US.
TARGET_SLACK = 1.10
TARGET_FIXED_US = 2.5


def target_us(nbytes: int, bytes_per_s: float) -> float:
    """The time target for reading ``nbytes``."""
    return TARGET_SLACK * nbytes / bytes_per_s * 1e6 + TARGET_FIXED_US


def cell_time_us(cell: Dict, name: str = "safe_greedy") -> Optional[float]:
    """``name``'s time in a cell: graph replay where timed, else wall clock."""
    t = (cell.get("times_us") or {}).get(name)
    if not t:
        return None
    return t.get("graph", t.get("wall"))


# The call with every extra output meets the same target, or, in cells where
# the exponentials' throughput rules that out (shown by a profile), this
# bound: time <= OUTPUTS_BOUND_SLACK x floor + TARGET_FIXED_US, the floor
# being bytes / read bandwidth plus an empty kernel.
OUTPUTS_BOUND_SLACK = 1.25


def within_outputs_bound(cell: Dict) -> Optional[bool]:
    """Whether the call with every extra output is within that bound in
    ``cell`` (None where it or the floor was not measured)."""
    t = cell_time_us(cell, "safe_greedy_outputs")
    floor = cell.get("floor_us")
    if t is None or not floor:
        return None
    return t <= OUTPUTS_BOUND_SLACK * floor + TARGET_FIXED_US


def geomean(values: List[float]) -> Optional[float]:
    values = [v for v in values if v]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None
