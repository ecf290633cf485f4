"""The parameter loader: a load frame (`spikeloop.paramstream`) from the input stream into register writes.

`CONTROL.load_params` arms it (`loading`); once armed and the deframer holds no partly received
timestep (`quiet`), it takes the input stream (`select`) up to TLAST. It checks the magic and the
design's HASH0 before any write, then walks the segments and hands each data word to the register
file as a write (`o_writes`), which decodes and judges it as an AXI-Lite write. A frame error
pulses `error` (STATUS.err_load) and stops the writes; the rest of the transfer is swallowed up
to TLAST, where `loading` clears.

Rate: one frame word per clock while the register file takes a write per clock (it does while no
AXI-Lite access interleaves): a 32-bit bus word per clock, a 64-bit bus word per two clocks.

Pipeline (for a short path from every register to the next):

    i_stream -> FIFO (2 bus words, ready from its count) -> held frame word (FIFO head, `half`)
             -> FIFO (2 writes, taken while the second is free) -> o_writes
                  + flags of each frame word (magic, HASH0, length < 3, = 3, = 4) computed as it comes in

`select` is a register: set once armed and `quiet` (the core holds the deframer while `loading`,
so it stays quiet), cleared at the frame's TLAST; the FIFO takes no word past TLAST. The walk keeps
the frame words left after the held one (`left`, and `left == 0` in a register) instead of a
position, and what the held word is past the header (a segment's offset, count or data) one-hot in
registers (`at`), so each check is one comparison of registers; `error` is registered (a cycle late).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeloop.config import CoreConfig, hash_words
from spikeloop.paramstream import HEADER_WORDS, LOAD_MAGIC
from spikeloop.regmap import WORD_BYTES

from .common import Probed, check_type, parameters, word_layout

__all__ = ["Loader", "write_layout"]

#: Bits of a frame word, of a write's byte address and of its data.
FRAME_BITS = 32


def write_layout() -> data.StructLayout:
    """One register write from the loader: a 32-bit byte address and a 32-bit word."""
    return data.StructLayout({"addr": FRAME_BITS, "data": FRAME_BITS})


class Loader(wiring.Component, Probed):
    """Load frames -> register writes.

    Parameters (keyword-only)
    ----------
    config : CoreConfig; its `bus_width` and design hash matter.

    Members
    -------
    i_stream : In(stream of `word_layout(bus_width)`), the input stream while `select`.
    o_writes : Out(stream of `write_layout()`), to the register file.
    arm : In(1), a CONTROL.load_params pulse.
    quiet : In(1), the deframer holds no partly received timestep (it must take no new one while `loading`).
    select : Out(1), the input stream goes to the loader (armed and quiet a cycle ago, or a frame under way).
    loading : Out(1), armed, taking a frame or writes of it still to go out (STATUS.loading).
    error : Out(1), the frame was refused (one cycle, the cycle after; STATUS.err_load).
    """

    def __init__(self, *, config: CoreConfig):
        with parameters(self):
            check_type("config", config, CoreConfig)
        self._config = config
        super().__init__({
            "i_stream": In(stream.Signature(word_layout(config.bus_width))),
            "o_writes": Out(stream.Signature(write_layout())),
            "arm": In(1),
            "quiet": In(1),
            "select": Out(1),
            "loading": Out(1),
            "error": Out(1),
        })

    @property
    def config(self) -> CoreConfig:
        """The build configuration."""
        return self._config

    def elaborate(self, platform):
        m = Module()
        W = self._config.bus_width
        per_beat = W // FRAME_BITS
        hash0 = hash_words(self._config)[0]

        armed = Signal()
        select = Signal()
        seen_last = Signal()  # the frame's TLAST bus word was taken: take no more
        m.d.comb += self.select.eq(select)

        # The input FIFO: two bus words, each with flags of its frame words computed as it comes in.
        flags = data.StructLayout({"magic": 1, "hash": 1, "short": 1, "header": 1, "segment": 1})
        entry = data.StructLayout({"beat": W, "last": 1, "flags": data.ArrayLayout(flags, per_beat)})
        slots = [Signal(entry, name=f"slot{i}") for i in range(2)]
        wr, rd = Signal(), Signal()
        count = Signal(range(3))
        incoming = Signal(entry)
        m.d.comb += [incoming.beat.eq(self.i_stream.p.data), incoming.last.eq(self.i_stream.p.last)]
        for h in range(per_beat):
            value = self.i_stream.p.data.word_select(h, FRAME_BITS)
            m.d.comb += [incoming.flags[h].magic.eq(value == LOAD_MAGIC), incoming.flags[h].hash.eq(value == hash0),
                         incoming.flags[h].short.eq(value < HEADER_WORDS),
                         incoming.flags[h].header.eq(value == HEADER_WORDS),
                         incoming.flags[h].segment.eq(value == HEADER_WORDS + 1)]
        m.d.comb += self.i_stream.ready.eq(select & (count != 2) & ~seen_last)
        push = self.i_stream.valid & self.i_stream.ready
        with m.If(push):
            with m.If(wr):
                m.d.sync += slots[1].eq(incoming)
            with m.Else():
                m.d.sync += slots[0].eq(incoming)
            m.d.sync += wr.eq(~wr)
            with m.If(self.i_stream.p.last):
                m.d.sync += seen_last.eq(1)
        head = Signal(entry)
        m.d.comb += head.eq(Mux(rd, slots[1], slots[0]))
        full = count != 0

        # The held frame word: `half` of the FIFO's head.
        half = Signal(range(max(2, per_beat)))
        word = head.beat.word_select(half, FRAME_BITS) if per_beat > 1 else head.beat
        flag = head.flags[half] if per_beat > 1 else head.flags[0]
        beat_last = head.last
        end_of_beat = half == per_beat - 1
        # the held word's index in the frame, one-hot: bit k for header word k, bit HEADER_WORDS past the header
        hdr = Signal(HEADER_WORDS + 1, init=1)
        left = Signal(FRAME_BITS)  # frame words after the held one (from the length word on)
        left_zero = Signal()  # left == 0
        addr = Signal(FRAME_BITS)
        remaining = Signal(FRAME_BITS)
        # what the held word is once past the header, one-hot (none while in the header): a segment's
        # offset, its count, or one of its data words
        at = Signal(data.StructLayout({"offset": 1, "count": 1, "data": 1}))
        swallow = Signal()  # refused: drop bus words up to TLAST

        walking = full & ~swallow
        # kept signals (here and for `frees`): each a LUT of its own, which synthesis cannot fold into
        # longer chains shared with the checks (the FIFOs' enables measured 7 levels in a large core)
        is_data = Signal(attrs={"keep": 1})
        m.d.comb += is_data.eq(walking & at.data)
        step = Signal(attrs={"keep": 1})  # the frame word is done with (a data word: its write was queued)
        refuse = Signal()
        queued = self._writes_fifo(m, is_data & step, addr, word)
        m.d.comb += [
            step.eq(walking & (~is_data | ~queued[1])),
            self.loading.eq(armed | queued.any()),  # until the last write has gone out
        ]
        m.d.comb += refuse.eq(hdr[0] & ~flag.magic | hdr[1] & ~flag.hash | hdr[2] & flag.short
                              | at.offset & left_zero  # no room for the count
                              | at.count & (word > left))  # data words past the length
        # the frame ends at the held word (a refused word there errs as well; refusals free nothing: the
        # next cycle swallows the rest of the bus word, so no free waits for a comparison)
        ends = Mux(hdr[HEADER_WORDS - 1], flag.header, hdr[HEADER_WORDS] & left_zero)
        tlast_early = ~ends & beat_last & end_of_beat
        no_tlast = ends & ~beat_last
        error = step & (refuse | tlast_early | no_tlast)
        m.d.sync += self.error.eq(error)

        ends_beat = Signal(attrs={"keep": 1})  # the held word is its bus word's last or the frame's
        m.d.comb += ends_beat.eq(end_of_beat | ends)
        frees = Signal(attrs={"keep": 1})  # (step implies full)
        m.d.comb += frees.eq(full & swallow | step & ends_beat)
        done = frees & beat_last  # the frame's TLAST: good or refused
        with m.If(step):
            with m.If(~hdr[HEADER_WORDS]):
                m.d.sync += hdr.eq(hdr << 1)
            with m.If(hdr[HEADER_WORDS - 1]):
                m.d.sync += [left.eq(word - (HEADER_WORDS + 1)), left_zero.eq(flag.segment), at.offset.eq(1)]
            with m.Elif(hdr[HEADER_WORDS]):
                m.d.sync += [left.eq(left - 1), left_zero.eq(left == 1)]
                with m.If(at.offset):
                    m.d.sync += [addr.eq(word), at.offset.eq(0), at.count.eq(1)]
                with m.If(at.count):
                    m.d.sync += [remaining.eq(word), at.count.eq(0), at.offset.eq(word == 0), at.data.eq(word != 0)]
                with m.If(at.data):
                    m.d.sync += [addr.eq(addr + WORD_BYTES), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.d.sync += [at.data.eq(0), at.offset.eq(1)]
        with m.If(error):
            m.d.sync += swallow.eq(1)

        m.d.sync += count.eq(count + push - frees)
        with m.If(frees):
            m.d.sync += [rd.eq(~rd), half.eq(0)]
        with m.Elif(step):
            m.d.sync += half.eq(half + 1)
        finished = Signal()  # the frame ended a cycle ago: disarm (a register apart from the walk)
        m.d.sync += finished.eq(done)
        with m.If(armed & ~select & ~finished & self.quiet):
            m.d.sync += select.eq(1)
        with m.If(done):
            m.d.sync += [select.eq(0), swallow.eq(0), hdr.eq(1), at.eq(0)]
        with m.If(finished):
            m.d.sync += [armed.eq(0), seen_last.eq(0)]
        with m.If(self.arm):
            m.d.sync += armed.eq(1)
        self._probes = {"to_loader": select,
                        "loader_ok": (count <= 2) & ((wr ^ rd) == (count == 1)) & (~select | armed)
                        & ~(finished & select) & (half < per_beat) & (queued[0] | ~queued[1])
                        & ((hdr & (hdr - 1)) == 0) & hdr.any() & (hdr[HEADER_WORDS] == at.as_value().any())
                        & ((at.as_value() & (at.as_value() - 1)) == 0)}
        return m

    def _writes_fifo(self, m, push, addr, word):
        """`o_writes` from two registers (a FIFO whose fullness is known from registers); returns
        their valid bits (`[1]`: both held, take no write)."""
        held = [Signal(write_layout(), name=f"write{i}") for i in range(2)]
        valid = Signal(2)  # valid[0]: held[0] (the head) holds a write; valid[1]: held[1] does
        pop, pushed = Signal(attrs={"keep": 1}), Signal(attrs={"keep": 1})  # a LUT each (see `is_data`)
        m.d.comb += [pop.eq(self.o_writes.valid & self.o_writes.ready), pushed.eq(push)]
        push = pushed
        m.d.comb += [self.o_writes.valid.eq(valid[0]), self.o_writes.p.eq(held[0])]
        incoming = Signal(write_layout())
        m.d.comb += [incoming.addr.eq(addr), incoming.data.eq(word)]
        with m.If(pop):  # the second moves up; an incoming write goes behind it
            m.d.sync += [held[0].eq(Mux(valid[1], held[1], incoming)), held[1].eq(incoming),
                         valid.eq(Cat(valid[1] | push, valid[1] & push))]
        with m.Else():
            with m.If(push & ~valid[0]):
                m.d.sync += held[0].eq(incoming)
            with m.If(push & valid[0]):
                m.d.sync += held[1].eq(incoming)
            with m.If(push):
                m.d.sync += valid.eq(Cat(1, valid[0]))
        return valid
