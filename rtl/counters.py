"""The event counters of the register table: one 64-bit counter per `X_LO` / `X_HI` register pair.

Each counter counts in two halves so that no adder is wider than the low half (32 bits):

    inc -> inc_q -> lo (+ carry c) -> lo_d  ---> count = Cat(lo_d, hi)
                              c -> hi   ----/

The increments and `clear` are registered first (`inc_q`, `clear_q`); the low half adds `inc_q`
and registers its carry `c`, which the high half adds in the next cycle (and clears a cycle after
the low half). The low half is delayed by that cycle too (`lo_d`), so `count` is always one
consistent value: the counter as it was `LATENCY` cycles ago.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikeloop.network import check_int
from spikeloop.regmap import COUNTERS

from .common import check_type, parameters

__all__ = ["COUNTER_BITS", "counter_layout", "Counters"]

#: Bits of a counter: a `_LO` and a `_HI` word.
COUNTER_BITS = 64
#: Bits of the low half that adds the increments (the high half adds its carry a cycle later).
LOW_BITS = 32


def counter_layout() -> data.StructLayout:
    """Every counter's value, by name."""
    return data.StructLayout({name: COUNTER_BITS for name in COUNTERS})


class Counters(wiring.Component):
    """Counters that add their increment every cycle and wrap at 2^64.

    Parameters (keyword-only)
    ----------
    widths : dict, counter name (`COUNTERS`, every one) -> width of its increment.
    low_bits : width of the low half (1..63), `LOW_BITS` unless a test wants carries soon.

    Members
    -------
    inc : In(one field per counter, of its width), added every cycle.
    clear : In(1), zero every counter (increments of that cycle are lost).
    count : Out(`counter_layout()`), the counts of `LATENCY` cycles ago.
    """

    #: Cycles from an increment (or a clear) at `inc` to `count`.
    LATENCY = 3

    def __init__(self, *, widths: dict, low_bits: int = LOW_BITS):
        with parameters(self):
            check_type("widths", widths, dict)
            names = COUNTERS
            for name in widths:
                if name not in names:
                    raise ValueError(f"widths names {name!r}, which is not a counter of the register table "
                                     f"({', '.join(names)})")
            for name in names:
                if name not in widths:
                    raise ValueError(f"widths has no entry for the counter {name!r}")
                check_int(f"widths[{name!r}]", widths[name], 1, COUNTER_BITS)
            check_int("low_bits", low_bits, 1, COUNTER_BITS - 1)
        self._low_bits = low_bits
        self._widths = {name: widths[name] for name in names}
        super().__init__({
            "inc": In(data.StructLayout(self._widths)),
            "clear": In(1),
            "count": Out(counter_layout()),
        })

    @property
    def widths(self) -> dict:
        """Increment width of each counter, in table order."""
        return dict(self._widths)

    def elaborate(self, platform):
        m = Module()
        L = self._low_bits
        clear_q, clear_hi = Signal(), Signal()  # the clear for the low half, a cycle later for the high half
        m.d.sync += [clear_q.eq(self.clear), clear_hi.eq(clear_q)]
        for name, width in self._widths.items():
            inc_q = Signal(width, name=f"{name.lower()}_inc")
            lo = Signal(L, name=f"{name.lower()}_lo")
            carry = Signal(max(width, L) + 1 - L, name=f"{name.lower()}_c")  # the sum's bits above the low half
            lo_d = Signal(L, name=f"{name.lower()}_lo_d")
            hi = Signal(COUNTER_BITS - L, name=f"{name.lower()}_hi")
            m.d.sync += [inc_q.eq(self.inc[name]), lo_d.eq(lo)]
            with m.If(clear_q):  # drops inc_q: the increments of the clear's cycle
                m.d.sync += Cat(lo, carry).eq(0)
            with m.Else():
                m.d.sync += Cat(lo, carry).eq(lo + inc_q)
            m.d.sync += hi.eq(Mux(clear_hi, 0, hi + carry))
            m.d.comb += self.count[name].eq(Cat(lo_d, hi))
        return m
