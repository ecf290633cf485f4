"""Training models: surrogate spikes, binarization, gradients, integer hardware mode, refusals."""

import math

import numpy as np
import pytest
import torch

from spikeloop.quant.models import (
    BayesWeights,
    BinaryLIF,
    BinarySNN,
    ModelError,
    binarize,
    feedforward,
    predict,
    readout_scores,
    spike,
    surrogate,
)
from spikeloop.spikes import poisson_spikes


def _spikes(shape, density=0.3, seed=0):
    return torch.from_numpy(poisson_spikes(shape, density, seed=seed).astype(np.uint8))


@pytest.mark.parametrize("kind", ["fast_sigmoid", "arctan"])
def test_surrogate_shape(kind):
    x = torch.arange(-30, 31) / 10.0
    d = surrogate(x, kind, 4.0)
    assert d[30] == 1.0  # peak at the threshold
    torch.testing.assert_close(d, d.flip(0))
    assert (d[31:].diff() < 0).all()
    # a steeper slope falls off faster
    assert surrogate(torch.tensor(0.5), kind, 8.0) < surrogate(torch.tensor(0.5), kind, 2.0)
    expected = 1 / (1 + 4 * 0.5) ** 2 if kind == "fast_sigmoid" else 1 / (1 + (math.pi / 2 * 4 * 0.5) ** 2)
    assert surrogate(torch.tensor(0.5), kind, 4.0).item() == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["fast_sigmoid", "arctan"])
def test_spike_forward_is_exact_and_backward_is_surrogate(kind):
    v = torch.tensor([-5.0, 2.0, 3.0, 4.0, 100.0], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([3.0] * 5, dtype=torch.float64, requires_grad=True)
    z = spike(v, theta, kind, 2.0)
    assert z.tolist() == [0, 0, 1, 1, 1]
    z.sum().backward()
    expected = surrogate((v.detach() - 3) / 3, kind, 2.0) / 3
    torch.testing.assert_close(v.grad, expected)
    torch.testing.assert_close(theta.grad, -expected)


def test_binarize_straight_through():
    w = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 1.5], requires_grad=True)
    b = binarize(w)
    assert b.tolist() == [-1, -1, 1, 1, 1, 1]
    b.sum().backward()
    assert w.grad.tolist() == [0, 1, 1, 1, 1, 0]


def test_bayes_weights_sample_mode_draw_and_kl():
    gen = torch.Generator().manual_seed(0)
    bw = BayesWeights(40, 50, generator=gen, prior=0.5, tau=1.0)
    with torch.no_grad():
        bw.logit.fill_(1.0)
    relaxed = bw("sample", gen)
    assert relaxed.abs().max() < 1 and not set(relaxed.unique().tolist()) <= {-1.0, 1.0}
    hard = bw("sample", gen, hard=True)
    assert set(hard.unique().tolist()) == {-1.0, 1.0}
    # P(w = +1) = sigmoid(2 * logit)
    draws = torch.stack([bw.binary("draw", gen) for _ in range(20)])
    assert (draws == 1).float().mean().item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), abs=0.02)
    assert (bw.binary("mode") == 1).all()
    q = torch.sigmoid(torch.tensor(2.0))
    kl = q * torch.log(2 * q) + (1 - q) * torch.log(2 * (1 - q))
    assert bw.kl().item() == pytest.approx(2000 * kl.item(), rel=1e-4)
    with torch.no_grad():
        bw.logit.zero_()
    assert bw.kl().item() == pytest.approx(0.0, abs=1e-3)


def _loss(model, x, hardware):
    out = model(x, hardware=hardware)
    return torch.nn.functional.cross_entropy(out.logits, torch.arange(len(x)) % model.sizes[-1])


@pytest.mark.parametrize("hardware", [True, False], ids=["hardware", "float"])
@pytest.mark.parametrize("neuron", ["lif", "cuba"])
@pytest.mark.parametrize("surr", ["fast_sigmoid", "arctan"])
@pytest.mark.parametrize("readout", ["membrane", "count"])
def test_gradients_flow_straight_through(hardware, neuron, surr, readout):
    model = feedforward((20, 16, 12, 5), neuron=neuron, surrogate=surr, readout=readout, learn_leak=True,
                        leak=0.25, seed=3)
    model.train()
    _loss(model, _spikes((8, 10, 20), seed=1), hardware).backward()
    for k, layer in enumerate(model.layers):
        assert layer.weights.latent.grad.abs().sum() > 0, f"layer {k} weights"
        assert layer.bias.grad.abs().sum() > 0, f"layer {k} bias"
        if readout == "count" or k < len(model.layers) - 1:
            assert layer.theta.grad.abs().sum() > 0, f"layer {k} theta"
        if k < len(model.layers) - 1:
            assert layer.leak.grad.abs() > 0, f"layer {k} leak"
            if neuron == "cuba":
                assert layer.current_leak.grad.abs() > 0, f"layer {k} current_leak"
    assert model.log_gain.grad.abs() > 0


@pytest.mark.parametrize("hardware", [True, False], ids=["hardware", "float"])
def test_gradients_flow_bayes(hardware):
    model = feedforward((20, 16, 5), rule="bayes", seed=4)
    model.train()
    loss = _loss(model, _spikes((8, 10, 20), seed=2), hardware) + 0.01 * model.kl()
    loss.backward()
    for layer in model.layers:
        assert layer.weights.logit.grad.abs().sum() > 0
    assert model.layers[0].theta.grad.abs().sum() > 0


def test_hardware_mode_is_integer_and_float_mode_is_not():
    model = feedforward((20, 16, 5), neuron="cuba", leak=0.3, seed=5)
    with torch.no_grad():
        model.layers[0].theta.fill_(2.4)
        model.layers[0].bias.fill_(-0.6)
    x = _spikes((4, 12, 20), seed=3)
    hw = model(x, hardware=True)
    for trace in hw.layers:
        for t in trace:
            assert t.dtype == torch.float64 and torch.equal(t, t.round())
    fl = model(x, hardware=False)
    assert not torch.equal(fl.layers[0].v, fl.layers[0].v.round())
    assert hw.layers[0].v.min() < 0  # negative membranes exercise the floor


def test_integer_params_rounding():
    layer = BinaryLIF(4, 3, theta=2.0, frac_bits=4, leak=0.3, neuron="cuba", current_leak=0.5)
    with torch.no_grad():
        layer.theta.copy_(torch.tensor([0.2, 2.5, 3.6]))
        layer.bias.copy_(torch.tensor([-1.5, 0.4, 2.5]))
    p = layer.integer_params()
    assert p.theta.tolist() == [1, 2, 4]  # >= 1, round half to even
    assert p.bias.tolist() == [-2, 0, 2]
    assert (p.lam, p.alpha) == (5, 8)  # round(0.3 * 16), 0.5 * 16


def test_saturation_in_hardware_mode():
    layer = BinaryLIF(8, 2, theta=1000.0, leak=0.0, reset="none", v_bits=4)
    x = torch.ones(1, 6, 8, dtype=torch.uint8)
    w = torch.ones(2, 8)
    trace = layer(x, weights=w, hardware=True)
    assert trace.v[0, :, 0].tolist() == [7.0] * 6  # sat_4(8) = 7, then stays
    free = layer(x, weights=w, hardware=True, widths=(None, None))
    assert free.v[0, :, 0].tolist() == [8.0, 16.0, 24.0, 32.0, 40.0, 48.0]


def test_post_step_clips():
    model = feedforward((6, 4, 3), seed=0)
    with torch.no_grad():
        model.layers[0].weights.latent.mul_(10)
    model.post_step()
    assert model.layers[0].weights.latent.abs().max() <= 1


def test_readout_and_predict():
    z = np.zeros((2, 3, 4), bool)
    z[0, :, 2] = True
    z[1, 0, 1] = z[1, 0, 3] = True
    v = np.arange(24).reshape(2, 3, 4)
    assert readout_scores(z, v, "count").tolist() == [[0, 0, 3, 0], [0, 1, 0, 1]]
    assert readout_scores(z, v, "membrane").tolist() == [[8, 9, 10, 11], [20, 21, 22, 23]]
    assert predict(readout_scores(z, v, "count")).tolist() == [2, 1]  # ties to the lowest index
    assert predict(torch.tensor([[1, 3, 3], [0, 0, 0]])).tolist() == [1, 0]


def test_weight_modes():
    model = feedforward((6, 5, 3), rule="bayes", seed=1)
    model.eval()
    a = model.weights()
    b = model.weights("mode")
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    model.train()
    gen = torch.Generator().manual_seed(0)
    assert any(not torch.equal(x, y) for x, y in zip(model.weights("sample", gen), b))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: BinaryLIF(0, 3), "n_in = 0 is outside"),
        (lambda: BinaryLIF(3, 3, neuron="izhikevich"), "neuron must be one of lif, cuba"),
        (lambda: BinaryLIF(3, 3, reset="soft"), "reset must be one of subtract, zero, none"),
        (lambda: BinaryLIF(3, 3, rule="xnor"), "rule must be one of ste, bayes"),
        (lambda: BinaryLIF(3, 3, surrogate="relu"), "surrogate must be one of"),
        (lambda: BinaryLIF(3, 3, slope=0), "slope = 0.0 is outside"),
        (lambda: BinaryLIF(3, 3, frac_bits=17), "frac_bits = 17 is outside"),
        (lambda: BinaryLIF(3, 3, v_bits=1), "v_bits = 1 is outside"),
        (lambda: BinaryLIF(3, 3, leak=1.5), "leak = 1.5 is outside"),
        (lambda: BinaryLIF(3, 3, current_leak=0.5), "neuron 'lif' has no current"),
        (lambda: BinaryLIF(3, 3, theta=0), "theta = 0.0 is outside"),
        (lambda: BinaryLIF(3, 3, rule="bayes", prior=1.0), "prior = 1.0 is outside"),
        (lambda: BinaryLIF(3, 3, rule="bayes", tau=0), "tau = 0.0 is outside"),
        (lambda: BinaryLIF(3, 3, bias="x"), "bias must be a number"),
        (lambda: BinarySNN([BinaryLIF(3, 4), BinaryLIF(5, 2)]), "layer 1: n_in = 5 but layer 0 has n_out = 4"),
        (lambda: BinarySNN([BinaryLIF(3, 4), BinaryLIF(4, 2, rule="bayes")]), "same rule"),
        (lambda: BinarySNN([]), "0 layers, expected 1 to 16"),
        (lambda: BinarySNN([torch.nn.Linear(3, 4)]), "expected a BinaryLIF"),
        (lambda: BinarySNN([BinaryLIF(3, 4)], readout="max"), "readout must be one of"),
        (lambda: feedforward((5,)), "at least an input and an output"),
        (lambda: feedforward((5, 2.5)), r"sizes\[1\] must be an integer"),
        (lambda: feedforward((4, 3))(torch.zeros(2, 3, 5)), r"input must have shape \[B, T, 4\]"),
        (lambda: feedforward((4, 3))(torch.full((2, 3, 4), 2)), "must be 0 or 1"),
        (lambda: feedforward((4, 3))(torch.zeros(2, 3, 4), weights="best"), "weight mode must be one of"),
        (lambda: feedforward((4, 3))(torch.zeros(2, 3, 4), weights=[]), "0 tensors for 1 layers"),
        (lambda: feedforward((4, 3))(torch.zeros(2, 3, 4), widths=[]), "0 entries for 1 layers"),
        (lambda: feedforward((4, 3)).set_widths([(40, 8)]), "v_bits = 40 is outside"),
    ],
)
def test_refusals(call, match):
    with pytest.raises(ModelError, match=match):
        call()
