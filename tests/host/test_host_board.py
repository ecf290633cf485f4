"""The simulated board below the driver (sim/board.cpp through ctypes), and the PYNQ shim."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import PROFILE, SEED, main_config, main_network, make_core, spike_train, wide_config, wide_network

from spikeloop import golden, regmap
from spikeloop.host import TransportError, open_core
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes
from spikeloop.windows import load_writes

pytestmark = pytest.mark.usefixtures("main_board_built")


@pytest.fixture
def board():
    from spikeloop.sim.board import SimBoard

    b = SimBoard(main_config(), profile=PROFILE)
    yield b
    b.close()


def test_identity_registers_read_back_as_built(board):
    for offset, value in main_config().readback().items():
        assert board.read(offset) == value, f"offset {offset:#x}"
    assert board.version.startswith("5.")


def test_the_build_is_cached():
    from spikeloop.sim.board import build_board

    t0 = time.monotonic()
    first = build_board(main_config(), profile=PROFILE)
    assert build_board(main_config(), profile=PROFILE) == first
    assert time.monotonic() - t0 < 5, "a cached board was rebuilt"


def test_stream_words_are_the_golden_models(board):
    from spikeloop.sim.interface import Rx, Until

    config, net = main_config(), main_network()
    offsets, values = zip(*load_writes(config, net))
    board.write_many(offsets, values)
    assert np.array_equal(board.read_many(offsets), np.asarray(values, dtype=np.int64) & 0xFFFFFFFF)
    spikes = spike_train((30, 40), SEED + 20)
    expected = golden.run(net, spikes)
    board.arm(30 * output_words_per_timestep(config))
    board.send(pack_spikes(spikes))
    c0 = board.cycles
    board.run(10**6, Until.RECEIVED | Until.SENT)
    assert board.rx_state == Rx.LAST and board.pending == 0
    assert np.array_equal(board.take(), pack_output(expected.spikes, expected.membranes, config))
    assert board.cycles - c0 > 30


@pytest.mark.parametrize("backend", ["golden", "sim", "pynq"])
def test_a_64_bit_bus(backend):
    net = wide_network()
    core = make_core(backend, wide_config(), net)
    assert core.words_in == 2 and core.words_out == 1 + 5
    spikes = spike_train((2, 25, 70), SEED + 21, density=0.4)
    out = core.run(spikes)
    ref = golden.run(net, spikes)
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
    assert ref.spikes.any()
    core.close()


def test_the_vlnv_names_the_generated_module():
    from spikeloop.overlay import VLNV
    from spikeloop.rtl.verilog import MODULE

    assert VLNV == f"xilinx.com:module_ref:{MODULE}:1.0"


def test_pynq_binds_its_drivers_through_the_overlay(board):
    from pynq.lib.dma import DMA

    from spikeloop.host.pynq_transport import SpikeloopIP, sim_overlay

    overlay = sim_overlay(board)
    assert overlay.is_loaded()
    assert type(overlay.core) is SpikeloopIP and type(overlay.dma) is DMA
    assert overlay.core_name == "core" and overlay.dma_name == "dma"
    assert overlay.core.read(regmap.register("MAGIC").offset) == regmap.MAGIC
    net = main_network()
    core = open_core("pynq", overlay=overlay, network=net)
    spikes = spike_train((10, 40), SEED + 22)
    assert np.array_equal(core.run(spikes).membranes, golden.run(net, spikes).membranes)


def test_dma_memory_is_not_coherent(board):
    """The shim's DMA sees a buffer only after flush(): a driver that forgets it would fail here."""
    from pynq import allocate

    from spikeloop.sim.zynq import SimDevice

    device = SimDevice(board)
    buf = allocate(shape=(8,), dtype=np.uint32, target=device)
    buf[:] = np.arange(8)
    memory, offset = device.memory.find(buf.physical_address, buf.nbytes)
    assert not memory[offset : offset + 32].any()
    buf.flush()
    assert np.array_equal(memory[offset : offset + 32].view(np.uint32), np.arange(8))
    with device.activate():
        import pynq

        assert pynq.Device.active_device is device
        assert allocate(shape=(4,)).device is device
    assert "_active_device" not in vars(pynq.Device) or pynq.Device.active_device is not device


def test_a_scatter_gather_dma_is_refused(board, tmp_path):
    from spikeloop.host.pynq_transport import PynqTransport
    from spikeloop.sim.zynq import SimDevice

    class SgDevice(SimDevice):
        def metadata(self):
            meta = super().metadata()
            meta.ip_dict["dma"]["parameters"]["c_include_sg"] = "1"
            return meta

    (tmp_path / "sg.bit").write_bytes(b"")
    with pytest.raises(TransportError, match="scatter-gather mode; spikeloop needs simple mode"):
        PynqTransport(bitfile=str(tmp_path / "sg.bit"), device=SgDevice(board))


def test_an_overlay_without_the_core_is_refused(board, tmp_path):
    from spikeloop.host.pynq_transport import SpikeloopOverlay
    from spikeloop.sim.zynq import SimDevice

    class NoCore(SimDevice):
        def metadata(self):
            meta = super().metadata()
            del meta.ip_dict["core"]
            return meta

    (tmp_path / "x.bit").write_bytes(b"")
    with pytest.raises(TransportError, match="expected one the spikeloop core, found 0 among: dma"):
        SpikeloopOverlay(str(tmp_path / "x.bit"), device=NoCore(board))


def test_the_golden_transport_emulates_the_gateware_registers(board):
    """The same writes, good and refused, on the golden transport and the simulated board: the same
    STATUS after each and the same values read back."""
    from spikeloop.host.sim_transport import GoldenTransport

    config = main_config()
    golden_regs = GoldenTransport(config=config)
    status = regmap.register("STATUS").offset
    theta, bias = regmap.window(config, 0, "theta"), regmap.window(config, 1, "bias")
    writes = [
        (regmap.layer_offset(0, "MODE"), 0b011), (regmap.layer_offset(0, "MODE"), 0b11000),  # rounding 3: refused
        (regmap.layer_offset(0, "MODE"), 17 << 8),   # k 17 refused; all options at their tops taken
        (regmap.layer_offset(0, "MODE"), regmap.mode_word(neuron="lif", reset="subtract_next", decay_round="nearest",
                                                          bias_to="membrane", u_overflow="wrap", v_range="symmetric",
                                                          input_shift=16)),
        (regmap.layer_offset(1, "MODE"), 1 << 13),  # bits above the fields: refused
        (regmap.layer_offset(0, "LAM"), 16), (regmap.layer_offset(0, "LAM"), 12),  # not a power of two
        (regmap.layer_offset(1, "ALPHA"), 64), (regmap.layer_offset(1, "ALPHA"), 128),  # > 2^F
        (theta.base, 5), (theta.base + 4, 0), (theta.base + 8, 2047), (theta.base + 12, 2048),  # v_bits = 12
        (bias.base, 0xFFFFF800), (bias.base + 4, 0xFFFFF7FF), (bias.base + 8, 2047),
        (regmap.register("WORDS_IN").offset, 3), (0x7C, 1),  # read-only, unmapped
        (regmap.window(config, 0, "v").base, 1),  # the readout windows are read-only
    ]
    rng = np.random.default_rng(SEED)
    seen = 0
    for offset, value in writes:
        for target in (board, golden_regs):
            target.write(offset, value)
        seen |= board.read(status)
        assert board.read(status) == golden_regs.read(status), f"STATUS after writing {value:#x} at {offset:#x}"
        for target in (board, golden_regs):
            target.write(status, 0xF00)
    reads = sorted({o for o, _ in writes if o != 0x7C} | set(main_config().readback()))
    reads += [int(o) for o in rng.choice(np.arange(theta.base, theta.end, 4), 4)]
    for offset in reads:
        assert board.read(offset) == golden_regs.read(offset), f"offset {offset:#x}"
    assert board.read(status) == golden_regs.read(status)
    fields = regmap.register("STATUS").decode(seen)
    assert fields["err_param"] and fields["err_address"], "vacuous: nothing was refused"


def test_a_transfer_in_one_call(board):
    from spikeloop.sim.interface import BoardError, Rx, Until

    config, net = main_config(), main_network()
    offsets, values = zip(*load_writes(config, net))
    board.write_many(offsets, values)
    spikes = spike_train((12, 40), SEED + 22)
    expected = golden.run(net, spikes)
    words = pack_spikes(spikes)
    n_out = 12 * output_words_per_timestep(config)
    assert words.dtype == np.uint32
    assert board.transfer(words, n_out, 5) == Rx.ARMED  # 5 cycles are not enough: the receive goes on
    board.run(10**6, Until.RECEIVED)
    assert board.rx_state == Rx.LAST and board.pending == 0
    assert np.array_equal(board.take(n_out), pack_output(expected.spikes, expected.membranes, config))
    board.send(words[:1], last=False)
    with pytest.raises(BoardError, match="still queued"):
        board.transfer(words, n_out, 100)
    assert board.pending == 1


def test_the_compiler_named_by_cxx_builds_model_and_harness(tmp_path, monkeypatch):
    """CXX is honoured for the Verilated model as well as the harness, and is part of the cache key."""
    import stat

    from spikeloop.config import CoreConfig
    from spikeloop.sim.board import BoardBuildError, SimBoard, build_board

    log = tmp_path / "cxx.log"
    wrapper = tmp_path / "logged-c++"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec c++ "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    tiny = CoreConfig.build((8, 4), lanes=2, chunk=8)
    monkeypatch.setenv("CXX", str(wrapper))
    library = build_board(tiny, profile=PROFILE, build_root=tmp_path / "boards")
    calls = log.read_text()
    assert "Vcore" in calls and "board.cpp" in calls, "the model or the harness was built by another compiler"
    board = SimBoard(tiny, profile=PROFILE, build_root=tmp_path / "boards")
    assert board.read(regmap.register("MAGIC").offset) == regmap.MAGIC
    board.close()
    monkeypatch.setenv("CXX", "c++")  # another compiler: another build, not the wrapper's
    assert build_board(tiny, profile=PROFILE, build_root=tmp_path / "boards").parent != library.parent
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(BoardBuildError, match=r"C\+\+ compiler named by CXX=.*no-such-compiler.*not an executable"):
        build_board(tiny, profile=PROFILE, build_root=tmp_path / "boards")


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    from spikeloop.sim.board import cache_root

    monkeypatch.setenv("SPIKELOOP_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache" / "sim" and cache_root().is_dir()


def test_the_bench_command_takes_the_shared_configuration_options(capsys):
    from spikeloop.sim.board import main

    options = ["--sizes", "40,12,6", "--lanes", "3,2", "--chunk", "16,12", "--v-bits", "12", "--u-bits", "12",
               "--frac-bits", "6", "--membranes", "--profile", PROFILE]
    assert main([*options, "--bench", "--steps", "50"]) == 0  # the design of main_config(): built already
    report = json.loads(capsys.readouterr().out)
    assert report["received_words"] == report["expected_words"] == 50 * output_words_per_timestep(main_config())
    assert report["cycles"] > 50 and report["idle_cycles_per_second"] > 0
    # widths per layer: the bench's random network follows them (a core refuses a network it cannot hold)
    assert main(["--sizes", "40,12,6", "--lanes", "3,2", "--chunk", "16,12", "--v-bits", "12,10", "--u-bits", "12",
                 "--frac-bits", "6", "--profile", PROFILE, "--bench", "--steps", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["received_words"] == report["expected_words"] > 0
    with pytest.raises(SystemExit):
        main([*options, "--lanes", "3,two"])
    assert "expected an integer or comma-separated integers, got '3,two'" in capsys.readouterr().err


def test_one_evaluation_per_stream_clock_is_the_same_board(board):
    """Stream clocks of one evaluation (skipping the input-combinational region or not) give the same words,
    cycles and counters as clocks of two, through stalls (a receive armed for part of the output only),
    backpressure and AXI-Lite transactions between runs."""
    from spikeloop.sim.interface import Rx, Until

    assert board.one_eval and board.skip_unchanged, "the MAIN design's stream outputs are registered"
    config, net = main_config(), main_network()
    offsets, values = zip(*load_writes(config, net))
    spikes = spike_train((25, 40), SEED + 23)
    words = pack_spikes(spikes)
    per_step = output_words_per_timestep(config)
    counters = [regmap.register(f"{name}_{half}").offset for name in regmap.COUNTERS for half in ("LO", "HI")]
    runs = {}
    for mode in ((True, True), (True, False), (False, False)):
        board.reset()
        board.one_eval, board.skip_unchanged = mode
        board.write_many(offsets, values)
        c0, e0, got = board.cycles, board.edge_only_cycles, []
        board.arm(7 * per_step)  # a receive shorter than the output: the core stalls until the next one
        board.send(words)
        board.run(10**6, Until.RECEIVED)
        got.append(board.take())
        board.run(50)  # backpressure: nothing is accepted
        board.arm(18 * per_step)
        board.run(10**6, Until.RECEIVED | Until.SENT)
        assert board.rx_state == Rx.LAST
        got.append(board.take())
        skipped = board.edge_only_cycles - e0
        assert (skipped > 0) == (mode == (True, True)), f"{skipped} clocks skipped the region in mode {mode}"
        runs[mode] = (np.concatenate(got), board.cycles - c0, board.read_many(counters))
    expected = golden.run(net, spikes)
    (out, cycles, counted), *others = runs.values()
    assert np.array_equal(out, pack_output(expected.spikes, expected.membranes, config))
    assert cycles > 50 and counted.any()
    for other in others:
        assert np.array_equal(other[0], out) and other[1] == cycles and np.array_equal(other[2], counted)


def test_outputs_driven_from_inputs_are_found_in_the_generated_code():
    from spikeloop.sim.board import combinational_outputs

    ico = ("void Vcore___024root___ico_sequent__TOP__0(Vcore___024root* vlSelf) {\n"
           "    vlSelfRef.s_axi_arready = (1U & ~(IData)(vlSelfRef.s_axi_arvalid));\n"
           "    vlSelfRef.spikeloop_core__DOT__core__DOT__x = vlSelfRef.s_axis_tvalid;\n"
           "    if (vlSelfRef.m_axis_tvalid == 1U) {}\n"
           "}\n")
    nba = ("void Vcore___024root___nba_sequent__TOP__0(Vcore___024root* vlSelf) {\n"
           "    vlSelfRef.s_axis_tready = vlSelfRef.spikeloop_core__DOT__core__DOT__ready;\n"
           "}\n")
    assert combinational_outputs([ico, nba]) == {"s_axi_arready"}
    assert combinational_outputs([ico.replace("s_axi_arready", "s_axis_tready"), nba]) == {"s_axis_tready"}
