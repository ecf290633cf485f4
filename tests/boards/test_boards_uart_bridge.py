"""The ULX3S host link's gateware: UART frames -> the core's AXI-Lite and streams, on Amaranth's simulator.

The bridge is driven at the pin level (8N1, 4 clocks per bit; the identity read also at the ULX3S's
100): identity read, a network loaded with `windows.load_writes`, timesteps streamed in lock-step,
every output word compared with `stream.pack_output` of the golden model.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from spikeloop import golden, regmap
from spikeloop.boards import ulx3s
from spikeloop.boards.devices import BOARDS
from spikeloop.boards.uart_bridge import UARTBridge
from spikeloop.config import CoreConfig
from spikeloop.network import random_network
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes
from spikeloop.uartlink import FRAMES, frame_read, frame_stream, frame_write, parse_replies
from spikeloop.windows import load_writes

DIVISOR = 4


class CoreOverUART(Elaboratable):
    def __init__(self, config, divisor=DIVISOR):
        self.config = config
        self.bridge = UARTBridge(config=config, divisor=divisor)

    def elaborate(self, platform):
        from spikeloop.rtl import Core
        from spikeloop.rtl.top import axi_members

        m = Module()
        m.submodules.core = core = Core(config=self.config)
        m.submodules.bridge = bridge = self.bridge
        for name, member in axi_members(self.config).items():
            src, dst = (bridge, core) if member.flow.name == "In" else (core, bridge)
            m.d.comb += getattr(dst, name).eq(getattr(src, name))
        return m


def run_over_uart(config, script, *, max_cycles=400_000, divisor=DIVISOR):
    """Run `await script(send, wait_bytes, received)` against the core behind the bridge (`divisor` clocks
    per bit); returns the board's bytes."""
    dut = CoreOverUART(config, divisor)
    bridge = dut.bridge
    received = bytearray()

    async def sender(ctx):
        async def send(data: bytes):
            for byte in data:
                for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                    ctx.set(bridge.rx, bit)
                    await ctx.tick().repeat(divisor)

        async def wait_bytes(n):
            for _ in range(max_cycles):
                if len(received) >= n:
                    return
                await ctx.tick()
            raise AssertionError(f"waited for {n} reply bytes, got {len(received)}: {bytes(received).hex()}")

        await script(send, wait_bytes, received)

    # Background testbenches use plain ticks: `repeat`/`until` generators left open at the end of
    # the simulation raise warnings when they are closed.
    async def ticks(ctx, n):
        for _ in range(n):
            await ctx.tick()

    async def receiver(ctx):
        while True:
            while ctx.get(bridge.tx):  # wait for a start bit
                await ctx.tick()
            await ticks(ctx, divisor // 2)
            byte = 0
            for i in range(8):
                await ticks(ctx, divisor)
                byte |= ctx.get(bridge.tx) << i
            await ticks(ctx, divisor)
            assert ctx.get(bridge.tx) == 1, "missing stop bit"
            received.append(byte)

    async def watchdog(ctx):
        await ticks(ctx, max_cycles)
        raise AssertionError(f"no completion within {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(sender)
    sim.add_testbench(receiver, background=True)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    return bytes(received)


def test_frames_round_trip():
    assert frame_write(0x1234, -1) == bytes([1, 0x34, 0x12, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
    assert frame_read(8) == bytes([2, 8, 0, 0, 0])
    assert frame_stream(0xA5, True) == bytes([3, 1, 0xA5, 0, 0, 0])
    data = bytes([0x81, 0x82, 1, 2, 3, 4, 0x84, 1, 9, 0, 0, 0, 0x82])
    assert parse_replies(data) == [("ack", None), ("read", 0x04030201), ("output", (9, True))]
    with pytest.raises(ValueError, match="unexpected byte"):
        parse_replies(b"\x00")


def test_bridge_rejects_bad_parameters():
    with pytest.raises(ValueError, match="divisor"):
        UARTBridge(config=CoreConfig.build((4, 2)), divisor=2)
    with pytest.raises(TypeError, match="CoreConfig"):
        UARTBridge(config="784,10", divisor=8)


@pytest.mark.parametrize("divisor", [DIVISOR, ulx3s.clocking(BOARDS["ulx3s"].clock_mhz)[1]],
                         ids=["fast", "ulx3s-clock"])
def test_identity_and_run_time_registers_over_uart(divisor):
    """At 4 clocks per bit and at the ULX3S's (100 clocks per bit at 100 MHz and 1 Mbaud)."""
    config = CoreConfig.build((12, 4), lanes=2, chunk=4)
    magic, lam = regmap.register("MAGIC").offset, regmap.layer_offset(0, "LAM")

    async def script(send, wait, received):
        await send(frame_read(magic))
        await wait(5)
        await send(b"\x7f" + frame_write(lam, 4))  # an unknown command byte is dropped
        await wait(6)
        await send(frame_read(lam))
        await wait(11)

    replies = parse_replies(run_over_uart(config, script, max_cycles=100 * 40 * divisor, divisor=divisor))
    assert replies == [("read", regmap.MAGIC), ("ack", None), ("read", 4)]


@pytest.mark.parametrize("seed", [3])
def test_network_over_uart_matches_golden(seed):
    network = random_network((12, 6, 4), seed=seed, theta=3)
    config = CoreConfig.for_network(network, lanes=[2, 3], chunk=[4, 3])
    steps = 6
    spikes = np.random.default_rng(seed).random((steps, 12)) < 0.4
    words = pack_spikes(spikes, config.bus_width).reshape(steps, -1)
    per_out = output_words_per_timestep(config)
    writes = load_writes(config, network)

    async def script(send, wait, received):
        for k, (addr, value) in enumerate(writes):
            await send(frame_write(addr, value))
            await wait(k + 1)
        base = len(writes)
        for t in range(steps):
            for i, word in enumerate(words[t]):
                await send(frame_stream(int(word), t == steps - 1 and i == len(words[t]) - 1))
            await wait(base + (t + 1) * per_out * (2 + config.bus_width // 8))

    replies = parse_replies(run_over_uart(config, script, max_cycles=2_000_000))
    assert [kind for kind, _ in replies[: len(writes)]] == ["ack"] * len(writes)
    outputs = [value for kind, value in replies[len(writes):]]
    assert all(kind == "output" for kind, _ in replies[len(writes):])
    got = np.array([word for word, _ in outputs], dtype=np.uint32)
    lasts = [last for _, last in outputs]
    trace = golden.run(network, spikes)
    assert trace.spikes.any(), f"seed {seed}: the network never spikes; the comparison would be vacuous"
    expected = pack_output(trace.spikes, trace.membranes, config)
    np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}")
    assert lasts == [False] * (len(lasts) - 1) + [True]
    assert FRAMES["OUTPUT"] == 0x84
