"""The numpy and PyTorch golden models agree on larger networks, and their APIs agree with each other.

The small-network equality with the scalar reference is in test_golden_properties.py; here the
networks are MNIST-sized, so the two models are compared with each other (integer equality).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikeloop import golden as npg
from spikeloop.network import Layer, Network, random_network
from spikeloop.quant import golden as tg
from spikeloop.spikes import SpikeError, poisson_spikes

CONFIGS = {
    "lif-784-256-10": dict(sizes=(784, 256, 10), neuron="lif", reset="subtract"),
    "cuba-784-256-10": dict(sizes=(784, 256, 10), neuron="cuba", reset="subtract"),
    "lif-3-layers-zero": dict(sizes=(200, 64, 32, 10), neuron="lif", reset="zero"),
    "cuba-3-layers-none": dict(sizes=(200, 64, 32, 10), neuron="cuba", reset="none", v_bits=8, u_bits=6),
    "cuba-small-bits": dict(sizes=(100, 40, 10), neuron="cuba", reset="subtract", v_bits=4, u_bits=3, frac_bits=2),
}
BATCH, STEPS, DENSITY = 4, 50, 0.2


def setup(name: str):
    cfg = dict(CONFIGS[name])
    sizes = cfg.pop("sizes")
    seed = sorted(CONFIGS).index(name) + 100
    net = random_network(sizes, seed=seed, **cfg)
    spikes = poisson_spikes((BATCH, STEPS, sizes[0]), DENSITY, seed=seed + 1)
    return net, spikes, seed


def np_of(x) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def assert_same(what: str, a, b, seed: int) -> None:
    a, b = np_of(a), np_of(b)
    assert a.shape == b.shape, f"seed {seed}: {what}: shapes {a.shape} vs {b.shape}"
    assert a.dtype == b.dtype, f"seed {seed}: {what}: dtypes {a.dtype} vs {b.dtype}"
    if not np.array_equal(a, b):
        idx = tuple(int(i) for i in np.argwhere(a != b)[0])
        raise AssertionError(f"seed {seed}: {what}{list(idx)}: {a[idx]} vs {b[idx]}")


def assert_traces_equal(what: str, t1, t2, seed: int) -> None:
    assert_same(f"{what} spikes", t1.spikes, t2.spikes, seed)
    assert_same(f"{what} membranes", t1.membranes, t2.membranes, seed)
    assert (t1.layers is None) == (t2.layers is None)
    for k, (r1, r2) in enumerate(zip(t1.layers or (), t2.layers or ())):
        for f in ("z", "v", "u"):
            assert_same(f"{what} layer {k} {f}", getattr(r1, f), getattr(r2, f), seed)
    assert len(t1.states) == len(t2.states)
    for k, (s1, s2) in enumerate(zip(t1.states, t2.states)):
        assert_same(f"{what} state {k} v", s1.v, s2.v, seed)
        assert_same(f"{what} state {k} u", s1.u, s2.u, seed)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_numpy_and_torch_agree(name):
    net, spikes, seed = setup(name)
    np_trace = npg.run(net, spikes, record=True)
    t_trace = tg.GoldenModel(net).run(spikes, record=True)
    assert_traces_equal(name, np_trace, t_trace, seed)
    # Not vacuous: every layer fired, but not everywhere.
    for k, rec in enumerate(np_trace.layers):
        rate = rec.z.mean()
        assert 0 < rate < 1, f"seed {seed}: layer {k} firing rate {rate}"
    assert np_trace.spikes.shape == (BATCH, STEPS, net.n_out) and np_trace.spikes.dtype == np.bool_
    assert np_trace.membranes.dtype == np.int64


def test_small_bits_config_saturates():
    net, spikes, seed = setup("cuba-small-bits")
    trace = npg.run(net, spikes, record=True)
    for k, (layer, rec) in enumerate(zip(net.layers, trace.layers)):
        v_hi, u_hi = (1 << (layer.v_bits - 1)) - 1, (1 << (layer.u_bits - 1)) - 1
        assert (rec.v == v_hi).any() or (rec.v == -v_hi - 1).any(), f"seed {seed}: layer {k} v never at a rail"
        assert (np.abs(rec.u) >= u_hi).any(), f"seed {seed}: layer {k} u never at a rail"


@pytest.mark.parametrize("name", ["lif-784-256-10", "cuba-3-layers-none"])
def test_unrecorded_run_is_the_last_layer(name):
    net, spikes, seed = setup(name)
    full = npg.run(net, spikes, record=True)
    short = npg.run(net, spikes)
    assert short.layers is None
    assert_same("spikes", short.spikes, full.layers[-1].z, seed)
    assert_same("membranes", short.membranes, full.layers[-1].v, seed)
    model = tg.GoldenModel(net)
    t_short = model.run(spikes)
    assert t_short.layers is None
    assert_same("torch spikes", t_short.spikes, short.spikes, seed)
    assert_same("forward", model(torch.from_numpy(spikes)), short.spikes, seed)


@pytest.mark.parametrize("name", ["cuba-784-256-10", "lif-3-layers-zero"])
@pytest.mark.parametrize("cuts", [(20,), (1, 2, 49), (10, 25, 40)])
def test_continuing_via_states_equals_one_run(name, cuts):
    net, spikes, seed = setup(name)
    whole_np = npg.run(net, spikes, record=True)
    model = tg.GoldenModel(net)
    whole_t = model.run(spikes, record=True)
    bounds = [0, *cuts, STEPS]
    np_states = t_states = None
    np_parts, t_parts = [], []
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        p = npg.run(net, spikes[:, t0:t1], record=True, states=np_states)
        q = model.run(spikes[:, t0:t1], record=True, states=t_states)
        np_parts.append(p)
        t_parts.append(q)
        np_states, t_states = p.states, q.states
    for k in range(len(net.layers)):
        for f in ("z", "v", "u"):
            np_cat = np.concatenate([getattr(p.layers[k], f) for p in np_parts], axis=1)
            t_cat = torch.cat([getattr(q.layers[k], f) for q in t_parts], dim=1)
            assert_same(f"numpy layer {k} {f}", np_cat, getattr(whole_np.layers[k], f), seed)
            assert_same(f"torch layer {k} {f}", t_cat, getattr(whole_t.layers[k], f), seed)
    for k in range(len(net.layers)):
        assert_same(f"numpy state {k} v", np_states[k].v, whole_np.states[k].v, seed)
        assert_same(f"numpy state {k} u", np_states[k].u, whole_np.states[k].u, seed)
        assert_same(f"torch state {k} v", t_states[k].v, whole_t.states[k].v, seed)
        assert_same(f"torch state {k} u", t_states[k].u, whole_t.states[k].u, seed)


def test_states_are_not_modified():
    net, spikes, seed = setup("cuba-3-layers-none")
    first = npg.run(net, spikes[:, :10])
    saved = [(s.v.copy(), s.u.copy()) for s in first.states]
    a = npg.run(net, spikes[:, 10:], states=first.states)
    b = npg.run(net, spikes[:, 10:], states=first.states)
    assert_same("rerun", a.spikes, b.spikes, seed)
    for (v, u), s in zip(saved, first.states):
        assert_same("v", s.v, v, seed)
        assert_same("u", s.u, u, seed)
    model = tg.GoldenModel(net)
    t_first = model.run(spikes[:, :10])
    t_saved = [(s.v.clone(), s.u.clone()) for s in t_first.states]
    model.run(spikes[:, 10:], states=t_first.states)
    for (v, u), s in zip(t_saved, t_first.states):
        assert_same("torch v", s.v, v, seed)
        assert_same("torch u", s.u, u, seed)


@pytest.mark.parametrize("name", ["cuba-784-256-10", "lif-3-layers-zero", "cuba-small-bits"])
def test_step_api_equals_run_api(name):
    net, spikes, seed = setup(name)
    whole = npg.run(net, spikes, record=True)
    model = tg.GoldenModel(net)
    np_states = npg.initial_state(net, BATCH)
    t_states = model.initial_state(BATCH)
    assert all(s.v.shape == (BATCH, layer.n_out) and not s.v.any() for s, layer in zip(np_states, net.layers))
    assert all(s.v.shape == (BATCH, layer.n_out) and not s.v.any() for s, layer in zip(t_states, net.layers))
    np_steps, t_steps = [], []
    for t in range(STEPS):
        outs, np_states = npg.network_step(net, spikes[:, t], np_states)
        np_steps.append(outs)
        t_outs, t_states = model.step(torch.from_numpy(spikes[:, t]), t_states)
        t_steps.append(t_outs)
    for k in range(len(net.layers)):
        for f in ("z", "v", "u"):
            expected = getattr(whole.layers[k], f)
            assert_same(f"numpy step layer {k} {f}", np.stack([getattr(o[k], f) for o in np_steps], 1), expected, seed)
            assert_same(f"torch step layer {k} {f}", torch.stack([getattr(o[k], f) for o in t_steps], 1), expected,
                        seed)
        assert_same(f"numpy step state {k} v", np_states[k].v, whole.states[k].v, seed)
        assert_same(f"numpy step state {k} u", np_states[k].u, whole.states[k].u, seed)
        assert_same(f"torch step state {k} v", t_states[k].v, whole.states[k].v, seed)
        assert_same(f"torch step state {k} u", t_states[k].u, whole.states[k].u, seed)


def test_unbatched_input_equals_batch_of_one():
    net, spikes, seed = setup("cuba-3-layers-none")
    one = spikes[2]
    for run in (lambda x, **kw: npg.run(net, x, **kw), lambda x, **kw: tg.GoldenModel(net).run(x, **kw)):
        unbatched = run(one, record=True)
        batched = run(one[None], record=True)
        assert tuple(unbatched.spikes.shape) == (STEPS, net.n_out)
        assert_same("spikes", unbatched.spikes, batched.spikes[0], seed)
        assert_same("membranes", unbatched.membranes, batched.membranes[0], seed)
        for k, (a, b) in enumerate(zip(unbatched.layers, batched.layers)):
            for f in ("z", "v", "u"):
                assert_same(f"layer {k} {f}", getattr(a, f), getattr(b, f)[0], seed)
        for a, b in zip(unbatched.states, batched.states):  # states keep the batch axis
            assert_same("state v", a.v, b.v, seed)


def test_batch_entries_are_independent():
    net, spikes, seed = setup("cuba-784-256-10")
    whole = npg.run(net, spikes, record=True)
    for b in range(BATCH):
        alone = npg.run(net, spikes[b], record=True)
        assert_same(f"batch {b} spikes", alone.spikes, whole.spikes[b], seed)
        assert_same(f"batch {b} membranes", alone.membranes, whole.membranes[b], seed)


@pytest.mark.parametrize("kind", ["bool", "uint8", "int64", "torch-bool", "torch-int"])
def test_input_representations_agree(kind):
    net, spikes, seed = setup("lif-3-layers-zero")
    reference = npg.run(net, spikes, record=True)
    x = {"bool": spikes, "uint8": spikes.astype(np.uint8), "int64": spikes.astype(np.int64),
         "torch-bool": torch.from_numpy(spikes), "torch-int": torch.from_numpy(spikes.astype(np.int64))}[kind]
    assert_traces_equal(kind, npg.run(net, x, record=True), reference, seed)
    assert_traces_equal(kind, tg.GoldenModel(net).run(x, record=True), reference, seed)


def test_models_validate_their_input():
    net, spikes, _ = setup("lif-3-layers-zero")
    model = tg.GoldenModel(net)
    for run in (lambda x: npg.run(net, x), model.run):
        with pytest.raises(SpikeError, match=r"spikes has 199 inputs per timestep.*expects 200"):
            run(spikes[..., :199])
        with pytest.raises(SpikeError, match=r"spikes\[0, 0, 0\] = 2"):
            run(np.full((1, 2, 200), 2))
        with pytest.raises(SpikeError, match="float64"):
            run(spikes.astype(np.float64))


# ----------------------------------------------------------------------------------------------
# The float32 exactness bound


# Every way each model can run (feature-detected: the engines are optional).
RUNNERS = [("numpy", None), *(("numpy", e) for e in getattr(npg, "ENGINES", ()) if e not in ("auto", "native")),
           ("torch", None), *(("torch", e) for e in getattr(tg, "ENGINES", ()) if e not in ("auto", "native"))]


def run_with(model: str, engine, net: Network, spikes, **kw):
    if engine is not None:
        kw["engine"] = engine
    return npg.run(net, spikes, **kw) if model == "numpy" else tg.GoldenModel(net).run(spikes, **kw)


@pytest.mark.parametrize(("model", "engine"), RUNNERS)
@pytest.mark.parametrize("sign", [1, -1])
def test_widest_layer_sum_is_exact(model, engine, sign):
    # n_in = 65536 inputs all firing into weights all +1 (or all -1): a = +/-65536 + bias, exactly.
    n_in = 65536
    layer = Layer(np.full((2, n_in), sign, np.int8), theta=1, bias=[0, -3], v_bits=20, u_bits=20)
    net = Network((layer,))
    spikes = np.ones((1, 2, n_in), np.bool_)
    spikes[0, 1, :-1] = False  # t = 1: a single input fires
    u = np_of(run_with(model, engine, net, spikes, record=True).layers[0].u)
    assert u[0].tolist() == [[sign * n_in, sign * n_in - 3], [sign, sign - 3]]


@pytest.mark.parametrize(("model", "engine"), RUNNERS)
def test_all_engines_agree(model, engine):
    for name in ("cuba-784-256-10", "cuba-small-bits"):
        net, spikes, seed = setup(name)
        reference = npg.run(net, spikes, record=True)
        assert_traces_equal(f"{name} {model} engine={engine}", run_with(model, engine, net, spikes, record=True),
                            reference, seed)


def test_torch_synaptic_input_refuses_n_in_of_2_pow_24():
    # A fake LayerParams whose weights claim 2^24 inputs (a zero-stride view: no memory).
    weights_t = torch.ones(1, 1).expand(1 << 24, 1)
    p = tg.LayerParams(weights_t, torch.ones(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), "lif",
                       "subtract", (-8, 7), (-8, 7), 0, 0, 0)
    s = torch.zeros(1, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"n_in = 16777216: float32 sums are exact only below 2\^24"):
        tg.synaptic_input(s, p)
    with pytest.raises(ValueError, match="n_in = 16777217"):
        tg.synaptic_input(s, p._replace(weights_t=torch.ones(1, 1).expand((1 << 24) + 1, 1)))


def test_torch_synaptic_input_below_the_bound():
    p = tg.LayerParams.of(Layer(np.array([[1, -1, 1]]), bias=[2]))
    s = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    assert tg.synaptic_input(s, p).tolist() == [[3], [3], [1]]


def test_numpy_synaptic_input_refuses_n_in_of_2_pow_24():
    fake = SimpleNamespace(n_in=1 << 24)
    with pytest.raises(AssertionError, match="2\\^24"):
        npg.synaptic_input(fake, np.zeros((1, 1), np.bool_))


def test_layer_params_of():
    layer = Layer(np.array([[1, -1], [-1, -1], [1, 1]]), theta=[1, 2, 3], bias=[-1, 0, 1], neuron="cuba",
                  reset="zero", v_bits=6, u_bits=5, frac_bits=3, lam=2, alpha=8)
    p = tg.LayerParams.of(layer)
    assert p.weights_t.dtype == torch.float32 and p.weights_t.tolist() == layer.weights.T.tolist()
    assert p.theta.dtype == torch.int64 and p.theta.tolist() == [1, 2, 3]
    assert p.bias.dtype == torch.int64 and p.bias.tolist() == [-1, 0, 1]
    assert (p.neuron, p.reset, p.v_range, p.u_range, p.frac_bits, p.lam, p.alpha) == (
        "cuba", "zero", (-32, 31), (-16, 15), 3, 2, 8
    )


# ----------------------------------------------------------------------------------------------
# The step APIs and the contract's input rule


def test_step_apis_accept_integer_0_1_input():
    net, spikes, seed = setup("lif-3-layers-zero")
    model = tg.GoldenModel(net)
    x = spikes[:, 0]
    np_bool, _ = npg.network_step(net, x, npg.initial_state(net, BATCH))
    np_int, _ = npg.network_step(net, x.astype(np.int64), npg.initial_state(net, BATCH))
    t_int, _ = model.step(torch.from_numpy(x.astype(np.uint8)), model.initial_state(BATCH))
    for k in range(len(net.layers)):
        assert_same(f"layer {k} v", np_int[k].v, np_bool[k].v, seed)
        assert_same(f"torch layer {k} v", t_int[k].v, np_bool[k].v, seed)


@pytest.mark.parametrize("api", ["numpy", "torch"])
@pytest.mark.parametrize("value", [2, 0.5])
def test_step_apis_refuse_non_binary_input(api, value):
    net = Network((Layer(np.array([[1, 1]]), theta=1),))
    x = np.array([[value, 0]])
    with pytest.raises(SpikeError):
        if api == "numpy":
            npg.network_step(net, x, npg.initial_state(net, 1))
        else:
            model = tg.GoldenModel(net)
            model.step(torch.as_tensor(x), model.initial_state(1))
