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
    ((40, 16, 10), [4, 10], [12, 16], None, "shift", [True, False]),  # a chunk of inputs and previous spikes
    ((128, 8, 4), [8, 4], [4, 8], None, "shift", [True, False]),  # 32 early chunks: more than the wait
    ((32, 16, 10), [4, 10], [None, 16], [8, None], "shift", [True, False]),  # event layer: 4 groups x 6 bank rows
    ((20, 24, 8), [6, 2], [8, 8], None, "shift", [False, True]),  # a recurrent layer 1 after a wider layer 0
])
def test_a_recurrent_layer_waits_for_its_previous_spikes(sizes, lanes, chunk, events, decay, recurrent):
    """A recurrent layer's timestep waits for the spikes of its last group (`layer_cycles`): a dense one walks its
    first group's early chunks meanwhile and waits at its late chunks, n_groups * max(1, Z) + 1 + max(1, W - 1 -
    early) (+ 1 for an empty late walk after early items), an event-driven one takes a timestep at a time,
    n_groups * max(1, Z) + 1 + W; W = `recurrent_wait` (the crossbar's latency, the neuron array's pipeline, a
    clock). Z over its inputs and its previous spikes: all fire with `deeper="dense"`, none with "empty"."""
    from amaranth.hdl import Fragment

    from spikeloop.config import crossbar_latency, recurrent_wait
    from spikeloop.rtl.crossbar import Crossbar

    config = CoreConfig.build(sizes, lanes=lanes, chunk=chunk, events=events, v_bits=12, decay=decay,
                              recurrent=recurrent)
    k = recurrent.index(True)
    layer = config.layers[k]
    W = recurrent_wait(layer)
    assert W == crossbar_latency(layer) + state_cycles(layer) + 1
    assert [recurrent_wait(other) for other in config.layers if not other.recurrent] == [0]
    if events is None:  # the gateware's late chunks are the model's
        xbar = Crossbar(n_in=layer.crossbar_inputs, n_out=layer.n_out, lanes=layer.lanes, chunk=layer.chunk,
                        late=layer.n_out)
        Fragment.get(xbar, None)  # elaborated: it is used
        assert xbar.late == layer.n_out and xbar.late_chunks == layer.late_chunks > 0
    plain = CoreConfig.build(sizes, lanes=lanes, chunk=chunk if k == 0 or events else [chunk[0], sizes[1]],
                             events=events, v_bits=12, decay=decay)
    for deeper in ("dense", "empty"):
        results = throughput.measure(config, (1.0, 0.0), steps=16, seed=3, deeper=deeper)
        for r in results:
            assert r.measured == r.model, (deeper, r)
        if deeper == "dense":  # every chunk holds a spike: the recurrent layer sets the pace
            early = layer.n_in // layer.chunk
            wait = W if events else max(1, W - 1 - early)
            assert results[0].measured == layer_cycles(layer) == layer.n_groups * layer.n_chunks + 1 + wait, \
                results[0]
        # a feed-forward build of the same sizes is quicker (its layers overlap their timesteps)
        assert throughput.measure(plain, (1.0,), steps=16, seed=3, deeper=deeper)[0].measured < results[0].measured


def test_a_dense_recurrent_layer_overlaps_its_next_timestep():
    """The dense crossbar walks a timestep's chunks of inputs while the previous timestep finishes: fewer cycles
    than taking a timestep at a time (its early chunks and the capture hidden), and none fewer than one clock of
    waiting."""
    from spikeloop.config import recurrent_wait

    config = CoreConfig.build((32, 16, 10), lanes=[4, 10], chunk=[8, 16], v_bits=12, recurrent=[True, False])
    layer = config.layers[0]
    dense = throughput.measure(config, (1.0,), steps=16, seed=3)[0].measured
    assert dense == 4 * 6 + 1 + recurrent_wait(layer) - 1 - 4 == 36  # 5 clocks fewer than 41
    deep = CoreConfig.build((128, 8, 4), lanes=[8, 4], chunk=[4, 8], v_bits=12, recurrent=[True, False])
    assert throughput.measure(deep, (1.0,), steps=16, seed=3)[0].measured == 34 + 1 + 1  # the wait all hidden
