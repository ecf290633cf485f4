"""Training with the core in the loop: the core runs each forward pass, the model its backward pass.

As hxtorch trains on BrainScaleS-2: every batch's samples run on a core with probes on (one
``core.run(spikes, reset=True, probe="all")`` per sample, state cleared between), which returns
every layer's spikes, pre-reset membranes and currents per timestep. The training model
(`spikeloop.quant.models.BinarySNN`) recomputes the same forward and puts the core's values in
place of its own, layer by layer and timestep by timestep, inside the recurrence
(`spikeloop.quant.golden.lif_step`'s ``observed``: value ``x + (core - x).detach()``, so the
next timestep's state follows from the core's values and the gradient is the model's surrogate).
After each optimizer step the parameters go back to the core: `spikeloop.quant.export.export`
with the core's widths, then ``core.load(network, verify=False)``.

The Bayesian rule (BiSNN) runs the same way with one hard binary sample per step: the step draws
the sample (straight-through Gumbel-softmax, `BinarySNN.weights("sample")`), exports it with the
core's widths and loads it (``verify=False``; by stream where the transport can), runs the batch
on the core with probes and substitutes the core's values; the backward pass goes through the
relaxed weights, and the update is ``cfg.update`` (Adam on the loss + KL, or BiSNN's mirror
descent, `spikeloop.quant.train.Updater`). After training the core holds the posterior mode.

The core is duck-typed (this module never imports the host): ``load(network, verify=)``,
``run(spikes, reset=True, probe="all")`` returning an object whose ``.layers`` are, per layer,
``(z bool [T, n_out], v int64 [T, n_out], u int64 [T, n_out])`` like
``spikeloop.golden.run(network, spikes, record=True).layers``, and ``reset()``.

Because a core is bit-exact with the golden model, a step in the loop on a faithful core gives
exactly the gradients of the same step in software (``fit(..., core=None)``): the tests hold
them equal. Where the core differs (a narrower build, stuck bits, a model trained in float
mode) the loop sees it and the model learns around it (`spikeloop.app.inloop_study`).

Faults: a core call raising `TimeoutError` (the host's ``TransferTimeout``) or a `RuntimeError`
(the host's ``TransferError``, ``CoreError``, ``LoadError``, ``TransportError``) stops
training with `CoreFault`; Ctrl-C raises `InLoopInterrupted`. Both keep the parameters of the
last complete step (parameters updated and loaded), saved to ``checkpoint`` when given
(`spikeloop.quant.train.save_checkpoint`). ``core.reset()`` makes the core usable again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spikeloop.metrics import readout_scores
from spikeloop.network import Network

from .data import Dataset
from .export import ExportError, export
from .models import BinarySNN, LayerTrace, predict
from .train import TrainConfig, TrainError, TrainInterrupted, TrainResult, Updater, build_model, save_checkpoint

__all__ = [
    "CORE_FAULTS", "CoreFault", "FitResult", "InLoopError", "InLoopInterrupted", "TIMING_KEYS", "core_accuracy",
    "core_traces", "fit", "gradients", "load_model", "loop_widths",
]

#: What a core call may raise that stops training cleanly with `CoreFault`: `TimeoutError` (the host's
#: TransferTimeout) and `RuntimeError` (the host's TransferError, CoreError, LoadError, TransportError).
CORE_FAULTS = (TimeoutError, RuntimeError)
#: Seconds per step, by part: core runs (transfers included), export and load of the parameters, the model's
#: forward, the backward pass, the optimizer step.
TIMING_KEYS = ("core", "load", "forward", "backward", "optimizer")


class InLoopError(ValueError):
    """In-the-loop training was asked for something it does not support."""


class CoreFault(RuntimeError):
    """The core failed while training: training stopped. ``result`` holds the model of the last complete
    step (``steps`` of them), ``checkpoint`` where it was saved (None: not saved), ``__cause__`` the fault."""

    def __init__(self, message: str, result: TrainResult, steps: int, checkpoint: Path | None):
        super().__init__(message)
        self.result, self.steps, self.checkpoint = result, steps, checkpoint


class InLoopInterrupted(TrainInterrupted):
    """Ctrl-C while training in the loop: as `TrainInterrupted`, with ``steps`` complete steps."""

    def __init__(self, result: TrainResult, epochs: int, steps: int):
        super().__init__(result, epochs)
        self.steps = steps


class _CoreCallFailed(Exception):
    """A core call raised one of `CORE_FAULTS` (internal: `fit` turns it into `CoreFault`)."""

    def __init__(self, what: str, error: BaseException):
        super().__init__(what)
        self.what, self.error = what, error


def _core_call(what: str, call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except CORE_FAULTS as e:
        raise _CoreCallFailed(what, e) from e


# ---------------------------------------------------------------------------------------------
# The core's side


def core_traces(core, spikes, n_layers: int) -> tuple[LayerTrace, ...]:
    """Run each sample of ``spikes`` (0/1 [B, T, n_in]) on ``core`` with probes on, from a cleared state;
    per layer, the core's spikes (bool), pre-reset membranes and currents (int64) stacked to [B, T, n_out]."""
    x = np.asarray(spikes.numpy() if isinstance(spikes, torch.Tensor) else spikes)
    if x.ndim != 3:
        raise InLoopError(f"spikes must have shape [B, T, n_in], got {x.shape}")
    per_sample = []
    for b in range(x.shape[0]):
        layers = tuple(core.run(x[b].astype(bool), reset=True, probe="all").layers)
        if len(layers) != n_layers:
            raise InLoopError(f"the core returned traces of {len(layers)} layers; the model has {n_layers}")
        per_sample.append(layers)
    out = []
    for k in range(n_layers):
        z, v, u = (np.stack([np.asarray(getattr(s[k], f)) for s in per_sample]) for f in ("z", "v", "u"))
        out.append(LayerTrace(torch.from_numpy(z.astype(bool)), torch.from_numpy(v.astype(np.int64)),
                              torch.from_numpy(u.astype(np.int64))))
    return tuple(out)


def loop_widths(model: BinarySNN, widths=None) -> list[tuple[int, int]]:
    """The (v_bits, u_bits) per layer the core is built for: ``widths`` (checked), else the model's own."""
    if widths is None:
        got = [(layer.v_bits, layer.u_bits) for layer in model.layers]
        if any(vb is None or ub is None for vb, ub in got):
            raise InLoopError(f"the model has no widths ({got}); give widths= (the core's (v_bits, u_bits) per layer) "
                              "or set them with BinarySNN.set_widths")
        return got
    widths = [tuple(w) for w in widths]
    if len(widths) != len(model.layers):
        raise InLoopError(f"widths: {len(widths)} entries for {len(model.layers)} layers")
    for k, pair in enumerate(widths):
        if len(pair) != 2 or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 2 <= b <= 32
                                 for b in pair):
            raise InLoopError(f"layer {k}: widths entry {pair!r}, expected (v_bits, u_bits) integers in [2, 32]")
    return [(int(a), int(b)) for a, b in widths]


def load_model(core, model: BinarySNN, widths: Sequence[tuple[int, int]], weights="mode") -> Network:
    """Export ``model`` with the core's ``widths`` and load it into ``core`` (no read-back); returns the network.

    ``weights``: ``"mode"`` (the deployed network) or per layer the +/-1 weights of one sample."""
    if not isinstance(weights, str):
        weights = [w.detach() if isinstance(w, torch.Tensor) else w for w in weights]
    try:
        network = export(model, widths=list(widths), weights=weights).network
    except ExportError as e:
        raise InLoopError(f"the model cannot be loaded into the core: {e}") from e
    core.load(network, verify=False)
    return network


@torch.no_grad()
def core_accuracy(core, spikes, labels, readout: str) -> float:
    """Accuracy of what ``core`` computes on encoded ``spikes`` [N, T, n_in] (its last layer, read out
    as the model reads out: ``"membrane"`` or ``"count"``)."""
    x = np.asarray(spikes)
    labels = np.asarray(labels)
    if len(x) != len(labels) or not len(x):
        raise InLoopError(f"{len(x)} samples and {len(labels)} labels; expected as many, at least one")
    preds = []
    for b in range(len(x)):
        last = core.run(x[b].astype(bool), reset=True, probe="all").layers[-1]
        z, v = np.asarray(last.z)[None], np.asarray(last.v)[None].astype(np.int64)
        preds.append(int(predict(readout_scores(z, v, readout))[0]))
    return float(np.mean(np.asarray(preds) == labels))


# ---------------------------------------------------------------------------------------------
# The model's side


def _check_model(model) -> BinarySNN:
    if not isinstance(model, BinarySNN):
        raise InLoopError(f"expected a BinarySNN, got {type(model).__name__}")
    return model


def _loss(model: BinarySNN, x: torch.Tensor, y: torch.Tensor, observed, weights=None):
    out = model(x, observed=observed, weights=weights)
    return F.cross_entropy(out.logits, y), out


def _step_weights(model: BinarySNN, generator):
    """This step's weights: None (the model's own) for the straight-through rule; for the Bayesian rule one
    hard sample with the relaxed gradient (straight-through Gumbel-softmax)."""
    if model.rule != "bayes":
        return None
    return model.weights("sample", generator, hardware=True)


def gradients(model: BinarySNN, spikes, labels, *, core=None, widths=None, seed: int = 0) -> dict[str, torch.Tensor]:
    """The gradient of one training step's loss (cross-entropy on ``spikes`` [B, T, n_in], ``labels`` [B]),
    per parameter name: in software (``core=None``) or with ``core``'s values in the forward pass (the core
    first loaded with the model, with ``widths`` as `loop_widths`). Leaves the model's ``.grad`` set.
    For the Bayesian rule the step's sample is drawn from ``torch.Generator().manual_seed(seed)`` and is
    what the core runs."""
    _check_model(model)
    x = torch.as_tensor(np.asarray(spikes))
    y = torch.as_tensor(np.asarray(labels))
    ws = _step_weights(model, torch.Generator().manual_seed(seed))
    observed = None
    if core is not None:
        load_model(core, model, loop_widths(model, widths), "mode" if ws is None else ws)
        observed = core_traces(core, x, len(model.layers))
    model.zero_grad(set_to_none=True)
    loss, _ = _loss(model, x, y, observed, ws)
    loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


@dataclass
class FitResult:
    """A finished `fit`: the model, its config, per-epoch history, steps, per-step timing, wall time."""

    model: BinarySNN
    config: TrainConfig
    history: list[dict]
    steps: int
    timing: list[dict] = field(repr=False)  # per step: seconds by TIMING_KEYS, and "samples"
    seconds: float = 0.0
    in_the_loop: bool = False
    widths: list | None = None

    @property
    def totals(self) -> dict:
        """Seconds by part summed over the steps, the samples seen and samples per second."""
        out = {key: float(sum(t[key] for t in self.timing)) for key in TIMING_KEYS}
        out["samples"] = int(sum(t["samples"] for t in self.timing))
        spent = sum(out[key] for key in TIMING_KEYS)
        out["samples_per_second"] = out["samples"] / spent if spent > 0 else float("nan")
        return out

    def train_result(self, data: Dataset, metrics: dict | None = None) -> TrainResult:
        """As a `TrainResult` (what `save_checkpoint` writes)."""
        m = {"steps": self.steps, "in_the_loop": self.in_the_loop, "timing": self.totals, **(metrics or {})}
        return TrainResult(self.model, self.config, self.history, m, self.seconds, data)


def _snapshot(model: BinarySNN) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit(
    cfg: TrainConfig,
    *,
    data: Dataset,
    model: BinarySNN | None = None,
    core=None,
    widths=None,
    max_steps: int | None = None,
    seed_offset: int = 0,
    progress: bool = True,
    checkpoint=None,
    log=None,
) -> FitResult:
    """Train (or fine-tune) ``model`` (default: `build_model(cfg, ...)`) on ``data`` as ``cfg`` says: Adam,
    cosine schedule, cross-entropy, ``cfg.epochs`` passes (at most ``max_steps`` optimizer steps).

    ``core=None`` trains in software, with the model's own forward; with a ``core`` every forward pass runs
    there (see the module's docstring): the core is loaded first and after every step with ``widths``
    (`loop_widths`: given, else the model's own; the model keeps its own widths for its forward, so a
    model whose widths equal the core's computes exactly what the core does). Batches and rate-code seeds
    follow `spikeloop.quant.train.train`'s, shifted by ``seed_offset``. ``checkpoint``: the file
    `CoreFault` and `InLoopInterrupted` save the last complete step to. ``log(line)`` hears each epoch.
    """
    from tqdm.auto import tqdm

    if not isinstance(cfg, TrainConfig):
        raise InLoopError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise InLoopError(f"max_steps = {max_steps!r}, expected a positive integer or None")
    if isinstance(seed_offset, bool) or not isinstance(seed_offset, int) or seed_offset < 0:
        raise InLoopError(f"seed_offset = {seed_offset!r}, expected a non-negative integer")
    if data.is_spikes and data.steps != cfg.steps:
        raise TrainError(f"steps = {cfg.steps} but the data set {data.name!r} has {data.steps} timesteps per sample")
    model = _check_model(model if model is not None else build_model(cfg, data.n_in, data.n_classes))
    n_in = cfg.encoder().width(data.n_in)  # a row of pixels per timestep under the rows code
    if model.sizes != (n_in, *model.sizes[1:-1], data.n_classes):
        raise InLoopError(f"the model has sizes {model.sizes}; the data set {data.name!r} gives {n_in} inputs "
                          f"and {data.n_classes} classes")
    core_widths = loop_widths(model, widths) if core is not None else None
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    seed = cfg.seed + seed_offset
    n_train = len(data.y_train)
    n_batches = -(-n_train // cfg.batch_size)
    total_steps = cfg.epochs * n_batches if max_steps is None else min(max_steps, cfg.epochs * n_batches)
    if cfg.rule != model.rule:
        raise InLoopError(f"cfg.rule = {cfg.rule!r} but the model follows {model.rule!r}")
    updater = Updater(cfg, model, n_train=n_train, total_steps=cfg.epochs * n_batches)
    gen = torch.Generator().manual_seed(seed)
    encoder = cfg.encoder()
    rng = np.random.default_rng(seed)
    y_all = torch.as_tensor(data.y_train)
    history, timing = [], []
    where = "in the loop" if core is not None else "in software"
    bar = tqdm(total=min(total_steps * cfg.batch_size, cfg.epochs * n_train), unit="sample", disable=not progress,
               desc=f"train {where}", dynamic_ncols=True)
    steps, epochs_done = 0, 0

    def stopped() -> TrainResult:
        model.load_state_dict(good)
        model.eval()
        done = FitResult(model, cfg, list(history), steps, timing, time.perf_counter() - start, core is not None,
                         core_widths)
        return done.train_result(data, {"stopped_after_steps": steps})

    model.train()
    good = _snapshot(model)  # the parameters of the last complete step: what a fault or Ctrl-C keeps
    first_load = 0.0
    try:
        if core is not None:
            t0 = time.perf_counter()
            _core_call("loading the initial parameters", load_model, core, model, core_widths)
            first_load = time.perf_counter() - t0
        for epoch in range(cfg.epochs):
            order = rng.permutation(n_train)
            total, correct, loss_sum = 0, 0, 0.0
            for b in range(n_batches):
                if steps >= total_steps:
                    break
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                x = torch.from_numpy(encoder(data.x_train[idx], seed=seed * 100_000 + epoch * 1000 + b))
                y = y_all[idx]
                ws = _step_weights(model, gen)
                sample_load = 0.0
                if core is not None and ws is not None:
                    t0 = time.perf_counter()
                    _core_call(f"loading the sample of step {steps + 1}", load_model, core, model, core_widths, ws)
                    sample_load = time.perf_counter() - t0
                t0 = time.perf_counter()
                observed = None
                if core is not None:
                    observed = _core_call(f"running batch {b + 1} of epoch {epoch + 1}", core_traces, core, x,
                                          len(model.layers))
                t1 = time.perf_counter()
                loss, out = _loss(model, x, y, observed, ws)
                if updater.kl_in_loss:
                    loss = loss + cfg.kl_weight / n_train * model.kl()
                t2 = time.perf_counter()
                updater.zero_grad()
                loss.backward()
                t3 = time.perf_counter()
                updater.step()
                model.post_step()
                t4 = time.perf_counter()
                if core is not None and ws is None:
                    _core_call(f"loading the parameters of step {steps + 1}", load_model, core, model, core_widths)
                t5 = time.perf_counter()
                steps += 1
                good = _snapshot(model)
                timing.append({"core": t1 - t0, "forward": t2 - t1, "backward": t3 - t2, "optimizer": t4 - t3,
                               "load": t5 - t4 + sample_load + (first_load if steps == 1 else 0.0),
                               "samples": len(idx)})
                total += len(idx)
                correct += int((out.logits.argmax(1) == y).sum())
                loss_sum += loss.detach().item() * len(idx)
                bar.update(len(idx))
                bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
            if total:
                history.append({"epoch": epoch, "loss": loss_sum / total, "train_accuracy": correct / total})
                epochs_done += total == n_train
                if log is not None:
                    log(f"epoch {epoch + 1}/{cfg.epochs} {where}: loss {loss_sum / total:.3f}, training accuracy "
                        f"{correct / total:.1%}, {time.perf_counter() - start:.1f} s so far")
            if steps >= total_steps:
                break
        if core is not None and model.rule == "bayes":  # the core holds the last sample: give it the mode
            _core_call("loading the posterior mode", load_model, core, model, core_widths)
    except _CoreCallFailed as fault:
        bar.close()
        result = stopped()
        saved = save_checkpoint(result, checkpoint) if checkpoint is not None else None
        kept = f"saved to {saved}" if saved else "kept in CoreFault.result (no checkpoint file given)"
        e = fault.error
        raise CoreFault(
            f"the core failed while {fault.what} ({type(e).__name__}: {str(e).strip() or 'no message'}); training "
            f"stopped after {steps} complete step(s), the parameters of the last one {kept}; core.reset() makes "
            "the core usable again" + ("; the load did not finish, so load those parameters (or the checkpoint's "
                                       "network) before running" if fault.what.startswith("loading") else ""),
            result, steps, saved) from e
    except KeyboardInterrupt:
        bar.close()
        result = stopped()
        stop = InLoopInterrupted(result, epochs_done, steps)
        if checkpoint is not None:
            stop.checkpoint = save_checkpoint(result, checkpoint)
        raise stop from None
    finally:
        bar.close()
        torch.set_num_threads(threads)
    model.eval()
    return FitResult(model, cfg, history, steps, timing, time.perf_counter() - start, core is not None, core_widths)
