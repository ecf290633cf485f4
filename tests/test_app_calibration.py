"""The calibration study (spikeloop.app.calibration): straight-through against Bayes, measured on a core."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("torch")

from spikeloop.app.calibration import (  # noqa: E402
    DataPlan,
    StudyConfig,
    StudyError,
    equal_predictions,
    main,
    rescaled,
    run_study,
    subset_indices,
    table,
    write,
)


@pytest.mark.parametrize("changes, message", [
    ({"datasets": ("moons", "cifar")}, "datasets = ('moons', 'cifar'); expected distinct names from moons, digits"),
    ({"methods": ("ste", "ste")}, "methods = ('ste', 'ste'); expected distinct names"),
    ({"methods": ()}, "methods = (); expected distinct names"),
    ({"seeds": (0, -1)}, "seeds = (0, -1), expected non-negative integers"),
    ({"samples": 0}, "samples = 0, expected a positive integer"),
    ({"workers": 0}, "workers = 0, expected a positive integer"),
    ({"kl_weight": -0.1}, "kl_weight = -0.1, expected None or a non-negative finite number"),
    ({"tau": 0.0}, "tau = 0.0, expected None or a positive finite number"),
    ({"backend": "pynq"}, "backend = 'pynq'; expected one of sim, golden"),
    ({"plans": {"moons": DataPlan((16,), 1)}}, "plans: no DataPlan for digits, mnist5k"),
])
def test_settings_that_cannot_run_are_refused_naming_the_value(changes, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        StudyConfig(**changes)


@pytest.mark.parametrize("plan, message", [
    ({"hidden": (), "epochs": 1}, "hidden = (), expected positive layer sizes"),
    ({"hidden": (8,), "epochs": 0}, "epochs = 0, expected a positive integer"),
    ({"hidden": (8,), "epochs": 1, "max_test": 0}, "max_test = 0, expected a positive integer or None"),
])
def test_a_data_plan_that_cannot_run_is_refused(plan, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        DataPlan(**plan)


def test_the_test_subset_is_seeded_sorted_and_all_when_not_cut():
    assert subset_indices(10, None, 0).tolist() == list(range(10))
    assert subset_indices(10, 20, 0).tolist() == list(range(10))
    a = subset_indices(100, 30, 4)
    assert len(a) == len(set(a.tolist())) == 30 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, subset_indices(100, 30, 4)) and not np.array_equal(a, subset_indices(100, 30, 5))


def test_a_small_study_on_the_golden_board_measures_checks_and_writes(tmp_path):
    """Moons, straight-through and BiSNN, one seed, on the golden board behind the driver: seconds."""
    study = StudyConfig.quick(datasets=("moons",), methods=("ste", "bisnn"), backend="golden")
    result = run_study(study)
    assert [(r.method, r.prediction) for r in result.rows] == [
        ("ste", "mode"), ("bisnn", "mode"), ("bisnn", "ensemble"), ("bisnn", "committee")]
    check = result.checks["moons"]
    assert check["equal"] is True and check["method"] == "bisnn"
    assert set(check["compared"]) == {"mode", "ensemble", "committee"}
    assert all(c["nonzero_scores"] > 0 for c in check["compared"].values())  # not a comparison of zeros
    for r in result.rows:
        assert 0.6 < r.accuracy <= 1 and 0 <= r.ece <= 1 and 0.5 <= r.confidence <= 1, r
        assert sum(r.counts) == r.n_test == 60
        assert r.loads == {"mode": 1, "ensemble": 3, "committee": 3}[r.prediction]  # 60 samples: one batch of 64
        assert (r.undecided == 0) == (r.method == "ste") and 0.1 <= r.best_scale <= 10 and 0 <= r.best_scale_ece <= 1
    scores, labels, probs = result.predictions["moons", "bisnn", "ensemble", 0]
    assert scores.shape == (3, 60, 2) and probs.shape == (60, 2) and labels.shape == (60,)
    files = write(result, tmp_path)
    record = json.loads(files["rows"].read_text())
    assert record["checks"]["moons"]["equal"] is True and len(record["rows"]) == 4
    assert record["study"]["plans"]["moons"]["hidden"] == [16]
    with np.load(files["predictions"]) as npz:
        assert np.array_equal(npz["moons_bisnn_ensemble_0_scores"], scores)
    from spikeloop.posterior import Posterior

    saved = Posterior.load(tmp_path / "posteriors" / "moons_bisnn_0.npz")
    assert saved.network.content_hash == result.posteriors["moons", "bisnn", 0].network.content_hash
    assert sorted(p.name for p in (tmp_path / "posteriors").iterdir()) == ["moons_bisnn_0.npz", "moons_ste_0.npz"]
    assert "| moons | bisnn | ensemble |" in files["diagnostics"].read_text()
    text = files["table"].read_text()
    assert text == table(result.rows) + "\n" and "| moons | bisnn | committee | 1 |" in text
    pictures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pictures == ["reliability_moons_bisnn_committee.png", "reliability_moons_bisnn_ensemble.png",
                        "reliability_moons_bisnn_mode.png", "reliability_moons_ste_mode.png"]


def test_rescaled_finds_the_scale_the_labels_were_drawn_with():
    """Labels drawn from softmax(2 * scores): a model that reads softmax(scores) is under-confident by a factor 2."""
    seed = 11
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1.5, (1, 5000, 2))
    p1 = 1 / (1 + np.exp(-2 * (scores[0, :, 1] - scores[0, :, 0])))
    labels = (rng.random(5000) < p1).astype(np.int64)
    scale, ece = rescaled(scores, labels, 1.0)
    assert 1.6 < scale < 2.5 and ece < 0.05, f"seed {seed}: scale {scale}, ECE {ece}"
    assert rescaled(scores * 2, labels, 1.0)[0] == pytest.approx(1.0, rel=0.25)


def test_predictions_are_equal_only_when_every_score_is(tmp_path):
    from spikeloop.host.ensemble import predict
    from spikeloop.network import random_network
    from spikeloop.posterior import Posterior
    from spikeloop.spikes import poisson_spikes

    network = random_network((12, 6, 3), seed=1)
    probs = [np.full((layer.n_out, layer.n_in), 0.5) for layer in network.layers]
    posterior = Posterior(network, probs, readout="count")
    x = poisson_spikes((20, 5, 12), 0.4, seed=2)
    a = predict(None, posterior, x, how="committee", samples=4, seed=3)
    assert equal_predictions(a, predict(None, posterior, x, how="committee", samples=4, seed=3))
    assert not equal_predictions(a, predict(None, posterior, x, how="committee", samples=4, seed=4))
    assert not equal_predictions(a, predict(None, posterior, x, how="ensemble", samples=4, seed=3))


@pytest.mark.experiment  # three Verilator builds of their own and nine training runs: `make experiments`
def test_the_quick_study_runs_on_the_simulated_board(tmp_path, capsys):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for dataset in ("moons", "digits", "mnist5k"):
        assert f"{dataset}: the core's predictions EQUAL to the golden model's" in out
    record = json.loads((tmp_path / "rows.json").read_text())
    assert len(record["rows"]) == 3 * (1 + 3 + 3) and record["study"]["backend"] == "sim"
    assert len(list(tmp_path.glob("reliability_*.png"))) == 3 * 7
