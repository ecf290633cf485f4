"""NIR in and out (spikeloop.quant.nir): round trips, snnTorch's own exports, the profile, refusals."""

import warnings
from fractions import Fraction

import nir
import numpy as np
import pytest
import torch
from reference import RefLayer, run_reference

from spikeloop import golden
from spikeloop.network import Layer, Network, random_network
from spikeloop.quant.models import feedforward
from spikeloop.quant.nir import NIRError, from_nir, model_to_nir, read_nir, to_nir, write_nir
from spikeloop.spikes import poisson_spikes

snn = pytest.importorskip("snntorch")
from snntorch import utils as snn_utils  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402

#: The v1 contract's arithmetic (F = 8, no input shift, floor), which the checks of the profile's fields below
#: spell out; imports of float graphs default to `FLOAT_DEFAULTS` (test_quant_nir_fidelity.py measures why).
V1 = dict(frac_bits=8, input_shift=0, decay_round="floor")

ROUND_TRIP = [
    # (seed, neuron, reset, frac_bits, lam, alpha)
    (0, "lif", "subtract", 8, 32, None),
    (1, "lif", "zero", 5, 0, None),  # no leak: an IF node
    (2, "lif", "none", 0, 1, None),  # F = 0, lam = 2^F: forget everything
    (3, "cuba", "subtract", 7, 37, 19),
    (4, "cuba", "zero", 8, 0, 0),  # no decay at all: infinite time constants
    (5, "cuba", "none", 12, 4096, 1),
]


@pytest.mark.parametrize("case", ROUND_TRIP, ids=[f"seed{c[0]}-{c[1]}-{c[2]}" for c in ROUND_TRIP])
def test_round_trip_spikeloop_nir_spikeloop_is_equal(case, tmp_path):
    seed, neuron, reset, frac_bits, lam, alpha = case
    net = random_network((23, 11, 7, 4), seed=seed, neuron=neuron, reset=reset, frac_bits=frac_bits, lam=lam,
                         alpha=alpha, v_bits=12, u_bits=14)
    rng = np.random.default_rng(seed)
    layers = [layer.replace(bias=rng.integers(-5, 6, layer.n_out)) for layer in net.layers]
    net = Network((*layers[:-1], layers[-1].replace(bias=0)))  # the last one as a Linear node
    back, report = from_nir(to_nir(net))
    assert back == net, f"seed {seed}"
    assert back.content_hash == net.content_hash
    path = write_nir(net, tmp_path / "net.nir", dt=1e-3)
    again, report = from_nir(path)
    assert again == net, f"seed {seed}"
    assert report.dt == 1e-3 and all(r.reset_source == "spikeloop metadata" for r in report.layers)
    kinds = {type(n).__name__ for n in read_nir(path).nodes.values()}
    assert kinds >= ({"CubaLIF"} if neuron == "cuba" else {"IF"} if lam == 0 else {"LIF"})
    assert "Linear" in kinds and "Affine" in kinds


def test_round_trip_at_the_edges_of_the_widths():
    """32-bit thresholds and biases survive the float64 fields (theta - 1/2 is not snapped to an integer)."""
    w = np.array([[1, -1, 1], [-1, -1, 1], [1, 1, 1]], np.int8)
    big = Layer(w, theta=[1, 2**30, 2**31 - 1], bias=[-(2**31), 2**31 - 1, 12345], v_bits=32, u_bits=32,
                neuron="cuba", frac_bits=16, lam=65535, alpha=3)
    small = Layer(w, theta=[1, 1, 1], bias=[-2, 1, 0], v_bits=2, u_bits=2, frac_bits=16, lam=1)
    net = Network((big, small))
    assert from_nir(to_nir(net, dt=0.37)).network == net


def test_trained_model_to_nir_and_back():
    model = feedforward((10, 8, 3), readout="count", leak=0.25, seed=3)
    calib = poisson_spikes((20, 6, 10), 0.4, seed=3).astype(np.uint8)
    graph, network, export_report = model_to_nir(model, calibration=calib)
    assert from_nir(graph).network == network
    assert "export report" in str(export_report)


def _snntorch_net(seed, beta, reset, *, synaptic=False, half_biases=True):
    """A binary-weight snnTorch network (per-neuron parameters, as NIR type checking needs)."""
    torch.manual_seed(seed)
    sizes = (20, 12, 6)
    second = (
        snn.Synaptic(alpha=torch.full((6,), 0.75), beta=torch.full((6,), beta), threshold=torch.full((6,), 1.5),
                     init_hidden=True, reset_mechanism=reset, output=True)
        if synaptic else
        snn.Leaky(beta=torch.full((6,), beta), threshold=torch.full((6,), 1.5), init_hidden=True,
                  reset_mechanism=reset, output=True)
    )
    net = torch.nn.Sequential(
        torch.nn.Linear(sizes[0], sizes[1]),
        snn.Leaky(beta=torch.full((12,), beta), threshold=torch.full((12,), 2.0), init_hidden=True,
                  reset_mechanism=reset),
        torch.nn.Linear(sizes[1], sizes[2], bias=False),
        second,
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in (net[0], net[2]):
            lin.weight.copy_(torch.where(torch.rand(lin.weight.shape, generator=gen) < 0.5, -1.0, 1.0))
        net[0].bias.copy_(torch.randint(-2, 3, (12,), generator=gen).float())
        if half_biases:
            net[0].bias[0] = 0.5  # half to even: 0
            net[0].bias[1] = 1.5  # half to even: 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # beta = 1 divides by zero inside snnTorch
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch's own, about its API
        graph = export_to_nir(net, torch.zeros(sizes[0]))
    return net, graph


def _snntorch_spikes(net, x):
    snn_utils.reset(net)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            spk, _ = net(torch.as_tensor(x[:, t], dtype=torch.float32))
            out.append(spk.numpy())
    return np.stack(out, 1).astype(bool)


def test_snntorch_export_imports_with_the_profile_fields(tmp_path):
    net, graph = _snntorch_net(0, 0.875, "subtract", synaptic=True)
    nir.write(tmp_path / "snntorch.nir", graph)
    assert from_nir(tmp_path / "snntorch.nir").network == from_nir(graph).network
    kinds = sorted(type(n).__name__ for n in graph.nodes.values())
    assert kinds == ["Affine", "CubaLIF", "Input", "LIF", "Linear", "Output"]
    network, report = from_nir(graph, **V1)
    first, second = network.layers
    assert (first.neuron, first.lam, first.alpha, first.reset) == ("lif", 32, 0, "zero")  # 256 * (1 - 0.875)
    assert (second.neuron, second.lam, second.alpha) == ("cuba", 32, 64)  # 256 * (1 - 0.75)
    assert first.theta.tolist() == [3] * 12  # v > 2  <=>  v >= 3
    assert second.theta.tolist() == [2] * 6  # v > 1.5  <=>  v >= 2
    np.testing.assert_array_equal(first.weights, net[0].weight.detach().numpy())
    np.testing.assert_array_equal(second.weights, net[2].weight.detach().numpy())
    expected_bias = np.round(net[0].bias.detach().numpy().astype(np.float64))  # numpy: half to even
    assert first.bias.tolist() == expected_bias.astype(int).tolist() and first.bias[:2].tolist() == [0, 2]
    assert not second.bias.any()
    text = str(report)
    assert "LIF -> lif" in text and "CubaLIF -> cuba" in text and "bias: 2 rounded, max |d| = 0.5" in text
    # snnTorch's graph does not say its reset (subtract here): the report says what was assumed and the way out
    (warning,) = report.warnings
    assert "does not say which reset layer(s) 0, 1 use" in warning and "--reset subtract_next" in warning
    assert f"warning: {warning}" in text
    given = from_nir(graph, reset="subtract")
    assert given.network.layers[0].reset == "subtract" and given.report.warnings == ()
    assert from_nir(to_nir(given.network)).report.warnings == ()  # spikeloop's metadata says it


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_snntorch_forward_equals_the_golden_model_where_the_arithmetic_is_exact(beta):
    """No leak (beta = 1) or total leak (beta = 0) with reset to zero: snnTorch's float arithmetic
    is integer arithmetic on these +/-1 weights and integer biases, so its spikes must equal the
    imported network's."""
    seed = 11
    net, graph = _snntorch_net(seed, beta, "zero", half_biases=False)
    network, _ = from_nir(graph)
    x = poisson_spikes((40, 25, 20), 0.3, seed=seed)
    ours = golden.run(network, x).spikes
    theirs = _snntorch_spikes(net, x)
    assert ours.any() and not ours.all(), f"seed {seed}: vacuous comparison"
    np.testing.assert_array_equal(ours, theirs, err_msg=f"seed {seed}")


# ---- the profile, written again from docs/nir.md with exact fractions ----------------------------


def _near(x: Fraction, unit: Fraction) -> Fraction:
    """x, or the multiple of `unit` it is within 1e-6 (relative) of."""
    grid = round(x / unit) * unit
    return grid if abs(x - grid) <= Fraction(1, 10**6) * max(1, abs(x)) else x


def _profile_layer(syn, neu, dt: Fraction, frac: int, reset: str) -> RefLayer:
    one = Fraction(1 << frac)

    def fr(a, j):
        v = np.asarray(a, np.float64).reshape(-1)
        return Fraction(float(v[j if v.size > 1 else 0]))

    w = np.asarray(syn.weight)
    n = w.shape[0]
    kind = type(neu).__name__
    theta, bias = [], []
    lam = alpha = 0
    for j in range(n):
        if kind == "IF":
            gain = fr(neu.r, j)
        elif kind == "LIF":
            tau = fr(neu.tau, j)
            lam = round(_near(one * dt / tau, Fraction(1, 2)))
            gain = fr(neu.r, j) * dt / tau
        else:
            ts, tm = fr(neu.tau_syn, j), fr(neu.tau_mem, j)
            alpha = round(_near(one * dt / ts, Fraction(1, 2)))
            lam = round(_near(one * dt / tm, Fraction(1, 2)))
            gain = fr(neu.w_in, j) * dt / ts * fr(neu.r, j) * dt / tm
        t = _near(fr(neu.v_threshold, j) / gain, Fraction(1))
        theta.append(int(t // 1) + 1)
        b = fr(syn.bias, j) if hasattr(syn, "bias") else Fraction(0)
        bias.append(round(_near(b, Fraction(1, 2))))  # Python's round: half to even
    return RefLayer([[int(v) for v in row] for row in w], theta, bias, neuron="lif" if kind != "CubaLIF" else "cuba",
                    reset=reset, frac_bits=frac, lam=lam, alpha=alpha)


def _norse_style_graph():
    """NIR's equations with the field values older Norse wrote (r = 1, w_in = 1, tau = 1/tau_inv, as in the NIR
    paper's LIF graph), +/-1 weights; Norse 1.1.0 writes tau = dt/tau_inv (test_quant_nir_fidelity.py)."""
    rng = np.random.default_rng(5)
    w1 = rng.choice([-1.0, 1.0], size=(9, 14)).astype(np.float32)
    w2 = rng.choice([-1.0, 1.0], size=(4, 9)).astype(np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([14])}),
        "linear": nir.Affine(weight=w1, bias=np.zeros(9, np.float32)),
        "lif": nir.LIF(tau=np.full(9, 1 / 100, np.float32), r=np.ones(9, np.float32), v_leak=np.zeros(9, np.float32),
                       v_threshold=np.full(9, 0.3, np.float32), v_reset=np.zeros(9, np.float32)),
        "linear2": nir.Linear(weight=w2),
        "cuba": nir.CubaLIF(tau_syn=np.full(4, 1 / 200, np.float32), tau_mem=np.full(4, 1 / 100, np.float32),
                            r=np.ones(4, np.float32), v_leak=np.zeros(4, np.float32),
                            v_threshold=np.full(4, 0.02, np.float32), w_in=np.ones(4, np.float32)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])))


@pytest.mark.parametrize("source", ["snntorch", "norse"])
def test_imported_golden_output_equals_the_profile(source):
    """Integer equality between the golden model of the imported network and the profile's
    equations applied to the NIR fields by this test's own code (tests/reference.py)."""
    seed = 21
    if source == "snntorch":
        _, graph = _snntorch_net(seed, 0.8, "zero", synaptic=True)
        dt, imported = Fraction(1, 10**4), from_nir(graph, **V1).network
    else:
        graph = _norse_style_graph()
        dt, imported = Fraction(1, 1000), from_nir(graph, dt=1e-3, **V1).network
    succ = dict(graph.edges)
    chain, name = [], succ["input"]
    while name != "output":
        chain.append(graph.nodes[name])
        name = succ[name]
    syns = [n for n in chain if type(n).__name__ in ("Linear", "Affine")]
    neus = [n for n in chain if type(n).__name__ in ("LIF", "CubaLIF", "IF")]
    ref = [_profile_layer(s, n, dt, 8, "zero") for s, n in zip(syns, neus)]
    assert [RefLayer.of(layer) for layer in imported.layers] == ref
    x = poisson_spikes((6, 30, imported.n_in), 0.35, seed=seed)
    want = run_reference(ref, x.astype(int).tolist())
    got = golden.run(imported, x, record=True)
    for k, layer in enumerate(got.layers):
        np.testing.assert_array_equal(layer.z.astype(int), np.array(want.z[k]), err_msg=f"seed {seed} layer {k}")
        np.testing.assert_array_equal(layer.v, np.array(want.v[k]), err_msg=f"seed {seed} layer {k}")
    assert want.events["spike"] > 0, f"seed {seed}: no spike, the comparison would be vacuous"


def test_norse_style_gains_are_folded_into_thresholds():
    network, report = from_nir(_norse_style_graph(), dt=1e-3, **V1)
    first, second = network.layers
    # LIF: dt/tau = 0.1 -> lam = round(25.6) = 26, input gain r*dt/tau = 0.1: v > 0.3 is 3 weight units -> theta 4
    assert (first.lam, first.theta[0]) == (26, 4)
    # CubaLIF: alpha = 256*0.2 = 51.2 -> 51, lam = 26; gain 0.2*0.1 = 0.02: v > 0.02 is 1 unit -> theta 2
    assert (second.alpha, second.lam, second.theta[0]) == (51, 26, 2)
    assert report.layers[1].gain[0] == pytest.approx(0.02)
    # with snnTorch's dt the Norse time constants would decay by dt/tau = 0.01 (not what Norse means): it says so
    assert from_nir(_norse_style_graph(), **V1).report.dt == 1e-4


def test_binarize_takes_signs_and_folds_the_scale():
    w = np.array([[0.5, -0.25, 0.25, -0.5], [-2.0, 2.0, 1.0, 3.0]])
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([4])}),
        nir.Affine(weight=w, bias=np.array([0.375, -3.0])),
        nir.IF(r=np.ones(2), v_threshold=np.array([0.75, 4.0]), v_reset=np.zeros(2)),
        nir.Output(output_type={"output": np.array([2])}),
    )
    with pytest.raises(NIRError, match=r"node 'affine': weight\[0, 0\] = 0.5, expected exactly \+1 or -1; pass "
                                       "binarize=True"):
        from_nir(graph)
    network, report = from_nir(graph, binarize=True, **V1)
    layer = network.layers[0]
    assert layer.weights.tolist() == [[1, -1, 1, -1], [-1, 1, 1, 1]]
    # row scales 0.375 and 2: theta from 0.75/0.375 = 2 -> 3 and 4/2 = 2 -> 3; bias 1 and -1.5 -> -2
    assert layer.theta.tolist() == [3, 3] and layer.bias.tolist() == [1, -2]
    assert report.layers[0].scale == (0.375, 2.0) and "binarized" in str(report)


def _chain_graph(*middle, n_in=3):
    return nir.NIRGraph.from_list(nir.Input(input_type={"input": np.array([n_in])}), *middle,
                                  nir.Output(output_type={"output": np.array([2])}), type_check=False)


def _lin(n_out=2, n_in=3):
    return nir.Linear(weight=np.ones((n_out, n_in)))


def _lif(n=2, **kw):
    fields = dict(tau=np.full(n, 8e-4), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                  v_reset=np.zeros(n))
    fields.update(kw)
    return nir.LIF(**fields)


def _recurrent():
    """A layer whose neurons feed back only their own spikes (a diagonal recurrent weight), as a subgraph."""
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}), "lif": _lif(), "w": nir.Linear(weight=np.eye(2)),
             "output": nir.Output(output_type={"output": np.array([2])})}
    sub = nir.NIRGraph(nodes=nodes, edges=[("input", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")])
    return _chain_graph(_lin(), sub)


def _recurrent_edge():
    """A recurrent layer written flat: the neuron's spikes fed back into its own synapses."""
    g = _chain_graph(_lin(), _lif())
    g.edges.append(("lif", "linear"))
    return g


def _branching():
    g = _chain_graph(_lin(), _lif())
    g.nodes["extra"] = _lif()
    g.edges.append(("linear", "extra"))
    return g


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (lambda: _chain_graph(nir.Conv2d(input_shape=None, weight=np.ones((1, 1, 2, 2)), stride=1, padding=0,
                                          dilation=1, groups=1, bias=np.zeros(1)), _lif()), {},
         "node 'conv2d' is a Conv2d after the input; expected Linear or Affine"),
        (_recurrent, {}, (r"node 'nirgraph.w': the recurrent weight is diagonal .* as snnTorch's "
                          r"RLeaky\(all_to_all=False\) writes.: a self-only recurrence cannot be expressed")),
        (lambda: _chain_graph(_lin(), _lif(v_leak=np.array([0.0, 0.1]))), {},
         r"node 'lif': v_leak\[1\] = 0.1, expected 0"),
        (lambda: _chain_graph(_lin(), _lif(v_reset=np.array([-1.0, 0.0]))), {},
         r"node 'lif': v_reset\[0\] = -1, expected 0"),
        (lambda: _chain_graph(_lin(), _lif(tau=np.array([8e-4, 4e-4]))), {},
         "node 'lif': tau gives decay factors from 32 to 64 .F = 8. across neurons; the contract has one per layer"),
        (lambda: _chain_graph(_lin(), _lif(tau=np.full(2, 5e-5))), {},
         r"node 'lif': tau\[0\] = 5e-05, expected a time constant >= dt = 0.0001 s"),
        (lambda: _chain_graph(_lin(), _lif(tau=np.array([8e-4, -1.0]))), {},
         r"node 'lif': tau\[1\] = -1, expected a positive time constant"),
        (lambda: _chain_graph(_lin(), _lif(tau=np.full(2, np.inf))), {},
         r"node 'lif': tau\[0\] = inf with r\[0\] = 8: the input gain r\*dt/tau is undefined"),
        (lambda: _chain_graph(_lin(), _lif(v_threshold=np.array([1.0, -1.5]))), {},
         r"node 'lif': v_threshold\[1\] = -1.5 is -1.5 contract units, giving theta = -1; expected a threshold >= 0"),
        (lambda: _chain_graph(_lin(), _lif(r=np.array([8.0, 0.0]))), {},
         r"node 'lif': input gain\[1\] = 0, expected a positive finite number"),
        (lambda: _chain_graph(_lin(), nir.LI(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2))), {},
         "node 'li' is a LI after 'linear'; expected LIF, CubaLIF or IF .spikeloop layers spike"),
        (lambda: _chain_graph(_lin(), _lif(), _lin(2, 2)), {},
         r"node 'linear_1' \(Linear\) feeds the output directly; expected a LIF, CubaLIF or IF"),
        (lambda: _chain_graph(_lin(), _lif(), _lif()), {}, "node 'lif_1' is a LIF after the neuron node 'lif'"),
        (lambda: _chain_graph(_lin(2, 4), _lif()), {},
         "node 'linear': weight has 4 inputs, expected 3 .the input size"),
        (lambda: _chain_graph(nir.Linear(weight=np.array([[1.0, np.nan, 1.0]] * 2)), _lif()), {},
         r"node 'linear': weight\[0, 1\] = nan, expected a finite number"),
        (lambda: _chain_graph(nir.Linear(weight=np.array([[0.0] * 3, [1.0] * 3])), _lif()), {"binarize": True},
         "node 'linear': weight row 0 is all zero"),
        (_branching, {}, "node 'linear' feeds both 'lif' and 'extra'; spikeloop imports a single chain"),
        (lambda: _chain_graph(_lin(), _lif()), {"dt": 0}, "dt = 0, expected a positive number of seconds"),
        (lambda: _chain_graph(_lin(), _lif()), {"reset": "soft"}, "reset = 'soft', expected one of subtract"),
        (lambda: _chain_graph(_lin(), _lif()), {"frac_bits": 17}, r"frac_bits = 17, expected an integer in \[0, 16\]"),
        (lambda: _chain_graph(_lin(), _lif()), {"v_bits": 2.5}, "v_bits = 2.5, expected an integer"),
        (lambda: _chain_graph(_lin(), _lif(v_threshold=np.full(2, 40.0))), {"v_bits": 6},
         (r"node 'lif': theta\[0\] = 41 is outside \[1, 31\], the range of v_bits = 6; expected v_bits >= 7 "
          r"\(spikeloop nir import --v-bits 7\)")),
        (_recurrent_edge, {}, (r"edge \('lif', 'linear'\) is recurrent \(linear -> lif -> linear\): it enters "
                               "'linear', a Linear, not a neuron node")),
        (lambda: _chain_graph(_lin()), {}, r"node 'linear' \(Linear\) feeds the output directly"),
        (lambda: _chain_graph(), {}, "the graph has no Linear/Affine -> LIF/CubaLIF/IF layer"),
        (lambda: "not a graph.txt", {}, "not a graph.txt: no such NIR file"),
        (lambda: 42, {}, "expected a nir.NIRGraph or the path of a NIR file, got int"),
    ],
)
def test_import_refusals_name_the_node(make, kwargs, match):
    with pytest.raises(NIRError, match=match):
        from_nir(make(), **{**V1, **kwargs})


def test_every_layer_s_problems_are_reported_at_once():
    graph = _chain_graph(_lin(), _lif(v_leak=np.array([0.0, 0.1])), _lin(2, 2), _lif(v_reset=np.array([0.0, -1.0])))
    with pytest.raises(NIRError) as info:
        from_nir(graph)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems in the graph:"
    assert lines[1].startswith(r"- node 'lif': v_leak[1] = 0.1, expected 0")
    assert lines[2].startswith(r"- node 'lif_1': v_reset[1] = -1, expected 0")


def test_file_refusals_and_export_refusals(tmp_path):
    bad = tmp_path / "junk.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(NIRError, match="junk.nir: not a readable NIR graph"):
        from_nir(bad)
    # a file NIR's own type check refuses (here an output shape no node gives) is named with the way around it
    older = tmp_path / "older.nir"
    graph = _chain_graph(_lin(), _lif())
    graph.nodes["output"] = nir.Output(output_type={"output": np.array([5])})
    nir.write(older, graph)
    with pytest.raises(NIRError, match=r"older.nir: NIR's type check refuses the graph .*import with "
                                       r"type_check=False \(spikeloop nir import --no-type-check\)"):
        from_nir(older)
    assert from_nir(older, type_check=False).network.sizes == (3, 2)
    # a node type the installed NIR does not know is named, not reported as NIR's bare AssertionError
    import h5py

    unknown = tmp_path / "dendrite.nir"
    nir.write(unknown, _chain_graph(_lin(), _lif()))
    with h5py.File(unknown, "r+") as f:
        del f["node/nodes/linear/type"]
        f["node/nodes/linear/type"] = b"Dendrite"
    with pytest.raises(NIRError, match="dendrite.nir: node 'linear' has type 'Dendrite', which NIR .* does not know "
                                       r"\(it knows .*Linear.*\)"):
        from_nir(unknown)
    with pytest.raises(NIRError, match="expected a Network, got str"):
        to_nir("net.npz")
    net = random_network((5, 4, 3), seed=0)
    with pytest.raises(NIRError, match="dt = -1.0, expected a positive number"):
        to_nir(net, dt=-1.0)
    mixed = Network((net.layers[0], Layer(net.layers[1].weights, theta=2, frac_bits=4)))
    with pytest.raises(NIRError, match=r"the layers use frac_bits \[4, 8\]; the NIR profile has one F per graph"):
        to_nir(mixed)


def test_a_leading_flatten_takes_the_input_in_c_order():
    w = np.where(np.arange(12).reshape(2, 6) % 3 == 0, 1.0, -1.0)
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([2, 3])}),
        nir.Flatten(input_type={"input": np.array([2, 3])}, start_dim=0, end_dim=-1),
        nir.Linear(weight=w),
        nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.5), v_reset=np.zeros(2)),
        nir.Output(output_type={"output": np.array([2])}),
    )
    network, _ = from_nir(graph)
    assert network.n_in == 6 and network.layers[0].weights.tolist() == w.astype(int).tolist()


@pytest.mark.parametrize("seed, options", [
    (7, dict(decay_round="zero", input_shift=6, bias_to="membrane", u_overflow="wrap", v_range="symmetric")),
    (8, dict(decay_round="nearest", input_shift=12, reset="subtract_next")),
])
def test_round_trip_keeps_the_contract_v2_options(seed, options, tmp_path):
    """Thresholds and biases go out in weight units (divided by 2^k) and come back equal; the options ride in
    spikeloop's metadata (a graph without them is a v1 network: OPTION_DEFAULTS)."""
    net = random_network((17, 9, 5), seed=seed, neuron="cuba", frac_bits=12, lam=300, alpha=900, v_bits=24,
                         u_bits=24)
    rng = np.random.default_rng(seed)
    net = Network(tuple(layer.replace(bias=rng.integers(-3000, 3000, layer.n_out), **options)
                        for layer in net.layers))
    assert from_nir(to_nir(net)).network == net, f"seed {seed}"
    assert from_nir(write_nir(net, tmp_path / "v2.nir")).network == net, f"seed {seed}"
