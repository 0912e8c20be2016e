"""Calls in a child process made by os.fork() after the parent used torch's
thread pool.

OpenMP's pool does not survive a fork: a child that opens a parallel region
waits forever for the parent's threads. torch.argmax hangs there too on
inputs of more than 32768 elements with two rows or more. safe_greedy keeps
small calls (at most 32 KiB of logits) on the calling thread, and, in a child
forked after it was imported, runs every call on the calling thread.

Each case runs in a fresh interpreter (the pytest process itself is never
forked) under a timeout, so a hang fails the test instead of the run.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# The parent: start the pool, compute the answers, fork; the child computes
# them again and exits 0 if they match. The parent waits at most CHILD_S.
_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import torch
    {import_before_fork}
    torch.randn(64, 151936).argmax(-1)  # the pool's threads are running now
    assert torch.get_num_threads() > 1
    shapes = {shapes}
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(*s, generator=gen).to(dt) for s in shapes for dt in (torch.float32, torch.bfloat16)]
    expected = [x.argmax(-1) for x in inputs]
    pid = os.fork()
    if pid == 0:
        import safe_greedy
        ok = all(torch.equal(safe_greedy.argmax(x), e) for x, e in zip(inputs, expected))
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + {child_s}
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("exit", os.waitstatus_to_exitcode(status))
            sys.exit(0)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("hung")
    """
)

SMALL = [(2, 16), (8, 1000), (2, 4096), (1, 16000), (3, 2730)]  # at most 32 KiB of fp32
LARGE = [(64, 151936), (1, 151936), (3, 5000), (4096, 32)]  # torch.argmax uses threads for all but (1, 151936)


def run_in_forked_child(shapes, *, import_before_fork: bool) -> str:
    script = _SCRIPT.format(
        import_before_fork="import safe_greedy" if import_before_fork else "",
        shapes=shapes,
        child_s=60,
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=240, env=env)
    assert child.returncode == 0, child.stderr
    return child.stdout.strip()


@pytest.fixture(autouse=True)
def needs_threads():
    if torch.get_num_threads() < 2:
        pytest.skip("needs torch to use two threads or more (else nothing is left behind by fork)")


def test_small_calls_run_on_the_calling_thread():
    # safe_greedy imported only in the child: the fork is not known to it, and
    # only the size of the work keeps it off the dead pool.
    assert run_in_forked_child(SMALL, import_before_fork=False) == "exit 0"


def test_every_call_runs_in_a_child_forked_after_import():
    assert run_in_forked_child(SMALL + LARGE, import_before_fork=True) == "exit 0"
