"""The `serial` transport against the board emulator on a pseudo-terminal.

The same driver code as on the other transports: identity, load with read-back, run() and step()
word for word against the golden model, counters; then faults, each with a clear error, nothing
hanging, and the core usable after reset(). The emulator (spikeloop.sim.uart_board) executes the
frames on the simulated board of the MAIN design (built once per session by conftest) or on the
golden model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import PROFILE, SEED, bench_faces, main_config, main_network, spike_train, wide_config, wide_network

from spikeloop import golden, regmap, uartlink
from spikeloop.host import Core, TransferError, TransferTimeout, TransportError, open_core
from spikeloop.sim.golden_board import GoldenBoard
from spikeloop.uartlink import FrameError

serial = pytest.importorskip("serial")

from spikeloop.host.serial_transport import SerialTransport  # noqa: E402
from spikeloop.sim.uart_board import UARTBoard  # noqa: E402
from spikeloop.stream import pack_spikes  # noqa: E402


@pytest.fixture
def served(main_board_built):
    """The MAIN design's simulated board behind the emulated UART bridge, on a fresh pty."""
    from spikeloop.sim.board import SimBoard

    board = UARTBoard(SimBoard(main_board_built, profile=PROFILE))
    yield board
    board.stop()


@pytest.fixture
def served_golden():
    board = UARTBoard(GoldenBoard(main_config()))
    yield board
    board.stop()


@pytest.fixture(params=["sim", "golden"])
def served_either(request):
    """`served` or `served_golden`: what is checked with it holds whichever board the emulator serves."""
    return request.getfixturevalue("served" if request.param == "sim" else "served_golden")


def serial_core(board: UARTBoard, **options) -> Core:
    """The MAIN network loaded through the serial transport, as a user would open it."""
    timeout = options.pop("timeout", None)
    return open_core("serial", main_network(), config=main_config(), port=board.port, timeout=timeout, **options)


def check_against_golden(core: Core, seed: int) -> None:
    """run() of a batch and step() one and k timesteps at a time, word for word with the golden model."""
    network = main_network()
    batch = spike_train((2, 25, 40), seed)
    out = core.run(batch)
    ref = golden.run(network, batch)
    assert ref.spikes.sum() > 10, f"seed {seed}: the network hardly spikes; the comparison would be vacuous"
    assert np.array_equal(out.spikes, ref.spikes), f"seed {seed}: run() spikes differ"
    assert np.array_equal(out.membranes, ref.membranes), f"seed {seed}: run() membranes differ"

    steps = spike_train((9, 40), seed + 1)
    ref = golden.run(network, steps)
    assert ref.spikes.any(), f"seed {seed + 1}: no spikes in the closed-loop part"
    core.clear_state()
    core.clear_counters()
    z, v = [], []
    for t in range(3):  # one timestep per call
        got = core.step(steps[t])
        z.append(got.spikes[None])
        v.append(got.membranes[None])
    got = core.step(steps[3:])  # the rest in one call
    z.append(got.spikes)
    v.append(got.membranes)
    assert np.array_equal(np.concatenate(z), ref.spikes), f"seed {seed + 1}: step() spikes differ"
    assert np.array_equal(np.concatenate(v), ref.membranes), f"seed {seed + 1}: step() membranes differ"
    for k, (mine, theirs) in enumerate(zip(core.states(), ref.states)):
        assert np.array_equal(mine.v, theirs.v) and np.array_equal(mine.u, theirs.u), f"seed {seed}: layer {k} state"


def works(core: Core, seed: int = SEED + 50) -> None:
    spikes = spike_train((12, 40), seed)
    out = core.run(spikes)
    ref = golden.run(main_network(), spikes)
    assert ref.spikes.any(), f"seed {seed}: vacuous"
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes), f"seed {seed}"


def wait_for_outputs(board: UARTBoard, count: int, seconds: float = 10) -> None:
    """Wait until the emulator has sent `count` OUTPUT frames."""
    deadline = time.monotonic() + seconds
    while board.stats["outputs"] < count:
        assert time.monotonic() < deadline, f"the emulator sent {board.stats['outputs']} of {count} output words"
        time.sleep(0.01)


# ---------------------------------------------------------------------- the protocol module
def test_uartlink_needs_neither_amaranth_nor_the_gateware():
    code = ("import sys; sys.modules['amaranth'] = None; import spikeloop.uartlink, spikeloop.host.serial_transport;"
            " assert 'spikeloop.boards' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gateware_and_host_share_one_table():
    bridge = pytest.importorskip("spikeloop.boards.uart_bridge")
    ulx3s = pytest.importorskip("spikeloop.boards.ulx3s")
    assert bridge.FRAMES is uartlink.FRAMES
    assert uartlink.DEFAULT_BAUD == ulx3s.BAUD


def test_frames_encode_and_decode():
    words = np.array([0x12345678, 0, 0xFFFFFFFF], np.uint32)
    joined = b"".join(uartlink.frame_stream(int(w), i == 2) for i, w in enumerate(words))
    assert uartlink.frame_stream_words(words, last=True) == joined
    wide = uartlink.frame_stream_words(words.astype(np.uint64), last=False, bus_width=64)
    assert len(wide) == 30 and wide[:4] == bytes([3, 0, 0x78, 0x56])
    host = b"\x00\x7f" + uartlink.frame_write(0x10, 7) + uartlink.frame_read(0x20) + joined + joined[:3]
    commands, used = uartlink.parse_commands(host)
    assert used == len(host) - 3, "a trailing partial frame is left for later"
    assert commands == [("WRITE", (0x10, 7)), ("READ", (0x20,)), ("STREAM", (0x12345678, False)),
                        ("STREAM", (0, False)), ("STREAM", (0xFFFFFFFF, True))]
    board = uartlink.frame_ack() + uartlink.frame_read_data(-1) + uartlink.frame_output(2**63 + 5, True, 64)
    assert uartlink.parse_replies(board, 64) == [("ack", None), ("read", 0xFFFFFFFF), ("output", (2**63 + 5, True))]
    assert uartlink.decode_reply(board[:3], 1) is None, "an incomplete frame decodes to None"
    with pytest.raises(FrameError, match=r"OUTPUT frame at 0 has flags 0x03; only bit 0 \(TLAST\) is defined"):
        uartlink.decode_reply(bytes([0x84, 3, 0, 0, 0, 0]))
    with pytest.raises(FrameError, match="unexpected byte 0x01 at 1") as info:
        uartlink.parse_replies(b"\x81\x01")
    assert (info.value.byte, info.value.position) == (1, 1)
    assert uartlink.frame_seconds("OUTPUT", 1_000_000) == pytest.approx(60e-6)


def test_frame_helpers_refuse_bad_values():
    with pytest.raises(ValueError, match="bus_width must be one of"):
        uartlink.frame_stream(1, True, bus_width=16)
    with pytest.raises(ValueError, match="unsigned integer of 32 bits, got 4294967296"):
        uartlink.frame_stream(1 << 32, True)
    with pytest.raises(ValueError, match="stream words must be unsigned integers of 32 bits"):
        uartlink.frame_stream_words(np.array([-1, 2]), last=True)
    with pytest.raises(ValueError, match="unknown frame 'PING'"):
        uartlink.frame_length("PING")


# ---------------------------------------------------------------------- the driver over the line
def test_identity_load_and_readback(served):
    with serial_core(served) as core:
        assert core.config == main_config()
        assert core.network is not None, "load() with read-back verify completed"
        assert f"serial transport ({served.port} at 1000000 baud)" in repr(core)
        assert core.read_register("MAGIC") == regmap.MAGIC
        core.write_register("LAM", 16, layer=0)
        assert core.read_register("LAM", layer=0) == 16
        offsets = [regmap.register(name).offset for name in ("MAGIC", "WORDS_IN", "WORDS_OUT")]
        assert core.transport.read_many(offsets).tolist() == [regmap.MAGIC, 2, 7]
    assert served.stats["frames_in"] > 100


def test_run_and_step_match_golden_on_the_simulated_board(served):
    with serial_core(served) as core:
        check_against_golden(core, SEED)
        counters = core.counters()
        assert counters["timesteps"] == 9, counters  # since the last clear, by step()
        spikes = spike_train((9, 40), SEED + 1)
        assert counters["spikes_in"] == int(spikes.sum())
        assert counters["spikes_out"] == int(golden.run(main_network(), spikes).spikes.sum())
        assert counters["busy_cycles"] > 0
    assert served.stats["flow_violations"] == 0, "the transport broke the bridge's flow-control rule"
    assert served.stats["outputs"] == (50 + 9) * 7


def test_run_matches_golden_on_the_golden_emulator(served_golden):
    with serial_core(served_golden) as core:
        check_against_golden(core, SEED + 7)
        assert core.counters()["timesteps"] == 9
    assert served_golden.stats["flow_violations"] == 0


def test_a_64_bit_bus():
    seed = SEED + 11
    config, network = wide_config(), wide_network()
    with UARTBoard(GoldenBoard(config)) as board:
        with open_core("serial", network, config=config, port=board.port) as core:
            spikes = spike_train((15, 70), seed)
            ref = golden.run(network, spikes)
            out = core.run(spikes)
            assert ref.spikes.any(), f"seed {seed}: vacuous"
            assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes), seed
        transport = SerialTransport(port=board.port, bus_width=32)
        with pytest.raises(TransportError, match="bus_width=32 was given, the core's CONFIG register says 64"):
            transport.transfer(np.zeros(2, np.uint64), 1, deadline=time.monotonic() + 5)
        transport.close()


def test_the_emulator_counts_flow_control_violations(served_golden):
    """The check the tests above rely on is not vacuous: two timesteps sent at once are counted."""
    with serial_core(served_golden) as core:
        words = pack_spikes(spike_train((2, 40), SEED), 32)
        core.transport._send(uartlink.frame_stream_words(words, last=True))  # both timesteps, no waiting
        wait_for_outputs(served_golden, 14)
        assert served_golden.stats["flow_violations"] == 1
        core.reset()
        works(core)


# ---------------------------------------------------------------------- faults
def test_a_board_that_never_answers_a_register_access(served):
    with serial_core(served, reply_timeout=0.5) as core:
        served.inject("mute")
        t0 = time.monotonic()
        message = r"the READ_DATA of offset 0x3c did not arrive before the deadline \(0 bytes"
        with pytest.raises(TransferTimeout, match=message) as info:
            core.status()
        assert 0.5 <= time.monotonic() - t0 < 5, "the reply deadline was not kept"
        assert info.value.status["waiting_for"] == "READ_DATA"
        with pytest.raises(TransferTimeout, match="the WRITE_ACK of offset 0x3c did not arrive"):
            core.clear_errors()
        served.inject(None)
        core.reset()
        works(core)


def test_a_core_that_never_sends_its_output(served_either):
    from spikeloop.sim.interface import Fault

    with serial_core(served_either, timeout=0.5) as core:
        served_either.core_fault(Fault.MUTE)
        t0 = time.monotonic()
        with pytest.raises(TransferTimeout, match=r"the receive got 0 of 140 words .* 1 of 20 timesteps") as info:
            core.run(spike_train((20, 40), SEED))
        assert time.monotonic() - t0 < 5, "the transfer deadline was not kept"
        assert info.value.status["received"] == 0 and info.value.status["timesteps_sent"] == 1
        served_either.core_fault(Fault.NONE)
        core.reset()
        assert not core.status().busy
        works(core)


def test_garbage_bytes(served):
    with serial_core(served) as core:
        served.inject("garbage", b"\x55\xaa")
        with pytest.raises(TransportError, match=r"unexpected byte 0x55 at 0: it starts no board frame .* while "
                                                 r"waiting for the READ_DATA of offset 0x.*received bytes: 55 aa 82"):
            core.status()
        core.reset()
        works(core)


@pytest.mark.parametrize("access, message", [
    ("read", r"an unexpected WRITE_ACK frame \(0x81\) arrived while waiting for the READ_DATA of offset 0x"),
    ("write", r"an unexpected READ_DATA frame \(0x82\) arrived while waiting for the WRITE_ACK of offset 0x"),
])
def test_a_reply_of_the_wrong_kind(served, access, message):
    with serial_core(served) as core:
        served.inject("wrong_reply")
        with pytest.raises(TransportError, match=message):
            core.status() if access == "read" else core.clear_errors()
        core.reset()
        works(core)


def test_a_short_output(served_either):
    from spikeloop.sim.interface import Fault

    with serial_core(served_either) as core:
        served_either.core_fault(Fault.TRUNCATE, 10)  # TLAST after 10 words, the rest of that timestep dropped
        with pytest.raises(TransferError, match=r"5 timesteps in gave 10 words out, expected 35 \(7 per timestep\)"):
            core.run(spike_train((5, 40), SEED))
        served_either.core_fault(Fault.NONE)
        core.reset()
        works(core)


def test_an_output_where_a_reply_was_due(served):
    """Output nobody asked for (an input timestep sent behind the driver's back) is named, and drained by reset()."""
    with serial_core(served) as core:
        core.transport._send(uartlink.frame_stream_words(np.zeros(2, np.uint32), last=True))
        wait_for_outputs(served, 7)
        message = r"an unexpected OUTPUT frame \(0x84\) arrived while waiting for the READ_DATA"
        with pytest.raises(TransportError, match=message):
            core.status()
        core.reset()
        works(core)


def test_a_partial_input_timestep_is_completed_by_reset(served_either):
    with serial_core(served_either) as core:
        core.transport._send(uartlink.frame_stream(1, False))  # the first of two words of a timestep
        assert core.status().busy
        core.reset()
        status = core.status()
        assert not status.busy and status.errors == ()
        works(core)


def test_bad_ports_and_options():
    with pytest.raises(TransportError, match=r"cannot open port '/dev/no-such-uart' at 1000000 baud"):
        open_core("serial", port="/dev/no-such-uart")
    with pytest.raises(TransportError, match=r"cannot open port 'nosuch://x'"):
        SerialTransport(port="nosuch://x")
    with pytest.raises(ValueError, match="port must be a serial device or a pyserial URL .* got None"):
        SerialTransport(port=None)
    with pytest.raises(ValueError, match="baudrate must be a positive integer, got 0"):
        SerialTransport(port="loop://", baudrate=0)
    with pytest.raises(ValueError, match=r"bus_width must be one of \(32, 64\) or None .* got 48"):
        SerialTransport(port="loop://", bus_width=48)
    with pytest.raises(ValueError, match="reply_timeout must be a positive number of seconds, got -1"):
        SerialTransport(port="loop://", reply_timeout=-1)
    transport = SerialTransport(port="loop://", reply_timeout=0.2)  # a line that echoes: a READ comes back as READ
    with pytest.raises(TransportError, match="unexpected byte 0x02 at 0: it starts no board frame"):
        transport.read(0)
    transport.close()


def test_bad_emulator_arguments(served_golden):
    with pytest.raises(TypeError, match=r"target must be a Board \(a SimBoard or a GoldenBoard\), got str"):
        UARTBoard("40,12,6")
    with pytest.raises(ValueError, match="cannot serve on port '/dev/no-such-uart'"):
        UARTBoard(GoldenBoard(main_config()), port="/dev/no-such-uart")
    with pytest.raises(ValueError, match="unknown line fault 'noise'; choose from mute, garbage, wrong_reply"):
        served_golden.inject("noise")
    with pytest.raises(ValueError, match="garbage needs some bytes to send"):
        served_golden.inject("garbage", b"")
    with pytest.raises(ValueError, match=r"unknown fault 7; expected one of 0 \(NONE\), 1 \(TRUNCATE\), 2 \(MUTE\)"):
        served_golden.core_fault(7, 3)


def test_the_benchmark_command(capsys):
    """bench/bench_faces.py measures the serial transport against the emulator serving the golden board."""
    assert bench_faces().main(["uart", "--sizes", "40,12,6", "--membranes", "--golden", "--steps", "40"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["flow_violations"] == 0
    per_step = result["run_bytes_per_timestep"]
    assert per_step["host_to_board"] >= 12 and 42 <= per_step["board_to_host"] < 43, per_step  # 2 words in, 7 out
    assert result["ceiling_at_baud"]["register_accesses_per_s"] == pytest.approx(10_000)


def test_spikeloop_run_over_serial(served_golden, tmp_path, capsys):
    from spikeloop.app.cli import main
    from spikeloop.spikes import load_spikes, save_spikes

    seed = SEED + 13
    spikes = spike_train((30, 40), seed)
    main_network().save(tmp_path / "net.npz")
    save_spikes(tmp_path / "in.npz", spikes)
    command = ["run", "--network", str(tmp_path / "net.npz"), "--input", str(tmp_path / "in.npz"),
               "--backend", "serial", "--port", served_golden.port, "--out", str(tmp_path / "out.npz"), "--membranes"]
    assert main(command) == 0, capsys.readouterr().err
    ref = golden.run(main_network(), spikes)
    assert ref.spikes.any(), f"seed {seed}: vacuous"
    out = load_spikes(tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as saved:
        assert np.array_equal(out, ref.spikes) and np.array_equal(saved["membranes"], ref.membranes), f"seed {seed}"
    assert main(command[:5] + ["--backend", "serial", "--out", str(tmp_path / "o.npz")]) == 2  # no --port
    assert "--backend serial needs --port" in capsys.readouterr().err
