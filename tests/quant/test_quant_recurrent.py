"""Training recurrent layers: backpropagation through time, export bit-exact, the rows code, the errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from spikeloop import golden
from spikeloop.quant.data import DataError, Encoder, load_digits, rows_encode
from spikeloop.quant.export import check, export, posterior
from spikeloop.quant.models import BinaryLIF, ModelError, feedforward
from spikeloop.quant.train import TrainConfig, TrainError, build_model, train


def _spikes(seed: int, shape=(6, 12, 10), density=0.3):
    return (np.random.default_rng(seed).random(shape) < density).astype(np.uint8)


def test_the_gradient_flows_back_through_the_previous_spikes():
    model = feedforward((10, 16, 4), recurrent=True, seed=3)
    assert [layer.recurrent for layer in model.layers] == [True, False]
    assert tuple(model.layers[0].weights.latent.shape) == (16, 10 + 16)
    out = model(_spikes(3), weights="sample")
    assert out.layers[0].z.sum() > 0, "no hidden spike: the recurrence is never used"
    out.logits.sum().backward()
    grad = model.layers[0].weights.latent.grad
    assert grad[:, 10:].abs().sum() > 0, "the recurrent weights got no gradient"


@pytest.mark.parametrize("rule", ["ste", "bayes"])
@pytest.mark.parametrize("seed", [0, 1])
def test_an_exported_recurrent_model_equals_its_golden_model(rule, seed):
    model = feedforward((10, 16, 12, 4), recurrent=(True, True, False), rule=rule, neuron="cuba" if seed else "lif",
                        input_shift=seed, seed=seed)
    with torch.no_grad():  # thresholds low enough that the hidden layers fire often
        for layer in model.layers[:-1]:
            layer.theta.fill_(1.5)
    x = _spikes(seed)
    network = export(model, calibration=x).network
    assert [layer.is_recurrent for layer in network.layers] == [True, True, False]
    trace = golden.run(network, x, record=True)
    assert all(rec.z.any() for rec in trace.layers[:-1]), f"seed {seed}: a hidden layer never fired"
    feedforward_net = type(network)(tuple(layer.replace(recurrent=None) for layer in network.layers))
    assert not np.array_equal(golden.run(feedforward_net, x, record=True).layers[1].z, trace.layers[1].z)
    result = check(model, network, x)
    assert result.equal and result.n_samples == len(x)
    if rule == "bayes":
        post = posterior(model, widths=[(layer.v_bits, layer.u_bits) for layer in network.layers])
        assert post.probs[0].shape == (16, 26)
        drawn = post.draw(np.random.default_rng(seed))
        assert drawn.layers[0].is_recurrent and drawn.layers[0].recurrent.shape == (16, 16)


def test_the_rows_code_makes_one_row_per_timestep():
    x = np.zeros((2, 64), np.float32)
    x[0, 8 * 3 + 5] = 0.9
    x[1, 63] = 0.4
    s = rows_encode(x, 8)
    assert s.shape == (2, 8, 8) and s.dtype == np.uint8
    assert s[0, 3, 5] == 1 and s.sum() == 1  # 0.4 is not above the threshold 0.5
    assert Encoder("rows", 28).width(784) == 28 and Encoder("rate", 16).width(784) == 784
    with pytest.raises(DataError, match=re.escape("steps = 7 does not divide the 64 pixels")):
        rows_encode(x, 7)
    cfg = TrainConfig(dataset="digits", encoding="rows", steps=8, hidden=(12,), recurrent=True)
    assert build_model(cfg, 64, 10).sizes == (8, 12, 10)
    with pytest.raises(TrainError, match=re.escape("steps = 5 does not divide the 64 pixels")):
        build_model(TrainConfig(encoding="rows", steps=5), 64, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"recurrent": 1}, "recurrent = 1, expected True or False"),
        ({"recurrent": True, "hidden": ()}, "recurrent = True makes the hidden layers recurrent, but hidden = ()"),
    ],
)
def test_bad_recurrent_settings_are_refused(kwargs, message):
    with pytest.raises(TrainError, match=re.escape(message)):
        TrainConfig(**kwargs)


def test_models_refuse_bad_recurrent_arguments():
    with pytest.raises(ModelError, match=re.escape("layer 0: recurrent = 'yes', expected True or False")):
        BinaryLIF(4, 3, recurrent="yes", where="layer 0")
    with pytest.raises(ModelError, match=re.escape("recurrent = (True,), expected a bool or one bool per layer (2)")):
        feedforward((4, 3, 2), recurrent=(True,))


def test_a_recurrent_network_learns_row_sequential_digits():
    """A short run: the recurrent model trains, exports bit-exact and beats chance by far."""
    data = load_digits(seed=0)
    cfg = TrainConfig(dataset="digits", encoding="rows", steps=8, hidden=(32,), recurrent=True, epochs=3, seed=0)
    result = train(cfg, data=data, progress=False)
    assert result.model.layers[0].recurrent and result.metrics["accuracy"] > 0.3, result.metrics
