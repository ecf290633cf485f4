"""The gateware decides every register write as `regmap.judge_write` does (Amaranth simulator).

Every global register, every per-layer register of each layer and of one layer too many, the gaps
between them, and the first, last, padding and past-the-end words of every window are written with
values on both sides of each rule, once with the core idle and once with a timestep in flight
(`err_busy_write`). After each write the sticky bits of STATUS must be the ones `judge_write`
names; where the written word can be read back, it must have changed exactly when the function
says the write is performed.
"""

from __future__ import annotations

import pytest
from rtlsim import simulate
from test_rtl_core import axil_read, axil_write, send_words

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.network import signed_range
from spikeloop.rtl.top import Core

STATUS = regmap.register("STATUS")
CLEAR = STATUS.encode(**dict.fromkeys(regmap.ERRORS, 1))
#: Two layers: decay shift and multiply, padding lanes (5 of a stride of 8), padded weight rows
#: (3 words of a stride of 4), an input of two bus words (so that one word leaves a timestep in flight);
#: layer 0 built with contract v2's options, layer 1 without (its MODE takes only the v1 values).
CONFIG = CoreConfig.build((40, 7, 3), lanes=[5, 2], chunk=[14, 7], v_bits=[8, 6], frac_bits=[4, 3],
                          decay=["shift", "multiply"], options=[True, False])
#: The same with layer 0 on the event-driven crossbar: 6 banks in slots of 8 (two padding banks a row).
CONFIG_EVENTS = CoreConfig.build((40, 7, 3), lanes=[5, 2], chunk=[None, 7], events=[6, None], v_bits=[8, 6],
                                 frac_bits=[4, 3], decay=["shift", "multiply"], options=[True, False])


def _register_cases(config):
    """(offset, value, readable) for every register, with values on both sides of each rule."""
    cases = [(r.offset, value, False) for r in regmap.GLOBAL_REGISTERS for value in (0, 0xFFFFFFFF)
             if r.name not in ("CONTROL", "STATUS")]
    cases += [(regmap.register("CONTROL").offset, 0, False), (regmap.register("STATUS").offset, 0, False)]
    cases += [(regmap.LAYER_BASE - 4, 1, False), (2, 1, False)]  # a gap, a misaligned offset
    mode = regmap.layer_register("MODE")
    for k in range(len(config.layers) + 1):
        frac = config.layers[min(k, len(config.layers) - 1)].frac_bits
        for r in regmap.LAYER_REGISTERS:
            offset = regmap.LAYER_BASE + k * regmap.LAYER_STRIDE + r.offset
            if r.name == "MODE":
                tops = {f.name: f.top for f in mode.fields}  # every field at its top, and one past where that exists
                values = (mode.encode(**tops), mode.encode(reset=3, input_shift=5), 3 << mode.field("decay_round").lsb,
                          (tops["input_shift"] + 1) << mode.field("input_shift").lsb, 1 << 13, 0,
                          mode.encode(neuron=1, reset=2))
                # each option one above its v1 value alone: taken with options, refused without
                values += tuple(mode.encode(**{f.name: 1}) for f in mode.fields if f.name not in ("neuron", "reset"))
            elif r.name in ("LAM", "ALPHA"):
                values = (3, 4, 1 << frac, (1 << frac) + 1, 0)
            else:
                values = (0,)
            cases += [(offset, value, r.access == "rw" and k < len(config.layers)) for value in values]
        cases.append((regmap.LAYER_BASE + (k + 1) * regmap.LAYER_STRIDE - 4, 1, False))  # past the block
    return cases


def _window_cases(config):
    """(offset, value, readable) for the edge words of every window, values on both sides of each rule."""
    cases = []
    for w in regmap.windows(config):
        layer = config.layers[w.layer]
        lo, hi = signed_range(layer.v_bits)
        values = {"weights": (0xFFFFFFFF, 0), "theta": (0, 1, hi, hi + 1, -1), "bias": (lo - 1, lo, hi, hi + 1),
                  "v": (5,), "u": (5,)}[w.kind]
        pad = layer.row_words if w.kind == "weights" else layer.lanes  # first padding word of a row / group
        edges = [(0, w.kind in ("theta", "bias")), (pad, False), (w.words - 1, False)]
        if w.kind == "weights" and layer.events is not None:  # the first padding bank of a row
            edges.append((layer.events * layer.weight_window.row_stride, False))
        for index, readable in edges:
            cases += [(w.base + 4 * index, value & 0xFFFFFFFF, readable) for value in values]
        if w.end < w.base + w.span:
            cases.append((w.end, 1, False))  # inside the window's span, past its words
        cases.append((w.base + 1, 1, False))
    return cases


@pytest.mark.parametrize("config", [CONFIG, CONFIG_EVENTS], ids=["dense", "events"])
def test_the_core_judges_every_write_as_the_register_map_does(config):
    dut = Core(config=config)
    idle_cases = _register_cases(config) + _window_cases(config)
    busy_cases = _window_cases(config) + [(regmap.layer_offset(0, "LAM"), 3, True)]
    checked = {"writes": 0, "performed": 0, "refused": 0, "busy": 0}

    async def judge(ctx, cases, busy):
        for offset, value, readable in cases:
            verdict = regmap.judge_write(config, offset, value, busy=busy)
            await axil_write(ctx, dut, STATUS.offset, CLEAR)
            before = await axil_read(ctx, dut, offset) if readable else None
            await axil_write(ctx, dut, offset, value)
            status = STATUS.decode(await axil_read(ctx, dut, STATUS.offset))
            assert status["busy"] == busy, (hex(offset), status)
            got = tuple(name for name in regmap.ERRORS if status[name])
            assert got == verdict.errors, f"write {value:#x} to {offset:#x} (busy {busy}): core {got}, {verdict}"
            if readable:
                after = await axil_read(ctx, dut, offset)
                assert after == (value if verdict.performed else before), (hex(offset), value, verdict)
            checked["writes"] += 1
            checked["performed" if verdict.performed else "refused"] += 1
            checked["busy"] += "err_busy_write" in verdict.errors

    async def host(ctx):
        await judge(ctx, idle_cases, False)
        await send_words(ctx, dut, [1], [0])  # the first of two input words: a timestep in flight
        await judge(ctx, busy_cases, True)

    simulate(dut, host, max_cycles=200_000)
    assert checked["performed"] > 40 and checked["refused"] > 100 and checked["busy"] > 20, checked
