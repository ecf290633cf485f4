"""`spikeloop train --predict mode|ensemble|committee --samples K --backend golden|sim`: a trained posterior
predicted on a core (spikeloop.host.ensemble.predict), and the refusals of what cannot run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikeloop.app.cli import main
from spikeloop.network import Network

pytest.importorskip("torch")

#: A run of seconds: two moons, 16 hidden neurons, 2 epochs of 8 timesteps.
SMALL = ["--dataset", "moons", "--hidden", "16", "--epochs", "2", "--steps", "8", "--no-plots", "--quiet"]

REFUSED = [
    (["--predict", "ensemble"], ("argument --predict: ensemble draws networks from a Bayesian posterior and --rule "
                                 "ste trains one network; add --rule bayes, or use --predict mode")),
    (["--predict", "committee", "--rule", "ste"], "argument --predict: committee draws networks"),
    (["--predict", "ensemble", "--rule", "bayes", "--samples", "0"],
     "argument --samples: expected an integer >= 1, got 0"),
    (["--samples", "3"], "argument --samples: only --predict takes it"),
    (["--backend", "sim"], "argument --backend: only --predict takes it"),
    (["--predict", "mode", "--samples", "3"], "argument --samples: --predict mode runs the one mode network"),
    (["--predict", "ensemble", "--rule", "bayes", "--in-the-loop", "golden"],
     "argument --predict: not with --in-the-loop"),
    (["--predict", "vote"], "argument --predict: invalid choice: 'vote'"),
    (["--predict", "mode", "--backend", "pynq"], "argument --backend: invalid choice: 'pynq'"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_what_cannot_run_is_refused_in_one_line_before_training(tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    assert main(["train", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing trained, nothing written


@pytest.mark.parametrize("rule, how", [("bayes", "ensemble"), ("ste", "mode")])
def test_a_trained_posterior_predicts_on_the_golden_core(tmp_path, capsys, rule, how):
    from spikeloop.host.ensemble import predict
    from spikeloop.posterior import Posterior
    from spikeloop.quant.data import load_dataset
    from spikeloop.quant.train import TrainConfig, encode_test

    samples = ["--samples", "3"] if how != "mode" else []
    assert main(["train", *SMALL, "--rule", rule, "--predict", how, *samples, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "prediction.json").read_text())
    assert f"{how} ({record['samples']} network" in out and "on golden: test accuracy" in out
    assert record["backend"] == "golden" and record["samples"] == (3 if how != "mode" else 1)
    assert record["accuracy"] > 0.7, record  # far above chance (0.5) after 2 epochs
    posterior = Posterior.load(tmp_path / "posterior.npz")
    # the posterior's mode is the image `train` wrote
    assert posterior.network.content_hash == Network.load(tmp_path / "network.npz").content_hash
    assert (tmp_path / f"reliability_{how}_golden.png").stat().st_size > 0
    # the same numbers from the golden model itself
    cfg = TrainConfig(dataset="moons", steps=8, seed=0)
    data = load_dataset("moons", seed=0)
    again = predict(None, posterior, encode_test(cfg, data.x_test), how=how, samples=record["samples"], seed=0)
    assert again.loads == record["loads"] and np.count_nonzero(again.scores) > 0
    assert again.accuracy(data.y_test) == record["accuracy"] and again.ece(data.y_test) == record["ece"]
    uncertain = any(((q > 0) & (q < 1)).any() for q in posterior.probs)
    assert uncertain == (rule == "bayes")  # straight-through: a point mass on its signs


@pytest.mark.experiment  # a Verilator build of its own: CI runs it in `make experiments`
def test_a_committee_on_the_simulated_board_equals_the_golden_model(tmp_path, capsys):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    argv = ["train", *SMALL, "--rule", "bayes", "--update", "bisnn", "--predict", "committee", "--samples", "4",
            "--backend", "sim", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sim core vs golden model, every score of every network: EQUAL" in out
    record = json.loads((tmp_path / "prediction.json").read_text())
    assert record["equal_to_golden"] is True and record["loads"] == 4 and record["backend"] == "sim"
