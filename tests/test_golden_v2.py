"""Contract v2's options worked by hand (docs/numerics.md): each example is checked on every golden engine
(numpy reference, in-place numpy, the native kernel, the torch adapter) and against tests/reference.py."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import torch

from spikeloop import golden
from spikeloop.network import Layer, Network, random_network
from spikeloop.quant import golden as tg

needs_native = pytest.mark.skipif(not golden.native_available(), reason="no C compiler: no native kernel")
#: The engines of `golden.run` each example runs on (the native kernel only where it builds).
ENGINES = ("reference", "numpy", "auto") + (("native",) if golden.native_available() else ())


def one(**kw) -> Network:
    return Network((Layer(np.array([[1]], np.int8), **kw),))


def traces(net: Network, spikes) -> golden.LayerStep:
    """Layer 0's (z, v', u) [T] from every engine, asserted equal, and from the scalar reference."""
    s = np.asarray(spikes, np.int64).reshape(1, -1, net.n_in)
    runs = [golden.run(net, s, record=True, engine=e).layers[0] for e in ENGINES]
    t = tg.GoldenModel(net).run(torch.from_numpy(s), record=True, engine="torch").layers[0]
    runs.append(golden.LayerStep(*(x.numpy() for x in t)))
    r = ref.run_reference([ref.RefLayer.of(layer) for layer in net.layers], s.tolist())
    runs.append(golden.LayerStep(np.array(r.z[0], bool), np.array(r.v[0]), np.array(r.u[0])))
    for other in runs[1:]:
        for field in ("z", "v", "u"):
            assert np.array_equal(getattr(other, field), getattr(runs[0], field)), field
    return golden.LayerStep(*(x[0, :, 0] for x in (runs[0].z, runs[0].v, runs[0].u)))


def test_v1_floor_never_leaks_small_membranes_and_v2_roundings_do():
    # beta = 0.9 at F = 8: lam = 26. One input spike of 4 then silence.
    spikes = [1] + [0] * 6
    floor = traces(one(theta=100, bias=0, lam=26, frac_bits=8), [[x] for x in spikes]).v
    assert floor.tolist() == [1] * 7  # 1 - floor(26/256) = 1 forever: the defect of v1
    zero = traces(one(theta=100, lam=26, frac_bits=8, decay_round="zero"), [[x] for x in spikes]).v
    assert zero.tolist() == [1, 0, 0, 0, 0, 0, 0]  # trunc(0.898) = 0
    # with 4 fractional bits the membrane decays like 16 * 0.9^t, rounded to the nearest
    near = traces(one(theta=1000, lam=26, frac_bits=8, decay_round="nearest", input_shift=4),
                  [[x] for x in spikes]).v
    expected, v = [], 0
    for x in spikes:
        p = v * (256 - 26)
        v = (abs(p) + 128) // 256 * (1 if p >= 0 else -1) + 16 * x
        expected.append(v)
    assert near.tolist() == expected == [16, 14, 13, 12, 11, 10, 9]


def test_negative_membranes_round_symmetrically_under_zero_and_nearest():
    w = np.array([[-1, -1, -1]], np.int8)
    for rounding, want in (("zero", [-3, -1, 0, 0]), ("nearest", [-3, -2, -1, -1]), ("floor", [-3, -1, 0, 0])):
        net = Network((Layer(w, theta=5, lam=128, frac_bits=8, decay_round=rounding),))
        # -3 * 0.5 = -1.5: toward zero -1, to the nearest (half away from zero) -2; then -1 * 0.5 = -0.5 stays
        # -1 to the nearest: without fractional bits (input_shift) rounding to the nearest keeps small membranes
        assert traces(net, [[1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]).v.tolist() == want


def test_input_shift_scales_the_synaptic_sum_and_not_the_bias():
    net = Network((Layer(np.array([[1, 1, -1]], np.int8), theta=1000, bias=3, input_shift=6, v_bits=16),))
    out = traces(net, [[1, 1, 0], [1, 1, 1]])
    assert out.u.tolist() == [2 * 64 + 3, 1 * 64 + 3] and out.v.tolist() == [131, 131 + 67]


def test_bias_to_membrane_keeps_the_bias_out_of_the_current():
    kw = dict(theta=1000, bias=5, neuron="cuba", alpha=128, lam=0, frac_bits=8, v_bits=16, u_bits=16)
    cur = traces(one(**kw), [[1], [0]])
    mem = traces(one(**kw, bias_to="membrane"), [[1], [0]])
    assert cur.u.tolist() == [6, 3 + 5] and cur.v.tolist() == [6, 14]
    assert mem.u.tolist() == [1, 1] and mem.v.tolist() == [6, 12]  # u = 1 - floor(0.5) = 1


def test_current_wraps_or_saturates():
    kw = dict(theta=100, neuron="cuba", alpha=0, lam=256, frac_bits=8, v_bits=8, u_bits=4)
    spikes = [[1]] * 9
    sat = traces(one(**kw), spikes).u
    wrapped = traces(one(**kw, u_overflow="wrap"), spikes).u
    assert sat.tolist() == [1, 2, 3, 4, 5, 6, 7, 7, 7]
    assert wrapped.tolist() == [1, 2, 3, 4, 5, 6, 7, -8, -7]


def test_symmetric_range_saturates_at_minus_two_to_the_v_bits_minus_one_plus_one():
    w = np.array([[-1] * 4], np.int8)
    full = traces(Network((Layer(w, theta=5, v_bits=4, reset="none"),)), [[1] * 4] * 3).v
    sym = traces(Network((Layer(w, theta=5, v_bits=4, reset="none", v_range="symmetric"),)), [[1] * 4] * 3).v
    assert full.tolist() == [-4, -8, -8] and sym.tolist() == [-4, -7, -7]


def test_subtract_next_takes_theta_off_after_the_decay_as_snntorch_leaky_does():
    """snnTorch 1.0 `Leaky`'s order (reset "subtract"): mem[t] = beta*mem[t-1] + x[t] - thr*spike[t-1], worked
    in floats with beta = 0.5 and 6 fractional bits (every value exact), spikes on mem >= thr (the contract's
    comparison; snnTorch's is strict, which the NIR import maps to theta = floor(thr * 2^k) + 1)."""
    beta, thr = 0.5, 7.0
    x = [8, 8, 0, 8, 3, 0]
    mem, want_v = 0.0, []
    for xt in x:
        mem = beta * mem + xt - thr * (mem >= thr)
        want_v.append(mem)
    net = Network((Layer(np.array([[1] * 8], np.int8), theta=64 * 7, lam=128, frac_bits=8, reset="subtract_next",
                         decay_round="nearest", input_shift=6),))
    spikes = [[1] * n + [0] * (8 - n) for n in x]
    out = traces(net, spikes)
    assert (out.v / 64).tolist() == want_v
    assert out.z.sum() >= 2 and out.z.tolist() == [m >= thr for m in want_v]
    # the v1 subtract takes theta off before the decay, and differs
    v1 = traces(Network((net.layers[0].replace(reset="subtract"),)), spikes)
    assert (v1.v / 64).tolist() != want_v


def test_a_loihi_layer_by_hand():
    """Lava 0.10's bit-accurate LIF: u = trunc(u*(4096-du-1)/4096) + (a << 6); v = trunc(v*(4096-dv)/4096)
    + u + bias, clipped to +-(2^23 - 1); spike when v > vth << 6, then v = 0."""
    du, dv, vth, bias = 400, 300, 3, 10
    x = [2, 0, 1, 2, 0, 0, 0, 2]
    u = v = 0
    want_u, want_v, want_z = [], [], []
    for xt in x:
        pu = u * (4096 - du - 1)
        u = (abs(pu) >> 12) * (1 if pu >= 0 else -1) + (xt << 6)
        pv = v * (4096 - dv)
        v = max(min((abs(pv) >> 12) * (1 if pv >= 0 else -1) + u + bias, 2**23 - 1), -(2**23 - 1))
        want_u.append(u)
        want_v.append(v)
        want_z.append(v > vth << 6)
        v = 0 if v > vth << 6 else v
    net = Network((Layer(np.array([[1, 1]], np.int8), theta=(vth << 6) + 1, bias=bias, neuron="cuba", reset="zero",
                         v_bits=24, u_bits=24, frac_bits=12, lam=dv, alpha=du + 1, decay_round="zero", input_shift=6,
                         bias_to="membrane", u_overflow="wrap", v_range="symmetric"),))
    out = traces(net, [[1] * n + [0] * (2 - n) for n in x])
    assert out.u.tolist() == want_u and out.v.tolist() == want_v and out.z.tolist() == want_z
    assert sum(want_z) >= 2


@needs_native
def test_the_native_engine_runs_v2_layers_and_auto_chooses_it():
    seed = 5
    net = random_network((6, 4), seed=seed, neuron="cuba", alpha=40, lam=30, decay_round="nearest", input_shift=3,
                         bias_to="membrane", u_overflow="wrap", v_range="symmetric", reset="subtract_next")
    s = np.random.default_rng(seed).random((2, 5, 6)) < 0.5
    ref = golden.run(net, s, record=True, engine="reference")
    assert ref.spikes.any(), f"seed={seed}: no spike"
    for engine in ("native", "auto"):
        got = golden.run(net, s, record=True, engine=engine)
        for field in ("z", "v", "u"):
            assert np.array_equal(getattr(got.layers[0], field), getattr(ref.layers[0], field)), (seed, engine, field)
    stepper = golden.Stepper(net, batch=2)
    assert stepper.engine == "native"
    for t in range(5):
        z, v = stepper.step(s[:, t])
        assert np.array_equal(z, ref.spikes[:, t]) and np.array_equal(v, ref.membranes[:, t]), (seed, t)


def test_every_combination_of_options_equals_the_reference():
    """Each of the 2 x 4 x 3 x 2 x 2 x 2 x 2 combinations of neuron, reset and the v2 options on a small random
    network (narrow widths so that saturation and wrap occur) against tests/reference.py, on every engine."""
    from itertools import product

    from spikeloop.network import BIAS_TOS, NEURONS, OVERFLOWS, RESETS, ROUNDINGS, V_RANGES

    seen = {"spike": 0, "u_wrap": 0, "subtract_next": 0, "round_tie": 0, "small_leaked": 0}
    combos = list(product(NEURONS, RESETS, ROUNDINGS, BIAS_TOS, OVERFLOWS, V_RANGES, (0, 3)))
    for seed, (neuron, reset, rounding, bias_to, overflow, v_range, shift) in enumerate(combos):
        net = random_network((9, 7, 5), seed=seed, neuron=neuron, reset=reset, v_bits=7, u_bits=6, frac_bits=4,
                             lam=5, alpha=3 if neuron == "cuba" else None, decay_round=rounding, input_shift=shift,
                             bias_to=bias_to, u_overflow=overflow, v_range=v_range)
        s = np.random.default_rng(seed).random((2, 12, 9)) < 0.5
        r = ref.run_reference([ref.RefLayer.of(layer) for layer in net.layers], s.astype(int).tolist())
        for engine in ENGINES:
            got = golden.run(net, s, record=True, engine=engine)
            for k, rec in enumerate(got.layers):
                for field in ("z", "v", "u"):
                    assert np.array_equal(getattr(rec, field), np.array(getattr(r, field)[k])), (
                        f"seed {seed}: {engine} layer {k} {field} ({net.layers[k].options()}, {neuron}, {reset})")
        t = tg.GoldenModel(net).run(torch.from_numpy(s), record=True, engine="torch")
        for k, rec in enumerate(t.layers):
            assert np.array_equal(rec.v.numpy(), np.array(r.v[k])), f"seed {seed}: torch layer {k} v'"
            assert np.array_equal(rec.z.numpy(), np.array(r.z[k], bool)), f"seed {seed}: torch layer {k} z"
        for key in seen:
            seen[key] += r.events[key] > 0
    assert len(combos) == 384
    assert seen["spike"] >= 0.8 * len(combos) and all(seen.values()), seen
