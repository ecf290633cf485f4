"""The probes on Amaranth's simulator: a core built with probes streams every layer's spikes, v' and u
after the output as PROBE selects, word for word equal to `stream.pack_output(..., probe=, layers=)`
of `golden.run(record=True)`; while probing, no timestep starts before the last one has left, and
`busy` has no gap from a timestep's first input word to its last output word.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from rtlsim import seeded, simulate
from test_rtl_core import axil_write, read_status, send_words, transfer
from test_rtl_network import densities

from spikeloop import golden, regmap
from spikeloop.config import CoreConfig
from spikeloop.network import Network, random_network
from spikeloop.rtl.framing import Framer
from spikeloop.rtl.layer import Layer
from spikeloop.rtl.network import Network as NetworkRtl
from spikeloop.rtl.neuron import NeuronArray
from spikeloop.rtl.top import Core
from spikeloop.stream import output_words_per_timestep, pack_output, words_per_timestep
from spikeloop.windows import load_writes

PROBE = regmap.register("PROBE")


#: Contract v2's options for the three layers of `probe_case(..., v2=True)`: the lif layer's current a_u is
#: (syn << 16) + bias, wider than any v or u of the core, streamed whole by the probes.
V2_OPTIONS = ({"decay_round": "zero", "u_overflow": "wrap"},
              {"decay_round": "nearest", "input_shift": 16, "bias_to": "membrane"},
              {"v_range": "symmetric", "input_shift": 1})


def probe_case(seed: int, *, bus_width: int = 32, membranes: bool = True, v2: bool = False, events=None,
               recurrent=False):
    """A cuba layer, then a lif layer, then a cuba layer, on a core built with probes (with `v2`, with
    `V2_OPTIONS` and the last layer's reset subtract_next; `events`: per layer, the event-driven crossbar's E;
    `recurrent`: a bool or one per layer)."""
    base = random_network((26, 11, 7, 5), seed=seed, v_bits=10, u_bits=9, frac_bits=5, neuron="cuba",
                          recurrent=recurrent)
    kinds = [("cuba", "subtract", 8, 16), ("lif", "zero", 2, 0), ("cuba", "subtract_next" if v2 else "none", 32, 8)]
    layers = [layer.replace(neuron=n, reset=r, lam=lam, alpha=alpha, **(options if v2 else {}))
              for layer, (n, r, lam, alpha), options in zip(base.layers, kinds, V2_OPTIONS)]
    network = Network(tuple(layers))
    chunk = [9, 4, 7] if events is None else [c if e is None else None for c, e in zip([9, 4, 7], events)]
    config = CoreConfig.for_network(network, lanes=[3, 7, 2], chunk=chunk, membranes=membranes,
                                    bus_width=bus_width, probes=True, events=events)
    return network, config


def _members(component) -> set[str]:
    Fragment.get(component, None)  # elaborated: it is used
    return set(component.signature.members)


def test_the_probes_flag_must_be_a_bool():
    with pytest.raises(TypeError, match="probes must be a bool, not 1"):
        NeuronArray(n_in=8, n_out=4, lanes=2, probes=1)
    with pytest.raises(TypeError, match="probes must be a bool, not 'yes'"):
        Layer(config=CoreConfig.build((8, 4), lanes=2, chunk=8).layers[0], probes="yes")


def test_probes_are_not_built_without_the_flag():
    config = CoreConfig.build((20, 8, 4), lanes=2, chunk=10)
    assert "probe" not in _members(NetworkRtl(config=config))
    assert not {"probe", "layers"} & _members(Framer(config=config))
    assert "probe" not in _members(Layer(config=config.layers[0]))
    built = CoreConfig.build((20, 8, 4), lanes=2, chunk=10, probes=True)
    assert "probe" in _members(NetworkRtl(config=built))
    assert {"probe", "layers"} <= _members(Framer(config=built))
    assert "probe" in _members(Layer(config=built.layers[0], probes=True))


@pytest.mark.parametrize("bus_width,v2,events,recurrent", [
    (32, False, None, False), (64, False, None, False), (32, True, None, False), (32, False, [5, None, 3], False),
    (32, False, [5, None, 3], (True, False, True)),  # recurrent layers, event-driven and dense
])
def test_core_streams_probes_bit_exact_and_one_timestep_at_a_time(bus_width, v2, events, recurrent):
    seed = 5 + bus_width + v2 + (0 if events is None else 50) + (0 if recurrent is False else 100)
    network, config = probe_case(seed, bus_width=bus_width, membranes=bus_width == 32, v2=v2, events=events,
                                 recurrent=recurrent)
    assert [layer.recurrent for layer in config.layers] == list(recurrent or (False,) * 3)
    assert [layer.events for layer in config.layers] == (events or [None] * 3)
    rng = np.random.default_rng(seed)
    # three transfers: PROBE all, then spikes only, then off (layers overlap again)
    plan = [(PROBE.encode(spikes=1, v=1, u=1), densities(rng, 14, network.n_in)),
            (PROBE.encode(spikes=1), densities(rng, 9, network.n_in)),
            (0, densities(rng, 9, network.n_in))]
    trace = golden.run(network, np.concatenate([s for _, s in plan]), record=True)
    assert all(layer.z.any() for layer in trace.layers), seeded(seed)
    if v2:  # the wide current reaches the stream
        assert (np.abs(trace.layers[1].u) > 1 << 16).any(), seeded(seed)
    want, ends, t = [], [], 0
    for probe, spikes in plan:
        steps = slice(t, t + spikes.shape[0])
        layers = tuple(golden.LayerStep(x.z[steps], x.v[steps], x.u[steps]) for x in trace.layers)
        want.append(pack_output(trace.spikes[steps], trace.membranes[steps], config, probe=probe, layers=layers))
        ends.append(sum(w.size for w in want) - 1)
        t += spikes.shape[0]
    want = np.concatenate(want)
    prng = random.Random(seed)
    dut = Core(config=config)
    busy = dut._events["BUSY_CYCLES"]
    words_in = words_per_timestep(config.n_in, bus_width)
    got = {"words": [], "lasts": []}
    watch = {"inflight": 0, "max": 0, "gaps": 0, "probing": False}

    async def host(ctx):
        for offset, value in load_writes(config, network, skip_zero=True):
            await axil_write(ctx, dut, offset, value)
        for i, (probe, spikes) in enumerate(plan):
            while i and len(got["words"]) <= ends[i - 1]:
                await ctx.tick()  # PROBE is written while idle: after the previous transfer's last word
            await axil_write(ctx, dut, PROBE.offset, probe)
            watch["probing"] = bool(probe)
            await send_words(ctx, dut, *transfer(config, spikes), rng=prng, stall=0.3)

    async def dma_out(ctx):
        while len(got["words"]) < want.size:
            ready = prng.random() >= 0.3
            ctx.set(dut.m_axis_tready, int(ready))
            await ctx.tick()
        ctx.set(dut.m_axis_tready, 0)

    async def monitor(ctx):
        """Every cycle: count the input words taken and the output words sent; a timestep is in
        flight from its first word in to its last word out."""
        taken = 0
        per_out = {probe: output_words_per_timestep(config, probe) for probe, _ in plan}
        out_in_step = 0
        async for _, _, iv, ir, ov, orr, data, last, b in ctx.tick().sample(
                dut.s_axis_tvalid, dut.s_axis_tready, dut.m_axis_tvalid, dut.m_axis_tready,
                dut.m_axis_tdata, dut.m_axis_tlast, busy):
            if watch["probing"] and watch["inflight"] and not b:
                watch["gaps"] += 1
            if iv and ir:
                if taken % words_in == 0:
                    watch["inflight"] += 1
                taken += 1
            if ov and orr:
                got["words"].append(data)
                got["lasts"].append(last)
                out_in_step += 1
                probe = next(p for (p, _), end in zip(plan, ends) if len(got["words"]) - 1 <= end)
                if out_in_step == per_out[probe]:
                    out_in_step = 0
                    watch["inflight"] -= 1
            if watch["probing"]:
                watch["max"] = max(watch["max"], watch["inflight"])

    simulate(dut, host, dma_out, max_cycles=120_000, background=[monitor])
    words = np.array(got["words"], dtype=want.dtype)
    where = seeded(seed)
    mismatch = np.flatnonzero(words != want)
    assert words.size == want.size and mismatch.size == 0, f"output word {mismatch[:1]} differs {where}"
    assert np.flatnonzero(got["lasts"]).tolist() == ends, "TLAST must close each transfer"
    assert watch["max"] == 1, f"{watch['max']} timesteps were in flight at once while probing {where}"
    assert watch["gaps"] == 0, f"busy dropped {watch['gaps']} times while a probed timestep was in flight {where}"


def test_probe_register_refused_without_probes():
    network = random_network((12, 6), seed=2, v_bits=8, frac_bits=4)
    config = CoreConfig.for_network(network, lanes=2, chunk=6)
    dut = Core(config=config)
    result = {}

    async def host(ctx):
        await axil_write(ctx, dut, PROBE.offset, PROBE.encode(spikes=1))
        result["status"] = await read_status(ctx, dut)

    simulate(dut, host, max_cycles=2_000)
    assert result["status"]["err_param"] == 1

