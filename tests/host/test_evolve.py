"""Closed-loop learning (spikeloop.host.evolve): the policy's shape, the memory carried across environment
steps, a tiny seeded ES run that improves its score, every refused option; on the golden board."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.host import cartpole, evolve, open_core
from spikeloop.host.evolve import ESConfig, PolicyShape

gymnasium = pytest.importorskip("gymnasium")

SEED = 20261202


def _core(shape, seed=0):
    return open_core("golden", shape.network(shape.initial(seed=seed)), **shape.geometry)


def test_the_block_encoder_shows_the_code_on_each_timesteps_own_lines():
    thermo = cartpole.ThermometerEncoder(gains=(10.0, 10.0), ranges=(0.4, 0.4), unit=1.0)  # 4 levels each
    enc = evolve.BlockEncoder(thermo, (1, 2, 1))
    assert (enc.n_code, enc.blocks, enc.timesteps, enc.n_in) == (16, 4, 3, 64)
    obs = np.array([0.25, -0.1])  # levels 2 (rounded 2.5 -> 2), -1
    code = thermo(obs)
    assert code.sum() == 3
    spikes = enc(obs)
    assert spikes.shape == (3, 64) and spikes.dtype == bool
    assert np.array_equal(spikes[0, :16], code) and not spikes[0, 16:].any()
    assert np.array_equal(spikes[1, 16:32], code) and np.array_equal(spikes[1, 32:48], code)
    assert not spikes[1, :16].any() and not spikes[1, 48:].any()
    assert np.array_equal(spikes[2, 48:], code) and not spikes[2, :48].any()
    assert np.array_equal(evolve.BlockEncoder(thermo, (1,))(obs), code)  # one timestep: [n_in]


@pytest.mark.parametrize("task", evolve.TASKS)
def test_the_policy_network_is_binary_odd_and_made_of_mirror_pairs(task):
    shape = PolicyShape(task, hidden=8)
    net = shape.network(shape.initial(seed=SEED))
    hidden, out = net.layers
    assert net.sizes == (shape.n_in, 8, 1) and shape.n_in == shape.encoder.n_in
    w = hidden.weights.astype(int)
    assert set(np.unique(w)) == {-1, 1}
    assert np.array_equal(w[:4], -w[4:]) and np.array_equal(hidden.theta[:4], hidden.theta[4:])
    assert np.array_equal(hidden.bias[:4], hidden.bias[4:])
    k = shape.spec.levels
    per_var = w.reshape(8, -1, 2 * k)
    assert np.array_equal(per_var[..., :k], -per_var[..., k:])  # n_j weight = -p_j weight
    assert np.array_equal(out.weights[0, :4], -out.weights[0, 4:]) and (hidden.theta >= 1).all()
    assert (hidden.lam, hidden.reset) == (shape.spec.hidden_lam, shape.spec.hidden_reset)
    blocks = shape.encoder.blocks
    by_block = per_var[:4, :, :k].reshape(4, blocks, -1, k)  # [pairs, blocks, vars, K] positive-bit weights
    ratio = by_block * by_block[:, :1]  # each block's weights over block 0's: one sign per (pair, block, variable)
    assert (ratio == ratio[..., :1]).all()
    if blocks > 1:
        assert (ratio[:2, 1:] == -1).all(), "half of the pairs start as differences against block 0"
        assert (ratio[2:, 1:] == 1).any() and shape.size == 4 * (2 * k + 2 * (blocks - 1) + 3) + 2
    z = np.zeros(shape.size)
    w0 = shape.network(z).layers[0].weights.reshape(8, -1, 2 * k)
    assert (w0[:4, :, :k] == 1).all() and (w0[:4, :, k:] == -1).all()  # the sign of 0 is +1


def test_observed_only_hides_the_velocities():
    env = evolve.make_task_env("cartpole-positions")
    full = cartpole.make_env()
    obs, _ = env.reset(seed=SEED)
    ref, _ = full.reset(seed=SEED)
    assert obs.shape == (2,) and np.array_equal(obs, ref[[0, 2]])
    obs, reward, *_ = env.step(1)
    ref, *_ = full.step(1)
    assert np.array_equal(obs, ref[[0, 2]]) and reward == 1.0
    env.close()
    full.close()


def test_the_membranes_carry_memory_across_environment_steps():
    """An episode on the core equals the golden model stepped without a reset within the episode, and
    differs from it with the state cleared every environment step (so the memory matters)."""
    shape = PolicyShape("cartpole-positions", hidden=8)
    params = shape.initial(seed=SEED)
    core = _core(shape)
    trace = evolve.episode_trace(core, shape, params, seed=SEED, max_steps=40)
    steps = len(trace["actions"])
    assert steps >= 8 and trace["spikes"].shape == (steps, 3, 1)
    net = shape.network(params)
    carried, cleared = golden.Stepper(net), golden.Stepper(net)
    with_memory, without = [], []
    for obs in trace["observations"]:
        cleared.reset()
        spikes = shape.encoder(obs)
        with_memory.append([carried.step(s)[0] for s in spikes])
        without.append([cleared.step(s)[0] for s in spikes])
    with_memory, without = np.array(with_memory), np.array(without)
    assert np.array_equal(trace["spikes"], with_memory)
    assert with_memory[:, 0].any() and not with_memory[:, 0].all(), "the output neuron should both fire and not"
    assert not np.array_equal(with_memory, without), "clearing the state each step changed nothing"
    assert np.array_equal(trace["actions"], with_memory[:, 0, 0].astype(int))
    core.close()


def test_a_tiny_es_run_improves_its_seeded_score():
    shape = PolicyShape("cartpole", hidden=8)
    config = ESConfig(population=6, generations=4, episodes=1, max_steps=100, seed=3, confirm=0)
    rows = []
    core = _core(shape, seed=config.seed)
    result = evolve.evolve(core, shape, config, progress=False, on_generation=rows.append)
    assert rows == result.curve and len(rows) == 4 and not result.interrupted
    first, best = rows[0]["centre"], max(row["centre"] for row in rows)
    assert best > first, f"seed {config.seed}: centre returns {[row['centre'] for row in rows]}"
    assert result.loads == 4 * (6 + 1) and result.core_steps == sum(
        row["mean"] * 6 + row["centre"] for row in rows) == result.curve[-1]["core_steps"]
    assert result.core_steps_per_second > 0 and "4 generation(s)" in result.summary()
    assert result.params is not None and rows[result.kept_generation]["centre"] == best
    again = evolve.evolve(core, shape, config, progress=False)  # seeded: the same run again
    assert again.curve[-1]["centre"] == result.curve[-1]["centre"] and np.array_equal(again.params, result.params)
    core.close()


def test_training_stops_early_once_the_target_holds_on_fresh_episodes():
    shape = PolicyShape("cartpole", hidden=8)
    config = ESConfig(population=4, generations=10, episodes=1, max_steps=30, target=12, confirm=2, seed=1)
    core = _core(shape, seed=1)
    result = evolve.evolve(core, shape, config, progress=False)
    assert result.stopped_early and len(result.curve) < 10, result.curve
    last = result.curve[-1]
    assert last["centre"] >= 12 and last["confirm"] >= 12
    evaluation = evolve.evaluate(core, shape, result.params, episodes=3, max_steps=30)
    assert len(evaluation.steps) == 3 and evaluation.core_steps == sum(evaluation.steps)
    assert evaluation.success_rate == evaluation.successes / 3 and "episodes balanced" in evaluation.summary()
    core.close()


def test_save_writes_the_policy_the_latents_and_the_curve(tmp_path):
    from spikeloop.network import Network

    shape = PolicyShape("cartpole", hidden=4)
    result = evolve.ESResult(params=shape.initial(seed=2), curve=[{"generation": 0, "mean": 1.0, "max": 2.0,
                                                                   "min": 0.5, "centre": 1.5}], seconds=1.0)
    evaluation = evolve.Evaluation([500, 20], 500, 1.0, 520)
    files = evolve.save(tmp_path / "out", shape, result, evaluation, extra={"config": ESConfig()})
    assert Network.load(files["policy"]) == shape.network(result.params)
    assert np.array_equal(np.load(files["latents"]), result.params)
    report = json.loads(files["curve"].read_text())
    assert report["task"] == "cartpole" and report["evaluation"]["successes"] == 1
    assert report["config"]["population"] == 24 and report["curve"][0]["centre"] == 1.5
    from spikeloop.quant.plots import learning_curve

    png = learning_curve(report, tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no learning curve"):
        learning_curve({"curve": []}, tmp_path / "none.png")


class _LoadsByStream:
    """A core whose load takes via= (the stream load to come): records what it was given."""

    def __init__(self):
        self.vias = []

    def load(self, network, *, verify=True, via="mmio"):
        self.vias.append(via)


def test_via_is_passed_only_to_a_load_that_takes_it():
    assert evolve.load_options(_LoadsByStream(), "stream") == {"via": "stream"}
    assert evolve.load_options(_LoadsByStream(), None) == {}
    core = _core(PolicyShape("cartpole", hidden=2))
    assert evolve.load_options(core, None) == {}
    if "via" not in __import__("inspect").signature(core.load).parameters:
        with pytest.raises(ValueError, match="via = 'stream': this driver's Core.load takes no via="):
            evolve.load_options(core, "stream")
    core.close()


@pytest.mark.parametrize("kwargs, match", [
    ({"population": 5}, "population must be even"),
    ({"population": 0}, r"population must be an integer at least 2"),
    ({"generations": 0}, "generations must be an integer at least 1"),
    ({"episodes": 1.5}, "episodes must be an integer"),
    ({"sigma": 0}, "sigma must be a positive number"),
    ({"lr": -1}, "lr must be a positive number"),
    ({"target": float("nan")}, "target must be a positive number"),
    ({"confirm": -1}, "confirm must be an integer at least 0"),
    ({"seed": True}, "seed must be an integer"),
])
def test_bad_es_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ESConfig(**kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda: PolicyShape("pendulum"), "task must be one of cartpole, cartpole-positions, got 'pendulum'"),
    (lambda: PolicyShape("cartpole", hidden=5), "hidden must be even"),
    (lambda: PolicyShape("cartpole", hidden=0), r"hidden must be an integer \[2, 1024\]"),
    (lambda: PolicyShape("cartpole", v_bits=40), r"v_bits must be an integer \[6, 24\]"),
    (lambda: PolicyShape("cartpole").network(np.zeros(3)), r"params must have shape \(422,\)"),
    (lambda: PolicyShape("cartpole").network(np.full(422, np.nan)), "NaN"),
    (lambda: PolicyShape("cartpole").initial(seed=-1), "seed must be an integer at least 0"),
    (lambda: evolve.BlockEncoder(cartpole.ThermometerEncoder(), ()), "at least one timestep"),
    (lambda: evolve.BlockEncoder(cartpole.ThermometerEncoder(), (1, 0)), "copies must be an integer at least 1"),
    (lambda: evolve.make_task_env("mountaincar"), "task must be one of"),
    (lambda: cartpole.ObservedOnly(None, []), "observed must be a non-empty list"),
])
def test_bad_shapes_and_inputs_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_evolve_and_evaluate_refuse_bad_arguments():
    shape = PolicyShape("cartpole", hidden=2)
    core = _core(shape)
    with pytest.raises(TypeError, match="config must be an ESConfig, got dict"):
        evolve.evolve(core, shape, {"population": 4})
    with pytest.raises(TypeError, match="shape must be a PolicyShape, got str"):
        evolve.evolve(core, "cartpole")
    with pytest.raises(ValueError, match=r"params must have shape"):
        evolve.evolve(core, shape, ESConfig(generations=1), params=np.zeros(2))
    with pytest.raises(ValueError, match="episodes must be an integer at least 1"):
        evolve.evaluate(core, shape, shape.initial(), episodes=0)
    core.close()


# ---- the command line ------------------------------------------------------------------------------------
def test_loop_learn_trains_evaluates_and_saves(tmp_path, capsys):
    from spikeloop.app.cli import main

    out = tmp_path / "learn"
    status = main(["loop", "--learn", "es", "--generations", "2", "--population", "4", "--episodes", "1",
                   "--hidden", "4", "--eval-episodes", "2", "--out", str(out), "--quiet", "--seed", "1"])
    text = capsys.readouterr()
    assert status == 0, text.err
    assert "2 generation(s)" in text.out and "evaluation: " in text.out and "training PolicyShape" in text.err
    report = json.loads((out / "learning.json").read_text())
    assert [row["generation"] for row in report["curve"]] == [0, 1] and report["evaluation"]["episodes"] == 2
    assert report["backend"] == "golden" and report["config"]["population"] == 4
    assert (out / "learning.png").read_bytes()[:4] == b"\x89PNG"
    status = main(["loop", "--policy", str(out / "policy.npz"), "--episodes", "1", "--quiet",
                   "--log", str(tmp_path / "l.log")])
    assert status in (0, 1) and "golden: CartPole-v1" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--generations", "3"], "argument --generations: only training takes it; add --learn es"),
    (["--out", "x"], "argument --out: only training takes it"),
    (["--task", "cartpole-positions"], "--task cartpole-positions needs --learn es"),
    (["--learn", "es", "--population", "5"], "argument --population: expected an even number"),
    (["--learn", "es", "--hidden", "7"], "argument --hidden: expected an even number"),
    (["--learn", "es", "--policy", "p.npz"], "argument --policy: runs a trained policy"),
    (["--learn", "es", "--via", "carrier-pigeon", "--generations", "1"],
     "argument --via: invalid choice: 'carrier-pigeon'"),
    (["--policy", "POSITIONS"], "the cartpole task's policies are 64-24-1"),
    (["--init", "x.npy"], "argument --init: only training takes it"),
    (["--learn", "es", "--init", "POSITIONS"], "is not a .npy array of latents"),
    (["--learn", "es", "--init", "LATENTS"], "has 422 latents"),
])
def test_loop_refuses_bad_learning_options(argv, match, tmp_path, capsys):
    from spikeloop.app.cli import main

    if "POSITIONS" in argv:
        shape = PolicyShape("cartpole-positions")
        shape.network(shape.initial()).save(tmp_path / "pos.npz")
        argv = [str(tmp_path / "pos.npz") if a == "POSITIONS" else a for a in argv]
    if "LATENTS" in argv:
        np.save(tmp_path / "z.npy", np.zeros(5))
        argv = [str(tmp_path / "z.npy") if a == "LATENTS" else a for a in argv]
    status = main(["loop", *argv, "--quiet", "--log", str(tmp_path / "l.log")])
    err = capsys.readouterr().err
    assert status == 2 and match in err, err
    assert "Traceback" not in err


def test_loop_learn_refuses_an_out_that_is_a_file(tmp_path, capsys):
    from spikeloop.app.cli import main

    (tmp_path / "afile").write_text("")
    assert main(["loop", "--learn", "es", "--out", str(tmp_path / "afile")]) == 2
    assert "argument --out: " in capsys.readouterr().err
