"""In-the-loop training (spikeloop.quant.inloop) against a stand-in core over the golden model.

The stand-in holds `spikeloop.golden.run(network, spikes, record=True).layers`, which is what the
driver's `Core.run(..., probe="all")` returns; tests/host and tests/test_cli hold the real driver.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikeloop import golden
from spikeloop.quant.data import Dataset
from spikeloop.quant.export import export
from spikeloop.quant.inloop import (
    TIMING_KEYS,
    CoreFault,
    InLoopError,
    InLoopInterrupted,
    core_accuracy,
    core_traces,
    fit,
    gradients,
    load_model,
    loop_widths,
)
from spikeloop.quant.models import feedforward
from spikeloop.quant.train import TrainConfig, build_model, load_checkpoint

SEED = 7


class ProbeCore:
    """A core with probes, as the driver's `Core` presents one: `golden.run(..., record=True)` underneath.

    `fail_at` / `interrupt_at`: the run (counted from 1) that raises `error` / KeyboardInterrupt; the core then
    refuses to run until `reset()`, as a driver does after a failed transfer."""

    def __init__(self, *, fail_at=None, interrupt_at=None, error=None):
        self.network, self.loads, self.runs, self.resets = None, 0, 0, 0
        self.fail_at, self.interrupt_at = fail_at, interrupt_at
        self.error = error or TimeoutError("the receive got 0 of 8 words in 2.00 s; reset the core")
        self.broken = False

    def load(self, network, *, verify=True):
        self.network, self.loads = network, self.loads + 1

    def run(self, spikes, *, reset=True, probe=None):
        assert reset and probe == "all" and spikes.dtype == bool and spikes.ndim == 2
        if self.broken:
            raise RuntimeError("call reset() first")
        self.runs += 1
        if self.runs == self.fail_at:
            self.broken = True
            raise self.error
        if self.runs == self.interrupt_at:
            self.broken = True
            raise KeyboardInterrupt
        trace = golden.run(self.network, spikes, record=True)
        return SimpleNamespace(layers=trace.layers, spikes=trace.spikes, membranes=trace.membranes)

    def reset(self):
        self.broken, self.resets = False, self.resets + 1


def tiny_data(seed: int = SEED, n: int = 24, n_in: int = 12, classes: int = 3) -> Dataset:
    """Intensities in [0, 1] whose class sets which third of the inputs is bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, 2 * n)
    x = rng.random((2 * n, n_in)) * 0.3
    for i, c in enumerate(y):
        x[i, c * n_in // classes:(c + 1) * n_in // classes] += 0.6
    return Dataset("tiny", x[:n].astype(np.float32), y[:n], x[n:].astype(np.float32), y[n:], classes, seed)


CFG = TrainConfig(dataset="digits", hidden=(10,), steps=5, epochs=2, batch_size=8, seed=SEED, lr=0.05)


def model_for(cfg, data, *, neuron="lif", widths=((10, 10), (12, 12))):
    model = build_model(replace(cfg, neuron=neuron), data.n_in, data.n_classes)
    if widths is not None:
        model.set_widths(widths)
    return model


#: contract v2's options (and reset) unlike v1's, for the loop
V2 = dict(reset="subtract_next", decay_round="nearest", input_shift=4, bias_to="membrane", u_overflow="wrap",
          v_range="symmetric")


@pytest.mark.parametrize("neuron, options", [("lif", {}), ("cuba", {}), ("lif", V2), ("cuba", V2),
                                             ("lif", {"recurrent": True}), ("cuba", {**V2, "recurrent": True})],
                         ids=["lif", "cuba", "lif-v2", "cuba-v2", "lif-recurrent", "cuba-v2-recurrent"])
def test_one_step_in_the_loop_gives_the_software_gradients(neuron, options):
    data = tiny_data()
    cfg = replace(CFG, **options)
    x = cfg.encoder()(data.x_train[:8], seed=3)
    y = data.y_train[:8]
    soft, loop = model_for(cfg, data, neuron=neuron), model_for(cfg, data, neuron=neuron)
    core = ProbeCore()
    g_soft = gradients(soft, x, y)
    g_loop = gradients(loop, x, y, core=core)
    assert core.loads == 1 and core.runs == 8
    assert set(g_soft) == set(g_loop) and g_soft
    for name in g_soft:
        assert torch.equal(g_soft[name], g_loop[name]), f"{name} (seed {SEED})"
    assert any(g.abs().sum() > 0 for g in g_soft.values()), "no gradient flowed"
    if cfg.recurrent:  # the recurrent columns follow the layer's 12 inputs
        assert g_soft["layers.0.weights.latent"][:, 12:].abs().sum() > 0, "no gradient through the recurrence"
    # not vacuous: the hidden layer fired, and the core's traces are those of the model
    traces = core_traces(core, x, 2)
    assert traces[0].z.any()
    out = soft(x)
    for mine, theirs in zip(out.layers, traces):
        assert torch.equal(mine.v.to(torch.int64), theirs.v) and torch.equal(mine.z.bool(), theirs.z)


def test_n_steps_in_the_loop_give_the_software_parameters():
    data = tiny_data()
    soft = fit(CFG, data=data, model=model_for(CFG, data), progress=False)
    core = ProbeCore()
    loop = fit(CFG, data=data, model=model_for(CFG, data), core=core, progress=False)
    assert soft.steps == loop.steps == 6  # 2 epochs of 3 batches
    assert core.loads == 7 and core.runs == 2 * 24
    for (name, a), b in zip(soft.model.state_dict().items(), loop.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} (seed {SEED})"
    start = model_for(CFG, data).state_dict()
    assert not torch.equal(start["layers.0.weights.latent"], loop.model.state_dict()["layers.0.weights.latent"])
    assert soft.history == loop.history
    # the core holds the last parameters
    assert core.network.content_hash == export(loop.model, widths=loop.widths).network.content_hash
    # timing per step, by part
    assert len(loop.timing) == 6 and set(TIMING_KEYS) <= set(loop.timing[0])
    totals = loop.totals
    assert totals["samples"] == 48 and totals["core"] > 0 and totals["load"] > 0 and totals["samples_per_second"] > 0


def test_substitution_changes_the_forward_when_the_core_differs():
    """A core that differs (narrower membranes): the loop's outputs are the core's, not the model's."""
    data = tiny_data()
    x = torch.from_numpy(CFG.encoder()(data.x_train[:8], seed=3))
    model = model_for(CFG, data, widths=None)
    narrow = [(3, 3), (4, 4)]
    core = ProbeCore()
    load_model(core, model, narrow)
    observed = core_traces(core, x, 2)
    mine = model(x)
    seen = model(x, observed=observed)
    assert not torch.equal(mine.layers[-1].v.to(torch.int64), observed[-1].v)  # they differ ...
    for s, o in zip(seen.layers, observed):  # ... and the loop's forward is the core's
        assert torch.equal(s.v.to(torch.int64), o.v) and torch.equal(s.z.bool(), o.z)
    seen.logits.sum().backward()
    assert model.layers[0].weights.latent.grad.abs().sum() > 0


def test_float_model_in_the_loop():
    """A float-mode model takes the integer core's values too (experiment (a))."""
    data = tiny_data()
    cfg = replace(CFG, hardware=False)
    model = build_model(cfg, data.n_in, data.n_classes)
    core = ProbeCore()
    done = fit(cfg, data=data, model=model, core=core, widths=[(10, 10), (12, 12)], max_steps=2, progress=False)
    assert done.steps == 2 and core.loads == 3


def test_a_transfer_timeout_stops_training_with_a_checkpoint(tmp_path):
    data = tiny_data()
    core = ProbeCore(fail_at=20)  # the third batch (runs 17-24)
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    with pytest.raises(CoreFault, match=r"TimeoutError.*after 2 complete step\(s\).*saved to") as info:
        fit(CFG, data=data, model=model_for(CFG, data), core=core, checkpoint=ckpt, progress=False)
    stop = info.value
    assert stop.steps == 2 and stop.checkpoint == ckpt and isinstance(stop.__cause__, TimeoutError)
    # the checkpoint holds the parameters of step 2: those of a clean 2-step run
    clean = fit(CFG, data=data, model=model_for(CFG, data), max_steps=2, progress=False)
    saved, _, record = load_checkpoint(ckpt)
    assert record["metrics"]["stopped_after_steps"] == 2
    for (name, a), b in zip(clean.model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(RuntimeError, match="reset"):
        core.run(np.zeros((5, 12), bool), probe="all")
    core.reset()
    assert core.run(np.ones((5, 12), bool), probe="all").layers[0].v.any()


@pytest.mark.parametrize("error", [RuntimeError("TransferError: 5 timesteps in gave 3 words out")])
def test_a_transfer_error_stops_training(error, tmp_path):
    data = tiny_data()
    core = ProbeCore(fail_at=1, error=error)
    with pytest.raises(CoreFault, match=r"batch 1 of epoch 1.*after 0 complete step") as info:
        fit(CFG, data=data, model=model_for(CFG, data), core=core, checkpoint=tmp_path / "c.pt", progress=False)
    assert info.value.__cause__ is error and (tmp_path / "c.pt").is_file()


def test_a_failing_load_keeps_the_last_good_step():
    data = tiny_data()

    class FailingLoad(ProbeCore):
        def load(self, network, *, verify=True):
            if self.loads == 2:  # the load after step 2
                raise RuntimeError("LoadError: the core refused part of the network")
            super().load(network, verify=verify)

    core = FailingLoad()
    with pytest.raises(CoreFault, match="loading the parameters of step 2") as info:
        fit(CFG, data=data, model=model_for(CFG, data), core=core, progress=False)
    clean = fit(CFG, data=data, model=model_for(CFG, data), max_steps=1, progress=False)
    assert info.value.steps == 1 and info.value.checkpoint is None
    for a, b in zip(clean.model.state_dict().values(), info.value.result.model.state_dict().values()):
        assert torch.equal(a, b)


def test_ctrl_c_writes_a_checkpoint_and_the_core_recovers(tmp_path):
    data = tiny_data()
    core = ProbeCore(interrupt_at=30)  # in the fourth batch (epoch 2, batch 1)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(InLoopInterrupted) as info:
        fit(CFG, data=data, model=model_for(CFG, data), core=core, checkpoint=ckpt, progress=False)
    stop = info.value
    assert isinstance(stop, KeyboardInterrupt)
    assert stop.steps == 3 and stop.epochs == 1 and stop.checkpoint == ckpt and ckpt.is_file()
    _, _, record = load_checkpoint(ckpt)
    assert record["metrics"]["stopped_after_steps"] == 3 and len(record["history"]) == 1
    core.reset()
    x = CFG.encoder()(data.x_test, seed=1)
    assert core_accuracy(core, x, data.y_test, "membrane") >= 0


def test_core_accuracy_matches_the_model():
    data = tiny_data()
    done = fit(CFG, data=data, model=model_for(CFG, data), progress=False)
    core = ProbeCore()
    load_model(core, done.model, done.model and loop_widths(done.model))
    x = CFG.encoder()(data.x_test, seed=1)
    from spikeloop.quant.train import evaluate

    want = evaluate(done.model, x, data.y_test, hardware=True).accuracy
    assert core_accuracy(core, x, data.y_test, done.model.readout) == want
    assert want > 1 / 3  # learned something (chance is 1/3)


def test_refusals():
    data = tiny_data()
    model = model_for(CFG, data, widths=None)
    with pytest.raises(InLoopError, match="no widths"):
        fit(CFG, data=data, model=model, core=ProbeCore(), progress=False)
    with pytest.raises(InLoopError, match=r"widths: 1 entries for 2 layers"):
        loop_widths(model, [(8, 8)])
    with pytest.raises(InLoopError, match=r"layer 1: widths entry \(8, 40\)"):
        loop_widths(model, [(8, 8), (8, 40)])
    bayes = feedforward((12, 10, 3), rule="bayes")
    with pytest.raises(InLoopError, match="cfg.rule = 'ste' but the model follows 'bayes'"):
        fit(CFG, data=data, model=bayes, progress=False)
    with pytest.raises(InLoopError, match="max_steps = 0"):
        fit(CFG, data=data, model=model, max_steps=0, progress=False)
    with pytest.raises(InLoopError, match="sizes"):
        fit(CFG, data=data, model=feedforward((12, 10, 4)), progress=False)
    with pytest.raises(InLoopError, match="expected a BinarySNN"):
        gradients("model", np.zeros((1, 5, 12)), [0])

    class Short(ProbeCore):
        def run(self, spikes, **kw):
            out = super().run(spikes, **kw)
            return SimpleNamespace(layers=out.layers[:1])

    core = Short()
    load_model(core, model_for(CFG, data), [(10, 10), (12, 12)])
    with pytest.raises(InLoopError, match="traces of 1 layers; the model has 2"):
        core_traces(core, np.zeros((1, 5, 12), np.uint8), 2)
    from spikeloop.quant.models import LayerTrace, ModelError

    with pytest.raises(ModelError, match=r"layer 0: observed v must have shape \[2, 5, 10\]"):
        z = torch.zeros(2, 5, 10, dtype=torch.bool)
        model(torch.zeros(2, 5, 12), observed=[LayerTrace(z, torch.zeros(2, 4, 10), z), None])


BAYES = replace(CFG, rule="bayes", lr=None)


def golden_board(model, widths):
    from spikeloop.host import open_core

    return open_core("golden", export(model, widths=list(widths)).network, probes=True)


def test_one_bayes_step_on_the_golden_board_gives_the_software_gradients():
    """One hard sample per step, loaded into the core: with a faithful core the gradients equal software's."""
    data = tiny_data()
    x = BAYES.encoder()(data.x_train[:8], seed=3)
    y = data.y_train[:8]
    soft, loop = model_for(BAYES, data), model_for(BAYES, data)
    core = golden_board(loop, loop_widths(loop))
    g_soft = gradients(soft, x, y, seed=5)
    g_loop = gradients(loop, x, y, core=core, seed=5)
    assert set(g_soft) == set(g_loop) and "layers.0.weights.logit" in g_soft
    for name in g_soft:
        assert torch.equal(g_soft[name], g_loop[name]), f"{name} (seed {SEED})"
    assert g_soft["layers.0.weights.logit"].abs().sum() > 0, "no gradient reached the natural parameters"
    # not vacuous: the core ran a sample, not the mode, and its hidden layer fired
    sample = [w.detach().to(torch.int8).numpy() for w in loop.weights("sample", torch.Generator().manual_seed(5))]
    mode = loop.binary_weights("mode")
    assert any((s != m).any() for s, m in zip(sample, mode))
    assert core_traces(core, x, 2)[0].z.any()
    core.close()


@pytest.mark.parametrize("update", ["adam", "bisnn"])
def test_a_short_bayes_fit_on_the_golden_board_equals_software(update):
    data = tiny_data()
    cfg = replace(BAYES, update=update)
    soft = fit(cfg, data=data, model=model_for(cfg, data), progress=False)
    model = model_for(cfg, data)
    core = golden_board(model, loop_widths(model))
    loop = fit(cfg, data=data, model=model, core=core, progress=False)
    assert soft.steps == loop.steps == 6 and soft.history == loop.history
    for (name, a), b in zip(soft.model.state_dict().items(), loop.model.state_dict().values()):
        assert torch.equal(a, b), f"{name} (seed {SEED})"
    start = model_for(cfg, data).state_dict()["layers.0.weights.logit"]
    assert not torch.equal(start, loop.model.state_dict()["layers.0.weights.logit"])
    # afterwards the core holds the posterior mode: its readout is the model's
    x = cfg.encoder()(data.x_test, seed=1)
    assert core_accuracy(core, x, data.y_test, loop.model.readout) == \
        float(np.mean(loop.model.eval()(x).scores.argmax(1).numpy() == data.y_test))
    core.close()
