"""The counters and the state clear as functions against their software twins, cycle by cycle."""

from __future__ import annotations

import random

import pytest
from rtlsim import seeded, simulate

from spikeloop.regmap import COUNTERS
from spikeloop.rtl.clear import StateClear
from spikeloop.rtl.counters import COUNTER_BITS, Counters


def test_counter_names_come_from_the_register_table():
    assert COUNTERS == ("TIMESTEPS", "SPIKES_IN", "SPIKES_OUT", "BUSY_CYCLES")


@pytest.mark.parametrize("seed,low_bits", [(1, 32), (2, 32), (3, 3), (4, 1)])
def test_counters_add_their_increments_and_clear(seed, low_bits):
    """Cycle by cycle, `LATENCY` cycles late; a narrow low half carries into the high one often."""
    rng = random.Random(seed)
    widths = {name: rng.choice([1, 3, 7]) for name in COUNTERS}
    dut = Counters(widths=widths, low_bits=low_bits)
    twin = dict.fromkeys(widths, 0)
    history = [dict(twin)] * Counters.LATENCY
    carries = {"seen": 0}

    async def bench(ctx):
        for cycle in range(400):
            for name, count in history[-Counters.LATENCY].items():
                assert ctx.get(dut.count[name]) == count, (cycle, name, seeded(seed))
                carries["seen"] += count >= 1 << low_bits
            clear = rng.random() < 0.03
            incs = {name: rng.randrange(1 << w) for name, w in widths.items()}
            for name, inc in incs.items():
                ctx.set(dut.inc[name], inc)
            ctx.set(dut.clear, int(clear))
            await ctx.tick()
            for name in twin:
                twin[name] = 0 if clear else (twin[name] + incs[name]) % (1 << COUNTER_BITS)
            history.append(dict(twin))

    simulate(dut, bench, max_cycles=1000)
    assert carries["seen"] > 0 or low_bits == 32  # the narrow low halves carried


@pytest.mark.parametrize("widths,error,message", [
    ({"TIMESTEPS": 1}, ValueError, "widths has no entry for the counter 'SPIKES_IN'"),
    ({**dict.fromkeys(COUNTERS, 1), "CYCLES": 1}, ValueError, "widths names 'CYCLES', which is not a counter"),
    ({**dict.fromkeys(COUNTERS, 1), "SPIKES_IN": 0}, ValueError, r"widths\['SPIKES_IN'\] = 0 is outside \[1, 64\]"),
    ({**dict.fromkeys(COUNTERS, 1), "SPIKES_IN": 2.0}, TypeError, r"widths\['SPIKES_IN'\] must be an integer"),
    (list(COUNTERS), TypeError, "widths must be a dict"),
])
def test_counters_refuse_bad_parameters(widths, error, message):
    with pytest.raises(error, match=message):
        Counters(widths=widths)


@pytest.mark.parametrize("low_bits", [0, 64])
def test_counters_refuse_a_bad_low_half(low_bits):
    with pytest.raises(ValueError, match=rf"low_bits = {low_bits} is outside \[1, 63\]"):
        Counters(widths=dict.fromkeys(COUNTERS, 1), low_bits=low_bits)


class ClearTwin:
    """The state clear in software: a request waits for a quiet core, pulses once a clock after it saw
    it quiet, then holds new timesteps until the layers have cleared."""

    def __init__(self):
        self.requested = self.running = self.settled = False

    def outputs(self, quiet: bool, layers_clearing: bool) -> dict:
        return {"clear": self.requested and self.settled, "hold": self.requested or self.running,
                "clearing": self.requested or self.running or layers_clearing}

    def step(self, start: bool, quiet: bool, layers_clearing: bool) -> None:
        clear, self.settled = self.requested and self.settled, quiet and self.requested and not self.settled
        if clear:
            self.requested, self.running = False, True
        elif self.running and not layers_clearing:
            self.running = False
        if start:
            self.requested = True


@pytest.mark.parametrize("seed", [3, 4])
def test_state_clear_matches_its_twin(seed):
    rng = random.Random(seed)
    dut = StateClear()
    twin = ClearTwin()
    seen = {"pulses": 0}

    async def bench(ctx):
        for cycle in range(2000):
            start, quiet, layers = rng.random() < 0.05, rng.random() < 0.4, rng.random() < 0.5
            ctx.set(dut.start, start)
            ctx.set(dut.quiet, quiet)
            ctx.set(dut.layers_clearing, layers)
            for name, value in twin.outputs(quiet, layers).items():
                assert ctx.get(getattr(dut, name)) == value, (cycle, name, seeded(seed))
            seen["pulses"] += ctx.get(dut.clear)
            twin.step(start, quiet, layers)
            await ctx.tick()

    simulate(dut, bench, max_cycles=3000)
    assert seen["pulses"] > 10


def test_state_clear_waits_for_a_quiet_core_and_pulses_once():
    dut = StateClear()

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(5):  # a timestep in flight: no pulse, new timesteps held
            assert ctx.get(dut.hold) and ctx.get(dut.clearing) and not ctx.get(dut.clear)
            await ctx.tick()
        ctx.set(dut.quiet, 1)
        assert not ctx.get(dut.clear)
        await ctx.tick()  # seen quiet: the pulse
        assert ctx.get(dut.clear)
        await ctx.tick()
        assert not ctx.get(dut.clear)
        ctx.set(dut.layers_clearing, 1)  # the layers zero their state
        await ctx.tick().repeat(3)
        assert ctx.get(dut.hold) and not ctx.get(dut.clear)
        ctx.set(dut.layers_clearing, 0)
        await ctx.tick()
        assert not ctx.get(dut.hold) and not ctx.get(dut.clearing)

    simulate(dut, bench, max_cycles=100)
