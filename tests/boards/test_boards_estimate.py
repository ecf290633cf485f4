"""Estimates: the cycles formula, the memory mapping rules and the analytic model held to Yosys,
the refusal of what does not fit, the search for the largest fitting configuration, the CLI.

Tolerances of the analytic model against Yosys (`synth_xilinx -family xc7`), stated in docs/boards.md:
on the stored calibration runs LUT within 10 %, block RAM and DSP exact; on a fresh synthesis of a
configuration outside the calibration set LUT within 20 %, FF within 5 % (per crossbar and neuron
array too, per collector exact: the FFs are counted from the gateware, not fitted, and the
stored runs predate its pipeline registers), BRAM and DSP exact.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikeloop.app import cli
from spikeloop.boards import estimate
from spikeloop.boards.devices import BOARDS
from spikeloop.config import DEFAULT_CORE, DEFAULT_SIZES, ConfigError, CoreConfig, layer_cycles
from spikeloop.stream import words_per_timestep

PYNQ = BOARDS["pynq-z2"]
RUNS = json.loads(estimate.DATA.read_text())["runs"]
CALIBRATED = [CoreConfig.from_params(run["config"]) for run in RUNS]
#: Not in the calibration set; small enough to synthesize in CI (about 30 s of Yosys).
FRESH = CoreConfig.build((48, 24, 6), lanes=[3, 2], chunk=[16, 12], decay=["shift", "multiply"], u_bits=12)


def within(got, want, tol):
    return abs(got - want) <= tol * max(want, 1)


def test_cycles_per_timestep_is_the_gateware_formula():
    default = DEFAULT_CORE
    # docs/gateware.md: G * NC + 1 per layer, at least the neuron array's state_cycles (9: the last layer's
    # one group), the slowest stage sets the rate: 16 x 13 + 1 = 209
    assert [layer_cycles(layer) for layer in default.layers] == [209, 33, 9]
    assert estimate.cycles_per_timestep(default) == 209
    assert estimate.synapses(default) == 784 * 256 + 256 * 128 + 128 * 10
    assert round(estimate.ops_per_cycle(default)) == 1123
    assert layer_cycles(default.layers[0], nonzero_chunks=0) == 16 + 1  # an empty timestep
    # the stream framing bounds a core whose layers are faster than its input words
    wide = CoreConfig.build((784, 10), lanes=10, chunk=784)
    assert estimate.cycles_per_timestep(wide) == words_per_timestep(784, 32) + 1 == 26


def test_calibration_covers_what_the_model_claims():
    configs = {json.dumps(c.params(), sort_keys=True) for c in CALIBRATED}
    assert len(configs) == len(RUNS) >= 6
    assert any(layer.decay == "multiply" for c in CALIBRATED for layer in c.layers)
    assert any(c.membranes and c.bus_width == 64 for c in CALIBRATED)
    kinds = {estimate.memory_map(32 * layer.row_words, max(2, layer.weight_rows), group=32).kind
             for c in CALIBRATED for layer in c.layers}
    assert kinds == {"bram", "lutram"}


@pytest.mark.parametrize("run", RUNS, ids=lambda r: "-".join(str(layer["n_out"]) for layer in r["config"]["layers"]))
def test_memory_rules_match_yosys_per_layer(run):
    config = CoreConfig.from_params(run["config"])
    for k, layer in enumerate(config.layers):
        mems = estimate.layer_memories(layer)
        for part, kinds in (("crossbar", ["weights"]), ("neurons", ["theta", "bias", "v", "u"])):
            cells = run["modules"][f"spikeloop_core.core.network.layer{k}.{part}"]
            got = estimate.count_cells({t: n for t, n in cells.items() if t.startswith("RAMB")}, "xc7").bram
            assert got == sum(mems[kind].bram for kind in kinds), (k, part)
            lutram = sum(n * estimate._XC7_LUTRAM.get(t, 0) for t, n in cells.items())
            assert lutram == sum(mems[kind].lutram_luts for kind in kinds), (k, part)


@pytest.mark.parametrize("run", RUNS, ids=lambda r: "-".join(str(layer["n_out"]) for layer in r["config"]["layers"]))
def test_analytic_model_matches_the_calibration_runs(run):
    config = CoreConfig.from_params(run["config"])
    got = estimate.analytic(config)
    want = estimate.Resources(**{k: 0 for k in "lut ff bram dsp".split()})
    for cells in run["modules"].values():
        want = want + estimate.count_cells(cells, "xc7")
    if not run.get("options"):  # a run from before contract v2's options logic: the fitted model alone
        got = estimate.Resources(got.lut - sum(estimate.options_luts(layer) for layer in config.layers), got.ff,
                                 got.bram, got.dsp)
    assert within(got.lut, want.lut, 0.10), (got, want)
    assert got.bram == want.bram and got.dsp == want.dsp, (got, want)


def test_fresh_synthesis_matches_the_analytic_model_and_is_cached(tmp_path_factory, capsys):
    cache = tmp_path_factory.mktemp("estimate")  # a synthesis of its own: about 30 s of Yosys
    first = estimate.synthesize(FRESH, PYNQ, cache=cache)
    again = estimate.synthesize(FRESH, PYNQ, cache=cache)
    assert again.cached and again.key == first.key and again.resources == first.resources
    assert again.key == estimate.synth_key(FRESH, PYNQ) != estimate.synth_key(CALIBRATED[0], PYNQ)
    # an edit of the sources that leaves the Verilog as it was finds the synthesis by the Verilog's hash
    shutil.rmtree(Path(first.path).parent)
    third = estimate.synthesize(FRESH, PYNQ, cache=cache, log=pytest.fail)  # no synthesis may run
    assert third.cached and third.key == first.key and third.resources == first.resources
    assert Path(third.path).exists() and third.path == first.path
    # `spikeloop estimate` finds it in the cache too
    capsys.readouterr()
    assert cli.main(["estimate", "--cache", str(cache), "--no-timing", *estimate.flow.config_args(FRESH)]) == 0
    out = capsys.readouterr().out
    assert "yosys" in out and "(cached:" in out and f"{first.resources.lut:,}" in out, out
    got = estimate.analytic(FRESH)
    want = first.resources
    print(f"fresh config: analytic {got.rounded()} vs Yosys {want}")
    assert want.dsp == 2 * 2, "decay 'multiply' on layer 1: one multiplier per lane and decay"
    assert within(got.lut, want.lut, 0.20), (got, want)
    assert got.bram == want.bram and got.dsp == want.dsp, (got, want)


def test_analytic_flip_flops_match_a_fresh_synthesis():
    synthesized = estimate.synthesize(FRESH, PYNQ)
    got, parts = estimate.analytic(FRESH, breakdown=True)
    want = synthesized.resources
    print(f"fresh config: analytic {got.ff:,.0f} FF vs Yosys {want.ff:,.0f}")
    assert within(got.ff, want.ff, 0.05), (got, want)
    ffs = {name: estimate.count_cells(cells, "xc7").ff for name, cells in synthesized.modules.items()}
    for k in range(len(FRESH.layers)):
        for part in ("crossbar", "neurons"):
            name = f"spikeloop_core.core.network.layer{k}.{part}"
            yosys = ffs[name] + ffs[f"{name}.window"]  # the read port is a module of its own
            assert within(parts[f"layer {k} {part}"].ff, yosys, 0.05), (k, part, parts[f"layer {k} {part}"], yosys)
        assert parts[f"layer {k} collector"].ff == ffs[f"spikeloop_core.core.network.layer{k}"], k


#: An event-driven layer 0 (E = 8) before a dense one: also outside the calibration set (about 30 s of Yosys).
FRESH_EVENTS = CoreConfig.build((48, 24, 6), lanes=[3, 2], chunk=[None, 12], events=[8, None], u_bits=12)


def test_an_event_driven_crossbar_matches_a_fresh_synthesis():
    """The event crossbar's flip-flops are counted from its structure (`event_crossbar_ffs`), within 5 % of Yosys as
    the dense one's; its LUTs (the dense model with a chunk of E and the walk) within 20 %; its banks' memories as
    mapped; and the whole core as the other fresh configuration."""
    synthesized = estimate.synthesize(FRESH_EVENTS, PYNQ)
    got, parts = estimate.analytic(FRESH_EVENTS, breakdown=True)
    want = synthesized.resources
    print(f"event config: analytic {got.rounded()} vs Yosys {want}")
    name = "spikeloop_core.core.network.layer0.crossbar"
    mine = {m: c for m, c in synthesized.modules.items() if m == name or m.startswith(name + ".")}
    assert any(".window7" in m for m in mine), sorted(mine)  # the event crossbar's eight read ports: the right kind
    xbar = sum((estimate.count_cells(c, "xc7") for c in mine.values()), estimate.Resources(0, 0, 0, 0))
    part = parts["layer 0 crossbar"]
    assert within(part.ff, xbar.ff, 0.05), (part, xbar)
    assert within(part.lut, xbar.lut, 0.20) and part.bram == xbar.bram, (part, xbar)
    assert within(got.ff, want.ff, 0.05) and within(got.lut, want.lut, 0.20), (got, want)
    assert got.bram == want.bram and got.dsp == want.dsp, (got, want)
    assert estimate.layer_memories(FRESH_EVENTS.layers[0])["weights"].banks == 8


#: A recurrent dense layer 0 (48 inputs and its 24 previous spikes in chunks of 16) before a feed-forward one
#: (about 30 s of Yosys).
FRESH_RECURRENT = CoreConfig.build((48, 24, 6), lanes=[3, 2], chunk=[16, 12], recurrent=[True, False], u_bits=12)


def test_a_recurrent_layer_matches_a_fresh_synthesis():
    """A recurrent layer's crossbar of n_in + n_out inputs is counted as a dense one of that width: its flip-flops
    within 5 % of Yosys, its LUTs within 20 %, its weight memory as mapped; the collector's flip-flops exactly."""
    synthesized = estimate.synthesize(FRESH_RECURRENT, PYNQ)
    got, parts = estimate.analytic(FRESH_RECURRENT, breakdown=True)
    want = synthesized.resources
    print(f"recurrent config: analytic {got.rounded()} vs Yosys {want}")
    ffs = {name: estimate.count_cells(cells, "xc7").ff for name, cells in synthesized.modules.items()}
    name = "spikeloop_core.core.network.layer0.crossbar"
    mine = {m: c for m, c in synthesized.modules.items() if m == name or m.startswith(name + ".")}
    xbar = sum((estimate.count_cells(c, "xc7") for c in mine.values()), estimate.Resources(0, 0, 0, 0))
    part = parts["layer 0 crossbar"]
    assert within(part.ff, xbar.ff, 0.05), (part, xbar)
    assert within(part.lut, xbar.lut, 0.20) and part.bram == xbar.bram, (part, xbar)
    assert parts["layer 0 collector"].ff == ffs["spikeloop_core.core.network.layer0"]
    assert within(got.ff, want.ff, 0.05) and within(got.lut, want.lut, 0.20), (got, want)
    assert got.bram == want.bram and got.dsp == want.dsp, (got, want)


def test_popcount_tree_registers_are_the_crossbars():
    """`tree_register_bits` counts the registers the crossbar builds (`t<k>_lane<p>_c<i>`), stage by
    stage, for chunk widths with no stage, one and several."""
    import re

    from amaranth.back import rtlil

    from spikeloop.rtl.crossbar import Crossbar, tree_stages

    stages_seen = set()
    for chunk in (2, 3, 7, 16, 37, 64):
        text = rtlil.convert(Crossbar(n_in=64, n_out=4, lanes=2, chunk=chunk), name="xbar")
        widths = [(int(k), int(w)) for w, k in re.findall(r"wire width (\d+) .*\\t(\d+)_lane0_c\d+\n", text)]
        got = tuple(sum(w for k, w in widths if k == stage) for stage in range(1, tree_stages(chunk) + 1))
        assert got == estimate.tree_register_bits(chunk), (chunk, got)
        assert sum(w for _, w in widths) == sum(got), chunk  # no stage beyond tree_stages
        stages_seen.add(len(got))
    assert stages_seen >= {0, 1, 2}, stages_seen


def test_a_configuration_that_does_not_fit_is_refused_with_the_numbers():
    huge = CoreConfig.build((4096, 4096), lanes=256, chunk=256)
    with pytest.raises(estimate.DoesNotFit) as e:
        estimate.check_fit(estimate.analytic(huge), PYNQ, source="analytic")
    text = str(e.value)
    assert "xc7z020clg400-1" in text and "LUT" in text and "53,200" in text and "%" in text
    assert set(e.value.over) >= {"lut"}
    estimate.check_fit(estimate.analytic(CALIBRATED[0]), PYNQ)  # the default fits


@pytest.fixture(scope="module")
def best():
    return estimate.largest(DEFAULT_SIZES, PYNQ, margin=0.9)


def test_largest_fitting_configuration_beats_the_default(best):
    default = DEFAULT_CORE
    estimate.check_fit(estimate.analytic(best), PYNQ, margin=0.9)
    assert all(layer.chunk <= estimate.MAX_CHUNK for layer in best.layers)
    assert estimate.ops_per_cycle(best) >= 5000 > 4 * estimate.ops_per_cycle(default)
    print("largest:", " ".join(estimate.flow.config_args(best)), f"{estimate.ops_per_cycle(best):.0f} ops/cycle")


def test_largest_configuration_fits_by_synthesis_too(best):
    match = [run for run, config in zip(RUNS, CALIBRATED) if config.params() == best.params()]
    assert match, ("the largest configuration is not among the stored runs: add it to estimate.CALIBRATION and "
                   "re-run `python -m spikeloop.boards.estimate calibrate`")
    total = estimate.Resources(0, 0, 0, 0)
    for cells in match[0]["modules"].values():
        total = total + estimate.count_cells(cells, "xc7")
    estimate.check_fit(total, PYNQ)


def test_the_options_cost_luts_only_where_they_are_built():
    """The calibration runs are of builds without options; `options_luts` adds them per layer built with them."""
    sizes = (784, 256, 128, 10)
    off = estimate.analytic(DEFAULT_CORE)
    some = CoreConfig.build(sizes, lanes=16, chunk=64, options=[False, True, False])
    on = CoreConfig.build(sizes, lanes=16, chunk=64, options=True)
    assert [estimate.options_luts(layer) for layer in DEFAULT_CORE.layers] == [0.0] * 3
    extra = [estimate.options_luts(layer) for layer in on.layers]
    assert all(x > 1000 for x in extra), extra
    assert estimate.analytic(some).lut == pytest.approx(off.lut + extra[1])
    assert estimate.analytic(on).lut == pytest.approx(off.lut + sum(extra))
    # the options widen the neuron arrays' stage registers and keep the rounding constants: FFs too,
    # only in the layers built with them
    assert estimate.analytic(on).ff > off.ff
    assert estimate.analytic(some).ff - off.ff == pytest.approx(
        sum(estimate.neuron_ffs(on.layers[1]).values()) - sum(estimate.neuron_ffs(DEFAULT_CORE.layers[1]).values()))
    assert all(not layer.get("options") for run in RUNS for layer in run["config"]["layers"])
    with_options = estimate.largest(DEFAULT_SIZES, PYNQ, margin=0.9, options=True)
    assert all(layer.options for layer in with_options.layers)
    assert estimate.ops_per_cycle(with_options) < estimate.ops_per_cycle(estimate.largest(DEFAULT_SIZES, PYNQ))
    with pytest.raises(ConfigError, match="config: options has 2 entries for 3 layers"):
        estimate.largest(DEFAULT_SIZES, PYNQ, options=[True, False])


def test_largest_without_a_chunk_cap_goes_further(best):
    free = estimate.largest(DEFAULT_SIZES, PYNQ, margin=0.9, max_chunk=None)
    estimate.check_fit(estimate.analytic(free), PYNQ, margin=0.9)
    assert estimate.ops_per_cycle(free) >= estimate.ops_per_cycle(best)
    with pytest.raises(ConfigError, match="no configuration"):
        estimate.largest(DEFAULT_SIZES, PYNQ, margin=0.01)


@pytest.mark.parametrize("density", [0.01, 0.05, 0.2])
def test_largest_at_measured_densities_spends_the_device_on_the_expected_cycles(best, density):
    from spikeloop.rtl.throughput import expected_core_cycles

    dens = (density, 0.05, 0.05)
    found = estimate.largest(DEFAULT_SIZES, PYNQ, densities=dens)
    estimate.check_fit(estimate.analytic(found), PYNQ, margin=0.9)
    assert expected_core_cycles(found, dens) <= expected_core_cycles(best, dens)
    assert any(layer.events for layer in found.layers), estimate.flow.config_args(found)  # sparse: events pay
    for layer in found.layers:
        assert layer.events is None or layer.n_chunks <= estimate.MAX_BANK_ROWS


def test_automatic_configuration_costs_no_more_luts_than_the_default():
    """The automatic configuration spends the default build's LUTs where the activity is (issue targets:
    3x fewer cycles per timestep; at 5 % input density 5x the effective ops per cycle)."""
    from spikeloop.rtl.throughput import expected_core_cycles

    budget = estimate.analytic(DEFAULT_CORE).lut
    for dens in ((0.05, 0.05, 0.05), (0.1, 0.1, 0.1), (1.0, 1.0, 1.0)):
        auto = estimate.automatic(DEFAULT_SIZES, dens, PYNQ)
        assert estimate.analytic(auto).lut <= budget
        ratio = expected_core_cycles(DEFAULT_CORE, dens) / expected_core_cycles(auto, dens)
        assert ratio >= 3, (dens, estimate.flow.config_args(auto), ratio)
        if dens[0] == 0.05:
            assert ratio >= 5
    with pytest.raises(ConfigError, match=r"within 1,000 LUTs"):
        estimate.largest(DEFAULT_SIZES, PYNQ, densities=(0.1,) * 3, max_luts=1000)


@pytest.mark.parametrize(("dens", "part"), [((0.1, 0.1), "densities: 2 values for 3 layers"),
                                            ((0.1, 2.0, 0.1), "densities[1] = 2.0, expected a spike density"),
                                            ("0.1", "densities = '0.1', expected one input density per layer")])
def test_largest_refuses_bad_densities(dens, part):
    with pytest.raises(ConfigError, match=re.escape(part)):
        estimate.largest(DEFAULT_SIZES, PYNQ, densities=dens)


def test_cli_estimate_analytic(capsys):
    assert cli.main(["estimate", "--board", "pynq-z2", "--analytic"]) == 0
    out = capsys.readouterr().out
    assert "xc7z020clg400-1" in out and "53,200" in out and "209 per timestep" in out and "1,123 synaptic" in out


def test_cli_estimate_refuses_what_does_not_fit(capsys, tmp_path):
    status = cli.main(["estimate", "--analytic", "--sizes", "4096,4096", "--lanes", "256", "--chunk", "256",
                       "--json", str(tmp_path / "e.json")])
    assert status == 2
    assert "does not fit" in capsys.readouterr().err
    numbers = json.loads((tmp_path / "e.json").read_text())
    assert numbers["analytic"]["lut"] > PYNQ.device.lut and numbers["capacity"]["lut"] == 53_200


def test_routed_summary_gives_ops_per_second_and_the_critical_path():
    config = CoreConfig.build((64, 32, 10), lanes=4, chunk=16)
    meta = {"fmax_mhz": 33.4, "clock_mhz": 25.0, "build_seconds": 156, "tools": {"nextpnr-ecp5": "nextpnr 0.11"},
            "utilization": {"TRELLIS_COMB": [8719, 83640], "TRELLIS_FF": [1998, 83640]},
            "critical_path": {"delay_ns": 29.9, "logic_cells": 41, "source": "core.x.r$FF", "sink": "core.y.v WD",
                              "module": "core.y", "clock": "clk"}}
    text = estimate.routed_summary(meta, config)
    ops = estimate.ops_per_cycle(config)
    assert f"{ops * 33.4e6 / 1e9:,.1f} G synaptic ops/s at fmax" in text, text
    assert f"{ops * 25e6 / 1e9:,.1f} G at the clock" in text and "TIMING FAILS" not in text
    assert "critical path 29.90 ns, 41 logic cells, in core.y: core.x.r$FF -> core.y.v WD" in text
    slow = estimate.routed_summary({**meta, "fmax_mhz": 20.0, "critical_path": None}, config)
    assert "TIMING FAILS" in slow and "at the clock" not in slow and "critical path" not in slow
    assert estimate.synaptic_ops_per_second(config, 20.0, 25.0) == (ops * 20e6, None)


def test_cli_estimate_auto_from_a_network_image(tmp_path, capsys):
    from spikeloop.network import random_network

    path = tmp_path / "net.npz"
    net = random_network(DEFAULT_SIZES, seed=3, v_bits=12, u_bits=12)
    net.with_densities([np.full(n, 0.05) for n in DEFAULT_SIZES[:-1]]).save(path)
    argv = ["estimate", "--analytic", "--auto", "--network", str(path), "--json", str(tmp_path / "e.json")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "expected at input densities 0.05, 0.05, 0.05:" in out and "--events" in out, out
    assert "--v-bits 12 --u-bits 12" in out  # the configuration holds the network
    numbers = json.loads((tmp_path / "e.json").read_text())
    assert numbers["analytic"]["lut"] <= estimate.analytic(DEFAULT_CORE).lut
    assert numbers["expected"]["densities"] == pytest.approx([0.05] * 3)
    assert numbers["expected"]["default_cycles_per_timestep"] >= 4 * numbers["expected"]["cycles_per_timestep"]
    assert cli.main(["info", str(path)]) == 0
    assert "input density=0.0500" in capsys.readouterr().out


def test_a_recurrent_layer_widens_its_weight_memory_and_its_timestep(tmp_path, capsys):
    """A recurrent layer's crossbar has n_in + n_out inputs: more weight rows, synapses and crossbar cost, and its
    timestep waits for its spikes (`recurrent_wait`); the searches and `--network` take the recurrence."""
    from spikeloop.config import recurrent_wait
    from spikeloop.network import random_network

    plain = CoreConfig.build((196, 64, 10), lanes=16, chunk=64)
    loop = CoreConfig.build((196, 64, 10), lanes=16, chunk=64, recurrent=[True, False])
    ff, rec = (estimate.layer_memories(c.layers[0])["weights"] for c in (plain, loop))
    assert (ff.depth, rec.depth) == (4 * 4, 4 * 5) and ff.width == rec.width  # 16 groups' rows of 5 chunks, not 4
    assert estimate.synapses(loop) == estimate.synapses(plain) + 64 * 64
    assert estimate.layer_resources(loop.layers[0])["crossbar"].lut > estimate.layer_resources(plain.layers[0])[
        "crossbar"].lut
    # 16 groups x 5 chunks; the first group's 3 chunks of inputs walked while the previous timestep finishes
    assert estimate.cycles_per_timestep(loop) == 4 * 5 + 1 + recurrent_wait(loop.layers[0]) - 1 - 3 > \
        estimate.cycles_per_timestep(plain)
    found = estimate.largest((196, 64, 10), PYNQ, recurrent=[True, False])
    assert [layer.recurrent for layer in found.layers] == [True, False]
    path = tmp_path / "rec.npz"
    net = random_network((196, 64, 10), seed=4, recurrent=(True, False))
    net.with_densities([np.full(196, 0.1), np.full(64, 0.2)]).save(path)
    assert cli.main(["estimate", "--analytic", "--auto", "--network", str(path)]) == 0
    out = capsys.readouterr().out
    assert "--recurrent 1,0" in out, out
    with pytest.raises(ConfigError, match="recurrent has 1 entries for 2 layers"):
        estimate.largest((196, 64, 10), PYNQ, recurrent=[True])
