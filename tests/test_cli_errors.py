"""The `spikeloop` command line for a newcomer: every option with help and checked where it enters,
every error one line with exit status 2 (1 for a failed run, 130 for Ctrl-C), long steps announced
before they start."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from spikeloop.app import cli
from spikeloop.app.cli import main
from spikeloop.host.loop import LoopResult
from spikeloop.network import random_network
from spikeloop.spikes import load_spikes, poisson_spikes, save_spikes


@pytest.fixture
def tmp(tmp_path):
    random_network((40, 16, 5), seed=7).save(tmp_path / "net.npz")
    save_spikes(tmp_path / "in.npz", poisson_spikes((25, 40), 0.3, seed=8))
    (tmp_path / "afile").write_text("")
    return tmp_path


def _subparsers(p: argparse.ArgumentParser, name="spikeloop"):
    yield name, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _subparsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help_and_every_command_examples():
    commands = list(_subparsers(cli.parser()))
    assert len(commands) >= 14, [name for name, _ in commands]
    for name, p in commands:
        assert p.epilog and "examples:" in p.epilog, f"{name}: no examples"
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"


def test_version_and_the_top_level_help_for_users(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("spikeloop ")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "spiking neural networks" in out and "examples:" in out and "spikeloop demo" in out


def test_verilog_sizes_help_names_its_own_default(capsys):
    assert main(["verilog", "--help"]) == 0
    out = capsys.readouterr().out
    assert "the board's" not in out and "784,256,128,10" in out


NOT_A_FOLDER = "{tmp}/afile/sub/o.npz"
RUN = ["run", "--network", "{tmp}/net.npz", "--input", "{tmp}/in.npz", "--out", "{tmp}/o.npz"]
CHUNK_MESSAGE = ("argument --chunk: expected an integer in [1, 784] (at most the largest layer's inputs; "
                 "or one value per layer), got 1000000")

#: (command line, what the one-line error says); each option of each command with a bad value.
BAD = [
    (["info", "{tmp}/none.npz"], "none.npz"),
    # run
    (["run", "--network", "{tmp}/none.npz", "--input", "{tmp}/in.npz", "--out", "{tmp}/o.npz"], "none.npz"),
    (["run", "--network", "{tmp}/net.npz", "--input", "{tmp}/none.npz", "--out", "{tmp}/o.npz"],
     "none.npz: no such spike file"),
    (["run", "--network", "{tmp}/net.npz", "--input", "{tmp}/net.npz", "--out", "{tmp}/o.npz"],
     "no array named 'spikes'"),
    (["run", "--network", "{tmp}/net.npz", "--input", "{tmp}/in.npz", "--out", NOT_A_FOLDER], "argument --out"),
    ([*RUN, "--backend", "fpga"], "argument --backend: invalid choice: 'fpga'"),
    ([*RUN, "--lanes", "0"], "argument --lanes: expected an integer in [1, 16]"),
    ([*RUN, "--lanes", "-4"], "argument --lanes: expected an integer in [1, 16]"),
    ([*RUN, "--lanes", "1000"], "argument --lanes: expected an integer in [1, 16]"),
    ([*RUN, "--lanes", "x"], "argument --lanes: expected an integer or comma-separated integers"),
    ([*RUN, "--lanes", "4,17"], "argument --lanes: expected an integer in [1, 5] for layer 1"),
    ([*RUN, "--chunk", "1000000"], "argument --chunk: expected an integer in [1, 40]"),
    ([*RUN, "--chunk", "8,8,8"], "argument --chunk: 3 values for 2 layers"),
    ([*RUN, "--events", "65"], "argument --events: expected integers in [0, 64], got 65"),
    ([*RUN, "--events", "-1"], "argument --events: expected integers in [0, 64], got -1"),
    ([*RUN, "--events", "x"], "argument --events: expected an integer or comma-separated integers"),
    ([*RUN, "--events", "8,17"], "argument --events: expected 0 (dense) or an integer in [1, 16] for layer 1"),
    ([*RUN, "--events", "8,8,8"], "argument --events: 3 values for 2 layers"),
    ([*RUN, "--chunk", "16,16", "--events", "8,0"],
     "arguments --chunk and --events: layer 0 is event-driven with events 8, which is its chunk, but --chunk"),
    ([*RUN, "--baudrate", "0"], "argument --baudrate: expected an integer >= 1, got 0"),
    ([*RUN, "--backend", "serial"], "--backend serial needs --port"),
    # random-network
    (["random-network", "--sizes", "64,-3", "--out", "{tmp}/n.npz"], "argument --sizes: expected sizes in [1, 65536]"),
    (["random-network", "--sizes", "64", "--out", "{tmp}/n.npz"], "argument --sizes: expected an input size and"),
    (["random-network", "--sizes", "12,x", "--out", "{tmp}/n.npz"], "argument --sizes: expected comma-separated"),
    (["random-network", "--sizes", "4,2", "--seed", "-1", "--out", "{tmp}/n.npz"], "argument --seed: expected an"),
    (["random-network", "--sizes", "4,2", "--neuron", "izh", "--out", "{tmp}/n.npz"], "argument --neuron"),
    (["random-network", "--sizes", "4,2", "--reset", "soft", "--out", "{tmp}/n.npz"], "argument --reset"),
    (["random-network", "--sizes", "4,2", "--out", NOT_A_FOLDER], "argument --out"),
    # random-spikes
    (["random-spikes", "--n-in", "0", "--steps", "3", "--out", "{tmp}/s.npz"], "argument --n-in: expected an integer"),
    (["random-spikes", "--n-in", "4", "--steps", "0", "--out", "{tmp}/s.npz"],
     "argument --steps: expected an integer >= 1, got 0"),
    (["random-spikes", "--n-in", "4", "--steps", "-1", "--out", "{tmp}/s.npz"],
     "argument --steps: expected an integer >= 1, got -1"),
    (["random-spikes", "--n-in", "4", "--steps", "3", "--batch", "0", "--out", "{tmp}/s.npz"], "argument --batch"),
    (["random-spikes", "--n-in", "4", "--steps", "3", "--density", "1.5", "--out", "{tmp}/s.npz"],
     "argument --density: expected a number in [0, 1], got 1.5"),
    (["random-spikes", "--n-in", "4", "--steps", "3", "--seed", "-2", "--out", "{tmp}/s.npz"], "argument --seed"),
    (["random-spikes", "--n-in", "4", "--steps", "3", "--out", NOT_A_FOLDER], "argument --out"),
    # train (refused before PyTorch is imported)
    (["train", "--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["train", "--encoding", "delta"], "argument --encoding"),
    (["train", "--steps", "0"], "argument --steps: expected an integer >= 1"),
    (["train", "--neuron", "izh"], "argument --neuron"),
    (["train", "--reset", "soft"], "argument --reset"),
    (["train", "--rule", "adam"], "argument --rule"),
    (["train", "--readout", "rate"], "argument --readout"),
    (["train", "--leak", "1.5"], "argument --leak: expected a number in [0, 1]"),
    (["train", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    (["train", "--batch-size", "0"], "argument --batch-size"),
    (["train", "--lr", "0"], "argument --lr: expected a number > 0"),
    (["train", "--seed", "-1"], "argument --seed"),
    (["train", "--max-samples", "0"], "argument --max-samples"),
    (["train", "--hidden", "0"], "argument --hidden"),
    (["train", "--out", "{tmp}/afile"], "argument --out: "),
    # export, nir
    (["export", "--checkpoint", "{tmp}/c.pt", "--out", NOT_A_FOLDER], "argument --out"),
    (["nir", "export", "--network", "{tmp}/net.npz", "--out", NOT_A_FOLDER], "argument --out"),
    (["nir", "import", "{tmp}/g.nir", "--out", NOT_A_FOLDER], "argument --out"),
    (["export", "--checkpoint", "{tmp}/c.pt", "--out", "{tmp}/n.npz", "--margin-bits", "-1"], "argument --margin-bits"),
    (["nir", "export", "--network", "{tmp}/net.npz", "--out", "{tmp}/n.nir", "--dt", "0"],
     "argument --dt: expected a number > 0"),
    (["nir", "import", "{tmp}/g.nir", "--out", "{tmp}/n.npz", "--dt", "-1"], "argument --dt"),
    (["nir", "import", "{tmp}/g.nir", "--out", "{tmp}/n.npz", "--frac-bits", "17"], "argument --frac-bits"),
    (["nir", "import", "{tmp}/g.nir", "--out", "{tmp}/n.npz", "--v-bits", "1"], "argument --v-bits"),
    (["nir", "import", "{tmp}/g.nir", "--out", "{tmp}/n.npz", "--u-bits", "33"], "argument --u-bits"),
    (["nir", "import", "{tmp}/g.nir", "--out", "{tmp}/n.npz", "--reset", "soft"], "argument --reset"),
    # verilog: the core options, refused before any Verilog is generated
    (["verilog", "--sizes", "784,0", "--out", "{tmp}/v"], "argument --sizes"),
    (["verilog", "--lanes", "0", "--out", "{tmp}/v"], "argument --lanes: expected an integer in [1, 256]"),
    (["verilog", "--lanes", "1000", "--out", "{tmp}/v"], "argument --lanes: expected an integer in [1, 256]"),
    (["verilog", "--chunk", "1000000", "--out", "{tmp}/v"], CHUNK_MESSAGE),
    (["verilog", "--sizes", "784,10", "--lanes", "3,2", "--out", "{tmp}/v"], "argument --lanes: 2 values for 1"),
    (["verilog", "--events", "65", "--out", "{tmp}/v"], "argument --events: expected integers in [0, 64], got 65"),
    (["verilog", "--sizes", "784,10", "--events", "16,0", "--out", "{tmp}/v"], "argument --events: 2 values for 1"),
    (["verilog", "--sizes", "40,12,5", "--events", "8,13", "--out", "{tmp}/v"],
     "argument --events: expected 0 (dense) or an integer in [1, 12] for layer 1 (at most its inputs and 64), got 13"),
    (["verilog", "--v-bits", "1", "--out", "{tmp}/v"], "argument --v-bits: expected integers in [2, 32], got 1"),
    (["verilog", "--u-bits", "40", "--out", "{tmp}/v"], "argument --u-bits"),
    (["verilog", "--frac-bits", "17", "--out", "{tmp}/v"], "argument --frac-bits"),
    (["verilog", "--decay", "exp", "--out", "{tmp}/v"], "argument --decay"),
    (["verilog", "--options", "2", "--out", "{tmp}/v"],
     "argument --options: expected 0 or 1, one or one per layer, got '2'"),
    (["verilog", "--options", "1,0", "--out", "{tmp}/v"], "options has 2 entries for 3 layers"),
    (["verilog", "--bus-width", "48", "--out", "{tmp}/v"], "argument --bus-width"),
    (["verilog", "--out", "{tmp}/afile"], "argument --out: "),
    (["verilog", "--lanes", "256", "--chunk", "784", "--out", "{tmp}/v"],
     "arguments --lanes and --chunk: lanes x chunk = 200704 weight bits per clock, at most 65536"),
    # estimate: the same messages, also with --analytic (which used to say "does not fit")
    (["estimate", "--chunk", "1000000"], CHUNK_MESSAGE),
    (["estimate", "--analytic", "--chunk", "1000000"], CHUNK_MESSAGE),
    (["estimate", "--analytic", "--lanes", "-4"], "argument --lanes: expected an integer in [1, 256]"),
    (["estimate", "--board", "arty"], "argument --board: 'arty', expected one of pynq-z2, ulx3s"),
    (["estimate", "--analytic", "--margin", "0"], "argument --margin: expected a number in (0, 1], got 0"),
    (["estimate", "--analytic", "--margin", "x"], "argument --margin"),
    (["estimate", "--analytic", "--max-chunk", "-1"], "argument --max-chunk"),
    (["estimate", "--analytic", "--events", "x"], "argument --events: expected an integer or comma-separated"),
    (["estimate", "--analytic", "--json", NOT_A_FOLDER], "argument --json"),
    (["estimate", "--cache", "{tmp}/afile"], "argument --cache"),
    (["estimate", "--analytic", "--auto"], "argument --auto: needs the input densities (--densities or --network)"),
    (["estimate", "--analytic", "--largest", "--densities", "0.1,0.2"], "argument --densities: 2 values for 3 layers"),
    (["estimate", "--analytic", "--largest", "--densities", "0.1,x,0.1"], "argument --densities: expected numbers in"),
    (["estimate", "--analytic", "--largest", "--densities", "0.1,1.5,0.1"], "argument --densities: expected numbers"),
    (["estimate", "--analytic", "--densities", "0.1,0.1,0.1"], "choose the configuration with --largest or --auto"),
    (["estimate", "--analytic", "--auto", "--lanes", "4", "--densities", "0.1,0.1,0.1"],
     "argument --lanes: --largest and --auto choose it; leave it out"),
    (["estimate", "--analytic", "--auto", "--network", "{tmp}/none.npz"], "none.npz"),
    # loop
    (["loop", "--backend", "fpga"], "argument --backend"),
    (["loop", "--episodes", "0"], "argument --episodes: expected an integer >= 1, got 0"),
    (["loop", "--seed", "-1"], "argument --seed"),
    (["loop", "--log", "{tmp}/afile/loop.log"], "argument --log: cannot"),
    (["loop", "--baudrate", "0"], "argument --baudrate"),
    (["loop", "--backend", "serial"], "--backend serial needs --port"),
    # demo
    (["demo", "--seed", "-1"], "argument --seed"),
    (["demo", "--out", "{tmp}/afile"], "argument --out: "),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[:3]) + " " + a[-1] for a, _ in BAD])
def test_each_bad_option_is_refused_in_one_line_naming_it(tmp, capsys, argv, message):
    assert main([a.replace("{tmp}", str(tmp)) for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("spikeloop "), err
    assert not (tmp / "s.npz").exists() and not (tmp / "v").exists()


def test_the_chunk_message_is_the_same_in_verilog_and_estimate(tmp, capsys):
    """`verilog --chunk 1000000` used to be capped to n_in (then Yosys ran out of memory); `estimate
    --analytic` said "does not fit": both now refuse the option in the same words."""
    said = []
    for argv in (["verilog", "--chunk", "1000000", "--out", str(tmp / "v")], ["estimate", "--chunk", "1000000"],
                 ["estimate", "--analytic", "--chunk", "1000000"]):
        assert main(argv) == 2
        said.append(capsys.readouterr().err.split("error: ", 1)[1])
    assert said[0] == said[1] == said[2]


def test_train_choices_are_the_training_configs():
    train = pytest.importorskip("spikeloop.quant.train")
    for name, choices in cli.TRAIN_CHOICES.items():
        assert tuple(choices) == tuple(train.CHOICES[name]), name


def test_run_reads_a_plain_npy_and_creates_the_out_folder(tmp, capsys):
    spikes = poisson_spikes((25, 40), 0.3, seed=8)
    np.save(tmp / "plain.npy", spikes)
    out = tmp / "new" / "folder" / "o.npz"
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "plain.npy"), "--out", str(out)]) == 0
    assert "25 timesteps" in capsys.readouterr().out
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"),
                 "--out", str(tmp / "o2.npz")]) == 0
    assert np.array_equal(load_spikes(out), load_spikes(tmp / "o2.npz"))


def test_run_refuses_float_spikes_with_the_hint(tmp, capsys):
    """Float 0/1 spikes (snnTorch's spikegen) are refused, with the conversion that fixes them."""
    np.save(tmp / "f.npy", poisson_spikes((5, 40), 0.3, seed=1).astype(np.float32))
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "f.npy"),
                 "--out", str(tmp / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "dtype float32" in err and ".astype(bool)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "o.npz").exists()


def test_run_refuses_an_unreadable_input_naming_the_formats(tmp, capsys):
    (tmp / "junk.npy").write_bytes(b"junk")
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "junk.npy"),
                 "--out", str(tmp / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "not a readable spike file" in err and ".npz with a 0/1 array 'spikes'" in err and ".npy" in err


def test_pynq_off_a_board_points_to_the_simulated_board(tmp, capsys):
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"), "--backend", "pynq",
                 "--out", str(tmp / "o.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "backend pynq:" in err and "--backend sim" in err and len(err.splitlines()) == 1, err


def test_an_unexpected_failure_is_one_line_with_status_1(tmp, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError("yosys: out of memory\n  62 lines of detail")

    import spikeloop.golden

    monkeypatch.setattr(spikeloop.golden, "run", boom)
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"),
                 "--out", str(tmp / "o.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "spikeloop run: failed: MemoryError: yosys: out of memory (SPIKELOOP_TRACEBACK=1 shows where)"


# ---------------------------------------------------------------------------------------------
# Announcements: printed (stderr) before the long step starts
# ---------------------------------------------------------------------------------------------


def test_the_simulated_board_build_is_announced_before_it_starts_and_timed_apart(tmp, capsys, monkeypatch):
    import spikeloop.host

    real = spikeloop.host.open_core
    seen = {}

    def fake_open_core(backend, network, *, log=None, **options):
        assert backend == "sim"
        log("generating the Verilog of design 0123")  # what the build says when it really builds
        seen["err"] = capsys.readouterr().err
        time.sleep(0.2)  # the "build"
        return real("golden", network, lanes=options["lanes"], chunk=options["chunk"])

    monkeypatch.setattr(spikeloop.host, "open_core", fake_open_core)
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"), "--backend", "sim",
                 "--out", str(tmp / "o.npz")]) == 0
    assert seen["err"].startswith("building the simulated board for 40-16-5 (about a minute the first time, "
                                  "cached after) ...\n")
    out = capsys.readouterr().out
    built = float(out.split("core built and loaded in ")[1].split(" s")[0])
    ran_ms = float(out.split("25 timesteps in ")[1].split(" ms")[0])
    assert built >= 0.2 and ran_ms < 200, out


def test_a_cached_simulated_board_is_not_announced(tmp, capsys, monkeypatch):
    import spikeloop.host

    real = spikeloop.host.open_core
    monkeypatch.setattr(spikeloop.host, "open_core",
                        lambda backend, network, *, log=None, **o: real("golden", network, lanes=o["lanes"],
                                                                        chunk=o["chunk"]))
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"), "--backend", "sim",
                 "--out", str(tmp / "o.npz")]) == 0
    assert "building" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["estimate"], "synthesizing with Yosys (about 3-5 minutes the first time, cached after"),
    (["estimate", "--board", "ulx3s"], "synthesizing with Yosys, then nextpnr"),
    (["estimate", "--largest"], "tens of minutes"),
    (["estimate", "--analytic"], None),
])
def test_estimate_announces_synthesis_before_it_starts(capsys, monkeypatch, argv, said):
    from spikeloop.boards import estimate

    seen = {}

    def fake_run(args):
        seen["err"] = capsys.readouterr().err
        return 0

    monkeypatch.setattr(estimate, "run", fake_run)
    assert main(argv) == 0
    if said is None:
        assert seen["err"] == ""
    else:
        assert said in seen["err"] and len(seen["err"].splitlines()) == 1


def test_demo_announces_training_and_forwards_each_epoch_then_ctrl_c_exits_130(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    import spikeloop.quant.train as train

    seen = {}

    def fake_run(cfg, *, log=None, **kwargs):
        seen["before"] = capsys.readouterr().err
        log("epoch 1/30: loss 1.000, training accuracy 50.0%, 0.5 s so far, about 15 s to go")
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", fake_run)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 130
    err = capsys.readouterr().err
    assert "training on digits" in seen["before"] and "about 15-45 s" in seen["before"]
    assert "epoch 1/30: loss" in err
    assert err.strip().splitlines()[-1] == "spikeloop demo: interrupted; nothing saved"


# ---------------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, patch", [
    (["estimate"], ("spikeloop.boards.estimate", "run")),
    (["verilog", "--out", "{tmp}/v"], ("spikeloop.rtl.verilog", "generate")),
    (["run", "--network", "{tmp}/net.npz", "--input", "{tmp}/in.npz", "--backend", "sim", "--out", "{tmp}/o.npz"],
     ("spikeloop.host", "open_core")),
])
def test_ctrl_c_is_one_line_and_status_130(tmp, capsys, monkeypatch, argv, patch):
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(patch[0]), patch[1], interrupted)
    assert main([a.replace("{tmp}", str(tmp)) for a in argv]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"spikeloop {argv[0]}: interrupted; nothing saved"
    assert not any("Traceback" in line for line in err)


def _interrupt_after_first_line(argv, *, wait=1.0, ready=None, timeout=120):
    """Run the CLI in a subprocess, send SIGINT once it has printed its first line on stderr (and
    `ready()` holds, when given), then `wait` seconds more."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spikeloop.app.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()
        deadline = time.monotonic() + timeout
        while ready is not None and not ready() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(wait)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, first, out, first + err


def test_ctrl_c_in_the_closed_loop_prints_a_summary_and_interrupted(tmp_path):
    pytest.importorskip("gymnasium")
    log = tmp_path / "loop.log"
    rc, first, out, err = _interrupt_after_first_line(
        ["loop", "--episodes", "1000", "--quiet", "--log", str(log)], wait=0.5,
        ready=lambda: log.exists() and "closed loop:" in log.read_text())
    assert "CartPole-v1 on golden: 1000 episode(s)" in first
    assert rc == 130, (out, err)
    assert "Traceback" not in err and "NOT solved" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(len(line) < 200 for line in lines), out
    assert "episode(s)" in lines[0] and "steps per episode" in lines[0] and "(interrupted)" in lines[0]
    assert lines[1].startswith("golden: CartPole-v1 interrupted")


@pytest.mark.tools  # imports torch and starts a training run
@pytest.mark.xfail(reason="seen once under a loaded CI, not reproduced since (alone, 9 of 9 pass, Ctrl-C after "
                   "0 to 3 s): "
                   "the run printed 'spikeloop train: interrupted; nothing saved' and then ended by SIGINT (-2) "
                   "instead of exit status 130; no handler of the project resets SIGINT")
def test_ctrl_c_in_train_from_a_terminal(tmp_path):
    rc, first, out, err = _interrupt_after_first_line(
        ["train", "--hidden", "12", "--steps", "4", "--epochs", "200", "--quiet", "--out", str(tmp_path)], wait=3.0)
    assert first.startswith("training on digits"), first
    assert rc == 130, (out, err)
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("spikeloop train: interrupted"), err
    if "saved the checkpoint" in last:
        assert (tmp_path / "checkpoint.pt").exists()


@pytest.mark.tools  # a short training run
def test_ctrl_c_in_train_saves_the_last_complete_epoch(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    from spikeloop.quant import models, train

    calls = {"n": 0}
    real = models.BinarySNN.post_step

    def post_step(self):
        calls["n"] += 1
        if calls["n"] == 30:  # in the second epoch of digits (23 batches of 64)
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(models.BinarySNN, "post_step", post_step)
    out = tmp_path / "t"
    assert main(["train", "--hidden", "12", "--steps", "4", "--epochs", "5", "--quiet", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"spikeloop train: interrupted: saved the checkpoint of epoch 1 to {out / 'checkpoint.pt'}"
    model, cfg, record = train.load_checkpoint(out / "checkpoint.pt")
    assert len(record["history"]) == 1 and record["metrics"] == {"interrupted_after_epochs": 1}
    assert cfg.epochs == 5 and isinstance(model, torch.nn.Module)
    monkeypatch.setattr(models.BinarySNN, "post_step", real)
    assert main(["export", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "n.npz")]) == 0


# ---------------------------------------------------------------------------------------------
# The closed loop's summary
# ---------------------------------------------------------------------------------------------


def test_the_loop_summary_is_short_for_many_episodes():
    result = LoopResult(steps=[9 + k % 7 for k in range(298)], returns=[float(9 + k % 7) for k in range(298)],
                        interrupted=True)
    line = result.summary()
    assert line == ("298 episode(s), 3570 steps: steps per episode mean 12.0 (min 9, max 15), "
                    "return mean 12.0 (min 9.0, max 15.0) (interrupted)")
    assert result.report().splitlines()[0] == line


def test_verilog_is_announced_before_it_starts(tmp_path, capsys, monkeypatch):
    from spikeloop.rtl import verilog

    seen = {}
    monkeypatch.setattr(verilog, "generate",
                        lambda config, out: seen.setdefault("err", capsys.readouterr().err) and out)
    assert main(["verilog", "--sizes", "64,32,10", "--out", str(tmp_path / "v")]) == 0
    assert seen["err"].startswith("writing the Verilog of 64-32-10")


def test_ctrl_c_in_the_demo_after_some_stages_says_where_their_files_are(tmp_path, capsys, monkeypatch):
    from spikeloop.app import demo

    def stopped(out, **kwargs):
        (out / "network.npz").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "demo", stopped)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 130
    assert capsys.readouterr().err.strip() == (
        f"spikeloop demo: interrupted; the stages finished so far wrote their files to {tmp_path / 'd'}")


def test_a_core_that_fails_while_running_is_status_1_in_one_line(tmp, capsys, monkeypatch):
    import spikeloop.host
    from spikeloop.host import TransferError

    class Failing:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def run(self, spikes):
            raise TransferError("output stream: 3 of 75 words received before the deadline\nmore detail")

    monkeypatch.setattr(spikeloop.host, "open_core", lambda *args, **kwargs: Failing())
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"), "--backend", "sim",
                 "--out", str(tmp / "o.npz")]) == 1
    assert capsys.readouterr().err.strip() == (
        "spikeloop run: error: backend sim: output stream: 3 of 75 words received before the deadline")


def test_ctrl_c_during_the_simulated_board_build_says_the_next_run_builds_it(tmp, capsys, monkeypatch):
    import spikeloop.host

    def building(backend, network, *, log=None, **options):
        log("verilating design 0123 (fast profile)")
        raise KeyboardInterrupt

    monkeypatch.setattr(spikeloop.host, "open_core", building)
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"), "--backend", "sim",
                 "--out", str(tmp / "o.npz")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("building the simulated board for 40-16-5")
    assert err[-1] == ("spikeloop run: interrupted; the simulated board was not built, nothing saved; "
                       "the next run builds it again")


def test_verilog_warns_of_a_chunk_wider_than_timing_allows(tmp_path, capsys, monkeypatch):
    from spikeloop.rtl import verilog

    monkeypatch.setattr(verilog, "generate", lambda config, out: out)
    assert main(["verilog", "--chunk", "784", "--out", str(tmp_path / "v")]) == 0
    assert "warning: chunk 784 > 256" in capsys.readouterr().err
    assert main(["verilog", "--out", str(tmp_path / "v")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_events_select_the_event_driven_crossbar_per_layer(tmp, capsys, monkeypatch):
    """`--events` reaches the build: per layer (0 dense), one value for all (capped at a layer's inputs), round
    trip through `config_args`; `run --backend sim` hands it to `open_core`."""
    import argparse

    from spikeloop.configargs import OptionError, add_config_arguments, config_args, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args(["--sizes", "40,12,5", "--lanes", "4,5", "--chunk", "8",
                                                 "--events", "8,0"]))
    assert [(layer.events, layer.chunk) for layer in config.layers] == [(8, 8), (None, 8)]
    assert config_from_args(parser.parse_args(config_args(config))) == config
    assert "--events" in config_args(config) and "--events" not in config_args(config_from_args(
        parser.parse_args(["--sizes", "40,12,5"])))
    every = config_from_args(parser.parse_args(["--sizes", "40,12,5", "--events", "16"]))
    assert [layer.events for layer in every.layers] == [16, 12]
    mixed = config_from_args(parser.parse_args(["--sizes", "40,12,5", "--chunk", "8,6", "--events", "8,0"]))
    assert [(layer.events, layer.chunk) for layer in mixed.layers] == [(8, 8), (None, 6)]
    # --recurrent: every layer or one per layer; chunk and events reach the crossbar's n_in + n_out inputs
    looped = config_from_args(parser.parse_args(["--sizes", "40,12,5", "--chunk", "52,17", "--recurrent"]))
    assert [(layer.recurrent, layer.chunk) for layer in looped.layers] == [(True, 52), (True, 17)]
    assert config_from_args(parser.parse_args(config_args(looped))) == looped
    half = config_from_args(parser.parse_args(["--sizes", "40,12,5", "--events", "50,0", "--recurrent", "1,0"]))
    assert [(layer.recurrent, layer.events) for layer in half.layers] == [(True, 50), (False, None)]
    assert "--recurrent 1,0" in " ".join(config_args(half))
    with pytest.raises(OptionError, match=r"argument --chunk: expected an integer in \[1, 12\] for layer 1"):
        config_from_args(parser.parse_args(["--sizes", "40,12,5", "--chunk", "52,17", "--recurrent", "1,0"]))
    with pytest.raises(OptionError, match="argument --recurrent: 3 values for 2 layers"):
        config_from_args(parser.parse_args(["--sizes", "40,12,5", "--recurrent", "1,0,1"]))

    import spikeloop.host

    real = spikeloop.host.open_core
    seen = {}

    def fake_open_core(backend, network, *, log=None, **options):
        seen.update(options)
        return real("golden", network, lanes=options["lanes"], chunk=options["chunk"], events=options["events"])

    monkeypatch.setattr(spikeloop.host, "open_core", fake_open_core)
    assert main(["run", "--network", str(tmp / "net.npz"), "--input", str(tmp / "in.npz"), "--backend", "sim",
                 "--events", "8,0", "--out", str(tmp / "o.npz")]) == 0
    assert seen["events"] == [8, None]


def test_estimate_network_without_densities_is_refused_naming_it(tmp, capsys):
    from spikeloop.network import random_network

    path = tmp / "plain.npz"
    random_network((20, 8, 3), seed=1).save(path)
    assert main(["estimate", "--analytic", "--auto", "--network", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"argument --network: {path} records no input densities" in err and len(err.splitlines()) == 1, err
    assert main(["estimate", "--analytic", "--auto", "--network", str(path), "--sizes", "20,8,3"]) == 2
    assert "leave out --sizes and --densities" in capsys.readouterr().err
