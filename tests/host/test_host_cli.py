"""`spikeloop run --backend golden|sim|pynq`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import SEED, main_network, spike_train

from spikeloop import golden
from spikeloop.app.cli import main
from spikeloop.spikes import save_spikes


@pytest.fixture
def files(tmp_path):
    net = main_network()
    net.save(tmp_path / "net.npz")
    spikes = spike_train((2, 30, 40), SEED + 30)
    save_spikes(tmp_path / "in.npz", spikes)
    return tmp_path, net, spikes


@pytest.mark.usefixtures("main_board_built")
def test_run_on_the_simulated_board(files, capsys, monkeypatch):
    monkeypatch.setenv("SPIKELOOP_SIM_PROFILE", "quick")
    path, net, spikes = files
    assert main(["run", "--network", str(path / "net.npz"), "--input", str(path / "in.npz"), "--backend", "sim",
                 "--lanes", "3,2", "--chunk", "16,12", "--membranes", "--out", str(path / "out.npz")]) == 0
    ref = golden.run(net, spikes)
    with np.load(path / "out.npz") as out:
        assert np.array_equal(out["spikes"], ref.spikes) and np.array_equal(out["membranes"], ref.membranes)
    out = capsys.readouterr().out
    assert "sim: 60 timesteps" in out and "core built and loaded in" in out


def test_run_on_a_board_that_is_not_there(files, capsys):
    path, _, _ = files
    with warnings.catch_warnings():  # pynq warns "No devices found" on its first probe
        warnings.simplefilter("ignore", UserWarning)
        code = main(["run", "--network", str(path / "net.npz"), "--input", str(path / "in.npz"), "--backend",
                     "pynq", "--out", str(path / "out.npz")])
    assert code == 2
    err = capsys.readouterr().err
    assert "backend pynq: No Devices Found" in err and "the simulated board is --backend sim" in err


def test_bad_lanes_are_refused(files, capsys):
    path, _, _ = files
    assert main(["run", "--network", str(path / "net.npz"), "--input", str(path / "in.npz"), "--backend", "sim",
                 "--lanes", "x", "--out", str(path / "out.npz")]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
