"""The cycles-per-timestep model of docs/gateware.md against the core on Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloop.config import CoreConfig, layer_cycles, state_cycles
from spikeloop.rtl import throughput


@pytest.mark.parametrize("sizes,lanes,chunk,events,bus", [
    ((100, 24, 10), [6, 10], [25, 24], None, 32),  # layer 0 sets the pace when dense, the framing when empty
    ((70, 9, 40), [2, 8], [7, 3], None, 64),  # on empty input layer 1 (5 groups x 3 chunks) sets the pace
    ((100, 24, 10), [6, 10], [None, 24], [16, None], 32),  # event layer 0: 4 groups x 7 bank rows when dense
    ((70, 9, 40), [2, 8], [7, None], [None, 4], 64),  # event layer 1 (5 groups x 3 bank rows) on empty input
])
def test_measured_cycles_equal_the_model(sizes, lanes, chunk, events, bus):
    config = CoreConfig.build(sizes, lanes=lanes, chunk=chunk, events=events, v_bits=12, bus_width=bus)
    assert [layer.events for layer in config.layers] == (events or [None] * 2)
    results = throughput.measure(config, (1.0, 0.05, 0.0), steps=16, seed=1)
    for r in results:
        assert r.lower <= r.measured <= r.model, r
    dense, sparse, empty = results
    assert dense.measured == dense.model and empty.measured == empty.model  # one stage leads: exact
    assert dense.measured == throughput.expected_core_cycles(config, 1.0)
    assert empty.measured == throughput.expected_core_cycles(config, 0.0)
    assert dense.measured >= sparse.measured >= empty.measured


def test_expected_nonzero_chunks():
    layer = CoreConfig.build((70, 5), lanes=5, chunk=32).layers[0]  # chunks of 32, 32, 6
    assert throughput.chunk_sizes(layer) == [32, 32, 6]
    assert throughput.expected_nonzero_chunks(layer, 1.0) == 3
    assert throughput.expected_nonzero_chunks(layer, 0.0) == 0
    assert throughput.expected_nonzero_chunks(layer, 0.5) == pytest.approx(2 - 2 ** -31 + 1 - 2 ** -6)
    spikes = np.zeros((3, 70), bool)
    spikes[1, 69] = True
    spikes[2, [0, 40]] = True
    assert throughput.nonzero_chunks(layer, spikes).tolist() == [0, 1, 2]
    assert layer_cycles(layer, 0) == state_cycles(layer) == 9  # one group: max(max(1, Z) + 1, 9)
    wide = CoreConfig.build((70, 40), lanes=4, chunk=32).layers[0]  # 10 groups: the crossbar sets the pace
    assert layer_cycles(wide, 0) == 11 and layer_cycles(wide, 2) == 21 and layer_cycles(wide) == 31


def test_expected_items_of_an_event_layer():
    layer = CoreConfig.build((10, 4), lanes=2, events=4).layers[0]  # banks of 3, 3, 2, 2 inputs
    assert layer.n_chunks == 3 and layer_cycles(layer) == max(2 * 3 + 1, state_cycles(layer))
    assert throughput.expected_nonzero_chunks(layer, 1.0) == 3
    assert throughput.expected_nonzero_chunks(layer, 0.0) == 0
    spikes = np.zeros((4, 10), bool)
    spikes[1, 9] = True
    spikes[2, [0, 4, 8]] = True  # bank 0 holds all three
    spikes[3, [0, 1, 2, 3]] = True  # a spike in every bank
    assert throughput.nonzero_chunks(layer, spikes).tolist() == [0, 1, 3, 1]
    rng = np.random.default_rng(5)
    sample = throughput.nonzero_chunks(layer, rng.random((20000, 10)) < 0.3).mean()
    assert throughput.expected_nonzero_chunks(layer, 0.3) == pytest.approx(sample, abs=0.02), "seed 5"


@pytest.mark.parametrize("decay", ["shift", "multiply"])
def test_a_layer_of_few_groups_waits_for_its_state(decay):
    """Two groups: a group's next timestep waits until its v and u are written back (`state_cycles`)."""
    config = CoreConfig.build((40, 6), lanes=3, chunk=20, v_bits=12, decay=decay)  # 2 groups x 2 chunks
    layer = config.layers[0]
    assert state_cycles(layer) == (10 if decay == "multiply" else 9) > 2 * 2 + 1
    results = throughput.measure(config, (1.0, 0.0), steps=16, seed=2)
    for r in results:
        assert r.measured == r.model == state_cycles(layer), r


def test_the_deadline_bound_holds_an_event_crossbar():
    """`max_timestep_cycles` bounds a layer's crossbar latency by 6 + C.bit_length(); an event-driven layer's chunk
    is E, and its capture (a clock later on an idle crossbar), issue and `EventCrossbar.latency` (5 + tree_stages(E))
    fit that bound."""
    from spikeloop.rtl.crossbar import tree_stages
    from spikeloop.rtl.events import MAX_EVENTS

    for events in range(1, MAX_EVENTS + 1):
        assert 1 + 1 + 5 + tree_stages(events) <= 6 + events.bit_length(), events


@pytest.mark.parametrize("sizes,lanes,chunk,events,decay,recurrent", [
    ((32, 16, 10), [4, 10], [8, 16], None, "shift", [True, False]),  # 4 groups x 6 chunks, 2 of previous spikes
    ((32, 16, 10), [2, 10], [8, 16], None, "multiply", [True, False]),  # 8 groups; the product stage
    ((64, 16, 10), [4, 10], [64, 16], None, "shift", [True, False]),  # C 64: two tree stages
    ((32, 16, 10), [4, 10], [None, 16], [8, None], "shift", [True, False]),  # event layer: 4 groups x 6 bank rows
    ((20, 24, 8), [6, 2], [8, 8], None, "shift", [False, True]),  # a recurrent layer 1 after a wider layer 0
])
def test_a_recurrent_layer_takes_a_timestep_at_a_time(sizes, lanes, chunk, events, decay, recurrent):
    """A recurrent layer's next timestep waits for the spikes of its last group: n_groups * max(1, Z) + 1 +
    `recurrent_wait` (the crossbar's latency, the neuron array's pipeline, a clock), Z over its inputs and its
    previous spikes (all fire with `deeper="dense"`, none with "empty")."""
    from spikeloop.config import crossbar_latency, recurrent_wait

    config = CoreConfig.build(sizes, lanes=lanes, chunk=chunk, events=events, v_bits=12, decay=decay,
                              recurrent=recurrent)
    k = recurrent.index(True)
    layer = config.layers[k]
    assert recurrent_wait(layer) == crossbar_latency(layer) + state_cycles(layer) + 1
    assert [recurrent_wait(other) for other in config.layers if not other.recurrent] == [0]
    plain = CoreConfig.build(sizes, lanes=lanes, chunk=chunk, events=events, v_bits=12, decay=decay)
    for deeper in ("dense", "empty"):
        results = throughput.measure(config, (1.0, 0.0), steps=16, seed=3, deeper=deeper)
        for r in results:
            assert r.measured == r.model, (deeper, r)
        if deeper == "dense":  # every chunk holds a spike: the recurrent layer sets the pace
            assert results[0].measured == layer_cycles(layer) == layer.n_groups * layer.n_chunks + 1 + \
                recurrent_wait(layer), results[0]
        # a feed-forward build of the same sizes is quicker (the layers overlap their timesteps)
        assert throughput.measure(plain, (1.0,), steps=16, seed=3, deeper=deeper)[0].measured < results[0].measured
