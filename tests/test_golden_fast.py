"""The fast golden paths equal the plain reference, bit for bit.

Reference: `spikeloop.golden.network_step` stepped by hand and `run(engine="reference")`.
Checked against it: `run` with the native kernel and with in-place numpy, `Stepper` (native
and numpy), and `spikeloop.quant.golden.GoldenModel.run` on every engine. Random networks
cover lif/cuba, every reset, saturation of u and v, decays 0 / 2^F / powers of two / others,
F = 0..16, widths 2..32, batch 1 and > 1, unbatched input; the "v2" cases add every value of
contract v2's options (`OPTION_DEFAULTS`), and a test checks that each value occurs and changes
some result. Every random case comes from a seeded generator and every failure message starts
with the seed that reproduces it.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.network import (
    BIAS_TOS,
    INPUT_SHIFT_RANGE,
    NEURONS,
    OPTION_DEFAULTS,
    OVERFLOWS,
    RESETS,
    ROUNDINGS,
    V_RANGES,
    Network,
    random_network,
    signed_range,
)
from spikeloop.spikes import SpikeError

N_CASES = 48
#: The values each contract v2 option takes in the "v2" cases.
V2_CHOICES = {"decay_round": ROUNDINGS, "input_shift": (0, 1, 6, INPUT_SHIFT_RANGE[1]), "bias_to": BIAS_TOS,
              "u_overflow": OVERFLOWS, "v_range": V_RANGES}
assert set(V2_CHOICES) == set(OPTION_DEFAULTS)
#: Cases: (seed, v2), the v1 ones with contract v1's options, the v2 ones with random options.
CASES = [pytest.param((seed, False), id=str(seed)) for seed in range(N_CASES)] + [
    pytest.param((seed, True), id=f"v2-{seed}") for seed in range(N_CASES)
]


def _native() -> bool:
    return golden.native_available()


needs_native = pytest.mark.skipif(not _native(), reason="no C compiler: the native kernel is unavailable")
ENGINES = ["numpy", pytest.param("native", marks=needs_native)]


def _decay(rng, frac_bits: int) -> int:
    full = 1 << frac_bits
    kind = rng.integers(5)
    if kind == 0:
        return 0
    if kind == 1:
        return full
    if kind == 2:
        return 1 << int(rng.integers(0, frac_bits + 1))
    return int(rng.integers(0, full + 1))


def random_case(seed: int, v2: bool = False):
    """A random network, input spikes [B, T, n_in] and a description, all from `seed` (and, with
    `v2`, random values of contract v2's options per layer, from another generator)."""
    rng = np.random.default_rng(seed)
    rng_v2 = np.random.default_rng([seed, 2])
    n_layers = int(rng.integers(1, 4))
    sizes = [int(rng.choice([1, 3, 8, 13, 64, 65, 100, 130, 200])) for _ in range(n_layers + 1)]
    specs = []
    for k in range(n_layers):
        n_in, n_out = sizes[k], sizes[k + 1]
        frac_bits = int(rng.integers(0, 17))
        neuron = str(rng.choice(["lif", "cuba"]))
        v_bits = int(rng.choice([2, 3, 4, 6, 8, 12, 16, 24, 32]))
        u_bits = int(rng.choice([2, 3, 4, 6, 8, 12, 16, 24, 32]))
        v_lo, v_hi = signed_range(v_bits)
        th_hi = int(min(v_hi, rng.choice([1, 2, int(np.sqrt(n_in)) + 1, v_hi])))
        if rng.random() < 0.5:
            bias = rng.integers(max(v_lo, -2), min(v_hi, 2) + 1, size=n_out)
        else:
            bias = rng.integers(v_lo, v_hi + 1, size=n_out)
        specs.append(dict(
            weights=rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in)),
            theta=rng.integers(1, th_hi + 1, size=n_out),
            bias=bias,
            neuron=neuron,
            reset=str(rng.choice(RESETS)),
            v_bits=v_bits,
            u_bits=u_bits,
            frac_bits=frac_bits,
            lam=_decay(rng, frac_bits),
            alpha=_decay(rng, frac_bits) if neuron == "cuba" else 0,
            **({key: values[int(rng_v2.integers(len(values)))] for key, values in V2_CHOICES.items()} if v2 else {}),
        ))
    network = Network.build(specs)
    batch = int(rng.choice([1, 1, 2, 5]))
    steps = int(rng.integers(1, 25))
    density = float(rng.choice([0.0, 0.05, 0.2, 0.5, 0.9, 1.0]))
    spikes = rng.random((batch, steps, sizes[0])) < density
    what = (f"seed={seed}{' v2' if v2 else ''}: sizes={sizes} batch={batch} steps={steps} density={density} "
            "layers=" + "; ".join(f"{s['neuron']}/{s['reset']} v{s['v_bits']} u{s['u_bits']} F{s['frac_bits']} "
                                  f"lam={s['lam']} alpha={s['alpha']} {network.layers[k].options()}"
                                  for k, s in enumerate(specs)))
    return network, spikes, what


def reference_steps(network, spikes, states=None):
    """network_step by hand: per layer (z, v', u) as [B, T, n_out] arrays, and the final states."""
    batch, steps = spikes.shape[:2]
    states = states if states is not None else golden.initial_state(network, batch)
    per_step = []
    for t in range(steps):
        outs, states = golden.network_step(network, spikes[:, t], states)
        per_step.append(outs)
    layers = [
        tuple(np.stack([getattr(o[k], f) for o in per_step], 1) for f in "zvu")
        for k in range(len(network.layers))
    ]
    return layers, states


def assert_same(a, b, what: str, name: str = "") -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: {name} shape {a.shape} != {b.shape}"
    assert a.dtype == b.dtype, f"{what}: {name} dtype {a.dtype} != {b.dtype}"
    if not np.array_equal(a, b):
        idx = tuple(int(i) for i in np.argwhere(a != b)[0])
        raise AssertionError(f"{what}: {name} differs first at {list(idx)}: {a[idx]} != {b[idx]}")


def assert_trace_equal(trace, ref, what: str) -> None:
    assert_same(trace.spikes, ref.spikes, what, "spikes")
    assert_same(trace.membranes, ref.membranes, what, "membranes")
    for k, (s, r) in enumerate(zip(trace.states, ref.states)):
        assert_same(s.v, r.v, what, f"states[{k}].v")
        assert_same(s.u, r.u, what, f"states[{k}].u")
    assert (trace.layers is None) == (ref.layers is None), what
    if ref.layers is not None:
        for k, (s, r) in enumerate(zip(trace.layers, ref.layers)):
            for f in "zvu":
                assert_same(getattr(s, f), getattr(r, f), what, f"layers[{k}].{f}")


# ------------------------------------------------------------------------------------------------
# golden.run


@pytest.mark.parametrize("case", CASES)
def test_reference_run_matches_network_step(case):
    network, spikes, what = random_case(*case)
    layers, finals = reference_steps(network, spikes)
    trace = golden.run(network, spikes, record=True, engine="reference")
    for k, (z, v, u) in enumerate(layers):
        assert_same(trace.layers[k].z, z, what, f"layer {k} z")
        assert_same(trace.layers[k].v, v, what, f"layer {k} v")
        assert_same(trace.layers[k].u, u, what, f"layer {k} u")
    for k, st in enumerate(finals):
        assert_same(trace.states[k].v, st.v, what, f"state {k} v")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES)
def test_run_engines_equal_reference(case, engine):
    network, spikes, what = random_case(*case)
    what = f"{what} engine={engine}"
    for record in (False, True):
        ref = golden.run(network, spikes, record=record, engine="reference")
        assert_trace_equal(golden.run(network, spikes, record=record, engine=engine), ref, what)
    # unbatched input, and continuing from states
    ref = golden.run(network, spikes[0], record=True, engine="reference")
    assert_trace_equal(golden.run(network, spikes[0], record=True, engine=engine), ref, what + " unbatched")
    half = spikes.shape[1] // 2
    if half:
        first = golden.run(network, spikes[:, :half], engine=engine)
        rest = golden.run(network, spikes[:, half:], states=first.states, engine=engine)
        full = golden.run(network, spikes, engine="reference")
        assert_same(rest.membranes, full.membranes[:, half:], what, "continued membranes")
        assert_same(rest.spikes, full.spikes[:, half:], what, "continued spikes")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("v2", [False, True])
def test_run_does_not_modify_states(engine, v2):
    network, spikes, what = random_case(7, v2)
    states = golden.run(network, spikes, engine="reference").states
    before = [(s.v.copy(), s.u.copy()) for s in states]
    golden.run(network, spikes, states=states, engine=engine)
    for (v, u), s in zip(before, states):
        assert_same(s.v, v, what, "v")
        assert_same(s.u, u, what, "u")


def test_run_out_of_range_states_take_the_reference_path():
    network = random_network((20, 5), seed=3, v_bits=8, lam=3)
    spikes = np.random.default_rng(3).random((2, 6, 20)) < 0.3
    states = tuple(golden.LayerState(np.full((2, 5), 1000, np.int64), np.zeros((2, 5), np.int64))
                   for _ in network.layers)
    ref = golden.run(network, spikes, states=states, engine="reference")
    assert_trace_equal(golden.run(network, spikes, states=states), ref, "out-of-range states")
    with pytest.raises(ValueError, match="native"):
        golden.run(network, spikes, states=states, engine="native")


def test_run_refuses_unknown_engine():
    network = random_network((4, 2), seed=0)
    with pytest.raises(ValueError, match="engine"):
        golden.run(network, np.zeros((1, 4), bool), engine="fast")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("neuron", ["lif", "cuba"])
@pytest.mark.parametrize("reset", RESETS)
def test_saturation_is_exact(engine, neuron, reset):
    """Narrow widths and large biases: u and v hit both rails, and every engine agrees."""
    seed = 1000 + 10 * RESETS.index(reset) + (neuron == "cuba")
    rng = np.random.default_rng(seed)
    n_in, n_out = 100, 40
    specs = [dict(
        weights=rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in)),
        theta=rng.integers(1, 16, size=n_out), bias=rng.integers(-16, 16, size=n_out),
        neuron=neuron, reset=reset, v_bits=5, u_bits=4, frac_bits=4, lam=3,
        alpha=5 if neuron == "cuba" else 0,
    )]
    network = Network.build(specs)
    spikes = rng.random((3, 30, n_in)) < 0.5
    ref = golden.run(network, spikes, record=True, engine="reference")
    v_lo, v_hi = signed_range(5)
    assert (ref.membranes == v_lo).any() and (ref.membranes == v_hi).any(), f"seed={seed}: v never saturated"
    if neuron == "cuba":
        u_lo, u_hi = signed_range(4)
        u = ref.layers[0].u
        assert (u == u_lo).any() and (u == u_hi).any(), f"seed={seed}: u never saturated"
    assert_trace_equal(golden.run(network, spikes, record=True, engine=engine), ref, f"seed={seed} {engine}")


def _differs(a: golden.Trace, b: golden.Trace) -> bool:
    return any(not np.array_equal(getattr(x, f), getattr(y, f)) for x, y in zip(a.layers, b.layers) for f in "zvu")


def test_v2_cases_cover_every_option_value_and_each_matters():
    """The "v2" cases hold both neurons, all four resets and every value of every v2 option; each value
    other than v1's changes some reference result when set back to v1's (so the equalities above are
    not vacuous), and most cases spike."""
    seen = {key: set() for key in (*V2_CHOICES, "neuron", "reset")}
    matters, fired = set(), 0
    for seed in range(N_CASES):
        network, spikes, what = random_case(seed, True)
        ref = golden.run(network, spikes, record=True, engine="reference")
        fired += bool(ref.layers[0].z.any())
        for k, layer in enumerate(network.layers):
            fields = {**layer.options(), "neuron": layer.neuron, "reset": layer.reset}
            v1 = {**OPTION_DEFAULTS, "reset": "subtract"}
            for key, value in fields.items():
                seen[key].add(value)
                if key in v1 and value != v1[key] and (key, value) not in matters:
                    layers = list(network.layers)
                    layers[k] = layer.replace(**{key: v1[key]})
                    if _differs(ref, golden.run(Network(tuple(layers)), spikes, record=True, engine="reference")):
                        matters.add((key, value))
    want = {**V2_CHOICES, "neuron": NEURONS, "reset": RESETS}
    assert {key: sorted(map(str, values)) for key, values in seen.items()} == {
        key: sorted(map(str, values)) for key, values in want.items()}
    v1 = {**OPTION_DEFAULTS, "reset": "subtract"}
    assert matters == {(key, value) for key, values in want.items() if key in v1 for value in values
                       if value != v1[key]}
    assert fired >= N_CASES // 2, f"only {fired} of {N_CASES} v2 cases spike"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("neuron", ["lif", "cuba"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_v2_rails_are_exact(engine, neuron, reset, rounding):
    """Contract v2's rails: v saturates to the symmetric range (never -2^(V-1)), u wraps, the bias enters the
    membrane, the sum is shifted; every engine agrees with the reference."""
    seed = 1500 + 100 * RESETS.index(reset) + 10 * ROUNDINGS.index(rounding) + (neuron == "cuba")
    rng = np.random.default_rng(seed)
    n_in, n_out = 100, 40
    network = Network.build([dict(
        weights=rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in)),
        theta=rng.integers(1, 64, size=n_out), bias=rng.integers(-64, 64, size=n_out),
        neuron=neuron, reset=reset, v_bits=8, u_bits=7, frac_bits=4, lam=3, alpha=5 if neuron == "cuba" else 0,
        decay_round=rounding, input_shift=2, bias_to="membrane", u_overflow="wrap", v_range="symmetric",
    )])
    spikes = rng.random((3, 30, n_in)) < 0.5
    ref = golden.run(network, spikes, record=True, engine="reference")
    v_lo, v_hi = signed_range(8)
    assert ref.membranes.min() == v_lo + 1 and ref.membranes.max() == v_hi, f"seed={seed}: v never saturated"
    if neuron == "cuba":
        saturating = Network((network.layers[0].replace(u_overflow="saturate"),))
        assert _differs(ref, golden.run(saturating, spikes, record=True, engine="reference")), f"seed={seed}: no wrap"
    assert_trace_equal(golden.run(network, spikes, record=True, engine=engine), ref, f"seed={seed} {engine}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_widest_values_stay_exact(engine, rounding):
    """32-bit v and u, F = 16, decays leaving 2^16 - 1 (|v * (2^F - lam)| near 2^47), the sum of 40,000 inputs
    shifted by 16 (int32 accumulators in the kernel; |a| near 2^31.3) and a u that wraps at 32 bits."""
    seed = 3200 + ROUNDINGS.index(rounding)
    rng = np.random.default_rng(seed)
    n_in = 40000
    w = rng.choice(np.array([-1, 1], np.int8), size=(6, n_in))
    w[0], w[1] = 1, -1
    v_lo, v_hi = signed_range(32)
    network = Network.build([dict(weights=w, theta=[v_hi] * 3 + [1 << 30] * 3, bias=[v_lo, v_hi, 7, -9, v_hi, v_lo],
                                  neuron="cuba", reset="subtract_next", v_bits=32, u_bits=32, frac_bits=16, lam=1,
                                  alpha=1, decay_round=rounding, input_shift=16, bias_to=bias_to, u_overflow="wrap",
                                  v_range="symmetric") for bias_to in ("membrane",)])
    spikes = rng.random((2, 8, n_in)) < 0.9
    spikes[:, :3] = True
    ref = golden.run(network, spikes, record=True, engine="reference")
    assert ref.membranes.max() == v_hi and ref.membranes.min() == v_lo + 1, f"seed={seed}: v never saturated"
    u = ref.layers[0].u
    assert (np.diff(u[:, :, 0], axis=1) < 0).any(), f"seed={seed}: u of an all-positive input never wrapped"
    assert ref.spikes.any(), f"seed={seed}: no spike"
    assert_trace_equal(golden.run(network, spikes, record=True, engine=engine), ref, f"seed={seed} {engine}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("frac_bits", [0, 1, 8, 16])
def test_decays_zero_and_full(engine, frac_bits):
    full = 1 << frac_bits
    for lam in (0, full):
        for alpha in (0, full):
            seed = 2000 + frac_bits * 4 + (lam > 0) * 2 + (alpha > 0)
            network = random_network((50, 30, 7), seed=seed, neuron="cuba", frac_bits=frac_bits,
                                     lam=lam, alpha=alpha, v_bits=10, u_bits=9)
            spikes = np.random.default_rng(seed).random((2, 12, 50)) < 0.3
            ref = golden.run(network, spikes, record=True, engine="reference")
            assert_trace_equal(golden.run(network, spikes, record=True, engine=engine), ref,
                               f"seed={seed}: F={frac_bits} lam={lam} alpha={alpha} {engine}")


@pytest.mark.parametrize("engine", ENGINES)
def test_wide_input_uses_32_bit_sums(engine):
    """n_in > 32767 takes the kernel's int32 accumulators; sums near +/-n_in must stay exact."""
    seed = 3000
    rng = np.random.default_rng(seed)
    n_in = 40000
    w = np.ones((3, n_in), np.int8)
    w[1] = -1
    w[2] = rng.choice(np.array([-1, 1], np.int8), size=n_in)
    network = Network.build([dict(weights=w, theta=[30000, 30000, 50], bias=0, v_bits=20, lam=0)])
    spikes = np.ones((1, 3, n_in), bool)
    spikes[0, 2] = rng.random(n_in) < 0.5
    ref = golden.run(network, spikes, record=True, engine="reference")
    assert ref.layers[0].u[0, 0, 0] == n_in and ref.layers[0].u[0, 0, 1] == -n_in, f"seed={seed}"
    assert_trace_equal(golden.run(network, spikes, record=True, engine=engine), ref, f"seed={seed} {engine}")


@pytest.mark.parametrize("engine", ENGINES)
def test_wide_output_spans_kernel_tiles(engine):
    """n_out = 4100 > 2 * 2048: the kernel accumulates in column tiles; a ragged last tile."""
    seed = 3100
    network = random_network((90, 4100, 5), seed=seed, neuron="cuba", reset="zero", lam=17, alpha=64)
    spikes = np.random.default_rng(seed).random((2, 6, 90)) < 0.3
    ref = golden.run(network, spikes, record=True, engine="reference")
    assert_trace_equal(golden.run(network, spikes, record=True, engine=engine), ref, f"seed={seed} {engine}")
    stepper = golden.Stepper(network, 2, engine=engine)
    for t in range(6):
        z, v = stepper.step(spikes[:, t])
        assert_same(v, ref.membranes[:, t], f"seed={seed} {engine}", f"Stepper t={t}")


# ------------------------------------------------------------------------------------------------
# Stepper


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES)
def test_stepper_equals_network_step(case, engine):
    network, spikes, what = random_case(*case)
    what = f"{what} engine={engine}"
    batch, steps = spikes.shape[:2]
    layers, finals = reference_steps(network, spikes)
    stepper = golden.Stepper(network, batch, engine=engine)
    assert stepper.engine == engine
    for t in range(steps):
        z, v = stepper.step(spikes[:, t])
        assert_same(z, layers[-1][0][:, t], what, f"spikes at t={t}")
        assert_same(v, layers[-1][1][:, t], what, f"membranes at t={t}")
    for k, (mine, ref) in enumerate(zip(stepper.states, finals)):
        assert_same(mine.v, ref.v, what, f"state {k} v")
        if network.layers[k].neuron == "cuba":
            assert_same(mine.u, ref.u, what, f"state {k} u")
    if batch == 1:  # unbatched [n_in] input gives [n_out] outputs
        stepper.reset()
        for t in range(steps):
            z, v = stepper.step(spikes[0, t])
            assert_same(z, layers[-1][0][0, t], what, f"unbatched spikes at t={t}")
            assert_same(v, layers[-1][1][0, t], what, f"unbatched membranes at t={t}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("v2", [False, True])
def test_stepper_reset_and_states(engine, v2):
    network, spikes, what = random_case(11, v2)
    batch, steps = spikes.shape[:2]
    stepper = golden.Stepper(network, batch, engine=engine)
    for t in range(steps):
        stepper.step(spikes[:, t])
    saved = stepper.states
    stepper.reset()
    assert all(not s.v.any() and not s.u.any() for s in stepper.states), what
    first = [stepper.step(spikes[:, t]) for t in range(steps)]
    stepper.reset(saved)
    cont = golden.run(network, spikes, states=saved, engine="reference")
    for t in range(steps):
        z, v = stepper.step(spikes[:, t])
        assert_same(z, cont.spikes[:, t], what, f"after reset(states) t={t}")
        assert_same(v, cont.membranes[:, t], what, f"after reset(states) t={t}")
    stepper.reset()
    again = [stepper.step(spikes[:, t]) for t in range(steps)]
    for (z0, v0), (z1, v1) in zip(first, again):
        assert_same(z0, z1, what, "z after reset()")
        assert_same(v0, v1, what, "v after reset()")
    fresh = golden.Stepper(network, batch, states=saved, engine=engine)
    assert_same(fresh.states[0].v, saved[0].v, what, "states= in constructor")


@pytest.mark.parametrize("engine", ENGINES)
def test_stepper_outputs_are_copies(engine):
    network = random_network((30, 6), seed=5, theta=1, lam=0)
    stepper = golden.Stepper(network, engine=engine)
    x = np.ones(30, bool)
    z0, v0 = stepper.step(x)
    keep = (z0.copy(), v0.copy())
    stepper.step(~x)
    assert np.array_equal(z0, keep[0]) and np.array_equal(v0, keep[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_stepper_input_forms_and_validation(engine):
    seed = 12
    network = random_network((20, 8, 3), seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.random((2, 20)) < 0.4
    ref = golden.Stepper(network, 2, engine="numpy")
    z_ref, v_ref = ref.step(x)
    for form in (x, x.astype(np.uint8), x.astype(np.int8), x.astype(np.int64), x.tolist(), np.asfortranarray(x)):
        stepper = golden.Stepper(network, 2, engine=engine)
        z, v = stepper.step(form)
        assert_same(z, z_ref, f"seed={seed}", f"input {type(form).__name__}")
        assert_same(v, v_ref, f"seed={seed}", f"input {type(form).__name__}")
    stepper = golden.Stepper(network, 2, engine=engine)
    bad = x.astype(np.uint8)
    bad[1, 5] = 2
    with pytest.raises(SpikeError, match=r"\[1, 5\]"):
        stepper.step(bad)
    with pytest.raises(SpikeError):
        stepper.step(-x.astype(np.int8))
    with pytest.raises(SpikeError):
        stepper.step(x.astype(np.float32))
    with pytest.raises(SpikeError, match="shape"):
        stepper.step(x[0])  # unbatched input needs batch 1
    with pytest.raises(SpikeError):
        stepper.step(np.zeros((2, 21), bool))
    assert all(not s.v.any() for s in stepper.states), "a refused input must not advance the state"


def test_stepper_refuses_bad_arguments():
    network = random_network((10, 4), seed=0, v_bits=8)
    with pytest.raises(ValueError):
        golden.Stepper(network, 0)
    with pytest.raises(ValueError):
        golden.Stepper(network, engine="reference")
    with pytest.raises(TypeError):
        golden.Stepper("not a network")
    bad = (golden.LayerState(np.full((1, 4), 500, np.int64), np.zeros((1, 4), np.int64)),)
    with pytest.raises(ValueError, match="outside"):
        golden.Stepper(network, states=bad)
    with pytest.raises(ValueError, match="must be integer"):
        golden.Stepper(network, states=(golden.LayerState(np.zeros((2, 4), np.int64), np.zeros((2, 4))),))


def test_stepper_torch_tensor_input():
    torch = pytest.importorskip("torch")
    network = random_network((16, 5), seed=4)
    x = np.random.default_rng(4).random(16) < 0.5
    a = golden.Stepper(network).step(x)
    b = golden.Stepper(network).step(torch.from_numpy(x))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_copied_and_unpickled_networks_still_run(engine):
    """Layers cache their kernel layout; a copy or an unpickled layer must not reuse stale addresses."""
    import copy
    import pickle

    network, spikes, what = random_case(21)
    ref = golden.run(network, spikes, record=True, engine="reference")
    golden.run(network, spikes, engine=engine)  # fills the caches
    for other in (copy.deepcopy(network), pickle.loads(pickle.dumps(network))):
        assert_trace_equal(golden.run(other, spikes, record=True, engine=engine), ref, what)
        z, v = golden.Stepper(other, spikes.shape[0], engine=engine).step(spikes[:, 0])
        assert_same(v, ref.membranes[:, 0], what, "Stepper")


# ------------------------------------------------------------------------------------------------
# Fallbacks and the build helper


def test_auto_falls_back_to_numpy_without_kernel(monkeypatch):
    from spikeloop.native import golden_kernel

    monkeypatch.setattr(golden_kernel, "kernel", lambda: None)
    monkeypatch.setattr(golden_kernel, "unavailable_reason", lambda: "test")
    network, spikes, what = random_case(3)
    assert golden.Stepper(network, spikes.shape[0]).engine == "numpy"
    ref = golden.run(network, spikes, record=True, engine="reference")
    assert_trace_equal(golden.run(network, spikes, record=True), ref, what)
    with pytest.raises(RuntimeError, match="unavailable"):
        golden.Stepper(network, engine="native")
    with pytest.raises(RuntimeError, match="unavailable"):
        golden.run(network, spikes, engine="native")


def test_build_helper_reports_missing_compiler(monkeypatch, tmp_path):
    from spikeloop import native, toolchain

    source = toolchain.resource("spikeloop.native", "golden_kernel.c")
    monkeypatch.setenv("SPIKELOOP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SPIKELOOP_NATIVE", raising=False)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(native.NativeUnavailable, match="C compiler named by CC='/nonexistent/cc'"):
        native.load_library("nothing", [source])
    monkeypatch.setenv("SPIKELOOP_NATIVE", "0")
    assert not native.native_enabled()
    with pytest.raises(native.NativeUnavailable, match="disabled"):
        native.build_library("nothing", [source])


def test_build_helper_caches_and_reports_errors(tmp_path, monkeypatch):
    from spikeloop import native, toolchain

    if toolchain.missing("cc"):
        pytest.skip("no C compiler")
    monkeypatch.setenv("SPIKELOOP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SPIKELOOP_NATIVE", raising=False)
    src = tmp_path / "add.c"
    src.write_text("long spikeloop_test_add(long a, long b) { return a + b; }\n")
    lib = native.load_library("add", [src])
    assert lib.spikeloop_test_add(2, 3) == 5
    built = sorted((tmp_path / "native").glob("add-*/add.*"))
    assert len(built) == 1
    assert native.build_library("add", [src]) == built[0]  # cached: same file, no rebuild
    src.write_text("long spikeloop_test_add(long a, long b) { return a + b + 1; }\n")
    assert native.build_library("add", [src]) != built[0]  # the key follows the source
    bad = tmp_path / "bad.c"
    bad.write_text("this is not C\n")
    with pytest.raises(native.NativeBuildError) as info:
        native.build_library("bad", [bad])
    assert "bad.c" in str(info.value) and "error" in info.value.output and info.value.log.exists()
    assert not list((tmp_path / "native").glob("bad-*/*bad*.so")), "a failed build leaves no partial file"


# ------------------------------------------------------------------------------------------------
# The PyTorch golden model


@pytest.mark.parametrize("engine", ["numpy", pytest.param("native", marks=needs_native), "auto"])
@pytest.mark.parametrize("case", CASES[::3])
def test_torch_model_engines_equal_plain_loop(case, engine):
    torch = pytest.importorskip("torch")
    from spikeloop.quant.golden import GoldenModel

    network, spikes, what = random_case(*case)
    what = f"{what} engine={engine}"
    model = GoldenModel(network)
    for x in (spikes, spikes[0], torch.from_numpy(spikes)):
        ref = model.run(x, record=True, engine="torch")
        got = model.run(x, record=True, engine=engine)
        for name in ("spikes", "membranes"):
            assert_same(getattr(got, name).numpy(), getattr(ref, name).numpy(), what, name)
        for k, (g, r) in enumerate(zip(got.layers, ref.layers)):
            for f in "zvu":
                assert_same(getattr(g, f).numpy(), getattr(r, f).numpy(), what, f"layers[{k}].{f}")
        for k, (g, r) in enumerate(zip(got.states, ref.states)):
            assert_same(g.v.numpy(), r.v.numpy(), what, f"states[{k}].v")
            assert_same(g.u.numpy(), r.u.numpy(), what, f"states[{k}].u")
        assert got.layers is not None and model.run(x, engine=engine).layers is None
    # continuing from torch states
    half = spikes.shape[1] // 2
    if half:
        first = model.run(spikes[:, :half], engine=engine)
        rest = model.run(spikes[:, half:], states=first.states, engine=engine)
        full = model.run(spikes, engine="torch")
        assert_same(rest.membranes.numpy(), full.membranes[:, half:].numpy(), what, "continued")


def test_torch_model_agrees_with_numpy_model():
    pytest.importorskip("torch")
    from spikeloop.quant.golden import GoldenModel

    network = random_network((784, 256, 10), seed=42, lam=32, frac_bits=8)
    spikes = np.random.default_rng(42).random((4, 30, 784)) < 0.2
    a = GoldenModel(network).run(spikes)
    b = golden.run(network, spikes, engine="reference")
    assert_same(a.spikes.numpy(), b.spikes, "seed=42", "spikes")
    assert_same(a.membranes.numpy(), b.membranes, "seed=42", "membranes")


def test_torch_model_stepper():
    pytest.importorskip("torch")
    from spikeloop.quant.golden import GoldenModel

    network = random_network((30, 10, 4), seed=9)
    spikes = np.random.default_rng(9).random((12, 30)) < 0.3
    stepper = GoldenModel(network).stepper()
    ref = golden.run(network, spikes, engine="reference")
    for t in range(12):
        z, v = stepper.step(spikes[t])
        assert_same(z, ref.spikes[t], "seed=9", f"t={t}")
        assert_same(v, ref.membranes[t], "seed=9", f"t={t}")
