"""The register file against the register table of `spikeloop.regmap`, on Amaranth's simulator.

Every register of every layer of the build is read and written through AXI-Lite: read-only
registers read their readback value and refuse writes, counters read their value (`_LO` latching
`_HI`), run-time registers take exactly the values the table's rules allow, CONTROL pulses,
STATUS reports and clears its sticky bits, and every window access reaches the `MemBus` at
its layer, kind and word (a software window on the other side answers with seeded delays).
"""

from __future__ import annotations

import gc
import random
import warnings

import pytest
from rtlsim import axil_read, axil_write, simulate

from spikeloop import regmap
from spikeloop.config import CoreConfig, LayerConfig
from spikeloop.rtl.common import WINDOW
from spikeloop.rtl.registers import AxiLite, RegisterFile, runtime_layout

STATUS = regmap.register("STATUS")
CONTROL = regmap.register("CONTROL")
CONFIGS = [
    CoreConfig.build((40, 20, 12, 5), lanes=[4, 3, 5], chunk=[8, 6, 12], frac_bits=[4, 8, 3],
                     decay=["shift", "multiply", "shift"], options=[True, False, True]),
    CoreConfig.build((70, 8), lanes=8, chunk=70, bus_width=64, membranes=True, probes=True),
]
#: A value the software window refuses (raises `w_err` for).
REFUSED = 0xBAD


def candidates(register: regmap.Register, layer: LayerConfig | None) -> list[int]:
    if register.name == "PROBE":
        return [register.encode(spikes=1), register.encode(spikes=1, v=1, u=1), 1 << 3, 0xFFFFFFFF, 0]
    if register.fields:
        return [register.encode(neuron=1, reset=2), register.encode(reset=3), 1 << 3, 0xFFFFFFFF,
                register.encode(neuron=0, reset=1)]
    F = layer.frac_bits
    return [1 << F, (1 << F) + 1, 3, 1 << (F - 1), 0, 0xFFFFFFFF, 5]


class Windows:
    """The software side of the `MemBus`: words by (layer, kind, word), answering reads after a
    seeded delay and refusing `REFUSED` (`w_err` in the strobe's cycle); every strobe is logged."""

    def __init__(self, dut, seed: int):
        self.dut, self.rng = dut, random.Random(seed)
        self.words: dict[tuple[int, str, int], int] = {}
        self.log: list[tuple[str, int, str, int]] = []

    async def serve(self, ctx):
        bus = self.dut.windows
        kinds = {code: kind for kind, code in WINDOW.items()}
        while True:
            await ctx.tick()
            ctx.set(bus.r_ack, 0)
            ctx.set(bus.w_err, 0)
            key = (ctx.get(bus.layer), kinds[ctx.get(bus.sel)], ctx.get(bus.addr))
            if ctx.get(bus.w_stb):
                self.log.append(("w", *key))
                if ctx.get(bus.w_data) == REFUSED:
                    ctx.set(bus.w_err, 1)
                else:
                    self.words[key] = ctx.get(bus.w_data)
            if ctx.get(bus.r_stb):
                self.log.append(("r", *key))
                await ctx.tick().repeat(self.rng.randrange(1, 4))
                ctx.set(bus.r_ack, 1)
                ctx.set(bus.r_data, self.words.get(key, 0))


def run_register_file(config: CoreConfig, host, *, seed: int = 0, max_cycles: int = 40_000) -> None:
    """Run `host(ctx, dut, windows, pulses)` against a `RegisterFile` of `config`; `pulses` counts
    the cycles each CONTROL field pulsed."""
    dut = RegisterFile(config=config, window_addr_width=16)
    windows = Windows(dut, seed)
    pulses = {f.name: 0 for f in CONTROL.fields}

    async def control_monitor(ctx):
        async for _, _, *values in ctx.tick().sample(*(dut.control[f.name] for f in CONTROL.fields)):
            for f, value in zip(CONTROL.fields, values):
                pulses[f.name] += value

    async def bench(ctx):
        await host(ctx, dut, windows, pulses)

    simulate(dut, bench, max_cycles=max_cycles, background=(windows.serve, control_monitor))


async def read_status(ctx, dut) -> dict:
    return STATUS.decode(await axil_read(ctx, dut.bus, STATUS.offset))


async def clear_errors(ctx, dut) -> None:
    errors = {f.name: 1 for f in STATUS.fields if f.name.startswith("err_")}
    await axil_write(ctx, dut.bus, STATUS.offset, STATUS.encode(**errors))


def placed(config: CoreConfig):
    """(byte offset, register, layer or None) of every register of the build."""
    yield from ((r.offset, r, None) for r in regmap.GLOBAL_REGISTERS)
    for k in range(len(config.layers)):
        yield from ((regmap.layer_offset(k, r.name), r, k) for r in regmap.LAYER_REGISTERS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.sizes)))
def test_every_register_reads_its_value_and_takes_only_its_writes(config):
    readback = config.readback()
    done = {}

    async def host(ctx, dut, windows, pulses):
        counts = {name: (i + 1) * 0x1_0000_0001 + 0x1234_5678_0000_0000 * i for i, name in enumerate(regmap.COUNTERS)}
        for name, value in counts.items():
            ctx.set(dut.counters[name], value)
        for offset, register, k in placed(config):
            where = f"{register.name} at {offset:#x}"
            if register.access == "ro":
                if offset in readback:
                    assert await axil_read(ctx, dut.bus, offset) == readback[offset], where
                elif register.name.endswith("_LO"):
                    name = register.name[:-3]
                    assert await axil_read(ctx, dut.bus, offset) == counts[name] & 0xFFFFFFFF, where
                    ctx.set(dut.counters[name], counts[name] + (7 << 32))  # _HI returns the latched half
                    hi = regmap.register(f"{name}_HI").offset
                    assert await axil_read(ctx, dut.bus, hi) == counts[name] >> 32, where
                    ctx.set(dut.counters[name], counts[name])
                assert (await read_status(ctx, dut))["err_address"] == 0, where
                before = await axil_read(ctx, dut.bus, offset)
                await axil_write(ctx, dut.bus, offset, ~before)  # refused
                assert (await read_status(ctx, dut))["err_address"] == 1, where
                assert await axil_read(ctx, dut.bus, offset) == before, where
                await clear_errors(ctx, dut)
            elif register.access == "rw":
                layer = config.layers[k] if k is not None else None
                value = 0
                for candidate in candidates(register, layer):
                    await axil_write(ctx, dut.bus, offset, candidate)
                    status = await read_status(ctx, dut)
                    accepted = regmap.judge_write(config, offset, candidate).performed  # the one rule set
                    if accepted:
                        value = candidate
                    assert status["err_param"] == int(not accepted), (where, candidate)
                    assert status["err_address"] == 0, where
                    assert await axil_read(ctx, dut.bus, offset) == value, (where, candidate)
                    await clear_errors(ctx, dut)
                    fields = register.decode(value) if register.fields else {register.name.lower(): value}
                    port = dut.probe if k is None else dut.layers[k]
                    for name, field in fields.items():
                        assert ctx.get(port[name]) == field, (where, name)
            elif register.access == "wo":
                assert await axil_read(ctx, dut.bus, offset) == 0, where
                for f in register.fields:
                    before = dict(pulses)
                    await axil_write(ctx, dut.bus, offset, register.encode(**{f.name: 1}))
                    await ctx.tick()
                    assert {n: pulses[n] - before[n] for n in pulses} == {n: int(n == f.name) for n in pulses}
                assert (await read_status(ctx, dut))["err_address"] == 0, where
        done["all"] = True

    run_register_file(config, host)
    assert done


def test_status_reports_state_and_keeps_errors_until_cleared():
    config = CONFIGS[1]
    done = {}

    async def host(ctx, dut, windows, pulses):
        assert await read_status(ctx, dut) == STATUS.decode(0)
        ctx.set(dut.status.busy, 1)
        ctx.set(dut.status.clearing, 1)
        status = await read_status(ctx, dut)
        assert status["busy"] == 1 and status["clearing"] == 1
        ctx.set(dut.status.busy, 0)
        ctx.set(dut.status.clearing, 0)
        for f in STATUS.fields:
            if f.name.startswith("err_"):
                ctx.set(dut.status[f.name], 1)  # a one-cycle pulse sets the sticky bit
                await ctx.tick()
                ctx.set(dut.status[f.name], 0)
                await ctx.tick().repeat(3)
                assert (await read_status(ctx, dut))[f.name] == 1, f.name
                await axil_write(ctx, dut.bus, STATUS.offset, STATUS.encode(**{f.name: 1}))
                assert (await read_status(ctx, dut))[f.name] == 0, f.name
        # unmapped, unaligned and past-the-last-layer addresses: reads give 0, both flag err_address
        n = len(config.layers)
        for offset in (regmap.layer_offset(n, "N_IN"), regmap.LAYER_BASE - 4, 2,
                       (1 << regmap.address_bits(config)) - 4):
            assert await axil_read(ctx, dut.bus, offset) == 0, hex(offset)
            assert (await read_status(ctx, dut))["err_address"] == 1, hex(offset)
            await clear_errors(ctx, dut)
            await axil_write(ctx, dut.bus, offset, 1)
            assert (await read_status(ctx, dut))["err_address"] == 1, hex(offset)
            await clear_errors(ctx, dut)
        done["all"] = True

    run_register_file(config, host)
    assert done


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.sizes)))
def test_windows_reach_the_bus_at_their_layer_kind_and_word(config):
    done = {}

    async def host(ctx, dut, windows, pulses):
        rng = random.Random(7)
        for w in regmap.windows(config):
            for index in sorted({0, w.words - 1, rng.randrange(w.words)}):
                offset = w.base + regmap.WORD_BYTES * index
                key = (w.layer, w.kind, index)
                value = rng.randrange(1 << 32)
                windows.log.clear()
                await axil_write(ctx, dut.bus, offset, value)
                status = await read_status(ctx, dut)
                if w.writable:
                    assert windows.log[0] == ("w", *key) and windows.words[key] == value, key
                    assert status["err_address"] == 0, key
                else:
                    assert not [e for e in windows.log if e[0] == "w"], key
                    assert status["err_address"] == 1, key
                    windows.words[key] = value
                await clear_errors(ctx, dut)
                assert await axil_read(ctx, dut.bus, offset) == windows.words[key], key
                assert ("r", *key) in windows.log
            if w.words * regmap.WORD_BYTES < w.span:  # past the window's words: unmapped
                windows.log.clear()
                assert await axil_read(ctx, dut.bus, w.end) == 0
                assert not windows.log and (await read_status(ctx, dut))["err_address"] == 1
                await clear_errors(ctx, dut)
        w = regmap.window(config, 0, "theta")
        await axil_write(ctx, dut.bus, w.base, REFUSED)  # the window refuses it
        assert (await read_status(ctx, dut))["err_param"] == 1
        await clear_errors(ctx, dut)
        ctx.set(dut.status.busy, 1)
        await axil_write(ctx, dut.bus, w.base, 5)  # performed, flagged
        ctx.set(dut.status.busy, 0)
        status = await read_status(ctx, dut)
        assert status["err_busy_write"] == 1 and status["err_param"] == 0
        assert await axil_read(ctx, dut.bus, w.base) == 5
        done["all"] = True

    run_register_file(config, host, seed=3)
    assert done


def test_runtime_layout_names_the_layer_controls():
    from spikeloop.rtl.common import LayerControl

    members = LayerControl().members
    for name, shape in runtime_layout().members.items():
        assert name in members and members[name].shape == shape, name


def test_register_file_refuses_bad_parameters():
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        RegisterFile(config=(8, 4), window_addr_width=8)
    with pytest.raises(ValueError, match=r"window_addr_width = 0 is outside \[1, 32\]"):
        RegisterFile(config=CONFIGS[1], window_addr_width=0)
    with pytest.raises(TypeError, match="window_addr_width must be an integer"):
        RegisterFile(config=CONFIGS[1], window_addr_width="8")
    with pytest.raises(ValueError, match="addr_width = 0 is outside"):
        AxiLite(addr_width=0)
    with warnings.catch_warnings():  # the half-built object is reported unused when collected
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError):
            RegisterFile(CONFIGS[1], 8)  # keyword-only
        gc.collect()


def test_register_file_refuses_a_register_it_cannot_serve(monkeypatch):
    from spikeloop.rtl import registers

    spare = regmap.Register("SPARE", regmap.LAYER_BASE - 4, "ro", "A register with no source.")
    monkeypatch.setattr(registers, "GLOBAL_REGISTERS", (*regmap.GLOBAL_REGISTERS, spare))
    with pytest.raises(ValueError, match=r"register SPARE \(ro\) has no source in the register file"):
        RegisterFile(config=CONFIGS[1], window_addr_width=8)
