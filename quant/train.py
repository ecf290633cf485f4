"""Seeded training of binary-weight SNNs, evaluation (accuracy, ECE) and the digits demo.

``train(TrainConfig(...))`` builds a `BinarySNN` (`spikeloop.quant.models.feedforward`),
trains it on cross-entropy with Adam (plus the KL term for the Bayesian rule) or, for the
Bayesian rule with ``update="bisnn"``, with BiSNN's mirror descent on the natural parameters
(`spikeloop.quant.bayes`; Adam for the rest), with a tqdm progress bar, and evaluates it on
the test split. Every random draw comes from ``seed``: the split, the initial weights, the
shuffling, the rate-code noise (a fresh seed per batch and epoch while training, a fixed one
for the test set) and the Bayesian samples.

``run()`` is the whole path: train -> export (widths from the training set) -> save -> load ->
golden model on the test set, checked equal to the hardware-mode model, and with ``out`` the
checkpoint (`save_checkpoint` / `load_checkpoint`), the image, ``metrics.json`` and the
pictures (`plot_run`). ``spikeloop train`` and ``spikeloop demo`` call it; ``demo()`` returns
its summary (``python -m spikeloop.quant.train``). ``export_checkpoint`` is ``spikeloop export``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spikeloop.metrics import accuracy, expected_calibration_error, pooled_probabilities, softmax
from spikeloop.network import BIAS_TOS, OPTION_DEFAULTS, OVERFLOWS, ROUNDINGS, V_RANGES
from spikeloop.posterior import draw_weights

from .data import DATASETS, ENCODINGS, SPIKE_DATASETS, Dataset, Encoder, load_dataset
from .models import (
    NEURONS,
    READOUTS,
    RESETS,
    RULES,
    SURROGATES,
    BinarySNN,
    ModelError,
    check_options,
    feedforward,
    predict,
)

PREDICTIONS = ("mode", "ensemble", "committee")
UPDATES = ("adam", "bisnn")
TEST_SEED_OFFSET = 1_000_003  # the test set's rate code uses seed + this, never a training seed
BISNN_TAU = 0.5  # the default relaxation temperature with the BiSNN update (measured likewise)
BISNN_LR = 30.0  # the default learning rate of the BiSNN update (measured on digits, docs/bayesian.md)


CHOICES = {"dataset": DATASETS, "encoding": ENCODINGS, "neuron": NEURONS, "reset": RESETS, "rule": RULES,
           "readout": READOUTS, "surrogate": SURROGATES, "update": UPDATES, "decay_round": ROUNDINGS,
           "bias_to": BIAS_TOS, "u_overflow": OVERFLOWS, "v_range": V_RANGES}


class TrainError(ValueError):
    """A training configuration is invalid."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. The defaults are the digits demo."""

    dataset: str = "digits"
    encoding: str = "rate"
    steps: int = 16
    hidden: tuple[int, ...] = (256,)
    neuron: str = "lif"
    reset: str = "subtract"
    rule: str = "ste"
    update: str = "adam"  # synapse update: "adam" (on the loss + KL) or "bisnn" (the published mirror descent)
    readout: str = "membrane"
    surrogate: str = "fast_sigmoid"
    slope: float = 5.0
    leak: float = 0.125
    current_leak: float | None = None
    frac_bits: int = 8
    recurrent: bool = False  # every hidden layer takes its own previous spikes (docs/numerics.md)
    # contract v2's options of every layer (docs/numerics.md; docs/training.md measures them)
    decay_round: str = OPTION_DEFAULTS["decay_round"]
    input_shift: int = OPTION_DEFAULTS["input_shift"]
    bias_to: str = OPTION_DEFAULTS["bias_to"]
    u_overflow: str = OPTION_DEFAULTS["u_overflow"]
    v_range: str = OPTION_DEFAULTS["v_range"]
    hardware: bool = True
    epochs: int = 30
    batch_size: int = 64
    lr: float | None = None  # synapses; None: 0.05 "ste", 0.2 "bayes" with Adam, BISNN_LR with "bisnn"
    lr_neuron: float = 0.05  # thresholds, biases, decays, readout gain
    seed: int = 0
    test_fraction: float = 0.2
    # Bayesian rule
    kl_weight: float = 0.1  # times KL(q || prior) / n_train; "bisnn": rho = kl_weight / n_train
    prior: float = 0.5
    tau: float | None = None  # concrete relaxation temperature; None: 1.0 with Adam, BISNN_TAU with "bisnn"
    n_samples: int = 10  # ensemble / committee size
    threads: int | None = 1  # torch intra-op threads while training (None: leave as is)
    # data sets read from disk (nmnist, shd, dvsgesture through tonic)
    data_root: str | None = None  # the folder holding tonic's data set folders
    max_samples: int | None = None  # cap on each split of an event data set (None: all)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise TrainError(f"{name} = {getattr(self, name)!r}; expected one of {', '.join(choices)}")
        check_options("TrainConfig", self.options(), TrainError)
        for name in ("steps", "epochs", "batch_size", "n_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TrainError(f"{name} = {v!r}, expected a positive integer")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TrainError(f"seed = {self.seed!r}, expected a non-negative integer")
        for name in ("lr", "lr_neuron", "slope", "tau"):
            v = getattr(self, name)
            if v is None and name in ("lr", "tau"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise TrainError(f"{name} = {v!r}, expected a positive number")
        if isinstance(self.kl_weight, bool) or not isinstance(self.kl_weight, (int, float)) or self.kl_weight < 0:
            raise TrainError(f"kl_weight = {self.kl_weight!r}, expected a non-negative number")
        if self.update == "bisnn" and self.rule != "bayes":
            raise TrainError(f"update = 'bisnn' needs rule = 'bayes' (it updates the posterior's natural parameters); "
                             f"got rule = {self.rule!r}")
        if not isinstance(self.recurrent, bool):
            raise TrainError(f"recurrent = {self.recurrent!r}, expected True or False")
        if self.recurrent and not self.hidden:
            raise TrainError("recurrent = True makes the hidden layers recurrent, but hidden = () has none")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise TrainError(f"hidden = {self.hidden!r}, expected positive layer sizes")
        if self.neuron == "lif" and self.current_leak not in (None, 0, 0.0):
            raise TrainError(f"current_leak = {self.current_leak} but neuron 'lif' has no current; expected 0 or None")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise TrainError(f"threads = {self.threads!r}, expected a positive integer or None")
        if self.max_samples is not None and (isinstance(self.max_samples, bool) or not isinstance(self.max_samples, int)
                                             or self.max_samples < 1):
            raise TrainError(f"max_samples = {self.max_samples!r}, expected a positive integer or None")

    def options(self) -> dict:
        """Contract v2's options of every layer (keys of `OPTION_DEFAULTS`)."""
        return {key: getattr(self, key) for key in OPTION_DEFAULTS}

    @property
    def synapse_lr(self) -> float:
        """The learning rate of the latent weights / natural parameters."""
        if self.lr is not None:
            return self.lr
        if self.update == "bisnn":
            return BISNN_LR
        return 0.2 if self.rule == "bayes" else 0.05

    @property
    def relaxation_tau(self) -> float:
        """The temperature of the concrete relaxation of the Bayesian rule."""
        if self.tau is not None:
            return self.tau
        return BISNN_TAU if self.update == "bisnn" else 1.0

    def encoder(self) -> Encoder:
        """The spike encoder of this run (data sets that are spikes already pass through, checked)."""
        if self.dataset in SPIKE_DATASETS:
            return Encoder("spikes", self.steps)
        return Encoder(self.encoding, self.steps, threshold=0.5 if self.encoding == "rows" else 0.0)

    def load_data(self) -> Dataset:
        """The data set of this run, split with this run's seed."""
        from .data import DataError

        try:
            return load_dataset(self.dataset, test_fraction=self.test_fraction, seed=self.seed, steps=self.steps,
                                root=self.data_root, max_samples=self.max_samples)
        except DataError as e:
            raise TrainError(str(e)) from e


def build_model(cfg: TrainConfig, n_in: int, n_classes: int) -> BinarySNN:
    """The untrained model of a configuration for samples of `n_in` features (the data set's `n_in`; the
    rows code makes a row of them one timestep's input)."""
    from .data import DataError

    try:
        width = cfg.encoder().width(n_in)
        return feedforward(
            (width, *cfg.hidden, n_classes), neuron=cfg.neuron, reset=cfg.reset, rule=cfg.rule,
            readout=cfg.readout, leak=cfg.leak, current_leak=cfg.current_leak, frac_bits=cfg.frac_bits,
            surrogate=cfg.surrogate, slope=cfg.slope, steps_hint=cfg.steps, prior=cfg.prior, tau=cfg.relaxation_tau,
            hardware=cfg.hardware, seed=cfg.seed, recurrent=cfg.recurrent, **cfg.options(),
        )
    except (ModelError, DataError) as e:
        raise TrainError(str(e)) from e


class Updater:
    """The optimizers of a run and their cosine schedules over ``total_steps``: Adam on every parameter
    (``cfg.update == "adam"``), or the BiSNN mirror descent (`spikeloop.quant.bayes.BiSNN`, rho =
    ``kl_weight / n_train``) on the natural parameters and Adam on thresholds, biases, decays and gain."""

    def __init__(self, cfg: TrainConfig, model: BinarySNN, *, n_train: int, total_steps: int):
        groups = model.param_groups(lr=cfg.synapse_lr, lr_neuron=cfg.lr_neuron)
        if cfg.update == "bisnn":
            from .bayes import BiSNN

            if model.rule != "bayes":
                raise TrainError(f"update = 'bisnn' needs a model of rule 'bayes'; this one follows {model.rule!r}")
            try:
                mirror = BiSNN([layer.weights for layer in model.layers], lr=cfg.synapse_lr,
                               rho=cfg.kl_weight / n_train)
            except ModelError as e:
                raise TrainError(str(e)) from e
            self.optimizers = [mirror, torch.optim.Adam(groups[1:])]
        else:
            self.optimizers = [torch.optim.Adam(groups)]
        self.schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=max(1, total_steps))
                          for o in self.optimizers]
        self.kl_in_loss = model.rule == "bayes" and cfg.update == "adam"

    def zero_grad(self) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Every optimizer's step, then every schedule's."""
        for o in self.optimizers:
            o.step()
        for s in self.schedules:
            s.step()


def encode_test(cfg: TrainConfig, x: np.ndarray) -> np.ndarray:
    """The fixed spike encoding of evaluation data (uint8 [N, T, n_in])."""
    return cfg.encoder()(x, seed=cfg.seed + TEST_SEED_OFFSET)


@dataclass
class Evaluation:
    """Accuracy and calibration of one way of predicting."""

    how: str
    accuracy: float
    ece: float
    predictions: np.ndarray = field(repr=False)
    probs: np.ndarray = field(repr=False)

    def summary(self) -> dict:
        return {"how": self.how, "accuracy": self.accuracy, "ece": self.ece}


@torch.no_grad()
def evaluate(
    model: BinarySNN,
    spikes,
    labels,
    *,
    how: str = "mode",
    hardware: bool | None = None,
    n_samples: int = 10,
    seed: int = 0,
    batch_size: int = 512,
) -> Evaluation:
    """Accuracy and ECE of ``model`` on encoded ``spikes`` [N, T, n_in].

    ``how``: ``"mode"`` (the deployed binary network), or, for the Bayesian rule, the papers' two
    ways of predicting with ``n_samples`` sampled binary networks, whose class probabilities are
    the softmax of their mean logits (`spikeloop.metrics.pooled_probabilities`): ``"ensemble"`` draws
    ``n_samples`` networks afresh for each batch of ``batch_size`` samples, ``"committee"`` draws
    them once for the whole set. Draws follow the boards' one sampling rule
    (`spikeloop.posterior.draw_weights`) from ``np.random.default_rng(seed)``, in order: per batch
    (ensemble) or once (committee), ``n_samples`` networks; so they are the networks
    `spikeloop.host.ensemble.predict` runs on a core for the model's posterior, batch sizes equal.
    Predictions: the first index of the largest probability.
    """
    if how not in PREDICTIONS:
        raise TrainError(f"how = {how!r}; expected one of {', '.join(PREDICTIONS)}")
    if how != "mode" and model.rule != "bayes":
        raise TrainError(f"how = {how!r} needs the Bayesian rule; this model follows {model.rule!r}")
    was_training = model.training
    model.eval()
    x = torch.as_tensor(np.asarray(spikes))
    labels = np.asarray(labels)
    try:
        if how == "mode":
            logits = _logits(model, x, model.weights("mode", hardware=hardware), hardware, batch_size)
            probs = softmax(logits)
        else:
            rng = np.random.default_rng(seed)
            probs = [layer.weights.probabilities().numpy() for layer in model.layers]

            def draws():
                return [[torch.from_numpy(w.astype(np.float32)) for w in draw_weights(probs, rng)]
                        for _ in range(n_samples)]

            fixed = draws() if how == "committee" else None
            parts = []
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size]
                nets = fixed if fixed is not None else draws()
                parts.append(pooled_probabilities([_logits(model, xb, ws, hardware, batch_size) for ws in nets]))
            probs = np.concatenate(parts)
        preds = predict(probs)
    finally:
        model.train(was_training)
    return Evaluation(how, accuracy(preds, labels), expected_calibration_error(probs, labels), preds, probs)


def _logits(model, x, weights, hardware, batch_size) -> np.ndarray:
    out = [model(x[i:i + batch_size], hardware=hardware, weights=weights).logits for i in range(0, len(x), batch_size)]
    return torch.cat(out).double().numpy()


@dataclass
class TrainResult:
    """A finished run: the model, its config, per-epoch history, test metrics and wall time."""

    model: BinarySNN
    config: TrainConfig
    history: list[dict]
    metrics: dict
    seconds: float
    data: Dataset = field(repr=False)


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C while training: `result` holds the model after the last complete epoch (`epochs`
    of them, maybe 0); `checkpoint` is where `run` saved it (None: nothing saved)."""

    def __init__(self, result: TrainResult, epochs: int):
        super().__init__(f"interrupted after {epochs} complete epoch(s)")
        self.result, self.epochs, self.checkpoint = result, epochs, None


def train(cfg: TrainConfig | None = None, *, data: Dataset | None = None, progress: bool = True,
          evaluate_float: bool = True, log=None) -> TrainResult:
    """Train a model as ``cfg`` says; returns the model and its test metrics.

    ``log(line)``, when given, is told each epoch's loss, accuracy and the time left. Ctrl-C
    raises `TrainInterrupted` with the model as it was after the last complete epoch.

    ``metrics``: ``accuracy`` and ``ece`` of the deployed (mode, hardware-mode) network on the
    test split; ``float_accuracy`` of the same parameters in float mode (the float-vs-integer
    gap); for the Bayesian rule also ``ensemble`` and ``committee``.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        data = data if data is not None else cfg.load_data()
        if data.is_spikes and data.steps != cfg.steps:
            raise TrainError(
                f"steps = {cfg.steps} but the data set {data.name!r} has {data.steps} timesteps per sample"
            )
        model = build_model(cfg, data.n_in, data.n_classes)
        n_batches = -(-len(data.y_train) // cfg.batch_size)
        updater = Updater(cfg, model, n_train=len(data.y_train), total_steps=cfg.epochs * n_batches)
        encoder = cfg.encoder()
        gen = torch.Generator().manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        y_all = torch.as_tensor(data.y_train)
        history = []
        bar = tqdm(range(cfg.epochs), desc=f"train {cfg.dataset}", disable=not progress, unit="epoch")
        last, kept = None, 0  # the parameters after the last complete epoch, and its number: what Ctrl-C keeps
        try:
            for epoch in bar:
                model.train()
                order = rng.permutation(len(data.y_train))
                total, correct, loss_sum = 0, 0, 0.0
                for b in range(n_batches):
                    idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                    x = torch.from_numpy(encoder(data.x_train[idx], seed=cfg.seed * 100_000 + epoch * 1000 + b))
                    y = y_all[idx]
                    out = model(x, generator=gen)
                    loss = F.cross_entropy(out.logits, y)
                    if updater.kl_in_loss:
                        loss = loss + cfg.kl_weight / len(data.y_train) * model.kl()
                    updater.zero_grad()
                    loss.backward()
                    updater.step()
                    model.post_step()
                    total += len(idx)
                    correct += int((out.logits.argmax(1) == y).sum())
                    loss_sum += loss.detach().item() * len(idx)
                history.append({"epoch": epoch, "loss": loss_sum / total, "train_accuracy": correct / total})
                bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
                last, kept = {k: v.detach().clone() for k, v in model.state_dict().items()}, len(history)
                if log is not None:
                    spent = time.perf_counter() - start
                    left = spent / (epoch + 1) * (cfg.epochs - epoch - 1)
                    log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss_sum / total:.3f}, training accuracy "
                        f"{correct / total:.1%}, {spent:.1f} s so far, about {left:.0f} s to go")
        except KeyboardInterrupt:
            bar.close()
            if last is not None:
                model.load_state_dict(last)
            model.eval()
            partial = TrainResult(model, cfg, history[:kept], {"interrupted_after_epochs": kept},
                                  time.perf_counter() - start, data)
            raise TrainInterrupted(partial, kept) from None
        train_seconds = time.perf_counter() - start
        model.eval()
        x_test = encode_test(cfg, data.x_test)
        ev = evaluate(model, x_test, data.y_test, how="mode", hardware=True)
        metrics = {"accuracy": ev.accuracy, "ece": ev.ece, "train_seconds": train_seconds}
        if evaluate_float:
            metrics["float_accuracy"] = evaluate(model, x_test, data.y_test, how="mode", hardware=False).accuracy
        if model.rule == "bayes":
            for how in ("ensemble", "committee"):
                e = evaluate(model, x_test, data.y_test, how=how, hardware=True, n_samples=cfg.n_samples,
                             seed=cfg.seed + TEST_SEED_OFFSET, batch_size=cfg.batch_size)
                metrics[how] = e.summary()
        return TrainResult(model, cfg, history, metrics, time.perf_counter() - start, data)
    finally:
        torch.set_num_threads(threads)


def calibration_spikes(cfg: TrainConfig, data: Dataset) -> np.ndarray:
    """The spikes `export` chooses widths on: the training set under two encodings (one for a
    deterministic code or spike data), never the test encoding's seed."""
    enc = cfg.encoder()
    if enc.kind != "rate":
        return enc(data.x_train)
    return np.concatenate([enc(data.x_train, seed=cfg.seed * 100_000 + 999_999), encode_test(cfg, data.x_train)])


CHECKPOINT_FORMAT = "spikeloop.checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(result: TrainResult, path) -> Path:
    """Write a trained model with its configuration, history and metrics (``torch.save``; plain
    tensors and Python values only, so ``torch.load(weights_only=True)`` reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(result.config),
        "sizes": list(result.model.sizes), "state_dict": result.model.state_dict(),
        "history": result.history, "metrics": result.metrics,
    }, path)
    return path


def load_checkpoint(path) -> tuple[BinarySNN, TrainConfig, dict]:
    """Read a checkpoint of `save_checkpoint`: (model in eval mode, its config, the whole record)."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: no such checkpoint file")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors of many kinds
        raise TrainError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a spikeloop checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if record.get("version") != CHECKPOINT_VERSION:
        raise TrainError(
            f"{path}: checkpoint version {record.get('version')!r}, this spikeloop reads {CHECKPOINT_VERSION}"
        )
    known = {f.name for f in fields(TrainConfig)}
    # checkpoints written before contract v2 hold no options: they meant v1's
    config = {**OPTION_DEFAULTS, **{k: v for k, v in record["config"].items() if k in known}}
    cfg = TrainConfig(**{**config, "hidden": tuple(config.get("hidden", ()))})
    sizes = list(record["sizes"])
    if len(sizes) < 2 or tuple(sizes[1:-1]) != cfg.hidden:
        raise TrainError(f"{path}: sizes {'-'.join(map(str, sizes))} disagree with the configuration's hidden = "
                         f"{cfg.hidden}")
    model = build_model(cfg, sizes[0], sizes[-1])
    try:
        model.load_state_dict(record["state_dict"])
    except RuntimeError as e:
        raise TrainError(f"{path}: the weights do not fit a {'-'.join(map(str, sizes))} model: {e}") from e
    return model.eval(), cfg, record


def export_checkpoint(path, *, margin_bits: int = 0, data: Dataset | None = None):
    """Load a checkpoint, encode its training data for calibration, export; returns (network, report, cfg)."""
    from .export import ExportError, export

    model, cfg, _ = load_checkpoint(path)
    data = data if data is not None else cfg.load_data()
    try:
        network, report = export(model, calibration=calibration_spikes(cfg, data), margin_bits=margin_bits)
    except ExportError as e:
        raise TrainError(f"{path}: {e}") from e
    return network, report, cfg


@dataclass
class RunResult:
    """Everything `run` made: the summary (what metrics.json holds) and the objects behind it."""

    summary: dict
    result: TrainResult
    network: object  # spikeloop.network.Network
    report: object  # ExportReport
    verification: object  # Verification
    x_test: np.ndarray = field(repr=False)
    files: dict = field(default_factory=dict)


def run(cfg: TrainConfig | None = None, *, out: str | Path | None = None, progress: bool = True,
        plots: bool = False, data: Dataset | None = None, log=None) -> RunResult:
    """Train, export, save and load the image, run the golden model on the test split and check
    it equals the hardware-mode model, integer for integer.

    With ``out``: writes ``network.npz`` (the image), ``checkpoint.pt`` (`save_checkpoint`),
    ``metrics.json`` (the summary) and, with ``plots``, the PNGs of `plot_run`. ``log``: see
    `train`. On Ctrl-C while training, with ``out`` and at least one complete epoch, the model of
    the last complete epoch is saved to ``checkpoint.pt`` (`TrainInterrupted.checkpoint` says so).
    """
    import tempfile

    from spikeloop.network import Network

    from .export import check, export

    cfg = cfg or TrainConfig()
    try:
        result = train(cfg, progress=progress, data=data, log=log)
    except TrainInterrupted as stop:
        if out is not None and stop.epochs:
            stop.checkpoint = save_checkpoint(stop.result, Path(out) / "checkpoint.pt")
        raise
    data, model = result.data, result.model
    network, report = export(model, calibration=calibration_spikes(cfg, data))
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out) if out is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files["network"] = folder / "network.npz"
        digest = network.save(files["network"])
        loaded = Network.load(files["network"])
    x_test = encode_test(cfg, data.x_test)
    verification = check(model, loaded, x_test)
    summary = {
        "config": asdict(cfg),
        "sizes": list(network.sizes),
        "widths": [[layer.v_bits, layer.u_bits] for layer in network.layers],
        "golden_test_accuracy": accuracy(verification.predictions, data.y_test),
        "model_metrics": result.metrics,
        "equal": verification.equal,
        "content_hash": digest,
        "seconds": result.seconds,
        "export_report": str(report),
    }
    done = RunResult(summary, result, loaded, report, verification, x_test, {})
    if out is not None:
        files["checkpoint"] = save_checkpoint(result, Path(out) / "checkpoint.pt")
        if plots:
            files.update(plot_run(done, Path(out)))
        files["metrics"] = Path(out) / "metrics.json"
        summary["files"] = {k: str(v) for k, v in files.items()}
        files["metrics"].write_text(json.dumps(summary, indent=1))
        done.files = files
    return done


def plot_run(done: RunResult, out: Path, *, sample: int = 0) -> dict:
    """The pictures of a run, as PNGs in ``out``: training curves, the reliability diagram of the
    deployed integer model, and for test sample ``sample`` a spike raster (input and every
    layer) and membrane traces from the golden model, plus per-neuron firing rates over the test set."""
    from spikeloop import golden
    from spikeloop.metrics import reliability
    from spikeloop.quant.plots import (
        membrane_traces,
        rate_histogram,
        reliability_diagram,
        spike_raster,
        training_curves,
    )

    result, network, x_test = done.result, done.network, done.x_test
    data, cfg = result.data, result.config
    name = f"{cfg.dataset} {'-'.join(map(str, network.sizes))}"
    files = {}
    files["training_curves"] = training_curves(result.history, out / "training.png",
                                               test_accuracy=done.summary["golden_test_accuracy"],
                                               title=f"training: {name}, {cfg.rule}")
    ev = evaluate(result.model, x_test, data.y_test, how="mode", hardware=True)
    files["reliability"] = reliability_diagram(reliability(ev.probs, data.y_test), out / "reliability.png", ece=ev.ece,
                                               title="reliability of the integer model")
    one = golden.run(network, x_test[sample], record=True)
    label = int(data.y_test[sample])
    pred = int(done.verification.predictions[sample])
    what = f"test sample {sample} (label {label}, predicted {pred})"
    panels = [("input", x_test[sample].astype(bool))] + [(f"layer {k}", r.z) for k, r in enumerate(one.layers)]
    readout = ("readout: the class is the largest membrane v' at the last step (membranes.png), not the most spikes"
               if result.model.readout == "membrane" else "readout: the class is the neuron with the most spikes")
    panels[-1] = (*panels[-1], readout)
    files["raster"] = spike_raster(panels, out / "raster.png", title=f"{name}: {what}")
    panels = [(f"layer {k}", r.v, layer.theta) for k, (r, layer) in enumerate(zip(one.layers, network.layers))]
    scores = one.layers[-1].v[-1] if result.model.readout == "membrane" else one.layers[-1].z.sum(0)
    classes = [pred, label] + [int(j) for j in np.argsort(-scores, kind="stable") if j not in (pred, label)]
    panels[-1] = (*panels[-1], list(dict.fromkeys(classes))[:4])  # the readout: predicted, true, runners-up
    files["membranes"] = membrane_traces(panels, out / "membranes.png", title=f"membranes v' (golden model), {what}")
    everything = golden.run(network, x_test, record=True)
    files["rates"] = rate_histogram([(f"layer {k}", r.z.mean((0, 1))) for k, r in enumerate(everything.layers)],
                                    out / "rates.png", title=f"firing rates over {len(x_test)} test samples")
    return files


def demo(cfg: TrainConfig | None = None, *, out: str | Path | None = None, progress: bool = True) -> dict:
    """`run` without pictures; returns the summary dict (also ``out/metrics.json`` when ``out`` is given)."""
    return run(cfg, out=out, progress=progress).summary


def _parse(argv=None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m spikeloop.quant.train", description=__doc__.split("\n\n")[0])
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        value = getattr(defaults, f.name)
        if f.name == "hidden":
            p.add_argument("--hidden", type=int, nargs="+", default=list(value))
        elif f.name == "hardware":
            p.add_argument("--float", dest="hardware", action="store_false", help="train in float mode")
        elif f.name == "recurrent":
            p.add_argument("--recurrent", action="store_true", help="hidden layers take their own previous spikes")
        elif isinstance(value, bool) or value is None:
            kind = float if f.name in ("current_leak", "lr", "tau") else str if f.name == "data_root" else int
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=value)
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value,
                           choices=CHOICES.get(f.name))
    p.add_argument("--out", default=None, help="folder for network.npz, checkpoint.pt and metrics.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    ns = p.parse_args(argv)
    kwargs = {f.name: getattr(ns, f.name) for f in fields(TrainConfig)}
    return replace(defaults, **kwargs), ns


def main(argv=None) -> int:
    """Run the demo with a configuration from the command line; print the summary."""
    try:
        cfg, ns = _parse(argv)
        summary = demo(cfg, out=ns.out, progress=not ns.quiet)
    except TrainError as e:
        print(f"error: {e}")
        return 2
    print(summary["export_report"])
    brief = {k: v for k, v in summary.items() if k not in ("export_report", "config")}
    print(json.dumps(brief, indent=1))
    return 0 if summary["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
