"""The state clear of `CONTROL.clear_state`: at a timestep boundary, once nothing is in flight."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StateClear"]


class StateClear(wiring.Component):
    """Turns a clear request into one `clear` pulse for every layer, when the core is quiet.

    From the request on, `hold` keeps new timesteps out; a clock after `quiet` (no timestep received
    in part or in flight) is seen, `clear` pulses; `hold` lasts until the layers have zeroed their state.

    Members
    -------
    start : In(1), a clear is requested (one cycle).
    quiet : In(1), no timestep is partly received or in flight.
    layers_clearing : In(1), some layer is still zeroing its state.
    clear : Out(1), the pulse for every layer's `LayerControl.clear`.
    hold : Out(1), take no new timestep.
    clearing : Out(1), a clear is requested or running (`STATUS.clearing`).
    """

    def __init__(self):
        super().__init__({
            "start": In(1),
            "quiet": In(1),
            "layers_clearing": In(1),
            "clear": Out(1),
            "hold": Out(1),
            "clearing": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        requested = Signal()
        running = Signal()  # the pulse went out; the layers raise `clearing` from the next cycle
        settled = Signal()  # quiet while requested, a clock ago (new timesteps are held out meanwhile)
        m.d.sync += settled.eq(self.quiet & requested & ~settled)
        with m.If(requested & settled):
            m.d.comb += self.clear.eq(1)
            m.d.sync += [requested.eq(0), running.eq(1)]
        with m.Elif(running & ~self.layers_clearing):
            m.d.sync += running.eq(0)
        with m.If(self.start):
            m.d.sync += requested.eq(1)
        m.d.comb += [
            self.hold.eq(requested | running),
            self.clearing.eq(requested | running | self.layers_clearing),
        ]
        return m
