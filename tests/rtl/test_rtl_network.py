"""Layers and networks against `spikeloop.golden.run`, bit for bit, on seeded random networks."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rtlsim import Cycles, bus_read, get, load_layer, put, seeded, simulate

from spikeloop import golden
from spikeloop.config import CoreConfig, LayerConfig, layer_cycles, state_cycles
from spikeloop.network import Network, Neuron, Reset, random_network
from spikeloop.rtl import Layer, throughput
from spikeloop.rtl import Network as NetworkRTL
from spikeloop.rtl.events import event_cycles
from spikeloop.windows import neuron_word_index


def set_controls(ctx, ctrl, layer) -> None:
    ctx.set(ctrl.neuron, Neuron.of(layer.neuron))
    ctx.set(ctrl.reset, Reset.of(layer.reset))
    ctx.set(ctrl.lam, layer.lam)
    ctx.set(ctrl.alpha, layer.alpha)


def spike_int(row) -> int:
    return sum(1 << int(i) for i in np.flatnonzero(row))


def run_network(network: Network, config: CoreConfig, spikes: np.ndarray, *, seed: int, stall: float = 0.0):
    """Stream `spikes` [T, n_in] through the gateware of `config` loaded with `network`.

    Returns (spikes [T, n_out], membranes [T, n_out] or None, final v per layer, cycles from the
    first input offered to the last output taken).
    """
    config.check_network(network)
    dut = NetworkRTL(config=config)
    steps = spikes.shape[0]
    rng = random.Random(seed)
    z = np.zeros((steps, config.n_out), bool)
    v = np.zeros((steps, config.n_out), np.int64)
    clock = Cycles()
    marks = {}
    final_v = []

    async def source(ctx):
        for k, (cfg, layer) in enumerate(zip(config.layers, network.layers)):
            set_controls(ctx, dut.ctrl[k], layer)
            await load_layer(ctx, dut.bus, cfg, layer, index=k)
        marks["start"] = clock.now
        for t in range(steps):
            await put(ctx, dut.i_stream, {"spikes": spike_int(spikes[t]), "last": int(t == steps - 1)},
                      rng=rng, stall=stall)

    async def sink(ctx):
        while "start" not in marks:
            await ctx.tick()
        for t in range(steps):
            p = await get(ctx, dut.o_stream, rng=rng, stall=stall)
            z[t] = [(p.spikes >> j) & 1 for j in range(config.n_out)]
            if config.membranes:
                v[t] = [p.v[j] for j in range(config.n_out)]
            assert p.last == (t == steps - 1)
        marks["end"] = clock.now
        await ctx.tick()
        assert not ctx.get(dut.busy), "busy after the last output"
        for k, cfg in enumerate(config.layers):
            words = [await bus_read(ctx, dut.bus, "v", int(a), layer=k) for a in neuron_word_index(cfg)]
            final_v.append(np.array(words, np.uint32).astype(np.int32).astype(np.int64))

    load_words = sum(int(np.count_nonzero(cfg.weight_window.pack(layer.crossbar_weights)))
                     for cfg, layer in zip(config.layers, network.layers))
    budget = 10 * load_words + steps * sum(20 * cfg.weight_rows + 50 for cfg in config.layers) + 5000
    simulate(dut, source, sink, max_cycles=budget, cycles=clock)
    return z, (v if config.membranes else None), final_v, marks["end"] - marks["start"]


def check_network(network: Network, config: CoreConfig, spikes: np.ndarray, *, seed: int, stall: float = 0.0):
    """Run the gateware and the golden model; assert equality and that every layer spiked."""
    z, v, final_v, cycles = run_network(network, config, spikes, seed=seed, stall=stall)
    trace = golden.run(network, spikes, record=True)
    lanes, chunk = [c.lanes for c in config.layers], [c.chunk for c in config.layers]
    events = [c.events for c in config.layers]
    where = f"sizes {config.sizes} lanes {lanes} chunk {chunk} events {events} {seeded(seed)}"
    if not np.array_equal(z, trace.spikes):
        t, j = np.argwhere(z != trace.spikes)[0]
        raise AssertionError(f"output spikes differ first at t={t}, neuron {j}: {where}")
    if v is not None:
        assert np.array_equal(v, trace.membranes), f"membranes differ: {where}"
    for k, (state, got) in enumerate(zip(trace.states, final_v)):
        assert np.array_equal(got, state.v[0]), f"layer {k} final membranes differ: {where}"
    for k, rec in enumerate(trace.layers):  # not vacuous
        assert rec.z.any(), f"layer {k} never spiked: the comparison would be vacuous ({where})"
    NEURON_TIMESTEPS["count"] += sum(rec.z.size for rec in trace.layers)
    return cycles


NEURON_TIMESTEPS = {"count": 0}


def densities(rng, steps, n_in):
    """Spike trains whose density changes every few steps, with empty and full timesteps."""
    density = rng.choice([0.0, 0.02, 0.1, 0.3, 0.6, 1.0], size=steps)
    density[:3] = [0.0, 1.0, 0.2]
    return rng.random((steps, n_in)) < density[:, None]


NETWORKS = {
    # name: (sizes, per-layer lanes, per-layer chunk, neuron/reset per layer, decay, membranes[, per-layer events
    # [, per-layer recurrent]])
    "three-layers-lif": ((40, 20, 12, 5), [4, 3, 5], [8, 6, 12], [("lif", "subtract")] * 3, "shift", True),
    "cuba-zero-multiply": ((30, 16, 7), [16, 2], [7, 16], [("cuba", "zero"), ("cuba", "none")], "multiply", True),
    "mixed-kinds": ((50, 24, 9, 6), [5, 9, 1], [25, 3, 9], [("lif", "none"), ("cuba", "subtract"), ("lif", "zero")],
                    "shift", False),
    "one-layer-wide-row": ((70, 8), [8], [70], [("lif", "subtract")], "shift", True),
    "events-and-dense": ((40, 20, 12, 5), [4, 3, 5], [None, 6, None], [("lif", "subtract"), ("cuba", "zero"),
                         ("lif", "none")], "multiply", True, [8, None, 5]),
    "events-wide-lanes": ((70, 40, 6), [36, 6], [None, 13], [("cuba", "subtract"), ("lif", "zero")], "shift", False,
                          [64, None]),
    # recurrent layers: a dense one whose chunk holds inputs and previous spikes (20 + 10 in chunks of 7), an
    # event-driven one (16 + 9 in 5 banks), a feed-forward layer after them
    "recurrent-dense": ((20, 10, 9, 4), [3, 9, 2], [7, 8, 9], [("lif", "subtract"), ("cuba", "zero"), ("lif", "none")],
                        "shift", True, [None, None, None], [True, False, False]),
    "recurrent-events": ((16, 9, 6), [2, 3], [None, 15], [("cuba", "subtract"), ("lif", "zero")], "multiply", True,
                         [5, None], [True, True]),
}


def build_case(name: str, seed: int, *, bus_width: int = 32):
    sizes, lanes, chunk, kinds, decay, membranes, *rest = NETWORKS[name]
    events = rest[0] if rest else None
    recurrent = rest[1] if len(rest) > 1 else False
    rng = np.random.default_rng(seed)
    base = random_network(sizes, seed=seed, v_bits=10, u_bits=9, frac_bits=5, neuron="cuba",
                          recurrent=tuple(recurrent) if isinstance(recurrent, list) else recurrent)
    layers = []
    for layer, (neuron, reset) in zip(base.layers, kinds):
        lam = int(rng.integers(0, 33)) if decay == "multiply" else int(rng.choice([0, 2, 8, 32]))
        alpha = 0 if neuron == "lif" else (int(rng.integers(0, 33)) if decay == "multiply" else 16)
        layers.append(layer.replace(neuron=neuron, reset=reset, lam=lam, alpha=alpha))
    network = Network(tuple(layers))
    config = CoreConfig.for_network(network, lanes=lanes, chunk=chunk, decay=decay, membranes=membranes,
                                    bus_width=bus_width, events=events)
    return network, config


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_matches_golden(name):
    seed = sum(map(ord, name))
    network, config = build_case(name, seed)
    spikes = densities(np.random.default_rng(seed), 40, network.n_in)
    check_network(network, config, spikes, seed=seed, stall=0.2 if seed % 2 else 0.0)


@pytest.mark.parametrize("name", ["recurrent-dense", "recurrent-events"])
def test_recurrent_network_with_backpressure_and_a_recurrence_that_matters(name):
    """Recurrent layers under stalls, bit-exact with golden; the recurrent weights change the golden output (the
    comparison tests them), and a recurrent layer took previous spikes as inputs."""
    seed = 300 + len(name)
    network, config = build_case(name, seed)
    spikes = densities(np.random.default_rng(seed), 40, network.n_in)
    check_network(network, config, spikes, seed=seed, stall=0.4)
    trace = golden.run(network, spikes, record=True)
    for k, layer in enumerate(network.layers):
        if layer.is_recurrent:
            assert trace.layers[k].z[:-1].any(), f"layer {k}: no previous spike fed back ({seeded(seed)})"
            plain = Network(tuple(lay.replace(recurrent=None) if i == k else lay
                                  for i, lay in enumerate(network.layers)))
            flipped = Network(tuple(lay.replace(recurrent=-lay.recurrent) if i == k else lay
                                    for i, lay in enumerate(network.layers)))
            same = [np.array_equal(golden.run(other, spikes).spikes, trace.spikes) for other in (plain, flipped)]
            assert not all(same), f"layer {k}: the recurrent weights change nothing ({seeded(seed)})"


def test_network_with_backpressure_and_idle_cycles():
    seed = 77
    network, config = build_case("three-layers-lif", seed)
    spikes = densities(np.random.default_rng(seed), 30, network.n_in)
    check_network(network, config, spikes, seed=seed, stall=0.5)


def test_cycles_per_timestep():
    """Dense input: n_groups * n_chunks per layer, the layers overlapping; empty input: n_groups, or the
    neuron array's read-modify-write time (`state_cycles`) for a layer of fewer groups."""
    sizes = (64, 16, 8)
    network = random_network(sizes, seed=3, v_bits=10, frac_bits=5)
    config = CoreConfig.for_network(network, lanes=[4, 8], chunk=[16, 16])
    steps = 20

    def per_timestep(value):  # steady state: the pipelines' fill and drain cancel in the difference
        def cycles(n):
            return run_network(network, config, np.full((n, 64), value, bool), seed=3)[3]
        return (cycles(2 * steps) - cycles(steps)) / steps

    dense_cycles, empty_cycles = per_timestep(True), per_timestep(False)
    # layer 0: 4 groups x 4 chunks = 16 rows per timestep; layer 1 is shorter and overlaps.
    assert 16 <= dense_cycles <= 16 + 4, dense_cycles
    # layer 1 has one group: its neuron array takes a timestep every `state_cycles` clocks
    empty_bound = max(layer_cycles(layer, 0) for layer in config.layers)
    assert empty_bound == state_cycles(config.layers[1]) > 4 + 1
    assert empty_cycles <= empty_bound, empty_cycles


@pytest.mark.parametrize("pattern", ["dense", "sparse", "empty"])
def test_cycles_per_timestep_of_an_event_layer(pattern):
    """An event-driven layer 0 of 4 groups: n_groups * max(1, Z) + 1 per timestep (Z the most active inputs of one
    bank), the same spikes each timestep; layer 1 (dense, one group) is shorter and overlaps."""
    sizes = (64, 16, 8)
    network = random_network(sizes, seed=4, v_bits=10, frac_bits=5)
    config = CoreConfig.for_network(network, lanes=[4, 8], chunk=[None, 16], events=[16, None])
    spikes = np.zeros(64, bool)
    if pattern == "dense":
        spikes[:] = True  # Z = 4
    elif pattern == "sparse":
        spikes[[1, 17, 33, 2, 50]] = True  # bank 1 holds three: Z = 3
    steps = 16

    def per_timestep():  # steady state: the pipelines' fill and drain cancel in the difference
        def cycles(n):
            return run_network(network, config, np.tile(spikes, (n, 1)), seed=4)[3]
        return (cycles(2 * steps) - cycles(steps)) / steps

    z = int(throughput.nonzero_chunks(config.layers[0], spikes[None])[0])
    assert z == {"dense": 4, "sparse": 3, "empty": 0}[pattern]
    model = max(layer_cycles(layer, zk) for layer, zk in zip(config.layers, [z, config.layers[1].n_chunks]))
    assert model == layer_cycles(config.layers[0], z) == max(event_cycles(spikes, n_out=16, lanes=4, events=16),
                                                             state_cycles(config.layers[0]))
    assert per_timestep() == model


def test_layer_refuses_bad_parameters():
    with pytest.raises(TypeError, match="config must be a LayerConfig"):
        Layer(config={"n_in": 4})
    with pytest.raises(TypeError, match="membranes must be a bool, not 1"):
        Layer(config=LayerConfig(4, 4), membranes=1)
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        NetworkRTL(config=LayerConfig(4, 4))


def random_case(seed: int, *, events: bool = False):
    """A random configuration and network: 1 to 3 layers of 1 to 48 neurons, any P and C,
    widths from 4 to 20 bits, every neuron kind, reset and decay mode; with `events`, each layer
    event-driven or dense at random, any E."""
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 49))] + [int(rng.integers(1, 33)) for _ in range(n_layers)]
    frac_bits = int(rng.integers(0, 7))
    decay = str(rng.choice(["shift", "multiply"]))
    layers = []
    base = random_network(sizes, seed=seed, v_bits=16, frac_bits=frac_bits, neuron="cuba")
    for layer in base.layers:
        v_bits = int(rng.integers(4, 21))
        u_bits = int(rng.integers(4, 21))
        v_hi = (1 << (v_bits - 1)) - 1
        neuron = str(rng.choice(["lif", "cuba"]))

        def decay_value():
            if decay == "multiply":
                return int(rng.integers(0, (1 << frac_bits) + 1))
            return int(rng.choice([0, *(1 << m for m in range(frac_bits + 1))]))

        layers.append(layer.replace(
            neuron=neuron, reset=str(rng.choice(["subtract", "zero", "none"])), v_bits=v_bits, u_bits=u_bits,
            lam=decay_value(), alpha=decay_value() if neuron == "cuba" else 0,
            theta=np.clip(layer.theta, 1, v_hi), bias=np.clip(layer.bias, -v_hi, v_hi),
        ))
    network = Network(tuple(layers))
    lanes = [int(rng.integers(1, layer.n_out + 1)) for layer in layers]
    chunk = [int(rng.integers(1, layer.n_in + 1)) for layer in layers]
    membranes = bool(rng.integers(0, 2))
    kinds = [None] * len(layers)
    if events:  # drawn after the rest, so a seed's other choices are those of the dense case
        kinds = [int(rng.integers(1, layer.n_in + 1)) if rng.random() < 0.7 else None for layer in layers]
        chunk = [c if e is None else None for c, e in zip(chunk, kinds)]
    config = CoreConfig.for_network(network, lanes=lanes, chunk=chunk, decay=decay, membranes=membranes,
                                    events=kinds)
    return network, config


@pytest.mark.parametrize("seed", range(16))
def test_random_configurations_match_golden(seed):
    network, config = random_case(seed)
    spikes = densities(np.random.default_rng(seed), 50, network.n_in)
    check_network(network, config, spikes, seed=seed, stall=0.2 if seed % 2 else 0.0)


@pytest.mark.parametrize("seed", range(100, 106))
def test_random_event_configurations_match_golden(seed):
    network, config = random_case(seed, events=True)
    assert any(layer.events for layer in config.layers), "no event layer drawn"
    spikes = densities(np.random.default_rng(seed), 40, network.n_in)
    check_network(network, config, spikes, seed=seed, stall=0.2 if seed % 2 else 0.0)
