"""The window port as a function: a pipeline reading rows of a memory, and bus reads of the same
memory at random times, with seeded stalls; every row read either way equals the memory's."""

from __future__ import annotations

import random
import zlib

import pytest
from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from rtlsim import Watchdog, get, put, seeded, simulate

from spikeloop.rtl.window import WindowPort

DEPTH, BITS, TAG = 16, 24, unsigned(5)


class Harness(Elaboratable):
    """A memory behind a `WindowPort`, read by a one-stage pipeline (row in -> (row, data) out)
    that holds its data while its output is blocked, as the crossbar's and neuron array's do."""

    def __init__(self, contents):
        self.contents = contents
        self.port = WindowPort(addr_width=4, tag=TAG)
        self.i_stream = stream.Signature(4).flip().create()
        self.o_stream = stream.Signature(data.StructLayout({"row": 4, "data": BITS})).create()
        self.r_data = Signal(BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=BITS, depth=DEPTH, init=self.contents)
        m.submodules.port = port = self.port
        rp = mem.read_port()
        s_valid, s_row, o_valid = Signal(), Signal(4), Signal()
        free = ~o_valid | self.o_stream.ready
        go = s_valid & ~port.replay & free
        hold = s_valid & ~go
        m.d.comb += [
            port.stall.eq(s_valid & ~free), port.addr.eq(self.i_stream.payload), port.held.eq(s_row),
            rp.addr.eq(port.rp_addr), rp.en.eq(port.rp_en),
            self.i_stream.ready.eq(~hold & ~port.pending),
            self.o_stream.valid.eq(o_valid), self.r_data.eq(rp.data),
        ]
        accept = self.i_stream.valid & self.i_stream.ready
        with m.If(~hold):
            m.d.sync += s_valid.eq(accept)
        with m.If(accept):
            m.d.sync += s_row.eq(self.i_stream.payload)
        with m.If(self.o_stream.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(go):
            m.d.sync += [self.o_stream.payload.row.eq(s_row), self.o_stream.payload.data.eq(rp.data), o_valid.eq(1)]
        return m


def rtl_window(contents, rows, reads, *, seed: int, stall: float, blocked: int = 0):
    """Stream `rows` through the pipeline and issue the bus reads `reads` ((row, tag) pairs) at random
    times -> (pipeline data, bus answers as (data, tag)). The output stays blocked for `blocked` cycles."""
    dut = Harness(contents)
    port = dut.port
    rng = random.Random(seed)
    piped, answers = [], []
    state = {}

    async def source(ctx):
        for row in rows:
            await put(ctx, dut.i_stream, row, rng=rng, stall=stall)

    async def sink(ctx):
        if blocked:
            await ctx.tick().repeat(blocked)
        for _ in rows:
            p = await get(ctx, dut.o_stream, rng=rng, stall=stall)
            piped.append(p.data)
        state["piped"] = True

    async def host(ctx):
        for row, tag in reads:
            for _ in range(rng.randrange(6)):
                await ctx.tick()
            ctx.set(port.r_stb, 1)
            ctx.set(port.r_addr, row)
            ctx.set(port.r_tag, tag)
            await ctx.tick()
            ctx.set(port.r_stb, 0)
            for _ in range(3):  # granted at once (or after one replay), answered the cycle after
                if ctx.get(port.ack):
                    break
                await ctx.tick()
            else:
                raise Watchdog(f"bus read of row {row} not answered within 3 cycles")
            answers.append((ctx.get(dut.r_data), ctx.get(port.ack_tag)))
            await ctx.tick()

    simulate(dut, source, sink, host, max_cycles=40 * (len(rows) + len(reads)) + blocked + 200)
    return piped, answers


@pytest.mark.parametrize("stall", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("blocked", [0, 60])
def test_window_port_serves_pipeline_and_bus_reads(stall, blocked):
    seed = zlib.crc32(repr(("window", stall, blocked)).encode()) % 10_000
    rng = random.Random(seed)
    contents = [rng.randrange(1 << BITS) for _ in range(DEPTH)]
    rows = [rng.randrange(DEPTH) for _ in range(80)]
    reads = [(rng.randrange(DEPTH), rng.randrange(32)) for _ in range(40)]
    piped, answers = rtl_window(contents, rows, reads, seed=seed, stall=stall, blocked=blocked)
    assert piped == [contents[r] for r in rows], f"pipeline data differ {seeded(seed)}"
    assert answers == [(contents[r], tag) for r, tag in reads], f"bus answers differ {seeded(seed)}"


@pytest.mark.parametrize("kwargs,error,message", [
    ({"addr_width": 0, "tag": 4}, ValueError, r"addr_width = 0 is outside \[1, 32\]"),
    ({"addr_width": 4, "tag": "word"}, TypeError, "tag must be a shape, not 'word'"),
    ({"addr_width": 4.0, "tag": 4}, TypeError, "addr_width must be an integer, not 4.0"),
])
def test_window_port_refuses_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        WindowPort(**kwargs)
