"""bench/bench_inloop.py in its quick mode: it runs, trains the same parameters on every backend, writes its JSON."""

from __future__ import annotations

import json

import pytest
from benches import load_bench

pytest.importorskip("torch")


@pytest.mark.experiment  # a Verilator build of its own: CI runs it in `make experiments`
@pytest.mark.tools
def test_the_quick_bench_runs_and_writes_its_numbers(tmp_path, capsys):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    path = tmp_path / "inloop.json"
    assert load_bench("bench_inloop").main(["--quick", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    training = out["training"]
    assert set(training["results"]) == {"software", "golden", "sim"}
    assert all(training["parameters_equal_to_software"].values())
    assert all(r["samples"] == training["steps"] * training["batch"] for r in training["results"].values())
    assert training["slower_than_software"]["software"] == 1.0
    for backend, fractions in training["fractions"].items():
        assert sum(fractions.values()) == pytest.approx(1.0), backend
    assert all(r["steps"] > 0 and r["median_us"]["core"] > 0 for r in out["closed_loop"]["results"].values())
    estimate = out["pynq_z2_estimate"]
    step = estimate["closed_loop_step"]
    assert step["stream_transfers"] == 1 and step["register_accesses"] > 0 and step["cycles"] > 0
    runs, load = estimate["training_step"]["run"], estimate["training_step"]["load"]
    assert runs["calls"] == training["batch"] and runs["stream_transfers"] >= runs["calls"]
    assert load["calls"] == 1 and load["stream_transfers"] == 1 and load["cycles"] > 0
    assert "PYNQ-Z2 estimate" in capsys.readouterr().out


def test_the_bench_refuses_a_step_count_below_one(capsys):
    with pytest.raises(SystemExit) as info:
        load_bench("bench_inloop").main(["--quick", "--steps", "0", "--json", "unused.json"])
    assert info.value.code == 2
    assert "--steps 0" in capsys.readouterr().err
