"""The event-driven crossbar against sum_i w[j,i] s[i], bit for bit, with its cycles measured."""

from __future__ import annotations

import gc
import warnings
import zlib

import numpy as np
import pytest
from rtlsim import bus_read, bus_write, get, put, run_crossbar_as_function, seeded, simulate
from test_rtl_crossbar import run_crossbar

from spikeloop.rtl.crossbar import Crossbar, tree_stages
from spikeloop.rtl.events import EventCrossbar, event_cycles
from spikeloop.windows import EventGeometry, pack_event_weights, unpack_event_weights


def run_events(weights, spikes, *, lanes, events, seed, stall=0.0, readback=True):
    """Load `weights`, stream `spikes` [T, n_in]; returns (sums [T, n_out], cycles per timestep list,
    counts of the cycles the output was held back and of the bus reads served while the timesteps
    streamed, which there are with `stall`)."""
    n_out, n_in = weights.shape
    dut = EventCrossbar(n_in=n_in, n_out=n_out, lanes=lanes, events=events)
    image = pack_event_weights(weights, lanes, events)
    budget = int(np.sum(dut.cycles(spikes))) * (4 if stall else 1) + 50 * spikes.shape[0] + 20 * image.size + 1000
    return run_crossbar_as_function(dut, image, spikes, seed=seed, stall=stall, readback=readback, reads=bool(stall),
                                    max_cycles=budget)


def random_weights(rng, n_out, n_in):
    return rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in))


CASES = [
    # n_in, n_out, lanes, events
    (40, 12, 4, 8),
    (37, 10, 3, 5),  # nothing divides: short banks and padded lanes
    (33, 7, 1, 1),  # E = 1, P = 1: one input per clock, one neuron per group
    (29, 5, 5, 3),  # one group
    (70, 40, 36, 64),  # P = 36 > 32: two words per bank row, stride 2; E = 64 < n_in
    (64, 9, 2, 64),  # every input in its own bank
    (8, 3, 3, 7),  # E = n_in - 1: one bank holds two inputs
    (1, 1, 1, 1),  # the least layer
]


@pytest.mark.parametrize("n_in,n_out,lanes,events", CASES)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_events_match_matrix_product(n_in, n_out, lanes, events, stall):
    seed = zlib.crc32(repr((n_in, n_out, lanes, events, stall)).encode()) % 10_000
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, n_out, n_in)
    density = np.array([0.0, 1.0, 0.03, 0.3, 1.0, 0.0, 0.1, 0.5])  # empty, full, sparse, back to back
    spikes = rng.random((density.size, n_in)) < density[:, None]
    spikes[2, rng.integers(n_in)] = True  # at least one spike in the sparse step
    sums, per_step, held = run_events(weights, spikes, lanes=lanes, events=events, seed=seed, stall=stall,
                                      readback=stall == 0.0)
    expected = spikes.astype(np.int64) @ weights.T.astype(np.int64)
    assert np.array_equal(sums, expected), f"event crossbar sums differ {seeded(seed)}"
    assert (expected != 0).any() and (expected[0] == 0).all()
    if stall:
        assert held["output"] > 0 and held["reads"] > 0, f"no stall or read happened {seeded(seed)} {held}"
    else:
        # back to back, unstalled: each timestep takes exactly its formula (the first one also the latency)
        assert per_step[1:] == event_cycles(spikes[1:], n_out=n_out, lanes=lanes, events=events).tolist(), \
            f"{per_step} {seeded(seed)}"


@pytest.mark.parametrize("density", [0.01, 0.05])
def test_events_sparse_input(density):
    """A wider layer at 1% and 5% of spikes: the cycles follow the busiest bank, not n_in."""
    n_in, n_out, lanes, events = 300, 24, 8, 16
    seed = int(density * 1000)
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, n_out, n_in)
    spikes = rng.random((6, n_in)) < density
    spikes[:, 17] = True  # never empty
    sums, per_step, _ = run_events(weights, spikes, lanes=lanes, events=events, seed=seed, readback=False)
    assert np.array_equal(sums, spikes.astype(np.int64) @ weights.T.astype(np.int64)), seeded(seed)
    cycles = event_cycles(spikes, n_out=n_out, lanes=lanes, events=events)
    assert per_step[1:] == cycles[1:].tolist(), f"{per_step} {seeded(seed)}"
    assert (cycles > 3 * 1 + 1).any(), f"no bank ever held two inputs {seeded(seed)}"  # the walk went on


def test_event_cycles_follow_the_busiest_bank():
    """The formula: n_groups * max(1, max over banks of the active inputs) + 1, measured."""
    n_in, n_out, lanes, events = 24, 6, 2, 4  # 3 groups, banks of 6 inputs
    spikes = np.zeros((6, n_in), bool)
    spikes[1, 3] = True  # one input
    spikes[2, [0, 4, 8, 12]] = True  # four inputs, all in bank 0
    spikes[3, [0, 1, 2, 3]] = True  # four inputs, one per bank
    spikes[4] = True  # all: six per bank
    spikes[5, [1, 5, 9, 2]] = True  # three in bank 1, one in bank 2
    assert event_cycles(spikes, n_out=n_out, lanes=lanes, events=events).tolist() == [4, 4, 13, 4, 19, 10]
    rng = np.random.default_rng(3)
    weights = random_weights(rng, n_out, n_in)
    sums, per_step, _ = run_events(weights, spikes, lanes=lanes, events=events, seed=3, readback=False)
    assert np.array_equal(sums, spikes.astype(np.int64) @ weights.T.astype(np.int64))
    assert per_step[1:] == [4, 13, 4, 19, 10]


def replay_patterns(n_in, events, rng):
    """Timesteps that make the first group's walk and the later groups' replay differ in every way: one input,
    every input of the first and of the last (shorter) bank, a bank with two inputs beside banks with one, all
    inputs, none, and random densities; back to back."""
    K = -(-n_in // events)
    steps = [np.zeros(n_in, bool) for _ in range(7)]
    steps[0][n_in - 1] = True  # one item: the group's only one is replayed in place
    steps[1][0::events] = True  # bank 0 full: K items, every other bank idle
    steps[2][events - 1 :: events] = True  # the last bank: the shortest when the banks are uneven
    steps[3][[i for i in (0, events, 1) if i < n_in]] = True  # two items in bank 0, bank 1 in the first only
    steps[4][:] = True  # every input: K items in every full bank
    # steps[5]: none (one item of no input)
    steps[6][rng.choice(n_in, size=min(n_in, 2 * K), replace=False)] = True
    randoms = rng.random((6, n_in)) < np.array([0.05, 0.2, 0.5, 0.8, 0.1, 0.3])[:, None]
    return np.concatenate([np.array(steps), randoms])


@pytest.mark.parametrize("n_in,n_out,lanes,events", [
    (37, 10, 3, 5),  # uneven banks (8 and 7 rows), 4 groups, a padded lane
    (23, 9, 2, 4),  # 5 groups, banks of 6 and 5 rows
    (12, 6, 1, 12),  # one row per bank (K = 1), 6 groups
    (9, 4, 2, 1),  # one bank of 9 rows, 2 groups
])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_events_replay_the_first_group(n_in, n_out, lanes, events, stall):
    """Groups after the first replay the first group's record: multi-group timesteps on uneven banks, back to
    back, with stalls and bus reads while held; sums against numpy, cycles against `event_cycles`."""
    seed = zlib.crc32(repr(("replay", n_in, n_out, lanes, events, stall)).encode()) % 10_000
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, n_out, n_in)
    spikes = replay_patterns(n_in, events, rng)
    sums, per_step, held = run_events(weights, spikes, lanes=lanes, events=events, seed=seed, stall=stall,
                                      readback=False)
    expected = spikes.astype(np.int64) @ weights.T.astype(np.int64)
    assert np.array_equal(sums, expected), f"event crossbar sums differ {seeded(seed)}"
    cycles = event_cycles(spikes, n_out=n_out, lanes=lanes, events=events)
    groups, rows = -(-n_out // lanes), -(-n_in // events)
    assert groups > 1 and (cycles == groups * rows + 1).any(), "no group of a bank's every row replayed"
    if stall:
        assert held["output"] > 0 and held["reads"] > 0, f"no stall or read happened {seeded(seed)} {held}"
    else:
        assert per_step[1:] == cycles[1:].tolist(), f"{per_step} {seeded(seed)}"


def test_events_bus_writes_then_reads():
    """Every word of the window reads back what was written; padding words, banks and rows read 0."""
    n_in, n_out, lanes, events = 11, 3, 3, 3  # K = 4, 1 group: rows of 4 bank slots, the last slot padding
    dut = EventCrossbar(n_in=n_in, n_out=n_out, lanes=lanes, events=events)
    geo = dut.events
    assert (geo.bank_rows, geo.rows, geo.bank_stride, geo.row_stride, geo.words) == (4, 4, 4, 1, 16)
    rng = np.random.default_rng(7)
    weights = random_weights(rng, n_out, n_in)
    image = pack_event_weights(weights, lanes, events)
    state = {}

    async def tb(ctx):
        for addr in range(1 << dut.addr_width):  # every address, padding included, with all ones
            assert not await bus_write(ctx, dut.bus, "weights", addr, 0xFFFFFFFF)
        for addr in range(geo.words):
            assert not await bus_write(ctx, dut.bus, "weights", addr, int(image[addr]))
        state["read"] = [await bus_read(ctx, dut.bus, "weights", addr) for addr in range(1 << dut.addr_width)]
        await bus_write(ctx, dut.bus, "theta", 0, 0x7)  # another window: not the weights
        state["after"] = await bus_read(ctx, dut.bus, "weights", 0)

    simulate(dut, tb, max_cycles=2000)
    read = np.array(state["read"], np.uint32)
    assert np.array_equal(read[: geo.words], image)
    assert np.array_equal(unpack_event_weights(read[: geo.words], n_in=n_in, n_out=n_out, lanes=lanes,
                                               events=events), weights)
    assert state["after"] == image[0]
    assert image.any() and (read[3::4] == 0).all()  # bank slot 3 does not exist


def test_events_two_word_rows():
    """P = 40: a bank row is two words (stride 2), each written and read on its own."""
    dut = EventCrossbar(n_in=4, n_out=40, lanes=40, events=2)
    assert (dut.events.row_words, dut.events.row_stride, dut.addr_width) == (2, 2, 3)

    async def tb(ctx):
        assert not await bus_write(ctx, dut.bus, "weights", 0b101, 0xAB)  # row 1, bank 0, word 1
        assert not await bus_write(ctx, dut.bus, "weights", 0b100, 0x12345678)  # row 1, bank 0, word 0
        assert await bus_read(ctx, dut.bus, "weights", 0b101) == 0xAB
        assert await bus_read(ctx, dut.bus, "weights", 0b100) == 0x12345678
        assert await bus_read(ctx, dut.bus, "weights", 0b110) == 0  # row 1, bank 1
        assert await bus_read(ctx, dut.bus, "weights", 0b001) == 0

    simulate(dut, tb, max_cycles=200)


def test_events_bus_reads_are_served_while_the_output_is_blocked():
    """A host reading weights while nobody drains the output must not hang (nor corrupt the sums)."""
    n_in, n_out, lanes, events = 24, 40, 2, 4  # 20 groups: more items than the pipeline holds
    rng = np.random.default_rng(9)
    weights = random_weights(rng, n_out, n_in)
    spikes = rng.random((1, n_in)) < 0.5
    dut = EventCrossbar(n_in=n_in, n_out=n_out, lanes=lanes, events=events)
    image = pack_event_weights(weights, lanes, events)
    got = []
    state = {}

    async def host(ctx):
        for addr in map(int, image.nonzero()[0]):
            await bus_write(ctx, dut.bus, "weights", addr, int(image[addr]))
        await put(ctx, dut.i_stream, {"spikes": sum(1 << int(i) for i in np.flatnonzero(spikes[0])), "last": 0})
        await ctx.tick().repeat(40)
        assert not ctx.get(dut.i_stream.ready) and ctx.get(dut.busy), "expected a stalled pipeline"
        for addr in range(image.size):  # stalled: a group in the output, one in the skid, the stages full
            assert await bus_read(ctx, dut.bus, "weights", addr, timeout=5) == image[addr]
        state["read"] = True

    async def sink(ctx):
        while "read" not in state:
            await ctx.tick()
        for _ in range(dut.geometry.n_groups):
            p = await get(ctx, dut.o_stream)
            got.append([p.syn[lane] for lane in range(lanes)])

    simulate(dut, host, sink, max_cycles=3000)
    sums = np.array(got).reshape(n_out)
    assert np.array_equal(sums, spikes[0].astype(np.int64) @ weights.T.astype(np.int64))


@pytest.mark.parametrize("events", [1, 8, 64])
def test_events_latency(events):
    """The sums of a one-item group are in the output register `latency` clocks after its capture."""
    dut = EventCrossbar(n_in=64, n_out=2, lanes=2, events=events)
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
    assert dut.latency == 5 + tree_stages(events)


@pytest.mark.parametrize("n_in,n_out,lanes,events", [(37, 10, 3, 5), (784, 256, 16, 16), (5, 3, 1, 1),
                                                      (100, 70, 40, 64), (64, 1, 1, 64)])
def test_pack_event_weights_round_trips(n_in, n_out, lanes, events):
    seed = n_in + n_out
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, n_out, n_in)
    image = pack_event_weights(weights, lanes, events)
    geo = EventGeometry(n_in=n_in, n_out=n_out, lanes=lanes, events=events)
    assert image.dtype == np.uint32 and image.shape == (geo.words,)
    assert np.array_equal(unpack_event_weights(image, n_in=n_in, n_out=n_out, lanes=lanes, events=events), weights)
    ones = int(np.unpackbits(image.view(np.uint8)).sum())
    assert ones == int((weights > 0).sum()), "every +1 stored once, nothing else"
    for j, i in ((0, 0), (n_out - 1, n_in - 1), (n_out // 2, n_in // 3)):  # the documented address of a bit
        (g, p), (k, b) = divmod(j, lanes), divmod(i, events)
        word = ((g * geo.bank_rows + k) * geo.bank_stride + b) * geo.row_stride + p // 32
        assert (int(image[word]) >> (p % 32)) & 1 == (weights[j, i] > 0), (j, i, seeded(seed))


def test_pack_event_weights_refuses_bad_input():
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        pack_event_weights(np.ones(4), 1, 1)
    with pytest.raises(ValueError, match="events = 5 is outside"):
        pack_event_weights(np.ones((2, 4)), 1, 5)
    with pytest.raises(ValueError, match=r"expected 8 words, got shape \(7,\)"):
        unpack_event_weights(np.zeros(7), n_in=4, n_out=2, lanes=1, events=2)


@pytest.mark.parametrize("kwargs,error", [
    ({"n_in": 0, "n_out": 4, "lanes": 1, "events": 1}, "n_in = 0 is outside"),
    ({"n_in": 8, "n_out": 0, "lanes": 1, "events": 1}, "n_out = 0 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 0, "events": 1}, "lanes = 0 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 5, "events": 1}, "lanes = 5 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "events": 0}, "events = 0 is outside"),
    ({"n_in": 8, "n_out": 4, "lanes": 1, "events": 9}, r"events = 9 is outside \[1, 8\]"),
    ({"n_in": 100, "n_out": 4, "lanes": 1, "events": 65}, r"events = 65 is outside \[1, 64\]"),
])
def test_events_refuse_bad_parameters(kwargs, error):
    with pytest.raises(ValueError, match=error):
        EventCrossbar(**kwargs)


def test_events_refuse_non_integers():
    with pytest.raises(TypeError, match="events must be an integer, not 2.0"):
        EventCrossbar(n_in=8, n_out=4, lanes=2, events=2.0)
    with pytest.raises(TypeError, match="lanes must be an integer, not True"):
        EventCrossbar(n_in=8, n_out=4, lanes=True, events=2)
    with warnings.catch_warnings():  # the half-built object is reported unused when collected
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError):
            EventCrossbar(8, 4, 2, 4)  # keyword-only
        gc.collect()


def test_events_cycles_refuse_wrong_shape():
    with warnings.catch_warnings():  # never elaborated: reported unused when collected
        warnings.simplefilter("ignore")
        dut = EventCrossbar(n_in=8, n_out=4, lanes=2, events=2)
        with pytest.raises(ValueError, match=r"spikes have shape \(7,\), the crossbar has 8 inputs"):
            dut.cycles(np.zeros(7))
        assert dut.cycles(np.zeros(8)) == 2 * 1 + 1 and dut.cycles(np.ones(8)) == 2 * 4 + 1
        del dut
        gc.collect()


def test_events_match_the_dense_crossbar():
    """The same layer through both crossbars: the same payload layout and the same sums, at the first layer's
    width of the default network (784 inputs; 32 neurons to keep the simulation short)."""
    n_in, n_out, lanes = 784, 32, 16
    seed = 784
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, n_out, n_in)
    density = np.array([0.01, 0.05, 0.2, 1.0, 0.0, 0.01])
    spikes = rng.random((density.size, n_in)) < density[:, None]
    events, per_step, _ = run_events(weights, spikes, lanes=lanes, events=16, seed=seed, readback=False)
    dense, _ = run_crossbar(weights, spikes, lanes=lanes, chunk=64, seed=seed, readback=False)
    assert np.array_equal(events, dense), seeded(seed)
    assert np.array_equal(events, spikes.astype(np.int64) @ weights.T.astype(np.int64)), seeded(seed)
    assert per_step[1:] == event_cycles(spikes[1:], n_out=n_out, lanes=lanes, events=16).tolist(), seeded(seed)
    with warnings.catch_warnings():  # never elaborated: reported unused when collected
        warnings.simplefilter("ignore")
        pair = [EventCrossbar(n_in=n_in, n_out=n_out, lanes=lanes, events=16),
                Crossbar(n_in=n_in, n_out=n_out, lanes=lanes, chunk=64)]
        same = pair[0].o_stream.p.shape() == pair[1].o_stream.p.shape()
        del pair
        gc.collect()
    assert same
