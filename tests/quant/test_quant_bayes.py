"""The BiSNN update of the Bayesian rule's natural parameters, per-synapse priors and carry_prior."""

import math

import numpy as np
import pytest
import torch

from spikeloop.quant.bayes import BiSNN, carry_prior
from spikeloop.quant.data import load_digits
from spikeloop.quant.models import BayesWeights, BinaryLIF, ModelError, feedforward
from spikeloop.quant.train import BISNN_LR, BISNN_TAU, TrainConfig, TrainError, Updater, build_model, train


def _weights(theta, prior, tau):
    bw = BayesWeights(*np.shape(theta), generator=torch.Generator().manual_seed(0), tau=tau)
    with torch.no_grad():
        bw.logit.copy_(torch.tensor(theta))
    bw.set_prior(torch.tensor(prior))
    return bw


def test_one_step_equals_the_hand_computed_step():
    """theta <- (1 - eta rho) theta + eta rho theta0 - eta s dL/dw_r, s = (1 - w_r^2) / (tau (1 - tanh^2 theta)),
    worked out here per synapse in float64 from the papers' equations (L = sum c * w_r, so dL/dw_r = c)."""
    theta, theta0, c = [[0.5, -1.0, 0.0]], [[0.0, 0.2, -0.3]], [[0.7, -0.4, 1.5]]
    tau, eta, rho = 0.5, 0.1, 0.25
    bw = _weights(theta, theta0, tau)
    seed = 7
    w_r = bw("sample", torch.Generator().manual_seed(seed))  # relaxed sample, gradient to theta
    (w_r * torch.tensor(c)).sum().backward()
    opt = BiSNN([bw], lr=eta, rho=rho)
    opt.step()
    # the same noise, by hand
    u = torch.rand(1, 3, generator=torch.Generator().manual_seed(seed)).clamp(1e-6, 1 - 1e-6).double().tolist()[0]
    for j in range(3):
        delta = 0.5 * math.log(u[j] / (1 - u[j]))
        wr = math.tanh((theta[0][j] + delta) / tau)
        assert w_r[0, j].item() == pytest.approx(wr, rel=1e-6)
        s = (1 - wr**2) / (tau * (1 - math.tanh(theta[0][j]) ** 2))
        want = (1 - eta * rho) * theta[0][j] + eta * rho * theta0[0][j] - eta * s * c[0][j]
        assert bw.logit[0, j].item() == pytest.approx(want, rel=1e-5, abs=1e-6), (j, seed)
        assert bw.logit[0, j].item() != pytest.approx(theta[0][j], abs=1e-3)  # it moved


def test_step_through_a_layer_uses_the_gradient_at_the_relaxed_weights():
    layer = BinaryLIF(6, 4, rule="bayes", tau=0.7, seed=3)
    gen = torch.Generator().manual_seed(11)
    x = (torch.rand(5, 8, 6, generator=gen) < 0.5).to(torch.uint8)
    w = layer.weights("sample", torch.Generator().manual_seed(4), hard=True)
    w.retain_grad()
    theta = layer.weights.logit.detach().clone()
    trace = layer(x, weights=w, hardware=True)
    (trace.v[:, -1] * torch.arange(1.0, 5.0)).sum().backward()
    assert w.grad.abs().sum() > 0
    wr = torch.tanh((theta + layer.weights._delta(torch.Generator().manual_seed(4))) / 0.7)
    scale = (1 - wr**2) / (0.7 * (1 - torch.tanh(theta) ** 2))
    BiSNN([layer.weights], lr=0.05, rho=0.0).step()
    torch.testing.assert_close(layer.weights.logit.detach(), theta - 0.05 * scale * w.grad, rtol=1e-5, atol=1e-6)


def test_zero_gradient_pulls_toward_the_prior_geometrically():
    theta, theta0 = [[1.0, -2.0], [0.0, 3.0]], [[0.5, 0.5], [-1.0, 0.0]]
    bw = _weights(theta, theta0, 1.0)
    opt = BiSNN([bw], lr=0.2, rho=0.5)
    for _ in range(5):
        bw.logit.grad = torch.zeros_like(bw.logit)
        opt.step()
    want = torch.tensor(theta0) + (1 - 0.2 * 0.5) ** 5 * (torch.tensor(theta) - torch.tensor(theta0))
    torch.testing.assert_close(bw.logit.detach(), want)


def test_per_synapse_prior_kl_and_old_state_dicts():
    bw = _weights([[0.3, -0.8]], [[0.0, -0.5]], 1.0)
    q, p = torch.sigmoid(torch.tensor([0.6, -1.6])), torch.sigmoid(torch.tensor([0.0, -1.0]))
    kl = (q * torch.log(q / p) + (1 - q) * torch.log((1 - q) / (1 - p))).sum()
    assert bw.kl().item() == pytest.approx(kl.item(), rel=1e-4)
    torch.testing.assert_close(bw.prior_probabilities(), p[None])
    scalar = BayesWeights(2, 3, generator=torch.Generator().manual_seed(0), prior=0.8)
    assert torch.allclose(scalar.prior_logit, torch.full((2, 3), 0.5 * math.log(4.0)))
    # a state dict written before the prior was per synapse loads, keeping the configured prior
    old = {k: v for k, v in scalar.state_dict().items() if k != "prior_logit"}
    again = BayesWeights(2, 3, generator=torch.Generator().manual_seed(1), prior=0.8)
    again.load_state_dict(old)
    torch.testing.assert_close(again.prior_logit, scalar.prior_logit)
    torch.testing.assert_close(again.logit, scalar.logit)


def test_carry_prior_makes_the_posterior_the_prior():
    model = feedforward((6, 5, 3), rule="bayes", seed=2)
    assert model.kl().item() > 0
    carry_prior(model)
    assert model.kl().item() == 0.0
    before = [layer.weights.logit.detach().clone() for layer in model.layers]
    opt = BiSNN([layer.weights for layer in model.layers], lr=0.3, rho=0.2)
    for layer in model.layers:
        layer.weights.logit.grad = torch.zeros_like(layer.weights.logit)
    opt.step()
    for layer, b in zip(model.layers, before):
        assert torch.equal(layer.weights.logit.detach(), b)
        assert torch.equal(layer.weights.prior_logit, b)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: BiSNN([], lr=0.1, rho=0.1), "BiSNN updates BayesWeights modules"),
        (lambda: BiSNN([torch.nn.Linear(2, 2)], lr=0.1, rho=0.1), r"got \['Linear'\]"),
        (lambda: BiSNN([_weights([[0.0]], [[0.0]], 1.0)], lr=-0.1, rho=0.1), "lr = -0.1, expected a finite"),
        (lambda: BiSNN([_weights([[0.0]], [[0.0]], 1.0)], lr=0.1, rho=float("nan")), "rho = nan"),
        (lambda: BiSNN([_weights([[0.0]], [[0.0]], 1.0)], lr=10.0, rho=0.5), r"lr \* rho = 5.0 > 1"),
        (lambda: carry_prior(feedforward((3, 2), rule="ste")), "carry_prior needs the Bayesian rule"),
        (lambda: carry_prior(torch.nn.Linear(2, 2)), "carry_prior needs a BinarySNN, got Linear"),
        (lambda: _weights([[0.0]], [[0.0, 1.0]], 1.0), r"shape \[1, 1\], got \[1, 2\]"),
        (lambda: _weights([[0.0]], [[float("inf")]], 1.0), "must be finite"),
        (lambda: BayesWeights(1, 1, generator=torch.Generator(), prior=1.0), r"prior = 1.0, expected P\(w = \+1\)"),
    ],
)
def test_refusals(call, match):
    with pytest.raises(ModelError, match=match):
        call()


def test_config_defaults_of_the_update():
    bisnn = TrainConfig(rule="bayes", update="bisnn")
    assert bisnn.synapse_lr == BISNN_LR and bisnn.relaxation_tau == BISNN_TAU
    assert TrainConfig(rule="bayes").relaxation_tau == 1.0 and TrainConfig(rule="bayes", tau=0.3).relaxation_tau == 0.3
    assert build_model(bisnn, 4, 2).layers[0].weights.tau == BISNN_TAU
    updater = Updater(bisnn, build_model(bisnn, 4, 2), n_train=200, total_steps=10)
    assert isinstance(updater.optimizers[0], BiSNN) and not updater.kl_in_loss
    assert updater.optimizers[0].param_groups[0]["rho"] == pytest.approx(bisnn.kl_weight / 200)


def test_config_update_refusals():
    with pytest.raises(TrainError, match="tau = -1.0, expected a positive number"):
        TrainConfig(rule="bayes", tau=-1.0)
    with pytest.raises(TrainError, match="update = 'sgd'; expected one of adam, bisnn"):
        TrainConfig(update="sgd")
    with pytest.raises(TrainError, match="update = 'bisnn' needs rule = 'bayes'.*got rule = 'ste'"):
        TrainConfig(update="bisnn")
    with pytest.raises(TrainError, match="needs a model of rule 'bayes'"):
        Updater(TrainConfig(rule="bayes", update="bisnn"), feedforward((3, 2)), n_train=10, total_steps=5)
    with pytest.raises(TrainError, match=r"lr \* rho = .* > 1"):
        Updater(TrainConfig(rule="bayes", update="bisnn", lr=100.0, kl_weight=10.0), feedforward((3, 2), rule="bayes"),
                n_train=10, total_steps=5)


def test_bisnn_training_learns():
    digits = load_digits(seed=0)
    cfg = TrainConfig(hidden=(48,), steps=6, epochs=3, rule="bayes", update="bisnn", n_samples=3, seed=0)
    result = train(cfg, data=digits, progress=False, evaluate_float=False)
    assert result.metrics["accuracy"] > 0.5, result.metrics  # chance is 0.1
    assert result.metrics["ensemble"]["accuracy"] > 0.4
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def _bayes_model(seed=5):
    model = feedforward((12, 9, 4), rule="bayes", seed=seed)
    model.set_widths([(12, 12), (14, 14)])
    return model.eval()


def test_export_posterior_mode_and_probabilities():
    from spikeloop.quant.export import export, posterior

    model = _bayes_model()
    post = posterior(model)
    assert post.network == export(model, widths="model").network
    for p, layer in zip(post.probs, model.layers):
        np.testing.assert_array_equal(p, torch.sigmoid(2 * layer.weights.logit.detach().double()).numpy())
    assert post.readout == model.readout and post.gain == pytest.approx(float(model.log_gain.detach().exp()))
    given = posterior(model, widths=[(16, 16), (16, 16)])
    assert [layer.v_bits for layer in given.network.layers] == [16, 16]
    ste = feedforward((12, 9, 4), seed=1)
    ste.set_widths([(12, 12), (14, 14)])
    point = posterior(ste)
    assert all(set(np.unique(p)) <= {0.0, 1.0} for p in point.probs)
    assert point.draw(np.random.default_rng(0)) == point.network


def test_posterior_draw_on_the_golden_model_equals_the_model():
    """A draw of the exported posterior runs on spikeloop.golden exactly as the model in hardware mode
    with the same binary weights: readout scores equal as integers."""
    from spikeloop import golden
    from spikeloop.metrics import readout_scores
    from spikeloop.quant.export import posterior

    model = _bayes_model()
    post = posterior(model)
    rng = np.random.default_rng(3)
    x = (np.random.default_rng(4).random((6, 10, 12)) < 0.4).astype(np.uint8)
    fired = 0
    for draw in range(3):
        net = post.draw(rng)
        trace = golden.run(net, x, record=True)
        last = trace.layers[-1]
        g = readout_scores(np.asarray(last.z), np.asarray(last.v).astype(np.int64), post.readout)
        ws = [torch.as_tensor(layer.weights.astype(np.float32)) for layer in net.layers]
        with torch.no_grad():
            m = model(torch.from_numpy(x), hardware=True, weights=ws)
        np.testing.assert_array_equal(np.asarray(g, np.int64), m.scores.to(torch.int64).numpy(), err_msg=f"draw {draw}")
        fired += int(np.asarray(trace.layers[0].z).sum())
        np.testing.assert_allclose(post.logits(g), m.logits.double().numpy(), rtol=1e-6)
    assert fired > 0
