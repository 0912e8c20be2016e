"""benchmarks/host_overhead.py on the CPU: every form timed, and two trees side
by side, each in a process of its own that imports its own safe_greedy."""

import json
import os
import sys

import safe_greedy

FORMS = {
    "torch.ops greedy_sample",
    "safe_greedy.greedy_sample",
    "torch.ops greedy_sample_outputs (all)",
    "safe_greedy.greedy_sample (all outputs)",
    "torch.argmax (reference)",
}


def test_every_form_is_timed(host_overhead):
    times = host_overhead.measure("cpu", vocab=64, calls=20, reps=2)
    assert set(times) == FORMS and all(0 < us < 1e6 for us in times.values())


def test_trees_side_by_side(host_overhead, tmp_path, monkeypatch, capsys):
    tree = os.path.dirname(os.path.dirname(safe_greedy.__file__))
    result = tmp_path / "overhead.json"
    monkeypatch.setattr(sys, "argv", ["host_overhead.py", "--device", "cpu", "--trees", tree, tree,
                                      "--names", "a", "b", "--rounds", "1", "--calls", "20", "--reps", "1",
                                      "--json", str(result)])  # fmt: skip
    host_overhead.main()
    table = capsys.readouterr().out
    assert "| form | a | b |" in table and all(f"| {form} |" in table for form in FORMS)
    recorded = json.loads(result.read_text())
    assert set(recorded["best_us"]) == {"a", "b"} and set(recorded["best_us"]["a"]) == FORMS
