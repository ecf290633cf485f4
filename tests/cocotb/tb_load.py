"""cocotb bench of parameter loads by stream on the generated core (Verilator).

Launched by tests/cocotb/test_cocotb_load.py with `SPIKELOOP_CASES` naming one case file (`tb_core`'s
format; the case's `transfers[0]` is run after the load). Scenario: a load frame built for another
design is refused (err_load) and writes nothing; then the network's frame, sent with idle cycles
on s_axis while STATUS is polled over AXI-Lite, leaves every run-time register and window word as
the golden board leaves them after the same two frames; then a transfer of spikes with
backpressure on m_axis gives the golden model's output word for word.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from tb_core import TB, read_case

from spikeloop import golden, paramstream, regmap
from spikeloop.config import CoreConfig
from spikeloop.sim.golden_board import GoldenBoard
from spikeloop.stream import pack_output, pack_spikes

CONTROL = regmap.register("CONTROL")
STATUS = regmap.register("STATUS")


def other_design(config: CoreConfig, network) -> CoreConfig:
    """A core for the same network with one lane more in layer 0: another design hash."""
    lanes = [c.lanes for c in config.layers]
    return CoreConfig.for_network(network, lanes=[lanes[0] + 1, *lanes[1:]], chunk=[c.chunk for c in config.layers],
                                  bus_width=config.bus_width,
                                  membranes=config.membranes)


async def load(tb: TB, words: np.ndarray) -> tuple[dict, int]:
    """Arm a load, send the frame, poll STATUS until `loading` clears; returns (STATUS, polls)."""
    await tb.write(CONTROL.offset, CONTROL.encode(load_params=1))
    await tb.send(words)
    polls = 0
    while (status := await tb.status())["loading"]:
        polls += 1
        if polls > 20 * words.size + 100:
            raise AssertionError(f"the load did not end after {polls} STATUS polls: {status}")
    return status, polls


@cocotb.test()
async def load_by_stream(dut):
    path = Path(os.environ["SPIKELOOP_CASES"].split(os.pathsep)[0])
    case = read_case(path)
    config, network = case["config"], case["network"]
    tb = TB(dut, config, seed=case["seed"])
    await tb.reset()
    bad = paramstream.bus_words(paramstream.build_frame(other_design(config, network), network), config.bus_width)
    good = paramstream.bus_words(paramstream.build_frame(config, network), config.bus_width)
    board = GoldenBoard(config)
    for words in (bad, good):
        board.write(CONTROL.offset, CONTROL.encode(load_params=1))
        board.send(words, last=True)
    offsets = regmap.writable_offsets(config)

    status, _ = await load(tb, bad)
    assert status["err_load"] == 1, f"a frame for another design was taken: {status}"
    assert all([await tb.read(o) == 0 for o in offsets]), "a frame for another design wrote something"
    await tb.write(STATUS.offset, STATUS.encode(err_load=1))

    tb.set_idle_generator(case["idle"])
    status, polls = await load(tb, good)
    assert not any(status[name] for name in regmap.ERRORS), f"the good frame was refused: {status}"
    got = [await tb.read(o) for o in offsets]
    want = [board.read(o) for o in offsets]
    bad_words = [hex(o) for o, g, w in zip(offsets, got, want) if g != w]
    assert not bad_words, f"{len(bad_words)} words differ from the golden board's, the first at {bad_words[:3]}"
    assert sum(1 for w in want if w) > 30, "vacuous: the windows hold almost nothing"

    tb.set_idle_generator(0)
    tb.set_backpressure_generator(case["backpressure"])
    spikes = case["transfers"][0]
    await tb.send(pack_spikes(spikes, config.bus_width))
    out = await tb.recv(200_000)
    trace = golden.run(network, spikes)
    expected = pack_output(trace.spikes, trace.membranes, config)
    assert np.array_equal(out, expected.astype(out.dtype)), "the output after the stream load differs from golden"
    assert trace.spikes.any(), "vacuous: no output spikes"
    path.with_suffix(".result.json").write_text(json.dumps({
        "words_compared": len(offsets), "frame_words": int(good.size), "status_polls_during_load": polls,
        "output_words": int(expected.size)}))
