"""Continual learning on the core (spikeloop.app.continual): task splits, coresets, the arithmetic, a tiny study on
the golden board (every forward pass and every test through the core, counted), and a small one on the simulated
board equal to it."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from spikeloop.app import continual
from spikeloop.app.continual import (
    TASKS,
    ContinualConfig,
    ContinualError,
    coreset,
    forgetting,
    split_tasks,
    task_probabilities,
    with_replay,
)
from spikeloop.quant.data import load_digits

SEED = 5


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=SEED)


def test_split_tasks_hold_two_classes_each_and_keep_the_ten_outputs(digits):
    tasks = split_tasks(digits)
    assert len(tasks) == len(TASKS) == 5
    for task, classes in zip(tasks, TASKS):
        assert set(np.unique(task.y_train)) == set(classes) == set(np.unique(task.y_test))
        assert task.n_classes == 10 and task.n_in == digits.n_in
        assert np.array_equal(task.x_train, digits.x_train[np.isin(digits.y_train, classes)])
    assert sum(len(t.y_train) for t in tasks) == len(digits.y_train)
    assert sum(len(t.y_test) for t in tasks) == len(digits.y_test)
    assert len(split_tasks(digits, 2)) == 2


def test_coreset_is_batches_of_the_task_and_is_replayed_with_the_next(digits):
    first, second = split_tasks(digits, 2)
    x, y = coreset(first, 2, 16, seed=SEED)
    assert len(y) == 32 and set(np.unique(y)) <= set(TASKS[0])
    rows = {r.tobytes() for r in first.x_train}
    assert all(r.tobytes() in rows for r in x), "a coreset sample not from its task's training split"
    assert len({r.tobytes() for r in x}) == len(np.unique(x, axis=0)), "drawn with repetition"
    again = coreset(first, 2, 16, seed=SEED)
    assert np.array_equal(again[0], x), "the coreset's choice is seeded"
    assert len(coreset(first, 10_000, 16, seed=SEED)[1]) == len(first.y_train)  # capped at the task's samples
    replay = with_replay(second, [(x, y)])
    assert len(replay.y_train) == len(second.y_train) + 32
    assert np.array_equal(replay.x_test, second.x_test) and np.array_equal(replay.y_test, second.y_test)
    empty = coreset(first, 0, 16, seed=SEED)
    assert len(empty[1]) == 0 and with_replay(second, [empty]) is second


def test_forgetting_and_average_accuracy_by_hand():
    nan = math.nan
    m = [[0.9, nan, nan], [0.7, 0.8, nan], [0.6, 0.85, 0.95]]
    mean, per = forgetting(m)
    # task 0: best before the last row 0.9, final 0.6; task 1: best 0.8, final 0.85 (it improved: -0.05)
    assert per == pytest.approx([0.3, -0.05]) and mean == pytest.approx(0.125)
    assert continual.average_accuracy(m) == pytest.approx((0.6 + 0.85 + 0.95) / 3)
    with pytest.raises(ContinualError, match="square"):
        forgetting([[0.5, 0.5]])


def test_task_probabilities_by_hand():
    scores = np.array([[[1, 3, 0, 9], [0, 0, 2, 2]], [[3, 1, 0, 9], [0, 0, 4, 2]]])  # [K=2, N=2, C=4]
    classes = np.array([[0, 1], [2, 3]])  # sample 0: task (0, 1); sample 1: task (2, 3)
    p = task_probabilities(scores, 0.5, classes)
    first = lambda a, b: 1 / (1 + math.exp(-0.5 * (a - b)))  # noqa: E731  softmax of two logits, first class
    # the logits averaged over the two networks, then the softmax: sample 0 (2, 2) -> 1/2; sample 1 (3, 2)
    assert p[0] == pytest.approx([0.5, 0.5]) and p[1] == pytest.approx([first(3, 2), 1 - first(3, 2)])


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "cifar"}, "dataset = 'cifar'"),
    ({"rules": ("adam",)}, "rules = ('adam',)"),
    ({"rules": ("ste", "ste")}, "each once"),
    ({"coresets": (-1,)}, "coreset = -1"),
    ({"coresets": (1, 1)}, "distinct"),
    ({"seeds": ()}, "seeds = ()"),
    ({"hidden": (0,)}, "hidden = 0"),
    ({"epochs": 0}, "epochs = 0"),
    ({"samples": 0}, "samples = 0"),
    ({"tasks": 6}, "tasks = 6; expected 2 to 5"),
    ({"tasks": 1}, "tasks = 1; expected 2 to 5"),
    ({"max_test": 0}, "max_test = 0"),
    ({"backend": "fpga"}, "backend = 'fpga'"),
    ({"backend": "pynq", "jobs": 2}, "jobs = 2: a PYNQ board is one core"),
    ({"kl_weight": -1.0}, "kl_weight = -1.0"),
])
def test_config_refusals_name_the_value(kwargs, message):
    with pytest.raises(ContinualError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ContinualConfig(**kwargs)


# ---- a tiny study on the golden board behind the driver --------------------------------------------------


TINY = ContinualConfig(tasks=2, seeds=(SEED,), hidden=(8,), steps=4, epochs=1, batch_size=16, max_train=32,
                       max_test=12, samples=2, coresets=(0, 1), backend="golden")


@pytest.fixture(scope="module")
def tiny_core(digits):
    from spikeloop.app.inloop import open_loop_core

    widths = continual.study_widths(TINY, {SEED: digits})
    core = open_loop_core(continual._sized_network(TINY, digits, widths), "golden", say=lambda line: None)
    yield core, widths
    core.close()


def _expected_test_calls(rule: str, seen_sizes: list[int], samples: int, batch_size: int = 64):
    """`spikeloop.host.ensemble.predict`'s calls over the tasks seen: the mode loads one network and runs each batch;
    the ensemble loads ``samples`` networks per batch, each running that batch."""
    runs = loads = 0
    for n in seen_sizes:
        batches = -(-n // batch_size)
        runs, loads = runs + batches, loads + 1
        if rule == "bayes":
            runs, loads = runs + samples * batches, loads + samples * batches
    return runs, loads


@pytest.mark.parametrize("rule, coreset_batches", [("ste", 0), ("ste", 1), ("bayes", 0), ("bayes", 1)])
def test_tiny_study_every_pass_on_the_core_and_the_bookkeeping(digits, tiny_core, rule, coreset_batches):
    core, widths = tiny_core
    ends = []

    def on_task(i, model):
        ends.append(copy.deepcopy(model))

    run = continual.run_one(TINY, rule, coreset_batches, SEED, core=core, widths=widths, data=digits,
                            on_task=on_task)
    hows = continual.HOWS[rule]
    for how in hows:
        for table in (run.accuracy, run.ece, run.all_classes):
            m = np.asarray(table[how])
            assert m.shape == (2, 2) and math.isnan(m[0, 1]), f"{how}: {m}"
            assert np.isfinite(m[np.tril_indices(2)]).all() and ((0 <= m[np.tril_indices(2)]) &
                                                               (m[np.tril_indices(2)] <= 1)).all()
        s = run.summary(how)
        acc = np.asarray(run.accuracy[how])
        assert s["forgetting"] == pytest.approx(acc[0, 0] - acc[1, 0])
        assert s["average_accuracy"] == pytest.approx((acc[1, 0] + acc[1, 1]) / 2)
    # every forward pass of training ran on the core: one probed run per sample seen
    n_train = [32, 32 + 16 * coreset_batches]
    assert run.samples_trained == sum(n_train) and run.core_calls["train_runs"] == run.samples_trained
    steps = sum(-(-n // TINY.batch_size) for n in n_train)
    assert run.core_calls["train_loads"] >= steps, run.core_calls
    # every test ran on the core: the ensemble's networks loaded and run as `predict` says
    runs, loads = _expected_test_calls(rule, [12, 24], TINY.samples)
    assert (run.core_calls["test_runs"], run.core_calls["test_loads"]) == (runs, loads), run.core_calls
    assert len(ends) == 2
    if rule == "bayes":  # the prior of task 1 is the posterior after task 0, synapse for synapse
        for before, after in zip(ends[0].layers, ends[1].layers):
            assert torch.equal(after.weights.prior_logit, before.weights.logit), f"seed {SEED}"
        assert not all(torch.equal(a.weights.logit, b.weights.logit) for a, b in zip(ends[0].layers, ends[1].layers))
    # the core's evaluation equals the golden model's, sample for sample
    cfg = TINY.train_config(rule, SEED)
    from spikeloop.quant.train import encode_test

    tasks = [continual.subset(t, max_train=TINY.max_train, max_test=TINY.max_test, seed=SEED + k)
             for k, t in enumerate(split_tasks(digits, 2))]
    args = dict(hows=hows, samples=TINY.samples, seed=SEED)
    on_core = continual.evaluate_seen(core, ends[1], widths, tasks, lambda x: encode_test(cfg, x), **args)
    in_golden = continual.evaluate_seen(None, ends[1], widths, tasks, lambda x: encode_test(cfg, x), **args)
    assert on_core == in_golden


def test_tiny_study_report_and_files(digits, tiny_core, tmp_path):
    core, widths = tiny_core
    study = replace(TINY, rules=("ste",), coresets=(0,))
    result = continual.run_study(study, core=core)
    assert len(result.runs) == 1 and result.widths == widths
    text = continual.report(result)
    assert "| ste mode |" in text and "after task 1:" in text and "forgetting per task:" in text
    files = continual.save(result, tmp_path)
    for name in ("table", "rows", "accuracy_matrix", "task_curves"):
        assert files[name].is_file() and files[name].stat().st_size > 0
    import json

    rows = json.loads(files["rows"].read_text())
    want = result.runs[0].summary("mode")["forgetting"]
    assert rows["runs"][0]["summary"]["mode"]["forgetting"] == pytest.approx(want)
    again = continual.load_result(files["rows"])
    assert continual.report(again) == text and again.study == study


@pytest.mark.experiment  # a Verilator build of its own
@pytest.mark.tools
def test_small_study_on_the_simulated_board_equals_the_golden_board(digits):
    """The same tiny study on the Verilated board gives the golden board's matrices, entry for entry (the core is
    bit-exact, so training in the loop and every test follow the same integers)."""
    study = replace(TINY, coresets=(1,))
    by_backend = {}
    for backend in ("golden", "sim"):
        result = continual.run_study(replace(study, backend=backend))
        by_backend[backend] = result
    for a, b in zip(by_backend["golden"].runs, by_backend["sim"].runs):
        assert (a.rule, a.coreset) == (b.rule, b.coreset)
        assert a.core_calls == b.core_calls and a.core_calls["train_runs"] > 0
        for how in continual.HOWS[a.rule]:
            np.testing.assert_array_equal(a.accuracy[how], b.accuracy[how], err_msg=f"{a.rule} {how} seed {SEED}")
            np.testing.assert_array_equal(a.ece[how], b.ece[how])
