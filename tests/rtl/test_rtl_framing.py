"""The stream framing as functions against `spikeloop.regmap`'s packing, with seeded stalls, exact equality.

`rtl_deframe` against `unpack_spikes` (truncated timesteps zero-padded), `rtl_frame` against
`pack_output`; both also against the counts they report for the counters.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
from rtlsim import get, put, seeded, simulate

from spikeloop.config import CoreConfig
from spikeloop.rtl.framing import Deframer, Framer
from spikeloop.stream import (
    output_words_per_timestep,
    pack_output,
    pack_spikes,
    unpack_output,
    unpack_spikes,
    words_per_timestep,
)


def bits_int(row) -> int:
    return sum(1 << int(i) for i in np.flatnonzero(row))


def rtl_deframe(words, lasts, *, n: int, bus_width: int, seed: int, stall: float = 0.0):
    """Words and their TLASTs through a `Deframer` -> (spikes [T, n], lasts [T], truncations, spikes counted)."""
    dut = Deframer(n=n, bus_width=bus_width)
    rng = random.Random(seed)
    got = {"spikes": [], "lasts": [], "truncated": 0, "counted": 0}
    steps = len(ref_deframe(words, lasts, n=n, bus_width=bus_width)[1])

    async def source(ctx):
        for word, last in zip(words, lasts):
            await put(ctx, dut.i_stream, {"data": int(word), "last": int(last)}, rng=rng, stall=stall)

    async def sink(ctx):
        for _ in range(steps):
            p = await get(ctx, dut.o_stream, rng=rng, stall=stall)
            got["spikes"].append([(p.spikes >> i) & 1 for i in range(n)])
            got["lasts"].append(p.last)
        got["done"] = True

    async def monitor(ctx):
        after = 0  # cycles sampled after the last timestep: the count comes `COUNT_LATENCY` cycles late
        async for _, _, spikes, truncated in ctx.tick().sample(dut.spikes, dut.truncated):
            got["counted"] += spikes
            got["truncated"] += truncated
            after += "done" in got
            if after > Deframer.COUNT_LATENCY:
                return

    async def holder(ctx):  # `hold` toggles: it may delay timesteps, never change them
        while "done" not in got:
            ctx.set(dut.hold, int(rng.random() < stall))
            await ctx.tick()
        ctx.set(dut.hold, 0)

    simulate(dut, source, sink, monitor, holder, max_cycles=50 * len(words) + 200)
    return (np.array(got["spikes"], bool).reshape(-1, n), np.array(got["lasts"], bool), got["truncated"],
            got["counted"])


def ref_deframe(words, lasts, *, n: int, bus_width: int):
    """The software twin: a timestep ends after its last word or at TLAST; missing words are zero."""
    per = words_per_timestep(n, bus_width)
    rows, step_lasts, truncated, row = [], [], 0, []
    for word, last in zip(words, lasts):
        row.append(int(word))
        if len(row) == per or last:
            truncated += len(row) < per
            rows += row + [0] * (per - len(row))
            step_lasts.append(bool(last))
            row = []
    spikes = unpack_spikes(np.array(rows, dtype=np.uint64), n, bus_width)
    return spikes, np.array(step_lasts, bool), truncated


def transfer(rng, steps: int, n: int, bus_width: int):
    """Words of `steps` timesteps from `pack_spikes`, with garbage in the padding bits, some TLASTs
    closing whole timesteps and some truncating them."""
    per = words_per_timestep(n, bus_width)
    spikes = rng.random((steps, n)) < rng.choice([0.0, 0.1, 0.5, 1.0], size=(steps, 1))
    packed = pack_spikes(spikes, bus_width).astype(np.uint64).reshape(steps, per)
    pad = per * bus_width - n
    if pad:
        garbage = int(rng.integers(0, 1 << pad)) << (bus_width - pad)
        packed[:, -1] |= np.uint64(garbage)
    words, lasts = [], []
    for t in range(steps):
        kind = rng.choice(["whole", "whole", "last", "truncated"]) if t < steps - 1 else "last"
        keep = int(rng.integers(1, per)) if kind == "truncated" and per > 1 else per
        words += packed[t, :keep].tolist()
        lasts += [False] * (keep - 1) + [kind != "whole"]
    return words, lasts


CASES = [(70, 32), (70, 64), (32, 32), (5, 32), (129, 64)]


@pytest.mark.parametrize("n,bus_width", CASES)
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_deframer_matches_unpack_spikes_with_truncation(n, bus_width, stall):
    seed = zlib.crc32(repr(("deframe", n, bus_width, stall)).encode()) % 10_000
    rng = np.random.default_rng(seed)
    words, lasts = transfer(rng, 14, n, bus_width)
    spikes, step_lasts, truncated, counted = rtl_deframe(words, lasts, n=n, bus_width=bus_width, seed=seed,
                                                         stall=stall)
    want, want_lasts, want_truncated = ref_deframe(words, lasts, n=n, bus_width=bus_width)
    where = seeded(seed)
    assert np.array_equal(spikes, want), f"spikes differ {where}"
    assert np.array_equal(step_lasts, want_lasts), f"TLASTs differ {where}"
    assert truncated == want_truncated, where
    assert counted == int(want.sum()), f"spikes counted differ {where}"
    if words_per_timestep(n, bus_width) > 1:
        assert want_truncated > 0


def test_deframer_of_whole_timesteps_is_the_inverse_of_pack_spikes():
    rng = np.random.default_rng(3)
    spikes = rng.random((9, 100)) < 0.3
    words = pack_spikes(spikes, 32)
    lasts = np.zeros(words.size, bool)
    lasts[-1] = True
    got, got_lasts, truncated, counted = rtl_deframe(words, lasts, n=100, bus_width=32, seed=3)
    assert np.array_equal(got, spikes) and got_lasts.tolist() == [False] * 8 + [True]
    assert truncated == 0 and counted == int(spikes.sum())


def rtl_frame(spikes, membranes, lasts, *, config: CoreConfig, seed: int, stall: float = 0.0):
    """Payloads through a `Framer` -> (words, word TLASTs, timesteps counted, spikes counted)."""
    dut = Framer(config=config)
    rng = random.Random(seed)
    steps = spikes.shape[0]
    count = steps * output_words_per_timestep(config)
    got = {"words": [], "lasts": [], "timesteps": 0, "spikes": 0}

    async def source(ctx):
        for t in range(steps):
            payload = {"spikes": bits_int(spikes[t]), "last": int(lasts[t])}
            if config.membranes:
                payload["v"] = [int(x) for x in membranes[t]]
            await put(ctx, dut.i_stream, payload, rng=rng, stall=stall)

    async def sink(ctx):
        for _ in range(count):
            p = await get(ctx, dut.o_stream, rng=rng, stall=stall)
            got["words"].append(p.data)
            got["lasts"].append(p.last)
        got["done"] = True

    async def monitor(ctx):
        after = 0  # cycles sampled after the last word: the count comes `COUNT_LATENCY` cycles late
        async for _, _, timestep, spikes_out in ctx.tick().sample(dut.timestep, dut.spikes):
            got["timesteps"] += timestep
            got["spikes"] += spikes_out
            after += "done" in got
            if after > Framer.COUNT_LATENCY:
                return

    simulate(dut, source, sink, monitor, max_cycles=50 * count + 200)
    return np.array(got["words"], np.uint64), np.array(got["lasts"], bool), got["timesteps"], got["spikes"]


@pytest.mark.parametrize("sizes,membranes,bus_width,v_bits", [
    ((8, 40), False, 32, 16),
    ((8, 40), True, 32, 16),
    ((8, 5), True, 64, 12),  # 5 membranes in 64-bit words: a padded field
    ((8, 70), True, 64, 32),
    ((8, 1), False, 64, 2),
])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_framer_matches_pack_output(sizes, membranes, bus_width, v_bits, stall):
    seed = zlib.crc32(repr(("frame", sizes, membranes, bus_width, v_bits, stall)).encode()) % 10_000
    rng = np.random.default_rng(seed)
    config = CoreConfig.build(sizes, lanes=1, v_bits=v_bits, membranes=membranes, bus_width=bus_width)
    steps, n = 10, config.n_out
    spikes = rng.random((steps, n)) < rng.choice([0.0, 0.3, 1.0], size=(steps, 1))
    lo, hi = -(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1
    v = rng.integers(lo, hi + 1, size=(steps, n))
    v[0, 0], v[1, -1] = lo, hi  # both rails
    lasts = rng.random(steps) < 0.3
    lasts[-1] = True
    words, word_lasts, timesteps, counted = rtl_frame(spikes, v, lasts, config=config, seed=seed, stall=stall)
    want = pack_output(spikes, v, config)
    per = output_words_per_timestep(config)
    where = seeded(seed)
    assert np.array_equal(words, want.astype(np.uint64)), f"words differ {where}"
    assert np.flatnonzero(word_lasts).tolist() == (np.flatnonzero(lasts) * per + per - 1).tolist(), where
    assert timesteps == steps and counted == int(spikes.sum()), where
    spikes_back, v_back = unpack_output(words, config)
    assert np.array_equal(spikes_back, spikes)
    assert v_back is None if not membranes else np.array_equal(v_back, v)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"n": 0, "bus_width": 32}, ValueError, "n = 0 is outside"),
    ({"n": 8, "bus_width": 48}, ValueError, "bus_width must be one of 32, 64, not 48"),
    ({"n": 8.0, "bus_width": 32}, TypeError, "n must be an integer, not 8.0"),
])
def test_deframer_refuses_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        Deframer(**kwargs)


def test_framer_refuses_bad_parameters():
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        Framer(config=(8, 4))
