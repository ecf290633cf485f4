"""Cycles per timestep of the core: the model of docs/gateware.md ("Throughput") and its measurement.

Model, per timestep in steady state (input offered at full rate, output always taken; the contract's
`spikeloop.config.layer_cycles` and `framing_cycles`):

    layer k:  max(G_k * max(1, Z_k) + 1, S_k)   G_k = ceil(n_out/P) groups, Z_k = input chunks of C holding
                                              a spike, S_k = `state_cycles` (reached by layers of few groups)
                                              (an event-driven layer: Z_k = the most active inputs of one
                                              of its E banks, `rtl.events.event_cycles`)
    core:     max(WORDS_IN + 1, WORDS_OUT + 1, max_k layer k)

The crossbar issues one (group, nonzero chunk) weight row per clock and spends one clock taking
the next timestep; the neuron array, the collectors and the next layers keep pace, and each
layer holds one timestep for the next, so layers overlap and the slowest one (or the stream
framing: a word per clock plus the hand-over) sets the rate. When one stage is the slowest at
every timestep this is exact; when the slowest stage changes from timestep to timestep (sparse
input of varying density), the one-timestep buffers between layers let them overlap partly and
the rate lies between max_k mean_t(stage k) (S_k taken over the mean: it spaces a group's
timesteps, not each timestep) and mean_t max_k(stage k). With input density d
(independent bits), a chunk of c inputs holds a spike with probability 1 - (1-d)^c: E[Z].

`measure` runs the core on Amaranth's simulator (no Verilator build, which takes minutes for a
wide crossbar) and returns the measured cycles per timestep next to the model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeloop import regmap
from spikeloop.config import CoreConfig, LayerConfig, framing_cycles, layer_cycles, state_cycles
from spikeloop.stream import output_words_per_timestep, pack_spikes, words_per_timestep
from spikeloop.windows import neuron_word_index

__all__ = ["chunk_sizes", "crossbar_input", "nonzero_chunks", "early_chunks", "expected_early_chunks",
           "expected_nonzero_chunks", "stage_cycles", "core_cycles",
           "expected_core_cycles", "synapses", "Measurement", "measure"]


def chunk_sizes(layer: LayerConfig) -> list[int]:
    """Crossbar inputs per chunk (the last one may be short; a recurrent layer's previous spikes included)."""
    return [min(layer.chunk, layer.crossbar_inputs - c * layer.chunk) for c in range(layer.n_chunks)]


def crossbar_input(layer: LayerConfig, spikes, previous=None) -> np.ndarray:
    """What the layer's crossbar takes per timestep, bool [T, crossbar_inputs]: `spikes` [T, n_in], and for a
    recurrent layer its own spikes of the previous timestep after them (`previous`, [T, n_out]; None: none)."""
    spikes = np.asarray(spikes, bool)
    if not layer.recurrent:
        return spikes
    prev = np.zeros((spikes.shape[0], layer.n_out), bool) if previous is None else np.asarray(previous, bool)
    if prev.shape != (spikes.shape[0], layer.n_out):
        raise ValueError(f"previous spikes have shape {prev.shape}, expected {(spikes.shape[0], layer.n_out)}")
    return np.concatenate([spikes, prev], axis=1)


def _chunks_with_spikes(spikes: np.ndarray, chunk: int) -> np.ndarray:
    """Per timestep of bool [T, n], the chunks of `chunk` bits (the last one zero-padded) holding a spike."""
    steps, n = spikes.shape
    padded = np.zeros((steps, -(-n // chunk) * chunk), bool)
    padded[:, :n] = spikes
    return padded.reshape(steps, -1, chunk).any(axis=2).sum(axis=1)


def _expected_chunks_with_spikes(p: np.ndarray, chunk: int) -> float:
    """E[`_chunks_with_spikes`] for independent bits firing with probabilities `p` (a multiple of `chunk` long)."""
    return float((1 - np.prod(1 - p.reshape(-1, chunk), axis=1)).sum())


def nonzero_chunks(layer: LayerConfig, spikes, previous=None) -> np.ndarray:
    """Z per timestep, spikes [T, n_in] (a recurrent layer: and its own `previous` spikes, see `crossbar_input`):
    chunks of the layer's crossbar input holding at least one spike; for an event-driven layer the most active
    inputs of one bank (`EventGeometry.items`, as `event_cycles`)."""
    spikes = crossbar_input(layer, spikes, previous)
    if layer.events is not None:
        return np.asarray(layer.weight_window.items(spikes))
    return _chunks_with_spikes(spikes, layer.chunk)


def early_chunks(layer: LayerConfig, spikes) -> np.ndarray | None:
    """A dense recurrent layer's nonzero early chunks per timestep, spikes [T, n_in]: those of its first
    n_in // C chunks (inputs only), which its first group walks before the previous spikes are in (`layer_cycles`'
    `early`); None for other layers."""
    if not layer.late_chunks:
        return None
    early = layer.n_in // layer.chunk
    return _chunks_with_spikes(np.asarray(spikes, bool)[:, : early * layer.chunk], layer.chunk)


def expected_early_chunks(layer: LayerConfig, density) -> float | None:
    """E[`early_chunks`] for independent input bits firing with probability `density` (None for other layers)."""
    if not layer.late_chunks:
        return None
    early = layer.n_in // layer.chunk
    p = np.broadcast_to(np.asarray(density, float), (layer.n_in,))[: early * layer.chunk]
    return _expected_chunks_with_spikes(p, layer.chunk)


def expected_nonzero_chunks(layer: LayerConfig, density, previous=None) -> float:
    """E[Z] for independent input bits that fire with probability `density` (a share, or one per input): for
    a dense layer the sum over chunks of P(some input fires); for an event-driven one E[max over banks of the
    active inputs of the bank] = sum over m >= 1 of P(some bank has m or more). A recurrent layer's own previous
    spikes fire with probability `previous` (a share or one per neuron; None: `density` if a share, else 1)."""
    p = np.zeros(layer.n_chunks * layer.chunk)
    p[: layer.n_in] = np.broadcast_to(np.asarray(density, float), (layer.n_in,))
    if layer.recurrent:
        if previous is None:
            previous = float(density) if np.ndim(density) == 0 else 1.0
        p[layer.n_in : layer.crossbar_inputs] = np.broadcast_to(np.asarray(previous, float), (layer.n_out,))
    if layer.events is None:
        return _expected_chunks_with_spikes(p, layer.chunk)
    rows = p.reshape(layer.n_chunks, layer.chunk)  # row r of bank b is input r*E + b
    pmf = np.zeros((layer.events, layer.n_chunks + 1))  # per bank, P(m of its inputs fire)
    pmf[:, 0] = 1
    for q in rows:
        q = q[:, None]
        pmf[:, 1:] = pmf[:, 1:] * (1 - q) + pmf[:, :-1] * q
        pmf[:, :1] *= 1 - q
    below = np.cumsum(pmf, axis=1)[:, :-1]  # P(bank <= m - 1), m = 1..K
    return float((1 - np.prod(np.minimum(below, 1), axis=0)).sum())


def stage_cycles(config: CoreConfig, z_per_layer, early_per_layer=None) -> np.ndarray:
    """[stages, T]: cycles of the framing and of each layer per timestep, given each layer's Z per timestep (and
    a dense recurrent layer's `early_chunks`; None: its default)."""
    early_per_layer = early_per_layer or [None] * len(config.layers)
    per_layer = [layer_cycles(layer, np.asarray(z), early=e)
                 for layer, z, e in zip(config.layers, z_per_layer, early_per_layer)]
    steps = len(per_layer[0])
    return np.array([np.full(steps, framing_cycles(config)), *per_layer])


def core_cycles(config: CoreConfig, z_per_layer) -> np.ndarray:
    """Cycles per timestep of the core, per timestep: its slowest stage."""
    return stage_cycles(config, z_per_layer).max(axis=0)


def expected_core_cycles(config: CoreConfig, densities) -> float:
    """The model with E[Z] per layer, for input densities per layer (each a share or one per input; a scalar:
    layer 0 only, others dense)."""
    if np.isscalar(densities):
        densities = [float(densities)] + [1.0] * (len(config.layers) - 1)
    z = [expected_nonzero_chunks(layer, d) for layer, d in zip(config.layers, densities)]
    e = [expected_early_chunks(layer, d) for layer, d in zip(config.layers, densities)]
    return float(max(framing_cycles(config), *(layer_cycles(layer, zk, early=ek)
                                               for layer, zk, ek in zip(config.layers, z, e))))


def synapses(config: CoreConfig) -> int:
    """Synapses of the network (a recurrent layer's n_out x n_out included): the synaptic ops of one timestep on
    dense input."""
    return sum(layer.crossbar_inputs * layer.n_out for layer in config.layers)


@dataclass(frozen=True)
class Measurement:
    """One (configuration, input density) point."""

    density: float
    timesteps: int  # measured in steady state
    measured: float  # cycles per timestep, from the spacing of output timesteps
    model: float  # mean over the same timesteps of the slowest stage (an upper bound; exact when one stage leads)
    lower: float  # the slowest stage's mean (a lower bound)
    expected: float  # the model with E[Z] (layer 0 at `density`, deeper layers dense)
    ops_per_cycle: float  # synapses / measured cycles (effective, on sparse input)


def measure(config: CoreConfig, densities=(1.0, 0.2, 0.05, 0.01, 0.0), *, steps: int = 24, seed: int = 0,
            deeper: str = "dense") -> list[Measurement]:
    """Run the core of `config` on Amaranth's simulator at each layer-0 input density.

    Every threshold stays 0 (the memories' reset state) and every bias is set to the top of its
    range (`deeper="dense"`: every neuron fires at every timestep, so layers 1.. see dense input,
    their worst case) or to the bottom (`deeper="empty"`: no neuron fires, layers 1.. see no input).
    Input is offered at full rate and the output always taken; the cycles between the ends of
    consecutive output timesteps are averaged over the last 3/4 of `steps`.
    """
    if deeper not in ("dense", "empty"):
        raise ValueError(f"deeper must be 'dense' or 'empty', not {deeper!r}")
    from amaranth.sim import Simulator

    from .top import Core

    rng = np.random.default_rng(seed)
    dut = Core(config=config)
    W = config.bus_width
    words_in = words_per_timestep(config.n_in, W)
    words_out = output_words_per_timestep(config)
    trains = [rng.random((steps, config.n_in)) < d for d in densities]
    ends: list[list[int]] = []

    async def bench(ctx):
        cycle = 0

        async def tick():
            nonlocal cycle
            await ctx.tick()
            cycle += 1

        for k, layer in enumerate(config.layers):  # biases at the top of the range
            base = regmap.window(config, k, "bias").base
            value = (1 << (layer.v_bits - 1)) - 1 if deeper == "dense" else -(1 << (layer.v_bits - 1))
            for index in neuron_word_index(layer):
                ctx.set(dut.s_axi_awaddr, base + 4 * int(index))
                ctx.set(dut.s_axi_wdata, value & 0xFFFFFFFF)
                ctx.set(dut.s_axi_awvalid, 1)
                ctx.set(dut.s_axi_wvalid, 1)
                ctx.set(dut.s_axi_bready, 1)
                while not ctx.get(dut.s_axi_awready):
                    await tick()
                await tick()
                ctx.set(dut.s_axi_awvalid, 0)
                ctx.set(dut.s_axi_wvalid, 0)
                while not ctx.get(dut.s_axi_bvalid):
                    await tick()
                await tick()
        ctx.set(dut.m_axis_tready, 1)
        for spikes in trains:
            words = pack_spikes(spikes, W)
            sent = got = 0
            done = []
            while len(done) < steps:
                if sent < words.size:
                    ctx.set(dut.s_axis_tdata, int(words[sent]))
                    ctx.set(dut.s_axis_tlast, int(sent == words.size - 1))
                ctx.set(dut.s_axis_tvalid, int(sent < words.size))
                took = sent < words.size and ctx.get(dut.s_axis_tready)
                gave = ctx.get(dut.m_axis_tvalid)
                await tick()
                sent += bool(took)
                if gave:
                    got += 1
                    if got % words_out == 0:
                        done.append(cycle)
            ends.append(done)
        assert words_in > 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    results = []
    first = steps // 4
    for d, spikes, done in zip(densities, trains, ends):
        measured = (done[-1] - done[first - 1]) / (steps - first)
        fired = np.full((steps, config.layers[0].n_out), deeper == "dense")
        fired[0] = False  # a recurrent layer 0's previous spikes: all of them (but at the first timestep) or none
        z = [nonzero_chunks(config.layers[0], spikes, fired)]
        z += [np.full(steps, layer.n_chunks if deeper == "dense" else 0) for layer in config.layers[1:]]
        e = [early_chunks(config.layers[0], spikes)]
        e += [None if not layer.late_chunks else np.full(steps, layer.n_in // layer.chunk if deeper == "dense" else 0)
              for layer in config.layers[1:]]
        stages = stage_cycles(config, z, e)[:, first:]
        # a layer's state_cycles bound the spacing of a group's timesteps, not each timestep: the lower
        # bound takes it over the mean of the crossbar's cycles
        lower = max(float(stages[0].mean()), *(
            max(float(layer_cycles(layer, zk[first:], state=False, early=None if ek is None else ek[first:]).mean()),
                state_cycles(layer))
            for layer, zk, ek in zip(config.layers, z, e)))
        later = [1.0 if deeper == "dense" else 0.0] * (len(config.layers) - 1)
        results.append(Measurement(d, steps - first, measured, float(stages.max(axis=0).mean()),
                                   lower, expected_core_cycles(config, [d, *later]),
                                   synapses(config) / measured))
    return results
