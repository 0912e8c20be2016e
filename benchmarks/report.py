#!/usr/bin/env python3
"""Turn a results JSON of bench.py into markdown tables and a plot.

    python benchmarks/report.py benchmarks/results/cuda-20260101T000000Z.json

Writes ``<same name>.md`` and, when matplotlib is importable, ``<same name>.png``
(speed-up over torch.argmax and % of floor against batch; where the run timed
the extra outputs, also safe_greedy_outputs' speed-up over torch_composed and
its % of floor; one line per vocab, one panel per dtype).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

# The sibling module, whether this file runs as a script or is loaded by path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sweep_results import (OUTPUTS_BOUND_SLACK, TARGET_FIXED_US, TARGET_SLACK,  # noqa: E402
                           cell_time_us, geomean, within_outputs_bound)

DTYPE_ORDER = ("fp32", "bf16", "fp16")


def _fmt(value: Optional[float], spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _dtypes(cells: List[Dict]) -> List[str]:
    present = list(dict.fromkeys(c["dtype"] for c in cells))
    return sorted(present, key=lambda d: DTYPE_ORDER.index(d) if d in DTYPE_ORDER else len(DTYPE_ORDER))


def _cell_text(cell: Optional[Dict]) -> str:
    if cell is None:
        return ""
    t = cell_time_us(cell)
    if t is None:
        return "failed"
    rate = (cell.get("gbps") or {}).get("safe_greedy")
    shown = f"{t:.1f} us" + (f" ({rate:.1f} GB/s)" if rate else "")
    return f"{shown} / {_fmt(cell.get('speedup'), '.2f', 'x')} / {_fmt(cell.get('pct_floor'), '.0f', '%')}"


def _tables(cells: List[Dict], text, heading: str) -> List[str]:
    """A batch x vocab table per dtype, each cell written by ``text(cell)``."""
    lines = []
    for dtype in _dtypes(cells):
        subset = [c for c in cells if c["dtype"] == dtype]
        vocabs = sorted({c["vocab"] for c in subset})
        index = {(c["batch"], c["vocab"]): c for c in subset}
        lines.append(f"{heading} {dtype}")
        lines.append("")
        lines.append("| batch | " + " | ".join(str(v) for v in vocabs) + " |")
        lines.append("|---:|" + "---:|" * len(vocabs))
        for b in sorted({c["batch"] for c in subset}):
            lines.append(f"| {b} | " + " | ".join(text(index.get((b, v))) for v in vocabs) + " |")
        lines.append("")
    return lines


# The contenders of the extra outputs: reported in their own section, against
# safe_greedy_outputs rather than the plain call.
OUTPUT_CONTENDERS = ("safe_greedy_outputs", "torch_composed", "torch_logprobs")


def _has_outputs(cells: List[Dict]) -> bool:
    return any(cell_time_us(c, "safe_greedy_outputs") is not None for c in cells)


def _outputs_text(cell: Optional[Dict]) -> str:
    if cell is None:
        return ""
    t = cell_time_us(cell, "safe_greedy_outputs")
    if t is None:
        return "-"
    o = cell.get("outputs") or {}
    return (f"{t:.1f} us / {_fmt(o.get('speedup_vs_composed'), '.1f', 'x')} / "
            f"{_fmt(o.get('speedup_vs_logprobs'), '.1f', 'x')} / {_fmt(o.get('pct_floor'), '.0f', '%')}")


def _outputs_section(results: Dict, gpu: bool) -> List[str]:
    """safe_greedy with every output against the composed torch paths."""
    cells = results["cells"]
    if not _has_outputs(cells):
        return []
    out = [c.get("outputs") or {} for c in cells]
    composed = [o["speedup_vs_composed"] for o in out if o.get("speedup_vs_composed")]
    logprobs = [o["speedup_vs_logprobs"] for o in out if o.get("speedup_vs_logprobs")]
    plain = [o["vs_plain"] for o in out if o.get("vs_plain")]
    lines = ["## With every output (logprobs, logsumexp, valid)", ""]
    lines.append(f"- Over torch_composed (argmax + log_softmax(x.float()) + gather + logsumexp + isnan/amax "
                 f"validity): geometric mean {_fmt(geomean(composed), '.1f', 'x')}, least "
                 f"{_fmt(min(composed) if composed else None, '.1f', 'x')}, over {len(composed)} cells.")
    lines.append(f"- Over torch_logprobs (argmax + log_softmax + gather): geometric mean "
                 f"{_fmt(geomean(logprobs), '.1f', 'x')}, least {_fmt(min(logprobs) if logprobs else None, '.1f', 'x')}.")
    lines.append(f"- Time against the plain greedy_sample in the same cells: geometric mean "
                 f"{_fmt(geomean(plain), '.2f', 'x')}.")
    if gpu:
        target = results.get("target", {"slack": 1.10, "fixed_us": 2.5})
        met = sum(1 for o in out if o.get("meets_target"))
        timed = sum(1 for c in cells if cell_time_us(c, "safe_greedy_outputs") is not None)
        lines.append(f"- Cells with time <= {target['slack']:.2f} x bytes / bandwidth + {target['fixed_us']} us: "
                     f"{met} of {timed}.")
        # From each cell's floor and time, so that results written before
        # bench.py recorded the bound get it too.
        within = sum(1 for c in cells if within_outputs_bound(c))
        lines.append(f"- Cells with time <= {OUTPUTS_BOUND_SLACK:.2f} x floor + {TARGET_FIXED_US} us (the bound "
                     f"where the exponentials' throughput rules out the target): {within} of {timed}.")
    lines.append("")
    lines.append("Each cell: safe_greedy_outputs time / speed-up over torch_composed / over torch_logprobs / "
                 "% of floor.")
    lines.append("")
    return lines + _tables(cells, _outputs_text, "###")


def markdown(results: Dict) -> str:
    meta = results["meta"]
    cells = results["cells"]
    gpu = meta.get("device_type") == "cuda"
    lines: List[str] = []
    lines.append(f"# safe_greedy benchmark: {meta.get('device_name')}")
    lines.append("")
    facts = [
        ("card" if gpu else "CPU", meta.get("device_name")),
        ("driver", meta.get("driver")),
        ("CUDA", meta.get("cuda_runtime")) if gpu else ("threads", meta.get("threads")),
        *([] if gpu else [("load (1 min)", meta.get("loadavg_1min"))]),
        ("torch", meta.get("torch")),
        ("triton", meta.get("triton")),
        ("date (UTC)", meta.get("date_utc")),
        ("commit", (meta.get("git_commit") or "-")[:12] + (" (dirty)" if meta.get("git_dirty") else "")),
    ]
    if results.get("sweep", {}).get("quick"):
        facts.append(("sweep", "--quick subset"))
    lines += [f"| {' | '.join(k for k, _ in facts)} |", f"|{'---|' * len(facts)}",
              f"| {' | '.join(str(v) if v is not None else '-' for _, v in facts)} |", ""]

    refs = results.get("references", {})
    if "read_bandwidth" in refs:
        bw, empty = refs["read_bandwidth"], refs["empty_kernel"]
        lines.append(f"Read bandwidth {bw['bytes_per_s'] / 1e9:.0f} GB/s ({bw['what']}); empty kernel "
                     f"{empty['graph_us']:.2f} us under graph replay, {empty['eager_us']:.2f} us eager "
                     f"({empty['what']}).")
        lines.append("")
    pinning = results.get("cpu_pinning")
    if pinning:
        costs = pinning["launch_us_by_cpu"]
        lines.append(f"Pinned to CPU {pinning['cpu']}, the fastest of {len(costs)} to launch a small kernel "
                     f"eagerly ({min(costs.values()):.2f} us; the slowest {max(costs.values()):.2f} us).")
        lines.append("")
    if results.get("passes", 1) > 1:
        lines.append(f"Each time is the lower of {results['passes']} passes' medians (the sweep ran "
                     f"{results['passes']} times over).")
        lines.append("")

    speedups = [c["speedup"] for c in cells if c.get("speedup")]
    gm = geomean(speedups)
    timed = sum(1 for c in cells if cell_time_us(c) is not None)
    lines.append(f"- Cells: {len(cells)} ({timed} timed).")
    lines.append(f"- Geometric-mean speed-up of safe_greedy over torch.argmax: {_fmt(gm, '.2f', 'x')}"
                 f" ({'CUDA-graph replay, L2-cold' if gpu else 'wall clock, cache-cold'}).")
    lines.append(f"- Cells with speed-up >= 1.0: {sum(1 for c in cells if c.get('meets_ratio'))} of {len(speedups)}.")
    if gpu:
        target = results.get("target", {"slack": TARGET_SLACK, "fixed_us": TARGET_FIXED_US})
        met = sum(1 for c in cells if c.get("meets_target"))
        lines.append(f"- Cells with time <= {target['slack']:.2f} x bytes / bandwidth + {target['fixed_us']} us: "
                     f"{met} of {timed}.")
        eager = [c["speedup_eager"] for c in cells if c.get("speedup_eager")]
        lines.append(f"- Geometric-mean speed-up, eager calls: {_fmt(geomean(eager), '.2f', 'x')}.")
    for name, status in results.get("contenders", {}).items():
        if name in ("safe_greedy", "torch_argmax", "sum_fp32") or name in OUTPUT_CONTENDERS:
            continue
        ratios = [cell_time_us(c, name) / cell_time_us(c) for c in cells if cell_time_us(c, name) and cell_time_us(c)]
        if ratios:
            lines.append(f"- Against {name}: geometric-mean speed-up {geomean(ratios):.2f}x over "
                         f"{len(ratios)} cells" + (f" ({status})" if status != "ok" else "") + ".")
        else:
            lines.append(f"- {name}: {status}.")
    lines.append("")

    floor_note = ("floor = bytes / read bandwidth + empty kernel" if gpu
                  else "floor = the bytes read at the byte rate of torch.sum over as many fp32 elements")
    lines.append(f"Each cell: safe_greedy time / speed-up over torch.argmax / % of floor ({floor_note}).")
    lines.append("")
    lines += _tables(cells, _cell_text, "##")
    lines += _outputs_section(results, gpu)
    lines += _correctness(results)
    lines += _misses(results)
    if results.get("aborted"):
        lines += [f"**Run aborted:** {results['aborted']}", ""]
    method = (results.get("method") or "").strip().lstrip("-").strip()
    if method:
        lines += ["## Method", "", "```", method, "```", ""]
    return "\n".join(lines)


def _correctness(results: Dict) -> List[str]:
    lines = ["## Correctness against torch.argmax", ""]
    bad: Dict[str, List[str]] = {}
    bad_values: Dict[str, List[str]] = {}
    values_checked = False
    errors: Dict[str, int] = {}
    for c in results["cells"]:
        where = f"{c['dtype']} {c['batch']}x{c['vocab']}"
        for name, m in c.get("mismatches", {}).items():
            # Keys named outputs_* count rows whose extra outputs are not torch's.
            if any(v for check, v in m.items() if v and not check.startswith("outputs_")):
                bad.setdefault(name, []).append(where)
            values = [v for check, v in m.items() if check.startswith("outputs_")]
            values_checked = values_checked or bool(values)
            if any(values):
                bad_values.setdefault(name, []).append(where)
        for name in c.get("errors", {}):
            errors[name] = errors.get(name, 0) + 1
    if not bad:
        lines.append("- Benchmark inputs: every timed contender matched torch.argmax on every cell.")
    if values_checked and not bad_values:
        lines.append("- Benchmark inputs: every extra output (logprobs, logsumexp, valid) matched torch's "
                     "on every cell.")

    def cells(where: List[str]) -> str:
        return ", ".join(where[:12]) + (f" and {len(where) - 12} more" if len(where) > 12 else "")

    for name, where in bad.items():
        lines.append(f"- Benchmark inputs: {name} differs from torch.argmax in {len(where)} cells: {cells(where)}.")
    for name, where in bad_values.items():
        lines.append(f"- Benchmark inputs: {name}'s extra outputs differ from torch's in {len(where)} cells: "
                     f"{cells(where)}.")
    for name, count in errors.items():
        lines.append(f"- {name} raised in {count} cells (see `errors` in the JSON).")
    summary = results.get("summary", {})
    for name, (answers, cells) in summary.get("out_of_range_answers", {}).items():
        lines.append(f"- Benchmark inputs: {name} answered outside [0, vocab) {answers} times, "
                     f"in {cells} cells.")
    for name, rows in summary.get("hard_rows_out_of_range", {}).items():
        lines.append(f"- Hard rows: {name} answered outside [0, vocab) on {rows} rows.")
    hard_bad = []
    for key, per in results.get("hard_rows", {}).items():
        for name, wrong in per.items():
            if isinstance(wrong, str):
                hard_bad.append(f"{name} on {key}: {wrong}")
            elif wrong:
                cases = ", ".join(f"{case} ({v['got']} vs {v['torch']})" for case, v in wrong.items())
                hard_bad.append(f"{name} on {key}: {cases}")
    if hard_bad:
        lines.append("- Hard rows (answer vs torch.argmax):")
        lines += [f"  - {line}" for line in hard_bad]
    else:
        lines.append("- Hard rows (all -inf, all NaN, all -1e5, all -1e30, max < 0, NaN or max in the tail, "
                     "signed zeros): every contender matched torch.argmax.")
    lines.append("")
    return lines


def _misses(results: Dict) -> List[str]:
    if results["meta"].get("device_type") != "cuda":
        return []
    misses = [c for c in results["cells"] if c.get("meets_target") is False]
    if not misses:
        return []
    misses.sort(key=lambda c: cell_time_us(c) / c["target_us"], reverse=True)
    lines = ["## Cells missing the target (worst first)", ""]
    for c in misses[:20]:
        lines.append(f"- {c['dtype']} {c['batch']}x{c['vocab']}: {cell_time_us(c):.1f} us, target "
                     f"{c['target_us']:.1f} us ({cell_time_us(c) / c['target_us']:.2f}x)")
    if len(misses) > 20:
        lines.append(f"- and {len(misses) - 20} more")
    lines.append("")
    return lines


def plot(results: Dict, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except Exception as exc:
        print(f"report: no plot ({type(exc).__name__}: {exc}); pip install matplotlib for {path}",
              file=sys.stderr)
        return False
    cells = results["cells"]
    dtypes = _dtypes(cells)
    if not dtypes:
        return False
    # Rows: what each panel row shows, as (y label, value of a cell, reference
    # line, log scale).
    rows = [("speed-up over torch.argmax", lambda c: c.get("speedup"), 1.0, True),
            ("% of floor", lambda c: c.get("pct_floor"), 100.0, False)]
    if _has_outputs(cells):
        rows += [("with every output:\nspeed-up over torch_composed",
                  lambda c: (c.get("outputs") or {}).get("speedup_vs_composed"), 1.0, True),
                 ("with every output: % of floor", lambda c: (c.get("outputs") or {}).get("pct_floor"), 100.0, False)]
    fig, axes = plt.subplots(len(rows), len(dtypes), figsize=(4.8 * len(dtypes), 3.75 * len(rows)),
                             squeeze=False, sharex=True)
    for col, dtype in enumerate(dtypes):
        subset = [c for c in cells if c["dtype"] == dtype]
        for vocab in sorted({c["vocab"] for c in subset}):
            line = sorted((c for c in subset if c["vocab"] == vocab), key=lambda c: c["batch"])
            batches = [c["batch"] for c in line]
            for row, (_, value, _, _) in enumerate(rows):
                axes[row][col].plot(batches, [value(c) or float("nan") for c in line], marker="o", ms=3,
                                    label=str(vocab))
        axes[0][col].set_title(dtype)
        for row, (_, _, reference, log) in enumerate(rows):
            axes[row][col].axhline(reference, color="grey", lw=0.8, ls="--")
            if log:
                axes[row][col].set_yscale("log")
                axes[row][col].yaxis.set_major_locator(
                    matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
                axes[row][col].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
                axes[row][col].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ticks = sorted({c["batch"] for c in subset})
        for row in range(len(rows)):
            axes[row][col].set_xscale("log", base=2)
            axes[row][col].set_xticks(ticks)
            axes[row][col].set_xticklabels([str(t) for t in ticks], rotation=90, fontsize=7)
            axes[row][col].xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            axes[row][col].grid(True, alpha=0.3)
        axes[-1][col].set_xlabel("batch")
    for row, (label, _, _, _) in enumerate(rows):
        axes[row][0].set_ylabel(label)
    axes[0][-1].legend(title="vocab", fontsize=7)
    meta = results["meta"]
    fig.suptitle(f"safe_greedy on {meta.get('device_name')}, torch {meta.get('torch')}, {meta.get('date_utc')}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="a JSON file written by bench.py")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    with open(args.results) as f:
        results = json.load(f)
    stem = os.path.splitext(args.results)[0]
    with open(stem + ".md", "w") as f:
        f.write(markdown(results))
    print(f"wrote {stem}.md")
    if not args.no_plot and plot(results, stem + ".png"):
        print(f"wrote {stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
