"""The ULX3S (ECP5-85F) bitstream from PyPI tools alone: Yosys, nextpnr-ecp5 and ecppack (YoWASP).

Why the ULX3S rather than the iCEBreaker: its LFE5U-85F has 84k LUT4s, 208 block RAMs of 18 Kb
and 156 multipliers, so real networks fit (the iCEBreaker's iCE40UP5K has 5,280 LUT4s and 30
block RAMs of 4 Kb: little more than the register file), and its FTDI USB-UART carries the host
link. The board definition is amaranth-boards' `ULX3S_85F_Platform` (imported, not copied).

The top is the core (`spikeloop.rtl.Core`, 25 MHz from the board's oscillator) joined to a
`UARTBridge` on the FTDI UART (1,000,000 baud 8N1, protocol in spikeloop.boards.uart_bridge);
LED 0 shows a UART overrun. `build(config, out)` runs the build plan `plan(config, out=out)`
(Amaranth's build script under `spikeloop.toolchain.run`, logged in reports/build.log) into `out`:

    spikeloop.bit            the bitstream (load with openFPGALoader -b ulx3s spikeloop.bit)
    spikeloop.json           overlay metadata: configuration, design hash, tools, fmax, utilization
    reports/nextpnr.json     nextpnr's report (fmax per clock, utilization per cell type)
    reports/nextpnr.log      nextpnr's log (timing report at the end); reports/yosys.log
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from spikeloop import toolchain
from spikeloop.config import CoreConfig, design_hash
from spikeloop.uartlink import DEFAULT_BAUD

from . import flow
from .devices import BOARDS
from .uart_bridge import UARTBridge

__all__ = ["BAUD", "TOOLS", "ULX3STop", "plan", "build", "summarize_report"]

BOARD = BOARDS["ulx3s"]
#: UART speed of the host link (25 clocks per bit at 25 MHz), the serial transport's default.
BAUD = DEFAULT_BAUD
#: The environment variable through which Amaranth's build script finds each tool -> the tool.
TOOLS = {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"}


class ULX3STop(Elaboratable):
    """The core behind a UART bridge on the ULX3S's FTDI UART."""

    def __init__(self, config: CoreConfig, *, baud: int = BAUD):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
        self.config, self.baud = config, baud

    def elaborate(self, platform):
        from spikeloop.rtl import Core
        from spikeloop.rtl.top import axi_members

        m = Module()
        m.submodules.core = core = Core(config=self.config)
        divisor = round(platform.default_clk_frequency / self.baud)
        m.submodules.bridge = bridge = UARTBridge(config=self.config, divisor=divisor)
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
    """From nextpnr's JSON report: `fmax_mhz` (the slowest clock; there is one), `fmax_by_clock`
    and `utilization` {cell type: (used, available)} (TRELLIS_COMB = LUT4 + carry, TRELLIS_FF,
    DP16KD block RAMs, MULT18X18D, TRELLIS_RAMW = LUT RAM write ports)."""
    fmax = {name: round(v["achieved"], 2) for name, v in report.get("fmax", {}).items()}
    util = {name: (v["used"], v["available"]) for name, v in report.get("utilization", {}).items() if v["used"]}
    return {"fmax_mhz": min(fmax.values()) if fmax else None, "fmax_by_clock": fmax, "utilization": util}


def plan(config: CoreConfig, *, out=None, root=None, seed: int = 1, log=print) -> toolchain.BuildPlan:
    """The build plan of the ULX3S 85F bitstream of `config`: into `out` when named, else a folder of
    `root` (default: the toolchain's `bitstream/` cache folder) named by the content key."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    tools = {name: toolchain.find(name) for name in TOOLS.values()}
    inputs = {**flow.design_inputs(config), "board": "ulx3s", "seed": seed, "baud": BAUD,
              "tools": {name: tool.version() for name, tool in tools.items()},
              "packages": flow.package_versions(("amaranth-boards",))}

    def build(folder: Path) -> None:
        work = folder / "amaranth"
        env = {var: tools[name].argv[0] for var, name in TOOLS.items()}
        env["OPENFPGALOADER"] = "true"  # only used to program a board
        log(f"building {'-'.join(map(str, config.sizes))} for the ULX3S 85F in {work} (Yosys, nextpnr, ecppack) ...")
        amaranth_plan = ULX3S_85F_Platform().build(ULX3STop(config), name="spikeloop", do_build=False,
                                                   nextpnr_opts=f"--seed {seed} --report spikeloop_report.json")
        amaranth_plan.extract(work)
        reports = folder / "reports"
        seconds = toolchain.run(["sh", f"{amaranth_plan.script}.sh"], log=reports / "build.log",
                                what="the ULX3S build (Yosys, nextpnr-ecp5, ecppack)", cwd=work,
                                env={**os.environ, **env}, timeout=6 * 3600)
        shutil.copyfile(work / "spikeloop.bit", folder / "spikeloop.bit")
        shutil.copyfile(work / "spikeloop_report.json", reports / "nextpnr.json")
        shutil.copyfile(work / "spikeloop.tim", reports / "nextpnr.log")
        shutil.copyfile(work / "spikeloop.rpt", reports / "yosys.log")
        summary = summarize_report(json.loads((reports / "nextpnr.json").read_text()))
        meta = flow.overlay_metadata(config, board="ulx3s", tools=inputs["tools"], part=BOARD.device.part,
                                     clock_mhz=BOARD.clock_mhz, uart_baud=BAUD, build_seconds=round(seconds),
                                     status="built", **summary)
        flow.write_metadata(folder / "spikeloop.json", meta)

    return toolchain.BuildPlan("bitstream", f"ulx3s-{design_hash(config).hex()[:16]}", inputs, build,
                               products=("spikeloop.bit", "spikeloop.json"), root=root,
                               folder=None if out is None else Path(out), lock_timeout=6 * 3600)


def build(config: CoreConfig, out, *, seed: int = 1, log=print) -> Path:
    """Synthesize, place, route and pack `config` for the ULX3S 85F into `out` (nothing to do when it
    holds this build already); returns the bitstream's path."""
    return plan(config, out=out, seed=seed, log=log).execute() / "spikeloop.bit"
