"""The board interface (`spikeloop.sim.interface`): the golden board and the simulated board answer the
same register accesses, transfers, faults and resets alike, word for word; the faces (the simulated
Zynq, the PYNQ remote-device server, the UART emulator and their command lines) serve a golden board
as they serve the simulated one (tests/host/test_serial_transport.py has the UART emulator's faults on
both); the transport over a board refuses anything else.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import (
    PROFILE,
    SEED,
    main_config,
    main_network,
    serving_line,
    spike_train,
    wide_config,
    wide_network,
)

from spikeloop import golden, regmap
from spikeloop.sim.golden_board import GoldenBoard
from spikeloop.sim.interface import Board, Fault, Rx, Until
from spikeloop.stream import output_words_per_timestep, pack_spikes, unpack_output, words_per_timestep
from spikeloop.windows import load_writes, neuron_word_index

#: Clock cycles a simulated board gets to finish what it was given (the golden board needs none).
SETTLE = 20_000
DESIGNS = {"main": (main_config, main_network), "wide": (wide_config, wide_network)}


def modelled_offsets(config) -> np.ndarray:
    """Every register and window word both boards model: all but BUSY_CYCLES (the golden board has no time)
    and the state readout of lanes that hold no neuron (the core's padding lanes run phantom neurons)."""
    offsets = set(config.readback()) | {regmap.register(n).offset for n in ("STATUS", "CONTROL")}
    for name in ("TIMESTEPS", "SPIKES_IN", "SPIKES_OUT"):
        offsets |= {regmap.register(f"{name}_LO").offset, regmap.register(f"{name}_HI").offset}
    offsets |= {regmap.layer_offset(k, n) for k in range(len(config.layers)) for n in ("MODE", "LAM", "ALPHA")}
    for w in regmap.windows(config):
        if w.kind in ("v", "u"):
            words = neuron_word_index(config.layers[w.layer])
        else:
            words = np.arange(w.words)
        offsets |= {w.base + regmap.WORD_BYTES * int(i) for i in words}
    return np.array(sorted(offsets))


def scenario(board: Board, network, seed: int) -> list[tuple[str, object]]:
    """Writes, transfers (whole, truncated, overflowing, split, under faults), reads and a reset on `board`;
    returns what was observed, in order."""
    config = board.config
    rng = np.random.default_rng(seed)
    per_in = words_per_timestep(config.n_in, config.bus_width)
    per_out = output_words_per_timestep(config)
    offsets = modelled_offsets(config)
    status = regmap.register("STATUS").offset
    theta = regmap.window(config, 0, "theta")
    seen: list[tuple[str, object]] = []

    def look(label: str) -> None:
        board.run(SETTLE)
        seen.append((f"{label}: registers", board.read_many(offsets).tolist()))

    def transfer(label: str, steps: int, *, room: int | None = None, cut: int = 0) -> None:
        words = pack_spikes(rng.random((steps, config.n_in)) < 0.3, config.bus_width)
        state = board.transfer(words[: words.size - cut], steps * per_out if room is None else room, SETTLE)
        while state & Rx.ARMED:
            board.run(SETTLE, Until.RECEIVED)
            state = board.rx_state
        seen.append((f"{label}: rx_state", state))
        seen.append((f"{label}: words", board.take().tolist()))

    board.write_many(*zip(*load_writes(config, network)))
    board.write(theta.base, 0)  # refused: err_param
    board.write(regmap.register("WORDS_IN").offset, 3)  # read-only: err_address
    look("load")
    board.write(status, 0xF00)
    transfer("whole", int(rng.integers(10, 20)))
    look("whole")
    transfer("truncated", 3, cut=1 if per_in > 1 else 0)  # TLAST before the last word: zero-padded
    look("truncated")
    transfer("overflow", 4, room=2 * per_out - 1)
    seen.append(("overflow: drained", board.drain(4000, 10**6)))
    look("overflow")
    board.write(status, 0xF00)
    words = pack_spikes(rng.random((1, config.n_in)) < 0.5, config.bus_width)
    board.send(words[:1], last=per_in == 1)
    look("partial")  # busy while the timestep's other words are due
    board.write(theta.base, board.read(theta.base))  # err_busy_write
    board.write(regmap.register("CONTROL").offset, regmap.register("CONTROL").encode(clear_state=1))
    look("clear requested")  # clearing until the timestep ends
    board.arm(per_out)
    board.send(words[1:], last=True)
    board.run(SETTLE, Until.RECEIVED)
    seen.append(("partial: words", board.take().tolist()))
    look("cleared")
    board.fault(Fault.TRUNCATE, 3)
    transfer("truncate fault", 2)
    board.run(SETTLE)
    board.fault(Fault.NONE)
    seen.append(("truncate fault: drained", board.drain(4000, 10**6)))
    board.fault(Fault.MUTE)
    state = board.transfer(pack_spikes(rng.random((2, config.n_in)) < 0.3, config.bus_width), 2 * per_out,
                           SETTLE)
    seen.append(("mute: rx_state, received", (state, board.received)))
    board.fault(Fault.NONE)
    board.run(SETTLE, Until.RECEIVED)
    seen.append(("mute ended: rx_state", board.rx_state))
    seen.append(("mute ended: words", board.take().tolist()))
    look("faults")
    board.reset()
    look("reset")
    return seen


@pytest.mark.parametrize("design", sorted(DESIGNS))
@pytest.mark.parametrize("seed", [SEED, SEED + 1])
def test_the_golden_board_answers_as_the_simulated_board(design, seed):
    from spikeloop.sim.board import SimBoard, board_available

    if board_available():
        pytest.skip(board_available())
    make_config, make_network = DESIGNS[design]
    config, network = make_config(), make_network()
    sim, gold = SimBoard(config, profile=PROFILE), GoldenBoard(config)
    try:
        expected, got = scenario(sim, network, seed), scenario(gold, network, seed)
    finally:
        sim.close()
    assert [label for label, _ in got] == [label for label, _ in expected]
    for (label, want), (_, have) in zip(expected, got):
        assert have == want, f"{design}, seed {seed}: {label}"
    observed = dict(expected)
    words = np.array(observed["whole: words"], np.uint32 if config.bus_width == 32 else np.uint64)
    assert unpack_output(words, config)[0].any(), f"seed {seed}: no spike fired, the comparison is vacuous"
    assert observed["truncated: rx_state"] == Rx.LAST and observed["overflow: rx_state"] == Rx.OVERFLOW
    assert observed["overflow: drained"] > 0 and observed["mute: rx_state, received"] == (Rx.ARMED, 0)
    assert len(observed["truncate fault: words"]) == 3
    fields = regmap.register("STATUS").decode(observed["clear requested: registers"][
        int(np.searchsorted(modelled_offsets(config), regmap.register("STATUS").offset))])
    assert fields["busy"] and fields["clearing"] and fields["err_busy_write"], fields


def test_the_simulated_zynq_serves_a_golden_board(tmp_path):
    """pynq's own Overlay, MMIO and DMA driver over `SimDevice` on a golden board."""
    from spikeloop.host import Core
    from spikeloop.host.pynq_transport import PynqTransport, sim_overlay

    config, network = main_config(), main_network()
    spikes = spike_train((16, 40), SEED + 31)
    ref = golden.run(network, spikes)
    assert ref.spikes.any(), "vacuous: no spike fired"
    with Core(PynqTransport(overlay=sim_overlay(GoldenBoard(config), directory=tmp_path)), network=network) as core:
        out = core.run(spikes)
        assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
        core.clear_state()
        for t in range(4):
            z, v = core.step(spikes[t])
            assert np.array_equal(z, ref.spikes[t]) and np.array_equal(v, ref.membranes[t]), t
        assert core.counters()["timesteps"] == 20


#: A client of the remote-device server in its own process: pynq keeps the first device it programs a
#: clock on for the rest of the process (`pynq.ps.Clocks`), so a test process keeps away from servers that stop.
_REMOTE_CLIENT = """
import sys
import numpy as np
from pynq.pl_server.remote_device import RemoteDevice
from spikeloop import golden
from spikeloop.host import open_core
from spikeloop.network import Network
port, bit, net, seed = int(sys.argv[1]), sys.argv[2], Network.load(sys.argv[3]), int(sys.argv[4])
core = open_core("pynq", device=RemoteDevice(ip_addr="127.0.0.1", port=port), bitfile=bit, network=net)
spikes = np.random.default_rng(seed).random((12, 40)) < 0.3
ref = golden.run(net, spikes)
assert ref.spikes.any() and np.array_equal(core.run(spikes).membranes, ref.membranes)
print("equal")
"""


def test_the_command_lines_serve_a_golden_board(tmp_path):
    """`python -m spikeloop.sim.pynq_remote --golden` to pynq's RemoteDevice over gRPC, and
    `python -m spikeloop.sim.uart_board --golden` to the serial transport on a pseudo-terminal."""
    pytest.importorskip("grpc")
    pytest.importorskip("serial")
    from spikeloop.host import open_core

    network = main_network()
    network.save(tmp_path / "net.npz")
    design = ["--network", str(tmp_path / "net.npz"), "--lanes", "3,2", "--chunk", "16,12", "--membranes", "--options",
              "--golden"]  # main_config() carries the options
    for face, options in (("pynq_remote", ["--port", "0", "--overlay-dir", str(tmp_path / "overlay")]),
                          ("uart_board", [])):
        proc = subprocess.Popen([sys.executable, "-m", f"spikeloop.sim.{face}", *design, *options],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = serving_line(proc, time.monotonic() + 60)
            if face == "pynq_remote":
                port = line.split(" at ")[1].split(";")[0].rsplit(":", 1)[1]
                client = [sys.executable, "-c", _REMOTE_CLIENT, port, str(tmp_path / "overlay" / "spikeloop.bit"),
                          str(tmp_path / "net.npz"), str(SEED + 33)]
                done = subprocess.run(client, capture_output=True, text=True, timeout=120)
                assert done.returncode == 0 and done.stdout.split() == ["equal"], done.stderr[-3000:]
            else:
                spikes = spike_train((10, 40), SEED + 34)
                port = line.split(" on ")[1].split(":")[0]
                with open_core("serial", network, config=main_config(), port=port) as core:
                    assert np.array_equal(core.run(spikes).membranes, golden.run(network, spikes).membranes)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_a_board_transport_takes_boards_only():
    from spikeloop.host.sim_transport import BoardTransport, GoldenTransport
    from spikeloop.sim.zynq import SimPL

    with pytest.raises(TypeError, match=r"board must be a Board \(a SimBoard or a GoldenBoard\), got CoreConfig"):
        BoardTransport(board=main_config())
    with pytest.raises(TypeError, match=r"board must be a Board \(a SimBoard or a GoldenBoard\), not str"):
        SimPL("board")
    with pytest.raises(TypeError, match="config must be a CoreConfig, got tuple"):
        GoldenBoard((40, 12, 6))
    with pytest.raises(ValueError, match=r"unknown fault 3; expected one of 0 \(NONE\), 1 \(TRUNCATE\), 2 \(MUTE\)"):
        GoldenBoard(main_config()).fault(3)
    transport = GoldenTransport(config=main_config())
    assert transport.describe() == "golden transport (40-12-6)" and transport.cycles_per_second == float("inf")


def test_a_served_core_takes_the_options_of_its_network_or_of_every_layer():
    import argparse

    from spikeloop.sim.board import add_served_core_arguments, served_core

    parser = argparse.ArgumentParser()
    add_served_core_arguments(parser)
    _, auto = served_core(parser.parse_args(["--sizes", "20,8,4", "--lanes", "2", "--chunk", "10"]))
    _, forced = served_core(parser.parse_args(["--sizes", "20,8,4", "--lanes", "2", "--chunk", "10", "--options"]))
    assert [layer.options for layer in auto.layers] == [False, False]  # a random network is v1
    assert [layer.options for layer in forced.layers] == [True, True]
