"""The `spikeloop` command line: happy paths and the error of each bad input."""

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.cli import main
from spikeloop.network import Network, random_network
from spikeloop.spikes import load_spikes, poisson_spikes, save_spikes


@pytest.fixture
def files(tmp_path):
    net = random_network((40, 16, 5), seed=7)
    net.save(tmp_path / "net.npz")
    spikes = poisson_spikes((3, 25, 40), 0.3, seed=8)
    save_spikes(tmp_path / "in.npz", spikes)
    return tmp_path, net, spikes


def test_run_golden_writes_what_the_golden_model_computes(files, capsys):
    path, net, spikes = files
    assert main(["run", "--network", str(path / "net.npz"), "--input", str(path / "in.npz"),
                 "--out", str(path / "out.npz"), "--membranes"]) == 0
    trace = golden.run(net, spikes)
    with np.load(path / "out.npz") as out:
        assert np.array_equal(out["spikes"], trace.spikes)
        assert np.array_equal(out["membranes"], trace.membranes)
    assert trace.spikes.any(), "seed 7/8: no output spike, the comparison would be vacuous"
    assert "75 timesteps" in capsys.readouterr().out


def test_info_prints_sizes_and_hash(files, capsys):
    path, net, _ = files
    assert main(["info", str(path / "net.npz")]) == 0
    out = capsys.readouterr().out
    assert "40-16-5" in out and net.content_hash in out


def test_random_network_and_spikes_commands(tmp_path):
    assert main(["random-network", "--sizes", "12,6,3", "--neuron", "cuba", "--out", str(tmp_path / "n.npz")]) == 0
    assert Network.load(tmp_path / "n.npz").sizes == (12, 6, 3)
    out = str(tmp_path / "s.npz")
    assert main(["random-spikes", "--n-in", "12", "--steps", "9", "--batch", "2", "--out", out]) == 0
    assert load_spikes(tmp_path / "s.npz").shape == (2, 9, 12)


def test_run_refuses_spikes_of_the_wrong_width(files, capsys):
    path, _, _ = files
    save_spikes(path / "bad.npz", np.zeros((5, 39), bool))
    assert main(["run", "--network", str(path / "net.npz"), "--input", str(path / "bad.npz"),
                 "--out", str(path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "39 inputs per timestep" in err and "expects 40" in err


def test_run_refuses_a_spike_file_without_spikes(files, capsys):
    path, _, _ = files
    np.savez(path / "nos.npz", other=np.zeros(3))
    assert main(["run", "--network", str(path / "net.npz"), "--input", str(path / "nos.npz"),
                 "--out", str(path / "o.npz")]) == 2
    assert "no array named 'spikes'" in capsys.readouterr().err


def test_info_refuses_a_corrupt_image(tmp_path, capsys):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["info", str(tmp_path / "junk.npz")]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_missing_file_is_reported(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_bad_sizes_argument_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["random-network", "--sizes", "12,x", "--out", str(tmp_path / "n.npz")])
    assert e.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_demo_runs_and_checks_both_golden_models(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "EQUAL" in out
    for name in ("network.npz", "input.npz", "output.npz", "raster.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert load_spikes(tmp_path / "output.npz").any(), "the demo network never fired"
