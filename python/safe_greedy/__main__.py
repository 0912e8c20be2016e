"""python -m safe_greedy: check the contract on every device present, then time it.

For each device (the CPU, and the GPU when torch sees one):

  (a) the aiter failure matrix: the inputs that break aiter's greedy_sample,
      with what a model of that bug, torch.argmax and safe_greedy return;
  (b) random rows of random shapes, dtypes, layouts and values, and the
      contract's edge cases, against torch.argmax; the same with every extra
      output (logprobs, logsumexp, valid, fallback_token) against torch;
  (c) a short speed table against torch.argmax (``--no-speed`` skips it).

Exits with status 1 if any correctness check failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import safe_greedy
from safe_greedy import selfcheck, speed


def _log(line: str = "") -> None:
    print(line, flush=True)


def _devices(requested: str):
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise SystemExit("safe_greedy: --device cuda, but torch sees no GPU")
    devices = []
    if requested in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if requested in ("all", "cuda") and cuda:
        devices.append(torch.device("cuda", torch.cuda.current_device()))
    return devices


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m safe_greedy",
        description=(
            "Check safe_greedy against torch.argmax on every device present (the aiter failure "
            "cases, random rows, edge cases), then time both. Exits with status 1 if any check fails."
        ),
    )
    parser.add_argument(
        "--device",
        choices=("all", "cpu", "cuda"),
        default="all",
        help="where to check and time: every device torch sees (all, the default), the CPU only, "
        "or the GPU only (an error when torch sees none)",
    )
    parser.add_argument(
        "--cases",
        type=_positive_int,
        default=300,
        metavar="N",
        help="random cases per device, 1 or more (default 300)",
    )
    parser.add_argument("--no-speed", action="store_true", help="skip the speed table")
    args = parser.parse_args(argv)

    devices = _devices(args.device)
    _log(f"safe_greedy {safe_greedy.__version__}  torch {torch.__version__}  {speed.utc_now()}")
    for device in devices:
        _log(f"device {device}: {speed.device_name(device)}")

    failures = 0
    began = time.perf_counter()
    for device in devices:
        _log()
        _log(f"== {device} ({speed.device_name(device)})")
        _log("(a) aiter failure matrix")
        failures += selfcheck.failure_matrix(device, log=_log)
        _log("(b) random rows against torch.argmax")
        failures += selfcheck.random_checks(device, cases=args.cases, log=_log)
        failures += selfcheck.outputs_checks(device, cases=max(1, args.cases // 3), log=_log)
        if not args.no_speed:
            _log("(c) speed against torch.argmax")
            try:
                speed.speed_table(device, log=_log)
            except Exception as exc:  # a timing problem must not hide the checks' verdict
                _log(f"    speed table failed: {type(exc).__name__}: {exc}")
    _log()
    verdict = "all checks PASS" if failures == 0 else f"{failures} check(s) FAILED"
    _log(f"{verdict} ({time.perf_counter() - began:.0f} s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
