"""The boards spikeloop builds for, declared as data: part, capacity, clock, toolchain.

A board is what a user names on the command line (`--board pynq-z2`, `make bitstream BOARD=ulx3s`);
its `Device` says how much of each resource the FPGA has, so an estimate can be held against it.
Capacities are from the vendors' data sheets:

- PYNQ-Z2: Zynq-7020 `xc7z020clg400-1` (DS190): 53,200 LUTs, 106,400 flip-flops, 140 block RAMs
  of 36 Kb (each splits into two of 18 Kb), 220 DSP48E1 slices.
- ULX3S 85F: ECP5 `LFE5U-85F-6BG381C` (FPGA-DS-02012): 83,640 LUT4s and as many flip-flops,
  208 sysMEM blocks of 18 Kb (DP16KD), 156 18x18 multipliers (MULT18X18D).
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeloop.config import DEFAULT_CHUNK, DEFAULT_LANES, DEFAULT_SIZES

__all__ = ["Device", "Board", "BOARDS", "TimingFailed", "board"]


@dataclass(frozen=True)
class Device:
    """An FPGA's capacity. `bram` counts the family's natural block: RAMB36 (xc7) or DP16KD (ECP5)."""

    family: str
    part: str
    lut: int
    ff: int
    bram: int
    dsp: int
    bram_name: str
    dsp_name: str

    def capacity(self) -> dict[str, int]:
        """Resource -> amount available, in the order reports print them."""
        return {"lut": self.lut, "ff": self.ff, "bram": self.bram, "dsp": self.dsp}


@dataclass(frozen=True)
class Board:
    """A board: its device, the clock the core runs at, and how its bitstream is built.

    `clock_mhz`: the core clock a build targets and checks timing against (pynq-z2: the PS's
    FCLK_CLK0; ulx3s: the ECP5 PLL's output from the 25 MHz oscillator); `--clock-mhz` chooses another.

    `flow`: `"vivado"` (a Zynq: PS + AXI DMA block design, Vivado only) or `"yowasp"` (an open
    flow: Yosys, nextpnr and the packer from PyPI). `default_sizes`, `default_lanes`,
    `default_chunk`: the configuration `make bitstream BOARD=...` builds when none is given.
    """

    name: str
    device: Device
    clock_mhz: float
    flow: str
    default_sizes: tuple[int, ...]
    default_lanes: int
    default_chunk: int


XC7Z020 = Device(family="xc7", part="xc7z020clg400-1", lut=53_200, ff=106_400, bram=140, dsp=220,
                 bram_name="RAMB36 (36 Kb)", dsp_name="DSP48E1")
ECP5_85F = Device(family="ecp5", part="LFE5U-85F-6BG381C", lut=83_640, ff=83_640, bram=208, dsp=156,
                  bram_name="DP16KD (18 Kb)", dsp_name="MULT18X18D")

BOARDS: dict[str, Board] = {
    "pynq-z2": Board("pynq-z2", XC7Z020, clock_mhz=100.0, flow="vivado",
                     default_sizes=DEFAULT_SIZES, default_lanes=DEFAULT_LANES, default_chunk=DEFAULT_CHUNK),
    # A small network that places and routes in about a minute from PyPI tools (docs/boards.md).
    "ulx3s": Board("ulx3s", ECP5_85F, clock_mhz=100.0, flow="yowasp",
                   default_sizes=(64, 32, 10), default_lanes=4, default_chunk=16),
}


class TimingFailed(RuntimeError):
    """A build's timing report says the design misses its clock: it gives no bitstream."""


def board(name: str) -> Board:
    """The board called `name`; a ValueError lists the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose from {', '.join(BOARDS)}") from None
