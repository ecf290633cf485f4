"""A board with stuck weight bits (spikeloop.sim.faults.StuckWeightBits) behind the driver, on the golden board."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.config import CoreConfig
from spikeloop.host import Core, LoadError
from spikeloop.host.sim_transport import BoardTransport
from spikeloop.network import random_network
from spikeloop.sim.faults import StuckWeightBits
from spikeloop.sim.golden_board import GoldenBoard
from spikeloop.windows import load_writes

SEED = 31


def setup(fraction=0.1, seed=SEED):
    net = random_network((40, 12, 6), seed=SEED)
    config = CoreConfig.for_network(net, lanes=[4, 3], chunk=[16, 12], membranes=True)
    board = StuckWeightBits(GoldenBoard(config), fraction=fraction, seed=seed)
    return net, board, Core(BoardTransport(board=board), expect=config)


def test_read_back_finds_the_stuck_bits():
    net, board, core = setup()
    with pytest.raises(LoadError, match=r"words read back differently; the first is layer \d weights word"):
        core.load(net)


def test_the_core_runs_the_network_with_its_weights_forced():
    net, board, core = setup()
    core.load(net, verify=False)
    held = board.network()
    for k, (layer, faulty, stuck) in enumerate(zip(net.layers, held.layers, board.stuck_bits)):
        n_syn = layer.weights.size
        assert len(stuck) == round(0.1 * n_syn)
        changed = int((layer.weights != faulty.weights).sum())
        assert 0 < changed <= len(stuck), f"layer {k} (seed {SEED})"
        assert np.array_equal(layer.theta, faulty.theta) and np.array_equal(layer.bias, faulty.bias)
    spikes = np.random.default_rng(SEED).random((20, 40)) < 0.4
    out = core.run(spikes)
    want = golden.run(held, spikes)
    assert np.array_equal(out.spikes, want.spikes) and np.array_equal(out.membranes, want.membranes)
    assert not np.array_equal(out.membranes, golden.run(net, spikes).membranes)
    assert out.spikes.any()


def test_single_and_bulk_writes_store_the_same_words():
    net, board, core = setup()
    core.load(net, verify=False)
    bulk = board.network()
    _, board2, core2 = setup()
    from spikeloop.windows import load_writes

    for offset, value in load_writes(core2.config, net):
        board2.write(offset, value)
    one = board2.network()
    for a, b in zip(bulk.layers, one.layers):
        assert np.array_equal(a.weights, b.weights)


def held_weights(board):
    return [layer.weights.copy() for layer in board.network().layers]


@pytest.mark.parametrize("bus_width", [32, 64])
def test_stream_and_mmio_loads_store_the_same_forced_network(bus_width):
    """The driver loads by stream by default: the frame's weight words are forced by the same rule as
    MMIO writes, so both paths hold the same faulty network (and it differs from the clean one)."""
    net = random_network((40, 12, 6), seed=SEED)
    config = CoreConfig.for_network(net, lanes=[4, 3], chunk=[16, 12], membranes=True, bus_width=bus_width)
    held = {}
    for via in ("stream", "mmio"):
        board = StuckWeightBits(GoldenBoard(config), fraction=0.1, seed=SEED)
        core = Core(BoardTransport(board=board), expect=config)
        assert core.transport.can_send_frames
        core.load(net, verify=False, via=via)
        held[via] = held_weights(board)
        with pytest.raises(LoadError, match="words read back differently"):
            core.load(net, via=via)
        stats = core.transport.stats
        assert (stats.mmio_writes < 20) if via == "stream" else (stats.mmio_writes > 40), (via, stats)
    for k, (a, b, clean) in enumerate(zip(held["stream"], held["mmio"], net.layers)):
        assert np.array_equal(a, b), f"layer {k} (seed {SEED})"
        assert (a != clean.weights).any(), f"layer {k}: no weight forced (seed {SEED}), a vacuous comparison"


def test_a_frame_sent_in_pieces_is_forced_whole_and_a_refused_frame_passes_unchanged():
    from spikeloop import regmap
    from spikeloop.paramstream import build_frame, bus_words

    net, board, _ = setup()
    config = board.config
    words = bus_words(build_frame(config, net), config.bus_width)
    control = regmap.register("CONTROL")
    board.write(control.offset, control.encode(load_params=1))
    board.send(words[:7], last=False)
    board.send(words[7:], last=True)
    pieces = held_weights(board)
    _, board2, core2 = setup()
    core2.load(net, verify=False, via="mmio")
    assert all(np.array_equal(a, b) for a, b in zip(pieces, held_weights(board2)))
    bad = words.copy()
    bad[1] ^= 1  # another design's hash: the core refuses it, nothing is written
    assert np.array_equal(board.forced_frame(bad), bad)
    forced = board.forced_frame(words)
    assert forced.dtype == words.dtype and forced.shape == words.shape and not np.array_equal(forced, words)
    assert np.array_equal(board.forced_frame(forced), forced)  # forcing twice changes nothing


def test_spikes_after_a_load_are_not_taken_for_a_frame():
    net, board, core = setup()
    core.load(net, verify=False)
    spikes = np.random.default_rng(SEED).random((6, 40)) < 0.4
    out = core.run(spikes)
    assert np.array_equal(out.spikes, golden.run(board.network(), spikes).spikes) and out.spikes.any()


def test_the_choice_is_seeded():
    a, b, c = setup(seed=1)[1], setup(seed=1)[1], setup(seed=2)[1]
    assert all(np.array_equal(x, y) for x, y in zip(a.stuck_bits, b.stuck_bits))
    assert not all(np.array_equal(x, y) for x, y in zip(a.stuck_bits, c.stuck_bits))
    net, none, core = setup(fraction=0.0)
    core.load(net)  # nothing stuck: the read-back passes
    assert all(len(s) == 0 for s in none.stuck_bits)


@pytest.mark.parametrize("kwargs, match", [
    ({"fraction": 1.5, "seed": 0}, r"fraction = 1.5, expected a number in \[0, 1\]"),
    ({"fraction": True, "seed": 0}, "fraction = True"),
    ({"fraction": 0.1, "seed": -1}, "seed = -1, expected a non-negative integer"),
])
def test_refusals(kwargs, match):
    net = random_network((40, 12), seed=SEED)
    board = GoldenBoard(CoreConfig.for_network(net))
    with pytest.raises(ValueError, match=match):
        StuckWeightBits(board, **kwargs)
    with pytest.raises(TypeError, match="board must be a Board"):
        StuckWeightBits("board", fraction=0.1, seed=0)


def test_a_recurrent_layer_has_stuck_bits_among_its_recurrent_weights_too():
    """The stuck bits cover the whole weights window of a recurrent layer, [w | r]: some recurrent weights are
    forced, and the board holds the network the forced words say."""
    net = random_network((20, 8, 4), seed=SEED, recurrent=True)
    config = CoreConfig.for_network(net, lanes=[2, 2], chunk=[7, 5])
    board = StuckWeightBits(GoldenBoard(config), fraction=0.2, seed=SEED)
    assert [len(s) for s in board.stuck_bits] == [round(0.2 * 8 * 28), round(0.2 * 4 * 12)]
    offsets, values = zip(*load_writes(config, net))
    board.write_many(offsets, values)
    held = board.board.network()
    assert all(layer.is_recurrent for layer in held.layers)
    assert any((a.recurrent != b.recurrent).any() for a, b in zip(held.layers, net.layers)), f"seed {SEED}"
