"""The core top on Amaranth's simulator: AXI-Lite register file, stream framing, counters, errors.

The output words are compared with `stream.pack_output` of the golden model's result, word for
word, so the packing of the host driver is checked together with the gateware.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import rtlsim
from rtlsim import AxiLitePorts, idle, seeded, simulate
from test_rtl_network import build_case, densities

from spikeloop import golden, regmap
from spikeloop.config import DEFAULT_CORE, CoreConfig, design_hash
from spikeloop.network import random_network
from spikeloop.rtl.top import Core, CoreTop
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes, unpack_output
from spikeloop.windows import load_writes, neuron_word_index

STATUS = regmap.register("STATUS")


async def axil_write(ctx, dut, addr: int, data: int) -> None:
    await rtlsim.axil_write(ctx, AxiLitePorts(dut), addr, data)


async def axil_read(ctx, dut, addr: int) -> int:
    return await rtlsim.axil_read(ctx, AxiLitePorts(dut), addr)


async def read_status(ctx, dut) -> dict:
    return STATUS.decode(await axil_read(ctx, dut, STATUS.offset))


async def read_counter(ctx, dut, name: str) -> int:
    lo = await axil_read(ctx, dut, regmap.register(f"{name}_LO").offset)
    hi = await axil_read(ctx, dut, regmap.register(f"{name}_HI").offset)
    return hi << 32 | lo


async def send_words(ctx, dut, words, lasts, *, rng=None, stall=0.0):
    for word, last in zip(words, lasts):
        await idle(ctx, rng, stall)
        ctx.set(dut.s_axis_tdata, int(word))
        ctx.set(dut.s_axis_tlast, int(last))
        ctx.set(dut.s_axis_tvalid, 1)
        await ctx.tick().until(dut.s_axis_tready)
        ctx.set(dut.s_axis_tvalid, 0)


async def receive_words(ctx, dut, count, *, rng=None, stall=0.0):
    words, lasts = [], []
    while len(words) < count:
        ready = rng is None or rng.random() >= stall
        ctx.set(dut.m_axis_tready, int(ready))
        _, _, valid, data, last = await ctx.tick().sample(dut.m_axis_tvalid, dut.m_axis_tdata, dut.m_axis_tlast)
        if valid and ready:
            words.append(data)
            lasts.append(last)
    ctx.set(dut.m_axis_tready, 0)
    return words, lasts


def transfer(config, spikes):
    """Input words and TLASTs of one DMA transfer of `spikes` [T, n_in]."""
    words = pack_spikes(spikes, config.bus_width)
    lasts = np.zeros(words.size, bool)
    lasts[-1] = True
    return words, lasts


def expected_words(config, trace):
    return pack_output(trace.spikes, trace.membranes, config)


@pytest.mark.parametrize("bus_width,name", [(32, "three-layers-lif"), (64, "three-layers-lif"),
                                            (32, "events-and-dense")])
def test_core_runs_a_network_bit_exact(bus_width, name):
    seed = 11 + bus_width + (0 if name == "three-layers-lif" else 100)
    network, config = build_case(name, seed, bus_width=bus_width)
    rng = np.random.default_rng(seed)
    transfers = [densities(rng, 25, network.n_in), densities(rng, 15, network.n_in)]  # back to back
    trace = golden.run(network, np.concatenate(transfers), record=True)
    assert all(layer.z.any() for layer in trace.layers)
    per_out = output_words_per_timestep(config)
    want = expected_words(config, trace)
    prng = random.Random(seed)
    dut = Core(config=config)
    got = {}

    async def host(ctx):
        # identity and configuration readback
        regs = {}

        async def cached_read(offset):
            if offset not in regs:
                regs[offset] = await axil_read(ctx, dut, offset)
            return regs[offset]

        for offset in sorted(config.readback()):
            await cached_read(offset)
        assert CoreConfig.from_readback(lambda offset: regs[offset]) == config
        for offset, value in load_writes(config, network, skip_zero=True):
            await axil_write(ctx, dut, offset, value)
        for k, layer in enumerate(network.layers):  # read back a few parameters
            cfg = config.layers[k]
            j = layer.n_out - 1
            index = int(neuron_word_index(cfg)[j])
            assert await axil_read(ctx, dut, regmap.window(config, k, "theta").base + 4 * index) == layer.theta[j]
            image = cfg.weight_window.pack(layer.crossbar_weights)
            assert await axil_read(ctx, dut, regmap.window(config, k, "weights").base) == image[0]
        got["start"] = True
        for spikes in transfers:
            words, lasts = transfer(config, spikes)
            await send_words(ctx, dut, words, lasts, rng=prng, stall=0.2)

    async def dma_out(ctx):
        while "start" not in got:
            await ctx.tick()
        words, lasts = await receive_words(ctx, dut, want.size, rng=prng, stall=0.2)
        got["words"], got["lasts"] = np.array(words, dtype=want.dtype), np.array(lasts, bool)
        await ctx.tick().repeat(5)
        status = await read_status(ctx, dut)
        assert status["busy"] == 0 and status["err_truncated"] == 0 and status["err_param"] == 0, status
        assert await read_counter(ctx, dut, "TIMESTEPS") == trace.spikes.shape[0]
        assert await read_counter(ctx, dut, "SPIKES_IN") == int(np.concatenate(transfers).sum())
        assert await read_counter(ctx, dut, "SPIKES_OUT") == int(trace.spikes.sum())
        assert await read_counter(ctx, dut, "BUSY_CYCLES") > 0
        # membrane readout of the last layer after the run: the state v
        k = len(network.layers) - 1
        cfg = config.layers[k]
        vwin = regmap.window(config, k, "v")
        index = neuron_word_index(cfg)
        words = [await axil_read(ctx, dut, vwin.base + 4 * int(i)) for i in index]
        got["v_end"] = np.array(words, np.uint32).astype(np.int32)

    simulate(dut, host, dma_out, max_cycles=200_000)
    where = seeded(seed)
    mismatch = np.flatnonzero(got["words"] != want)
    assert mismatch.size == 0, f"output word {mismatch[:1]} (timestep {mismatch[:1] // per_out}) differs {where}"
    tlast_at = np.flatnonzero(got["lasts"])
    ends = np.cumsum([t.shape[0] for t in transfers]) * per_out - 1
    assert tlast_at.tolist() == ends.tolist(), "TLAST must close each transfer"
    assert np.array_equal(got["v_end"], trace.states[-1].v[0])


def test_core_truncated_transfer_still_ends_with_tlast():
    network = random_network((70, 12, 6), seed=4, v_bits=10, frac_bits=5)
    config = CoreConfig.for_network(network, lanes=[4, 3], chunk=[16, 12], membranes=False)
    dut = Core(config=config)
    rng = np.random.default_rng(4)
    spikes = rng.random((6, 70)) < 0.3
    words = pack_spikes(spikes)  # 3 words per timestep
    cut = words[: 3 * 3 + 1]  # three whole timesteps and one word of the fourth
    lasts = np.zeros(cut.size, bool)
    lasts[-1] = True
    truncated = spikes[:4].copy()
    truncated[3, 32:] = False
    trace = golden.run(network, truncated)
    result = {}

    async def host(ctx):
        for offset, value in load_writes(config, network, skip_zero=True):
            await axil_write(ctx, dut, offset, value)
        await send_words(ctx, dut, cut, lasts)

    async def sink(ctx):
        words, tlasts = await receive_words(ctx, dut, 4 * output_words_per_timestep(config))
        result["spikes"], _ = unpack_output(np.array(words, np.uint32), config)
        result["tlasts"] = tlasts
        status = await read_status(ctx, dut)
        assert status["err_truncated"] == 1
        await axil_write(ctx, dut, STATUS.offset, STATUS.encode(err_truncated=1))
        assert (await read_status(ctx, dut))["err_truncated"] == 0

    simulate(dut, host, sink, max_cycles=50_000)
    assert np.array_equal(result["spikes"], trace.spikes)
    assert result["tlasts"][-1] == 1 and sum(result["tlasts"]) == 1


def test_core_clear_state_and_counters():
    network = random_network((24, 10, 4), seed=8, neuron="cuba", v_bits=12, frac_bits=4)
    config = CoreConfig.for_network(network, lanes=[2, 4], chunk=[8, 10], membranes=True)
    dut = Core(config=config)
    rng = np.random.default_rng(8)
    first, second = rng.random((8, 24)) < 0.4, rng.random((8, 24)) < 0.4
    # the second transfer starts from a cleared state
    want = np.concatenate([expected_words(config, golden.run(network, first)),
                           expected_words(config, golden.run(network, second))])
    got = {}

    async def host(ctx):
        for offset, value in load_writes(config, network, skip_zero=True):
            await axil_write(ctx, dut, offset, value)
        await send_words(ctx, dut, *transfer(config, first))
        control = regmap.register("CONTROL")
        await axil_write(ctx, dut, control.offset, control.encode(clear_state=1))
        assert (await read_status(ctx, dut))["clearing"] == 1
        while (await read_status(ctx, dut))["clearing"]:
            pass
        assert await read_counter(ctx, dut, "TIMESTEPS") == 8  # the clear waited for all of them
        await axil_write(ctx, dut, control.offset, control.encode(clear_counters=1))
        assert await read_counter(ctx, dut, "SPIKES_IN") == 0
        await send_words(ctx, dut, *transfer(config, second))

    async def sink(ctx):
        words, _ = await receive_words(ctx, dut, want.size)
        got["words"] = np.array(words, np.uint32)

    simulate(dut, host, sink, max_cycles=50_000)
    assert np.array_equal(got["words"], want)


def test_core_refuses_bad_writes_with_sticky_bits():
    network = random_network((16, 8), seed=2, v_bits=8, frac_bits=4)
    config = CoreConfig.for_network(network, lanes=2, chunk=8)
    dut = Core(config=config)

    async def host(ctx):
        lam = regmap.layer_offset(0, "LAM")
        await axil_write(ctx, dut, lam, 3)  # not a power of two with decay 'shift'
        assert (await read_status(ctx, dut))["err_param"] == 1
        assert await axil_read(ctx, dut, lam) == 0
        await axil_write(ctx, dut, lam, 32)  # > 2^F
        await axil_write(ctx, dut, lam, 8)
        assert await axil_read(ctx, dut, lam) == 8
        await axil_write(ctx, dut, regmap.layer_offset(0, "MODE"), regmap.layer_register("MODE").encode(decay_round=3))
        await axil_write(ctx, dut, regmap.window(config, 0, "theta").base, 0)  # theta >= 1
        assert await axil_read(ctx, dut, regmap.window(config, 0, "theta").base) == 0
        assert (await read_status(ctx, dut))["err_address"] == 0
        await axil_write(ctx, dut, regmap.register("MAGIC").offset, 1)  # read-only
        status = await read_status(ctx, dut)
        assert status["err_address"] == 1 and status["err_param"] == 1
        await axil_write(ctx, dut, STATUS.offset, STATUS.encode(err_address=1, err_param=1))
        assert (await read_status(ctx, dut))["err_address"] == 0
        await axil_write(ctx, dut, regmap.window(config, 0, "v").base, 5)  # read-only window
        assert (await read_status(ctx, dut))["err_address"] == 1
        assert await axil_read(ctx, dut, regmap.register("MAGIC").offset) == regmap.MAGIC
        await axil_read(ctx, dut, (1 << regmap.address_bits(config)) - 4)  # unmapped: reads 0, flags
        assert (await read_status(ctx, dut))["err_address"] == 1

    simulate(dut, host, max_cycles=5000)


def test_verilog_generation_writes_module_and_manifest(tmp_path):
    import json

    from spikeloop.rtl import verilog

    config = CoreConfig.build((20, 8, 3), lanes=[2, 3], chunk=[10, 8], membranes=True)
    path = verilog.generate(config, tmp_path)
    assert path == tmp_path / "spikeloop_core.v"
    text = path.read_text()
    assert "module spikeloop_core" in text
    manifest = json.loads((tmp_path / "spikeloop_core.json").read_text())
    assert manifest["design_hash"] == design_hash(config).hex()
    assert manifest["address_bits"] == regmap.address_bits(config)
    for port in manifest["ports"]:
        assert f" {port};" in text or f" {port} ;" in text or f"] {port};" in text, port
    before = path.stat().st_mtime_ns
    verilog.generate(config, tmp_path)  # unchanged content: file left alone
    assert path.stat().st_mtime_ns == before


def test_spikeloop_verilog_command_builds_the_default_and_refuses_bad_options(tmp_path, capsys):
    import json

    from spikeloop.app.cli import main

    assert main(["verilog", "--out", str(tmp_path)]) == 0  # the default core of `make verilog`
    assert "design hash" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "spikeloop_core.json").read_text())
    assert manifest["config"] == DEFAULT_CORE.params() and manifest["design_hash"] == design_hash(DEFAULT_CORE).hex()
    assert main(["verilog", "--sizes", "64,32", "--lanes", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "argument --lanes: expected an integer in [1, 32]" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_core_refuses_bad_parameters():
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        Core(config=None)
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        CoreTop(config=(20, 8))


def test_core_register_reads_complete_while_the_output_is_blocked():
    """A driver polling windows while its DMA has not started reading must not hang the AXI-Lite bus."""
    network = random_network((24, 10, 4), seed=6, v_bits=12, frac_bits=4)
    config = CoreConfig.for_network(network, lanes=[2, 4], chunk=[8, 10], membranes=True)
    dut = Core(config=config)
    rng = np.random.default_rng(6)
    spikes = rng.random((6, 24)) < 0.5
    want = expected_words(config, golden.run(network, spikes))
    got = {}

    async def host(ctx):
        writes = load_writes(config, network)
        for offset, value in writes:
            await axil_write(ctx, dut, offset, value)
        await send_words(ctx, dut, *transfer(config, spikes))  # the core buffers it all, stalled
        await ctx.tick().repeat(50)
        assert (await read_status(ctx, dut))["busy"] == 1
        for offset, value in writes:  # every parameter, through stalled read ports
            assert await axil_read(ctx, dut, offset) == value, hex(offset)
        for kind in ("v", "u"):
            await axil_read(ctx, dut, regmap.window(config, 0, kind).base)
        got["reads_done"] = True

    async def sink(ctx):
        while "reads_done" not in got:
            await ctx.tick()
        words, _ = await receive_words(ctx, dut, want.size)
        got["words"] = np.array(words, np.uint32)

    simulate(dut, host, sink, max_cycles=50_000)
    assert np.array_equal(got["words"], want)
