"""cocotb testbench of the generated core (`spikeloop_core`), run on Verilator.

Launched by tests/cocotb through `cocotb_tools.runner` with `SPIKELOOP_CASES` naming case files
(JSON, written by `write_case`, separated by os.pathsep): the configuration, the network image,
the input transfers, the seed, the idle/backpressure rates and the directed events of the case.
One TB class drives AXI-Lite (`AxiLiteMaster`) and both streams (`AxiStreamSource`/`AxiStreamSink`
with pause generators); a scoreboard compares every output word with `stream.pack_output` of
the golden model.

Events a case can ask for, per transfer index:
- `clear_before`: a state clear (CONTROL.clear_state) while the core is idle;
- `clear_during`: a state clear written while the transfer streams; the core applies it at a
  timestep boundary `k` of its choosing, so the output must equal the golden model run on
  the first `k` timesteps and then, from a zero state, on the rest, for one `k` inside the transfer;
- `reset_during`: an `aresetn` pulse while the transfer streams: its output is dropped, the
  run-time registers are written again (the memories keep weights, thresholds and biases) and
  the following transfers must run from a zero state;
- `truncate`: drop that many words from the end of the transfer (a TLAST before the end of a
  timestep): the sticky `err_truncated` must be set and the transfer still closed by TLAST;
- `probes`: the PROBE value of each transfer (a core built with probes), written before it when it
  changes; the output then carries every layer's selected sections (`pack_output(..., probe=)`).
With `back_to_back` all transfers are queued at once, so each starts right behind the previous
TLAST; otherwise each transfer's output is taken before the next is sent.

The test writes `<case>.result.json` next to each case (words and neuron-timesteps compared,
busy cycles), or `<case>.failure.json` (message, transfer, timestep) when a check fails.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
from pathlib import Path

import cocotb
import numpy as np

from spikeloop import golden, regmap
from spikeloop.config import CoreConfig, max_timestep_cycles
from spikeloop.network import Network
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes, unpack_spikes, words_per_timestep
from spikeloop.windows import layer_control_values, load_writes

__all__ = ["TB", "write_case", "read_case", "effective_spikes", "CaseFailure"]


def write_case(path, *, config: CoreConfig, network: Network, transfers, seed: int, idle: float = 0.0,
               backpressure: float = 0.0, clear_before=(), clear_during=(), reset_during=(), truncate=None,
               back_to_back: bool = False, probes=None) -> Path:
    """Write a case file for the bench. `transfers`: list of bool [T, n_in] arrays.

    `truncate`: {transfer index: words dropped from its end}. See the module docstring for the
    events. Events that need an idle core (`clear_before`) or watch one transfer at a time
    (`clear_during`, `reset_during`) cannot be combined with `back_to_back`.
    """
    truncate = {int(k): int(v) for k, v in (truncate or {}).items()}
    if back_to_back and (clear_before or clear_during or reset_during):
        raise ValueError("back_to_back transfers cannot have clears or resets between them")
    for name, indices in (("clear_before", clear_before), ("clear_during", clear_during),
                          ("reset_during", reset_during), ("truncate", truncate)):
        bad = [k for k in indices if not 0 <= k < len(transfers)]
        if bad:
            raise ValueError(f"{name}: no transfer {bad[0]}")
    for k in list(clear_during) + list(reset_during):
        if len(transfers[k]) < 12:
            raise ValueError(f"transfer {k} is too short ({len(transfers[k])} timesteps) to be cut in the middle")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = path.with_suffix(".network.npz")
    network.save(image)
    spikes = path.with_suffix(".spikes.npz")
    np.savez_compressed(spikes, **{f"t{k}": np.asarray(t, bool) for k, t in enumerate(transfers)})
    case = {
        "config": config.params(), "network": str(image), "spikes": str(spikes), "transfers": len(transfers),
        "seed": seed, "idle": idle, "backpressure": backpressure, "clear_before": sorted(clear_before),
        "clear_during": sorted(clear_during), "reset_during": sorted(reset_during),
        "truncate": {str(k): v for k, v in sorted(truncate.items())}, "back_to_back": back_to_back,
        "probes": [int(p) for p in probes] if probes is not None else [0] * len(transfers),
    }
    if len(case["probes"]) != len(transfers) or (any(case["probes"]) and (back_to_back or not config.probes)):
        raise ValueError("probes: one PROBE value per transfer, on a core built with probes, not back to back")
    path.write_text(json.dumps(case, indent=1))
    return path


def read_case(path) -> dict:
    """The case as objects: config, network, transfers and the settings."""
    case = json.loads(Path(path).read_text())
    case["config"] = CoreConfig.from_params(case["config"])
    case["network"] = Network.load(case["network"])
    with np.load(case["spikes"]) as npz:
        case["transfers"] = [npz[f"t{k}"] for k in range(case["transfers"])]
    case["truncate"] = {int(k): v for k, v in case["truncate"].items()}
    case.setdefault("probes", [0] * len(case["transfers"]))
    return case


def effective_spikes(spikes, drop_words: int, config: CoreConfig) -> np.ndarray:
    """What the core computes for a transfer missing its last `drop_words` words (zero-padded)."""
    if not drop_words:
        return np.asarray(spikes, bool)
    per = words_per_timestep(config.n_in, config.bus_width)
    words = pack_spikes(spikes, config.bus_width)[: -drop_words]
    steps = -(-words.size // per)
    padded = np.zeros(steps * per, words.dtype)
    padded[: words.size] = words
    return unpack_spikes(padded, config.n_in, config.bus_width)


class CaseFailure(AssertionError):
    """A check of the bench failed; `record` says where (written to `<case>.failure.json`)."""

    def __init__(self, message: str, **record):
        super().__init__(message)
        self.record = {"message": message, **record}


class TB:
    """The bench around one `spikeloop_core`: clock, active-low reset, AXI-Lite and both streams."""

    def __init__(self, dut, config: CoreConfig, *, seed: int):
        from cocotb.clock import Clock
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink, AxiStreamSource

        self.dut = dut
        self.config = config
        self.rng = random.Random(seed)
        self.memory: dict[int, int] = {}  # window words written so far (the memories start at 0)
        for prefix in ("s_axis", "m_axis", "s_axi"):  # per-transaction INFO logs cost more than the sim
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.ERROR)
        cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn,
                                      reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)

    def _pauses(self, rate: float):
        rng = random.Random(self.rng.random())
        return (rng.random() < rate for _ in itertools.count())

    def _set_pauses(self, driver, rate: float) -> None:
        driver.set_pause_generator(self._pauses(rate) if rate > 0 else None)
        if rate <= 0:
            driver.pause = False  # removing a generator leaves its last value, which may be a pause

    def set_idle_generator(self, rate: float) -> None:
        """Random gaps between input words (none for rate 0)."""
        self._set_pauses(self.source, rate)

    def set_backpressure_generator(self, rate: float) -> None:
        """Random TREADY low on the output (none for rate 0)."""
        self._set_pauses(self.sink, rate)

    async def reset(self) -> None:
        """Pulse aresetn; the stream drivers drop what they were sending or receiving."""
        from cocotb.triggers import ClockCycles

        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 5)
        self.dut.aresetn.value = 1
        self.source.clear()
        self.sink.clear()
        await ClockCycles(self.dut.aclk, 2)

    async def read(self, offset: int) -> int:
        return await self.axil.read_dword(offset)

    async def write(self, offset: int, value: int) -> None:
        await self.axil.write_dword(offset, value)

    async def identify(self) -> CoreConfig:
        """Read the identity and configuration back, as a driver would."""
        values = {}
        for offset in sorted(self.config.readback()):
            values[offset] = await self.read(offset)
        return CoreConfig.from_readback(values.__getitem__)

    async def load(self, network: Network) -> None:
        """Load a network. The memories keep their words through resets (and start at 0), so the
        window words equal to what the bench wrote last are skipped; the registers are always written."""
        for offset, value in load_writes(self.config, network):
            if regmap.decode_address(self.config, offset)[0] == "window":
                if self.memory.get(offset, 0) == value:
                    continue
                self.memory[offset] = value
            await self.write(offset, value)

    async def load_controls(self, network: Network) -> None:
        """Write the run-time registers only (MODE, LAM, ALPHA): what a reset clears."""
        for k, layer in enumerate(network.layers):
            for name, value in layer_control_values(layer).items():
                await self.write(regmap.layer_offset(k, name), value)

    async def request_clear(self) -> None:
        control = regmap.register("CONTROL")
        await self.write(control.offset, control.encode(clear_state=1))

    async def wait_cleared(self) -> None:
        while (await self.status())["clearing"]:
            pass

    async def clear_state(self) -> None:
        await self.request_clear()
        await self.wait_cleared()

    def _frame(self, words: np.ndarray):
        from cocotbext.axi import AxiStreamFrame

        dtype = "<u4" if self.config.bus_width == 32 else "<u8"
        return AxiStreamFrame(np.asarray(words).astype(dtype).tobytes())

    async def send(self, words: np.ndarray) -> None:
        await self.source.send(self._frame(words))

    async def recv(self, timeout_cycles: int | None = None) -> np.ndarray:
        """The next output frame (up to TLAST); SimTimeoutError after `timeout_cycles` without it."""
        from cocotb.triggers import with_timeout

        if timeout_cycles is None:
            frame = await self.sink.recv()
        else:
            frame = await with_timeout(self.sink.recv(), timeout_cycles * 10, "ns")
        dtype = "<u4" if self.config.bus_width == 32 else "<u8"
        return np.frombuffer(bytes(frame.tdata), dtype=dtype)

    async def status(self) -> dict:
        status = regmap.register("STATUS")
        return status.decode(await self.read(status.offset))

    async def counter(self, name: str) -> int:
        lo = await self.read(regmap.register(f"{name}_LO").offset)
        return (await self.read(regmap.register(f"{name}_HI").offset)) << 32 | lo

    async def wait_timesteps(self, count: int) -> None:
        """Poll the TIMESTEPS counter (AXI-Lite reads are served while streaming) until it reaches `count`."""
        while await self.counter("TIMESTEPS") < count:
            pass


@cocotb.test()
async def run_cases(dut):
    """For each case of `SPIKELOOP_CASES`: reset, identify, load, stream, compare every output word."""
    tb = None
    for path in os.environ["SPIKELOOP_CASES"].split(os.pathsep):
        case = read_case(path)
        if tb is None:  # one TB: its stream drivers keep running once started
            tb = TB(dut, case["config"], seed=case["seed"])
        assert case["config"] == tb.config, f"{path}: all cases of a run share the build's configuration"
        tb.rng.seed(case["seed"])
        path = Path(path)
        try:
            await Case(dut, tb, case, path).run_with_watchdog()
        except CaseFailure as failure:
            path.with_suffix(".failure.json").write_text(json.dumps({"case": path.stem, **failure.record}))
            raise


class Case:
    """One case: its scoreboard and its events."""

    def __init__(self, dut, tb: TB, case: dict, path: Path):
        self.dut, self.tb, self.case, self.path = dut, tb, case, path
        self.config, self.network = case["config"], case["network"]
        self.per_out = output_words_per_timestep(self.config)
        self.per_in = words_per_timestep(self.config.n_in, self.config.bus_width)
        self.states = None  # golden state carried between transfers
        self.words = self.timesteps = self.neuron_steps = 0  # compared
        self.since_reset = 0  # timesteps output since the last reset
        self.truncated = False  # a truncation inside a timestep since the last reset
        self.probe = 0  # the PROBE value written (0 after a reset)

    def fail(self, message: str, transfer: int | None = None, timestep: int | None = None):
        where = f"case {self.path.stem} ({self.path}), seed {self.case['seed']}"
        raise CaseFailure(f"{message} [{where}]", transfer=transfer, timestep=timestep, seed=self.case["seed"])

    def golden(self, spikes, states, probe: int = 0):
        trace = golden.run(self.network, spikes, states=states, record=True)
        return pack_output(trace.spikes, trace.membranes, self.config, probe=probe, layers=trace.layers), trace

    async def set_probe(self, probe: int) -> None:
        """Write PROBE when it differs from what the core holds (the core is idle here)."""
        if probe != self.probe:
            await self.tb.write(regmap.register("PROBE").offset, probe)
            self.probe = probe

    def inputs(self, k: int):
        """Words sent and spikes computed for transfer k."""
        spikes = self.case["transfers"][k]
        drop = self.case["truncate"].get(k, 0)
        words = pack_spikes(spikes, self.config.bus_width)
        if drop:
            words = words[:-drop]
            self.truncated |= drop % self.per_in != 0  # dropping whole timesteps is no truncation
        return words, effective_spikes(spikes, drop, self.config)

    async def recv(self, k: int, steps: int) -> np.ndarray:
        """Transfer k's output; a core that never closes it with TLAST fails the case instead of hanging."""
        from cocotb.triggers import SimTimeoutError

        limit = 4 * steps * max_timestep_cycles(self.config) + 2000
        try:
            return await self.tb.recv(limit)
        except SimTimeoutError:
            self.fail(f"transfer {k}: no output TLAST within {limit} cycles ({steps} timesteps in)", k)

    def compare(self, k: int, got: np.ndarray, want: np.ndarray, trace) -> None:
        if got.size != want.size:
            self.fail(f"transfer {k}: {got.size} words out, expected {want.size}", k)
        bad = np.flatnonzero(got != want)
        if bad.size:
            t = int(bad[0] // (want.size // trace.spikes.shape[0]))
            self.fail(f"transfer {k}: word {bad[0]} (timestep {t}) is {int(got[bad[0]]):#x}, expected "
                      f"{int(want[bad[0]]):#x}", k, t)
        self.count(want, trace)

    def count(self, want: np.ndarray, trace) -> None:
        """Account for words that were compared."""
        self.words += want.size
        steps = trace.spikes.shape[0]
        self.timesteps += steps
        self.since_reset += steps
        self.neuron_steps += sum(layer.z.size for layer in trace.layers)

    async def run_with_watchdog(self) -> None:
        """`run`, failing (not hanging) if the whole case takes far longer than its timesteps need."""
        from cocotb.triggers import SimTimeoutError, with_timeout

        steps = sum(t.shape[0] for t in self.case["transfers"])
        limit = 8 * steps * max_timestep_cycles(self.config) + 200_000  # + loading and register polling
        try:
            await with_timeout(self.run(), limit * 10, "ns")
        except SimTimeoutError:
            self.fail(f"the case did not finish within {limit} cycles (a register poll or the stream hangs)")

    async def run(self) -> None:
        from cocotb.triggers import ClockCycles

        tb, case = self.tb, self.case
        tb.set_idle_generator(case["idle"])
        tb.set_backpressure_generator(case["backpressure"])
        await tb.reset()
        if await tb.identify() != self.config:
            self.fail("configuration readback differs from the build")
        await tb.load(self.network)
        n = len(case["transfers"])
        if case["back_to_back"]:
            sent = [self.inputs(k) for k in range(n)]
            for words, _ in sent:
                await tb.send(words)
            for k, (_, spikes) in enumerate(sent):
                want, trace = self.golden(spikes, self.states)
                self.compare(k, await self.recv(k, sum(s.shape[0] for _, s in sent)), want, trace)
                self.states = trace.states
        else:
            for k in range(n):
                if k in case["clear_before"]:
                    await tb.clear_state()
                    self.states = None
                if k in case["reset_during"]:
                    await self.reset_during(k)
                elif k in case["clear_during"]:
                    await self.clear_during(k)
                else:
                    words, spikes = self.inputs(k)
                    await self.set_probe(case["probes"][k])
                    await tb.send(words)
                    want, trace = self.golden(spikes, self.states, self.probe)
                    self.compare(k, await self.recv(k, spikes.shape[0]), want, trace)
                    self.states = trace.states
        await ClockCycles(self.dut.aclk, 10)
        if not tb.sink.empty():
            self.fail("words after the last TLAST")
        await self.check_status()

    async def clear_during(self, k: int) -> None:
        """Request a state clear once a third of transfer k is out; find where the core applied it."""
        tb = self.tb
        words, spikes = self.inputs(k)
        base = await tb.counter("TIMESTEPS")
        await tb.send(words)
        steps = spikes.shape[0]
        await tb.wait_timesteps(base + steps // 3)
        await tb.request_clear()
        got = await self.recv(k, steps)
        await tb.wait_cleared()
        for cut in range(steps // 3, steps):  # the clear waits for a timestep boundary and an empty pipeline
            head, head_trace = self.golden(spikes[:cut], self.states)
            if np.array_equal(got[: head.size], head):
                tail, tail_trace = self.golden(spikes[cut:], None)
                if np.array_equal(got[head.size :], tail):
                    break
        else:
            want, _ = self.golden(spikes, self.states)
            bad = np.flatnonzero(got[: want.size] != want[: got.size])
            self.fail(f"transfer {k}: the output matches no clear point between timesteps {steps // 3} and "
                      f"{steps - 1} (first difference from a run without clear: word {bad[:1]})", k)
        self.count(head, head_trace)
        self.count(tail, tail_trace)
        self.states = tail_trace.states
        cocotb.log.info("transfer %d: the state clear took effect before timestep %d of %d", k, cut, steps)

    async def reset_during(self, k: int) -> None:
        """Pulse aresetn while transfer k streams; what follows runs from a zero state."""
        tb = self.tb
        words, _ = self.inputs(k)
        base = await tb.counter("TIMESTEPS")
        await tb.send(words)
        steps = words.size // self.per_in
        await tb.wait_timesteps(base + steps // 3)
        if tb.source.idle():
            self.fail(f"transfer {k}: sent completely before the reset; make it longer", k)
        await tb.reset()
        self.states = None
        self.probe = 0
        self.since_reset = 0
        self.truncated = False
        status = await tb.status()
        if status["busy"] or await tb.counter("TIMESTEPS") != 0:
            self.fail(f"transfer {k}: the core is not idle and zeroed after the reset: {status}", k)
        await tb.load_controls(self.network)  # weights, thresholds, biases stay in the memories

    async def check_status(self) -> None:
        tb = self.tb
        status = await tb.status()
        if status["err_truncated"] != int(self.truncated):
            self.fail(f"err_truncated is {status['err_truncated']}, expected {int(self.truncated)}: {status}")
        if status["err_param"] or status["err_address"] or status["busy"]:
            self.fail(f"unexpected status {status}")
        if await tb.counter("TIMESTEPS") != self.since_reset:
            self.fail(f"TIMESTEPS counter differs from the {self.since_reset} timesteps output since the reset")
        busy = await tb.counter("BUSY_CYCLES")
        self.path.with_suffix(".result.json").write_text(json.dumps({
            "words": self.words, "timesteps": self.timesteps, "neuron_timesteps": self.neuron_steps,
            "output_neuron_timesteps": self.timesteps * self.config.n_out, "busy_cycles": busy,
            "timesteps_since_reset": self.since_reset,
        }))
