"""What a Zynq overlay holds besides the core's registers: the core's module name and IP VLNV, and
the AXI DMA (PG021, simple mode) with its register table.

One table for the `pynq` transport (spikeloop.host.pynq_transport), the simulated Zynq
(spikeloop.sim.zynq), the gateware's Verilog (spikeloop.rtl.verilog) and the Vivado build
(spikeloop.boards.vivado). numpy-free; importable on the board.
"""

from __future__ import annotations

__all__ = ["MODULE", "VLNV", "DMA_VLNV", "DMA", "decode_dmasr"]

#: Name of the core's top module in the generated Verilog, the block design and the overlay.
MODULE = "spikeloop_core"
#: What Vivado calls RTL added to a block design as a module reference.
VLNV = f"xilinx.com:module_ref:{MODULE}:1.0"
#: The AXI DMA the overlay uses (simple mode).
DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"


class DMA:
    """AXI DMA (PG021) register offsets and bits, for both channels (MM2S at 0x00, S2MM at 0x30)."""

    MM2S, S2MM = 0x00, 0x30
    # per channel, relative to its base
    DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
    # DMACR
    RS, RESET = 1 << 0, 1 << 2
    # DMASR
    HALTED, IDLE = 1 << 0, 1 << 1
    SR_BITS = {
        0: "Halted", 1: "Idle", 3: "SGIncld", 4: "DMAIntErr", 5: "DMASlvErr", 6: "DMADecErr",
        8: "SGIntErr", 9: "SGSlvErr", 10: "SGDecErr", 12: "IOC_Irq", 13: "Dly_Irq", 14: "Err_Irq",
    }
    ERRORS = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 10)
    IOC_IRQ, ERR_IRQ = 1 << 12, 1 << 14
    ERROR_TEXT = {
        4: "internal error (a zero length, or a packet longer than the receive buffer)",
        5: "slave error (the memory map interface refused an access)",
        6: "decode error (invalid address)",
    }


def decode_dmasr(word: int) -> str:
    """DMASR bits by name, e.g. 'Idle|IOC_Irq'."""
    names = [name for bit, name in DMA.SR_BITS.items() if word >> bit & 1]
    return "|".join(names) if names else "running, not idle"
