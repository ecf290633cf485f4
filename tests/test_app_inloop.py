"""`spikeloop train --in-the-loop` and the study of where the loop earns its keep (spikeloop.app.inloop*)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikeloop import golden
from spikeloop.app import inloop
from spikeloop.app.cli import main
from spikeloop.app.inloop_study import SCENARIOS, StudyConfig, golden_core, run_study, table
from spikeloop.quant.data import load_digits
from spikeloop.quant.inloop import CoreFault, InLoopInterrupted, core_traces, fit, gradients
from spikeloop.quant.train import TrainConfig, TrainResult, build_model

SEED = 11
HAS_PROBES = inloop.driver_has_probes()
NEEDS_PROBES = pytest.mark.skipif(not HAS_PROBES, reason="the driver has no Core.run(..., probe=...) yet: the "
                                                         "in-the-loop CLI runs once the probes driver is merged")


class ProbeCore:
    """A core with probes over the golden model (the driver's `Core.run(..., probe="all")` stand-in)."""

    def __init__(self):
        self.network, self.closed = None, False

    def load(self, network, *, verify=True):
        self.network = network

    def run(self, spikes, *, reset=True, probe=None):
        return SimpleNamespace(layers=golden.run(self.network, spikes, record=True).layers)

    def reset(self):
        pass


@pytest.fixture(scope="module")
def small_digits():
    data = load_digits(seed=SEED)
    return replace(data, x_train=data.x_train[:96], y_train=data.y_train[:96], x_test=data.x_test[:40],
                   y_test=data.y_test[:40])


CFG = TrainConfig(hidden=(12,), steps=4, epochs=1, batch_size=32, seed=SEED)


def test_python_api_with_a_given_core(small_digits, tmp_path):
    s = inloop.train_in_the_loop(CFG, core=ProbeCore(), data=small_digits, out=tmp_path, progress=False)
    assert s["steps"] == 3 and s["equal"] and 0 <= s["core_test_accuracy"] <= 1
    assert set(s["timing"]) >= {"core", "load", "forward", "backward", "samples_per_second"}
    for name in ("checkpoint", "network", "metrics"):
        assert (tmp_path / f"{name}{'.pt' if name == 'checkpoint' else '.npz' if name == 'network' else '.json'}") \
            .is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["widths"] == s["widths"]


def test_unknown_backend_is_refused(capsys):
    with pytest.raises(ValueError, match=r"--in-the-loop 'tpu': unknown backend; expected one of golden, sim, pynq"):
        inloop.train_in_the_loop(CFG, backend="tpu")
    assert main(["train", "--in-the-loop", "tpu", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "--in-the-loop 'tpu': unknown backend; expected one of golden, sim, pynq" in err


def test_bayes_rule_is_refused(capsys, tmp_path):
    assert main(["train", "--in-the-loop", "golden", "--rule", "bayes", "--out", str(tmp_path)]) == 2
    assert "needs the straight-through rule" in capsys.readouterr().err


def _fake_train(raise_this):
    def train_in_the_loop(cfg, **kwargs):
        raise raise_this
    return train_in_the_loop


def test_cli_core_fault_is_one_line_with_the_checkpoint(monkeypatch, capsys, tmp_path, small_digits):
    model = build_model(CFG, 64, 10)
    fault = CoreFault("the core failed while running batch 3 of epoch 1 (TransferTimeout: late); training stopped "
                      f"after 2 complete step(s), the parameters of the last one saved to {tmp_path}/checkpoint.pt",
                      TrainResult(model, CFG, [], {}, 0.0, small_digits), 2, tmp_path / "checkpoint.pt")
    monkeypatch.setattr(inloop, "train_in_the_loop", _fake_train(fault))
    monkeypatch.setattr(inloop, "driver_has_probes", lambda: True)
    assert main(["train", "--in-the-loop", "golden", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error: the core failed while running batch 3" in err and "checkpoint.pt" in err and "Traceback" not in err


def test_cli_ctrl_c_says_where_the_checkpoint_is(monkeypatch, capsys, tmp_path, small_digits):
    model = build_model(CFG, 64, 10)
    stop = InLoopInterrupted(TrainResult(model, CFG, [], {}, 0.0, small_digits), 0, 4)
    stop.checkpoint = tmp_path / "checkpoint.pt"
    monkeypatch.setattr(inloop, "train_in_the_loop", _fake_train(stop))
    monkeypatch.setattr(inloop, "driver_has_probes", lambda: True)
    assert main(["train", "--in-the-loop", "golden", "--out", str(tmp_path), "--quiet"]) == 130
    assert f"interrupted; saved the checkpoint of step 4 to {tmp_path}/checkpoint.pt" in capsys.readouterr().err


@NEEDS_PROBES
@pytest.mark.tools
def test_cli_in_the_loop_on_the_golden_core(tmp_path, capsys):
    assert main(["train", "--in-the-loop", "golden", "--hidden", "8", "--steps", "4", "--epochs", "1",
                 "--batch-size", "128", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "in the loop on golden" in out and "EQUAL" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["equal"]


@NEEDS_PROBES
@pytest.mark.tools
@pytest.mark.parametrize("backend", ["golden", "sim"])
def test_driver_core_in_the_loop_equals_software(backend, small_digits):
    """The real driver with probes: one step's gradients equal software's; three steps' parameters too."""
    from spikeloop.host import open_core
    from spikeloop.quant.export import export

    data = small_digits
    widths = [(10, 10), (14, 14)]
    soft, loop = build_model(CFG, 64, 10), build_model(CFG, 64, 10)
    for m in (soft, loop):
        m.set_widths(widths)
    x = CFG.encoder()(data.x_train[:16], seed=SEED)
    y = data.y_train[:16]
    network = export(loop, widths=widths).network
    with open_core(backend, network, probes=True, lanes=4, chunk=[16, 12]) as core:
        g_soft = gradients(soft, x, y)
        g_loop = gradients(loop, x, y, core=core)
        assert g_soft and all(torch.equal(g_soft[k], g_loop[k]) for k in g_soft), f"seed {SEED}"
        models = [build_model(CFG, 64, 10), build_model(CFG, 64, 10)]
        for m in models:
            m.set_widths(widths)  # the model computes with the core's widths
        a = fit(CFG, data=data, model=models[0], max_steps=3, progress=False)
        b = fit(CFG, data=data, model=models[1], core=core, max_steps=3, progress=False)
    assert a.steps == b.steps == 3
    for x1, x2 in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x1, x2), f"seed {SEED}"


def test_stuck_bits_core_differs_from_its_network():
    from spikeloop.network import random_network

    net = random_network((40, 12, 5), seed=SEED)
    core = golden_core(net, stuck_fraction=0.2, seed=SEED)
    spikes = np.random.default_rng(SEED).random((10, 40)) < 0.4
    faulty = core.run(spikes, reset=True, probe="all").layers[0].v
    assert not np.array_equal(faulty, golden.run(net, spikes, record=True).layers[0].v)
    clean = golden_core(net)
    assert np.array_equal(clean.run(spikes, reset=True, probe="all").layers[0].v,
                          golden.run(net, spikes, record=True).layers[0].v)


def test_study_small():
    study = StudyConfig(seeds=(0,), hidden=(16,), steps=4, pre_epochs=2, fine_epochs=1, batch_size=64,
                        max_train=256, max_test=80, stuck_fraction=0.2)
    rows = run_study(study)
    assert [r.scenario for r in rows] == list(SCENARIOS)
    for r in rows:
        for col in ("model", "before", "in_the_loop", "software"):
            assert 0 <= getattr(r, col) <= 1
        assert r.timing["samples"] == 256 and r.timing["core"] > 0
    text = table(rows)
    assert text.count("\n") == 4 and "stuck" in text
    with pytest.raises(ValueError, match="scenarios"):
        StudyConfig(scenarios=("cosmic rays",))
    with pytest.raises(ValueError, match="stuck_fraction"):
        StudyConfig(stuck_fraction=0)


@pytest.mark.experiment
def test_study_full(tmp_path):
    """The full study (3 seeds, 3 scenarios): `make experiments`; the table goes to build/inloop_study."""
    from pathlib import Path

    from spikeloop.app.inloop_study import main as study_main

    out = Path(__file__).resolve().parents[1] / "build" / "inloop_study"
    assert study_main(["--out", str(out)]) == 0
    rows = json.loads((out / "rows.json").read_text())["rows"]
    assert len(rows) == 9
    stuck = [r for r in rows if r["scenario"] == "stuck"]
    # the loop sees the stuck bits, software does not: on average it recovers more
    assert np.mean([r["in_the_loop"] for r in stuck]) > np.mean([r["software"] for r in stuck])


# ---- the real driver, today: a one-layer network's output (spikes, membranes v') is its whole trace ----------


class OutputTraces:
    """The driver's `Core` as a core with probes, for one-layer lif networks: `run` gives its output spikes and
    membranes as the layer's trace (a lif layer's currents are not put in place of the model's). `on_run(n)` is
    called before the n-th run (to inject faults)."""

    def __init__(self, core, on_run=None):
        self.core, self.on_run, self.runs = core, on_run, 0

    def load(self, network, *, verify=True):
        assert len(network.layers) == 1 and network.layers[0].neuron == "lif"
        self.core.load(network, verify=verify)

    def run(self, spikes, *, reset=True, probe=None):
        self.runs += 1
        if self.on_run is not None:
            self.on_run(self.runs)
        out = self.core.run(spikes, reset=reset)
        return SimpleNamespace(layers=(SimpleNamespace(z=out.spikes, v=out.membranes,
                                                       u=np.zeros_like(out.membranes)),))

    def reset(self):
        self.core.reset()


ONE = TrainConfig(hidden=(), readout="count", steps=6, epochs=1, batch_size=16, seed=SEED)
ONE_WIDTHS = [(5, 5)]  # narrow enough that some membranes saturate: the model saturates alike


def one_layer_model():
    model = build_model(ONE, 64, 10)
    model.set_widths(ONE_WIDTHS)
    return model


@pytest.mark.parametrize("backend", ["golden", "sim"])
def test_one_layer_through_the_driver_equals_software(backend, small_digits):
    """The host driver on the golden board and on the Verilated board: one step's gradients equal software's,
    and three steps give the same parameters."""
    from spikeloop.host import open_core
    from spikeloop.quant.export import export

    network = export(one_layer_model(), widths=ONE_WIDTHS).network
    options = {"profile": "quick"} if backend == "sim" else {}
    x = ONE.encoder()(small_digits.x_train[:16], seed=SEED)
    y = small_digits.y_train[:16]
    with open_core(backend, network, lanes=5, chunk=16, membranes=True, **options) as driver:
        core = OutputTraces(driver)
        g_soft = gradients(one_layer_model(), x, y)
        g_loop = gradients(one_layer_model(), x, y, core=core)
        assert g_soft and all(torch.equal(g_soft[k], g_loop[k]) for k in g_soft), f"seed {SEED}"
        assert g_soft["layers.0.weights.latent"].abs().sum() > 0
        seen = core_traces(core, x, 1)[0]
        assert seen.z.any() and (seen.v == -16).any(), "no spike or no saturation: a vacuous comparison"
        a = fit(ONE, data=small_digits, model=one_layer_model(), max_steps=3, progress=False)
        b = fit(ONE, data=small_digits, model=one_layer_model(), core=core, max_steps=3, progress=False)
    assert a.steps == b.steps == 3 and b.timing[0]["core"] > 0
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), f"{name} (seed {SEED})"


@pytest.mark.parametrize("fault", ["mute", "truncate"])
def test_a_real_transfer_fault_stops_training_and_reset_recovers(fault, small_digits, tmp_path):
    """The golden board stops answering (TransferTimeout) or answers short (TransferError) in the middle of
    training: CoreFault with the checkpoint of the last complete step; after reset() the core runs again."""
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core
    from spikeloop.host.sim_transport import BoardTransport
    from spikeloop.quant.export import export
    from spikeloop.sim.golden_board import GoldenBoard
    from spikeloop.sim.interface import Fault

    network = export(one_layer_model(), widths=ONE_WIDTHS).network
    board = GoldenBoard(CoreConfig.for_network(network, lanes=5, chunk=16, membranes=True))
    kind = {"mute": (Fault.MUTE, 0), "truncate": (Fault.TRUNCATE, 3)}[fault]

    def inject(n):
        if n == 40:  # in the third batch of 16
            board.fault(*kind)

    core = OutputTraces(Core(BoardTransport(board=board), timeout=0.3), on_run=inject)
    with pytest.raises(CoreFault, match="after 2 complete step") as info:
        fit(ONE, data=small_digits, model=one_layer_model(), core=core, checkpoint=tmp_path / "c.pt", progress=False)
    cause = info.value.__cause__
    assert isinstance(cause, TimeoutError if fault == "mute" else RuntimeError)
    assert type(cause).__name__ == ("TransferTimeout" if fault == "mute" else "TransferError")
    assert (tmp_path / "c.pt").is_file() and info.value.steps == 2
    board.fault(Fault.NONE)
    core.reset()
    spikes = ONE.encoder()(small_digits.x_test[:1], seed=SEED)[0].astype(bool)
    out = core.run(spikes, probe="all").layers[0]
    want = golden.run(core.core.network, spikes, record=True).layers[0]
    assert np.array_equal(out.v, want.v) and np.array_equal(out.z, want.z)


def test_ctrl_c_in_a_transfer_keeps_a_checkpoint_and_reset_recovers_the_driver(small_digits, tmp_path):
    """Ctrl-C lands in the middle of a stream transfer (half a timestep's words sent): InLoopInterrupted with
    the checkpoint of the last complete step; the driver's reset() finishes the partial timestep and the core
    computes what the golden model does again."""
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core
    from spikeloop.host.sim_transport import BoardTransport
    from spikeloop.quant.export import export
    from spikeloop.sim.golden_board import GoldenBoard

    class Interrupting(GoldenBoard):
        transfers, interrupt_at = 0, None

        def transfer(self, words, room, max_cycles):
            self.transfers += 1
            if self.transfers == self.interrupt_at:
                self.arm(room)
                self.send(np.asarray(words)[:1], last=False)  # one word of two: a timestep in flight
                raise KeyboardInterrupt
            return super().transfer(words, room, max_cycles)

    network = export(one_layer_model(), widths=ONE_WIDTHS).network
    board = Interrupting(CoreConfig.for_network(network, lanes=5, chunk=16, membranes=True))
    core = OutputTraces(Core(BoardTransport(board=board), timeout=1.0))
    board.interrupt_at = 40  # the third batch of 16 (one transfer per sample)
    with pytest.raises(InLoopInterrupted) as info:
        fit(ONE, data=small_digits, model=one_layer_model(), core=core, checkpoint=tmp_path / "c.pt", progress=False)
    assert info.value.steps == 2 and info.value.checkpoint == tmp_path / "c.pt" and (tmp_path / "c.pt").is_file()
    assert core.core.status().busy  # the partial timestep is still held
    core.reset()
    spikes = ONE.encoder()(small_digits.x_test[:1], seed=SEED)[0].astype(bool)
    out = core.run(spikes, probe="all").layers[0]
    want = golden.run(core.core.network, spikes, record=True).layers[0]
    assert np.array_equal(out.v, want.v) and np.array_equal(out.z, want.z) and out.v.any()
