"""Training loop, evaluation, metrics, and export of a briefly trained model."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spikeloop.metrics import (
    MetricError,
    accuracy,
    expected_calibration_error,
    reliability,
    softmax,
)
from spikeloop.network import Network
from spikeloop.posterior import draw_weights
from spikeloop.quant.data import load_digits, make_temporal
from spikeloop.quant.export import check, export
from spikeloop.quant.train import (
    TrainConfig,
    TrainError,
    _parse,
    calibration_spikes,
    demo,
    encode_test,
    evaluate,
    export_checkpoint,
    load_checkpoint,
    main,
    run,
    save_checkpoint,
    train,
)

BRIEF = dict(hidden=(48,), steps=6, epochs=3, batch_size=64, lr=0.05)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def trained(digits):
    return train(TrainConfig(**BRIEF, seed=0), data=digits, progress=False)


def test_brief_training_learns(trained):
    m = trained.metrics
    assert m["accuracy"] > 0.6  # chance is 0.1
    assert m["float_accuracy"] > 0.6
    assert 0 <= m["ece"] <= 1
    assert len(trained.history) == 3
    assert trained.history[-1]["loss"] < trained.history[0]["loss"]
    # the latent weights stay clipped
    assert trained.model.layers[0].weights.latent.abs().max() <= 1


def test_training_is_seeded(digits, trained):
    again = train(TrainConfig(**BRIEF, seed=0), data=digits, progress=False)
    assert again.history == trained.history
    for a, b in zip(again.model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a, b)
    other = train(TrainConfig(**{**BRIEF, "epochs": 1}, seed=1), data=digits, progress=False)
    assert other.history[0] != trained.history[0]


def test_trained_model_export_save_load_golden_equal(trained, digits, tmp_path):
    cfg, model = trained.config, trained.model
    calib = cfg.encoder()(digits.x_train, seed=11)
    network, report = export(model, calibration=calib)
    assert report.saturating == 0
    network.save(tmp_path / "digits.npz")
    loaded = Network.load(tmp_path / "digits.npz")
    x_test = encode_test(cfg, digits.x_test)
    result = check(model, loaded, x_test)
    assert result.equal
    assert accuracy(result.predictions, digits.y_test) == pytest.approx(trained.metrics["accuracy"])


def test_bayes_training_and_predictions(digits):
    cfg = TrainConfig(**{**BRIEF, "epochs": 4, "lr": None}, rule="bayes", n_samples=3, seed=2)
    result = train(cfg, data=digits, progress=False)
    m = result.metrics
    assert m["accuracy"] > 0.5
    for how in ("ensemble", "committee"):
        assert m[how]["accuracy"] > 0.5 and 0 <= m[how]["ece"] <= 1
    x = encode_test(cfg, digits.x_test[:50])
    committee = evaluate(result.model, x, digits.y_test[:50], how="committee", n_samples=3, seed=0, batch_size=16)
    np.testing.assert_allclose(committee.probs.sum(1), 1.0)
    # the committee: the softmax of the mean logits of 3 networks drawn once for the whole set
    rng = np.random.default_rng(0)
    probs = [layer.weights.probabilities().numpy() for layer in result.model.layers]
    nets = [[torch.from_numpy(w.astype(np.float32)) for w in draw_weights(probs, rng)] for _ in range(3)]
    with torch.no_grad():
        want = softmax(np.mean([result.model(x, weights=ws).logits.double().numpy() for ws in nets], 0))
    np.testing.assert_allclose(committee.probs, want, rtol=1e-12)
    again = evaluate(result.model, x, digits.y_test[:50], how="committee", n_samples=3, seed=0, batch_size=16)
    np.testing.assert_array_equal(again.probs, committee.probs)
    # the ensemble draws afresh per batch: in one batch it is the committee, in several it is not
    one = evaluate(result.model, x, digits.y_test[:50], how="ensemble", n_samples=3, seed=0, batch_size=50)
    np.testing.assert_array_equal(one.probs, want)
    many = evaluate(result.model, x, digits.y_test[:50], how="ensemble", n_samples=3, seed=0, batch_size=16)
    np.testing.assert_array_equal(many.probs[:16], want[:16])
    assert not np.array_equal(many.probs[16:], want[16:])
    network, _ = export(result.model, calibration=x)
    assert check(result.model, network, x).equal
    # the same networks as a board draws from the model's posterior (host.ensemble on the golden model)
    from spikeloop.host.ensemble import predict
    from spikeloop.quant.export import posterior

    post = posterior(result.model, widths=[(32, 32)] * len(result.model.layers))
    for how in ("committee", "ensemble"):
        board = predict(None, post, x, how=how, samples=3, seed=0, batch_size=16)
        torch_model = evaluate(result.model, x, digits.y_test[:50], how=how, n_samples=3, seed=0, batch_size=16)
        np.testing.assert_allclose(board.probs, torch_model.probs, rtol=0, atol=1e-5)  # float32 logits in torch
        top2 = np.sort(board.probs, 1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4  # where no near-tie lets float32 rounding choose
        assert clear.sum() > 40 and np.array_equal(board.predictions[clear], torch_model.predictions[clear])


def test_evaluate_refusals(trained, digits):
    x = encode_test(trained.config, digits.x_test[:5])
    with pytest.raises(TrainError, match="how = 'ensemble' needs the Bayesian rule"):
        evaluate(trained.model, x, digits.y_test[:5], how="ensemble")
    with pytest.raises(TrainError, match="how = 'vote'; expected one of"):
        evaluate(trained.model, x, digits.y_test[:5], how="vote")


def test_metrics():
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.35, 0.65], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 0])
    assert accuracy(probs.argmax(1), labels) == 0.75
    # 4 bins: (0.5, 0.75] holds 0.65, 0.55 (conf 0.6, both right); (0.75, 1] holds 0.95, 0.85 (conf 0.9, one right)
    ece = expected_calibration_error(probs, labels, n_bins=4)
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    r = reliability(probs, labels, n_bins=4)
    assert r.counts.tolist() == [0, 0, 2, 2]
    np.testing.assert_allclose(r.confidence[2:], [0.6, 0.9])
    np.testing.assert_allclose(r.accuracy[2:], [1.0, 0.5])
    # a perfectly confident, always right model has ECE 0
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0
    np.testing.assert_allclose(softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])), [[0.5, 0.5], [1.0, 0.0]])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: accuracy([0, 1], [0]), "1 labels for 2 samples"),
        (lambda: accuracy([0.0], [0.5]), "labels must be a 1-D integer array"),
        (lambda: expected_calibration_error([[0.5, 0.6]], [0]), "sum to 1"),
        (lambda: expected_calibration_error([0.5, 0.5], [0]), r"shape \[N, n_classes >= 2\]"),
        (lambda: reliability([[0.5, 0.5]], [0], n_bins=0), "n_bins must be a positive integer"),
        (lambda: accuracy([], np.array([], int)), "no samples"),
    ],
)
def test_metric_refusals(call, match):
    with pytest.raises(MetricError, match=match):
        call()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dataset": "cifar"}, "dataset = 'cifar'; expected one of digits, mnist5k"),
        ({"encoding": "delta"}, "encoding = 'delta'"),
        ({"rule": "xnor"}, "rule = 'xnor'"),
        ({"steps": 0}, "steps = 0, expected a positive integer"),
        ({"epochs": 1.5}, "epochs = 1.5"),
        ({"lr": -1.0}, "lr = -1.0, expected a positive number"),
        ({"kl_weight": -0.1}, "kl_weight = -0.1"),
        ({"hidden": (0,)}, r"hidden = \(0,\)"),
        ({"seed": -3}, "seed = -3"),
        ({"threads": 0}, "threads = 0"),
        ({"max_samples": 0}, "max_samples = 0, expected a positive integer or None"),
        ({"neuron": "lif", "current_leak": 0.5}, "neuron .lif. has no current"),
        ({"neuron": "cuba", "current_leak": 1.5, "epochs": 1}, "current_leak = 1.5 is outside"),
    ],
)
def test_config_refusals(kwargs, match, digits):
    with pytest.raises(TrainError, match=match):
        train(TrainConfig(**kwargs), data=digits, progress=False)


def test_config_defaults_and_cli_parse():
    cfg = TrainConfig()
    assert cfg.synapse_lr == 0.05 and TrainConfig(rule="bayes").synapse_lr == 0.2
    parsed, ns = _parse(["--hidden", "32", "16", "--steps", "4", "--rule", "bayes", "--float", "--lr", "0.3",
                         "--quiet"])
    assert parsed.hidden == (32, 16) and parsed.steps == 4 and parsed.rule == "bayes"
    assert parsed.hardware is False and parsed.lr == 0.3 and ns.quiet


def test_demo_end_to_end(tmp_path, capsys):
    code = main(["--hidden", "24", "--steps", "4", "--epochs", "1", "--quiet", "--out", str(tmp_path)])
    assert code == 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["equal"] is True
    assert summary["golden_test_accuracy"] == pytest.approx(summary["model_metrics"]["accuracy"])
    assert Network.load(tmp_path / "network.npz").sizes == (64, 24, 10)
    assert "export report" in capsys.readouterr().out
    assert demo is not None


def test_cli_refusals(capsys):
    assert main(["--steps", "0"]) == 2
    assert "steps = 0, expected a positive integer" in capsys.readouterr().out
    assert main(["--current-leak", "0.5", "--epochs", "1", "--quiet"]) == 2
    assert "neuron 'lif' has no current" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--rule", "xnor"])
    assert "invalid choice: 'xnor'" in capsys.readouterr().err


def test_checkpoint_round_trip_and_refusals(trained, digits, tmp_path):
    path = save_checkpoint(trained, tmp_path / "ck.pt")
    model, cfg, record = load_checkpoint(path)
    assert cfg == trained.config and record["history"] == trained.history
    for a, b in zip(model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a, b)
    network, report, _ = export_checkpoint(path, data=digits)
    again, _ = export(trained.model, calibration=calibration_spikes(cfg, digits))
    assert network == again
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(TrainError, match="other.pt: not a spikeloop checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": "spikeloop.checkpoint", "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(TrainError, match="v99.pt: checkpoint version 99, this spikeloop reads 1"):
        load_checkpoint(tmp_path / "v99.pt")
    bad = torch.load(path, weights_only=True)
    bad["sizes"] = [64, 7, 10]
    torch.save(bad, tmp_path / "sizes.pt")
    with pytest.raises(TrainError, match=r"sizes.pt: sizes 64-7-10 disagree with the configuration's hidden = \(48,\)"):
        load_checkpoint(tmp_path / "sizes.pt")
    bad = torch.load(path, weights_only=True)
    bad["state_dict"]["layers.0.theta"] = torch.zeros(3)
    torch.save(bad, tmp_path / "weights.pt")
    with pytest.raises(TrainError, match="weights.pt: the weights do not fit a 64-48-10 model"):
        load_checkpoint(tmp_path / "weights.pt")


def test_temporal_task_needs_memory():
    """With leaky memory the hidden layer can tell which group fired first; a layer that forgets
    every step (leak 1) cannot, whatever the readout sums: chance level."""
    data = make_temporal(n_samples=800, steps=12, seed=0)
    cfg = TrainConfig(dataset="temporal", hidden=(32,), epochs=8, steps=12, seed=0)
    memory = train(cfg, data=data, progress=False, evaluate_float=False).metrics["accuracy"]
    forget = train(replace(cfg, leak=1.0), data=data, progress=False, evaluate_float=False).metrics["accuracy"]
    assert memory > 0.75, f"seed 0: {memory}"
    assert forget < 0.6, f"seed 0: {forget}"
    with pytest.raises(TrainError, match="steps = 10 but the data set 'temporal' has 12 timesteps"):
        train(replace(cfg, steps=10), data=data, progress=False)


def test_run_writes_pictures(tmp_path):
    cfg = TrainConfig(dataset="temporal", hidden=(8,), steps=6, epochs=1, seed=1)
    done = run(cfg, out=tmp_path, progress=False, plots=True)
    assert done.summary["equal"]
    for name in ("raster", "membranes", "rates", "training_curves", "reliability", "network", "checkpoint", "metrics"):
        assert done.files[name].stat().st_size > 0, name
    assert json.loads((tmp_path / "metrics.json").read_text())["files"]["raster"].endswith("raster.png")
