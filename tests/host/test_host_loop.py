"""The closed-loop runner and the CartPole task, on every transport."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_core

from spikeloop.config import CoreConfig
from spikeloop.host import cartpole
from spikeloop.host.loop import PHASES, run_loop

gymnasium = pytest.importorskip("gymnasium")


def _core(backend):
    net = cartpole.policy_network()
    return make_core(backend, CoreConfig.for_network(net, **cartpole.GEOMETRY), net)


def test_the_encoder_is_a_thermometer_code():
    enc = cartpole.ThermometerEncoder()
    assert list(enc.levels) == [5, 20, 5, 40] and enc.n_in == 140
    spikes = enc(np.array([0.3, -0.5, 0.0, 2.5]))  # levels 1, -5, 0, 40 (clipped 50)
    assert spikes.dtype == bool and spikes.shape == (140,)
    assert list(enc.level([0.3, -0.5, 0.0, 2.5])) == [1, -5, 0, 40]
    assert spikes[:5].tolist() == [True] + [False] * 4 and not spikes[5:10].any()
    assert not spikes[10:30].any() and spikes[30:35].all() and not spikes[35:50].any()
    assert not spikes[50:60].any() and spikes[60:100].all() and not spikes[100:].any()


@pytest.mark.parametrize("backend", ["golden", "sim", "pynq"])
def test_cartpole_is_balanced_with_the_core_in_the_loop(backend, tmp_path, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")  # skips without Verilator
    core = _core(backend)
    encoder = cartpole.ThermometerEncoder()
    env = cartpole.make_env()
    disagreements = []

    def checked_encoder(obs):
        checked_encoder.obs = obs
        return encoder(obs)

    def checked_decoder(out):
        action = cartpole.decode(out)
        if action != cartpole.policy(checked_encoder.obs, encoder):
            disagreements.append(checked_encoder.obs)
        return action

    result = run_loop(core, env, checked_encoder, checked_decoder, episodes=1, seed=3, log=tmp_path / "loop.log",
                      progress=False, close_env=True)
    assert result.steps == [500] and result.returns == [500.0] and not result.interrupted
    assert disagreements == [], "the core's action differs from the policy's"
    assert set(result.latency) == set(PHASES) and all(v.size == 500 for v in result.latency.values())
    counts, _ = result.histogram("step")
    assert counts.sum() == 500
    text = (tmp_path / "loop.log").read_text()
    assert "episode 0: 500 steps, return 500.0" in text and "steps/s" in text
    core.close()


class _Env:
    """A stand-in environment: observation zeros; step `fail_at` raises `error`."""

    def __init__(self, fail_at, error):
        self.fail_at, self.error, self.n, self.closed = fail_at, error, 0, False

    def reset(self, seed=None):
        return np.zeros(4), {}

    def step(self, action):
        self.n += 1
        if self.n == self.fail_at:
            raise self.error
        return np.zeros(4), 1.0, False, False, {}

    def close(self):
        self.closed = True


def test_ctrl_c_stops_the_loop_cleanly(tmp_path):
    env = _Env(11, KeyboardInterrupt())
    result = run_loop(_core("golden"), env, cartpole.ThermometerEncoder(), cartpole.decode, episodes=3,
                      log=tmp_path / "l.log", progress=False, close_env=True)
    assert result.interrupted and result.steps == [10] and env.closed
    assert "interrupted by the user" in (tmp_path / "l.log").read_text()
    assert "(interrupted)" in result.report()


def test_an_error_is_logged_and_raised(tmp_path):
    env = _Env(5, RuntimeError("the environment broke"))
    with pytest.raises(RuntimeError, match="the environment broke"):
        run_loop(_core("golden"), env, cartpole.ThermometerEncoder(), cartpole.decode, log=tmp_path / "l.log",
                 progress=False, close_env=True)
    assert env.closed
    text = (tmp_path / "l.log").read_text()
    assert "stopped on an error" in text and "the environment broke" in text


def test_the_loop_command(tmp_path, capsys):
    from spikeloop.app.cli import main

    assert main(["loop", "--episodes", "1", "--log", str(tmp_path / "l.log"), "--quiet"]) == 0
    assert "golden: CartPole-v1 solved" in capsys.readouterr().out


def test_the_loop_command_over_a_serial_port(tmp_path, capsys):
    """`spikeloop loop --backend serial --port ...`: the policy on a board reached over a UART (here the
    board emulator on a pseudo-terminal, running the policy's core on the golden board)."""
    pytest.importorskip("serial")
    from spikeloop.app.cli import main
    from spikeloop.sim.golden_board import GoldenBoard
    from spikeloop.sim.uart_board import UARTBoard

    net = cartpole.policy_network()
    with UARTBoard(GoldenBoard(CoreConfig.for_network(net, **cartpole.GEOMETRY))) as board:
        status = main(["loop", "--backend", "serial", "--port", board.port, "--episodes", "1", "--quiet",
                       "--log", str(tmp_path / "l.log")])
    out = capsys.readouterr().out
    assert status == 0 and "serial: CartPole-v1 solved" in out, out
