"""bench/bench_bayes.py in its quick mode: it runs, the core's ensemble equals the golden model's, the PYNQ-Z2
estimate and the on-core-sampling table are consistent, and it writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench_bayes():
    """The module bench/bench_bayes.py (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location("bench_bayes", ROOT / "bench" / "bench_bayes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_numbers(out: dict, bench) -> None:
    (result,) = out["results"].values()
    assert result["equal_to_golden_model"]
    assert result["networks"] == out["batches"] * out["samples"]  # an ensemble loads K networks per batch
    assert result["load_seconds"] > 0 and result["run_seconds"] > 0
    assert result["bus_per_load"]["stream_transfers"] == 1 and result["bus_per_sample"]["stream_transfers"] == 1
    (counts,) = out["pynq_z2_counts"].values()
    for what in ("load", "run"):
        assert counts[what]["register_accesses"] > 0 and counts[what]["stream_bytes"] > 0 and counts[what]["cycles"] > 0
    (rows,) = out["pynq_z2_per_batch"].values()
    assert [r["batch"] for r in rows] == list(bench.BATCH_SIZES)
    reload = {r["reload"] for r in rows}
    assert len(reload) == 1  # K loads per batch whatever its size; the compute grows with it
    assert all(a["compute"] < b["compute"] and a["reload_share"] > b["reload_share"] for a, b in zip(rows, rows[1:]))
    sampling = out["on_core_sampling"]
    assert sampling["synapses"] == 784 * 256 + 256 * 128 + 128 * 10
    word, row = sampling["options"]["word"], sampling["options"]["row"]
    assert word["bram36"] * 36 * 1024 >= sampling["prob_bits"] and word["cycles"] > row["cycles"]
    assert word["luts"] < row["luts"]


def test_the_quick_bench_on_the_golden_board(tmp_path, capsys):
    bench = bench_bayes()
    path = tmp_path / "bayes.json"
    assert bench.main(["--quick", "--backend", "golden", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    check_numbers(out, bench)
    (counts,) = out["pynq_z2_counts"].values()
    assert counts["run"]["cycles_source"].startswith("max_timestep_cycles")
    text = capsys.readouterr().out
    assert "PYNQ-Z2, per batch with K = 10" in text and "Sampling on the core" in text


@pytest.mark.experiment  # a Verilator build of its own: CI runs it in `make experiments`
@pytest.mark.tools
def test_the_quick_bench_on_the_simulated_board(tmp_path):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    bench = bench_bayes()
    path = tmp_path / "bayes.json"
    assert bench.main(["--quick", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    check_numbers(out, bench)
    (counts,) = out["pynq_z2_counts"].values()
    assert counts["run"]["cycles_source"] == "BUSY_CYCLES on the simulated board"


def test_the_bench_refuses_a_batch_count_below_one(capsys):
    with pytest.raises(SystemExit) as info:
        bench_bayes().main(["--quick", "--batches", "0", "--json", "unused.json"])
    assert info.value.code == 2
    assert "--batches 0" in capsys.readouterr().err
