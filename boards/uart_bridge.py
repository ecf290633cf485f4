"""Gateware side of the USB-UART host link: framed register accesses and stream words over a UART.

A board without a processor (the ULX3S) reaches the core through its USB-UART. `UARTBridge`
turns byte frames into the same AXI-Lite accesses and AXI-Stream words the PYNQ's MMIO and DMA
produce, so the driver above its transport is unchanged. 8N1, `divisor` clocks per bit.
The protocol (frames, flow-control rule) and its one table, `FRAMES`, live in
`spikeloop.uartlink`, shared with the host's `serial` transport; they are re-exported here.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.uartlink import FRAMES, frame_read, frame_stream, frame_write, parse_replies

__all__ = ["FRAMES", "UARTRx", "UARTTx", "UARTBridge", "frame_write", "frame_read", "frame_stream", "parse_replies"]


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer >= 4 (clocks per bit), got {divisor!r}")


class UARTRx(wiring.Component):
    """8N1 receiver: `rx` pin in, one byte per frame on `o_stream` (a byte arriving while the
    previous one is still unread sets `overrun` and is dropped)."""

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "o_stream": Out(stream.Signature(8)), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx_sync = Signal(2, init=0b11)
        m.d.sync += rx_sync.eq(Cat(self.rx, rx_sync[0]))
        rx = rx_sync[1]
        timer = Signal(range(2 * d))
        bits = Signal(range(10))
        shift = Signal(8)
        valid = Signal()
        with m.If(self.o_stream.ready):
            m.d.sync += valid.eq(0)
        m.d.comb += [self.o_stream.valid.eq(valid), self.o_stream.payload.eq(shift)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [timer.eq(d + d // 2 - 1), bits.eq(0)]  # to the middle of data bit 0
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bits.eq(bits + 1), timer.eq(d - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):  # a valid stop bit
                        with m.If(valid & ~self.o_stream.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += valid.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: bytes from `i_stream` out of the `tx` pin.

    Shallow for a fast clock: `ready` is a register (idle), and the end of each bit is a register
    (`bit_end`, set one clock ahead from `timer == 1`), so no counter compare sits in front of a
    register's enable.
    """

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"i_stream": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bit_end = Signal()  # timer == 0: the current bit's last clock
        shift = Signal(10, init=0x3FF)
        left = Signal(range(11))
        idle = Signal(init=1)  # left == 0
        m.d.comb += [self.tx.eq(shift[0]), self.i_stream.ready.eq(idle)]
        with m.If(idle):
            with m.If(self.i_stream.valid):
                m.d.sync += [shift.eq(Cat(Const(0, 1), self.i_stream.payload, Const(1, 1))), left.eq(10),
                             timer.eq(d - 1), bit_end.eq(0), idle.eq(0)]
        with m.Elif(bit_end):
            m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), left.eq(left - 1), timer.eq(d - 1), bit_end.eq(0),
                         idle.eq(left == 1)]
        with m.Else():
            m.d.sync += [timer.eq(timer - 1), bit_end.eq(timer == 1)]
        return m


def _flipped_axi(config: CoreConfig) -> dict:
    from spikeloop.rtl.top import axi_members

    return {name: (Out(m.shape) if m.flow == In else In(m.shape)) for name, m in axi_members(config).items()}


class UARTBridge(wiring.Component):
    """UART frames <-> the core's AXI-Lite and AXI-Stream ports (see the module docstring).

    Parameters (keyword-only): `config` (the core's CoreConfig), `divisor` (clocks per UART bit).
    Members: `rx`, `tx` (pins), `overrun` (a received byte was lost), and the core's AXI ports
    with flipped directions, to be joined by name to a `spikeloop.rtl.Core`.
    """

    def __init__(self, *, config: CoreConfig, divisor: int):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
        _check_divisor(divisor)
        self._config, self._divisor = config, divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "overrun": Out(1), **_flipped_axi(config)})

    def elaborate(self, platform):
        m = Module()
        W = self._config.bus_width
        WB = W // 8
        A = regmap.address_bits(self._config)
        m.submodules.rx = rx = UARTRx(divisor=self._divisor)
        m.submodules.tx = tx = UARTTx(divisor=self._divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.overrun.eq(rx.overrun)]

        # ---- receive a command and its arguments
        cmd = Signal(8)
        args = Signal(8 * max(8, 1 + WB))
        need = Signal(range(max(8, 1 + WB) + 1))
        got = Signal.like(need)
        addr, wdata = args[:32], args[32:64]
        s_flags, s_word = args[:8], args[8 : 8 + W]

        # ---- transmit: a frame of up to 2 + WB bytes, LSB byte first; `tx_busy` (tx_len != 0) is a register
        tx_frame = Signal(8 * (2 + WB))
        tx_len = Signal(range(3 + WB))
        tx_busy = Signal()
        m.d.comb += [tx.i_stream.valid.eq(tx_busy), tx.i_stream.payload.eq(tx_frame[:8])]
        with m.If(tx.i_stream.valid & tx.i_stream.ready):
            m.d.sync += [tx_frame.eq(tx_frame >> 8), tx_len.eq(tx_len - 1), tx_busy.eq(tx_len != 1)]
        reply = Signal(8 * 5)  # the parser's pending reply
        reply_len = Signal(range(6))
        replying = Signal()  # in REPLY: the reply goes out before any output word

        with m.FSM(name="bridge"):
            with m.State("IDLE"):
                m.d.comb += rx.o_stream.ready.eq(1)
                with m.If(rx.o_stream.valid):
                    m.d.sync += [cmd.eq(rx.o_stream.payload), got.eq(0)]
                    with m.Switch(rx.o_stream.payload):
                        with m.Case(FRAMES["WRITE"]):
                            m.d.sync += need.eq(8)
                            m.next = "ARGS"
                        with m.Case(FRAMES["READ"]):
                            m.d.sync += need.eq(4)
                            m.next = "ARGS"
                        with m.Case(FRAMES["STREAM"]):
                            m.d.sync += need.eq(1 + WB)
                            m.next = "ARGS"
            with m.State("ARGS"):
                m.d.comb += rx.o_stream.ready.eq(1)
                with m.If(got == need):
                    with m.Switch(cmd):
                        with m.Case(FRAMES["WRITE"]):
                            m.next = "WRITE"
                        with m.Case(FRAMES["READ"]):
                            m.next = "READ"
                        with m.Default():
                            m.next = "PUSH"
                    m.d.comb += rx.o_stream.ready.eq(0)
                with m.Elif(rx.o_stream.valid):
                    with m.Switch(got):
                        for i in range(len(args) // 8):
                            with m.Case(i):
                                m.d.sync += args[8 * i : 8 * i + 8].eq(rx.o_stream.payload)
                    m.d.sync += got.eq(got + 1)
            with m.State("WRITE"):
                m.d.comb += [self.s_axi_awvalid.eq(1), self.s_axi_wvalid.eq(1), self.s_axi_awaddr.eq(addr[:A]),
                             self.s_axi_wdata.eq(wdata), self.s_axi_wstrb.eq(0xF)]
                with m.If(self.s_axi_awready & self.s_axi_wready):
                    m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += self.s_axi_bready.eq(1)
                with m.If(self.s_axi_bvalid):
                    m.d.sync += [reply.eq(FRAMES["WRITE_ACK"]), reply_len.eq(1)]
                    m.next = "REPLY"
            with m.State("READ"):
                m.d.comb += [self.s_axi_arvalid.eq(1), self.s_axi_araddr.eq(addr[:A])]
                with m.If(self.s_axi_arready):
                    m.next = "READ_RESP"
            with m.State("READ_RESP"):
                m.d.comb += self.s_axi_rready.eq(1)
                with m.If(self.s_axi_rvalid):
                    m.d.sync += [reply.eq(Cat(Const(FRAMES["READ_DATA"], 8), self.s_axi_rdata)), reply_len.eq(5)]
                    m.next = "REPLY"
            with m.State("PUSH"):
                m.d.comb += [self.s_axis_tvalid.eq(1), self.s_axis_tdata.eq(s_word), self.s_axis_tlast.eq(s_flags[0])]
                with m.If(self.s_axis_tready):
                    m.next = "IDLE"
            with m.State("REPLY"):
                m.d.comb += replying.eq(1)
                with m.If(~tx_busy):
                    m.d.sync += [tx_frame.eq(reply), tx_len.eq(reply_len), tx_busy.eq(1)]
                    m.next = "IDLE"

        # Output words go out whenever the transmitter is free and no reply waits; `m_axis_tready`
        # does not depend on `m_axis_tvalid` (no combinational path from the core back into it).
        m.d.comb += self.m_axis_tready.eq(~tx_busy & ~replying)
        with m.If(self.m_axis_tready & self.m_axis_tvalid):
            m.d.sync += [tx_frame.eq(Cat(Const(FRAMES["OUTPUT"], 8), self.m_axis_tlast, Const(0, 7),
                                         self.m_axis_tdata)),
                         tx_len.eq(2 + WB), tx_busy.eq(1)]
        return m
