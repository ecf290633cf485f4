"""The full closed-loop training of docs/in-the-loop.md, "A closed loop that learns" (`make experiments`;
minutes per task): ES on the golden board, then 100 evaluation episodes of 500 steps.
Alone: pytest -m experiment tests/host/test_evolve_experiment.py"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gymnasium")

#: task -> stages (generations at most, seed; each stage after the first starts from the last one's latents) and
#: the success rate the last stage must reach over 100 episodes (measured: 1.0 and 0.95)
RUNS = {"cartpole": ([(40, 0)], 0.9), "cartpole-positions": ([(45, 0), (40, 1)], 0.9)}


@pytest.mark.experiment
@pytest.mark.tools  # a training run: out of `make check` too
@pytest.mark.parametrize("task", list(RUNS))
def test_es_trains_a_policy_with_the_core_in_the_loop(task, tmp_path, capsys):
    from spikeloop.app.cli import main

    stages, rate = RUNS[task]
    init = []
    for k, (generations, seed) in enumerate(stages):
        out = tmp_path / f"{task}-{k}"
        status = main(["loop", "--learn", "es", "--task", task, "--generations", str(generations), "--seed", str(seed),
                       "--out", str(out), "--quiet", *init])
        assert status == 0, capsys.readouterr().err
        init = ["--init", str(out / "latents.npy")]
    report = json.loads((out / "learning.json").read_text())
    print(json.dumps({k: report[k] for k in ("seconds", "core_steps", "core_steps_per_second", "stopped_early")}))
    curve = report["curve"]
    assert max(row["centre"] for row in curve) > curve[0]["centre"], "training did not improve the centre"
    assert report["evaluation"]["episodes"] == 100
    assert report["evaluation"]["success_rate"] >= rate, report["evaluation"]
