"""`python -m safe_greedy`: its arguments and how its speed table reads spread.

No timing here: the table's noise flag is checked on made-up samples.
"""

import os
import subprocess
import sys

import pytest

from safe_greedy import speed
from safe_greedy.__main__ import main


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "safe_greedy", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_help_is_plain_text_and_covers_every_option():
    child = run_cli("--help")
    assert child.returncode == 0, child.stderr
    text = child.stdout
    assert "`" not in text, text
    # Every option's line in the options list has words after it.
    for option in ("--device", "--cases", "--no-speed"):
        after = text.split("\n  " + option, 1)[1]
        help_text = after.split("\n  -", 1)[0]
        assert len(help_text.split()) > 3, f"{option} has no help text:\n{text}"


@pytest.mark.parametrize("cases", ["-5", "0", "x", "2.5"])
def test_cases_must_be_a_positive_whole_number(cases, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--cases", cases, "--device", "cpu", "--no-speed"])
    assert exit_info.value.code == 2
    assert "--cases" in capsys.readouterr().err


def test_a_run_with_one_case():
    child = run_cli("--cases", "1", "--device", "cpu", "--no-speed")
    assert child.returncode == 0, child.stdout + child.stderr
    assert "1/1 cases PASS" in child.stdout
    assert child.stdout.rstrip().splitlines()[-1].startswith("all checks PASS")


def test_spread_and_noise_flag():
    steady = speed.Spread([10.0, 10.2, 10.1, 10.3, 10.0, 10.4, 10.1])
    assert (steady.fastest, steady.median) == (10.0, 10.1)
    assert not steady.noisy
    # A wide middle half: noisy.
    assert speed.Spread([10.0, 10.0, 12.0, 14.0, 16.0, 16.0]).noisy
    # A tight middle half, all far above the fastest call: the machine was busy.
    busy = speed.Spread([1.0] + [8000.0] * 20)
    assert busy.relative_iqr == 0.0 and busy.noisy
    assert "10.0 /" in steady.cell() and "%" in steady.cell()
