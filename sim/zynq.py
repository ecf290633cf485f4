"""A PYNQ board made of a simulated board: a `pynq.Device` whose MMIO, memory and AXI DMA are
emulated on top of any `spikeloop.sim.interface.Board` (the Verilated `SimBoard`, or the
`GoldenBoard`), so the `pynq` transport, pynq's own `MMIO`, `allocate`, `Overlay` and
`pynq.lib.dma.DMA` code run unchanged off-board (in CI, notebooks).

    device = SimDevice(SimBoard(config))            # pynq's Device API over the simulated board
    device = SimDevice(GoldenBoard(config))         # ... or over the golden register model
    core = open_core("pynq", device=device, bitfile=bit, network=net)   # bit: write_overlay_files

What is emulated:
- MMIO: the device is "memory mapped" like the board's (`mmap` returns a numpy array), but
  every element access of that array is a transaction: an AXI-Lite read/write of the simulated
  core, or a register access of the DMA model;
- memory: `allocate` gives `PynqBuffer`s at fake physical addresses, not coherent: the DMA
  model reads and writes a device-side copy, so a missing `flush()`/`invalidate()` shows;
- the AXI DMA (PG021, simple mode): DMACR run/stop and soft reset, DMASR (Halted, Idle,
  DMAIntErr, DMADecErr, IOC_Irq), addresses and LENGTH. A write of MM2S LENGTH queues the
  buffer's words for the core's input stream with TLAST on the last; a write of S2MM LENGTH
  arms a receive (a send alone, without a receive, is a transfer too: a parameter load frame);
  a receive ends at TLAST (LENGTH then reads the bytes received) or with
  DMAIntErr when the buffer fills first. Time passes on every DMA register access
  (`cycles_per_access` clock cycles), as it does on a board while the CPU polls.

`SimDevice` is not registered with pynq's device list; pass it as `device=`, or make it
pynq's active device for a while with `with device.activate(): ...`.

`SimPL` (bus, memory and DMA model) is shared with `spikeloop.sim.pynq_remote`, which serves the
same board to pynq's `RemoteDevice` over gRPC; `overlay_ips` is the overlay's IP map, which
`SimDevice.metadata()` returns and `overlay_hwh` writes as the .hwh file pynq parses.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from xml.sax.saxutils import quoteattr

import numpy as np
import pynq
from pynq.buffer import PynqBuffer

from spikeloop import regmap
from spikeloop.config import CoreConfig, design_hash
from spikeloop.overlay import DMA, DMA_VLNV, VLNV

from .interface import Board, Rx

__all__ = ["SimDevice", "SimPL", "overlay_ips", "overlay_hwh", "write_overlay_files",
           "CORE_BASE", "DMA_BASE"]

CORE_BASE = 0x43C0_0000
DMA_BASE = 0x4040_0000
DMA_SPAN = 0x1_0000
_PAGE = 4096


class _RegisterArray(np.ndarray):
    """What `mmap` returns: a uint32 array whose element reads and writes are bus transactions."""

    def __new__(cls, device, base: int, words: int):
        obj = np.zeros(0, np.uint32).view(cls)
        obj._device, obj._base, obj._words = device, base, words
        return obj

    def __array_finalize__(self, obj):
        self._device = getattr(obj, "_device", None)
        self._base = getattr(obj, "_base", 0)
        self._words = getattr(obj, "_words", 0)

    def __len__(self):
        return self._words

    def _index(self, key) -> np.ndarray | int:
        if isinstance(key, (int, np.integer)):
            key = int(key)
            if not -self._words <= key < self._words:
                raise IndexError(f"register index {key} outside the {self._words}-word mapping")
            return key % self._words
        if isinstance(key, slice):
            return np.arange(*key.indices(self._words))
        index = np.asarray(key, dtype=np.int64)
        if index.size and (index.min() < -self._words or index.max() >= self._words):
            raise IndexError(f"register index outside the {self._words}-word mapping")
        return index % self._words

    def __getitem__(self, key):
        index = self._index(key)
        if isinstance(index, int):
            return np.uint32(self._device.bus_read(self._base + 4 * index))
        return np.array([self._device.bus_read(self._base + 4 * int(i)) for i in index.reshape(-1)],
                        np.uint32).reshape(index.shape)

    def __setitem__(self, key, value):
        index = self._index(key)
        if isinstance(index, int):
            self._device.bus_write(self._base + 4 * index, int(value) & 0xFFFFFFFF)
            return
        values = np.broadcast_to(np.asarray(value, dtype=np.int64) & 0xFFFFFFFF, index.shape).reshape(-1)
        self._device.bus_write_many(self._base + 4 * index.reshape(-1), values)

    def __repr__(self):
        return f"<registers at {self._base:#x}, {self._words} words>"


class _Memory:
    """DDR as the DMA sees it: buffers at fake physical addresses, each with a CPU-side and a device-side copy."""

    def __init__(self):
        self.next_address = 0x1000_0000
        self.next_bo = 1
        self.buffers: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # bo -> (address, host, device)

    def reserve(self, nbytes: int) -> tuple[int, int, np.ndarray]:
        """A new buffer of at least `nbytes` (whole pages): (bo, physical address, CPU-side bytes)."""
        if int(nbytes) < 0:
            raise ValueError(f"a buffer of {nbytes} bytes: the size must be >= 0")
        size = max(_PAGE, -(-int(nbytes) // _PAGE) * _PAGE)
        host = np.zeros(size, np.uint8)
        bo, self.next_bo = self.next_bo, self.next_bo + 1
        address = self.next_address
        self.next_address += size + _PAGE  # a guard page between buffers
        self.buffers[bo] = (address, host, np.zeros(size, np.uint8))
        return bo, address, host

    def allocate(self, shape, dtype, device=None, **kwargs):
        """A `PynqBuffer` on `device` (what pynq's `allocate` returns on a board)."""
        dtype = np.dtype(dtype)
        bo, address, host = self.reserve(int(np.prod(shape)) * dtype.itemsize)
        return PynqBuffer(shape=shape, dtype=dtype, buffer=host, device_address=address, device=device,
                          bo=bo, coherent=False)

    def free(self, bo: int) -> None:
        self.buffers.pop(bo, None)

    def flush(self, bo: int, offset: int, size: int) -> None:
        """CPU cache -> DDR: the DMA sees the CPU's writes."""
        _, host, dev = self.buffers[bo]
        dev[offset : offset + size] = host[offset : offset + size]

    def invalidate(self, bo: int, offset: int, size: int) -> None:
        """DDR -> CPU: the CPU sees what the DMA wrote."""
        _, host, dev = self.buffers[bo]
        host[offset : offset + size] = dev[offset : offset + size]

    def find(self, address: int, nbytes: int):
        for _, (base, _, dev) in self.buffers.items():
            if base <= address and address + nbytes <= base + dev.size:
                return dev, address - base
        return None, 0


class _DmaModel:
    """The AXI DMA in simple mode, moving words between `_Memory` and the simulated core's streams."""

    def __init__(self, pl, width_bytes: int, cycles_per_access: int):
        self.pl = pl
        self.board = pl.board
        self.width = width_bytes
        self.cycles = cycles_per_access
        self.regs = {}
        self.reset()

    def reset(self):
        self.board.discard()
        self.board.disarm()
        for ch in (DMA.MM2S, DMA.S2MM):
            self.regs[ch] = {"cr": 0, "sr": DMA.HALTED, "addr": 0, "addr_msb": 0, "length": 0, "active": False}

    def _channel(self, offset: int):
        ch = DMA.S2MM if offset >= DMA.S2MM else DMA.MM2S
        return ch, offset - ch

    def read(self, offset: int) -> int:
        self.board.run(self.cycles)
        self.update()
        ch, reg = self._channel(offset)
        r = self.regs[ch]
        return {DMA.DMACR: r["cr"], DMA.DMASR: r["sr"], DMA.ADDR: r["addr"], DMA.ADDR_MSB: r["addr_msb"],
                DMA.LENGTH: r["length"]}.get(reg, 0)

    def write(self, offset: int, value: int) -> None:
        self.board.run(self.cycles)
        self.update()
        ch, reg = self._channel(offset)
        r = self.regs[ch]
        if reg == DMA.DMACR:
            if value & DMA.RESET:  # soft reset: both channels, in-flight transfers dropped
                self.reset()
                return
            r["cr"] = value
            if value & DMA.RS:
                r["sr"] &= ~DMA.HALTED
            else:
                r["sr"] |= DMA.HALTED
                r["sr"] &= ~DMA.IDLE
                self._stop(ch)
        elif reg == DMA.DMASR:
            r["sr"] &= ~(value & (DMA.IOC_IRQ | DMA.ERR_IRQ))
        elif reg == DMA.ADDR:
            r["addr"] = value
        elif reg == DMA.ADDR_MSB:
            r["addr_msb"] = value
        elif reg == DMA.LENGTH:
            r["length"] = value
            if not r["sr"] & DMA.HALTED:
                self._start(ch)

    def _fail(self, ch: int, bit: int):
        r = self.regs[ch]
        r["sr"] = (r["sr"] | bit | DMA.ERR_IRQ | DMA.HALTED) & ~DMA.IDLE
        r["cr"] &= ~DMA.RS
        r["active"] = False
        self._stop(ch)

    def _stop(self, ch: int):
        if ch == DMA.MM2S:
            self.board.discard()
        else:
            self.board.disarm()

    def _start(self, ch: int):
        r = self.regs[ch]
        nbytes = r["length"]
        address = r["addr_msb"] << 32 | r["addr"]
        if nbytes == 0 or nbytes % self.width:
            self._fail(ch, 1 << 4)  # DMAIntErr
            return
        memory, offset = self.pl.memory.find(address, nbytes)
        if memory is None:
            self._fail(ch, 1 << 6)  # DMADecErr
            return
        r["sr"] &= ~DMA.IDLE
        r["active"] = True
        if ch == DMA.MM2S:
            words = memory[offset : offset + nbytes].view("<u4" if self.width == 4 else "<u8")
            self.board.send(words.astype(np.uint64), last=True)
        else:
            self.board.arm(nbytes // self.width)

    def update(self):
        mm2s, s2mm = self.regs[DMA.MM2S], self.regs[DMA.S2MM]
        if mm2s["active"] and self.board.pending == 0:
            mm2s["active"] = False
            mm2s["sr"] |= DMA.IDLE | DMA.IOC_IRQ
        if s2mm["active"] and not self.board.rx_state & Rx.ARMED:
            words = self.board.take()
            memory, offset = self.pl.memory.find(s2mm["addr_msb"] << 32 | s2mm["addr"], s2mm["length"])
            data = words.astype("<u4" if self.width == 4 else "<u8").view(np.uint8)
            memory[offset : offset + data.size] = data
            if self.board.rx_state & Rx.OVERFLOW:
                self._fail(DMA.S2MM, 1 << 4)  # DMAIntErr: the packet is longer than the buffer
            else:
                s2mm["active"] = False
                s2mm["length"] = data.size
                s2mm["sr"] |= DMA.IDLE | DMA.IOC_IRQ


def overlay_ips(config: CoreConfig) -> dict:
    """The overlay's IP map (boards/pynq_z2/block_design.tcl) as pynq's `ip_dict` holds it: the core
    ("core") and its AXI DMA ("dma", simple mode, 64-bit memory side) on the GP0 bus; no interrupts."""
    width = str(config.bus_width)
    core = {"type": VLNV, "phys_addr": CORE_BASE, "addr_range": core_span(config), "fullpath": "core",
            "parameters": {}, "interrupts": {}, "gpio": {}, "state": None, "mem_id": "s_axi"}
    dma = {"type": DMA_VLNV, "phys_addr": DMA_BASE, "addr_range": DMA_SPAN, "fullpath": "dma",
           "parameters": {"c_include_sg": "0", "c_sg_length_width": "26", "c_micro_dma": "0",
                          "c_include_mm2s": "1", "c_include_s2mm": "1",
                          "c_include_mm2s_dre": "0", "c_include_s2mm_dre": "0",
                          "c_m_axi_mm2s_data_width": "64", "c_m_axi_s2mm_data_width": "64",
                          "c_m_axis_mm2s_tdata_width": width, "c_s_axis_s2mm_tdata_width": width},
           "interrupts": {}, "gpio": {}, "state": None, "mem_id": "S_AXI_LITE"}
    return {"core": core, "dma": dma}


def core_span(config: CoreConfig) -> int:
    """Bytes of the core's AXI-Lite window (a power of two, at least a page)."""
    return max(_PAGE, 1 << regmap.address_bits(config))


#: The Zynq PS of the PYNQ-Z2 overlay: FCLK0 at 100 MHz from the IO PLL (1,000 MHz / 5 / 2). Every FCLK is
#: declared disabled: with an enabled one, pynq 4.0.0 (pynqmetadata 0.2.0) fails in `Overlay.download`, since
#: its Zynq-7000 model finds no frequency (`clock_dict[0]["frequency"]` is None) and `set_pl_clk(0,
#: clk_mhz=None)` divides by None. For a disabled clock pynq sets the default, 100 MHz: the same divisors.
_PS_PARAMETERS = {"PCW_FPGA_FCLK0_ENABLE": "0", "PCW_FPGA_FCLK1_ENABLE": "0", "PCW_FPGA_FCLK2_ENABLE": "0",
                  "PCW_FPGA_FCLK3_ENABLE": "0", "PCW_FPGA0_PERIPHERAL_FREQMHZ": "100",
                  "PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ": "100.000000",
                  **{f"PCW_FCLK{i}_PERIPHERAL_CLKSRC": "IO PLL" for i in range(4)},
                  **{f"PCW_FCLK{i}_PERIPHERAL_DIVISOR{j}": str(d) for i in range(4) for j, d in enumerate((5, 2))}}


def overlay_hwh(config: CoreConfig, *, name: str = "spikeloop") -> str:
    """The hardware description (.hwh) of the overlay, as far as pynq's parser (pynqmetadata) reads one:
    the Zynq PS, whose GP0 master maps the core and the DMA at the addresses of `overlay_ips`, the
    core's AXI-Lite and stream interfaces, the DMA's parameters and its masters on the PS's HP0 port."""
    ips = overlay_ips(config)
    mm, axis = "xilinx.com:interface:aximm:1.0", "xilinx.com:interface:axis:1.0"

    def params(values: dict) -> str:
        return "".join(f"<PARAMETER NAME={quoteattr(k)} VALUE={quoteattr(str(v))}/>" for k, v in values.items())

    def memrange(master: str, instance: str, slave: str, base: int, span: int, memtype: str) -> str:
        return (f'<MEMRANGE ADDRESSBLOCK="{"reg0" if memtype == "REGISTER" else "HP0_DDR_LOWOCM"}" '
                f'BASENAME="C_BASEADDR" BASEVALUE="{base:#010X}" HIGHNAME="C_HIGHADDR" '
                f'HIGHVALUE="{base + span - 1:#010X}" INSTANCE="{instance}" IS_DATA="TRUE" '
                f'IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="{master}" MEMTYPE="{memtype}" '
                f'SLAVEBUSINTERFACE="{slave}"/>').replace("0X", "0x")

    def buses(*items) -> str:
        return "".join(f'<BUSINTERFACE BUSNAME="{bus}" NAME="{n}" TYPE="{t}" VLNV="{v}"/>' for n, t, v, bus in items)

    def module(instance: str, vlnv: str, modtype: str, parameters: dict, memory: str, interfaces: str,
               pl: bool = True) -> str:
        return (f'<MODULE FULLNAME="/{instance}" INSTANCE="{instance}" IS_PL="{"TRUE" if pl else "FALSE"}" '
                f'MODCLASS="PERIPHERAL" MODTYPE="{modtype}" VLNV="{vlnv}"><PARAMETERS>{params(parameters)}'
                f'</PARAMETERS><MEMORYMAP>{memory}</MEMORYMAP><PORTS/><BUSINTERFACES>{interfaces}</BUSINTERFACES>'
                "</MODULE>")

    core, dma = ips["core"], ips["dma"]
    ps = module("ps7", "xilinx.com:ip:processing_system7:5.5", "processing_system7", _PS_PARAMETERS,
                memrange("M_AXI_GP0", "core", core["mem_id"], core["phys_addr"], core["addr_range"], "REGISTER")
                + memrange("M_AXI_GP0", "dma", dma["mem_id"], dma["phys_addr"], dma["addr_range"], "REGISTER"),
                buses(("M_AXI_GP0", "MASTER", mm, "ps7_M_AXI_GP0"), ("S_AXI_HP0", "SLAVE", mm, "smc_M00_AXI")),
                pl=False)
    spikeloop = module("core", VLNV, VLNV.split(":")[2], {"BUS_WIDTH": config.bus_width}, "",
                       buses(("s_axi", "SLAVE", mm, "ps7_M_AXI_GP0"), ("s_axis", "SLAVE", axis, "dma_M_AXIS_MM2S"),
                             ("m_axis", "MASTER", axis, "core_m_axis")))
    ddr = "".join(memrange(m, "ps7", "S_AXI_HP0", 0, 0x2000_0000, "MEMORY") for m in ("M_AXI_MM2S", "M_AXI_S2MM"))
    axi_dma = module("dma", DMA_VLNV, "axi_dma", dma["parameters"], ddr,
                     buses(("S_AXI_LITE", "SLAVE", mm, "ps7_M_AXI_GP0"), ("M_AXI_MM2S", "MASTER", mm, "dma_MM2S"),
                           ("M_AXI_S2MM", "MASTER", mm, "dma_S2MM"), ("M_AXIS_MM2S", "MASTER", axis, "dma_M_AXIS_MM2S"),
                           ("S_AXIS_S2MM", "SLAVE", axis, "core_m_axis")))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
            '<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="simulated board" VIVADOVERSION="2023.2">\n'
            f'<SYSTEMINFO ARCH="zynq" BOARD="tul.com.tw:pynq-z2:part0:1.0" DEVICE="7z020" NAME={quoteattr(name)} '
            'PACKAGE="clg400" SPEEDGRADE="-1"/>\n<EXTERNALPORTS/>\n<EXTERNALINTERFACES/>\n'
            f"<MODULES>\n{ps}\n{spikeloop}\n{axi_dma}\n</MODULES>\n</EDKSYSTEM>\n")


#: The first fields of a Xilinx .bit file: a 9-byte field, then 'a' (design), 'b' (part), 'c' (date), 'd' (time).
_BIT_FIELDS = (("a", "spikeloop;UserID=0XFFFFFFFF;Version=2023.2"), ("b", "7z020clg400"), ("c", "2025/11/22"),
               ("d", "12:00:00"))


def bit_file(payload: bytes) -> bytes:
    """A .bit file around `payload` (a multiple of 4 bytes): the header pynq's `parse_bit_header` reads."""
    if len(payload) % 4:
        raise ValueError(f"a bitstream payload of {len(payload)} bytes: it must be a multiple of 4")
    out = bytearray(bytes.fromhex("0009 0ff0 0ff0 0ff0 0ff0 00 0001".replace(" ", "")))
    for key, text in _BIT_FIELDS:
        data = text.encode() + b"\0"
        out += key.encode() + len(data).to_bytes(2, "big") + data
    return bytes(out + b"e" + len(payload).to_bytes(4, "big") + payload)


def write_overlay_files(folder, config: CoreConfig, *, seed: int = 0, name: str = "spikeloop") -> Path:
    """Stand-ins for Vivado's outputs of the overlay: `<name>.bit` (a .bit header, the design hash and
    `seed`ed random bytes, never loaded into an FPGA) and `<name>.hwh` (`overlay_hwh`). Returns the
    .bit's path. The design hash makes the .bit differ between designs, as a real one does: pynq
    reuses the metadata it cached for a .bit of the same SHA-1 without reading the .hwh again."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = design_hash(config) + np.random.default_rng(seed).integers(0, 256, 4064, dtype=np.uint8).tobytes()
    bit = folder / f"{name}.bit"
    bit.write_bytes(bit_file(payload))
    (folder / f"{name}.hwh").write_text(overlay_hwh(config, name=name))
    return bit


class SimPL:
    """A simulated board (`board`, any `Board`) as the Zynq's processor sees it: the core and the AXI DMA
    model on the GP0 bus, and DDR buffers (`_Memory`) the DMA reads and writes. `cycles_per_access`:
    clock cycles that pass on each DMA register access."""

    def __init__(self, board: Board, *, cycles_per_access: int = 64):
        if not isinstance(board, Board):
            raise TypeError(f"board must be a Board (a SimBoard or a GoldenBoard), not {type(board).__name__}")
        if int(cycles_per_access) < 1:
            raise ValueError(f"cycles_per_access={cycles_per_access}: must be >= 1")
        self.board = board
        self.config: CoreConfig = board.config
        self.memory = _Memory()
        self.dma_model = _DmaModel(self, board.config.bus_width // 8, int(cycles_per_access))
        self.core_span = core_span(board.config)

    def download(self) -> None:
        """What programming the bitstream does here: reset the core and the DMA."""
        self.board.reset()
        self.dma_model.reset()

    def _target(self, address: int):
        if CORE_BASE <= address < CORE_BASE + self.core_span:
            return "core", address - CORE_BASE
        if DMA_BASE <= address < DMA_BASE + DMA_SPAN:
            return "dma", address - DMA_BASE
        raise MemoryError(f"no slave at {address:#x} (a bus error on the board)")

    def maps(self, address: int, length: int) -> bool:
        """True when [address, address + length) lies in one slave's window."""
        for base, span in ((CORE_BASE, self.core_span), (DMA_BASE, DMA_SPAN)):
            if base <= address and address + length <= base + span:
                return True
        return False

    def bus_read(self, address: int) -> int:
        where, offset = self._target(address)
        if where == "core":
            value = self.board.read(offset)
            self.dma_model.update()
            return value
        return self.dma_model.read(offset)

    def bus_write(self, address: int, value: int) -> None:
        where, offset = self._target(address)
        if where == "core":
            self.board.write(offset, value)
            self.dma_model.update()
        else:
            self.dma_model.write(offset, value)

    def bus_write_many(self, addresses, values) -> None:
        addresses = np.asarray(addresses, dtype=np.int64)
        if addresses.size and CORE_BASE <= addresses.min() and addresses.max() < CORE_BASE + self.core_span:
            self.board.write_many(addresses - CORE_BASE, values)  # one call for a bulk load
            self.dma_model.update()
            return
        for a, v in zip(addresses, values):
            self.bus_write(int(a), int(v))


class SimDevice(pynq.Device):
    """A pynq `Device` whose programmable logic is the simulated board `board` (any `Board`).

    `cycles_per_access`: clock cycles that pass on each DMA register access.
    """

    def __init__(self, board: Board, *, cycles_per_access: int = 64, tag: str = "spikeloop_sim"):
        super().__init__(tag)
        self.name = tag
        self.pl = SimPL(board, cycles_per_access=cycles_per_access)
        self.board, self.config, self.memory = board, self.pl.config, self.pl.memory
        self.dma_model, self.core_span = self.pl.dma_model, self.pl.core_span
        self.bus_read, self.bus_write, self.bus_write_many = self.pl.bus_read, self.pl.bus_write, self.pl.bus_write_many
        self.capabilities = {"MEMORY_MAPPED": True, "REGISTER_RW": False, "CALLABLE": False}
        self.timestamp = ""
        self.bitfile_name = ""

    # -- what pynq's Device API needs
    @property
    def default_memory(self):
        return self

    def get_memory(self, description):
        return self

    def allocate(self, shape, dtype, **kwargs):
        return self.memory.allocate(shape, dtype, device=self)

    def mmap(self, base_addr: int, length: int):
        return _RegisterArray(self, int(base_addr), int(length) // 4)

    def flush(self, bo, offset, ptr, size):
        self.memory.flush(bo, offset, size)

    def invalidate(self, bo, offset, ptr, size):
        self.memory.invalidate(bo, offset, size)

    def get_bitfile_metadata(self, bitfile_name: str):
        return self.metadata()

    def download(self, bitstream, parser=None):
        self.pl.download()
        self.post_download(bitstream, parser or self.metadata(), self.name)

    def metadata(self):
        """What a .hwh parser gives for the spikeloop overlay (`overlay_ips`)."""
        return SimpleNamespace(ip_dict=overlay_ips(self.config), gpio_dict={},
                               interrupt_pins={}, interrupt_controllers={}, hierarchy_dict={}, mem_dict={},
                               clock_dict={}, systemgraph=None)

    @contextmanager
    def activate(self):
        """Make this pynq's active device (what `pynq.allocate`, `Overlay` use by default) for a while."""
        had = "_active_device" in vars(pynq.Device)
        old = vars(pynq.Device).get("_active_device")
        pynq.Device.active_device = self
        try:
            yield self
        finally:
            if had:
                pynq.Device.active_device = old
            else:
                del pynq.Device._active_device
