"""Correctness checks of ``python -m safe_greedy``: the aiter failure matrix, random rows, edges.

Every check compares safe_greedy with ``torch.argmax`` on the same device, which
is the contract (README, "The contract"). The "aiter*" column is not aiter:
it is a few lines of Python that model the bug described in the README
("Why"), so the table shows which inputs such a kernel gets wrong without
needing a ROCm machine.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch

from safe_greedy import argmax as sg_argmax
from safe_greedy import greedy_sample

MATRIX_VOCABS = (151666, 32001, 151936)
MATRIX_DTYPES = ((torch.float32, "fp32"), (torch.bfloat16, "bf16"), (torch.float16, "fp16"))
VECTOR = 16  # the modelled kernel's vector width, in elements


def aiter_model(row: torch.Tensor) -> Optional[int]:
    """What a kernel with aiter's bug returns for one row (a model of the bug, not aiter).

    The kernel reads the row in 16-wide vectors, the lanes past the end read as
    0.0, NaN never wins a comparison, the first maximum wins, and no one checks
    ``index < vocab``. So a row whose best non-NaN value is below zero comes
    back as ``vocab``. None when the padded row has no non-NaN value at all
    (the real kernel returns whatever its uninitialised state holds).
    """
    vocab = row.shape[-1]
    values = row.detach().to("cpu", torch.float32).reshape(-1)
    padded = torch.cat([values, values.new_zeros((-vocab) % VECTOR)])
    comparable = ~torch.isnan(padded)
    if not bool(comparable.any()):
        return None
    best = padded[comparable].max()
    return int(torch.nonzero((padded == best) & comparable)[0, 0])


# ---------------------------------------------------------------------------
# (a) the failure matrix


def _matrix_rows(vocab: int, gen: torch.Generator) -> List[Tuple[str, torch.Tensor]]:
    """The cases, in fp32; the caller rounds them to the dtype under test."""
    def normal() -> torch.Tensor:
        return torch.randn(vocab, generator=gen)

    nan_tail = normal()
    nan_tail[-1] = float("nan")
    max_tail = normal()
    max_tail[-1] = 100.0
    return [
        ("all -inf", torch.full((vocab,), float("-inf"))),
        ("all NaN", torch.full((vocab,), float("nan"))),
        ("all -1e30", torch.full((vocab,), -1e30)),
        ("all -1e5", torch.full((vocab,), -1e5)),
        ("max < 0", normal() - 10.0),
        ("NaN in tail", nan_tail),
        ("max in tail", max_tail),
    ]


def failure_matrix(device: torch.device, log=print) -> int:
    """Prints the matrix; returns the number of failed safe_greedy cells."""
    failures = 0
    model_out_of_range = 0
    model_wrong = 0
    cells = 0
    gen = torch.Generator().manual_seed(1234)
    results: Dict[Tuple[str, int], List[str]] = {}
    order: List[Tuple[str, int]] = []
    for vocab in MATRIX_VOCABS:
        cases = _matrix_rows(vocab, gen)
        for dtype, _ in MATRIX_DTYPES:
            # All cases of one (vocab, dtype) go in as one batch: rows must not
            # leak into each other either.
            logits = torch.stack([row for _, row in cases]).to(dtype).to(device)
            out = torch.full((len(cases),), -1, dtype=torch.int64, device=device)
            greedy_sample(out, logits)
            ours = out.tolist()
            ref = torch.argmax(logits, -1).tolist()
            for i, (name, _) in enumerate(cases):
                model = aiter_model(logits[i])
                ok = ours[i] == ref[i] and 0 <= ours[i] < vocab
                cells += 1
                failures += not ok
                model_out_of_range += model is None or not 0 <= model < vocab
                model_wrong += model != ref[i]
                key = (name, vocab)
                if key not in results:
                    results[key] = []
                    order.append(key)
                shown = "-" if model is None else str(model)
                results[key].append(f"{shown:>7} {ref[i]:>6} {ours[i]:>6} {'PASS' if ok else 'FAIL'}")

    head = " | ".join(f"{label + ': aiter*  torch     sg':<26}" for _, label in MATRIX_DTYPES)
    log(f"    {'case':<12} {'vocab':>6} | {head}")
    for name, vocab in order:
        log(f"    {name:<12} {vocab:>6} | " + " | ".join(f"{c:<26}" for c in results[(name, vocab)]))
    log(
        "    aiter* = a Python MODEL of aiter's bug (zero-padded 16-wide tail, NaN skipped, first max,\n"
        "    no index < vocab check), not aiter itself; '-' = no comparable value (undefined in the\n"
        "    real kernel). fp16 cannot hold -1e30 or -1e5: those rows are -inf in fp16."
    )
    log(
        f"    safe_greedy: {cells - failures}/{cells} PASS. aiter model: {model_wrong}/{cells} differ from "
        f"torch.argmax, {model_out_of_range}/{cells} out of [0, vocab)."
    )
    return failures


# ---------------------------------------------------------------------------
# (b) random rows and contract edges

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_SMALL_VOCABS = (1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 255, 256, 257, 1000, 1023,
                 1024, 1025, 3072, 4095, 4097, 16383, 16385, 32000, 32001)
_LARGE_VOCABS = (128256, 129280, 151666, 151936, 262144)


def _values(batch: int, vocab: int, kind: str, rng: random.Random, gen: torch.Generator) -> torch.Tensor:
    if kind == "ties":
        # A handful of distinct values: many equal maxima, the lowest index must win.
        x = torch.randint(-3, 4, (batch, vocab), generator=gen).float()
    elif kind == "signed zeros":
        x = torch.zeros(batch, vocab)
        x[torch.rand(batch, vocab, generator=gen) < 0.5] = -0.0
        x[torch.rand(batch, vocab, generator=gen) < 0.01] = -1.0
    elif kind == "all equal":
        x = torch.full((batch, vocab), rng.choice([-1e30, -5.0, 0.0, 3.0, float("-inf"), float("inf")]))
    else:
        x = torch.randn(batch, vocab, generator=gen) * rng.choice([1.0, 10.0, 1e4]) + rng.choice([0.0, -50.0])
    if kind in ("nan", "nan+inf"):
        x[torch.rand(batch, vocab, generator=gen) < rng.choice([1e-4, 1e-2, 0.5])] = float("nan")
    if kind in ("inf", "nan+inf"):
        x[torch.rand(batch, vocab, generator=gen) < 1e-3] = float("inf")
        x[torch.rand(batch, vocab, generator=gen) < 1e-2] = float("-inf")
    if kind == "nan" and rng.random() < 0.3:
        # A NaN with the sign bit set and another payload: still "a NaN".
        x[rng.randrange(batch), rng.randrange(vocab)] = -float("nan")
    return x


def _layout(x: torch.Tensor, layout: str, rng: random.Random, device: torch.device) -> torch.Tensor:
    batch, vocab = x.shape
    if layout == "transposed":
        return x.t().contiguous().to(device).t()
    x = x.to(device)
    if layout == "contiguous":
        return x
    if layout == "padded rows":
        # SGLang's case: a [batch, vocab] slice of a wider buffer.
        buf = torch.full((batch, vocab + rng.choice([1, 3, 64, 77])), 1e4, dtype=x.dtype, device=device)
        buf[:, :vocab] = x
        return buf[:, :vocab]
    if layout == "unaligned":
        flat = torch.full((batch * vocab + 1,), 1e4, dtype=x.dtype, device=device)
        flat[1:] = x.reshape(-1)
        return flat[1:].view(batch, vocab)
    if layout == "column stride":
        buf = torch.full((batch, vocab, 2), 1e4, dtype=x.dtype, device=device)
        buf[:, :, 0] = x
        return buf[:, :, 0]
    raise ValueError(layout)


_KINDS = ("normal", "normal", "nan", "inf", "nan+inf", "ties", "signed zeros", "all equal")
_LAYOUTS = ("contiguous", "contiguous", "padded rows", "unaligned", "column stride", "transposed")


def random_checks(device: torch.device, cases: int = 300, seed: int = 0, log=print,
                  gpu_shapes: Optional[bool] = None) -> int:
    """Random shapes, dtypes, layouts and values against torch.argmax; returns failures.

    ``gpu_shapes`` (default: on a GPU) adds the shapes that take the GPU
    kernel's other paths, which are slow to build on the CPU.
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    failed_cases = 0
    rows = 0
    failures: List[str] = []
    per_kind: Dict[str, List[int]] = {}
    big = device.type == "cuda" if gpu_shapes is None else gpu_shapes
    for case in range(cases):
        dtype = rng.choice(_DTYPES)
        kind = rng.choice(_KINDS)
        layout = rng.choice(_LAYOUTS)
        if rng.random() < (0.25 if big else 0.05):
            vocab = rng.choice(_LARGE_VOCABS)
        elif rng.random() < 0.5:
            vocab = rng.choice(_SMALL_VOCABS)
        else:
            vocab = rng.randint(1, 70000)
        batch = rng.choice([1, 1, 2, 3, 4, 5, 8])
        if big and rng.random() < 0.07:
            # Enough rows to take the one-block-per-row path of the GPU kernel,
            # and, with short rows, the path where rows share a block (past a
            # wave of blocks on any current GPU at 20001).
            batch = rng.choice([600, 1500, 4096, 20001])
            vocab = rng.choice([1, 17, 3072, 4097])
        x = _layout(_values(batch, vocab, kind, rng, gen).to(dtype), layout, rng, device)
        ref = torch.argmax(x, -1)
        out_dtype = rng.choice([torch.int32, torch.int64])
        strided_out = rng.random() < 0.2
        out_buf = torch.full((batch * (2 if strided_out else 1),), -7, dtype=out_dtype, device=device)
        out = out_buf[::2] if strided_out else out_buf
        greedy_sample(out, x)
        if big:
            # Again on the same output: a split-row combine must leave its
            # workspace ready for the next call.
            greedy_sample(out, x)
        got = out.to(torch.int64)
        bad = int((got != ref).sum()) + int(((got < 0) | (got >= vocab)).sum())
        if rng.random() < 0.1:
            # The functional form, with an extra leading dimension.
            functional = sg_argmax(x.unsqueeze(0)).reshape(-1)
            bad += int((functional != ref).sum())
        rows += batch
        tally = per_kind.setdefault(kind, [0, 0])
        tally[0] += 1
        if bad:
            failed_cases += 1
            tally[1] += 1
            if len(failures) < 10:
                failures.append(
                    f"case {case}: {kind}, {layout}, {dtype}, [{batch}, {vocab}], out {out_dtype}: "
                    f"{bad} wrong (first: got {got[:4].tolist()}, torch {ref[:4].tolist()})"
                )
    kinds = ", ".join(f"{k} {v[0] - v[1]}/{v[0]}" for k, v in sorted(per_kind.items()))
    log(f"    random: {cases - failed_cases}/{cases} cases PASS ({rows} rows; {kinds})")
    for line in failures:
        log(f"    FAIL {line}")
    edge_failures = _edge_checks(device, log)
    if device.type == "cuda":
        failed_cases += _graph_check(device, log)
    return failed_cases + edge_failures


def _expect_raise(fn: Callable[[], None]) -> bool:
    try:
        fn()
    except (RuntimeError, ValueError, TypeError, IndexError):
        return True
    return False


def _edge_cases(device: torch.device) -> List[Tuple[str, Callable[[], bool]]]:
    """Contract items 5 and 6: empty vocab raises, empty batch is a no-op, a
    call that raises leaves ``out`` untouched."""
    sentinel = torch.full((3,), -7, dtype=torch.int64, device=device)

    def raises_untouched(out: torch.Tensor, logits_fn: Callable[[], torch.Tensor]) -> Callable[[], bool]:
        def check() -> bool:
            before = out.clone()
            logits = logits_fn()
            return _expect_raise(lambda: greedy_sample(out, logits)) and torch.equal(out, before)
        return check

    def empty_batch() -> bool:
        out = torch.empty(0, dtype=torch.int64, device=device)
        greedy_sample(out, torch.empty(0, 5, device=device))
        return out.numel() == 0

    return [
        ("vocab 0 raises, out untouched",
         raises_untouched(sentinel.clone(), lambda: torch.empty(3, 0, device=device))),
        ("batch 0 is a no-op", empty_batch),
        ("float64 raises, out untouched",
         raises_untouched(sentinel.clone(), lambda: torch.randn(3, 5, dtype=torch.float64, device=device))),
        ("int16 out raises, out untouched",
         raises_untouched(sentinel.to(torch.int16), lambda: torch.randn(3, 5, device=device))),
        ("batch mismatch raises, out untouched",
         raises_untouched(sentinel.clone(), lambda: torch.randn(4, 5, device=device))),
    ]


def _edge_child(device_name: str, first: int = 0) -> None:
    """Runs in a child process: one "index PASS|FAIL" line per edge case from ``first`` on."""
    for index, (_, check) in enumerate(_edge_cases(torch.device(device_name))):
        if index >= first:
            print(f"{index} {'PASS' if check() else 'FAIL'}", flush=True)


def _run_edge_child(device: torch.device, first: int):
    code = f"from safe_greedy.selfcheck import _edge_child; _edge_child({str(device)!r}, {first})"
    env = dict(os.environ)
    # The child must import this same safe_greedy, wherever it was imported from.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=300, env=env)
        return child.stdout, child.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        return (out.decode(errors="replace") if isinstance(out, bytes) else out), "timeout"


def _edge_checks(device: torch.device, log) -> int:
    """The edge cases, in child processes: error paths are where a native crash
    hides, and a crash must be reported as that case's failure, not end the run."""
    names = [name for name, _ in _edge_cases(device)]
    verdicts: Dict[int, str] = {}
    first = 0
    while first < len(names):
        stdout, returncode = _run_edge_child(device, first)
        for line in stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1] in ("PASS", "FAIL"):
                verdicts[int(parts[0])] = parts[1]
        done = [i for i in verdicts if i >= first]
        crashed = max(done) + 1 if done else first
        if returncode == 0 or crashed >= len(names):
            for index in range(first, len(names)):
                verdicts.setdefault(index, f"FAIL (no verdict, exit {returncode})")
            break
        how = f"signal {-returncode}" if isinstance(returncode, int) and returncode < 0 else f"exit {returncode}"
        verdicts[crashed] = f"CRASHED ({how})"
        first = crashed + 1
    failed = [f"{names[i]}: {verdicts[i]}" for i in range(len(names)) if verdicts[i] != "PASS"]
    log(f"    edges: {len(names) - len(failed)}/{len(names)} PASS")
    for line in failed:
        log(f"    FAIL {line}")
    return len(failed)


def _graph_check(device: torch.device, log) -> int:
    """Captured once, replayed on new data: the answer must follow the data."""
    failed = 0
    stream = torch.cuda.Stream(device=device)
    for batch, vocab in ((1, 151936), (3, 262144), (64, 32001), (2048, 3072)):
        static = torch.randn(batch, vocab, device=device)
        out = torch.empty(batch, dtype=torch.int64, device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            greedy_sample(out, static)  # warm-up, as a caller would: one eager call first
        torch.cuda.current_stream(device).wait_stream(stream)
        torch.cuda.synchronize(device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            greedy_sample(out, static)
        for trial in range(3):
            static.copy_(torch.randn(batch, vocab, device=device))
            if trial == 2:
                static[:, -1] = float("nan")
            graph.replay()
            torch.cuda.synchronize(device)
            failed += not torch.equal(out, torch.argmax(static, -1))
        del graph
    log(f"    CUDA graph replay: {12 - failed}/12 PASS")
    return failed


# ---------------------------------------------------------------------------
# (b, continued) the extra outputs: logprobs, logsumexp, valid, fallback_token


def outputs_reference(x: torch.Tensor, fallback: Optional[int]):
    """torch's token, log-probability, logsumexp and validity of each row."""
    xf = x.float()
    valid = ~torch.isnan(xf).any(-1) & (xf.amax(-1) > float("-inf"))
    token = torch.argmax(x, -1)
    if fallback is not None:
        token = torch.where(valid, token, torch.full_like(token, fallback))
    logprobs = torch.log_softmax(xf, -1).gather(-1, token[:, None])[:, 0]
    return token, logprobs, torch.logsumexp(xf, -1), valid


def close_like_torch(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Per row: the same NaN or infinity as torch, or within 2e-5 * max(1, |torch|)."""
    nan = torch.isnan(want)
    inf = torch.isinf(want)
    near = (got.double() - want.double()).abs() <= 2e-5 * want.double().abs().clamp(min=1)
    return torch.where(nan, torch.isnan(got), torch.where(inf, got == want, near))


def wrong_rows(x: torch.Tensor, fallback: Optional[int], out: Optional[torch.Tensor], logprobs: torch.Tensor,
               logsumexp: torch.Tensor, valid: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Per output of a call on ``x``, which rows differ from torch's answer
    (outputs_reference), by this check's rule (close_like_torch); the token
    only where ``out`` is given."""
    token, lp, lse, ok = outputs_reference(x, fallback)
    wrong = {} if out is None else {"token": out.long() != token}
    wrong.update(valid=valid != ok, logprobs=~close_like_torch(logprobs, lp),
                 logsumexp=~close_like_torch(logsumexp, lse))
    return wrong


def outputs_checks(device: torch.device, cases: int = 100, seed: int = 1, log=print) -> int:
    """Random rows with every extra output against torch's log_softmax,
    logsumexp and isnan/amax; returns the number of failed cases."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    failed = 0
    failures: List[str] = []
    big = device.type == "cuda"
    for case in range(cases):
        dtype = rng.choice(_DTYPES)
        kind = rng.choice(_KINDS)
        layout = rng.choice(_LAYOUTS)
        vocab = rng.choice(_LARGE_VOCABS) if rng.random() < (0.3 if big else 0.1) else rng.choice(_SMALL_VOCABS)
        batch = rng.choice([1, 2, 3, 5, 8] + ([600] if big and vocab < 70000 else []))
        values = _values(batch, vocab, kind, rng, gen)
        if rng.random() < 0.3:
            # A fully masked row, with a few finite entries or none.
            row = rng.randrange(batch)
            values[row] = float("-inf")
            for _ in range(rng.choice([0, 1, 3])):
                values[row, rng.randrange(vocab)] = rng.choice([-3.0, 0.0, 2e4])
        x = _layout(values.to(dtype), layout, rng, device)
        fallback = rng.choice([None, 0, vocab - 1])
        out = torch.full((batch,), -7, dtype=rng.choice([torch.int32, torch.int64]), device=device)
        logprobs = torch.empty(batch, device=device)
        logsumexp = torch.empty(batch, device=device)
        valid = torch.empty(batch, dtype=torch.bool, device=device)
        greedy_sample(out, x, logprobs=logprobs, logsumexp=logsumexp, valid=valid, fallback_token=fallback)
        bad = {name: int(rows.sum()) for name, rows in wrong_rows(x, fallback, out, logprobs, logsumexp, valid).items()}
        if any(bad.values()):
            failed += 1
            if len(failures) < 10:
                wrong = ", ".join(f"{k} {v}" for k, v in bad.items() if v)
                failures.append(f"case {case}: {kind}, {layout}, {dtype}, [{batch}, {vocab}], "
                                f"fallback {fallback}: rows wrong: {wrong}")
    log(f"    outputs: {cases - failed}/{cases} cases PASS (logprobs, logsumexp, valid, fallback_token "
        "against torch)")
    for line in failures:
        log(f"    FAIL {line}")
    return failed
