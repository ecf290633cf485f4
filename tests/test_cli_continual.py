"""`spikeloop continual`: refusals in one line naming the option (exit status 2) before any work, and a tiny run on the
golden board that prints the accuracy matrix and forgetting and writes the table, the rows and the plots."""

from __future__ import annotations

import json

import pytest

from spikeloop.app.cli import main

C = ["continual", "--out", "{tmp}/c"]

#: (command line, what the one-line error says)
BAD = [
    ([*C, "--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    ([*C, "--rule", "adam"], "argument --rule: invalid choice: 'adam'"),
    ([*C, "--rule", "ste", "ste"], "argument --rule: ste ste names a value twice"),
    ([*C, "--coreset", "-1"], "argument --coreset: expected an integer >= 0, got -1"),
    ([*C, "--coreset", "2", "2"], "argument --coreset: 2 2 names a value twice"),
    ([*C, "--seeds", "-1"], "argument --seeds: expected an integer >= 0, got -1"),
    ([*C, "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    ([*C, "--hidden", "0"], "argument --hidden: expected an integer in [1, 4096], got 0"),
    ([*C, "--samples", "0"], "argument --samples: expected an integer >= 1, got 0"),
    ([*C, "--rule", "ste", "--samples", "5"], "argument --samples: only the Bayesian ensemble takes it"),
    ([*C, "--rule", "ste", "--kl-weight", "1"], "argument --kl-weight: only the Bayesian rule has a KL term"),
    ([*C, "--kl-weight", "-1"], "argument --kl-weight: expected a number >= 0"),
    ([*C, "--tasks", "6"], "argument --tasks: expected an integer in [2, 5], got 6"),
    ([*C, "--max-test", "0"], "argument --max-test: expected an integer >= 1, got 0"),
    ([*C, "--backend", "fpga"], "argument --backend: invalid choice: 'fpga'"),
    ([*C, "--backend", "pynq", "--jobs", "2"], "argument --jobs: 2 processes, but a PYNQ board is one core"),
    ([*C, "--jobs", "0"], "argument --jobs: expected an integer >= 1, got 0"),
    (["continual", "--out", "{tmp}/afile"], "argument --out: "),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[3:]) or a[-1] for a, _ in BAD])
def test_each_bad_option_is_refused_in_one_line_naming_it(tmp_path, capsys, argv, message):
    (tmp_path / "afile").write_text("")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("spikeloop continual"), err
    assert not (tmp_path / "c").exists(), "refused after work began"


def test_a_pynq_off_a_board_is_one_line(tmp_path, capsys):
    assert main(["continual", "--backend", "pynq", "--rule", "ste", "--tasks", "2", "--seeds", "0",
                 "--hidden", "4", "--max-train", "8", "--max-test", "4", "--bitfile", str(tmp_path / "none.bit"),
                 "--out", str(tmp_path / "c")]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said[0].startswith("continual learning on split digits"), said  # the announcement, then the error
    assert said[-1].startswith("spikeloop continual: error: backend pynq"), said
    assert not any("Traceback" in line for line in said), said


@pytest.mark.parametrize("rule", ["ste", "bayes"])
def test_a_tiny_run_prints_the_matrix_and_forgetting_and_writes_the_files(tmp_path, capsys, rule):
    out = tmp_path / "c"
    assert main(["continual", "--backend", "golden", "--rule", rule, "--coreset", "0", "1", "--tasks", "2",
                 "--seeds", "0", "--epochs", "1", "--hidden", "8", "--max-train", "16", "--max-test", "8",
                 "--jobs", "1", "--out", str(out), *(["--samples", "2"] if rule == "bayes" else [])]) == 0
    captured = capsys.readouterr()
    assert "continual learning on split digits (2 tasks): 2 runs on the golden core" in captured.err
    text = captured.out
    assert f"| {rule} mode |" in text and f"| {rule} mode, coreset 1 |" in text
    assert "after task 0:" in text and "after task 1:" in text and "forgetting per task:" in text
    if rule == "bayes":
        assert f"| {rule} ensemble |" in text
    for name in ("table.md", "rows.json", "accuracy_matrix.png", "task_curves.png"):
        assert (out / name).is_file()
    rows = json.loads((out / "rows.json").read_text())
    assert [(r["rule"], r["coreset"]) for r in rows["runs"]] == [(rule, 0), (rule, 1)]
    assert all(r["core_calls"]["train_runs"] == r["samples_trained"] > 0 for r in rows["runs"])
