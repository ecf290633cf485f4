"""The driver on every transport (golden, simulated board, pynq through the shim): the same
tests, the same driver code, results equal to the golden model word for word."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import SEED, main_config, main_network, make_core, spike_train

from spikeloop import golden, regmap
from spikeloop.config import CoreConfig, design_hash
from spikeloop.host import ConfigError, Core, CoreError, SpikeError, open_core
from spikeloop.host.sim_transport import BoardTransport
from spikeloop.network import random_network
from spikeloop.sim.golden_board import GoldenBoard
from spikeloop.stream import StreamCodec, pack_spikes, unpack_output


def test_run_equals_the_golden_model(core):
    net = main_network()
    spikes = spike_train((3, 40, 40), SEED)
    out = core.run(spikes)
    ref = golden.run(net, spikes)
    assert np.array_equal(out.spikes, ref.spikes), f"seed {SEED}"
    assert np.array_equal(out.membranes, ref.membranes), f"seed {SEED}"
    assert ref.spikes.any() and not ref.spikes.all(), "vacuous: no (or only) output spikes"
    single = core.run(spikes[1])
    assert np.array_equal(single.spikes, ref.spikes[1]) and np.array_equal(single.membranes, ref.membranes[1])


def test_step_is_the_golden_stepper(core):
    net = main_network()
    spikes = spike_train((30, 40), SEED + 2)
    stepper = golden.Stepper(net)
    core.clear_state()
    for t in range(20):
        z, v = core.step(spikes[t])
        gz, gv = stepper.step(spikes[t])
        assert z.shape == (6,) and np.array_equal(z, gz) and np.array_equal(v, gv), f"timestep {t}"
    few = core.step(spikes[20:30].astype(np.uint8))  # a few timesteps in one call
    for t in range(20, 30):
        gz, gv = stepper.step(spikes[t])
        assert np.array_equal(few.spikes[t - 20], gz) and np.array_equal(few.membranes[t - 20], gv)


def test_run_without_reset_continues_the_state(core):
    net = main_network()
    spikes = spike_train((30, 40), SEED + 3)
    core.run(spikes[:12])
    rest = core.run(spikes[12:], reset=False)
    ref = golden.run(net, spikes)
    assert np.array_equal(rest.spikes, ref.spikes[12:]) and np.array_equal(rest.membranes, ref.membranes[12:])
    with pytest.raises(ValueError, match="continues one sequence"):
        core.run(spikes[None], reset=False)


def test_readouts_counters_and_states(core):
    net = main_network()
    spikes = spike_train((25, 40), SEED + 4)
    core.clear_counters()
    out = core.run(spikes)
    ref = golden.run(net, spikes)
    for k, state in enumerate(ref.states):
        assert np.array_equal(core.membranes(k), state.v[0]), f"layer {k} v"
        assert np.array_equal(core.currents(k), state.u[0]), f"layer {k} u"
    assert np.array_equal(core.membranes(), core.membranes(-1))
    states = core.states()
    assert np.array_equal(states[0].u, ref.states[0].u)
    counters = core.counters()
    assert counters["timesteps"] == 25
    assert counters["spikes_in"] == int(spikes.sum())
    assert counters["spikes_out"] == int(out.spikes.sum())
    assert core.status().errors == ()
    core.clear_counters()
    assert core.counters()["timesteps"] == 0
    with pytest.raises(IndexError, match="the core has 2 layers"):
        core.membranes(2)


def test_torch_tensors_are_accepted(core):
    torch = pytest.importorskip("torch")
    spikes = spike_train((15, 40), SEED + 5)
    ref = golden.run(main_network(), spikes)
    assert np.array_equal(core.run(torch.from_numpy(spikes)).spikes, ref.spikes)
    core.clear_state()
    assert np.array_equal(core.step(torch.from_numpy(spikes[0]).to(torch.int8)).spikes, ref.spikes[0])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 39), bool), "39 inputs per timestep"),
    (np.zeros(40, bool), "shape"),
    (np.full((4, 40), 0.5), "dtype float64"),
    (np.full((4, 40), 2), "expected 0 or 1"),
    (np.zeros((0, 40), bool), "at least one timestep"),
])
def test_bad_spikes_are_refused_and_the_core_stays_usable(core, bad, message):
    with pytest.raises(SpikeError, match=message):
        core.run(bad)
    spikes = spike_train((8, 40), SEED + 6)
    assert np.array_equal(core.run(spikes).spikes, golden.run(main_network(), spikes).spikes)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(39, bool), r"shape \[40\]"),
    (np.zeros((2, 3, 40), bool), r"\[k, 40\]"),
    (np.array([2] + [0] * 39), "expected 0 or 1"),
    (np.zeros(40, np.float32), "dtype float32"),
])
def test_bad_step_spikes_are_refused(core, bad, message):
    with pytest.raises(SpikeError, match=message):
        core.step(bad)
    assert core.step(np.zeros(40, bool)).spikes.shape == (6,)


def test_a_network_the_core_cannot_hold_is_refused(core):
    with pytest.raises(ConfigError, match="cannot hold.*v_bits = 14, the core is built for 12"):
        core.load(main_network(v_bits=14))
    with pytest.raises(ConfigError, match="cannot hold the 40-12 network: the network has 1 layers"):
        core.load(random_network((40, 12), seed=1, v_bits=12, frac_bits=6))
    with pytest.raises(ConfigError, match="lam = 3 is not 0 or a power of two"):
        net = main_network()
        core.load(type(net)((net.layers[0].replace(lam=3), net.layers[1])))
    # the loaded network is untouched: the core still runs it
    spikes = spike_train((10, 40), SEED + 7)
    assert np.array_equal(core.run(spikes).membranes, golden.run(main_network(), spikes).membranes)


def test_loading_another_network_of_the_same_shape(core):
    other = main_network(seed=SEED + 100)
    core.load(other)
    spikes = spike_train((20, 40), SEED + 8)
    assert np.array_equal(core.run(spikes).membranes, golden.run(other, spikes).membranes)
    assert core.network is other


@pytest.mark.parametrize("poke, bit", [
    (lambda c: c.write_register("LAM", 3, layer=0), "err_param"),  # not a power of two in shift mode
    (lambda c: c.transport.read(regmap.layer_offset(5, "N_IN")), "err_address"),  # no such layer
    (lambda c: c.write_register("WIDTHS", 0, layer=0), "err_address"),  # read-only
    (lambda c: c.transport.transfer(np.zeros(1, np.uint32), c.words_out, deadline=time.monotonic() + 10),
     "err_truncated"),  # one word of a two-word timestep, with TLAST
])
def test_a_sticky_error_bit_raises_until_reset(core, poke, bit):
    poke(core)
    assert bit in core.errors()
    spikes = spike_train((6, 40), SEED + 9)
    with pytest.raises(CoreError, match=bit) as info:
        core.run(spikes)
    assert bit in info.value.errors
    core.reset()
    assert core.errors() == ()
    out = core.run(spikes)
    assert np.array_equal(out.membranes, golden.run(main_network(), spikes).membranes)


def test_identity_is_checked_against_an_expected_design(backend, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    other = CoreConfig.build((40, 12, 6), lanes=2, chunk=8)
    with pytest.raises(ConfigError, match="expected 40-12-6 .lanes 2/2, chunk 8/8"):
        make_core(backend, main_config(), expect=other)
    core = make_core(backend, main_config(), expect=main_config())
    assert core.config == main_config()
    assert core.design_hash == design_hash(main_config()).hex()
    core.close()


class _CorruptBoard(GoldenBoard):
    """A golden board whose register reads lie at one offset (or whose writes drop one word)."""

    def __init__(self, config, *, bad_read=None, drop_write=None):
        super().__init__(config)
        self.bad_read, self.drop_write = bad_read or {}, drop_write

    def read(self, offset):
        if offset in self.bad_read:
            return self.bad_read[offset]
        return super().read(offset)

    def write(self, offset, value):
        if offset != self.drop_write:
            super().write(offset, value)


def _corrupt(*, config, **faults) -> BoardTransport:
    """The golden transport over a `_CorruptBoard`."""
    return BoardTransport(board=_CorruptBoard(config, **faults))


@pytest.mark.parametrize("register, value, message", [
    ("MAGIC", 0x12345678, "not a spikeloop core"),
    ("VERSION", 2 << 16, "register map version 2.0"),
    ("HASH3", 0, "design hash does not match"),
    ("WORDS_OUT", 99, "WORDS_OUT reads 99"),
])
def test_identity_registers_are_checked(register, value, message):

    transport = _corrupt(config=main_config(), bad_read={regmap.register(register).offset: value})
    with pytest.raises(ConfigError, match=message):
        Core(transport)


def test_load_reads_every_word_back():
    from spikeloop.host import LoadError

    config = main_config()
    theta = regmap.window(config, 1, "theta")
    transport = _corrupt(config=config, drop_write=theta.base + 4)
    with pytest.raises(LoadError, match="1 of .* words read back differently; the first is layer 1 theta word 1"):
        Core(transport, network=main_network())


def test_open_core_by_name():
    net = main_network()
    core = open_core("golden", net, lanes=[3, 2], chunk=[16, 12])
    assert core.config == replace(main_config(), layers=tuple(replace(layer, options=False)
                                                             for layer in main_config().layers))  # a v1 network
    spikes = spike_train((5, 40), SEED)
    assert np.array_equal(core.run(spikes).spikes, golden.run(net, spikes).spikes)
    with pytest.raises(ValueError, match="unknown transport 'fpga'"):
        open_core("fpga", net)
    with pytest.raises(ValueError, match="needs a config= or a network="):
        open_core("golden")


def test_long_runs_are_split_into_transfers(backend, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    core = make_core(backend, main_config(), main_network())
    with pytest.raises(ValueError, match="steps_per_transfer must be an integer"):
        core.steps_per_transfer = 0
    core.steps_per_transfer = 3
    spikes = spike_train((20, 40), SEED + 10)
    out = core.run(spikes)
    ref = golden.run(main_network(), spikes)
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
    core.close()


@pytest.mark.parametrize("bus_width", [32, 64])
@pytest.mark.parametrize("membranes", [False, True])
def test_the_stream_codec_is_the_register_maps_packing(bus_width, membranes):
    net = random_network((70, 37), seed=SEED)
    config = CoreConfig.for_network(net, lanes=5, chunk=35, bus_width=bus_width, membranes=membranes)
    codec = StreamCodec(config)
    rng = np.random.default_rng(SEED)
    for steps in (1, 3, 1):  # the one-timestep scratch buffer is reused: the second 1 sees its leftovers
        spikes = spike_train((steps, 70), SEED + steps, density=0.5)
        words = codec.pack(spikes)
        want = pack_spikes(spikes, bus_width)
        assert words.dtype == want.dtype and np.array_equal(words, want)
        out = rng.integers(0, 1 << 63, steps * codec.words_out, dtype=np.uint64).astype(want.dtype)
        (z, v), (z_want, v_want) = codec.unpack(out), unpack_output(out, config)
        assert z.dtype == bool and np.array_equal(z, z_want)
        assert (v is None and v_want is None) if not membranes else (v.dtype == np.int64 and np.array_equal(v, v_want))
