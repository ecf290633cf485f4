"""Helpers for the gateware unit tests on Amaranth's own simulator (async testbenches).

Streams are driven and drained by `put`/`get` with an optional random stall (a seeded
`random.Random`), so that every test runs with and without back-pressure and idle cycles.
`simulate` runs testbenches under a watchdog, so a hung handshake fails instead of hanging.
"""

from __future__ import annotations

import random

import numpy as np
from amaranth.sim import Simulator

from spikeloop.config import LayerConfig
from spikeloop.rtl.common import WINDOW
from spikeloop.windows import pack_neuron_values

PERIOD = 1e-8


class Watchdog(AssertionError):
    """The design did not finish within the cycle budget."""


class Cycles:
    """A cycle counter that testbenches can read (`now`), kept by `simulate`."""

    def __init__(self):
        self.now = 0


def simulate(dut, *testbenches, max_cycles: int, cycles: Cycles | None = None, vcd: str | None = None,
             background=()) -> int:
    """Run `testbenches` (async functions of ctx) to completion, with `background` ones beside them
    (responders, monitors); returns the cycles it took."""
    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    counter = cycles if cycles is not None else Cycles()

    async def watchdog(ctx):
        async for _ in ctx.tick():
            counter.now += 1
            if counter.now > max_cycles:
                raise Watchdog(f"no completion within {max_cycles} cycles")

    sim.add_testbench(watchdog, background=True)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for tb in testbenches:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return counter.now


async def idle(ctx, rng: random.Random | None, stall: float) -> None:
    """Wait a random number of cycles (geometric, mean stall/(1-stall)) when stalling is on."""
    if rng is None or stall <= 0:
        return
    while rng.random() < stall:
        await ctx.tick()


async def put(ctx, stream, payload, *, rng=None, stall: float = 0.0) -> None:
    """Offer one payload and wait for the handshake."""
    await idle(ctx, rng, stall)
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def get(ctx, stream, *, rng=None, stall: float = 0.0):
    """Accept one payload (with random ready gaps when stalling) and return it."""
    while True:
        ready = rng is None or stall <= 0 or rng.random() >= stall
        ctx.set(stream.ready, int(ready))
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            ctx.set(stream.ready, 0)
            return payload


async def bus_write(ctx, bus, sel: str, addr: int, value: int, *, layer: int | None = None) -> bool:
    """One MemBus write; returns whether the target refused it (w_err)."""
    ctx.set(bus.sel, WINDOW[sel])
    ctx.set(bus.addr, addr)
    if layer is not None:
        ctx.set(bus.layer, layer)
    ctx.set(bus.w_data, value & 0xFFFFFFFF)
    ctx.set(bus.w_stb, 1)
    err = ctx.get(bus.w_err)
    await ctx.tick()
    ctx.set(bus.w_stb, 0)
    return bool(err)


async def bus_read(ctx, bus, sel: str, addr: int, *, layer: int | None = None, timeout: int = 1000) -> int:
    """One MemBus read; returns the 32-bit word."""
    ctx.set(bus.sel, WINDOW[sel])
    ctx.set(bus.addr, addr)
    if layer is not None:
        ctx.set(bus.layer, layer)
    ctx.set(bus.r_stb, 1)
    await ctx.tick()
    ctx.set(bus.r_stb, 0)
    for _ in range(timeout):
        if ctx.get(bus.r_ack):
            value = ctx.get(bus.r_data)
            await ctx.tick()
            return value
        await ctx.tick()
    raise Watchdog(f"no r_ack for {sel}[{addr}]")


async def load_layer(ctx, bus, layer_cfg: LayerConfig, layer, *, index: int | None = None) -> None:
    """Write a network layer's weights, thresholds and biases through a MemBus (non-zero words only,
    the memories start at zero)."""
    images = {
        "weights": layer_cfg.weight_window.pack(layer.crossbar_weights),
        "theta": pack_neuron_values(layer.theta, layer_cfg),
        "bias": pack_neuron_values(layer.bias, layer_cfg),
    }
    for sel, image in images.items():
        for addr in map(int, image.nonzero()[0]):
            err = await bus_write(ctx, bus, sel, addr, int(image[addr]), layer=index)
            assert not err, f"{sel}[{addr}] = {int(image[addr]):#x} refused"


def run_crossbar_as_function(dut, image, spikes, *, seed: int, stall: float = 0.0, readback: bool = True,
                             reads: bool = False, max_cycles: int):
    """A crossbar (`Crossbar` or `EventCrossbar`: the same ports) run as a function: write the non-zero words of
    its weights window `image`, read back a spread of words (with `readback`), stream `spikes` [T, n_in] with
    seeded random stalls on both streams (`stall`) and, with `reads`, bus reads of the image while the
    timesteps stream (each checked). Returns (sums [T, n_out], cycles per timestep list, {"output": cycles
    the output was held back, "reads": bus reads served while streaming})."""
    geo = dut.geometry
    lanes, n_groups = geo.lanes, geo.n_groups
    rng = random.Random(seed)
    steps = spikes.shape[0]
    sums = np.zeros((steps, geo.n_out), np.int64)
    done = {"loaded": False}

    async def loader_and_source(ctx):
        for addr in map(int, image.nonzero()[0]):
            assert not await bus_write(ctx, dut.bus, "weights", addr, int(image[addr]))
        if readback:  # a spread of words, including zero ones and padding
            for addr in range(0, image.size, max(1, image.size // 23)):
                got = await bus_read(ctx, dut.bus, "weights", addr)
                assert got == image[addr], f"weights[{addr}] read {got:#x}, wrote {int(image[addr]):#x}"
        done["loaded"] = True
        for t in range(steps):
            bits = sum(1 << int(i) for i in np.flatnonzero(spikes[t]))
            await put(ctx, dut.i_stream, {"spikes": bits, "last": int(t == steps - 1)}, rng=rng, stall=stall)
        done["sent"] = True

    async def sink(ctx):
        while not done["loaded"]:
            await ctx.tick()
        for t in range(steps):
            for g in range(n_groups):
                p = await get(ctx, dut.o_stream, rng=rng, stall=stall)
                assert p.group == g and p.end == (g == n_groups - 1) and p.last == (t == steps - 1)
                for lane in range(lanes):
                    j = g * lanes + lane
                    if j < geo.n_out:
                        sums[t, j] = p.syn[lane]

    cycles_at = []
    held = {"output": 0, "reads": 0}

    async def reader(ctx):  # bus reads while the crossbar runs, checked against the image
        while not done["loaded"]:
            await ctx.tick()
        addr = 0
        while not done.get("sent"):
            got = await bus_read(ctx, dut.bus, "weights", addr)
            assert got == image[addr], f"weights[{addr}] read {got:#x} while running, wrote {int(image[addr]):#x}"
            held["reads"] += 1
            addr = (addr + 7) % image.size
            await ctx.tick().repeat(rng.randrange(1, 6))

    async def timer(ctx):
        while not done["loaded"]:
            await ctx.tick()
        now = 0
        async for _, _, valid, ready, end in ctx.tick().sample(dut.o_stream.valid, dut.o_stream.ready,
                                                                dut.o_stream.p.end):
            now += 1
            held["output"] += valid and not ready
            if valid and ready and end:
                cycles_at.append(now)
                if len(cycles_at) == steps:
                    return

    simulate(dut, loader_and_source, sink, timer, *([reader] if reads else []), max_cycles=max_cycles)
    return sums, np.diff([0, *cycles_at]).tolist(), held


class AxiLitePorts:
    """A core's `s_axi_*` ports under the names of `spikeloop.rtl.registers.AxiLite` (no prefix)."""

    def __init__(self, core):
        self._core = core

    def __getattr__(self, name):
        return getattr(self._core, f"s_axi_{name}")


async def axil_write(ctx, bus, addr: int, data: int) -> None:
    """One AXI-Lite write through `bus` (an `AxiLite` port or `AxiLitePorts`); the response must be OKAY."""
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data & 0xFFFFFFFF)
    ctx.set(bus.wstrb, 0xF)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    await ctx.tick().until(bus.awready & bus.wready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    ctx.set(bus.bready, 1)
    (resp,) = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    assert resp == 0


async def axil_read(ctx, bus, addr: int) -> int:
    """One AXI-Lite read through `bus`; the response must be OKAY. Returns the word."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    data, resp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    assert resp == 0
    return data


def seeded(seed: int) -> str:
    """A message fragment for assertion failures."""
    return f"(seed {seed}; re-run with this seed to reproduce)"
