"""Parameter loads by stream through the driver, on every transport (golden board, simulated board,
pynq over the Zynq/AXI-DMA model): a stream load leaves exactly the windows an MMIO load leaves and
runs as the golden model; frames the core refuses (another design, a wrong length, a transfer cut
short) raise LoadError, and run() is refused until a good load; the bus transactions are counted."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED, main_config, main_network, make_core, spike_train

from spikeloop import golden, paramstream, regmap
from spikeloop.config import CoreConfig
from spikeloop.host import Core, LoadError, TransportError
from spikeloop.host.transport import BusStats
from spikeloop.network import OPTION_DEFAULTS, Network, random_network
from spikeloop.windows import load_writes


def other_network():
    """The MAIN sizes and kinds with other weights, thresholds, biases and decays."""
    net = main_network(seed=SEED + 7)
    first, second = net.layers
    return type(net)((first.replace(lam=4, alpha=8), second.replace(lam=16)))


def every_word(core: Core) -> list[int]:
    """The run-time registers and every word of every writable window, padding included."""
    config = core.config
    offsets = [regmap.layer_offset(k, r.name) for k in range(len(config.layers))
               for r in regmap.LAYER_REGISTERS if r.access == "rw"]
    for w in regmap.windows(config):
        if w.writable:
            offsets += [w.base + 4 * i for i in range(w.words)]
    return [int(x) for x in core.transport.read_many(offsets)]


def test_a_stream_load_leaves_the_windows_of_an_mmio_load(backend, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    net = main_network()
    by_mmio = make_core(backend, main_config())
    by_stream = make_core(backend, main_config())
    try:
        by_mmio.load(net, via="mmio")
        by_stream.load(other_network(), via="stream")
        assert by_stream.transport.stats.stream_transfers == 1
        by_stream.load(net)  # the default where the transport can send a frame
        assert by_stream.transport.stats.stream_transfers == 2
        want = every_word(by_mmio)
        assert every_word(by_stream) == want
        assert sum(1 for w in want if w) > 40, "vacuous: the windows hold almost nothing"
        spikes = spike_train((2, 30, 40), SEED + 11)
        out = by_stream.run(spikes)
        ref = golden.run(net, spikes)
        assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
        assert ref.spikes.any(), "vacuous: no output spikes"
    finally:
        by_mmio.close()
        by_stream.close()


def v2_network() -> Network:
    """MAIN with contract v2's options, on MAIN's build (they are run-time): a Loihi-like cuba layer (toward
    zero, k = 6, a slow current, bias into v, u wraps, v symmetric), then lif with snnTorch's subtract_next,
    rounding to nearest."""
    first, second = main_network().layers
    hi = (1 << (first.v_bits - 1)) - 1
    return Network((first.replace(decay_round="zero", input_shift=6, bias_to="membrane", u_overflow="wrap",
                                  v_range="symmetric", alpha=4, theta=np.minimum(first.theta << 6, hi)),
                    second.replace(reset="subtract_next", decay_round="nearest")))


@pytest.mark.parametrize("via", ["stream", "mmio"])
def test_a_v2_network_runs_as_the_golden_model(backend, via, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    net = v2_network()
    spikes = spike_train((2, 40, 40), SEED + 13)
    ref = golden.run(net, spikes, record=True)
    plain = Network(tuple(layer.replace(**OPTION_DEFAULTS, reset="subtract") for layer in net.layers))
    saturating = Network((net.layers[0].replace(u_overflow="saturate"), net.layers[1]))
    assert ref.spikes.any() and ref.layers[0].z.any(), "vacuous: no spikes"
    assert not np.array_equal(golden.run(plain, spikes).membranes, ref.membranes), "the options change nothing"
    assert not np.array_equal(golden.run(saturating, spikes, record=True).layers[0].u, ref.layers[0].u), \
        "the current never wraps"
    core = make_core(backend, main_config())
    try:
        core.load(net, via=via)
        for k, layer in enumerate(net.layers):
            mode = regmap.mode_labels(core.transport.read(regmap.layer_offset(k, "MODE")))
            assert mode == {"neuron": layer.neuron, "reset": layer.reset, **layer.options()}
        out = core.run(spikes)
        assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
    finally:
        core.close()


def _other_design(frame, config):
    other = CoreConfig.for_network(main_network(), lanes=[2, 2], chunk=[16, 12], membranes=True)
    return paramstream.build_frame(other, main_network())


BAD_FRAMES = {
    "other design": (_other_design, "is not the core's HASH0"),
    "too long": (lambda f, c: np.concatenate([f, [0, 0]]).astype(np.uint32), "did not arrive as one whole frame"),
    "truncated": (lambda f, c: f[:-3], "did not arrive as one whole frame"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_a_refused_frame_raises_and_run_waits_for_a_good_load(backend, case, request, monkeypatch):
    import spikeloop.host.driver as driver

    if backend != "golden":
        request.getfixturevalue("main_board_built")
    spoil, message = BAD_FRAMES[case]
    good = driver.build_frame
    core = make_core(backend, main_config())
    try:
        before = every_word(core)
        monkeypatch.setattr(driver, "build_frame", lambda config, network: spoil(good(config, network), config))
        with pytest.raises(LoadError, match=message):
            core.load(main_network())
        assert "err_load" in core.errors() and not core.status().loading
        if case == "other design":
            assert every_word(core) == before, "a frame for another design wrote something"
        with pytest.raises(LoadError, match="last parameter load failed"):
            core.run(spike_train((5, 40), SEED))
        core.reset()
        with pytest.raises(LoadError, match="load a network before running"):
            core.step(spike_train((40,), SEED))
        monkeypatch.setattr(driver, "build_frame", good)
        core.load(main_network())
        spikes = spike_train((20, 40), SEED + 12)
        out = core.run(spikes)
        assert np.array_equal(out.spikes, golden.run(main_network(), spikes).spikes)
    finally:
        core.close()


def test_a_stream_load_needs_far_fewer_bus_transactions(backend, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    core = make_core(backend, main_config())
    try:
        stats = core.transport.stats
        before = stats.as_dict()
        core.load(main_network(), via="mmio", verify=False)
        mmio = stats.since(before)
        before = stats.as_dict()
        core.load(main_network(), via="stream", verify=False)
        stream = stats.since(before)
        writes = len(load_writes(main_config(), main_network()))
        assert mmio["mmio_writes"] >= writes and mmio["stream_transfers"] == 0
        assert stream["stream_transfers"] == 1 and stream["mmio_writes"] < 10
        assert stream["stream_bytes_sent"] == 4 * paramstream.build_frame(main_config(), main_network()).size
        assert stream["transactions"] * 5 < mmio["transactions"], (stream, mmio)
    finally:
        core.close()


def test_bus_stats_count_and_subtract():
    stats = BusStats()
    before = stats.as_dict()
    stats.mmio_reads += 3
    stats.count_stream(sent=8, received=4)
    assert stats.since(before) == {"mmio_reads": 3, "mmio_writes": 0, "stream_transfers": 1, "stream_bytes_sent": 8,
                                   "stream_bytes_received": 4, "transactions": 4}


def test_a_64_bit_bus_loads_by_stream():
    from conftest import wide_config, wide_network

    core = make_core("golden", wide_config())
    try:
        core.load(wide_network())
        spikes = spike_train((10, 70), SEED + 13)
        assert np.array_equal(core.run(spikes).spikes, golden.run(wide_network(), spikes).spikes)
    finally:
        core.close()


def test_load_refuses_bad_options_and_transports_without_frames():
    core = make_core("golden", main_config())
    try:
        with pytest.raises(ValueError, match="via must be 'stream' or 'mmio', not 'dma'"):
            core.load(main_network(), via="dma")
        core.transport.can_send_frames = False  # as the serial transport
        core.load(main_network(), verify=False)  # the default is then MMIO
        assert core.transport.stats.stream_transfers == 0
    finally:
        core.close()
    from spikeloop.host.transport import Transport

    class NoFrames(Transport):
        name = "noframes"
        read = write = transfer = abort = drain = None

    with pytest.raises(TransportError, match="cannot send a stream without a receive; load parameters with via='mmio'"):
        Transport.send_frame(NoFrames.__new__(NoFrames), np.zeros(3, np.uint32), deadline=0.0)


def test_the_serial_transport_loads_by_mmio():
    from spikeloop.host.serial_transport import SerialTransport

    assert SerialTransport.can_send_frames is False


def test_a_network_that_does_not_fit_is_refused_before_any_frame():
    from spikeloop.host import ConfigError

    core = make_core("golden", main_config())
    try:
        with pytest.raises(ConfigError, match="cannot hold"):
            core.load(random_network((40, 13, 6), seed=SEED))
        assert core.transport.stats.stream_transfers == 0
    finally:
        core.close()


@pytest.mark.parametrize("kind", ["golden", "sim"])
def test_a_board_takes_a_frame_without_output(kind, request):
    """The boards themselves: send a frame with TLAST, run until `loading` clears, no receive armed."""
    from spikeloop.sim.golden_board import GoldenBoard
    from spikeloop.sim.interface import Until

    config = main_config()
    if kind == "sim":
        from conftest import PROFILE

        from spikeloop.sim.board import SimBoard

        request.getfixturevalue("main_board_built")
        board = SimBoard(config, profile=PROFILE)
    else:
        board = GoldenBoard(config)
    control, status = regmap.register("CONTROL"), regmap.register("STATUS")
    words = paramstream.bus_words(paramstream.build_frame(config, main_network()), config.bus_width)
    with board:
        board.write(control.offset, control.encode(load_params=1))
        assert status.decode(board.read(status.offset))["loading"] == 1
        board.send(words, last=True)
        board.run(100 * words.size, Until.SENT)
        for _ in range(100):
            if not status.decode(board.read(status.offset))["loading"]:
                break
            board.run(1)
        assert board.read(status.offset) == 0, status.decode(board.read(status.offset))
        writes = load_writes(config, main_network())
        got = board.read_many([o for o, _ in writes])
        assert [int(x) for x in got] == [v & 0xFFFFFFFF for _, v in writes]
        assert board.received == 0 and board.drain(quiet=200) == 0, "a load frame gave output"
