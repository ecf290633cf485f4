"""Probes through the driver on the golden board and the simulated board (the Verilated core):
`run(probe=...)` returns every layer's spikes, v' and u equal to `golden.run(record=True).layers`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED, main_network, make_core, spike_train

from spikeloop import golden, regmap
from spikeloop.config import ConfigError, CoreConfig
from spikeloop.host import open_core
from spikeloop.host.driver import probe_value

LANES, CHUNK = [3, 2], [16, 12]


@pytest.fixture(scope="module", params=["golden", "sim", "pynq"])
def backend(request):
    """The transport (module-scoped here; the tiers of tests/conftest.py read this parameter)."""
    return request.param


@pytest.fixture(scope="module")
def probed(backend):
    """The MAIN network (a cuba layer, then a lif layer) on a core built with probes: the golden board,
    the simulated board, and the simulated board behind pynq's own driver and the Zynq/AXI-DMA model."""
    config = CoreConfig.for_network(main_network(), lanes=LANES, chunk=CHUNK, membranes=True, probes=True)
    core = make_core(backend, config, main_network())
    yield core
    core.close()


def assert_layers_equal(got, want, kinds=("z", "v", "u"), where=""):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        for kind in ("z", "v", "u"):
            if kind in kinds:
                a, b = getattr(g, kind), getattr(w, kind)
                assert a.dtype == b.dtype and np.array_equal(a, b), f"layer {k} {kind} differs {where}"
            else:
                assert getattr(g, kind) is None, f"layer {k} {kind} was not asked for"


def test_probe_all_equals_the_golden_record(probed):
    net = main_network()
    spikes = spike_train((25, 40), SEED + 30)
    out = probed.run(spikes, probe="all")
    ref = golden.run(net, spikes, record=True)
    assert all(layer.z.any() for layer in ref.layers), f"seed {SEED}: a layer never fired, the test is vacuous"
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
    assert_layers_equal(out.layers, ref.layers, where=f"(seed {SEED})")
    assert out.layers[0].u.any() and out.layers[1].u.any()


def test_probe_changes_between_runs_and_turns_off(probed):
    net = main_network()
    spikes = spike_train((2, 12, 40), SEED + 31)  # a batch
    ref = golden.run(net, spikes, record=True)
    out = probed.run(spikes, probe="spikes")
    assert_layers_equal(out.layers, ref.layers, kinds=("z",))
    assert out.layers[0].z.shape == (2, 12, 12)
    out = probed.run(spikes[1], probe={"u", "v"})
    one = golden.run(net, spikes[1], record=True)
    assert_layers_equal(out.layers, one.layers, kinds=("v", "u"))
    off = probed.run(spikes)  # probe off again: the output alone
    assert off.layers is None
    assert np.array_equal(off.spikes, ref.spikes) and np.array_equal(off.membranes, ref.membranes)
    probed.run(spikes[0], probe="all")
    probed.clear_state()
    step = probed.step(spikes[0, 0])  # the closed loop streams the output alone
    z, v = step
    assert step.layers is None and np.array_equal(z, ref.spikes[0, 0]) and np.array_equal(v, ref.membranes[0, 0])
    assert probed.read_register("PROBE") == 0


def test_probe_is_written_only_when_it_changes():
    net = main_network()
    core = open_core("golden", net, lanes=LANES, chunk=CHUNK, probes=True)
    writes = []
    write = core.transport.write
    core.transport.write = lambda offset, value: (writes.append((offset, value)), write(offset, value))[1]
    spikes = spike_train((5, 40), SEED + 32)
    probe = regmap.register("PROBE")
    for name in ("all", "all", "spikes", "spikes", None, None):
        core.run(spikes, probe=name)
    assert [v for o, v in writes if o == probe.offset] == [7, 1, 0]
    core.close()


def test_a_probe_on_a_core_built_without_probes_is_refused():
    core = open_core("golden", main_network(), lanes=LANES, chunk=CHUNK)
    spikes = spike_train((3, 40), SEED)
    with pytest.raises(ConfigError, match=r"built without probes: build it with CoreConfig\(\.\.\., probes=True\) "
                                          "or `--probes`"):
        core.run(spikes, probe="spikes")
    assert core.run(spikes, probe="off").layers is None  # still usable, no probe
    core.close()


@pytest.mark.parametrize("probe, message", [
    ("everything", r"unknown probe 'everything'; choose from 'off', 'spikes', 'all' or a set of 'spikes', 'v', 'u'"),
    (["spikes", "w"], r"unknown probe section 'w' in \['spikes', 'w'\]; choose from 'spikes', 'v', 'u'"),
    (3, "probe must be None, a name or an iterable of names, got 3"),
])
def test_an_unknown_probe_is_refused(probe, message):
    config = CoreConfig.for_network(main_network(), lanes=LANES, chunk=CHUNK, probes=True)
    with pytest.raises(ValueError, match=message):
        probe_value(probe, config)


def test_probe_values():
    config = CoreConfig.for_network(main_network(), lanes=LANES, chunk=CHUNK, probes=True)
    assert [probe_value(p, config) for p in (None, "off", "spikes", "all", ["v"], ("u", "spikes"), [])] == \
        [0, 0, 1, 7, 2, 5, 0]


def test_probes_through_the_uart_bridge_emulator():
    """The serial transport to a golden board behind the UART bridge emulator: the probe words come
    through, and the emulator's flow accounting follows the longer output timesteps."""
    pytest.importorskip("serial")
    from spikeloop.sim.golden_board import GoldenBoard
    from spikeloop.sim.uart_board import UARTBoard

    config = CoreConfig.for_network(main_network(), lanes=LANES, chunk=CHUNK, membranes=True, probes=True)
    board = UARTBoard(GoldenBoard(config))
    try:
        core = open_core("serial", main_network(), config=config, port=board.port)
        spikes = spike_train((12, 40), SEED + 33)
        out = core.run(spikes, probe="all")
        ref = golden.run(main_network(), spikes, record=True)
        assert all(layer.z.any() for layer in ref.layers)
        assert_layers_equal(out.layers, ref.layers)
        assert np.array_equal(core.run(spikes).spikes, ref.spikes)
        core.close()
        assert board.stats["flow_violations"] == 0
    finally:
        board.stop()
