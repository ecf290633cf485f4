"""Property tests: both golden models equal the naive scalar reference (tests/reference.py).

Every case is a small random network (1 to 4 layers of 1 to a few neurons) and a short spike
sequence; four implementations are checked against the reference, with integer equality
on every layer's spikes z, pre-reset membranes v' and currents u, and on the final state:

- `spikeloop.golden.run(..., record=True)`, in up to four segments continuing via `states=`,
- `spikeloop.golden.initial_state` + `network_step` once per timestep (or, for cases with
  segments, `network_step` continuing from the states `run` returned for the first segment),
- `spikeloop.quant.golden.GoldenModel.run(..., record=True)` (idem),
- `GoldenModel.initial_state` + `GoldenModel.step` (idem).

The input is handed over as [B, T, n_in] or unbatched [T, n_in], as bool, uint8, int64 or a
torch tensor.

Each property test wraps its hypothesis test in a plain test that counts the cases that ran
and what they went through (spikes, saturation at each rail, v' == theta, ...) and then asserts
that the count and those statistics are what they should be. That keeps the guard against a
vacuous pass inside one test, hence inside one pytest-xdist worker. The property tests run
CASES_PER_RUN = 10,000 cases in total (see PROPERTY_TESTS at the end).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import reference as ref
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeloop import golden as npg
from spikeloop.network import (
    BIAS_TOS,
    NEURONS,
    OPTION_DEFAULTS,
    OVERFLOWS,
    RESETS,
    ROUNDINGS,
    V_RANGES,
    Layer,
    Network,
    signed_range,
)
from spikeloop.quant import golden as tg

# ----------------------------------------------------------------------------------------------
# Strategies


@dataclass(frozen=True)
class Shape:
    """How big and how extreme the generated cases of one property test are."""

    layers: tuple[int, int] = (1, 4)  # number of layers, inclusive range
    n_in: tuple[int, int] = (1, 6)
    n_out: tuple[int, int] = (1, 4)
    steps: tuple[int, int] = (1, 8)
    batch: tuple[int, int] = (1, 3)
    small_bits: bool | None = None  # True: v_bits/u_bits in 2..4; None: drawn per case
    split: bool | None = None  # True: always run in segments via states; None: drawn


class Case:
    """One generated case. A plain class, so that hypothesis prints a failing case with `__repr__`
    (every weight, threshold and bias) instead of its field-by-field dataclass printer."""

    def __init__(self, network: Network, spikes: np.ndarray, batched: bool, splits: tuple[int, ...], kind: str):
        self.network = network
        self.spikes = spikes  # int64 [B, T, n_in], 0/1
        self.batched = batched  # False: the models get [T, n_in] (then B == 1)
        self.splits = splits  # run segments [0:s0], [s0:s1], ..., continuing via states
        self.kind = kind  # how the input is handed to the models: bool/uint8/int64/torch

    def model_input(self, t0: int, t1: int):
        x = self.spikes[:, t0:t1]
        if not self.batched:
            x = x[0]
        if self.kind == "bool":
            return x.astype(np.bool_)
        if self.kind == "torch":
            return torch.from_numpy(x.astype(np.bool_))
        return x.astype(self.kind)

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        lines = [f"Case(batched={self.batched}, splits={self.splits}, kind={self.kind!r},"]
        for k, layer in enumerate(self.network.layers):
            lines.append(
                f"  layer {k}: {layer!r} theta={layer.theta.tolist()} bias={layer.bias.tolist()} "
                f"weights={layer.weights.tolist()}"
            )
        lines.append(f"  spikes={self.spikes.tolist()})")
        return "\n".join(lines)


# Strategies are cached: hypothesis validates every new strategy object, which costs more than
# checking a case when strategies are rebuilt inside each draw.


@cache
def bits_strategy(small: bool) -> st.SearchStrategy[int]:
    if small:
        return st.integers(2, 4)
    return st.one_of(st.integers(2, 6), st.integers(2, 32), st.just(32))


@cache
def decay_strategy(frac_bits: int) -> st.SearchStrategy[int]:
    """lam/alpha: 0 (no leak), 2^F (forget), powers of two 2^(F-k) (shifts), anything in between."""
    one = 1 << frac_bits
    return st.one_of(
        st.just(0),
        st.just(one),
        st.integers(0, frac_bits).map(lambda k: 1 << (frac_bits - k)),
        st.integers(0, one),
    )


@cache
def theta_strategy(v_bits: int, n_out: int) -> st.SearchStrategy[list[int]]:
    """Thresholds: 1, small, the maximum 2^(v_bits-1)-1, anything."""
    v_hi = signed_range(v_bits)[1]
    el = st.one_of(st.just(1), st.integers(1, min(v_hi, 4)), st.just(v_hi), st.integers(1, v_hi))
    return st.lists(el, min_size=n_out, max_size=n_out)


@cache
def bias_strategy(v_bits: int, n_out: int) -> st.SearchStrategy[list[int]]:
    """Biases: 0, both rails, small, anything."""
    v_lo, v_hi = signed_range(v_bits)
    el = st.one_of(
        st.just(0), st.just(v_lo), st.just(v_hi), st.integers(max(v_lo, -3), min(v_hi, 3)), st.integers(v_lo, v_hi)
    )
    return st.lists(el, min_size=n_out, max_size=n_out)


@cache
def bits_matrix_strategy(rows: int, cols: int) -> st.SearchStrategy[np.ndarray]:
    """A 0/1 int64 matrix [rows, cols] from a single integer draw (hypothesis draws are the cost here)."""
    n = rows * cols
    bits = np.arange(n, dtype=object)

    def unpack(x: int) -> np.ndarray:
        return np.array([(x >> int(i)) & 1 for i in bits], dtype=np.int64).reshape(rows, cols)

    return st.integers(0, (1 << n) - 1).map(unpack)


NEURON_ST = st.sampled_from(NEURONS)
RESET_ST = st.sampled_from(RESETS)
FRAC_BITS_ST = st.one_of(st.integers(0, 16), st.sampled_from([0, 1, 16]))
WEIGHT_MODE_ST = st.sampled_from(["random", "random", "plus", "minus"])
# Contract v2's options: half the layers keep v1's meaning, the others draw each option.
V2_OPTIONS_ST = st.one_of(st.just(OPTION_DEFAULTS), st.fixed_dictionaries({
    "decay_round": st.sampled_from(ROUNDINGS),
    "input_shift": st.sampled_from([0, 0, 1, 2, 6, 16]),
    "bias_to": st.sampled_from(BIAS_TOS),
    "u_overflow": st.sampled_from(OVERFLOWS),
    "v_range": st.sampled_from(V_RANGES),
}))


@cache
def layer_strategy(n_in: int, n_out: int, small_bits: bool, k: int) -> st.SearchStrategy[Layer]:
    return _layer_strategy(n_in, n_out, small_bits, k)


@st.composite
def _layer_strategy(draw, n_in: int, n_out: int, small_bits: bool, k: int) -> Layer:
    neuron = draw(NEURON_ST)
    reset = draw(RESET_ST)
    v_bits = draw(bits_strategy(small_bits))
    u_bits = draw(bits_strategy(small_bits))
    frac_bits = draw(FRAC_BITS_ST)
    lam = draw(decay_strategy(frac_bits))
    alpha = draw(decay_strategy(frac_bits)) if neuron == "cuba" else 0
    theta = draw(theta_strategy(v_bits, n_out))
    bias = draw(bias_strategy(v_bits, n_out))
    mode = draw(WEIGHT_MODE_ST)
    options = draw(V2_OPTIONS_ST)
    if mode == "random":
        weights = (2 * draw(bits_matrix_strategy(n_out, n_in)) - 1).astype(np.int8)
    else:
        weights = np.full((n_out, n_in), 1 if mode == "plus" else -1, dtype=np.int8)
    return Layer(
        weights, theta=np.array(theta, np.int64), bias=np.array(bias, np.int64), neuron=neuron, reset=reset,
        v_bits=v_bits, u_bits=u_bits, frac_bits=frac_bits, lam=lam, alpha=alpha, where=f"layer {k}", **options,
    )


@cache
def size_strategy(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.just(1), st.integers(lo, hi))


@cache
def int_strategy(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


@cache
def cuts_strategy(steps: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, steps - 1), min_size=1, max_size=3, unique=True)


INPUT_MODE_ST = st.sampled_from(["random", "sparse", "zeros", "ones"])
KIND_ST = st.sampled_from(["bool", "uint8", "int64", "torch"])


@st.composite
def case_strategy(draw, shape: Shape) -> Case:
    n_layers = draw(int_strategy(*shape.layers))
    sizes = [draw(size_strategy(*shape.n_in))]
    sizes += [draw(size_strategy(*shape.n_out)) for _ in range(n_layers)]
    small = draw(st.booleans()) if shape.small_bits is None else shape.small_bits
    layers = tuple(draw(layer_strategy(sizes[k], sizes[k + 1], small, k)) for k in range(n_layers))
    network = Network(layers)

    batched = draw(st.booleans())
    batch = draw(int_strategy(*shape.batch)) if batched else 1
    steps = draw(int_strategy(*shape.steps))
    mode = draw(INPUT_MODE_ST)
    if mode == "random":
        spikes = draw(bits_matrix_strategy(batch * steps, sizes[0])).reshape(batch, steps, sizes[0])
    elif mode == "sparse":  # about 1/4 dense
        block = bits_matrix_strategy(batch * steps, sizes[0])
        spikes = (draw(block) & draw(block)).reshape(batch, steps, sizes[0])
    else:
        spikes = np.full((batch, steps, sizes[0]), 1 if mode == "ones" else 0, dtype=np.int64)

    split = draw(st.booleans()) if shape.split is None else shape.split
    splits: tuple[int, ...] = ()
    if split and steps > 1:
        cuts = draw(cuts_strategy(steps))
        splits = tuple(sorted(cuts))
    kind = draw(KIND_ST)
    return Case(network, spikes, batched, splits, kind)


# ----------------------------------------------------------------------------------------------
# Checking one case


@dataclass(frozen=True)
class Expected:
    """The reference's result as int64 arrays, per layer k: z[k], v[k], u[k] [B, T, n_out];
    final state state_v[k], state_u[k] [B, n_out]; and the corners it went through."""

    z: tuple[np.ndarray, ...]
    v: tuple[np.ndarray, ...]
    u: tuple[np.ndarray, ...]
    state_v: tuple[np.ndarray, ...]
    state_u: tuple[np.ndarray, ...]
    events: Counter

    @classmethod
    def of(cls, network: Network, spikes: np.ndarray) -> Expected:
        r = ref.run_reference([ref.RefLayer.of(layer) for layer in network.layers], spikes.tolist())

        def arrays(x):
            return tuple(np.array(per_layer, np.int64) for per_layer in x)

        return cls(arrays(r.z), arrays(r.v), arrays(r.u), arrays(r.v_state), arrays(r.u_state), r.events)


def _assert_equal(what: str, got, expected: np.ndarray) -> None:
    got = got.numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, reference {expected.shape}"
    if not np.array_equal(got, expected):
        got = got.astype(np.int64)
        idx = tuple(int(i) for i in np.argwhere(got != expected)[0])
        raise AssertionError(f"{what}{list(idx)} = {got[idx]}, reference {expected[idx]}")


def _check_recorded(model: str, case: Case, expected: Expected, zs, vs, us) -> None:
    """zs/vs/us: per layer [B, T, n_out] (already batched) from `model`."""
    for k in range(len(case.network.layers)):
        _assert_equal(f"{model} layer {k} z", zs[k], expected.z[k])
        _assert_equal(f"{model} layer {k} v'", vs[k], expected.v[k])
        _assert_equal(f"{model} layer {k} u", us[k], expected.u[k])


def _check_states(model: str, case: Case, expected: Expected, states) -> None:
    for k, (layer, state) in enumerate(zip(case.network.layers, states)):
        _assert_equal(f"{model} layer {k} state v", state.v, expected.state_v[k])
        if layer.neuron == "cuba":  # a lif layer's carried u is never read: see the contract notes
            _assert_equal(f"{model} layer {k} state u", state.u, expected.state_u[k])


def _segments(case: Case) -> list[tuple[int, int]]:
    bounds = [0, *case.splits, case.spikes.shape[1]]
    return list(zip(bounds[:-1], bounds[1:]))


def _batched(x, batched: bool):
    return x if batched else x[None]


# The engines of each model's `run` besides its default ("auto" = the native kernel when it can be
# built, else in-place numpy): every one must compute the same integers. Read from the modules so
# that this file keeps working while engines come and go.
NP_ENGINES = (None, *(e for e in getattr(npg, "ENGINES", ()) if e not in ("auto", "native")))
TORCH_ENGINES = (None, *(e for e in getattr(tg, "ENGINES", ()) if e not in ("auto", "native")))


def _run(model: str, engine: str | None, net: Network, torch_model, x, states):
    kw = {} if engine is None else {"engine": engine}
    if model == "numpy":
        trace = npg.run(net, x, record=True, states=states, **kw)
        assert trace.spikes.dtype == np.bool_ and trace.membranes.dtype == np.int64
        return trace
    trace = torch_model.run(x, record=True, states=states, **kw)
    assert trace.spikes.dtype == torch.bool and trace.membranes.dtype == torch.int64
    return npg.Trace(  # to numpy, same field layout
        trace.spikes.numpy(), trace.membranes.numpy(), trace.states,
        tuple(npg.LayerStep(*(t.numpy() for t in rec)) for rec in trace.layers),
    )


def check_run_api(case: Case, expected: Expected, model: str) -> None:
    """`run(record=True)` over the segments of `case`, continuing via `states`, with every engine."""
    net = case.network
    torch_model = tg.GoldenModel(net) if model == "torch" else None
    for engine in NP_ENGINES if model == "numpy" else TORCH_ENGINES:
        name = f"{model}.run" + ("" if engine is None else f"(engine={engine!r})")
        states = None
        parts = []
        for t0, t1 in _segments(case):
            trace = _run(model, engine, net, torch_model, case.model_input(t0, t1), states)
            assert trace.layers is not None and len(trace.layers) == len(net.layers)
            parts.append(trace)
            states = trace.states
        axis = 1 if case.batched else 0

        def cat(get, parts=parts, axis=axis):
            return _batched(np.concatenate([get(p) for p in parts], axis=axis), case.batched)

        zs, vs, us = ([cat(lambda p, k=k, f=f: getattr(p.layers[k], f)) for k in range(len(net.layers))]
                      for f in ("z", "v", "u"))
        _check_recorded(name, case, expected, zs, vs, us)
        # The unrecorded outputs are the last layer's.
        _assert_equal(f"{name} spikes", cat(lambda p: p.spikes), expected.z[-1])
        _assert_equal(f"{name} membranes", cat(lambda p: p.membranes), expected.v[-1])
        _check_states(name, case, expected, states)


def check_step_api(case: Case, expected: Expected, model: str) -> None:
    """initial_state + one step call per timestep (input bool [B, n_in]).

    When the case has splits, the first segment is run with the run API instead and the step API
    continues from the states it returned.
    """
    net = case.network
    batch, steps = case.spikes.shape[:2]
    s = case.spikes.astype(np.bool_)
    start = case.splits[0] if case.splits else 0
    per_step = []  # per timestep, per layer: (z, v, u) as numpy [B, n_out]
    torch_model = tg.GoldenModel(net) if model == "torch" else None
    if start:
        head = (npg.run(net, s[:, :start], record=True) if torch_model is None
                else torch_model.run(torch.from_numpy(s[:, :start]), record=True))
        states = head.states
        for t in range(start):
            per_step.append([tuple(np.asarray(x[:, t]) for x in (rec.z, rec.v, rec.u)) for rec in head.layers])
    else:
        states = npg.initial_state(net, batch) if torch_model is None else torch_model.initial_state(batch)
    for t in range(start, steps):
        if torch_model is None:
            outs, states = npg.network_step(net, s[:, t], states)
            per_step.append([(o.z, o.v, o.u) for o in outs])
        else:
            outs, states = torch_model.step(torch.from_numpy(s[:, t]), states)
            per_step.append([(o.z.numpy(), o.v.numpy(), o.u.numpy()) for o in outs])
        for z, v, u in per_step[-1]:
            assert z.dtype == np.bool_ and v.dtype == np.int64 and u.dtype == np.int64
            assert z.shape == v.shape == u.shape and z.shape[0] == batch
    zs, vs, us = ([np.stack([step[k][f] for step in per_step], axis=1) for k in range(len(net.layers))]
                  for f in range(3))
    _check_recorded(f"{model}.step", case, expected, zs, vs, us)
    _check_states(f"{model}.step", case, expected, states)


def check_case(case: Case, tally: Counter) -> None:
    expected = Expected.of(case.network, case.spikes)
    for model in ("numpy", "torch"):
        check_run_api(case, expected, model)
        check_step_api(case, expected, model)
    # What this case went through.
    tally["cases"] += 1
    for event, count in expected.events.items():
        tally[event] += count > 0
    for layer in case.network.layers:
        one = 1 << layer.frac_bits
        tally["lam=0"] += layer.lam == 0
        tally["lam=2^F"] += layer.lam == one
        tally["lam=other"] += 0 < layer.lam < one
        tally["lam=2^(F-k), 0<k<F"] += 1 < layer.lam < one and layer.lam & (layer.lam - 1) == 0
        tally[layer.neuron] += 1
        tally[f"reset {layer.reset}"] += 1
        for key, value in layer.options().items():
            if value != OPTION_DEFAULTS[key]:
                tally[f"{key} {value}"] += 1
        if layer.neuron == "cuba":
            tally["alpha=0"] += layer.alpha == 0
            tally["alpha=2^F"] += layer.alpha == one
    tally["unbatched"] += not case.batched
    tally["batch>1"] += case.spikes.shape[0] > 1
    tally["split"] += bool(case.splits)
    tally[f"{len(case.network.layers)} layers"] += 1
    tally["all-zero input"] += not case.spikes.any()
    tally["all-one input"] += bool(case.spikes.all())


# ----------------------------------------------------------------------------------------------
# Directed corners: each asserts that the corner really occurred.


def _run_all(network: Network, spikes: np.ndarray) -> Expected:
    """Check both models (run and step APIs) against the reference for spikes [B, T, n_in]; return it."""
    case = Case(network, np.asarray(spikes, np.int64), True, (), "bool")
    expected = Expected.of(network, case.spikes)
    for model in ("numpy", "torch"):
        check_run_api(case, expected, model)
        check_step_api(case, expected, model)
    return expected


def _one_layer(weights, **kw) -> Network:
    return Network((Layer(np.array(weights, np.int8), **kw),))


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("reset", RESETS)
def test_v_saturates_at_upper_rail(neuron, reset):
    net = _one_layer([[1, 1, 1]], theta=3, bias=3, v_bits=3, u_bits=8, neuron=neuron, reset=reset,
                     frac_bits=4, lam=0)
    expected = _run_all(net, np.ones((1, 6, 3)))
    assert expected.events["v_sat_hi"] > 0
    v = expected.v[0]
    assert v.max() == 3 and (v <= 3).all()
    trace = npg.run(net, np.ones((6, 3), np.bool_), record=True)
    assert trace.membranes.max() == 3  # a = 6 but v' never exceeds 2^(3-1)-1


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("reset", RESETS)
def test_v_saturates_at_lower_rail(neuron, reset):
    net = _one_layer([[-1, -1, -1]], theta=1, bias=-4, v_bits=3, u_bits=8, neuron=neuron, reset=reset,
                     frac_bits=4, lam=0)
    expected = _run_all(net, np.ones((2, 5, 3)))
    assert expected.events["v_sat_lo"] > 0 and expected.events["spike"] == 0
    assert np.array_equal(expected.v[0], np.full((2, 5, 1), -4))  # a = -7, v' pinned at -4


def test_u_saturates_at_both_rails():
    # Neuron 0 is driven up, neuron 1 down; u_bits = 3 holds [-4, 3], a = +/-(4 + bias).
    net = _one_layer([[1, 1, 1, 1], [-1, -1, -1, -1]], theta=7, bias=[2, -3], neuron="cuba", reset="none",
                     v_bits=4, u_bits=3, frac_bits=2, lam=1, alpha=0)
    expected = _run_all(net, np.ones((1, 4, 4)))
    assert expected.events["u_sat_hi"] > 0 and expected.events["u_sat_lo"] > 0
    u = expected.u[0]
    assert (u[0, :, 0] == 3).all() and (u[0, :, 1] == -4).all()
    # v' also saturates at both rails eventually ([-8, 7]).
    assert expected.events["v_sat_hi"] > 0 and expected.events["v_sat_lo"] > 0


def test_u_saturation_decays_from_the_rail():
    # u pinned at the upper rail by input, then input stops: u decays from the rail by alpha.
    net = _one_layer([[1, 1]], theta=100, bias=0, neuron="cuba", reset="none", v_bits=10, u_bits=3,
                     frac_bits=2, lam=0, alpha=2)
    spikes = np.array([[[1, 1]] * 3 + [[0, 0]] * 3])
    expected = _run_all(net, spikes)
    assert expected.events["u_sat_hi"] > 0
    # u: 2, then 2-1+2=3, 3-1+2=4 -> 3 (rail), then 3-1=2, 2-1=1, 1-0=1 (floor(1*2/4) = 0)
    assert expected.u[0][0, :, 0].tolist() == [2, 3, 3, 2, 1, 1]


@pytest.mark.parametrize("reset", RESETS)
def test_v_equal_to_theta_fires(reset):
    # v' climbs by the bias 1 each step and reaches theta = 5 exactly at t = 4.
    net = _one_layer([[1]], theta=5, bias=1, reset=reset, v_bits=8, frac_bits=3, lam=0)
    expected = _run_all(net, np.zeros((1, 8, 1)))
    v = expected.v[0][0, :, 0]
    z = expected.z[0][0, :, 0]
    assert expected.events["v_eq_theta"] > 0
    assert v[4] == 5 and z[4] == 1 and z[:4].sum() == 0  # fires on v' == theta, not only above
    after = {"subtract": 1, "zero": 1, "none": 6, "subtract_next": 1}[reset]
    assert v[5] == after


def test_v_one_below_theta_does_not_fire():
    net = _one_layer([[1]], theta=5, bias=4, reset="none", v_bits=8, frac_bits=2, lam=4)  # lam = 2^F
    expected = _run_all(net, np.zeros((1, 4, 1)))
    assert expected.v[0].ravel().tolist() == [4, 4, 4, 4]  # forgotten every step
    assert expected.events["spike"] == 0


@pytest.mark.parametrize("frac_bits", [0, 1, 8, 16])
def test_lam_zero_keeps_the_membrane(frac_bits):
    net = _one_layer([[1, 1]], theta=1000, bias=0, reset="none", v_bits=16, frac_bits=frac_bits, lam=0)
    spikes = np.array([[[1, 1], [1, 0], [0, 0], [0, 0], [0, 1]]])
    expected = _run_all(net, spikes)
    assert expected.v[0].ravel().tolist() == [2, 3, 3, 3, 4]


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("frac_bits", [0, 1, 8, 16])
def test_lam_one_forgets_the_membrane(neuron, frac_bits):
    one = 1 << frac_bits
    net = _one_layer([[1, -1, 1]], theta=1000, bias=[-2], reset="none", v_bits=16, neuron=neuron,
                     frac_bits=frac_bits, lam=one, alpha=one if neuron == "cuba" else 0)
    rng = np.random.default_rng(1234)
    spikes = rng.integers(0, 2, (3, 9, 3))
    expected = _run_all(net, spikes)
    a = spikes @ np.array([1, -1, 1]) - 2
    v = expected.v[0][..., 0]
    assert np.array_equal(v, a), "lam = alpha = 2^F: v' = sat(u) = sat(a) (seed 1234)"
    assert (a != 0).any()


@pytest.mark.parametrize(("frac_bits", "shift"), [(0, 0), (1, 0), (1, 1), (3, 2), (16, 1), (16, 2), (16, 16)])
def test_power_of_two_decay_is_a_shift(frac_bits, shift):
    # Charge v with one input step (a = +/-13), then let it decay with lam = 2^(F-shift).
    for sign in (1, -1):
        net = _one_layer([[sign] * 13], theta=10_000, bias=0, reset="none", v_bits=20, frac_bits=frac_bits,
                         lam=1 << (frac_bits - shift))
        spikes = np.zeros((1, 6, 13), np.int64)
        spikes[0, 0] = 1
        expected = _run_all(net, spikes)
        v = expected.v[0][0, :, 0].tolist()
        # floor(v * 2^(F-k) / 2^F) = floor(v / 2^k) = v >> k: each step v' = v - (v >> k).
        want = [13 * sign]
        for _ in range(5):
            want.append(want[-1] - (want[-1] >> shift))
        assert v == want, (sign, v, want)


def test_negative_membrane_decay_example_from_the_contract():
    # "v=-3, lam=1, F=1 gives -3 - floor(-1.5) = -1".
    net = _one_layer([[-1, -1, -1]], theta=1, bias=0, reset="none", v_bits=8, frac_bits=1, lam=1)
    spikes = np.array([[[1, 1, 1], [0, 0, 0]]])
    expected = _run_all(net, spikes)
    assert expected.v[0].ravel().tolist() == [-3, -1]


def test_cuba_current_decay_by_alpha():
    # alpha = 2^F / 2: u halves (toward -inf) every step once input stops; v integrates it.
    net = _one_layer([[1] * 8], theta=10_000, bias=0, neuron="cuba", reset="none", v_bits=16, u_bits=16,
                     frac_bits=4, lam=0, alpha=8)
    spikes = np.zeros((1, 5, 8), np.int64)
    spikes[0, 0] = 1
    expected = _run_all(net, spikes)
    assert expected.u[0].ravel().tolist() == [8, 4, 2, 1, 1]
    assert expected.v[0].ravel().tolist() == [8, 12, 14, 15, 16]


def test_wide_bits_and_max_decay_precision():
    # v_bits = u_bits = 32, F = 16, lam near 2^F: v_prev * lam needs v_bits + F + 1 bits.
    v_hi = (1 << 31) - 1
    net = _one_layer([[1]], theta=v_hi, bias=[v_hi], neuron="cuba", reset="none", v_bits=32, u_bits=32,
                     frac_bits=16, lam=(1 << 16) - 1, alpha=(1 << 16) - 3)
    expected = _run_all(net, np.ones((1, 6, 1)))
    assert expected.events["u_sat_hi"] > 0 and expected.events["v_sat_hi"] > 0
    low = net.layers[0].replace(bias=-(1 << 31), theta=1)
    expected = _run_all(Network((low,)), np.zeros((1, 6, 1)))
    assert expected.events["u_sat_lo"] > 0 and expected.events["v_sat_lo"] > 0


def test_multi_layer_chain_sees_same_timestep_spikes():
    # Layer 0 fires at t=0 on input; layer 1 (theta 1) must fire at the same t=0.
    l0 = Layer(np.ones((2, 1), np.int8), theta=1, bias=0, reset="zero", where="layer 0")
    l1 = Layer(np.ones((1, 2), np.int8), theta=2, bias=0, reset="zero", where="layer 1")
    expected = _run_all(Network((l0, l1)), np.array([[[1], [0], [1]]]))
    assert expected.z[1].ravel().tolist() == [1, 0, 1]


# ----------------------------------------------------------------------------------------------
# The property tests. Each kind of case (SHAPES: its shape and number of parts) is split into
# parts of 750 to 1,250 cases, so that pytest-xdist can spread them over its workers; they are the
# last tests of this file for the same reason. CASES_PER_RUN (10,000) is the sum over the parts,
# and each part asserts that at least its share of cases really ran.

SHAPES = {
    "mixed": (Shape(), 3),
    "small_bits": (Shape(small_bits=True), 2),
    "deep": (Shape(layers=(3, 4), steps=(4, 10)), 2),
    "continued": (Shape(split=True, steps=(2, 10)), 2),
    "tiny": (Shape(layers=(1, 4), n_in=(1, 2), n_out=(1, 2), steps=(1, 12)), 2),
}
CASES_PER_PART = {"mixed": 1000, "small_bits": 1250, "deep": 750, "continued": 750, "tiny": 750}
PROPERTY_TESTS = {
    f"{name}-{part}": (name, shape, CASES_PER_PART[name])
    for name, (shape, parts) in SHAPES.items()
    for part in range(parts)
}
CASES_PER_RUN = sum(n for _, _, n in PROPERTY_TESTS.values())
assert CASES_PER_RUN >= 10_000, CASES_PER_RUN


def _assert_not_vacuous(name: str, tally: Counter, n: int) -> None:
    """The cases really ran and really went through the interesting corners."""
    summary = ", ".join(f"{k}={v}" for k, v in sorted(tally.items()))
    assert tally["cases"] >= n, f"{name}: only {tally['cases']} of {n} cases ran ({summary})"
    cases = tally["cases"]
    assert tally["output_spike"] >= 0.15 * cases, f"{name}: too few cases with an output spike ({summary})"
    assert tally["spike"] >= 0.3 * cases, f"{name}: too few cases with any spike ({summary})"
    for corner in ("v_sat_hi", "v_sat_lo", "u_sat_hi", "u_sat_lo", "v_eq_theta"):
        assert tally[corner] >= 0.01 * cases, f"{name}: corner {corner} too rare ({summary})"
    for feature in ("lam=0", "lam=2^F", "lam=other", "lam=2^(F-k), 0<k<F", "alpha=0", "alpha=2^F", "lif", "cuba",
                    "reset subtract", "reset zero", "reset none", "reset subtract_next", "unbatched", "batch>1",
                    "decay_round zero", "decay_round nearest", "input_shift 6", "bias_to membrane", "u_overflow wrap",
                    "v_range symmetric"):
        assert tally[feature] > 0, f"{name}: never generated {feature} ({summary})"
    for corner in ("u_wrap", "subtract_next", "bias_to_membrane", "small_leaked"):
        assert tally[corner] > 0, f"{name}: corner {corner} never met ({summary})"
    if name == "small_bits":
        for corner in ("v_sat_hi", "v_sat_lo", "u_sat_hi", "u_sat_lo"):
            assert tally[corner] >= 0.05 * cases, f"{name}: corner {corner} too rare ({summary})"
    if name == "continued":
        assert tally["split"] >= 0.9 * cases, summary
    if name in ("mixed", "tiny"):
        assert tally["all-zero input"] > 0 and tally["all-one input"] > 0, summary
    print(summary)


@pytest.mark.parametrize("part", list(PROPERTY_TESTS))
def test_golden_models_match_reference(part):
    name, shape, n = PROPERTY_TESTS[part]
    tally = Counter()

    @settings(max_examples=n)
    @given(case=case_strategy(shape))
    def check(case):
        check_case(case, tally)

    check()
    _assert_not_vacuous(name, tally, n)
    print(f"{part}: {tally['cases']} cases")
