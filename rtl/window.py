"""Bus reads of a parameter window on memory read ports that a pipeline also uses.

The crossbar (weights) and the neuron array (theta, bias, v, u) both read their memories for
the datapath and for the register file. A bus read takes the read ports at once (`grant`),
even while the pipeline stage behind them holds data it cannot pass on: a host reading a
window while the output is blocked must not hang the bus. That stage's row is then read again
in the next cycle (`replay`) before the stage may go on. The answer is on the read ports the
cycle after the grant (`ack`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeloop.network import check_int

from .common import parameters

__all__ = ["WindowPort"]


class WindowPort(wiring.Component):
    """The arbiter of a window's read ports between a pipeline and bus reads.

    Parameters (keyword-only)
    ----------
    addr_width : width of the read ports' address (a memory row).
    tag : shape of what the answer needs besides the row (e.g. the word in the row, whether
        the address exists), kept from the request to the answer.

    Members
    -------
    r_stb : In(1), a bus read of the window (one cycle; at most one outstanding).
    r_addr : In(addr_width), its row; r_tag : In(tag).
    stall : In(1), the stage behind the read ports holds data it cannot pass on.
    addr : In(addr_width), the row the pipeline reads next; held : In(addr_width), the held row.
    rp_addr : Out(addr_width), rp_en : Out(1), for every read port of the window.
    pending : Out(1), a bus read waits for the ports.
    grant : Out(1), the ports serve the bus read: the pipeline issues no read this cycle.
    replay : Out(1), the held row is read again: the stage behind the ports may not go on.
    ack : Out(1), the read ports' data answer the bus read; ack_tag : Out(tag), its `r_tag`.
    """

    def __init__(self, *, addr_width: int, tag):
        with parameters(self):
            check_int("addr_width", addr_width, 1, 32)
            try:
                Shape.cast(tag)
            except TypeError:
                raise TypeError(f"tag must be a shape, not {tag!r}") from None
        self._addr_width = addr_width
        self._tag = tag
        super().__init__({
            "r_stb": In(1), "r_addr": In(addr_width), "r_tag": In(tag),
            "stall": In(1), "addr": In(addr_width), "held": In(addr_width),
            "rp_addr": Out(addr_width), "rp_en": Out(1),
            "pending": Out(1), "grant": Out(1), "replay": Out(1),
            "ack": Out(1), "ack_tag": Out(tag),
        })

    @property
    def addr_width(self) -> int:
        """Width of the read ports' address."""
        return self._addr_width

    @property
    def tag(self):
        """Shape of the request's tag."""
        return self._tag

    def elaborate(self, platform):
        m = Module()
        row = Signal(self._addr_width)
        tag = Signal.like(self.r_tag)
        with m.If(self.r_stb):
            m.d.sync += [self.pending.eq(1), row.eq(self.r_addr), tag.eq(self.r_tag)]
        m.d.comb += self.grant.eq(self.pending & ~self.replay)
        with m.If(self.grant):
            m.d.sync += self.pending.eq(0)
        m.d.sync += [
            self.replay.eq(self.grant & self.stall),
            self.ack.eq(self.grant),
            self.ack_tag.eq(tag),
        ]
        m.d.comb += [
            self.rp_addr.eq(Mux(self.grant, row, Mux(self.replay, self.held, self.addr))),
            self.rp_en.eq(~self.stall | self.grant | self.replay),
        ]
        return m
