"""Fixtures of the host tests: small networks, and one core per transport with the same API.

The simulated board is built once per design (cached across sessions under the spikeloop cache
directory, `SPIKELOOP_CACHE_DIR` to move it) with the "quick" profile: small designs, fast
builds. Two designs: MAIN (two layers, 40 inputs = two 32-bit words per timestep, membranes)
and WIDE (one layer on a 64-bit bus). Each test gets a fresh `SimBoard` of the cached library.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from spikeloop.config import CoreConfig
from spikeloop.network import Network, random_network

PROFILE = "quick"
SEED = 20240611


def main_network(seed: int = SEED, *, v_bits: int = 12) -> Network:
    """40 -> 12 (cuba, zero reset) -> 6 (lif, subtract), decays powers of two."""
    base = random_network((40, 12, 6), seed=seed, neuron="cuba", v_bits=v_bits, u_bits=v_bits, frac_bits=6)
    first, second = base.layers
    return Network((first.replace(reset="zero", lam=8, alpha=16),
                    second.replace(neuron="lif", alpha=0, lam=4, theta=np.maximum(1, second.theta // 2))))


def main_config(network: Network | None = None) -> CoreConfig:
    """MAIN's build, with contract v2's options (so that the v2 networks of the tests load on it too)."""
    return CoreConfig.for_network(network or main_network(), lanes=[3, 2], chunk=[16, 12], membranes=True,
                                  options=True)


def wide_network(seed: int = SEED + 1) -> Network:
    """70 -> 9 (lif, no reset), 64-bit bus, decay by multiplication."""
    base = random_network((70, 9), seed=seed, frac_bits=5, v_bits=10, u_bits=10, lam=5)
    return Network((base.layers[0].replace(reset="none"),))


def wide_config(network: Network | None = None) -> CoreConfig:
    return CoreConfig.for_network(network or wide_network(), lanes=4, chunk=35, decay="multiply", membranes=True,
                                  bus_width=64)


def spike_train(shape, seed: int, density: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def serving_line(proc, deadline: float) -> str:
    """A serving command's "serving ..." line (build messages may come first), or fail at the deadline."""
    found = []

    def read():
        for line in proc.stdout:
            if line.startswith("serving"):
                found.append(line)
                return

    threading.Thread(target=read, daemon=True).start()
    while not found and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not found:
        proc.kill()
        raise AssertionError(f"the server did not start before the deadline: {proc.stderr.read()[-2000:]}")
    return found[0]


def bench_faces():
    """The module bench/bench_faces.py (the faces' client benchmarks)."""
    from benches import load_bench

    return load_bench("bench_faces")


def _board_or_skip(config: CoreConfig):
    from spikeloop.sim.board import SimBoard, board_available

    reason = board_available()
    if reason:
        pytest.skip(reason)
    return SimBoard(config, profile=PROFILE)


@pytest.fixture(scope="session")
def main_board_built():
    """Build (or find) the MAIN design's board once per session; returns its configuration."""
    board = _board_or_skip(main_config())
    board.close()
    return main_config()


@pytest.fixture(params=["golden", "sim", "pynq"])
def backend(request):
    return request.param


def make_core(backend: str, config: CoreConfig, network: Network | None = None, **options):
    """A `Core` on `backend` for `config` (the sim and pynq ones on a fresh simulated board)."""
    from spikeloop.host import Core
    from spikeloop.host.sim_transport import GoldenTransport

    if backend == "golden":
        transport = GoldenTransport(config=config)
    else:
        board = _board_or_skip(config)
        if backend == "sim":
            from spikeloop.host.sim_transport import SimTransport

            transport = SimTransport(board=board)
        else:
            from spikeloop.host.pynq_transport import PynqTransport, sim_overlay

            transport = PynqTransport(overlay=sim_overlay(board))
    return Core(transport, network=network, **options)


@pytest.fixture
def core(backend, request):
    """The MAIN network loaded on a core of `backend`."""
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    c = make_core(backend, main_config(), main_network())
    yield c
    c.close()
