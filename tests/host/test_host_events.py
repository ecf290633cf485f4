"""A core whose first layer has the event-driven crossbar, end to end on every transport: built, identified by
its readback, loaded (register writes and load frames), run word for word against the golden model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PROFILE, SEED, main_config, main_network, make_core, spike_train

from spikeloop import golden
from spikeloop.config import ConfigError, CoreConfig
from spikeloop.host import Core, open_core
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes
from spikeloop.windows import load_writes


def event_config(network=None) -> CoreConfig:
    """MAIN's network with layer 0 (40 inputs) on the event-driven crossbar, E = 8 banks of 5; layer 1 dense."""
    return CoreConfig.for_network(network or main_network(), lanes=[3, 2], chunk=[None, 12], events=[8, None],
                                  membranes=True, options=True)


@pytest.fixture(scope="module")
def event_board():
    from spikeloop.sim.board import SimBoard, board_available

    reason = board_available()
    if reason:
        pytest.skip(reason)
    board = SimBoard(event_config(), profile=PROFILE)
    yield board
    board.close()


def test_the_board_streams_the_golden_models_words(event_board):
    from spikeloop.sim.interface import Rx, Until

    board, config, net = event_board, event_config(), main_network()
    assert [layer.events for layer in config.layers] == [8, None]
    for offset, value in config.readback().items():
        assert board.read(offset) == value, f"offset {offset:#x}"
    assert CoreConfig.from_readback(board.read) == config
    offsets, values = zip(*load_writes(config, net))
    board.write_many(offsets, values)
    assert np.array_equal(board.read_many(offsets), np.asarray(values, dtype=np.int64) & 0xFFFFFFFF)
    steps = 40
    spikes = spike_train((steps, 40), SEED + 40, density=0.15)
    spikes[:4] = [0], [1], [0], [1]  # empty and full timesteps: the least and the most items per group
    expected = golden.run(net, spikes, record=True)
    assert all(layer.z.any() for layer in expected.layers), "a layer never fired: the comparison would be vacuous"
    board.arm(steps * output_words_per_timestep(config))
    board.send(pack_spikes(spikes))
    board.run(10**6, Until.RECEIVED | Until.SENT)
    assert board.rx_state == Rx.LAST and board.pending == 0
    got = board.take()
    want = pack_output(expected.spikes, expected.membranes, config)
    assert got.size == want.size == steps * output_words_per_timestep(config)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("backend", ["golden", "sim", "pynq"])
@pytest.mark.parametrize("via", ["mmio", "stream"])
def test_the_driver_runs_an_event_core(backend, via, event_board):
    net = main_network()
    core = make_core(backend, event_config())
    assert core.config == event_config()
    core.load(net, via=via, verify=True)
    spikes = spike_train((2, 30, 40), SEED + 41, density=0.2)
    out, ref = core.run(spikes), golden.run(net, spikes)
    assert ref.spikes.any() and ref.membranes.any()
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
    core.close()


def test_a_driver_refuses_the_other_kind(event_board):
    """The readback names the kind: a driver expecting the dense build of the same sizes refuses the event core,
    and the other way round."""
    from spikeloop.host.sim_transport import SimTransport
    from spikeloop.sim.board import SimBoard

    transport = SimTransport(board=SimBoard(event_config(), profile=PROFILE))
    try:
        with pytest.raises(ConfigError, match=r"events 8/-.*expected .*chunk 16/12"):
            Core(transport, expect=main_config())
    finally:
        transport.close()
    golden_dense = make_core("golden", main_config())
    with pytest.raises(ConfigError, match=r"expected .*events 8/-"):
        Core(golden_dense.transport, expect=event_config())
    golden_dense.close()
    with open_core("golden", main_network(), lanes=[3, 2], chunk=[None, 12], events=[8, None]) as core:
        assert [layer.events for layer in core.config.layers] == [8, None]


def test_a_served_core_takes_events():
    """The board emulators' `--events` (sim/board.py `add_served_core_arguments`), checked like the other commands'."""
    import argparse

    from spikeloop.configargs import OptionError
    from spikeloop.sim.board import add_served_core_arguments, served_core

    parser = argparse.ArgumentParser()
    add_served_core_arguments(parser)
    _, config = served_core(parser.parse_args(["--sizes", "40,12,6", "--lanes", "3,2", "--chunk", "12",
                                               "--events", "8,0"]))
    assert [(layer.events, layer.chunk) for layer in config.layers] == [(8, 8), (None, 12)]
    with pytest.raises(OptionError, match="argument --events: expected 0 .dense. or an integer in .1, 12. for layer 1"):
        served_core(parser.parse_args(["--sizes", "40,12,6", "--events", "8,13"]))
