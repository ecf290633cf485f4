"""The trained policies (tests/host/data/evolve-TASK.npy, latents written by `spikeloop loop --learn es` on the
golden board) run the same episode on the Verilated simulated board, step for step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_core

from spikeloop.config import CoreConfig
from spikeloop.host import evolve

gymnasium = pytest.importorskip("gymnasium")

DATA = Path(__file__).parent / "data"
STEPS = 60  # a short episode: the simulated board runs some hundred environment steps per second


@pytest.mark.experiment  # a Verilator build of its own: CI runs it in `make experiments`
@pytest.mark.tools
@pytest.mark.parametrize("task", evolve.TASKS)
def test_a_trained_policy_runs_the_same_episode_on_the_simulated_board(task):
    shape = evolve.PolicyShape(task)
    params = np.load(DATA / f"evolve-{task}.npy")
    network = shape.network(params)
    config = CoreConfig.for_network(network, **shape.geometry)
    traces = {}
    for backend in ("golden", "sim"):
        core = make_core(backend, config, network)
        traces[backend] = evolve.episode_trace(core, shape, params, seed=evolve.EVAL_SEED, max_steps=STEPS)
        core.close()
    gold, sim = traces["golden"], traces["sim"]
    assert len(gold["actions"]) == STEPS, "the trained policy should balance the short episode"
    assert 0 < gold["actions"].sum() < STEPS, "the policy should push both ways"
    per_step = (1,) if shape.encoder.timesteps == 1 else (shape.encoder.timesteps, 1)
    assert gold["spikes"].shape == (STEPS, *per_step)
    for name in ("observations", "spikes", "actions"):
        assert np.array_equal(gold[name], sim[name]), f"{name} differ between the golden and the simulated board"
