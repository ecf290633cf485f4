"""cocotb testbench of the generated core (`spikeloop_core`), run on Verilator.

Launched by tests/sim through `cocotb_tools.runner` with `SPIKELOOP_CASES` naming case files
(JSON, written by `write_case`, separated by os.pathsep): the configuration, the network image, the input transfers,
the seed and the idle/backpressure rates. One TB class drives AXI-Lite (`AxiLiteMaster`) and
both streams (`AxiStreamSource`/`AxiStreamSink` with pause generators); a scoreboard compares
every output word with `regmap.pack_output` of the golden model.

The test writes `<case>.result.json` next to each case: words and neuron-timesteps compared.
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
from spikeloop.network import Network
from spikeloop.regmap import CoreConfig, LayerConfig

__all__ = ["TB", "write_case", "read_case"]


def write_case(path, *, config: CoreConfig, network: Network, transfers, seed: int, idle: float = 0.0,
               backpressure: float = 0.0, clear_before=(), truncate_last: int = 0) -> Path:
    """Write a case file for the bench. `transfers`: list of bool [T, n_in] arrays, sent back to back.

    `clear_before`: transfer indices preceded by a state clear. `truncate_last`: drop that many
    words from the end of the last transfer (a truncated DMA transfer).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = path.with_suffix(".network.npz")
    network.save(image)
    spikes = path.with_suffix(".spikes.npz")
    np.savez_compressed(spikes, **{f"t{k}": np.asarray(t, bool) for k, t in enumerate(transfers)})
    case = {
        "config": config.params(), "network": str(image), "spikes": str(spikes), "transfers": len(transfers),
        "seed": seed, "idle": idle, "backpressure": backpressure, "clear_before": list(clear_before),
        "truncate_last": truncate_last,
    }
    path.write_text(json.dumps(case, indent=1))
    return path


def read_case(path) -> dict:
    """The case as objects: config, network, transfers and the settings."""
    case = json.loads(Path(path).read_text())
    params = case["config"]
    layers = tuple(LayerConfig(**layer, where=f"layer {k}") for k, layer in enumerate(params["layers"]))
    case["config"] = CoreConfig(layers, membranes=params["membranes"], bus_width=params["bus_width"])
    case["network"] = Network.load(case["network"])
    with np.load(case["spikes"]) as npz:
        case["transfers"] = [npz[f"t{k}"] for k in range(case["transfers"])]
    return case


def expected(case: dict) -> tuple[list[np.ndarray], int]:
    """Golden output words per transfer, and the neuron-timesteps they cover."""
    config, network = case["config"], case["network"]
    states = None
    outputs, neuron_steps = [], 0
    for k, spikes in enumerate(case["transfers"]):
        if k in case["clear_before"]:
            states = None
        if k == len(case["transfers"]) - 1 and case["truncate_last"]:
            spikes = _truncated(spikes, case["truncate_last"], config)
        trace = golden.run(network, spikes, states=states, record=True)
        states = trace.states
        outputs.append(regmap.pack_output(trace.spikes, trace.membranes, config))
        neuron_steps += sum(layer.z.size for layer in trace.layers)
    return outputs, neuron_steps


def _truncated(spikes, drop_words, config):
    """What the core computes for a transfer missing its last `drop_words` words."""
    per = regmap.words_per_timestep(config.n_in, config.bus_width)
    words = regmap.pack_spikes(spikes, config.bus_width)[: -drop_words]
    steps = -(-words.size // per)
    padded = np.zeros(steps * per, words.dtype)
    padded[: words.size] = words
    return regmap.unpack_spikes(padded, config.n_in, config.bus_width)


class TB:
    """The bench around one `spikeloop_core`: clock, active-low reset, AXI-Lite and both streams."""

    def __init__(self, dut, config: CoreConfig, *, seed: int):
        import cocotb
        from cocotb.clock import Clock
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink, AxiStreamSource

        self.dut = dut
        self.config = config
        self.rng = random.Random(seed)
        for prefix in ("s_axis", "m_axis", "s_axi"):  # per-transaction INFO logs cost more than the sim
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
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

    def set_idle_generator(self, rate: float) -> None:
        """Random gaps between input words (none for rate 0)."""
        self.source.set_pause_generator(self._pauses(rate) if rate > 0 else None)

    def set_backpressure_generator(self, rate: float) -> None:
        """Random TREADY low on the output (none for rate 0)."""
        self.sink.set_pause_generator(self._pauses(rate) if rate > 0 else None)

    async def reset(self) -> None:
        from cocotb.triggers import ClockCycles

        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 5)
        self.dut.aresetn.value = 1
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
        for offset, value in regmap.load_writes(self.config, network, skip_zero=True):
            await self.write(offset, value)

    async def clear_state(self) -> None:
        control, status = regmap.register("CONTROL"), regmap.register("STATUS")
        await self.write(control.offset, control.encode(clear_state=1))
        while status.decode(await self.read(status.offset))["clearing"]:
            pass

    def _frame(self, words: np.ndarray):
        from cocotbext.axi import AxiStreamFrame

        dtype = "<u4" if self.config.bus_width == 32 else "<u8"
        return AxiStreamFrame(np.asarray(words).astype(dtype).tobytes())

    async def send(self, words: np.ndarray) -> None:
        await self.source.send(self._frame(words))

    async def recv(self) -> np.ndarray:
        frame = await self.sink.recv()
        dtype = "<u4" if self.config.bus_width == 32 else "<u8"
        return np.frombuffer(bytes(frame.tdata), dtype=dtype)

    async def status(self) -> dict:
        status = regmap.register("STATUS")
        return status.decode(await self.read(status.offset))

    async def counter(self, name: str) -> int:
        lo = await self.read(regmap.register(f"{name}_LO").offset)
        return (await self.read(regmap.register(f"{name}_HI").offset)) << 32 | lo


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
        await run_case(dut, tb, case, Path(path))


async def run_case(dut, tb: TB, case: dict, path: Path) -> None:
    from cocotb.triggers import ClockCycles

    config, network = case["config"], case["network"]
    tb.set_idle_generator(case["idle"])
    tb.set_backpressure_generator(case["backpressure"])
    await tb.reset()
    assert await tb.identify() == config, "configuration readback differs from the build"
    await tb.load(network)
    want, neuron_steps = expected(case)
    per = regmap.output_words_per_timestep(config)
    compared = steps_total = 0
    for k, spikes in enumerate(case["transfers"]):
        if k in case["clear_before"]:
            await tb.clear_state()
        words = regmap.pack_spikes(spikes, config.bus_width)
        if k == len(case["transfers"]) - 1 and case["truncate_last"]:
            words = words[: -case["truncate_last"]]
        await tb.send(words)
        got = await tb.recv()
        assert got.size == want[k].size, f"transfer {k}: {got.size} words out, expected {want[k].size} ({path})"
        bad = np.flatnonzero(got != want[k])
        assert bad.size == 0, (
            f"transfer {k}: word {bad[0]} (timestep {bad[0] // per}) is {int(got[bad[0]]):#x}, "
            f"expected {int(want[k][bad[0]]):#x} (seed {case['seed']}, case {path})"
        )
        compared += got.size
        steps_total += want[k].size // per
    await ClockCycles(dut.aclk, 10)
    assert tb.sink.empty(), "words after the last TLAST"
    status = await tb.status()
    per_in = regmap.words_per_timestep(config.n_in, config.bus_width)
    cut_inside = case["truncate_last"] % per_in != 0  # dropping whole timesteps is no truncation
    assert status["err_truncated"] == int(cut_inside), status
    assert status["err_param"] == 0 and status["err_address"] == 0 and status["busy"] == 0, status
    assert await tb.counter("TIMESTEPS") == steps_total
    busy = await tb.counter("BUSY_CYCLES")
    path.with_suffix(".result.json").write_text(json.dumps({
        "words": compared, "timesteps": steps_total, "neuron_timesteps": neuron_steps,
        "output_neuron_timesteps": steps_total * config.n_out, "busy_cycles": busy,
    }))
