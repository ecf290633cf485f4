"""Classification metrics: the readout's class scores, accuracy, calibration (numpy only; runs on the board).

Calibration follows Guo et al. (2017): the samples are binned by their top probability into
`ECE_BINS` equal-width bins of (0, 1]; ECE is the sample-weighted mean of |accuracy - confidence|.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: How a classifier reads its last layer: its final pre-reset membranes, or its spike counts.
READOUTS = ("membrane", "count")
#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 20


class MetricError(ValueError):
    """Metric inputs of the wrong shape or range."""


def readout_scores(spikes, membranes, readout: str):
    """The class scores a readout takes from the last layer ([B, T, n_out] each -> [B, n_out]).

    ``"count"``: spikes summed over time; ``"membrane"``: the pre-reset membrane v' at the last
    timestep. Numpy arrays and torch tensors alike; the prediction is the first index of the
    maximum score.
    """
    if readout == "count":
        return spikes.sum(1)
    if readout == "membrane":
        if membranes is None:
            raise MetricError("the membrane readout needs the last layer's membranes; got none")
        return membranes[:, -1]
    raise MetricError(f"readout must be one of {', '.join(READOUTS)}; got {readout!r}")


def _labels(labels, n: int | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise MetricError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if n is not None and len(labels) != n:
        raise MetricError(f"{len(labels)} labels for {n} samples")
    if len(labels) == 0:
        raise MetricError("no samples")
    return labels


def accuracy(predictions, labels) -> float:
    """Fraction of predictions equal to the labels."""
    predictions = np.asarray(predictions)
    labels = _labels(labels, len(predictions))
    return float(np.mean(predictions == labels))


def _probs(probs) -> np.ndarray:
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise MetricError(f"probabilities must have shape [N, n_classes >= 2], got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise MetricError("probabilities must be finite, non-negative and sum to 1 per row")
    return p


class Reliability(NamedTuple):
    """Per confidence bin: its edges, sample count, mean confidence and accuracy (NaN when empty)."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def reliability(probs, labels, *, n_bins: int = ECE_BINS) -> Reliability:
    """Bin samples by their top probability into ``n_bins`` equal-width bins of (0, 1]."""
    p = _probs(probs)
    labels = _labels(labels, len(p))
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise MetricError(f"n_bins must be a positive integer, got {n_bins!r}")
    conf = p.max(1)
    correct = p.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        mean_acc = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins) / counts
    return Reliability(edges, counts, mean_conf, mean_acc)


def expected_calibration_error(probs, labels, *, n_bins: int = ECE_BINS) -> float:
    """ECE: sum over bins of (bin share) * |accuracy - mean confidence|, with top-label confidence."""
    r = reliability(probs, labels, n_bins=n_bins)
    filled = r.counts > 0
    weights = r.counts[filled] / r.counts.sum()
    return float(np.sum(weights * np.abs(r.accuracy[filled] - r.confidence[filled])))


def pooled_probabilities(logits) -> np.ndarray:
    """Class probabilities of K networks' logits [K, N, n_classes]: the softmax of their mean over the K
    networks (the readout averaged over the samples, as for one network it is over time)."""
    z = np.asarray(logits, np.float64)
    if z.ndim != 3 or z.shape[0] < 1:
        raise MetricError(f"logits must have shape [K >= 1, N, n_classes], got {z.shape}")
    return softmax(z.mean(0))


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of [N, n_classes] logits."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
