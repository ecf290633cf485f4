"""The ULX3S (ECP5-85F) bitstream from PyPI tools alone: Yosys, nextpnr-ecp5 and ecppack (YoWASP).

Why the ULX3S rather than the iCEBreaker: its LFE5U-85F has 84k LUT4s, 208 block RAMs of 18 Kb
and 156 multipliers, so real networks fit (the iCEBreaker's iCE40UP5K has 5,280 LUT4s and 30
block RAMs of 4 Kb: little more than the register file), and its FTDI USB-UART carries the host
link. The board definition is amaranth-boards' `ULX3S_85F_Platform` (imported, not copied).

The top (`ULX3STop`) clocks the core (`spikeloop.rtl.Core`) from the ECP5's PLL (EHXPLLL): the
board's 25 MHz oscillator in, the core clock out (`BOARD.clock_mhz`, 100 MHz, or `clock_mhz`;
`pll_settings` chooses the dividers), held in reset until the PLL locks. The core is joined to a
`UARTBridge` on the FTDI UART (1,000,000 baud 8N1, protocol in spikeloop.boards.uart_bridge);
LED 0 shows a UART overrun. `build(config, out)` runs the build plan `plan(config, out=out)`
(Amaranth's build script under `spikeloop.toolchain.run`, logged in reports/build.log) into `out`:

    spikeloop.bit            the bitstream (load with openFPGALoader -b ulx3s spikeloop.bit), only when
                             nextpnr's fmax meets the clock: else `build` raises `TimingFailed`
    spikeloop.json           overlay metadata: configuration, design hash, tools, clock, PLL, fmax,
                             `timing_met`, utilization
    reports/nextpnr.json     nextpnr's report (fmax per clock, utilization per cell type)
    reports/nextpnr.log      nextpnr's log (timing report at the end); reports/yosys.log
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from spikeloop import toolchain
from spikeloop.config import CoreConfig, design_hash
from spikeloop.uartlink import DEFAULT_BAUD

from . import flow
from .devices import BOARDS, TimingFailed
from .uart_bridge import UARTBridge

__all__ = ["BAUD", "TOOLS", "OSCILLATOR_MHZ", "PLLSettings", "pll_settings", "clocking", "ULX3STop", "plan", "build",
           "summarize_report", "timing_failure"]

BOARD = BOARDS["ulx3s"]
#: UART speed of the host link (100 clocks per bit at 100 MHz), the serial transport's default.
BAUD = DEFAULT_BAUD
#: The environment variable through which Amaranth's build script finds each tool -> the tool.
TOOLS = {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"}
#: The flow's own sources (the top, the UART bridge, its frame table): an input of every build, beside the core's.
FLOW_SOURCES = (("spikeloop.boards", "ulx3s.py"), ("spikeloop.boards", "uart_bridge.py"), ("spikeloop", "uartlink.py"))
#: The board's oscillator (amaranth-boards' `clk25` on pin G2), the PLL's input (the top checks the two agree).
OSCILLATOR_MHZ = 25

# The ECP5's sysCLOCK PLL, in MHz (ECP5 data sheet FPGA-DS-02012, "sysCLOCK PLL Timing"; Lattice
# FPGA-TN-02200, the sysCLOCK PLL/DLL design and usage guide): with CLKOP fed back,
# CLKOP = CLKI * CLKFB_DIV / CLKI_DIV and the VCO runs at CLKOP * CLKOP_DIV.
PLL_INPUT = (8, 400)
PLL_PFD = (Fraction(25, 8), 400)  # CLKI / CLKI_DIV, the phase detector's input
PLL_VCO = (400, 800)
PLL_OUTPUT = (Fraction(25, 8), 400)
PLL_DIVIDER = range(1, 129)  # CLKI_DIV, CLKFB_DIV, CLKOP_DIV
#: How close (MHz) the PLL's output must come to the requested clock.
CLOCK_TOLERANCE_MHZ = 0.001


@dataclass(frozen=True)
class PLLSettings:
    """EHXPLLL dividers for one output clock, CLKOP fed back (CLKFB = CLKOP)."""

    input_mhz: Fraction
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def output_mhz(self) -> Fraction:
        """CLKOP, exactly."""
        return self.input_mhz * self.clkfb_div / self.clki_div

    @property
    def vco_mhz(self) -> Fraction:
        """The VCO's frequency: CLKOP * CLKOP_DIV."""
        return self.output_mhz * self.clkop_div

    def as_dict(self) -> dict:
        """The dividers and frequencies (MHz, as floats) for the metadata."""
        return {"clki_div": self.clki_div, "clkfb_div": self.clkfb_div, "clkop_div": self.clkop_div,
                "input_mhz": float(self.input_mhz), "vco_mhz": float(self.vco_mhz),
                "output_mhz": float(self.output_mhz)}


def _within(value, limits) -> bool:
    return limits[0] <= value <= limits[1]


def pll_settings(clock_mhz, *, input_mhz=OSCILLATOR_MHZ) -> PLLSettings:
    """The EHXPLLL dividers that make `clock_mhz` (within CLOCK_TOLERANCE_MHZ) from `input_mhz`: the
    highest phase detector frequency (smallest CLKI_DIV), then the VCO nearest the middle of its range.
    A ValueError names a clock the PLL cannot make and the nearest ones it can."""
    for name, value in (("clock_mhz", clock_mhz), ("input_mhz", input_mhz)):
        if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
            raise ValueError(f"{name} must be a positive number of MHz, got {value!r}")
    fin = Fraction(input_mhz)
    if not _within(fin, PLL_INPUT):
        raise ValueError(f"the ECP5 PLL takes an input clock of {PLL_INPUT[0]}-{PLL_INPUT[1]} MHz, got {input_mhz} MHz")
    if not _within(clock_mhz, PLL_OUTPUT):
        raise ValueError(f"the ECP5 PLL makes clocks of {float(PLL_OUTPUT[0]):g}-{PLL_OUTPUT[1]} MHz (its VCO in "
                         f"{PLL_VCO[0]}-{PLL_VCO[1]} MHz over CLKOP_DIV {PLL_DIVIDER.start}-{PLL_DIVIDER.stop - 1}), "
                         f"got {clock_mhz:g} MHz")
    middle = Fraction(sum(PLL_VCO), 2)
    best, near = None, set()
    for clki_div in PLL_DIVIDER:
        if not _within(fin / clki_div, PLL_PFD):
            continue
        for clkfb_div in PLL_DIVIDER:
            out = fin * clkfb_div / clki_div
            lowest = max(PLL_DIVIDER.start, -(-PLL_VCO[0] // out))  # the smallest CLKOP_DIV reaching the VCO
            if not _within(out, PLL_OUTPUT) or lowest not in PLL_DIVIDER or out * lowest > PLL_VCO[1]:
                continue
            near.add(out)
            if abs(float(out) - clock_mhz) <= CLOCK_TOLERANCE_MHZ and best is None:
                vcos = [d for d in range(lowest, PLL_DIVIDER.stop) if out * d <= PLL_VCO[1]]
                clkop_div = min(vcos, key=lambda d: abs(out * d - middle))
                best = PLLSettings(fin, clki_div, clkfb_div, clkop_div)
        if best is not None:
            return best
    nearest = sorted(sorted(near, key=lambda f: abs(float(f) - clock_mhz))[:2])
    raise ValueError(f"the ECP5 PLL cannot make {clock_mhz:g} MHz from {float(fin):g} MHz with its VCO in "
                     f"{PLL_VCO[0]}-{PLL_VCO[1]} MHz and dividers of {PLL_DIVIDER.start}-{PLL_DIVIDER.stop - 1}; "
                     f"the nearest clocks it makes: {' and '.join(f'{float(f):.6g} MHz' for f in nearest)}")


def clocking(clock_mhz, *, baud: int = BAUD) -> tuple[PLLSettings, int]:
    """The PLL settings of the core clock `clock_mhz` and the UART's divisor (clocks per bit) at it;
    a ValueError when the PLL cannot make the clock or it gives fewer than 4 clocks per bit."""
    pll = pll_settings(clock_mhz)
    divisor = round(pll.output_mhz * 1_000_000 / baud)
    if divisor < 4:
        raise ValueError(f"a {float(pll.output_mhz):g} MHz clock gives {baud:,} baud fewer than 4 clocks "
                         f"per bit; choose a clock of at least {4 * baud / 1e6:g} MHz")
    return pll, divisor


class ULX3STop(Elaboratable):
    """The core, clocked by the PLL, behind a UART bridge on the ULX3S's FTDI UART.

    `clock_mhz`: the core clock (default the board's, `BOARD.clock_mhz`); refused (ValueError) when the
    PLL cannot make it or the UART's `baud` needs more clocks per bit than it gives.
    """

    def __init__(self, config: CoreConfig, *, clock_mhz: float = BOARD.clock_mhz, baud: int = BAUD):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
        self.config, self.baud = config, baud
        self.pll, self.divisor = clocking(clock_mhz, baud=baud)

    @property
    def clock_mhz(self) -> float:
        """The core clock the PLL makes (MHz)."""
        return float(self.pll.output_mhz)

    def elaborate(self, platform):
        from spikeloop.rtl import Core
        from spikeloop.rtl.top import axi_members

        m = Module()
        if platform.default_clk_frequency != self.pll.input_mhz * 1_000_000:
            raise ValueError(f"the PLL's settings are for a {float(self.pll.input_mhz):g} MHz input, the platform's "
                             f"{platform.default_clk} runs at {platform.default_clk_frequency / 1e6:g} MHz")
        m.submodules.osc = osc = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        # nextpnr names a net by the first of its names in Yosys's (sorted) list and looks the LPF's
        # FREQUENCY NET up by that name: an upper-case name sorts before the submodules' `bridge.clk`.
        clk, lock = Signal(name="PLL_CLKOP", attrs={"keep": 1}), Signal(name="pll_lock")
        pll = self.pll
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_CLKI_DIV=pll.clki_div, p_CLKFB_DIV=pll.clkfb_div, p_CLKOP_DIV=pll.clkop_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_CPHASE=pll.clkop_div - 1, p_CLKOP_FPHASE=0,  # no phase shift
            p_FEEDBK_PATH="CLKOP", p_OUTDIVIDER_MUXA="DIVA", p_PLLRST_ENA="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_INTFB_WAKE="DISABLED", p_DPHASE_SOURCE="DISABLED", p_PLL_LOCK_MODE=0,
            a_FREQUENCY_PIN_CLKI=f"{float(pll.input_mhz):g}", a_FREQUENCY_PIN_CLKOP=f"{self.clock_mhz:g}",
            i_CLKI=osc.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0,
            i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk, o_LOCK=lock,
        )
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.lock_reset = ResetSynchronizer(~lock, domain="sync")
        platform.add_clock_constraint(clk, self.clock_mhz * 1e6)

        m.submodules.core = core = Core(config=self.config)
        m.submodules.bridge = bridge = UARTBridge(config=self.config, divisor=self.divisor)
        for name, member in axi_members(self.config).items():
            src, dst = (bridge, core) if member.flow.name == "In" else (core, bridge)
            m.d.comb += getattr(dst, name).eq(getattr(src, name))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [bridge.rx.eq(uart_rx.i), uart_tx.o.eq(bridge.tx), led.o.eq(bridge.overrun)]
        return m


def summarize_report(report: dict) -> dict:
    """From nextpnr's JSON report: `fmax_mhz` (the slowest clock), `fmax_by_clock`, `timing_met`
    (every clock's fmax at least its constraint; False when nextpnr timed no clock) and `utilization`
    {cell type: (used, available)} (TRELLIS_COMB = LUT4 + carry, TRELLIS_FF, DP16KD block RAMs,
    MULT18X18D, TRELLIS_RAMW = LUT RAM write ports)."""
    clocks = report.get("fmax", {})
    fmax = {name: round(v["achieved"], 2) for name, v in clocks.items()}
    util = {name: (v["used"], v["available"]) for name, v in report.get("utilization", {}).items() if v["used"]}
    met = bool(clocks) and all(v["achieved"] >= v["constraint"] for v in clocks.values())
    return {"fmax_mhz": min(fmax.values()) if fmax else None, "fmax_by_clock": fmax, "timing_met": met,
            "utilization": util}


def plan(config: CoreConfig, *, out=None, root=None, seed: int = 1, clock_mhz: float = BOARD.clock_mhz,
         log=print) -> toolchain.BuildPlan:
    """The build plan of the ULX3S 85F bitstream of `config` with the core at `clock_mhz`: into `out` when
    named, else a folder of `root` (default: the toolchain's `bitstream/` cache folder) named by the
    design hash, the clock and the content key. The plan succeeds when timing fails (its metadata
    says so, for `spikeloop estimate`) but then writes no spikeloop.bit."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    pll, divisor = clocking(clock_mhz)  # refuses a clock the PLL cannot make, before any tool runs
    clock_mhz = float(pll.output_mhz)
    tools = {name: toolchain.find(name) for name in TOOLS.values()}
    inputs = {**flow.design_inputs(config), "board": "ulx3s", "seed": seed, "baud": BAUD, "pll": pll.as_dict(),
              "flow": {f"{package}/{name}": toolchain.resource(package, name) for package, name in FLOW_SOURCES},
              "tools": {name: tool.version() for name, tool in tools.items()},
              "packages": flow.package_versions(("amaranth-boards",))}

    def build(folder: Path) -> None:
        work = folder / "amaranth"
        (folder / "spikeloop.bit").unlink(missing_ok=True)  # an earlier build's, in a named `out`
        env = {var: tools[name].argv[0] for var, name in TOOLS.items()}
        env["OPENFPGALOADER"] = "true"  # only used to program a board
        log(f"building {'-'.join(map(str, config.sizes))} for the ULX3S 85F at {clock_mhz:g} MHz in {work} "
            "(Yosys, nextpnr, ecppack) ...")
        # --timing-allow-fail: nextpnr finishes and reports when fmax is below the clock; the check is ours.
        amaranth_plan = ULX3S_85F_Platform().build(
            ULX3STop(config, clock_mhz=clock_mhz), name="spikeloop", do_build=False,
            nextpnr_opts=f"--seed {seed} --report spikeloop_report.json --timing-allow-fail")
        amaranth_plan.extract(work)
        reports = folder / "reports"
        seconds = toolchain.run(["sh", f"{amaranth_plan.script}.sh"], log=reports / "build.log",
                                what="the ULX3S build (Yosys, nextpnr-ecp5, ecppack)", cwd=work,
                                env={**os.environ, **env}, timeout=6 * 3600)
        shutil.copyfile(work / "spikeloop_report.json", reports / "nextpnr.json")
        shutil.copyfile(work / "spikeloop.tim", reports / "nextpnr.log")
        shutil.copyfile(work / "spikeloop.rpt", reports / "yosys.log")
        summary = summarize_report(json.loads((reports / "nextpnr.json").read_text()))
        if summary["timing_met"]:
            shutil.copyfile(work / "spikeloop.bit", folder / "spikeloop.bit")
        meta = flow.overlay_metadata(config, board="ulx3s", tools=inputs["tools"], part=BOARD.device.part,
                                     clock_mhz=clock_mhz, pll=inputs["pll"], uart_baud=BAUD,
                                     uart_divisor=divisor, build_seconds=round(seconds),
                                     status="built" if summary["timing_met"] else "timing fails", **summary)
        flow.write_metadata(folder / "spikeloop.json", meta)

    name = f"ulx3s-{design_hash(config).hex()[:16]}-{clock_mhz:g}mhz"
    return toolchain.BuildPlan("bitstream", name, inputs, build, products=("spikeloop.json",), root=root,
                               folder=None if out is None else Path(out), lock_timeout=6 * 3600)


def timing_failure(meta: dict, folder) -> TimingFailed | None:
    """The error of a build whose metadata `meta` says timing fails (None when it is met)."""
    if meta.get("timing_met"):
        return None
    return TimingFailed(
        f"timing fails: nextpnr's fmax {meta.get('fmax_mhz')} MHz is below the {meta['clock_mhz']:g} MHz clock, "
        f"so no bitstream was written (the critical path is at the end of {Path(folder) / 'reports' / 'nextpnr.log'}). "
        "Choose a lower clock (--clock-mhz) or fewer lanes / a narrower chunk.")


def build(config: CoreConfig, out, *, seed: int = 1, clock_mhz: float = BOARD.clock_mhz, log=print) -> Path:
    """Synthesize, place, route and pack `config` for the ULX3S 85F with the core at `clock_mhz` into `out`
    (nothing to do when it holds this build already); returns the bitstream's path. Raises
    `TimingFailed` (no bitstream) when nextpnr's fmax is below the clock."""
    folder = plan(config, out=out, seed=seed, clock_mhz=clock_mhz, log=log).execute()
    error = timing_failure(json.loads((folder / "spikeloop.json").read_text()), folder)
    if error is not None:
        raise error
    return folder / "spikeloop.bit"
