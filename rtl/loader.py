"""The parameter loader: a load frame (`spikeloop.paramstream`) from the input stream into register writes.

`CONTROL.load_params` arms it (`loading`); once armed and the deframer holds no partly received
timestep (`quiet`), it takes the input stream (`select`) up to TLAST. It checks the magic and the
design's HASH0 before any write, then walks the segments and hands each data word to the register
file as a write (`o_writes`), which decodes and judges it as an AXI-Lite write. A frame error
pulses `error` (STATUS.err_load) and stops the writes; the rest of the transfer is swallowed up
to TLAST, where `loading` clears.

Rate: one frame word per clock while the register file takes a write per clock (it does while no
AXI-Lite access interleaves): a 32-bit bus word per clock, a 64-bit bus word per two clocks.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
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
    quiet : In(1), the deframer holds no partly received timestep.
    select : Out(1), the input stream goes to the loader (armed and quiet, or a frame under way).
    loading : Out(1), armed or taking a frame (STATUS.loading).
    error : Out(1), the frame is refused (one cycle; STATUS.err_load).
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
        OFFSET, COUNT, DATA = 0, 1, 2  # what the next segment word is

        armed = Signal()
        started = Signal()  # a bus word of the frame was taken
        full = Signal()  # a bus word is held
        beat = Signal(W)
        beat_last = Signal()
        half = Signal(range(max(2, per_beat)))  # the held bus word's frame word being walked
        pos = Signal(FRAME_BITS)  # that frame word's index in the frame
        length = Signal(FRAME_BITS)
        addr = Signal(FRAME_BITS)
        remaining = Signal(FRAME_BITS)
        seg = Signal(2)
        swallow = Signal()  # refused: drop bus words up to TLAST

        word = beat.word_select(half, FRAME_BITS) if per_beat > 1 else beat
        end_of_beat = half == per_beat - 1
        select = armed & (started | self.quiet)
        m.d.comb += [self.select.eq(select), self.loading.eq(armed)]

        # the held frame word
        walking = full & ~swallow
        is_data = walking & (pos >= HEADER_WORDS) & (seg == DATA)
        step = Signal()  # the frame word is done with (a data word: its write was taken)
        refuse = Signal()
        m.d.comb += [
            self.o_writes.valid.eq(is_data),
            self.o_writes.p.addr.eq(addr),
            self.o_writes.p.data.eq(word),
            step.eq(walking & (~is_data | self.o_writes.ready)),
        ]
        with m.If(pos == 0):
            m.d.comb += refuse.eq(word != LOAD_MAGIC)
        with m.Elif(pos == 1):
            m.d.comb += refuse.eq(word != hash0)
        with m.Elif(pos == 2):
            m.d.comb += refuse.eq(word < HEADER_WORDS)
        with m.Elif(seg == OFFSET):
            m.d.comb += refuse.eq(pos + 1 == length)  # no room for the count
        with m.Elif(seg == COUNT):
            m.d.comb += refuse.eq(word > length - (pos + 1))  # data words past the length
        declared = Mux(pos == 2, word, length)
        good_end = ~refuse & (pos >= HEADER_WORDS - 1) & (declared == pos + 1)
        tlast_early = ~refuse & ~good_end & beat_last & end_of_beat
        no_tlast = good_end & ~beat_last
        error = step & (refuse | tlast_early | no_tlast)
        m.d.comb += self.error.eq(error)

        frees = full & (swallow | step & (end_of_beat | refuse | tlast_early | good_end))
        done = frees & beat_last  # the frame's TLAST: good or refused
        with m.If(step):
            m.d.sync += pos.eq(pos + 1)
            with m.If(pos == 2):
                m.d.sync += length.eq(word)
            with m.Elif(pos > 2):
                with m.Switch(seg):
                    with m.Case(OFFSET):
                        m.d.sync += [addr.eq(word), seg.eq(COUNT)]
                    with m.Case(COUNT):
                        m.d.sync += [remaining.eq(word), seg.eq(Mux(word == 0, OFFSET, DATA))]
                    with m.Case(DATA):
                        m.d.sync += [addr.eq(addr + WORD_BYTES), remaining.eq(remaining - 1)]
                        with m.If(remaining == 1):
                            m.d.sync += seg.eq(OFFSET)
        with m.If(error):
            m.d.sync += swallow.eq(1)

        # bus words in: one held at a time, the next taken in the cycle the held one is freed (not past TLAST)
        m.d.comb += self.i_stream.ready.eq(select & (~full | frees & ~beat_last))
        take = self.i_stream.valid & self.i_stream.ready
        with m.If(frees):
            m.d.sync += [full.eq(0), half.eq(0)]
        with m.Elif(step):
            m.d.sync += half.eq(half + 1)
        with m.If(take):
            m.d.sync += [beat.eq(self.i_stream.p.data), beat_last.eq(self.i_stream.p.last), full.eq(1),
                         started.eq(1)]
        with m.If(done):
            m.d.sync += [armed.eq(0), started.eq(0), swallow.eq(0), pos.eq(0), seg.eq(OFFSET)]
        with m.If(self.arm):
            m.d.sync += armed.eq(1)
        self._probes = {"to_loader": select}
        return m
