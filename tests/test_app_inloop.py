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
from spikeloop.sim.golden_board import GoldenBoard

SEED = 11


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


def test_a_core_without_probes_is_refused_and_closed(monkeypatch):
    """A PYNQ bitstream built without probes cannot train in the loop: refused, the core closed."""
    from spikeloop.app import cli
    from spikeloop.host import open_core
    from spikeloop.network import random_network

    net = random_network((20, 6), seed=SEED)
    opened = []

    def no_probes(network, backend, **options):
        opened.append(open_core("golden", network))  # built without probes, like an old bitstream
        return opened[-1]

    monkeypatch.setattr(cli, "open_backend", no_probes)
    with pytest.raises(ValueError, match=r"needs a core built with probes \(CONFIG.probes\); .* has none"):
        inloop.open_loop_core(net, "pynq")
    with pytest.raises(Exception, match="close"):
        opened[0].status()


@pytest.mark.parametrize("update", ["adam", "bisnn"])
def test_bayes_rule_trains_in_the_loop(small_digits, tmp_path, update):
    """The Bayesian rule in the loop: one sample per step on the core; afterwards the core holds the mode."""
    cfg = replace(CFG, rule="bayes", update=update)
    core = ProbeCore()
    s = inloop.train_in_the_loop(cfg, core=core, data=small_digits, out=tmp_path, progress=False)
    assert s["steps"] == 3 and s["equal"] and s["config"]["update"] == update
    from spikeloop.network import Network

    assert core.network.content_hash == Network.load(tmp_path / "network.npz").content_hash  # the mode


def test_bisnn_without_the_bayesian_rule_is_refused(capsys, tmp_path):
    assert main(["train", "--in-the-loop", "golden", "--update", "bisnn", "--out", str(tmp_path)]) == 2
    assert "update = 'bisnn' needs rule = 'bayes'" in capsys.readouterr().err


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
    assert main(["train", "--in-the-loop", "golden", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error: the core failed while running batch 3" in err and "checkpoint.pt" in err and "Traceback" not in err


def test_cli_ctrl_c_says_where_the_checkpoint_is(monkeypatch, capsys, tmp_path, small_digits):
    model = build_model(CFG, 64, 10)
    stop = InLoopInterrupted(TrainResult(model, CFG, [], {}, 0.0, small_digits), 0, 4)
    stop.checkpoint = tmp_path / "checkpoint.pt"
    monkeypatch.setattr(inloop, "train_in_the_loop", _fake_train(stop))
    assert main(["train", "--in-the-loop", "golden", "--out", str(tmp_path), "--quiet"]) == 130
    assert f"interrupted; saved the checkpoint of step 4 to {tmp_path}/checkpoint.pt" in capsys.readouterr().err


@pytest.mark.tools
def test_cli_in_the_loop_on_the_golden_core(tmp_path, capsys):
    assert main(["train", "--in-the-loop", "golden", "--hidden", "8", "--steps", "4", "--epochs", "1",
                 "--batch-size", "128", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "in the loop on golden" in out and "EQUAL" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["equal"]


WIDTHS = [(4, 4), (6, 6)]  # narrow enough that the hidden layer's membranes and currents saturate


def two_layer_model(cfg=CFG):
    model = build_model(cfg, 64, 10)
    model.set_widths(WIDTHS)  # the model computes with the core's widths, saturating alike
    return model


def check_not_vacuous(core, x):
    """Spikes in every layer and saturation in the hidden one, or the comparisons prove little."""
    seen = core_traces(core, x, 2)
    lo, hi = -(1 << (WIDTHS[0][0] - 1)), (1 << (WIDTHS[0][0] - 1)) - 1
    assert all(t.z.any() for t in seen), f"a layer never spiked (seed {SEED}): a vacuous comparison"
    assert ((seen[0].v == lo) | (seen[0].v == hi)).any(), f"no saturation in the hidden layer (seed {SEED})"


@pytest.mark.parametrize("recurrent", [False, True], ids=["feedforward", "recurrent"])
@pytest.mark.parametrize("backend", ["golden", pytest.param("sim", marks=pytest.mark.tools)])
def test_driver_core_in_the_loop_equals_software(backend, recurrent, small_digits):
    """The real driver with probes (`run(..., probe="all")`, stream loads) on a two-layer network (its hidden
    layer recurrent or not): one step's gradients equal software's (torch.equal); three steps give the same
    parameters."""
    from spikeloop.host import open_core
    from spikeloop.quant.export import export

    data = small_digits
    cfg = replace(CFG, recurrent=recurrent)
    x = cfg.encoder()(data.x_train[:16], seed=SEED)
    y = data.y_train[:16]

    def model():
        return two_layer_model(cfg)

    network = export(model(), widths=WIDTHS).network
    assert network.layers[0].is_recurrent == recurrent
    options = {"profile": "quick"} if backend == "sim" else {}
    with open_core(backend, network, probes=True, lanes=4, chunk=[16, 12], **options) as core:
        assert core.transport.can_send_frames  # the loads below go by stream
        check_not_vacuous(core, x)
        g_soft = gradients(model(), x, y)
        g_loop = gradients(model(), x, y, core=core)
        assert g_soft and all(torch.equal(g_soft[k], g_loop[k]) for k in g_soft), f"seed {SEED}"
        assert all(g_soft[f"layers.{k}.weights.latent"].abs().sum() > 0 for k in range(2))
        if recurrent:
            assert g_soft["layers.0.weights.latent"][:, 64:].abs().sum() > 0, "no gradient through the recurrence"
        a = fit(cfg, data=data, model=model(), max_steps=3, progress=False)
        b = fit(cfg, data=data, model=model(), core=core, max_steps=3, progress=False)
        loads = core.transport.stats
    assert a.steps == b.steps == 3 and b.timing[0]["core"] > 0
    assert loads.mmio_writes < 200, f"{loads}: the parameter loads did not go by stream"
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), f"{name} (seed {SEED})"


@pytest.mark.experiment  # a Verilator build of its own: CI runs it in `make experiments`
@pytest.mark.tools
def test_stuck_bits_on_the_verilated_board_are_forced_alike_by_stream_and_mmio():
    """StuckWeightBits over the Verilated board (the build of the test above): a load by stream and one by
    MMIO store the same weight words, with the stuck bits forced (words read back through AXI-Lite)."""
    from spikeloop import regmap
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core
    from spikeloop.host.sim_transport import BoardTransport
    from spikeloop.quant.export import export
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.faults import StuckWeightBits
    from spikeloop.windows import load_writes

    network = export(two_layer_model(), widths=WIDTHS).network
    config = CoreConfig.for_network(network, lanes=4, chunk=[16, 12], membranes=True, probes=True)
    board = StuckWeightBits(SimBoard(config, profile="quick"), fraction=0.2, seed=SEED)
    offsets = np.concatenate([regmap.window(config, k, "weights").base + regmap.WORD_BYTES *
                              np.arange(regmap.window(config, k, "weights").words) for k in range(2)])
    clean = dict(load_writes(config, network))
    with Core(BoardTransport(board=board), expect=config) as core:
        held = {}
        for via in ("stream", "mmio"):
            core.reset()
            core.load(network, verify=False, via=via)
            held[via] = core.transport.read_many(offsets).astype(np.int64)
    assert np.array_equal(held["stream"], held["mmio"]), f"seed {SEED}"
    want = np.array([board.forced_writes([(o, clean[o])])[0][1] for o in offsets.tolist()])
    assert np.array_equal(held["stream"], want)
    assert (want != np.array([clean[o] for o in offsets.tolist()])).any(), "no bit forced: a vacuous comparison"


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
    with pytest.raises(ValueError, match="narrow_layers = 'readout'; expected one of all, hidden"):
        StudyConfig(narrow_layers="readout")


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


# ---- faults in the middle of training, on the golden board behind the driver (stream loads) -------------


def golden_loop_core(board_class=None, **board_options):
    """A two-layer network's core with probes: (board, driver Core) over a golden board (or ``board_class``)."""
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core
    from spikeloop.host.sim_transport import BoardTransport
    from spikeloop.quant.export import export

    network = export(two_layer_model(), widths=WIDTHS).network
    board = (board_class or GoldenBoard)(CoreConfig.for_network(network, lanes=4, chunk=[16, 12], probes=True))
    for k, v in board_options.items():
        setattr(board, k, v)
    return board, Core(BoardTransport(board=board), timeout=0.3)


def check_usable(core, small_digits, network=None):
    """After reset() (and a load of ``network`` when the last one failed) the core computes what the golden
    model does, every layer."""
    core.reset()
    if network is not None:
        core.load(network)
    spikes = CFG.encoder()(small_digits.x_test[:2], seed=SEED).astype(bool)
    out = core.run(spikes, probe="all").layers
    want = [golden.run(core.network, s, record=True).layers for s in spikes]
    for k, layer in enumerate(out):
        for f in ("z", "v", "u"):
            assert np.array_equal(getattr(layer, f), np.stack([getattr(w[k], f) for w in want])), (k, f)
    assert out[-1].z.any() and out[0].z.any()


def checkpoint_network(path):
    from spikeloop.quant.export import export
    from spikeloop.quant.train import load_checkpoint

    model = load_checkpoint(path)[0]
    return export(model, widths=WIDTHS).network


class ThirdBatch(GoldenBoard):
    """A golden board counting load frames (the initial load, then one per step) and the transfers after the
    third: `in_third_batch(n)` is true at the n-th transfer of the third batch."""

    frames = transfers = 0

    def send(self, words, *, last=True):
        if self._loading:
            self.frames, self.transfers = self.frames + 1, 0
        super().send(words, last=last)

    def in_third_batch(self, n):
        self.transfers += 1
        return self.frames == 3 and self.transfers == n


@pytest.mark.parametrize("fault", ["mute", "truncate"])
def test_a_transfer_fault_stops_training_and_reset_recovers(fault, small_digits, tmp_path):
    """The golden board stops answering (TransferTimeout) or answers short (TransferError) in the middle of
    training: CoreFault with the checkpoint of the last complete step; after reset() the core runs again."""
    from spikeloop.sim.interface import Fault

    kind = {"mute": (Fault.MUTE, 0), "truncate": (Fault.TRUNCATE, 3)}[fault]

    class Faulty(ThirdBatch):
        def transfer(self, words, room, max_cycles):
            if self.in_third_batch(5):
                self.fault(*kind)
            return super().transfer(words, room, max_cycles)

    board, core = golden_loop_core(Faulty)
    with pytest.raises(CoreFault, match="after 2 complete step") as info:
        fit(CFG, data=small_digits, model=two_layer_model(), core=core, checkpoint=tmp_path / "c.pt",
            progress=False)
    cause = info.value.__cause__
    assert type(cause).__name__ == ("TransferTimeout" if fault == "mute" else "TransferError")
    assert (tmp_path / "c.pt").is_file() and info.value.steps == 2
    kept = checkpoint_network(tmp_path / "c.pt")
    held = board.network()  # the last load: the parameters of step 2, the checkpoint's
    assert all(np.array_equal(a.weights, b.weights) and np.array_equal(a.theta, b.theta)
               for a, b in zip(kept.layers, held.layers))
    board.fault(Fault.NONE)
    check_usable(core, small_digits)


@pytest.mark.parametrize("how", ["stall", "ctrl-c"])
def test_a_stream_load_cut_short_keeps_the_last_good_step_and_reset_recovers(how, small_digits, tmp_path):
    """The parameter load frame of step 3 stops half-way: the board stops taking its words (TransferTimeout,
    CoreFault) or Ctrl-C lands in it (InLoopInterrupted). The checkpoint holds step 2's parameters; reset()
    ends the unfinished load, and after loading the checkpoint's network the core computes as before."""
    from spikeloop.sim.interface import Until

    class CutShort(GoldenBoard):
        frames, cut_at, stalled = 0, 4, 0  # frame 1: the initial load; frame 4: step 3's

        def send(self, words, *, last=True):
            if self._loading and self.stalled == 0:
                self.frames += 1
                if self.frames == self.cut_at:
                    words = np.asarray(words)
                    half = words.size // 2
                    super().send(words[:half], last=False)
                    if how == "ctrl-c":
                        raise KeyboardInterrupt
                    self.stalled = words.size - half  # a core that stops taking the frame's words
                    return
            super().send(words, last=last)

        @property
        def pending(self):
            return self.stalled

        def run(self, max_cycles, until=0):
            if self.stalled and until & Until.SENT:
                self._cycles += max_cycles
                return max_cycles
            return super().run(max_cycles, until)

        def discard(self):
            self.stalled = 0
            super().discard()

        def reset(self, cycles=16):
            self.stalled = 0
            super().reset(cycles)

    board, core = golden_loop_core(CutShort)
    error = CoreFault if how == "stall" else InLoopInterrupted
    with pytest.raises(error) as info:
        fit(CFG, data=small_digits, model=two_layer_model(), core=core, checkpoint=tmp_path / "c.pt",
            progress=False)
    assert info.value.steps == 2 and (tmp_path / "c.pt").is_file()
    if how == "stall":
        assert type(info.value.__cause__).__name__ == "TransferTimeout", info.value.__cause__
        assert "loading the parameters of step 3" in str(info.value) and "the load did not finish" in str(info.value)
    assert board.frames == 4 and core.status().loading  # the frame was cut short: the load is unfinished
    with pytest.raises(RuntimeError, match="load"):
        core.run(np.zeros((2, 64), bool))  # half-loaded parameters are never run
    check_usable(core, small_digits, checkpoint_network(tmp_path / "c.pt"))
    assert board.frames == 6  # reset() ended the cut frame with a one-word one (refused), then the load


def test_ctrl_c_in_a_transfer_keeps_a_checkpoint_and_reset_recovers_the_driver(small_digits, tmp_path):
    """Ctrl-C lands in the middle of a stream transfer (part of a timestep's words sent): InLoopInterrupted
    with the checkpoint of the last complete step; the driver's reset() finishes the partial timestep and
    the core computes what the golden model does again."""
    from spikeloop.stream import words_per_timestep

    class Interrupting(ThirdBatch):
        def transfer(self, words, room, max_cycles):
            if self.in_third_batch(5):
                self.arm(room)
                self.send(np.asarray(words)[:1], last=False)  # one word of a timestep: a timestep in flight
                raise KeyboardInterrupt
            return super().transfer(words, room, max_cycles)

    board, core = golden_loop_core(Interrupting)
    assert words_per_timestep(core.config.n_in, core.config.bus_width) > 1  # so one word is part of a timestep
    with pytest.raises(InLoopInterrupted) as info:
        fit(CFG, data=small_digits, model=two_layer_model(), core=core, checkpoint=tmp_path / "c.pt",
            progress=False)
    assert info.value.steps == 2 and info.value.checkpoint == tmp_path / "c.pt" and (tmp_path / "c.pt").is_file()
    assert core.status().busy  # the partial timestep is still held
    check_usable(core, small_digits)
