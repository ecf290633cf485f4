"""The netlist the simulated board compiles (`spikeloop.sim.board.netlist`: the generated Verilog after
Yosys's `proc; opt`) is the same design: Yosys proves it equivalent to the generated Verilog, clock by
clock from any state (equiv_simple, then equiv_induct), on a small core with an event-driven and a dense
layer; the same proof refuses a netlist with one output inverted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spikeloop import toolchain
from spikeloop.config import CoreConfig
from spikeloop.rtl.verilog import generate
from spikeloop.sim.board import netlist

MISSING = toolchain.missing("yosys")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"Yosys: {MISSING}")

#: gold: the generated Verilog; gate: the netlist; both flattened, memories as flip-flops, then proven.
PROOF = """
read_verilog {gold}
hierarchy -top spikeloop_core; proc; flatten; opt_clean; rename spikeloop_core gold; design -stash gold
read_verilog {gate}
hierarchy -top spikeloop_core; proc; flatten; opt_clean; rename spikeloop_core gate; design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
memory_map
equiv_make gold gate equiv
hierarchy -top equiv
async2sync
equiv_simple -seq 5
equiv_induct -seq 5
equiv_status -assert
"""

SMALL = CoreConfig.build((8, 6, 4), lanes=2, chunk=4, events=[3, None])


def prove(tmp_path: Path, config: CoreConfig, edit=lambda text: text) -> tuple[bool, str]:
    """Whether Yosys proves the netlist of `config` (after `edit` of its text) equivalent to its Verilog;
    and Yosys's log."""
    yosys = toolchain.find("yosys")
    gold = generate(config, tmp_path / "gold")
    gate = netlist(gold, tmp_path / "netlist" / gold.name, yosys)
    gate.write_text(edit(gate.read_text()))
    (tmp_path / "proof.ys").write_text(PROOF.format(gold=gold.relative_to(tmp_path), gate=gate.relative_to(tmp_path)))
    try:
        toolchain.run([*yosys.argv, "-q", "-l", "proof.txt", "proof.ys"], log=tmp_path / "proof.log",
                      what="Yosys", cwd=tmp_path, timeout=600)
    except toolchain.ToolFailed:
        return False, (tmp_path / "proof.txt").read_text()
    return True, (tmp_path / "proof.txt").read_text()


def test_the_netlist_is_proven_equivalent_to_the_generated_verilog(tmp_path):
    proven, log = prove(tmp_path, SMALL)
    assert proven, log[-3000:]
    assert "Equivalence successfully proven" in log


def test_the_proof_refuses_a_netlist_with_an_inverted_output(tmp_path):
    def invert_tlast(text):
        edited, count = re.subn(r"assign m_axis_tlast = ([^;]+);", r"assign m_axis_tlast = ~(\1);", text, count=1)
        assert count == 1, "no assignment of m_axis_tlast in the netlist"
        return edited

    proven, log = prove(tmp_path, SMALL, invert_tlast)
    assert not proven, "a netlist with m_axis_tlast inverted was proven equivalent"
    assert "unproven" in log, log[-3000:]
