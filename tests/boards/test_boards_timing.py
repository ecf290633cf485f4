"""The xc7 timing estimate: the path analysis on small hand-built netlists, the conversion's figures, and
the depth budget of a core with the default's structure (a flat Yosys synthesis, cached)."""

from __future__ import annotations

import json

import pytest

from spikeloop.app import cli
from spikeloop.boards import estimate, timing
from spikeloop.boards.devices import BOARDS
from spikeloop.config import DEFAULT_CORE, CoreConfig

#: Config A: the default's structure and widths at a size Yosys maps in about a minute.
CONFIG_A = CoreConfig.build((128, 32, 10), lanes=4, chunk=64)
PYNQ = BOARDS["pynq-z2"]

_DIRS = {"FDRE": ({"C", "CE", "D", "R"}, {"Q"}), "CARRY4": ({"CI", "CYINIT", "DI", "S"}, {"O", "CO"}),
         "MUXF7": ({"I0", "I1", "S"}, {"O"}), "RAMB18E1": ({"CLKARDCLK", "ADDRARDADDR", "ENARDEN"}, {"DOADO"})}


def cell(kind, params=None, **connections):
    """A Yosys JSON cell; LUTk ports I0..I(k-1) in, O out."""
    ins, outs = _DIRS.get(kind, ({f"I{i}" for i in range(6)}, {"O"}))
    dirs = {p: "input" if p in ins else "output" for p in connections}
    assert set(connections) <= ins | outs, (kind, connections)
    conns = {p: b if isinstance(b, list) else [b] for p, b in connections.items()}
    return {"type": kind, "parameters": params or {}, "port_directions": dirs, "connections": conns}


def ff(d, q, clk=100):
    return cell("FDRE", C=clk, CE="1", R="0", D=d, Q=q)


def netlist(cells, names=None, ports=None, top=True):
    module = {"attributes": {"top": "00000000000000000000000000000001"} if top else {}, "ports": ports or {},
              "cells": cells, "netnames": {n: {"hide_name": 0, "bits": [b]} for n, b in (names or {}).items()}}
    return {"modules": {"top": module}}


def ns(*ps):
    """Sum of picosecond figures, in ns (rounded like the results)."""
    return round(sum(ps) / 1000, 3)


NET = round(timing.T_NET_NS * 1000)
CKO = 303  # cells_sim.v FDRE clock-to-out


def test_the_conversion_quotes_the_library_figures():
    f = timing._figures()
    assert f == {"ff_clk_to_q": 0.303, "ff_setup": 0.404, "lut_max": 0.642, "bram_clk_to_q": 2.454,
                 "bram_reg_clk_to_q": 0.882}
    lib = timing.cells_sim()
    assert ("I0", None, "O", None, 642) in lib["LUT6"].arcs and ("I5", None, "O", None, 127) in lib["LUT6"].arcs
    assert ("CI", None, "CO", 3, 114) in lib["CARRY4"].arcs and lib["FDRE"].setup == {"CE": 109, "R": 404, "D": 0}
    # 100 MHz: (10 - 0.303 - 0.7 - 0.404) / (0.642 + 0.7) = 6.4 levels from a flip-flop; 4.8 from a BRAM read
    assert timing.level_budget(100) == 6 and timing.level_budget(100, 2.454) == 4 and timing.level_budget(50) == 13
    text = timing.conversion_text(100)
    assert "6 LUT levels from a flip-flop" in text and "0.7 ns" in text and "2.454" in text
    with pytest.raises(ValueError, match="clock_mhz must be positive, got 0"):
        timing.level_budget(0)


def test_a_chain_of_three_luts_between_flip_flops_is_three_levels():
    cells = {"src": ff(9, 1), "a": cell("LUT6", I0=1, O=2), "b": cell("LUT6", I0=2, O=3),
             "c": cell("LUT2", I1=3, O=4), "dst": ff(4, 5)}
    r = timing.analyse(netlist(cells, {"m.src": 1, "m.sub.dst": 5}))
    p = r.deepest[0]
    assert (p.levels, p.nets) == (3, 4)
    assert p.delay_ns == ns(CKO, 642, 642, 127, 4 * NET, 0)  # D's setup is 0 in the library
    assert (p.source, p.sink, p.module) == ("m.src", "m.sub.dst D", "m.sub")
    assert [c.split()[0] for c in p.cells] == ["FDRE", "LUT6", "LUT6", "LUT2"]
    assert r.levels == 3 and r.n_violations == 0 and r.fmax_mhz == pytest.approx(1000 / p.delay_ns)
    assert set(r.modules) == {"m.sub"}  # the source's own D (net 9, undriven) has no path
    assert r.modules["m.sub"]["deepest"] == p


def test_a_carry_chain_counts_once_and_its_routes_cost_no_net():
    cells = {"src": ff(9, 1), "lut": cell("LUT1", I0=1, O=2),
             "c0": cell("CARRY4", CI="0", CYINIT="0", DI=["0"] * 4, S=[2, "0", "0", "0"], O=[20, 21, 22, 23],
                        CO=[30, 31, 32, 33]),
             "c1": cell("CARRY4", CI=33, CYINIT="0", DI=["0"] * 4, S=["0"] * 4, O=[40, 41, 42, 43],
                        CO=[50, 51, 52, 53]),
             "dst": ff(41, 60)}
    r = timing.analyse(netlist(cells, {"x.dst": 60}))
    p = r.deepest[0]
    assert (p.levels, p.nets) == (2, 2)  # the LUT and the chain; S from its LUT and CO -> CI are dedicated
    assert p.delay_ns == ns(CKO, 127, 508, 334, 2 * NET)  # S[0] -> CO[3], CI -> O[1]


def test_the_slowest_path_counts_the_sinks_setup():
    cells = {"src": ff(9, 1), "a": cell("LUT3", I0=1, O=2), "b": cell("LUT6", I5=1, O=3), "d": ff(2, 4),
             "r": cell("FDRE", C=100, CE="1", R=3, D="0", Q=5)}
    r = timing.analyse(netlist(cells, {"m.d": 4, "m.r": 5}))
    assert [p.sink for p in r.slowest] == ["m.r R", "m.d D"]  # R's setup (0.404 ns) outweighs I0's extra delay
    assert r.slowest[0].delay_ns == ns(CKO, 127, 2 * NET, 404) > r.slowest[1].delay_ns == ns(CKO, 407, 2 * NET)
    assert r.fmax_mhz == 1000 / r.slowest[0].delay_ns


def test_a_muxf7_adds_no_level():
    cells = {"src": ff(9, 1), "sel": ff(9, 2), "l0": cell("LUT6", I5=1, O=3), "l1": cell("LUT6", I5=1, O=4),
             "mux": cell("MUXF7", I0=3, I1=4, S=2, O=5), "dst": ff(5, 6)}
    r = timing.analyse(netlist(cells, {"y.dst": 6}))
    p = r.deepest[0]
    assert p.levels == 1 and p.nets == 2
    assert p.delay_ns == ns(CKO, 127, 223, 2 * NET)  # LUT I5, MUXF7 I1 (the slower input)
    from_select = [q for q in r.slowest if q.source == "y.sel"]
    assert r.slowest[0] == p and len(r.slowest) == 1 + len(from_select) == 1  # one path per endpoint
    assert ns(CKO, 296, 2 * NET) < p.delay_ns  # the select's path (S -> O, no level) is the shorter


def test_a_loop_through_a_flip_flop_is_cut_and_one_without_is_an_error():
    counter = {"q": ff(2, 1), "inc": cell("LUT3", I0=1, O=2)}
    r = timing.analyse(netlist(counter, {"c.count": 1}))
    assert r.levels == 1 and r.deepest[0].source == "c.count" and r.deepest[0].sink == "c.count D"
    loop = {"a": cell("LUT2", I0=1, O=2), "b": cell("LUT2", I0=2, O=3), "c": cell("LUT2", I0=3, I1=9, O=1),
            "q": ff(3, 9)}
    with pytest.raises(ValueError, match="a combinational loop through"):
        timing.analyse(netlist(loop))


def test_block_ram_reads_launch_by_their_output_register():
    for reg, cko, budget in ((0, 2454, 4), (1, 882, 5)):
        cells = {"ram": cell("RAMB18E1", {"DOA_REG": f"{reg:032b}"}, CLKARDCLK=100, ENARDEN="1",
                             ADDRARDADDR=[7], DOADO=[1]),
                 "l": cell("LUT6", I0=1, O=2), "dst": ff(2, 3), "a": ff(9, 7)}
        r = timing.analyse(netlist(cells, {"m.q": 3, "m.addr": 7}))
        p = next(p for p in r.deepest if p.sink == "m.q D")
        assert p.delay_ns == ns(cko, 642, 2 * NET) and p.budget(100) == budget
        into_ram = next(p for p in r.deepest if "ADDRARDADDR" in p.sink)
        assert into_ram.delay_ns == ns(CKO, NET, 566) and into_ram.levels == 0


def test_paths_over_the_budget_are_listed():
    chain = {"src": ff(99, 1), "dst": ff(9, 20), "end": ff(9, 21)}
    for k in range(8):
        chain[f"l{k}"] = cell("LUT6", I0=1 + k, O=2 + k)
    r = timing.analyse(netlist(chain, {"deep.end": 21}))
    assert r.levels == 8 and r.n_violations == 2 and all(p.levels == 8 for p in r.over_budget())
    assert r.fmax_mhz < 100


def test_bad_netlists_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="the netlist has 0 top modules"):
        timing.analyse(netlist({"q": ff(1, 1)}, top=False))
    with pytest.raises(ValueError, match="not a Yosys JSON netlist: no modules"):
        timing.analyse({"creator": "nothing"})
    odd = {"q": ff(9, 1), "x": cell("LUT1", I0=1, O=2), "d": ff(2, 3)}
    odd["x"]["type"] = "FANCY"
    with pytest.raises(ValueError, match="no timing figures for cell type FANCY"):
        timing.analyse(netlist(odd))


def test_nextpnr_critical_path_names_source_sink_and_module():
    def step(kind, delay, frm, to, port="Z"):
        return {"type": kind, "delay": delay, "from": {"cell": frm, "port": "Q"}, "to": {"cell": to, "port": port}}

    fast = {"from": "clk", "to": "clk", "path": [step("clk-to-q", 0.5, "a.q$FF", "a.q$FF"),
                                                 step("routing", 1.0, "a.q$FF", "b.l")]}
    slow = {"from": "clk", "to": "clk", "path": [step("clk-to-q", 0.5, "core.x.r$FF_1", "core.x.r$FF_1"),
                                                 step("routing", 1.25, "core.x.r$FF_1", "core.y.lut"),
                                                 step("logic", 0.25, "core.y.lut", "core.y.lut"),
                                                 step("setup", 0.0, "core.y.v.0.1$RAMW", "core.y.v.0.1$RAMW", "WD")]}
    got = timing.nextpnr_critical_path({"critical_paths": [fast, slow]})
    assert got == {"delay_ns": 2.0, "logic_cells": 1, "source": "core.x.r$FF_1", "sink": "core.y.v.0.1$RAMW WD",
                   "module": "core.y", "clock": "clk"}
    assert timing.nextpnr_critical_path({"fmax": {}}) is None


@pytest.fixture(scope="module")
def config_a():
    """Config A's timing (a flat synthesis, about a minute of Yosys once; cached in the toolchain's estimate/)."""
    return timing.xc7_timing(CONFIG_A, clock_mhz=PYNQ.clock_mhz)


def _assert_within_budget(r):
    """Every endpoint of timing `r` within the clock's level budget; else the deepest path per module over it."""
    assert r.endpoints > 5000 and r.levels >= 2, "the analysis saw the core"  # no vacuous pass
    assert any(".crossbar" in m for m in r.modules) and any(".neurons" in m for m in r.modules)
    per_module = [paths["deepest"] for _, paths in sorted(r.modules.items())]
    offending = "\n".join(f"  {p.module}: {p.text()} (budget {p.budget(r.clock_mhz)})"
                           for p in per_module if p.levels > p.budget(r.clock_mhz))
    assert r.n_violations == 0, (f"{r.n_violations} endpoints deeper than the {r.clock_mhz:g} MHz budget "
                                 f"({r.budget} levels from a flip-flop); the deepest per module:\n{offending}")
    assert r.fmax_mhz >= PYNQ.clock_mhz


def test_every_path_of_a_default_structured_core_is_within_the_100_mhz_budget(config_a):
    _assert_within_budget(config_a)


@pytest.mark.experiment
def test_every_path_of_the_default_core_is_within_the_100_mhz_budget():
    """The default core itself (a flat synthesis of about 10 minutes, cached)."""
    _assert_within_budget(timing.xc7_timing(DEFAULT_CORE, clock_mhz=PYNQ.clock_mhz))


def test_config_a_timing_is_cached_and_reported(config_a, capsys, tmp_path):
    again = timing.xc7_timing(CONFIG_A, clock_mhz=PYNQ.clock_mhz, log=pytest.fail)  # no synthesis may run
    assert again.extra["cached"] and again.levels == config_a.levels and again.fmax_mhz == config_a.fmax_mhz
    print({m: p["deepest"].text() for m, p in again.modules.items()})
    lines = estimate.timing_summary(again, CONFIG_A, PYNQ)
    assert "LUT levels at most, expected fmax" in lines and "budget 6 levels" in lines and "G synaptic ops/s" in lines
    at_fmax, at_clock = estimate.synaptic_ops_per_second(CONFIG_A, again.fmax_mhz, PYNQ.clock_mhz)
    assert at_fmax == estimate.ops_per_cycle(CONFIG_A) * again.fmax_mhz * 1e6
    assert (at_clock is None) == (again.fmax_mhz < PYNQ.clock_mhz)
    out = tmp_path / "a.json"
    assert cli.main(["estimate", *estimate.flow.config_args(CONFIG_A), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "timing   " in printed and "ops/s    " in printed and "core.network.layer0.neurons" in printed, printed
    numbers = json.loads(out.read_text())["timing"]
    assert numbers["levels"] == again.levels and numbers["budget_levels"] == 6
    assert numbers["synaptic_ops_per_second"]["at_fmax"] == pytest.approx(at_fmax)
    assert cli.main(["estimate", *estimate.flow.config_args(CONFIG_A), "--no-timing"]) == 0
    assert "timing   " not in capsys.readouterr().out
