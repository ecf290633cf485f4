"""Bayesian binary networks on a core: the mode, ensembles and committees of sampled networks (numpy only).

    from spikeloop.host.ensemble import predict
    p = predict(core, posterior, spikes, how="ensemble", samples=10, seed=0)   # core=None: the golden model
    p.accuracy(labels), p.ece(labels), p.reliability(labels)

A `Posterior` (spikeloop.posterior) holds the mode network and ``P(w = +1)`` per synapse. As
Jang, Skatchkovsky and Simeone define them (BiSNN, arXiv 2012.08300, Sec. V):

- ``"mode"``: the mode network alone, no draw;
- ``"ensemble"``: for each batch of ``batch_size`` samples, in order, ``samples`` networks drawn afresh;
- ``"committee"``: ``samples`` networks drawn once, used for every batch.

Draws come from ``np.random.default_rng(seed)`` through `Posterior.draw`, the one sampling rule, in
that order (an ensemble's batch 0 draws its networks first, then batch 1, ...). Each network is
loaded with ``core.load(network, verify=False)`` (a load frame by stream where the transport can
send one) and runs its samples there; ``core=None`` runs the same networks in the golden model
(`spikeloop.golden.run`), so a faithful core gives the same `Prediction`, integer for integer.
The class scores are `spikeloop.metrics.readout_scores` of the last layer with the posterior's
readout; probabilities = the softmax of the mean over the networks of ``posterior.logits(scores)``
(`spikeloop.metrics.pooled_probabilities`: the readout averaged over time and over samples);
the prediction is the first index of the largest probability. The core keeps the last network
loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from spikeloop import golden
from spikeloop.metrics import (
    ECE_BINS,
    Reliability,
    accuracy,
    expected_calibration_error,
    pooled_probabilities,
    readout_scores,
    reliability,
)
from spikeloop.network import Network
from spikeloop.posterior import Posterior
from spikeloop.spikes import check_spikes

from .driver import Core, describe_config

__all__ = ["PREDICTIONS", "EnsembleError", "Prediction", "predict"]

#: How `predict` combines the posterior's networks.
PREDICTIONS = ("mode", "ensemble", "committee")


class EnsembleError(ValueError):
    """An argument of `predict` that is not what it needs, named with its value."""


@dataclass(frozen=True)
class Prediction:
    """What `predict` found for N samples with K networks per sample (K = 1 for the mode).

    ``scores[k, n]`` is the readout of the k-th network that saw sample n (an ensemble's k-th network
    of that sample's batch); ``load_seconds`` and ``run_seconds`` hold, per network loaded, the
    seconds its load and its runs took (the golden model loads nothing: zeros).
    """

    how: str
    samples: int
    probs: np.ndarray        # float64 [N, C]
    predictions: np.ndarray  # int64 [N]
    scores: np.ndarray       # int64 [K, N, C]
    loads: int
    seconds: float
    load_seconds: np.ndarray  # float64 [loads]
    run_seconds: np.ndarray   # float64 [loads]

    def accuracy(self, labels) -> float:
        """Fraction of predictions equal to `labels` (int [N])."""
        return accuracy(self.predictions, labels)

    def ece(self, labels) -> float:
        """Expected calibration error with `ECE_BINS` (20) equal-width bins."""
        return expected_calibration_error(self.probs, labels, n_bins=ECE_BINS)

    def reliability(self, labels) -> Reliability:
        """The reliability diagram's bins (`spikeloop.metrics.reliability`, 20 bins)."""
        return reliability(self.probs, labels, n_bins=ECE_BINS)


def _integer(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise EnsembleError(f"{name} = {value!r}, expected an integer >= {low}")
    return int(value)


def _check_timeout(timeout) -> float | None:
    if timeout is None:
        return None
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.integer, np.floating))
            or not 0 < timeout < np.inf):
        raise EnsembleError(f"timeout = {timeout!r}, expected None or a positive number of seconds")
    return float(timeout)


def _check_spikes(spikes, n_in: int) -> np.ndarray:
    ndim = getattr(spikes, "ndim", None)
    if ndim is None:
        ndim = np.ndim(spikes)
    if ndim != 3:
        raise EnsembleError(f"spikes of shape {tuple(np.shape(spikes))}: expected [N, T, {n_in}] (a batch of "
                            "samples; one sample is spikes[None])")
    try:
        return check_spikes(spikes, n_in)[0]
    except ValueError as exc:
        raise EnsembleError(str(exc)) from None


class _Golden:
    """The golden model in place of a core."""

    def __init__(self, readout: str):
        self.readout = readout
        self.network: Network | None = None

    def load(self, network: Network) -> None:
        self.network = network

    def scores(self, x: np.ndarray) -> np.ndarray:
        trace = golden.run(self.network, x)
        return readout_scores(trace.spikes, trace.membranes, self.readout)


class _OnCore:
    """A core: loads by `core.load(verify=False)`, the last layer's membranes from its output or its probes."""

    def __init__(self, core: Core, posterior: Posterior, timeout: float | None):
        if not isinstance(core, Core):
            raise EnsembleError(f"core must be a spikeloop.host Core (open_core(...)) or None for the golden model, "
                                f"got {type(core).__name__}")
        if core.closed:
            raise EnsembleError(f"core {core!r} is closed; open a new one with open_core(...)")
        config = core.config
        try:
            config.check_network(posterior.network)
        except ValueError as exc:
            raise EnsembleError(f"this core ({describe_config(config)}) cannot hold the posterior's "
                                f"{'-'.join(map(str, posterior.sizes))} networks: {exc}") from None
        self.probe = None
        if posterior.readout == "membrane" and not config.membranes:
            if not config.probes:
                raise EnsembleError(f"the posterior's readout 'membrane' needs the last layer's membranes, and this "
                                    f"core ({describe_config(config)}) outputs neither membranes nor probes: open it "
                                    "with membranes=True (open_core's default) or probes=True")
            self.probe = ("v",)
        self.core, self.readout, self.timeout = core, posterior.readout, timeout

    def load(self, network: Network) -> None:
        self.core.load(network, verify=False, timeout=self.timeout)

    def scores(self, x: np.ndarray) -> np.ndarray:
        out = self.core.run(x, probe=self.probe, timeout=self.timeout)
        membranes = out.layers[-1].v if self.probe else out.membranes
        return readout_scores(out.spikes, membranes, self.readout)


def _plan(how: str, posterior: Posterior, samples: int, seed: int, batches: list[slice]):
    """(k, network, batches it runs) in the order of loading; draws lazily, in the documented order."""
    if how == "mode":
        yield 0, posterior.network, batches
        return
    rng = np.random.default_rng(seed)
    if how == "committee":
        networks = [posterior.draw(rng) for _ in range(samples)]
        for k, network in enumerate(networks):
            yield k, network, batches
        return
    for batch in batches:
        for k in range(samples):
            yield k, posterior.draw(rng), [batch]


def predict(core: Core | None, posterior: Posterior, spikes, *, how: str = "ensemble", samples: int = 10,
            seed: int = 0, batch_size: int = 64, timeout: float | None = None) -> Prediction:
    """Class probabilities of `spikes` (0/1 [N, T, n_in]) from `posterior`'s networks run on `core`
    (None: the golden model), combined as `how` says (see the module). `samples` (K) networks per
    sample for an ensemble and a committee; the mode is one network (``Prediction.samples == 1``).
    `timeout`: seconds each load and each run may take (default: the driver's). Every bad argument
    raises `EnsembleError` naming it."""
    start = time.perf_counter()
    if not isinstance(posterior, Posterior):
        raise EnsembleError(f"posterior must be a spikeloop.posterior.Posterior, got {type(posterior).__name__}")
    if not isinstance(how, str) or how not in PREDICTIONS:
        raise EnsembleError(f"how = {how!r}; expected one of {', '.join(PREDICTIONS)}")
    samples = _integer("samples", samples, 1)
    seed = _integer("seed", seed, 0)
    batch_size = _integer("batch_size", batch_size, 1)
    timeout = _check_timeout(timeout)
    x = _check_spikes(spikes, posterior.network.n_in)
    runner = _Golden(posterior.readout) if core is None else _OnCore(core, posterior, timeout)
    if how == "mode":
        samples = 1

    n, n_classes = x.shape[0], posterior.network.n_out
    batches = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    scores = np.empty((samples, n, n_classes), np.int64)
    load_seconds, run_seconds = [], []
    for k, network, where in _plan(how, posterior, samples, seed, batches):
        t0 = time.perf_counter()
        runner.load(network)
        t1 = time.perf_counter()
        for batch in where:
            scores[k, batch] = runner.scores(x[batch])
        load_seconds.append(t1 - t0 if core is not None else 0.0)
        run_seconds.append(time.perf_counter() - t1)
    probs = pooled_probabilities(posterior.logits(scores))
    return Prediction(how, samples, probs, probs.argmax(1).astype(np.int64), scores, len(load_seconds),
                      time.perf_counter() - start, np.array(load_seconds), np.array(run_seconds))
