"""Export: trained model -> Network -> image file -> golden model, equal to the hardware-mode model."""

import numpy as np
import pytest
import torch

from spikeloop.network import Network
from spikeloop.quant.export import ExportError, bits_for, check, export, observed_ranges, verify
from spikeloop.quant.golden import GoldenModel
from spikeloop.quant.models import feedforward
from spikeloop.spikes import poisson_spikes

CASES = [
    # (seed, neuron, reset, rule, readout, leak, current_leak, frac_bits)
    (0, "lif", "subtract", "ste", "count", 0.125, None, 8),
    (1, "lif", "zero", "ste", "membrane", 0.3, None, 5),
    (2, "lif", "none", "bayes", "count", 1.0, None, 8),
    (3, "cuba", "subtract", "ste", "count", 0.2, 0.4, 6),
    (4, "cuba", "zero", "bayes", "membrane", 0.0, 1.0, 3),
    (5, "cuba", "none", "ste", "count", 0.5, 0.1, 0),
    (6, "lif", "subtract", "ste", "count", 0.7, None, 1),
]


def _randomize(model, seed):
    """Spread thresholds, biases (also negative) and weight signs so every path of the contract runs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            n = layer.n_out
            layer.theta.copy_(torch.rand(n, generator=gen) * layer.n_in ** 0.5 + 0.3)
            layer.bias.copy_((torch.rand(n, generator=gen) - 0.5) * 6)


def _model(seed, neuron, reset, rule, readout, leak, current_leak, frac_bits):
    model = feedforward((24, 18, 11, 6), neuron=neuron, reset=reset, rule=rule, readout=readout, leak=leak,
                        current_leak=current_leak, frac_bits=frac_bits, out_reset=reset, out_leak=leak, seed=seed)
    _randomize(model, seed)
    return model.eval()


@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}-{c[1]}-{c[2]}-{c[3]}" for c in CASES])
def test_random_model_export_save_load_golden_equal(case, tmp_path):
    model = _model(*case)
    seed = case[0]
    calib = poisson_spikes((40, 15, 24), 0.3, seed=100 + seed).astype(np.uint8)
    network, report = export(model, calibration=calib)
    assert report.saturating == 0 and len(report.layers) == 3
    path = tmp_path / "net.npz"
    network.save(path)
    loaded = Network.load(path)
    assert loaded == network
    # on the calibration data and on unseen, denser data (which may saturate: both must agree)
    for spikes in (calib, poisson_spikes((30, 20, 24), 0.6, seed=200 + seed)):
        result = check(model, loaded, spikes)
        assert result.equal and result.predictions_equal
        assert all(m == (0, 0, 0) for m in result.mismatches)
    # the spikes themselves, integer for integer, from the golden model and the model
    trace = GoldenModel(loaded).run(calib, record=True)
    with torch.no_grad():
        out = model(torch.from_numpy(calib), hardware=True, widths=[(lr.v_bits, lr.u_bits) for lr in loaded.layers])
    for g, m in zip(trace.layers, out.layers):
        np.testing.assert_array_equal(g.z.numpy(), m.z.numpy().astype(bool))
        np.testing.assert_array_equal(g.v.numpy(), m.v.numpy().astype(np.int64))
    assert any(g.z.any() for g in trace.layers)


def test_widths_are_the_fewest_that_do_not_saturate():
    model = _model(*CASES[3])
    calib = poisson_spikes((40, 15, 24), 0.3, seed=7).astype(np.uint8)
    network, report = export(model, calibration=calib)
    ranges = observed_ranges(model, calib)
    for layer, rep, ((vlo, vhi), (ulo, uhi)) in zip(network.layers, report.layers, ranges):
        assert rep.v_observed == (vlo, vhi)
        lo = min(vlo, int(layer.bias.min()), 0)
        hi = max(vhi, int(layer.theta.max()), int(layer.bias.max()))
        assert layer.v_bits == bits_for(lo, hi)
        assert layer.u_bits == bits_for(min(ulo, 0), max(uhi, 0))
        # one bit fewer would saturate (or could not hold theta / bias)
        assert not (-(1 << (layer.v_bits - 2)) <= lo and hi <= (1 << (layer.v_bits - 2)) - 1)
    wider, _ = export(model, calibration=calib, margin_bits=2)
    assert [lr.v_bits for lr in wider.layers] == [lr.v_bits + 2 for lr in network.layers]


def test_bits_for():
    assert bits_for(0, 1) == 2
    assert bits_for(-2, 1) == 2
    assert bits_for(-3, 1) == 3
    assert bits_for(0, 127) == 8
    assert bits_for(-128, 0) == 8
    assert bits_for(0, 128) == 9


def test_fixed_widths_that_saturate_are_refused_unless_allowed():
    model = _model(*CASES[0])
    calib = poisson_spikes((20, 12, 24), 0.5, seed=3).astype(np.uint8)
    widths = [(5, 5)] * 3
    with pytest.raises(ExportError, match="layer 0: v_bits=5, u_bits=5 saturate on the calibration data"):
        export(model, calibration=calib, widths=widths)
    with torch.no_grad():
        for layer in model.layers:
            layer.theta.clamp_(max=10)
            layer.bias.clamp_(-10, 10)
    network, report = export(model, calibration=calib, widths=widths, allow_saturation=True)
    assert report.saturating > 0
    assert check(model, network, calib).equal  # saturation itself is bit-exact too
    model.set_widths(widths)
    network2, _ = export(model, widths="model", calibration=calib, allow_saturation=True)
    assert network2 == network
    assert "saturate" in str(report)


def test_rounding_report_of_a_float_model():
    model = feedforward((10, 6, 4), readout="count", leak=0.3, frac_bits=4, seed=0, hardware=False)
    with torch.no_grad():
        model.layers[0].theta.copy_(torch.tensor([1.2, 2.5, 3.4, 0.1, 7.0, 2.0]))
        model.layers[0].bias.copy_(torch.tensor([0.0, 0.5, -0.7, 0.0, 0.0, 1.0]))
    network, report = export(model, calibration=poisson_spikes((5, 4, 10), 0.3, seed=0).astype(np.uint8))
    assert network.layers[0].theta.tolist() == [1, 2, 3, 1, 7, 2]
    assert network.layers[0].bias.tolist() == [0, 0, -1, 0, 0, 1]
    assert network.layers[0].lam == 5  # round(0.3 * 16)
    r = {x.name: x for x in report.layers[0].roundings}
    assert r["theta"].n_changed == 4 and r["theta"].max_abs == pytest.approx(0.5)  # 0.1 clamps to 0.5 -> 1
    assert r["bias"].n_changed == 2 and r["bias"].max_abs == pytest.approx(0.5)
    assert r["lam"].max_abs == pytest.approx(0.2)
    text = str(report)
    assert "layer 0" in text and "theta: 4/6 changed" in text


def test_verify_reports_a_tampered_network():
    model = _model(*CASES[0])
    calib = poisson_spikes((30, 12, 24), 0.3, seed=5).astype(np.uint8)
    network, _ = export(model, calibration=calib)
    layer = network.layers[1]
    tampered = Network((network.layers[0], layer.replace(theta=layer.theta + 1), network.layers[2]))
    result = verify(model, tampered, calib)
    assert not result.equal
    assert result.mismatches[0] == (0, 0, 0) and result.mismatches[1][0] > 0
    with pytest.raises(ExportError, match="layer 1: the golden model and the hardware-mode model differ"):
        check(model, tampered, calib)


def test_explicit_weights_committee_member():
    model = _model(*CASES[2])  # bayes
    gen = torch.Generator().manual_seed(0)
    ws = [layer.weights.binary("draw", gen) for layer in model.layers]
    calib = poisson_spikes((20, 10, 24), 0.3, seed=9).astype(np.uint8)
    network, _ = export(model, calibration=calib, weights=ws)
    assert all(np.array_equal(lr.weights, w.numpy()) for lr, w in zip(network.layers, ws))
    assert check(model, network, calib, weights=ws).equal


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "widths='auto' needs calibration spikes"),
        ({"widths": "model"}, "layer 0: widths='model' but the layer has v_bits=None"),
        ({"widths": "smallest"}, "widths = 'smallest'; expected 'auto', 'model'"),
        ({"widths": [(8, 8)]}, "widths: 1 entries for 2 layers"),
        ({"widths": [(8, 8), (8, 40)]}, "layer 1: u_bits = 40, expected an integer in"),
        ({"widths": [(8, 8), 8]}, r"layer 1: widths entry 8 is not a \(v_bits, u_bits\) pair"),
        ({"margin_bits": -1}, "margin_bits = -1"),
        ({"weights": "draw"}, "weights = 'draw': export takes 'mode'"),
        ({"weights": [np.ones((5, 6))]}, "weights: 1 arrays for 2 layers"),
        ({"calibration": np.full((2, 3, 6), 2)}, r"calibration\[0, 0, 0\] = 2, expected 0 or 1"),
        ({"calibration": np.zeros((2, 3, 7), np.uint8)}, "calibration has 7 inputs per timestep"),
    ],
)
def test_export_refusals(kwargs, match):
    model = feedforward((6, 5, 3), seed=0)
    with pytest.raises((ExportError, ValueError), match=match):
        export(model, **kwargs)


def test_export_refusals_of_the_contract():
    model = feedforward((6, 5, 3), seed=0)
    with torch.no_grad():
        model.layers[0].theta.fill_(300)
    with pytest.raises(ExportError, match=r"does not fit the contract: layer 0: theta\[0\] = 300 is outside"):
        export(model, widths=[(8, 8), (8, 8)])
    with pytest.raises(ExportError, match="expected a BinarySNN"):
        export(torch.nn.Linear(3, 3))
    with pytest.raises(ExportError, match="would need 34 bits"):
        model.layers[0].theta.data.fill_(2.0**32)
        export(model, calibration=np.zeros((1, 2, 6), np.uint8))
    other = feedforward((6, 4, 3), seed=0)
    net, _ = export(other, widths=[(8, 8), (8, 8)])
    with pytest.raises(ExportError, match=r"the network has sizes \(6, 4, 3\), the model \(6, 5, 3\)"):
        verify(model, net, np.zeros((1, 2, 6), np.uint8))
    with pytest.raises(ExportError, match="expected a Network"):
        verify(model, "net.npz", np.zeros((1, 2, 6), np.uint8))


def test_export_records_each_layers_input_density(tmp_path):
    model = _model(*CASES[0])
    calib = poisson_spikes((40, 15, 24), 0.3, seed=11).astype(np.uint8)
    network, report = export(model, calibration=calib)
    trace = GoldenModel(network).run(calib, record=True)
    inputs = [calib, *(layer.z.numpy() for layer in trace.layers[:-1])]
    for got, spikes in zip(network.densities, inputs):
        np.testing.assert_allclose(got, spikes.reshape(-1, spikes.shape[-1]).mean(axis=0), atol=5e-7)
    assert report.densities is network.densities and "input spike density per layer" in str(report)
    assert 0 < min(network.mean_densities()[1:])
    network.save(tmp_path / "net.npz")
    loaded = Network.load(tmp_path / "net.npz")
    assert all(np.array_equal(a, b) for a, b in zip(loaded.densities, network.densities))
