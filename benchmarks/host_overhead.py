"""Per-call host overhead of safe_greedy's eager calls, for one build or several side by side.

    python benchmarks/host_overhead.py --device cuda
    python benchmarks/host_overhead.py --device cuda --trees /old/python /new/python --names old new

A call on a one-row, short-vocab problem costs the host more than the device,
so the wall time per call in a loop of back-to-back eager calls is the host
overhead: Python, the dispatcher, the argument checks and the launch. Each
form is timed over --calls calls, best of --reps repeats (the device is
synchronised after each repeat). With --trees, each tree (a folder holding the
safe_greedy package, as PYTHONPATH would name it) runs in a subprocess of its
own, the trees taking turns for --rounds rounds, and the table gives each
form's best time per tree: builds compared in one run, on one machine, under
the same load. On a GPU every process runs on the one CPU that launched a
small kernel fastest (speed.pin_to_quickest_cpu(): eager times on one
machine have differed by several microseconds with the core). Writes a
markdown table to stdout and, with --json, the numbers.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def measure(device: str, vocab: int, calls: int, reps: int) -> dict:
    """{form: best microseconds per call} for the safe_greedy found on sys.path."""
    import torch

    import safe_greedy

    if device == "cpu":
        torch.set_num_threads(1)  # a one-row call runs on the calling thread anyway
    logits = torch.randn(1, vocab, device=device)
    out = torch.empty(1, dtype=torch.int64, device=device)
    logprobs = torch.empty(1, device=device)
    logsumexp = torch.empty(1, device=device)
    valid = torch.empty(1, dtype=torch.bool, device=device)
    op = torch.ops.safe_greedy.greedy_sample.default
    outputs_op = torch.ops.safe_greedy.greedy_sample_outputs.default
    forms = {
        "torch.ops greedy_sample": lambda: op(out, logits),
        "safe_greedy.greedy_sample": lambda: safe_greedy.greedy_sample(out, logits),
        "torch.ops greedy_sample_outputs (all)": lambda: outputs_op(out, logits, logprobs, logsumexp, valid, None),
        "safe_greedy.greedy_sample (all outputs)": lambda: safe_greedy.greedy_sample(
            out, logits, logprobs=logprobs, logsumexp=logsumexp, valid=valid
        ),
        "torch.argmax (reference)": lambda: torch.argmax(logits, -1),
    }
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = {}
    for name, call in forms.items():
        for _ in range(min(calls, 1000)):  # warm-up: lazy lookups, caches, clocks
            call()
        sync()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            for _ in range(calls):
                call()
            sync()
            times.append((time.perf_counter() - start) / calls * 1e6)
        best[name] = min(times)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--trees", nargs="*", default=[], help="folders holding the safe_greedy package")
    parser.add_argument("--names", nargs="*", default=[], help="the trees' names in the table (commits, say)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--cpu", type=int, help="run on this CPU alone (GPU runs pick one when not given)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.child:
        print(json.dumps(measure(args.device, args.vocab, args.calls, args.reps)))
        return

    import torch

    if args.device == "cuda" and args.cpu is None and hasattr(os, "sched_setaffinity"):
        from safe_greedy import speed

        args.cpu = speed.pin_to_quickest_cpu(torch.device("cuda"))["cpu"]

    trees = args.trees or [None]
    best = {tree: {} for tree in trees}
    for _ in range(args.rounds if args.trees else 1):
        for tree in trees:
            env = dict(os.environ)
            if tree is not None:
                env["PYTHONPATH"] = os.path.abspath(tree)
            command = [sys.executable, __file__, "--child", "--device", args.device, "--vocab", str(args.vocab),
                       "--calls", str(args.calls), "--reps", str(args.reps)]  # fmt: skip
            if args.cpu is not None:
                command += ["--cpu", str(args.cpu)]
            result = json.loads(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
            for form, us in result.items():
                best[tree][form] = min(us, best[tree].get(form, float("inf")))

    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    if args.cpu is not None:
        where += f", host thread on CPU {args.cpu}"
    print(f"Host overhead per eager call, 1x{args.vocab} fp32, {where}, torch {torch.__version__}, "
          f"best of {args.reps} x {args.calls} calls" + (f" in each of {args.rounds} rounds" if args.trees else ""))
    names = args.names if len(args.names) == len(trees) else [tree or "installed" for tree in trees]
    print("\n| form | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for form in best[trees[0]]:
        cells = [f"{best[tree][form]:.2f} us" for tree in trees]
        print(f"| {form} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "torch": torch.__version__, "vocab": args.vocab, "cpu": args.cpu,
                       "best_us": {name: best[tree] for name, tree in zip(names, trees)}}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
