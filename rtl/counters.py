"""The event counters of the register table: one 64-bit counter per `X_LO` / `X_HI` register pair."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikeloop.network import check_int
from spikeloop.regmap import COUNTERS

from .common import check_type, parameters

__all__ = ["COUNTER_BITS", "counter_layout", "Counters"]

#: Bits of a counter: a `_LO` and a `_HI` word.
COUNTER_BITS = 64


def counter_layout() -> data.StructLayout:
    """Every counter's value, by name."""
    return data.StructLayout({name: COUNTER_BITS for name in COUNTERS})


class Counters(wiring.Component):
    """Counters that add their increment every cycle and wrap at 2^64.

    Parameters (keyword-only)
    ----------
    widths : dict, counter name (`COUNTERS`, every one) -> width of its increment.

    Members
    -------
    inc : In(one field per counter, of its width), added every cycle.
    clear : In(1), zero every counter (increments of that cycle are lost).
    count : Out(`counter_layout()`).
    """

    def __init__(self, *, widths: dict):
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
        for name in self._widths:
            m.d.sync += self.count[name].eq(self.count[name] + self.inc[name])
        with m.If(self.clear):
            m.d.sync += self.count.eq(0)
        return m
