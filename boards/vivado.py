"""The PYNQ-Z2 overlay build: everything Vivado needs in one folder, then Vivado in batch mode.

`prepare(config, out)` fills `out` (build/boards/pynq-z2/ under make) with

    spikeloop_core.v, spikeloop_core.json   the core's Verilog and manifest (spikeloop.rtl.verilog)
    build.tcl, block_design.tcl, checks.tcl the flow, copied from boards/pynq_z2/ (edit them there)
    settings.tcl                            this build's values: part, board, VLNV, widths, addresses
    spikeloop.json                          overlay metadata: configuration, design hash, tools
    README.txt                              the one command to run on a machine with Vivado

`build(config, out)` prepares, then runs `vivado -mode batch -notrace -source build.tcl` there
when `vivado` is on PATH, and records the Vivado version, timing, utilization and the SHA-256 of
spikeloop.bit and spikeloop.hwh (`bitstream`) in spikeloop.json. Without Vivado it raises
`VivadoMissing` whose message says what to copy and run. A design that misses its clock (build.tcl
checks the worst setup and hold slack before it writes spikeloop.bit) raises `TimingFailed`.

The clock (`clock_mhz`, default the board's 100 MHz) is the PS's FCLK_CLK0: the I/O PLL (1000 MHz in
the PYNQ-Z2's preset) divided by two 6-bit divisors, at most 250 MHz (Zynq-7000 TRM UG585, "PL
Clocks"; Vivado's PS7 dialog): `fclk_divisors` refuses a clock those cannot make.

The addresses come from `spikeloop.regmap`: the core's AXI-Lite range is
`2^address_bits(config)` bytes (at least Vivado's 4 KiB minimum), at `CORE_BASE` in GP0's window.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from spikeloop import regmap, toolchain
from spikeloop.config import CoreConfig, design_hash
from spikeloop.overlay import MODULE

from . import flow
from .devices import BOARDS, TimingFailed

__all__ = [
    "tcl_file", "TCL_FILES", "PART", "BOARD_PART", "MODULE", "VLNV", "CORE_BASE", "DMA_BASE", "DMA_RANGE",
    "DMA_LENGTH_WIDTH", "FCLK_SOURCE_MHZ", "FCLK_MAX_MHZ", "VivadoMissing", "fclk_divisors", "settings", "core_range",
    "prepare", "build", "timing_failure", "vivado",
]

#: The flow's TCL: package files of spikeloop.boards, in its pynq_z2/ folder (`tcl_file`).
TCL_FILES = ("build.tcl", "block_design.tcl", "checks.tcl")
BOARD = BOARDS["pynq-z2"]
PART = BOARD.device.part
#: The PYNQ-Z2 board files' name (its PS7 preset: DDR, MIO, clocks).
BOARD_PART = "tul.com.tw:pynq-z2:part0:1.0"
#: What Vivado calls a module reference of MODULE; the driver's `bindto`.
VLNV = f"xilinx.com:module_ref:{MODULE}:1.0"
#: The core's and the DMA's base addresses in the PS's M_AXI_GP0 window (0x4000_0000..0x7FFF_FFFF).
CORE_BASE = 0x43C0_0000
DMA_BASE = 0x4040_0000
DMA_RANGE = 0x1_0000
#: Width of the DMA's transfer length register: up to 2^26 - 1 bytes per transfer.
DMA_LENGTH_WIDTH = 26
OUTPUTS = ("spikeloop.bit", "spikeloop.hwh")
#: FCLK_CLK0's source, the PS's I/O PLL in the PYNQ-Z2 preset (MHz), its two divisors and the PL clock limit.
FCLK_SOURCE_MHZ = 1000
FCLK_DIVISOR = range(1, 64)
FCLK_MAX_MHZ = 250
#: How close (MHz) FCLK_CLK0 must come to the requested clock.
FCLK_TOLERANCE_MHZ = 0.001


class VivadoMissing(RuntimeError):
    """`vivado` is not on PATH; the prepared folder is complete and can be built elsewhere."""


def tcl_file(name: str):
    """The package file of the flow's TCL script `name` (one of TCL_FILES), an importlib.resources Traversable."""
    if name not in TCL_FILES:
        raise ValueError(f"unknown TCL file {name!r}; expected one of {', '.join(TCL_FILES)}")
    return toolchain.resource("spikeloop.boards", f"pynq_z2/{name}")


def core_range(config: CoreConfig) -> int:
    """Bytes of the core's AXI-Lite address range: 2^address_bits, at least 4 KiB."""
    return max(4096, 1 << regmap.address_bits(config))


def fclk_divisors(clock_mhz) -> tuple[int, int]:
    """The two divisors of the I/O PLL that make FCLK_CLK0 = `clock_mhz` (within FCLK_TOLERANCE_MHZ),
    the first the smaller; a ValueError names a clock they cannot make and the nearest ones."""
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) or not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be a positive number of MHz, got {clock_mhz!r}")
    if clock_mhz > FCLK_MAX_MHZ:
        raise ValueError(f"FCLK_CLK0 runs at most {FCLK_MAX_MHZ} MHz, got {clock_mhz:g} MHz")
    pairs = {a * b: (a, b) for a in FCLK_DIVISOR for b in FCLK_DIVISOR if a <= b}
    made = sorted(pairs, key=lambda n: abs(FCLK_SOURCE_MHZ / n - clock_mhz))
    if abs(FCLK_SOURCE_MHZ / made[0] - clock_mhz) <= FCLK_TOLERANCE_MHZ:
        return pairs[made[0]]
    nearest = sorted(FCLK_SOURCE_MHZ / n for n in made[:2] if FCLK_SOURCE_MHZ / n <= FCLK_MAX_MHZ)
    raise ValueError(f"FCLK_CLK0 cannot be {clock_mhz:g} MHz: the PS makes it as {FCLK_SOURCE_MHZ} MHz (its I/O PLL) "
                     f"divided by two divisors of {FCLK_DIVISOR.start}-{FCLK_DIVISOR.stop - 1}; the nearest clocks: "
                     f"{' and '.join(f'{f:.6g} MHz' for f in nearest)}")


def _size(n: int) -> str:
    """Vivado's range notation: 4K, 128K, 1M ..."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def settings(config: CoreConfig, *, clock_mhz: float = BOARD.clock_mhz, jobs: int = 2) -> dict[str, object]:
    """The values build.tcl and block_design.tcl read (as `spikeloop_<name>`)."""
    fclk_divisors(clock_mhz)
    if CORE_BASE % core_range(config):
        raise ValueError(f"core base {CORE_BASE:#x} is not aligned to its range {core_range(config):#x}")
    return {
        "name": "spikeloop",
        "part": PART,
        "board_part": BOARD_PART,
        "module": MODULE,
        "vlnv": VLNV,
        "sources": [f"{MODULE}.v"],
        "bus_width": config.bus_width,
        "address_bits": regmap.address_bits(config),
        "base": f"0x{CORE_BASE:08X}",
        "range": _size(core_range(config)),
        "dma_base": f"0x{DMA_BASE:08X}",
        "dma_range": _size(DMA_RANGE),
        "dma_length_width": DMA_LENGTH_WIDTH,
        "clock_mhz": f"{clock_mhz:g}",
        "design_hash": design_hash(config).hex(),
        "jobs": jobs,
    }


def _tcl_value(value) -> str:
    if isinstance(value, list):
        return "[list " + " ".join(_tcl_value(v) for v in value) + "]"
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_.:/+\-]+", text):
        raise ValueError(f"unexpected characters in a TCL setting: {text!r}")
    return text


def settings_tcl(values: dict[str, object]) -> str:
    """settings.tcl: `set spikeloop_<name> <value>` lines."""
    lines = ["# This build's configuration, written by spikeloop.boards.vivado (make bitstream BOARD=pynq-z2).",
             "# Do not edit: change CONFIG and run make again."]
    lines += [f"set spikeloop_{name} {_tcl_value(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    """Write only when the content changes (make-style timestamps stay meaningful)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def prepare(config: CoreConfig, out, *, clock_mhz: float = BOARD.clock_mhz, jobs: int = 2) -> Path:
    """Fill `out` with everything Vivado needs; returns the folder."""
    from spikeloop.rtl.verilog import generate  # Amaranth only here

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generate(config, out)
    for name in TCL_FILES:
        _write(out / name, tcl_file(name).read_text())
    values = settings(config, clock_mhz=clock_mhz, jobs=jobs)
    _write(out / "settings.tcl", settings_tcl(values))
    _write(out / "README.txt", _README.format(
        config=" ".join(flow.config_args(config)), hash=values["design_hash"], vlnv=VLNV, base=values["base"],
        range=values["range"], clock=clock_mhz))
    meta = flow.overlay_metadata(
        config, board="pynq-z2", tools={}, part=PART, vlnv=VLNV, clock_mhz=clock_mhz,
        core_base=CORE_BASE, core_range=core_range(config), dma_base=DMA_BASE, dma_length_width=DMA_LENGTH_WIDTH,
        status="prepared: run build.tcl with Vivado",
    )
    flow.write_metadata(out / "spikeloop.json", meta)
    return out


def vivado() -> str | None:
    """Path of Vivado (`$VIVADO` or `vivado` on PATH), or None."""
    try:
        return toolchain.find("vivado").argv[0]
    except toolchain.ToolNotFound:
        return None


def read_summary(path) -> dict[str, str]:
    """reports/summary.txt (key = value lines written by build.tcl)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def timing_failure(folder) -> TimingFailed | None:
    """The error of a Vivado run in `folder` whose reports/summary.txt (written by build.tcl before its
    timing check) shows a negative worst setup or hold slack; None when there is none."""
    path = Path(folder) / "reports" / "summary.txt"
    if not path.exists():
        return None
    summary = read_summary(path)
    slack = {kind: float(summary.get(f"{kind}_ns", "nan")) for kind in ("wns", "whs")}
    if not any(value < 0 for value in slack.values()):
        return None
    return TimingFailed(
        f"timing fails at {summary.get('clock_mhz', '?')} MHz: worst setup slack {slack['wns']:g} ns, worst hold "
        f"slack {slack['whs']:g} ns, so no bitstream was written (see {path.parent / 'timing_summary.rpt'}). "
        "Choose a lower clock (--clock-mhz) or fewer lanes / a narrower chunk.")


def build(config: CoreConfig, out, *, clock_mhz: float = BOARD.clock_mhz, jobs: int = 2, log=print) -> Path:
    """Prepare `out` and run Vivado there (a build plan: nothing to do when `out` holds this build
    already); returns the path of spikeloop.bit."""
    if vivado() is None:
        out = prepare(config, out, clock_mhz=clock_mhz, jobs=jobs)
        raise VivadoMissing(
            f"vivado is not on PATH. Everything Vivado needs is in {out}/ (Verilog, {', '.join(TCL_FILES)}, "
            f"settings.tcl). Copy that folder to a machine with Vivado (2020.2 or later, PYNQ-Z2 board files) and run\n"
            f"    cd {out.name} && vivado -mode batch -notrace -source build.tcl\n"
            f"then copy spikeloop.bit, spikeloop.hwh and spikeloop.json back (or to the board)."
        )
    tool = toolchain.find("vivado")
    inputs = {**flow.design_inputs(config), "board": "pynq-z2", "vivado": tool.version(),
              "tcl": {name: tcl_file(name) for name in TCL_FILES},
              "settings": settings(config, clock_mhz=clock_mhz, jobs=jobs)}

    def run_vivado(folder: Path) -> None:
        prepare(config, folder, clock_mhz=clock_mhz, jobs=jobs)
        for name in (*OUTPUTS, "reports/summary.txt"):  # an earlier build's: never taken for this one's
            (folder / name).unlink(missing_ok=True)
        log(f"running Vivado in {folder} (tens of minutes) ...")
        try:
            seconds = toolchain.run([*tool.argv, "-mode", "batch", "-notrace", "-source", "build.tcl", "-log",
                                     "reports/vivado.log", "-journal", "reports/vivado.jou"],
                                    log=folder / "reports" / "vivado.out", what="Vivado", cwd=folder,
                                    timeout=12 * 3600)
        except toolchain.ToolFailed as e:
            error = timing_failure(folder)
            raise (error or e) from (e if error else None)
        missing = [name for name in OUTPUTS if not (folder / name).exists()]
        if missing:
            raise RuntimeError(f"Vivado finished but {', '.join(missing)} is missing in {folder}")
        summary = read_summary(folder / "reports" / "summary.txt")
        meta = flow.overlay_metadata(
            config, board="pynq-z2", tools={"vivado": summary.get("vivado", "")}, part=PART, vlnv=VLNV,
            clock_mhz=clock_mhz, core_base=CORE_BASE, core_range=core_range(config), dma_base=DMA_BASE,
            dma_length_width=DMA_LENGTH_WIDTH, status="built", build_seconds=round(seconds),
            timing={f"{kind}_ns": float(summary.get(f"{kind}_ns", "nan")) for kind in ("wns", "whs")},
            utilization={k: summary.get(k) for k in ("lut", "ff", "bram", "dsp")},
            bitstream={name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in OUTPUTS},
        )
        flow.write_metadata(folder / "spikeloop.json", meta)

    plan = toolchain.BuildPlan("bitstream", "pynq-z2", inputs, run_vivado, products=OUTPUTS, folder=Path(out),
                               lock_timeout=12 * 3600)
    return plan.execute() / "spikeloop.bit"


_README = """\
spikeloop overlay for the PYNQ-Z2, ready for Vivado
=====================================================

configuration   {config}
design hash     {hash}
core VLNV       {vlnv} at {base}, range {range}
clock           {clock:g} MHz (FCLK_CLK0)

On a machine with Vivado (2020.2 or later) and the PYNQ-Z2 board files, in this folder:

    vivado -mode batch -notrace -source build.tcl

It writes spikeloop.bit and spikeloop.hwh (load them with pynq.Overlay("spikeloop.bit")),
reports/utilization.rpt, reports/timing_summary.rpt and reports/summary.txt, and stops with an
error if timing is not met. Keep spikeloop.json with the bitstream: the driver compares its
design hash with the core's HASH0..7 registers.
"""
