"""The crossbar against sum_i w[j,i] s[i], bit for bit, with chunk skipping measured."""

from __future__ import annotations

import gc
import random
import warnings
import zlib

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator
from rtlsim import bus_read, bus_write, get, put, run_crossbar_as_function, seeded, simulate

from spikeloop.rtl.crossbar import LEVELS_PER_STAGE, Crossbar, _compress, _count, _stage_levels, tree_stages
from spikeloop.windows import pack_weights


def run_crossbar(weights, spikes, *, lanes, chunk, seed, stall=0.0, readback=True):
    """Load `weights`, stream `spikes` [T, n_in]; returns (sums [T, n_out], cycles per timestep list)."""
    n_out, n_in = weights.shape
    dut = Crossbar(n_in=n_in, n_out=n_out, lanes=lanes, chunk=chunk)
    image = pack_weights(weights, dut.geometry)
    budget = 200 * spikes.shape[0] * dut.geometry.weight_rows + 20 * image.size + 1000
    sums, per_step, _ = run_crossbar_as_function(dut, image, spikes, seed=seed, stall=stall, readback=readback,
                                                 max_cycles=budget)
    return sums, per_step


CASES = [
    # n_in, n_out, lanes, chunk
    (40, 12, 4, 8),
    (37, 10, 3, 5),  # nothing divides: padded chunk and padded lanes
    (64, 8, 8, 64),  # one chunk, one group
    (33, 7, 1, 32),  # row of 32 bits, two chunks
    (70, 5, 5, 20),  # row of 100 bits: four words per row, stride 4
    (7, 4, 2, 2),  # no popcount tree stage (C <= 2)
    (5, 3, 3, 1),
    (330, 3, 1, 330),  # three tree stages
]


@pytest.mark.parametrize("n_in,n_out,lanes,chunk", CASES)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_crossbar_matches_matrix_product(n_in, n_out, lanes, chunk, stall):
    seed = zlib.crc32(repr((n_in, n_out, lanes, chunk, stall)).encode()) % 10_000
    rng = np.random.default_rng(seed)
    weights = rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in))
    steps = 12
    density = rng.choice([0.0, 0.05, 0.3, 1.0], size=steps)
    density[0], density[1] = 0.0, 1.0  # always cover empty and full input
    spikes = rng.random((steps, n_in)) < density[:, None]
    sums, _ = run_crossbar(weights, spikes, lanes=lanes, chunk=chunk, seed=seed, stall=stall,
                           readback=stall == 0.0)
    expected = spikes.astype(np.int64) @ weights.T.astype(np.int64)
    assert np.array_equal(sums, expected), f"crossbar sums differ {seeded(seed)}"
    assert (expected != 0).any()


def test_crossbar_skips_zero_chunks():
    """Cycles per timestep: n_groups * max(1, nonzero chunks) + a constant overhead."""
    n_in, n_out, lanes, chunk = 64, 8, 2, 8  # 8 chunks, 4 groups
    rng = np.random.default_rng(5)
    weights = rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in))
    spikes = np.zeros((6, n_in), bool)
    spikes[1, 3] = True  # one chunk
    spikes[2, [3, 20, 63]] = True  # three chunks
    spikes[3] = True  # all eight chunks
    spikes[4, 8:16] = True  # one chunk, full
    sums, per_step = run_crossbar(weights, spikes, lanes=lanes, chunk=chunk, seed=5, readback=False)
    assert np.array_equal(sums, spikes.astype(np.int64) @ weights.T.astype(np.int64))
    nonzero = [max(1, len({i // chunk for i in np.flatnonzero(s)})) for s in spikes]
    groups = n_out // lanes
    overhead = [c - groups * nz for c, nz in zip(per_step[1:], nonzero[1:])]
    assert len(set(overhead)) == 1 and overhead[0] <= 3, (per_step, nonzero)


def test_crossbar_bus_writes_outside_window_are_ignored():
    dut = Crossbar(n_in=10, n_out=3, lanes=1, chunk=10)  # 3 rows of 10 bits, 1 word each

    async def tb(ctx):
        assert not await bus_write(ctx, dut.bus, "weights", 1, 0x3FF)
        await bus_write(ctx, dut.bus, "weights", 3, 0x155)  # past the last row
        assert await bus_read(ctx, dut.bus, "weights", 1) == 0x3FF
        assert await bus_read(ctx, dut.bus, "weights", 3) == 0
        assert await bus_read(ctx, dut.bus, "weights", 0) == 0

    simulate(dut, tb, max_cycles=200)


@pytest.mark.parametrize("kwargs,error", [
    ({"n_in": 0, "n_out": 4, "lanes": 1, "chunk": 1}, "n_in = 0 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 5, "chunk": 1}, "lanes = 5 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "chunk": 9}, "chunk = 9 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "chunk": 4, "late": 8}, r"late = 8 is outside \[0, 7\]"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "chunk": 4, "late": -1}, "late = -1 is outside"),
])
def test_crossbar_refuses_bad_parameters(kwargs, error):
    with pytest.raises(ValueError, match=error):
        Crossbar(**kwargs)


def test_crossbar_refuses_non_integers():
    with pytest.raises(TypeError, match="lanes must be an integer, not 2.0"):
        Crossbar(n_in=8, n_out=4, lanes=2.0, chunk=4)
    with warnings.catch_warnings():  # the half-built object is reported unused when collected
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError):
            Crossbar(8, 4, 2, 4)  # keyword-only
        gc.collect()


def test_crossbar_bus_reads_are_served_while_the_output_is_blocked():
    """A host reading weights while nobody drains the output must not hang (nor corrupt the sums)."""
    n_in, n_out, lanes, chunk = 24, 40, 2, 8  # 20 groups: more items than the pipeline holds
    rng = np.random.default_rng(9)
    weights = rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in))
    spikes = rng.random((1, n_in)) < 0.5
    dut = Crossbar(n_in=n_in, n_out=n_out, lanes=lanes, chunk=chunk)
    image = pack_weights(weights, dut.geometry)
    got = []
    state = {"loaded": False}

    async def host(ctx):
        for addr in range(image.size):
            await bus_write(ctx, dut.bus, "weights", addr, int(image[addr]))
        state["loaded"] = True
        await put(ctx, dut.i_stream, {"spikes": sum(1 << int(i) for i in np.flatnonzero(spikes[0])), "last": 0})
        await ctx.tick().repeat(10)
        assert not ctx.get(dut.i_stream.ready), "expected a stalled pipeline"
        for addr in range(image.size):  # stalled: group 0 in the output, group 1 in the skid, the stages full
            assert await bus_read(ctx, dut.bus, "weights", addr, timeout=5) == image[addr]
        state["read"] = True

    async def sink(ctx):
        while "read" not in state:
            await ctx.tick()
        for _ in range(dut.geometry.n_groups):
            p = await get(ctx, dut.o_stream)
            got.append([p.syn[lane] for lane in range(lanes)])

    simulate(dut, host, sink, max_cycles=2000)
    sums = np.array(got).reshape(n_out)
    assert np.array_equal(sums, spikes[0].astype(np.int64) @ weights.T.astype(np.int64))


def test_tree_stages_grow_with_the_chunk():
    """A register stage every LEVELS_PER_STAGE counter levels: none for C <= 2, one up to 18, ..."""
    assert [tree_stages(c) for c in (1, 2, 3, 8, 18, 19, 64, 72, 73, 196, 324, 325, 1024, 4096)] == [
        0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5]
    for c in range(1, 4097):
        levels = _stage_levels(c)
        assert all(1 <= n <= LEVELS_PER_STAGE for n in levels) and len(levels) <= 6, (c, levels)
        assert 1 + 5 + len(levels) <= 6 + c.bit_length(), c  # capture + latency: max_timestep_cycles's bound


@pytest.mark.parametrize("chunk", [1, 2, 3, 6, 7, 16, 20, 64, 196, 325, 1000, 4096])
def test_counter_heap_sums_to_the_popcount(chunk):
    """The counters' arithmetic on integers: the two rows left add up to the number of set bits."""
    seed = chunk
    rng = random.Random(seed)

    def count(bits):
        total = sum(bits)
        return [(total >> k) & 1 for k in range(len(bits).bit_length())]

    for density in (0.0, 0.1, 0.5, 0.9, 1.0):
        bits = [int(rng.random() < density) for _ in range(chunk)]
        heap = [bits]
        for _ in range(sum(_stage_levels(chunk))):
            heap = _compress(heap, count)
        assert max(map(len, heap)) <= 2, f"{chunk}: {list(map(len, heap))}"
        rows = sum(bit << i for i, column in enumerate(heap) for bit in column)
        assert rows == sum(bits), f"chunk {chunk}, density {density}: {rows} != {sum(bits)} {seeded(seed)}"


@pytest.mark.parametrize("n", range(1, 7))
def test_counter_counts_every_input(n):
    """`_count` of n bits (its ROM) gives the number of set bits of each of the 2^n inputs."""
    m = Module()
    bits = Signal(n)
    count = Cat(*_count(m, [bits[k] for k in range(n)]))
    got = {}

    async def tb(ctx):
        for value in range(1 << n):
            ctx.set(bits, value)
            got[value] = ctx.get(count)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert got == {value: bin(value).count("1") for value in range(1 << n)}


@pytest.mark.parametrize("chunk", [2, 8, 64])
def test_crossbar_latency(chunk):
    """The sums of a one-chunk group are in the output register `latency` clocks after its capture."""
    dut = Crossbar(n_in=chunk, n_out=2, lanes=2, chunk=chunk)
    seen = {}

    async def tb(ctx):
        assert not await bus_write(ctx, dut.bus, "weights", 0, 1)  # w[0, 0] = +1, every other -1
        await put(ctx, dut.i_stream, {"spikes": 1, "last": 1})
        ticks = 0
        while not ctx.get(dut.o_stream.valid):
            await ctx.tick()
            ticks += 1
        seen["ticks"] = ticks
        ctx.set(dut.o_stream.ready, 1)
        seen["syn"] = [ctx.get(dut.o_stream.p.syn[lane]) for lane in range(2)]
        await ctx.tick()

    simulate(dut, tb, max_cycles=100)
    assert seen == {"ticks": dut.latency, "syn": [1, -1]}
    assert dut.latency == 5 + tree_stages(chunk)
