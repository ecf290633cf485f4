"""Parameter loads by stream on the core (Amaranth's simulator): a load frame sent on s_axis after
CONTROL.load_params leaves every window and run-time register as the golden board leaves them,
with idle cycles on the stream and AXI-Lite reads in the middle; refused frames set err_load,
and a frame for another design writes nothing. The loader's rate is measured."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rtlsim import simulate
from test_rtl_core import axil_read, axil_write, read_status, receive_words, send_words

from spikeloop import golden, paramstream, regmap
from spikeloop.config import CoreConfig
from spikeloop.network import random_network
from spikeloop.rtl.top import Core
from spikeloop.sim.golden_board import GoldenBoard
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes

SEED = 7071
CONTROL = regmap.register("CONTROL")
STATUS = regmap.register("STATUS")
NET = random_network((40, 7, 3), seed=SEED, neuron="cuba", frac_bits=4)
OTHER_NET = random_network((40, 7, 3), seed=SEED + 1, neuron="cuba", frac_bits=4)


def config_for(bus_width):
    return CoreConfig.for_network(NET, lanes=[5, 2], chunk=[14, 7], bus_width=bus_width)


def lasts_of(words):
    lasts = np.zeros(len(words), bool)
    lasts[-1] = True
    return lasts


def golden_after(config, frames):
    board = GoldenBoard(config)
    for words in frames:
        board.write(CONTROL.offset, CONTROL.encode(load_params=1))
        board.send(words, last=True)
    return board, [board.read(o) for o in regmap.writable_offsets(config)]


@pytest.mark.parametrize("bus_width", [32, 64])
def test_a_stream_load_equals_the_golden_boards_then_runs(bus_width):
    config = config_for(bus_width)
    rng = random.Random(SEED)
    dut = Core(config=config)
    first = paramstream.bus_words(paramstream.build_frame(config, OTHER_NET), bus_width)
    second = paramstream.bus_words(paramstream.build_frame(config, NET), bus_width)
    board, want = golden_after(config, [first, second])
    spikes = np.random.default_rng(SEED).random((6, config.n_in)) < 0.4
    trace = golden.run(NET, spikes)
    got = {"polls": 0}
    armed = []

    async def host(ctx):
        for k in range(2):
            await axil_write(ctx, dut, CONTROL.offset, CONTROL.encode(load_params=1))
            armed.append(k)
            while (status := await read_status(ctx, dut))["loading"]:  # AXI-Lite reads while the frame streams
                got["polls"] += 1
            assert not any(status[e] for e in regmap.ERRORS), (k, [e for e in regmap.ERRORS if status[e]])
        got["words"] = [await axil_read(ctx, dut, o) for o in regmap.writable_offsets(config)]
        await axil_write(ctx, dut, CONTROL.offset, CONTROL.encode(clear_state=1))
        armed.append("spikes")

    async def streamer(ctx):
        for k, words in enumerate((first, second)):
            while len(armed) <= k:
                await ctx.tick()
            await send_words(ctx, dut, words, lasts_of(words), rng=rng, stall=0.3 * k)
        while len(armed) <= 2:
            await ctx.tick()
        words = pack_spikes(spikes, bus_width)
        await send_words(ctx, dut, words, lasts_of(words))

    async def sink(ctx):
        got["out"], _ = await receive_words(ctx, dut, 6 * output_words_per_timestep(config))

    simulate(dut, host, streamer, sink, max_cycles=30_000)
    assert got["polls"] > 5, "vacuous: no AXI-Lite read while a frame streamed"
    assert board.read(STATUS.offset) == 0
    assert got["words"] == want, f"windows differ from the golden board's (seed {SEED})"
    assert sum(1 for w in want if w) > 30, "vacuous: the windows hold almost nothing"
    assert np.array_equal(np.array(got["out"]), pack_output(trace.spikes, trace.membranes, config).astype(np.uint64))
    assert trace.spikes.any()


def _frame_cases(config):
    frame = paramstream.build_frame(config, NET)
    other = paramstream.build_frame(CoreConfig.for_network(NET, lanes=[4, 2], chunk=[14, 7]), NET)
    bad_magic = frame.copy()
    bad_magic[0] = 0
    return {
        "hash": other,  # another design's frame
        "magic": bad_magic,
        "truncated": frame[:-4],
        "too_long": np.concatenate([frame, [5, 6, 7]]).astype(np.uint32),
        "segment": np.concatenate([frame[:3], [frame[3], 10_000], frame[5:]]).astype(np.uint32),
    }


@pytest.mark.parametrize("bus_width", [32, 64])
@pytest.mark.parametrize("case", ["hash", "magic", "truncated", "too_long", "segment"])
def test_refused_frames_set_err_load_as_the_golden_board(case, bus_width):
    config = config_for(bus_width)
    words = paramstream.bus_words(_frame_cases(config)[case], bus_width)
    with pytest.raises(paramstream.FrameError) as info:
        paramstream.parse_frame(config, words)
    board, want = golden_after(config, [words])
    assert STATUS.decode(board.read(STATUS.offset))["err_load"] == 1
    if case in ("hash", "magic", "segment"):
        assert not any(want) and info.value.writes == [], "a refused header wrote something"
    dut = Core(config=config)
    words_in = -(-config.n_in // bus_width)
    got = {}

    async def host(ctx):
        await axil_write(ctx, dut, CONTROL.offset, CONTROL.encode(load_params=1))
        await send_words(ctx, dut, words, lasts_of(words))
        for _ in range(4):
            await ctx.tick()
        got["status"] = await read_status(ctx, dut)
        got["words"] = [await axil_read(ctx, dut, o) for o in regmap.writable_offsets(config)]
        # after the refused frame, the stream carries spikes again: one timestep in, one out
        await send_words(ctx, dut, [0] * words_in, [0] * (words_in - 1) + [1])
        got["out"], _ = await receive_words(ctx, dut, output_words_per_timestep(config))

    simulate(dut, host, max_cycles=100_000)
    assert got["status"]["err_load"] == 1 and got["status"]["loading"] == 0, got["status"]
    assert got["words"] == want


def test_one_frame_word_per_clock():
    """The loader's rate: a 32-bit frame streamed without gaps takes about one clock per word."""
    config = config_for(32)
    words = paramstream.build_frame(config, NET)
    cycles = {}

    async def host(ctx):
        await axil_write(ctx, dut, CONTROL.offset, CONTROL.encode(load_params=1))
        start = cycles_counter.now
        await send_words(ctx, dut, words, lasts_of(words))
        cycles["frame"] = cycles_counter.now - start

    from rtlsim import Cycles

    cycles_counter = Cycles()
    dut = Core(config=config)
    simulate(dut, host, max_cycles=50_000, cycles=cycles_counter)
    print(f"{words.size} frame words in {cycles['frame']} clock cycles")
    assert cycles["frame"] <= words.size + 4
