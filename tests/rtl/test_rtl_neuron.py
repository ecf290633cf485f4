"""The neuron array against `spikeloop.golden.neuron_step`, bit for bit.

Synaptic sums are driven directly (any value in [-n_in, n_in]), so small widths reach both
saturation rails often; every corner the docs name is asserted to have occurred.
"""

from __future__ import annotations

import itertools
import random
import zlib

import numpy as np
import pytest
from rtlsim import bus_read, bus_write, get, put, seeded, simulate

from spikeloop import golden
from spikeloop.network import OPTION_DEFAULTS, Layer, signed_range
from spikeloop.regmap import layer_register
from spikeloop.rtl.neuron import NeuronArray
from spikeloop.windows import layer_control_values, neuron_word_index, pack_neuron_values

COMPARED = {"neuron_timesteps": 0}


def set_control(ctx, ctrl, layer: Layer) -> None:
    """Drive the run-time values of `layer` (every MODE field, lam, alpha) as the register file would."""
    values = layer_control_values(layer)
    for name, value in layer_register("MODE").decode(values["MODE"]).items():
        ctx.set(getattr(ctrl, name), value)
    ctx.set(ctrl.lam, values["LAM"])
    ctx.set(ctrl.alpha, values["ALPHA"])


def run_neurons(layer: Layer, syn: np.ndarray, *, lanes: int, decay: str, seed: int, stall: float = 0.0,
                clear_at: int | None = None, options: bool | None = None):
    """Drive sums `syn` [T, n_out] through a NeuronArray set up as `layer` (built with contract v2's options
    when `options`, by default when the layer uses them).

    Returns (z [T, n_out], v' [T, n_out], v and u read back at the end [n_out] each).
    With `clear_at`, the state is cleared before timestep `clear_at`.
    """
    dut = NeuronArray(n_in=layer.n_in, n_out=layer.n_out, lanes=lanes, v_bits=layer.v_bits,
                      u_bits=layer.u_bits, frac_bits=layer.frac_bits, decay=decay,
                      options=not layer.is_v1 if options is None else options)
    cfg = dut.config
    steps = syn.shape[0]
    rng = random.Random(seed)
    z = np.zeros(syn.shape, bool)
    v = np.zeros(syn.shape, np.int64)
    final = {}
    flags = {"loaded": False, "sent": 0, "received": 0}

    async def source(ctx):
        ctrl = dut.ctrl
        set_control(ctx, ctrl, layer)
        for sel, values in (("theta", layer.theta), ("bias", layer.bias)):
            image = pack_neuron_values(values, cfg)
            for addr in map(int, neuron_word_index(cfg)):
                assert not await bus_write(ctx, dut.bus, sel, addr, int(image[addr]))
        flags["loaded"] = True
        for t in range(steps):
            if t == clear_at:
                while flags["received"] < t:  # clear between timesteps
                    await ctx.tick()
                ctx.set(ctrl.clear, 1)
                await ctx.tick()
                ctx.set(ctrl.clear, 0)
            for g in range(cfg.n_groups):
                lanes_syn = [int(syn[t, j]) if (j := g * lanes + p) < layer.n_out else 0 for p in range(lanes)]
                payload = {"syn": lanes_syn, "group": g, "end": int(g == cfg.n_groups - 1), "last": 0}
                await put(ctx, dut.i_stream, payload, rng=rng, stall=stall)

    async def sink(ctx):
        for t in range(steps):
            for g in range(cfg.n_groups):
                p = await get(ctx, dut.o_stream, rng=rng, stall=stall)
                assert p.group == g and p.end == (g == cfg.n_groups - 1)
                for lane in range(lanes):
                    j = g * lanes + lane
                    if j < layer.n_out:
                        z[t, j] = (p.z >> lane) & 1
                        v[t, j] = p.v[lane]
                    else:
                        assert not (p.z >> lane) & 1, "a padding lane spiked"
            flags["received"] = t + 1
        index = neuron_word_index(cfg)
        for sel in ("v", "u"):
            words = [await bus_read(ctx, dut.bus, sel, int(a)) for a in index]
            final[sel] = np.array(words, np.uint32).astype(np.int32).astype(np.int64)

    simulate(dut, source, sink, max_cycles=50 * steps * cfg.n_groups + 200 * layer.n_out + 1000)
    return z, v, final["v"], final["u"]


def golden_neurons(layer: Layer, syn: np.ndarray, clear_at: int | None = None):
    state = golden.LayerState.zeros(layer)
    z, v, u = [], [], []
    for t in range(syn.shape[0]):
        if t == clear_at:
            state = golden.LayerState.zeros(layer)
        out, state = golden.neuron_step(golden.shifted_input(layer, syn[t][None].astype(np.int64)), state, layer)
        z.append(out.z[0])
        v.append(out.v[0])
        u.append(out.u[0])
    return np.array(z), np.array(v), np.array(u), state


def make_layer(neuron, reset, decay, seed, *, n_in=48, n_out=11, v_bits=6, u_bits=6, frac_bits=4, **options):
    rng = np.random.default_rng(seed)
    v_hi = signed_range(v_bits)[1]
    if decay == "shift":
        lam = int(rng.choice([0, 1 << frac_bits, 1 << (frac_bits - 1), 1 << (frac_bits - 3)]))
        alpha = int(rng.choice([0, 1 << (frac_bits - 1), 1 << (frac_bits - 2)])) if neuron == "cuba" else 0
    else:
        lam = int(rng.integers(0, (1 << frac_bits) + 1))
        alpha = int(rng.integers(0, (1 << frac_bits) + 1)) if neuron == "cuba" else 0
    return Layer(
        rng.choice([-1, 1], size=(n_out, n_in)),
        theta=rng.integers(1, v_hi // 2, size=n_out),
        bias=rng.integers(-4, 5, size=n_out),
        neuron=neuron, reset=reset, v_bits=v_bits, u_bits=u_bits, frac_bits=frac_bits, lam=lam, alpha=alpha,
        **options,
    )


def random_syn(rng, steps, n_in, n_out):
    """Sums of mixed scale: small ones to cross thresholds exactly, big ones to hit both rails."""
    scale = rng.choice([2, 6, n_in], size=(steps, 1))
    return np.clip(np.round(rng.normal(0.3, 1, size=(steps, n_out)) * scale), -n_in, n_in).astype(np.int64)


COMBOS = list(itertools.product(("lif", "cuba"), ("subtract", "zero", "none"), ("shift", "multiply")))


@pytest.mark.parametrize("neuron,reset,decay", COMBOS)
def test_neuron_array_matches_golden(neuron, reset, decay):
    seed = zlib.crc32(f"{neuron}/{reset}/{decay}".encode()) % 100_000
    layer = make_layer(neuron, reset, decay, seed)
    rng = np.random.default_rng(seed)
    steps = 60
    syn = random_syn(rng, steps, layer.n_in, layer.n_out)
    stall = 0.25 if seed % 2 else 0.0
    z, v, v_end, u_end = run_neurons(layer, syn, lanes=3, decay=decay, seed=seed, stall=stall)
    gz, gv, gu, state = golden_neurons(layer, syn)
    where = f"{neuron}/{reset}/{decay} lam={layer.lam} alpha={layer.alpha} {seeded(seed)}"
    assert np.array_equal(v, gv), f"membranes differ: {where}, first at {np.argwhere(v != gv)[0]}"
    assert np.array_equal(z, gz), f"spikes differ: {where}"
    assert np.array_equal(v_end, state.v[0]), f"final v differs: {where}"
    assert np.array_equal(u_end, state.u[0]), f"final u differs: {where}"
    COMPARED["neuron_timesteps"] += z.size
    # Not vacuous: the corners happened.
    lo, hi = signed_range(layer.v_bits)
    assert gz.any() and not gz.all(), f"spikes must vary: {where}"
    assert (gv == hi).any() and (gv == lo).any(), f"membrane saturation at both rails not reached: {where}"
    assert (gv == layer.theta).any(), f"v' == theta never happened: {where}"
    if neuron == "cuba":
        ulo, uhi = signed_range(layer.u_bits)
        assert (gu == uhi).any() and (gu == ulo).any(), f"current saturation not reached: {where}"


#: Contract v2's options on the neuron array: Loihi's (toward zero, input shift, bias into v, wrap, symmetric),
#: snnTorch's reset order with rounding to nearest, and mixes that put every option against the others.
OPTION_CASES = {
    "loihi": ("cuba", "zero", "multiply", dict(decay_round="zero", input_shift=3, bias_to="membrane",
                                                u_overflow="wrap", v_range="symmetric")),
    "nearest-subtract-next": ("lif", "subtract_next", "shift", dict(decay_round="nearest")),
    "cuba-nearest-next": ("cuba", "subtract_next", "multiply", dict(decay_round="nearest", input_shift=1,
                                                                     u_overflow="wrap")),
    "zero-shift-membrane": ("lif", "subtract", "shift", dict(decay_round="zero", input_shift=2, bias_to="membrane",
                                                            v_range="symmetric")),
    "cuba-zero-shift": ("cuba", "none", "shift", dict(decay_round="zero", v_range="symmetric", input_shift=16)),
}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_neuron_array_options_match_golden(case):
    """Each option changes what the golden model computes on this input (checked against the layer with
    that option at its default), and the neuron array follows it bit for bit."""
    neuron, reset, decay, options = OPTION_CASES[case]
    seed = zlib.crc32(case.encode()) % 100_000
    wrap = options.get("u_overflow") == "wrap"  # a narrower current, to wrap often
    layer = make_layer(neuron, reset, decay, seed, v_bits=7, u_bits=7 if wrap else 9, **options)
    if layer.lam == 0:
        layer = layer.replace(lam=1 << (layer.frac_bits - 2))
    if neuron == "cuba" and layer.alpha == 0:
        layer = layer.replace(alpha=1 << (layer.frac_bits - 1))
    rng = np.random.default_rng(seed)
    syn = random_syn(rng, 80, layer.n_in, layer.n_out)
    if layer.input_shift and not wrap:  # keep most shifted sums inside the membrane's range, some beyond it
        syn = np.clip(syn >> layer.input_shift, -layer.n_in, layer.n_in) + rng.integers(-1, 2, syn.shape)
    z, v, v_end, u_end = run_neurons(layer, syn, lanes=4, decay=decay, seed=seed, stall=0.2)
    gz, gv, gu, state = golden_neurons(layer, syn)
    where = f"{case}: {layer.params()} {seeded(seed)}"
    assert np.array_equal(v, gv), f"membranes differ: {where}, first at {np.argwhere(v != gv)[0]}"
    assert np.array_equal(z, gz), f"spikes differ: {where}"
    assert np.array_equal(v_end, state.v[0]) and np.array_equal(u_end, state.u[0]), f"final state differs: {where}"
    assert gz.any() and not gz.all(), f"spikes must vary: {where}"
    changes = {**options, "reset": reset} if reset == "subtract_next" else options
    for name in changes:
        plain = layer.replace(**{name: "subtract" if name == "reset" else OPTION_DEFAULTS[name]})
        pz, pv, pu, _ = golden_neurons(plain, syn)
        assert not (np.array_equal(pv, gv) and np.array_equal(pu, gu)), f"{name} changed nothing: {where}"
    COMPARED["neuron_timesteps"] += z.size


@pytest.mark.parametrize("case", ["loihi", "cuba-nearest-next"])
def test_a_neuron_array_without_options_ties_them_to_v1(case):
    """Built without options, the array computes v1 whatever MODE's option fields hold (the register file
    refuses other values; this checks the gateware ties them): the options at their defaults, and a reset
    code of subtract_next keeps v' as `none` does."""
    neuron, reset, decay, options = OPTION_CASES[case]
    seed = zlib.crc32(case.encode()) % 100_000
    layer = make_layer(neuron, reset, decay, seed, v_bits=7, u_bits=7, **options)
    rng = np.random.default_rng(seed)
    syn = random_syn(rng, 40, layer.n_in, layer.n_out)
    z, v, _, _ = run_neurons(layer, syn, lanes=4, decay=decay, seed=seed, options=False)
    v1 = layer.replace(**OPTION_DEFAULTS, reset="none" if reset == "subtract_next" else reset)
    gz, gv, _, _ = golden_neurons(v1, syn)
    where = f"{case}: {seeded(seed)}"
    assert np.array_equal(v, gv) and np.array_equal(z, gz), f"not the v1 neurons: {where}"
    assert gz.any(), f"vacuous, no spikes: {where}"
    _, v2, _, _ = golden_neurons(layer, syn)
    assert not np.array_equal(v2, gv), f"the options change nothing here: {where}"


@pytest.mark.parametrize("lanes", [1, 4, 11])
def test_neuron_array_lanes_and_clear(lanes):
    """Any lane count, with a state clear in the middle of the run."""
    seed = 1000 + lanes
    layer = make_layer("cuba", "subtract", "shift", seed, v_bits=9, u_bits=8)
    rng = np.random.default_rng(seed)
    syn = random_syn(rng, 30, layer.n_in, layer.n_out)
    z, v, v_end, u_end = run_neurons(layer, syn, lanes=lanes, decay="shift", seed=seed, clear_at=17)
    gz, gv, _, state = golden_neurons(layer, syn, clear_at=17)
    assert np.array_equal(v, gv) and np.array_equal(z, gz), f"lanes={lanes} {seeded(seed)}"
    assert np.array_equal(v_end, state.v[0]) and np.array_equal(u_end, state.u[0])
    assert gz[17:].any() and (gv[16] != 0).any()
    COMPARED["neuron_timesteps"] += z.size


def test_neuron_array_extreme_widths():
    """v_bits = u_bits = 32 with frac_bits = 16 and full decay, and the narrowest widths."""
    for v_bits, u_bits, frac_bits, lam in ((32, 32, 16, 1 << 16), (2, 2, 0, 1), (2, 3, 1, 1)):
        layer = Layer(np.ones((5, 3), np.int8), theta=1, bias=[-2, -1, 0, 1, 1], neuron="cuba", reset="zero",
                      v_bits=v_bits, u_bits=u_bits, frac_bits=frac_bits, lam=lam, alpha=lam)
        rng = np.random.default_rng(v_bits)
        syn = rng.integers(-3, 4, size=(12, 5))
        for decay in ("shift", "multiply"):
            z, v, _, _ = run_neurons(layer, syn, lanes=2, decay=decay, seed=v_bits)
            gz, gv, _, _ = golden_neurons(layer, syn)
            assert np.array_equal(v, gv) and np.array_equal(z, gz), (v_bits, u_bits, frac_bits, decay)


def test_neuron_array_refuses_out_of_range_parameters():
    dut = NeuronArray(n_in=8, n_out=4, lanes=2, v_bits=6)

    async def tb(ctx):
        assert await bus_write(ctx, dut.bus, "theta", 0, 0)  # theta >= 1
        assert await bus_write(ctx, dut.bus, "theta", 0, 32)  # > 2^5 - 1
        assert await bus_write(ctx, dut.bus, "bias", 1, -33)
        assert await bus_write(ctx, dut.bus, "v", 0, 1)  # state is read-only
        assert not await bus_write(ctx, dut.bus, "theta", 1, 31)
        assert not await bus_write(ctx, dut.bus, "bias", 2, -32 & 0xFFFFFFFF)  # lane_stride 2: group 1 lane 0
        assert await bus_read(ctx, dut.bus, "theta", 0) == 0
        assert await bus_read(ctx, dut.bus, "theta", 1) == 31
        assert await bus_read(ctx, dut.bus, "bias", 2) == (-32 & 0xFFFFFFFF)
        assert await bus_read(ctx, dut.bus, "bias", 1) == 0

    simulate(dut, tb, max_cycles=300)


@pytest.mark.parametrize("kwargs,exc,error", [
    ({"n_in": 8, "n_out": 4, "lanes": 1, "v_bits": 1}, ValueError, "v_bits = 1 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "frac_bits": 17}, ValueError, "frac_bits = 17 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "decay": "mul"}, ValueError,
     "decay must be one of 'shift', 'multiply', not 'mul'"),
    ({"n_in": 8, "n_out": 4, "lanes": True}, TypeError, "lanes must be an integer, not True"),
])
def test_neuron_array_refuses_bad_parameters(kwargs, exc, error):
    with pytest.raises(exc, match=error):
        NeuronArray(**kwargs)


def test_neuron_array_bus_reads_are_served_while_the_output_is_blocked():
    """The output is not taken: the pipeline fills and holds (a group on the read ports, which every
    bus read takes and the array reads again), bus reads are answered, and the groups come out right."""
    layer = make_layer("cuba", "zero", "shift", 5, n_out=24)
    rng = np.random.default_rng(5)
    syn = random_syn(rng, 4, layer.n_in, layer.n_out)
    dut = NeuronArray(n_in=layer.n_in, n_out=layer.n_out, lanes=2, v_bits=layer.v_bits, u_bits=layer.u_bits,
                      frac_bits=layer.frac_bits)
    cfg = dut.config
    got = []
    state = {}

    async def host(ctx):
        set_control(ctx, dut.ctrl, layer)
        for sel, values in (("theta", layer.theta), ("bias", layer.bias)):
            image = pack_neuron_values(values, cfg)
            for addr in map(int, neuron_word_index(cfg)):
                await bus_write(ctx, dut.bus, sel, addr, int(image[addr]))
        sent = 0
        for _ in range(40):  # offer the groups until the array stops taking them
            if sent < cfg.n_groups:
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.p.syn, [int(syn[0, sent * 2 + p]) for p in range(2)])
                ctx.set(dut.i_stream.p.group, sent)
                ctx.set(dut.i_stream.p.end, int(sent == cfg.n_groups - 1))
            took = sent < cfg.n_groups and ctx.get(dut.i_stream.ready)
            await ctx.tick()
            sent += bool(took)
        ctx.set(dut.i_stream.valid, 0)
        assert 1 < sent < cfg.n_groups, f"expected a pipeline that fills and stalls, took {sent} groups"
        assert ctx.get(dut.o_stream.valid)
        theta = pack_neuron_values(layer.theta, cfg)
        for addr in map(int, neuron_word_index(cfg)):  # stalled: output full, the stages behind it waiting
            assert await bus_read(ctx, dut.bus, "theta", addr, timeout=5) == theta[addr]
        state["sent"] = sent
        while len(got) < sent:
            await ctx.tick()
        for g in range(sent, cfg.n_groups):
            await put(ctx, dut.i_stream, {"syn": [int(syn[0, g * 2 + p]) for p in range(2)], "group": g,
                                          "end": int(g == cfg.n_groups - 1)})

    async def sink(ctx):
        while "sent" not in state:
            await ctx.tick()
        for g in range(cfg.n_groups):
            p = await get(ctx, dut.o_stream)
            assert p.group == g
            got.append([p.v[lane] for lane in range(2)])

    simulate(dut, host, sink, max_cycles=3000)
    _, gv, _, _ = golden_neurons(layer, syn[:1])
    assert np.array_equal(np.array(got).reshape(-1), gv[0])
