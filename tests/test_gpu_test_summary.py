"""Where torch sees no GPU, a test run counts the GPU tests in one summary line
(instead of one "skipped" line each) and still ends with pytest's usual closing
line; where it sees one, they run as usual. A small run of pytest checks it."""

import os
import re
import subprocess
import sys

import torch

_TESTS = os.path.dirname(os.path.abspath(__file__))


def test_gpu_tests_are_counted_in_one_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.join(_TESTS, "test_argument_types.py"),
         os.path.join(_TESTS, "test_vmap.py"), "-p", "no:cacheprovider", "-rs"],
        capture_output=True, text=True, timeout=600, env=env, cwd=os.path.dirname(_TESTS),
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    lines = child.stdout.rstrip().splitlines()
    counted = [line for line in lines if "GPU tests not run" in line]
    if torch.cuda.is_available():
        assert not counted and "deselected" not in lines[-1], child.stdout[-3000:]
        return
    assert len(counted) == 1, child.stdout[-3000:]
    assert not any("SKIPPED" in line for line in lines), child.stdout[-3000:]
    gpu_tests = int(counted[0].split()[0])
    # An older torch may add a count of its own deprecation warnings.
    summary = rf"=+ \d+ passed, {gpu_tests} deselected(, \d+ warnings?)? in [\d.]+s( \([^)]*\))? =+"
    assert re.fullmatch(summary, lines[-1]), lines[-1]
