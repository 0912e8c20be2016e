"""The safe_greedy test suite's hypothesis profiles and fixtures; the helpers
the tests share are in tests/helpers.py.

Hypothesis profiles: "default" for local runs and "ci" for CI (more examples,
derandomised so a failure reproduces). Pick one with HYPOTHESIS_PROFILE=ci.
"""

import importlib.util
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from helpers import DEVICE_PARAMS, HAS_CUDA

# ---------------------------------------------------------------------------
# Hypothesis profiles
# ---------------------------------------------------------------------------

_COMMON = dict(
    # Kernel calls and tensor construction take milliseconds, and the first
    # example of a test pays for lazy initialisation: no per-example deadline.
    deadline=None,
    # Examples build tensors of up to a few MB; that is the point, not a smell.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

# max_examples is per test; the heaviest tests scale it down with
# scaled_examples() (tests/helpers.py) so the CPU suite stays within a few minutes on
# 2 cores.
settings.register_profile("default", max_examples=200, **_COMMON)
settings.register_profile("ci", max_examples=500, derandomize=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# ---------------------------------------------------------------------------
# torch's CPU threads
# ---------------------------------------------------------------------------

# Each pytest-xdist worker would start torch's default pool, a thread a core:
# N workers on N cores would then run N^2 threads that spin while they wait,
# and the CPU tests crawl. Each worker gets its share of the cores instead,
# at least two so that the tests of the CPU kernel's thread pool still run.
# For the same reason torch.compile's code generation stays in the worker
# rather than in a pool of a process a core that each worker would start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    torch.set_num_threads(max(2, _cores // max(1, _workers)))
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

# torch's CPU pool threads keep the flush-denormal mode of the thread that
# started them (tests/test_flush_denormal.py). Started here, in the default
# mode, they cannot be started by a test that switched the mode on and then
# flush rows of torch.argmax in every later test of the process.
torch.ones(1 << 22).sum()

# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(params=DEVICE_PARAMS)
def device(request) -> str:
    return request.param


# Where torch sees no GPU, the tests marked gpu are left out of the run and
# counted in one line of the summary, instead of one "skipped" line each.
_GPU_TESTS_LEFT_OUT = pytest.StashKey[int]()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]
        config.hook.pytest_deselected(items=gpu)
        config.stash[_GPU_TESTS_LEFT_OUT] = len(gpu)


def pytest_runtest_setup(item):
    # pytest-xdist's workers share the device, so a measurement of all of it
    # would count their tensors too; the GPU scripts run these tests in a pass
    # of their own.
    if item.get_closest_marker("whole_device") and os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("measures the whole device, which the other workers' tests change: "
                    "run it without -n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left_out = config.stash.get(_GPU_TESTS_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} GPU tests not run (counted as deselected): torch {torch.__version__} sees no "
            "CUDA or ROCm device; where it sees one, they run."
        )


def _benchmark_script(file_name: str, module_name: str):
    """A script of benchmarks/ as a module (the scripts are not part of the package)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", file_name)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench():
    """benchmarks/bench.py as a module."""
    return _benchmark_script("bench.py", "safe_greedy_bench")


@pytest.fixture(scope="session")
def report():
    """benchmarks/report.py as a module."""
    return _benchmark_script("report.py", "safe_greedy_report")


@pytest.fixture(scope="session")
def host_overhead():
    """benchmarks/host_overhead.py as a module."""
    return _benchmark_script("host_overhead.py", "safe_greedy_host_overhead")


@pytest.fixture(scope="session")
def tune_splits():
    """benchmarks/tune_splits.py as a module."""
    return _benchmark_script("tune_splits.py", "safe_greedy_tune_splits")


@pytest.fixture(scope="session")
def profile_cells():
    """benchmarks/profile_cells.py as a module."""
    return _benchmark_script("profile_cells.py", "safe_greedy_profile_cells")
