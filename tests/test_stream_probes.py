"""The probe sections of the output stream (spikeloop.stream): word counts, the layout word by word,
round trips through `pack_output` / `unpack_probes` / `StreamCodec`, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.config import CoreConfig
from spikeloop.network import random_network
from spikeloop.regmap import register
from spikeloop.stream import (
    PROBE_KINDS,
    StreamCodec,
    output_words_per_timestep,
    pack_output,
    pack_spikes,
    probe_kinds,
    unpack_output,
    unpack_probes,
)

SEED = 4321


def case(bus_width, membranes, steps=7):
    net = random_network((45, 33, 5), seed=SEED, v_bits=11, u_bits=10, frac_bits=4, neuron="cuba")
    config = CoreConfig.for_network(net, lanes=[4, 5], chunk=[9, 11], membranes=membranes, bus_width=bus_width,
                                    probes=True)
    spikes = np.random.default_rng(SEED).random((steps, 45)) < 0.4
    return config, golden.run(net, spikes, record=True)


def test_probe_kinds_follow_the_probe_register():
    assert PROBE_KINDS == ("spikes", "v", "u")
    assert probe_kinds(0) == () and probe_kinds(1) == ("spikes",) and probe_kinds(6) == ("v", "u")
    assert probe_kinds(7) == PROBE_KINDS


@pytest.mark.parametrize("probe", [-1, 8, 1.0, True, "all"])
def test_a_bad_probe_value_is_refused(probe):
    with pytest.raises(ValueError, match=r"probe must be a PROBE register value in \[0, 7\]"):
        probe_kinds(probe)


@pytest.mark.parametrize("bus_width", [32, 64])
def test_word_counts(bus_width):
    config, _ = case(bus_width, membranes=True)
    base = output_words_per_timestep(config)
    assert base == output_words_per_timestep(config, 0) == config.readback()[register("WORDS_OUT").offset]
    per32 = bus_width // 32
    spikes = -(-33 // bus_width) + -(-5 // bus_width)
    fields = -(-33 // per32) + -(-5 // per32)
    assert output_words_per_timestep(config, 1) == base + spikes
    assert output_words_per_timestep(config, 2) == output_words_per_timestep(config, 4) == base + fields
    assert output_words_per_timestep(config, 7) == base + spikes + 2 * fields


def test_layout_word_by_word():
    """32-bit bus, no membranes: output spikes, then layer 0 spikes, v, u, then layer 1 spikes, v, u."""
    config, trace = case(32, membranes=False, steps=1)
    words = pack_output(trace.spikes, trace.membranes, config, probe=7, layers=trace.layers)
    z0, v0, u0 = (x[0] for x in (trace.layers[0].z, trace.layers[0].v, trace.layers[0].u))
    z1, v1, u1 = (x[0] for x in (trace.layers[1].z, trace.layers[1].v, trace.layers[1].u))
    want = [*pack_spikes(trace.spikes), *pack_spikes(z0[None]), *(v0 & 0xFFFFFFFF), *(u0 & 0xFFFFFFFF),
            *pack_spikes(z1[None]), *(v1 & 0xFFFFFFFF), *(u1 & 0xFFFFFFFF)]
    assert words.tolist() == [int(w) for w in want]
    assert z0.any() and (v0 < 0).any() and u0.any(), "vacuous: the layout is compared on zeros"


@pytest.mark.parametrize("bus_width", [32, 64])
@pytest.mark.parametrize("membranes", [False, True])
@pytest.mark.parametrize("probe", [0, 1, 2, 3, 4, 5, 6, 7])
def test_round_trips(bus_width, membranes, probe):
    config, trace = case(bus_width, membranes)
    words = pack_output(trace.spikes, trace.membranes, config, probe=probe, layers=trace.layers)
    assert words.size == trace.spikes.shape[0] * output_words_per_timestep(config, probe)
    z, v = unpack_output(words, config, probe=probe)
    assert np.array_equal(z, trace.spikes) and (v is None) == (not membranes)
    if membranes:
        assert np.array_equal(v, trace.membranes)
    layers = unpack_probes(words, config, probe)
    codec = StreamCodec(config, probe)
    from_codec = codec.unpack_probes(words)
    assert codec.words_out == output_words_per_timestep(config, probe)
    assert [np.array_equal(a, b) for a, b in zip(codec.unpack(words), (z, v)) if a is not None] == [True] * (
        1 + membranes)
    kinds = probe_kinds(probe)
    assert (from_codec is None) == (probe == 0)
    for k, (got, want) in enumerate(zip(layers, trace.layers)):
        for name, kind in (("z", "spikes"), ("v", "v"), ("u", "u")):
            value = getattr(got, name)
            if kind in kinds:
                assert np.array_equal(value, getattr(want, name)), f"layer {k} {name}"
                assert np.array_equal(getattr(from_codec[k], name), value)
            else:
                assert value is None
    assert all(layer.z.any() for layer in trace.layers)


def test_pack_output_errors():
    config, trace = case(32, membranes=True)
    with pytest.raises(ValueError, match="probe 1 needs layers= with a LayerStep for each of the 2 layers"):
        pack_output(trace.spikes, trace.membranes, config, probe=1)
    bad = (trace.layers[0], golden.LayerStep(trace.layers[1].z[:, :3], trace.layers[1].v, trace.layers[1].u))
    with pytest.raises(ValueError, match=r"layer 1 spikes has shape \(7, 3\), expected \(7, 5\)"):
        pack_output(trace.spikes, trace.membranes, config, probe=7, layers=bad)
    words = pack_output(trace.spikes, trace.membranes, config, probe=7, layers=trace.layers)
    with pytest.raises(ValueError, match="is not a whole number of"):
        unpack_probes(words[:-1], config, 7)
