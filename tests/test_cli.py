"""The `spikeloop` command line: happy paths and the error of each bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.app.cli import main
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


def test_info_says_which_layers_are_recurrent(tmp_path, capsys):
    random_network((10, 6, 3), seed=2, recurrent=(True, False)).save(tmp_path / "r.npz")
    assert main(["info", str(tmp_path / "r.npz")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("layer")]
    assert "recurrent (+1 " in lines[0] and "recurrent" not in lines[1]


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
    assert main(["random-network", "--sizes", "12,x", "--out", str(tmp_path / "n.npz")]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


@pytest.mark.tools  # trains and builds a simulated board
def test_demo_runs_and_checks_both_golden_models_and_the_simulated_board(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIKELOOP_SIM_PROFILE", "quick")  # the tests' simulated-board builds (tests/host)
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    out, err = capsys.readouterr()
    # each long step announced on stderr, training with one line per epoch
    said = err.splitlines()
    assert said[0].startswith("spikeloop demo: training on digits, hidden 32, T = 8, 2 epochs"), err
    assert said[1].startswith("  epoch 1/2: loss") and said[2].startswith("  epoch 2/2: loss"), err
    assert "EQUAL" in out and "MISMATCH" not in out
    assert "accuracy integer model on the golden model" in out
    report = json.loads((tmp_path / "report.json").read_text())
    board, loop = report["board"], report["closed_loop"]
    assert board["ok"] and board["spikes_equal"] and board["membranes_equal"] and board["spikes_fired"] > 0, board
    assert board["timesteps"] == 359 * 8 and board["counters"]["timesteps"] == board["timesteps"]
    assert board["accuracy"] == report["golden_test_accuracy"]
    assert loop["ok"] and loop["steps"] == loop["target"] == 100, loop
    assert "board vs golden model: output spikes" in out and "CartPole-v1 on the simulated board" in out
    for name in ("network.npz", "input.npz", "output.npz", "raster.png", "membranes.png", "rates.png", "training.png",
                 "reliability.png", "checkpoint.pt", "metrics.json", "report.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert load_spikes(tmp_path / "output.npz").any(), "the demo network never fired"
    # the saved input replayed through `spikeloop run` gives the saved output
    assert main(["run", "--network", str(tmp_path / "network.npz"), "--input", str(tmp_path / "input.npz"),
                 "--out", str(tmp_path / "again.npz"), "--membranes"]) == 0
    with np.load(tmp_path / "output.npz") as a, np.load(tmp_path / "again.npz") as b:
        assert np.array_equal(a["spikes"], b["spikes"]) and np.array_equal(a["membranes"], b["membranes"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["equal"] is True and metrics["config"]["epochs"] == 2


def test_info_and_run_work_without_torch(files):
    """`spikeloop info` and `spikeloop run` must not import torch (they run on the board); `train`
    says what to install; the demo falls back to the built-in network."""
    path, _, _ = files
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from spikeloop.app.cli import main\n"
        f"assert main(['info', {str(path / 'net.npz')!r}]) == 0\n"
        f"assert main(['run', '--network', {str(path / 'net.npz')!r}, '--input', {str(path / 'in.npz')!r}, "
        f"'--out', {str(path / 'o.npz')!r}]) == 0\n"
        "assert 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        f"assert main(['train', '--out', {str(path / 't')!r}]) == 2\n"
        f"assert main(['demo', '--out', {str(path / 'demo')!r}]) == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "spikeloop train: error: spikeloop train needs torch: pip install spikeloop[train]" in done.stderr
    assert "running the built-in network with numpy only" in done.stdout
    assert (path / "demo" / "raster.png").stat().st_size > 0


@pytest.mark.tools  # trains
def test_train_export_and_nir_commands(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--hidden", "12", "--steps", "4", "--epochs", "1", "--seed", "2", "--quiet",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "golden model vs hardware-mode model: EQUAL" in text and "export report" in text
    for name in ("checkpoint.pt", "network.npz", "metrics.json", "training.png", "reliability.png", "raster.png",
                 "membranes.png", "rates.png"):
        assert (out / name).stat().st_size > 0, name
    net = Network.load(out / "network.npz")
    assert net.sizes == (64, 12, 10)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["seed"] == 2 and metrics["equal"] is True
    # export the checkpoint again: the same calibration gives the same network
    assert main(["export", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "again.npz")]) == 0
    assert "export report" in capsys.readouterr().out
    assert Network.load(tmp_path / "again.npz") == net
    # NIR out and back in
    assert main(["nir", "export", "--network", str(out / "network.npz"), "--out", str(tmp_path / "net.nir")]) == 0
    assert main(["nir", "import", str(tmp_path / "net.nir"), "--out", str(tmp_path / "back.npz")]) == 0
    text = capsys.readouterr().out
    assert "NIR import (spikeloop-fxp/2" in text
    assert Network.load(tmp_path / "back.npz") == net
    assert main(["nir", "import", str(tmp_path / "net.nir"), "--reset", "zero", "--v-bits", "12",
                 "--out", str(tmp_path / "zero.npz")]) == 0
    assert {(lr.reset, lr.v_bits) for lr in Network.load(tmp_path / "zero.npz").layers} == {("zero", 12)}


def test_nir_import_of_real_valued_weights_needs_binarize(tmp_path, capsys):
    import nir

    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([3])}),
        nir.Linear(weight=np.array([[0.5, -0.2, 0.1], [0.3, 0.3, -0.9]])),
        nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
        nir.Output(output_type={"output": np.array([2])}),
    )
    nir.write(tmp_path / "real.nir", graph)
    args = ["nir", "import", str(tmp_path / "real.nir"), "--out", str(tmp_path / "n.npz")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "node 'linear': weight[0, 0] = 0.5, expected exactly +1 or -1" in err
    # weights in [-1, 1] may be a straight-through model's latent weights: the message says what to export
    assert "as the latent weights of a straight-through model do" in err and "export the signs instead" in err
    assert "(here 0.267 to 0.5)" in err
    assert main([*args, "--binarize"]) == 0
    assert Network.load(tmp_path / "n.npz").layers[0].weights.tolist() == [[1, -1, 1], [1, 1, -1]]


def test_nir_import_of_a_file_that_nir_s_type_check_refuses(tmp_path, capsys):
    import nir

    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([3])}),
        nir.Linear(weight=np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])),
        nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
        nir.Output(output_type={"output": np.array([4])}),  # a shape no node gives: NIR's check refuses it
        type_check=False,
    )
    nir.write(tmp_path / "older.nir", graph)
    args = ["nir", "import", str(tmp_path / "older.nir"), "--out", str(tmp_path / "n.npz")]
    assert main(args) == 2
    assert "NIR's type check refuses the graph" in capsys.readouterr().err
    assert main([*args, "--no-type-check"]) == 0
    assert Network.load(tmp_path / "n.npz").sizes == (3, 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "cifar", "--out", "{tmp}/x"],
         "spikeloop train: error: argument --dataset: invalid choice: 'cifar'"),
        (["train", "--epochs", "0", "--out", "{tmp}/x"], "argument --epochs: expected an integer >= 1, got 0"),
        (["train", "--dataset", "shd", "--data-root", "{tmp}", "--out", "{tmp}/x"], "SHD: no data at"),
        (["export", "--checkpoint", "{tmp}/none.pt", "--out", "{tmp}/n.npz"], "none.pt: no such checkpoint file"),
        (["export", "--checkpoint", "{tmp}/junk.pt", "--out", "{tmp}/n.npz"], "junk.pt: not a readable checkpoint"),
        (["nir", "import", "{tmp}/junk.pt", "--out", "{tmp}/n.npz"], "junk.pt: not a readable NIR graph"),
        (["nir", "import", "{tmp}/none.nir", "--out", "{tmp}/n.npz"], "none.nir: no such NIR file"),
        (["nir", "export", "--network", "{tmp}/junk.pt", "--out", "{tmp}/n.nir"], "corrupt or truncated"),
    ],
)
def test_training_and_nir_refusals(tmp_path, capsys, args, message):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    assert message in capsys.readouterr().err
