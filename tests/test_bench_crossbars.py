"""bench/bench_crossbars.py on the analytic model: every kind at every density, the ratios to the default."""

from __future__ import annotations

import json

import numpy as np
from benches import load_bench

from spikeloop.config import DEFAULT_CORE, DEFAULT_SIZES, CoreConfig
from spikeloop.network import random_network


def test_the_bench_compares_the_kinds_at_every_density(tmp_path, monkeypatch, capsys):
    bench = load_bench("bench_crossbars")
    rng = np.random.default_rng(7)
    monkeypatch.setattr(bench, "mnist_test_spikes", lambda: (rng.random((20, 16, 784)) < 0.13).astype(np.uint8))
    monkeypatch.setattr(bench, "STEPS", 300)
    net = random_network(DEFAULT_SIZES, seed=5).with_densities([np.full(n, 0.1) for n in DEFAULT_SIZES[:-1]])
    net.save(tmp_path / "net.npz")
    assert bench.main(["--network", str(tmp_path / "net.npz"), "--analytic", "--json", str(tmp_path / "c.json")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())
    assert {(r["row"], r["kind"]) for r in rows} == {(f"{d:.0%}", k) for d in bench.DENSITIES for k in
                                                      ("dense", "event", "auto")} | {("mnist", k) for k in
                                                                                       ("dense", "event", "auto")}
    for r in rows:
        assert r["cycles_lower"] <= r["cycles_per_timestep"] + 1e-9
        if r["kind"] == "dense":
            assert r["fewer_cycles"] == 1.0 and r["lut"] == round(r["lut"])
        if r["kind"] == "auto":  # the default's LUTs at most, and never slower than it
            assert r["lut"] <= [x for x in rows if x["kind"] == "dense"][0]["lut"] and r["fewer_cycles"] >= 1
    assert "targets:" in capsys.readouterr().out


def test_the_cycles_are_the_model_on_those_spikes():
    bench = load_bench("bench_crossbars")
    spikes = [np.ones((4, n), bool) for n in DEFAULT_SIZES[:-1]]
    assert bench.cycles(DEFAULT_CORE, spikes) == (209.0, 209.0)
    assert bench._layout(CoreConfig.build(DEFAULT_SIZES, lanes=[16, 4, 1], events=[64, None, 8])) == "16x64e 4x32 1x8e"
