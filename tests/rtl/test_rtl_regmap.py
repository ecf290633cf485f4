"""The contract modules config, regmap, stream and windows: configuration, register table, windows and packing
(pure numpy, no simulation)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from spikeloop import regmap
from spikeloop.config import DEFAULT_CORE, ConfigError, CoreConfig, LayerConfig, design_hash
from spikeloop.network import MAX_LAYERS, OPTION_DEFAULTS, random_network
from spikeloop.stream import (
    BUS_WIDTHS,
    output_words_per_timestep,
    pack_output,
    pack_spikes,
    unpack_output,
    unpack_spikes,
    words_per_timestep,
)
from spikeloop.windows import (
    load_writes,
    pack_event_weights,
    pack_neuron_values,
    pack_weights,
    unpack_neuron_values,
    unpack_weights,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [
    replace(DEFAULT_CORE, membranes=True),
    CoreConfig.build((40, 20, 12, 5), lanes=[4, 3, 5], chunk=[8, 6, 12]),
    CoreConfig.build((70, 8), lanes=8, chunk=70, bus_width=64, membranes=True),
    CoreConfig.build((1, 1)),
    CoreConfig.build((40, 20, 12, 5), lanes=2, chunk=8, options=[True, False, True]),
    CoreConfig.build((70, 40, 12, 5), lanes=[36, 3, 5], chunk=[None, 6, None], events=[64, None, 12]),
    CoreConfig.build((30, 12, 8, 5), lanes=[4, 3, 5], chunk=[None, 10, 8], events=[6, None, None],
                     recurrent=[True, True, False]),
]


def test_docs_regmap_is_generated_from_the_module():
    text = (ROOT / "docs" / "regmap.md").read_text()
    assert text == regmap.markdown(DEFAULT_CORE), \
        "docs/regmap.md is stale: run `python -m spikeloop.regmap > docs/regmap.md`"


def test_the_docs_command_prints_the_docs():
    out = subprocess.run([sys.executable, "-m", "spikeloop.regmap"], capture_output=True, text=True, check=True).stdout
    assert out == regmap.markdown(DEFAULT_CORE)


def test_register_offsets_are_unique_aligned_and_disjoint():
    offsets = [r.offset for r in regmap.GLOBAL_REGISTERS]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    assert max(offsets) < regmap.LAYER_BASE
    rel = [r.offset for r in regmap.LAYER_REGISTERS]
    assert len(set(rel)) == len(rel) and max(rel) < regmap.LAYER_STRIDE
    assert regmap.LAYER_BASE + MAX_LAYERS * regmap.LAYER_STRIDE <= regmap.WINDOW_BASE
    for reg in (*regmap.GLOBAL_REGISTERS, *regmap.LAYER_REGISTERS):
        masks = [f.mask for f in reg.fields]
        assert all(a & b == 0 for i, a in enumerate(masks) for b in masks[i + 1 :]), reg.name
        assert all(f.lsb + f.width <= 32 for f in reg.fields), reg.name


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.sizes)))
def test_windows_are_aligned_disjoint_and_decodable(config):
    wins = regmap.windows(config)
    assert len(wins) == len(config.layers) * len(regmap.WINDOW_KINDS)
    for a, b in zip(wins, wins[1:]):
        assert a.base + a.span <= b.base
    for w in wins:
        assert w.base % w.span == 0 and w.span >= 4 * w.words
        assert regmap.decode_address(config, w.base) == ("window", (w, 0))
        assert regmap.decode_address(config, w.end - 4) == ("window", (w, w.words - 1))
        assert w.base + w.span <= 1 << regmap.address_bits(config)
    for offset, value in config.readback().items():
        kind, _ = regmap.decode_address(config, offset)
        assert kind in ("global", "layer") and 0 <= value < 1 << 32
    assert regmap.decode_address(config, 2) == ("unmapped", None)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.sizes)))
def test_readback_rebuilds_the_configuration(config):
    values = config.readback()
    assert CoreConfig.from_readback(lambda offset: values.get(offset, 0)) == config
    forged = dict(values)
    forged[regmap.register("HASH3").offset] ^= 1
    with pytest.raises(ConfigError, match="design hash"):
        CoreConfig.from_readback(lambda offset: forged.get(offset, 0))
    with pytest.raises(ConfigError, match="not a spikeloop core"):
        CoreConfig.from_readback(lambda offset: 0)
    newer = dict(values)
    newer[regmap.register("VERSION").offset] = regmap.register("VERSION").encode(major=regmap.VERSION[0] + 1, minor=0)
    with pytest.raises(ConfigError, match="register map version"):
        CoreConfig.from_readback(lambda offset: newer.get(offset, 0))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.sizes)))
def test_params_round_trip_and_are_validated(config):
    import json

    assert CoreConfig.from_params(json.loads(json.dumps(config.params()))) == config
    bad = config.params()
    bad["layers"][0]["lanes"] = 0
    with pytest.raises(ConfigError, match="layer 0: lanes = 0"):
        CoreConfig.from_params(bad)


def test_design_hash_changes_with_the_configuration():
    a = CoreConfig.build((40, 20, 5), lanes=4, chunk=8)
    assert design_hash(a) == design_hash(CoreConfig.build((40, 20, 5), lanes=4, chunk=8))
    assert design_hash(a) != design_hash(CoreConfig.build((40, 20, 5), lanes=4, chunk=10))
    assert design_hash(a) != design_hash(CoreConfig.build((40, 20, 5), lanes=4, chunk=8, bus_width=64))
    assert design_hash(a) != design_hash(CoreConfig.build((40, 20, 5), lanes=4, chunk=8, options=[False, True]))


def test_a_build_without_options_keeps_its_parameters_and_hash():
    """`options` is in the parameters only when on: JSON written before the switch loads as a build without
    it, and the default core keeps the design hash it had (the calibration runs and overlays name it)."""
    params = DEFAULT_CORE.params()
    assert all("options" not in layer for layer in params["layers"])
    assert design_hash(DEFAULT_CORE).hex()[:16] == "e86ad1276d6e56ba"
    assert [layer.options for layer in CoreConfig.from_params(params).layers] == [False] * 3
    on = CoreConfig.build((40, 20, 5), options=True)
    assert [layer["options"] for layer in on.params()["layers"]] == [True, True]
    widths = [regmap.layer_register("WIDTHS").decode(on.readback()[regmap.layer_offset(k, "WIDTHS")])
              for k in range(2)]
    assert [w["options"] for w in widths] == [1, 1]


def test_a_dense_build_keeps_its_parameters_and_hash_and_events_change_them():
    """`events` is in the parameters only when set (as `options`); the kind is read back from WIDTHS.events
    with E in GEOMETRY.chunk, and an old build reads 0 there."""
    assert all("events" not in layer for layer in DEFAULT_CORE.params()["layers"])
    assert design_hash(DEFAULT_CORE).hex()[:16] == "e86ad1276d6e56ba"
    dense = CoreConfig.build((40, 20, 5), lanes=4, chunk=8)
    event = CoreConfig.build((40, 20, 5), lanes=4, chunk=8, events=[8, None])
    assert [layer.events for layer in event.layers] == [8, None] and event.layers[0].chunk == 8
    assert design_hash(dense) != design_hash(event)
    assert [layer.get("events") for layer in event.params()["layers"]] == [8, None]
    widths, geometry = regmap.layer_register("WIDTHS"), regmap.layer_register("GEOMETRY")
    for config, kinds in ((dense, [0, 0]), (event, [1, 0])):
        values = config.readback()
        assert [widths.decode(values[regmap.layer_offset(k, "WIDTHS")])["events"] for k in range(2)] == kinds
        assert geometry.decode(values[regmap.layer_offset(0, "GEOMETRY")])["chunk"] == 8
    forged = dict(event.readback())  # a driver told the wrong kind refuses the core
    forged[regmap.layer_offset(0, "WIDTHS")] &= ~widths.field("events").mask
    with pytest.raises(ConfigError, match="design hash"):
        CoreConfig.from_readback(lambda offset: forged.get(offset, 0))


def test_recurrence_widens_the_crossbar_and_only_a_recurrent_build_changes_the_hash():
    """`recurrent` is in the parameters only when on (as `options`): a build without it keeps its hash. A recurrent
    layer's crossbar takes n_in + n_out inputs (chunk and events bounded by that), read back from WIDTHS.recurrent."""
    assert all("recurrent" not in layer for layer in DEFAULT_CORE.params()["layers"])
    assert design_hash(DEFAULT_CORE).hex()[:16] == "e86ad1276d6e56ba"
    plain = CoreConfig.build((40, 20, 5), lanes=4, chunk=8)
    assert design_hash(plain) == design_hash(CoreConfig.build((40, 20, 5), lanes=4, chunk=8, recurrent=False))
    loop = CoreConfig.build((40, 20, 5), lanes=4, chunk=8, recurrent=[True, False])
    assert design_hash(plain) != design_hash(loop)
    assert [layer.get("recurrent") for layer in loop.params()["layers"]] == [True, None]
    layer = loop.layers[0]
    assert (layer.crossbar_inputs, layer.n_chunks, layer.syn_bits) == (60, 8, 7)
    assert layer.weight_window.n_in == 60 and regmap.window(loop, 0, "weights").words == layer.weight_window.words
    assert loop.layers[1].crossbar_inputs == 20
    widths = regmap.layer_register("WIDTHS")
    values = loop.readback()
    assert [widths.decode(values[regmap.layer_offset(k, "WIDTHS")])["recurrent"] for k in range(2)] == [1, 0]
    assert CoreConfig.from_readback(lambda offset: values.get(offset, 0)) == loop
    forged = dict(values)  # a driver told the wrong recurrence refuses the core
    forged[regmap.layer_offset(0, "WIDTHS")] &= ~widths.field("recurrent").mask
    with pytest.raises(ConfigError, match="design hash"):
        CoreConfig.from_readback(lambda offset: forged.get(offset, 0))
    # chunk and events reach past n_in up to the crossbar's width; a scalar caps at it
    assert LayerConfig(8, 4, chunk=12, recurrent=True).chunk == 12 and LayerConfig(8, 4, recurrent=True).chunk == 12
    assert LayerConfig(8, 4, events=12, recurrent=True).events == 12
    assert [c.chunk for c in CoreConfig.build((8, 4, 2), chunk=64, recurrent=[True, False]).layers] == [12, 4]
    assert [c.events for c in CoreConfig.build((8, 4, 2), events=64, recurrent=True).layers] == [12, 6]
    with pytest.raises(ConfigError, match=r"layer: chunk = 13 is outside \[1, 12\]"):
        LayerConfig(8, 4, chunk=13, recurrent=True)
    with pytest.raises(ConfigError, match="layer: recurrent must be True or False, got 1"):
        LayerConfig(8, 4, recurrent=1)
    with pytest.raises(ConfigError, match="recurrent has 3 entries for 2 layers"):
        CoreConfig.build((8, 4, 2), recurrent=[True, False, False])


def test_events_are_checked_and_exclude_another_chunk():
    assert LayerConfig(40, 12, events=8).chunk == 8 and LayerConfig(40, 12, chunk=8, events=8).events == 8
    with pytest.raises(ConfigError, match=r"layer: chunk = 16 with events = 8"):
        LayerConfig(40, 12, chunk=16, events=8)
    for bad, message in ((0, r"events = 0 is outside \[1, 40\]"), (65, r"events = 65 is outside \[1, 40\]"),
                         (2.5, "events"), (True, "events")):
        with pytest.raises(ConfigError, match=message):
            LayerConfig(40, 12, events=bad)
    with pytest.raises(ConfigError, match=r"events = 65 is outside \[1, 64\]"):
        LayerConfig(100, 12, events=65)
    # build: a scalar caps at n_in and leaves the chunk of the dense layers; None entries are dense
    config = CoreConfig.build((100, 20, 5), lanes=4, chunk=16, events=[32, None])
    assert [(layer.events, layer.chunk) for layer in config.layers] == [(32, 32), (None, 16)]
    assert [layer.events for layer in CoreConfig.build((100, 20, 5), events=64).layers] == [64, 20]
    with pytest.raises(ConfigError, match="layer 1: chunk = 16 with events = 4"):
        CoreConfig.build((100, 20, 5), chunk=[None, 16], events=[None, 4])
    with pytest.raises(ConfigError, match="events has 1 entries for 2 layers"):
        CoreConfig.build((100, 20, 5), events=[4])
    network = random_network((30, 10, 4), seed=2)
    assert [layer.events for layer in CoreConfig.for_network(network, events=[5, None]).layers] == [5, None]


@pytest.mark.parametrize("n_in,n_out,lanes,events", [(40, 12, 4, 8), (37, 10, 3, 5), (70, 40, 36, 64), (1, 1, 1, 1)])
def test_an_event_layer_window_follows_its_kind(n_in, n_out, lanes, events):
    """Every user of the weights window goes through `LayerConfig.weight_window`: the event layout's words,
    padding and packer, the window's size in the register map, the load writes."""
    layer = LayerConfig(n_in, n_out, lanes=lanes, events=events)
    geo = layer.weight_window
    assert geo.words == layer.weight_rows * layer.row_stride == geo.rows * geo.bank_stride * geo.row_stride
    assert (layer.row_words, layer.row_stride) == (-(-lanes // 32), geo.row_stride)
    rng = np.random.default_rng(n_in)
    w = rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in))
    image = geo.pack(w)
    assert np.array_equal(image, pack_event_weights(w, lanes, events)) and np.array_equal(geo.unpack(image), w)
    padding = np.setdiff1d(np.arange(image.size), geo.data_words())
    assert not image[padding].any() and padding.size == image.size - geo.rows * events * geo.row_words
    with pytest.raises(ValueError, match="event-driven crossbar"):
        pack_weights(w, layer)
    config = CoreConfig((layer,))
    assert regmap.window(config, 0, "weights").words == geo.words
    network = random_network((n_in, n_out), seed=3)
    base = regmap.window(config, 0, "weights").base
    weights = {(o - base) // 4: v for o, v in load_writes(config, network) if base <= o < base + 4 * geo.words}
    assert sorted(weights) == geo.data_words().tolist()
    image = np.zeros(geo.words, np.uint32)
    image[list(weights)] = list(weights.values())
    assert np.array_equal(geo.unpack(image), network.layers[0].weights)


def test_a_layer_without_options_takes_only_v1_mode_values():
    config = CoreConfig.build((8, 4, 2), options=[True, False])
    mode = regmap.layer_register("MODE")
    assert [regmap.mode_top(f.name, False) for f in mode.fields] == [1, 2, 0, 0, 0, 0, 0]
    assert [regmap.mode_top(f.name, True) for f in mode.fields] == [f.top for f in mode.fields]
    words = [mode.encode(reset=3)] + [mode.encode(**{f.name: 1}) for f in mode.fields[2:]]
    for word in words:
        assert regmap.judge_write(config, regmap.layer_offset(0, "MODE"), word) == (True, ()), hex(word)
        assert regmap.judge_write(config, regmap.layer_offset(1, "MODE"), word) == (False, ("err_param",)), hex(word)
    assert regmap.judge_write(config, regmap.layer_offset(1, "MODE"), mode.encode(neuron=1, reset=2)).performed


def test_spike_packing_is_lsb_first():
    spikes = np.zeros((2, 40), bool)
    spikes[0, 0] = spikes[0, 33] = spikes[1, 31] = True
    assert pack_spikes(spikes).tolist() == [1, 2, 1 << 31, 0]
    assert pack_spikes(spikes, 64).tolist() == [1 | 1 << 33, 1 << 31]
    assert pack_spikes(spikes, 64).dtype == np.uint64


@pytest.mark.parametrize("bus_width", BUS_WIDTHS)
@pytest.mark.parametrize("n", [1, 31, 32, 33, 64, 100])
def test_spike_packing_round_trips(bus_width, n):
    rng = np.random.default_rng(n + bus_width)
    spikes = rng.random((7, n)) < 0.4
    words = pack_spikes(spikes, bus_width)
    assert words.size == 7 * words_per_timestep(n, bus_width)
    assert np.array_equal(unpack_spikes(words, n, bus_width), spikes)


@pytest.mark.parametrize("bus_width", BUS_WIDTHS)
@pytest.mark.parametrize("membranes", [False, True])
def test_output_packing_round_trips(bus_width, membranes):
    config = CoreConfig.build((20, 9, 7), membranes=membranes, bus_width=bus_width, v_bits=32)
    rng = np.random.default_rng(bus_width)
    spikes = rng.random((5, 7)) < 0.5
    v = rng.integers(-(2**31), 2**31, size=(5, 7))
    words = pack_output(spikes, v, config)
    assert words.size == 5 * output_words_per_timestep(config)
    got_spikes, got_v = unpack_output(words, config)
    assert np.array_equal(got_spikes, spikes)
    assert np.array_equal(got_v, v) if membranes else got_v is None


def test_packing_refuses_bad_input():
    with pytest.raises(ValueError, match="bus_width"):
        pack_spikes(np.zeros((1, 4), bool), 16)
    with pytest.raises(ValueError, match="0/1"):
        pack_spikes(np.full((1, 4), 2))
    with pytest.raises(ValueError, match="whole number"):
        unpack_spikes(np.zeros(3, np.uint32), 40)


@pytest.mark.parametrize("n_in,n_out,lanes,chunk", [(40, 12, 4, 8), (37, 10, 3, 5), (70, 5, 5, 20), (1, 1, 1, 1)])
def test_weight_and_neuron_images_round_trip(n_in, n_out, lanes, chunk):
    layer = LayerConfig(n_in, n_out, lanes=lanes, chunk=chunk)
    rng = np.random.default_rng(n_in)
    w = rng.choice(np.array([-1, 1], np.int8), size=(n_out, n_in))
    image = pack_weights(w, layer)
    assert image.size == layer.weight_rows * layer.row_stride
    assert np.array_equal(unpack_weights(image, layer), w)
    # neuron g*P+p, input c*C+b at row g*n_chunks+c, bit p*C+b
    j, i = n_out - 1, n_in - 1
    g, p, c, b = j // lanes, j % lanes, i // chunk, i % chunk
    bit = p * chunk + b
    word = image[(g * layer.n_chunks + c) * layer.row_stride + bit // 32]
    assert (int(word) >> (bit % 32)) & 1 == (w[j, i] > 0)
    values = rng.integers(-(2**15), 2**15, size=n_out)
    assert np.array_equal(unpack_neuron_values(pack_neuron_values(values, layer), layer), values)


def test_load_writes_cover_a_network():
    network = random_network((40, 12, 5), seed=1)
    config = CoreConfig.for_network(network, lanes=[4, 5], chunk=[8, 12])
    writes = load_writes(config, network)
    offsets = [o for o, _ in writes]
    assert len(set(offsets)) == len(offsets)
    for offset, _ in writes:
        kind, what = regmap.decode_address(config, offset)
        assert kind in ("layer", "window")
        assert what[0].writable if kind == "window" else what[1].access == "rw"
    assert len(load_writes(config, network, skip_zero=True)) < len(writes)


def test_config_build_and_for_network():
    config = CoreConfig.build((784, 256, 128, 10), lanes=16, chunk=64)
    assert [c.lanes for c in config.layers] == [16, 16, 10]
    assert config.sizes == (784, 256, 128, 10)
    net = random_network((30, 8, 4), seed=2, neuron="cuba", frac_bits=6)
    net = type(net)((net.layers[0].replace(lam=5), net.layers[1]))
    auto = CoreConfig.for_network(net, lanes=2, chunk=10)
    assert [c.decay for c in auto.layers] == ["multiply", "shift"]
    auto.check_network(net)
    shift = CoreConfig.for_network(net, lanes=2, chunk=10, decay="shift")
    with pytest.raises(ConfigError, match="layer 0: lam = 5 is not 0 or a power of two"):
        shift.check_network(net)
    with pytest.raises(ConfigError, match="layer 1: the network has v_bits = 16, the core is built for 8"):
        CoreConfig.build((30, 8, 4), v_bits=[16, 8], frac_bits=6, decay="multiply").check_network(net)
    with pytest.raises(ConfigError, match="the network has 2 layers, the core is built for 1"):
        CoreConfig.build((30, 8)).check_network(net)
    assert [c.options for c in auto.layers] == [False, False]  # a v1 network needs no options


@pytest.mark.parametrize("option,value", [
    ("decay_round", "nearest"), ("input_shift", 6), ("bias_to", "membrane"), ("u_overflow", "wrap"),
    ("v_range", "symmetric"), ("reset", "subtract_next"),
])
def test_a_v2_layer_needs_a_build_with_options(option, value):
    net = random_network((30, 8, 4), seed=3, neuron="cuba")
    net = type(net)((net.layers[0], net.layers[1].replace(**{option: value})))
    auto = CoreConfig.for_network(net, lanes=2, chunk=10)
    assert [c.options for c in auto.layers] == [False, True]
    auto.check_network(net)
    CoreConfig.for_network(net, options=True).check_network(net)
    with pytest.raises(ConfigError, match=f"layer 1: {option} = {value!r} needs contract v2's options logic, and the "
                                          r"core is built without it \(build with options=True, `--options` on the "
                                          r"command line\)"):
        CoreConfig.for_network(net, options=False).check_network(net)


@pytest.mark.parametrize("make,error", [
    (lambda: LayerConfig(8, 4, lanes=5), "lanes = 5 is outside"),
    (lambda: LayerConfig(8, 4, chunk=9), "chunk = 9 is outside"),
    (lambda: LayerConfig(8, 4, decay="fast"), "decay must be one of shift, multiply; got 'fast'"),
    (lambda: LayerConfig(8, 4, v_bits=33), "v_bits = 33 is outside"),
    (lambda: LayerConfig(8, 4, lanes=2.0), "lanes must be an integer"),
    (lambda: LayerConfig(0, 4), "n_in = 0 is outside"),
    (lambda: CoreConfig.build((8,)), "at least an input and one layer"),
    (lambda: CoreConfig.build((8, 4), bus_width=48), "bus_width must be one of"),
    (lambda: CoreConfig.build((8, 4), membranes=1), "membranes must be True or False"),
    (lambda: CoreConfig.build((8, 4, 2), lanes=[1, 1, 1]), "lanes has 3 entries for 2 layers"),
    (lambda: CoreConfig.build((8, 4, 2), options=[True]), "options has 1 entries for 2 layers"),
    (lambda: LayerConfig(8, 4, options=1), "layer: options must be True or False, got 1"),
    (lambda: CoreConfig((LayerConfig(8, 4), LayerConfig(5, 2))), "layer 1: n_in = 5 but layer 0 has n_out = 4"),
    (lambda: CoreConfig(()), "0 layers"),
])
def test_config_refuses_bad_values(make, error):
    with pytest.raises(ConfigError, match=error):
        make()


def test_register_encode_refuses_bad_fields():
    mode = regmap.layer_register("MODE")
    assert mode.decode(mode.encode(neuron=1, reset=2)) == {**{f.name: 0 for f in mode.fields}, "neuron": 1, "reset": 2}
    with pytest.raises(ValueError, match="MODE.reset = 4 does not fit 2 bits"):
        mode.encode(reset=4)
    with pytest.raises(KeyError):
        mode.encode(kind=1)


def test_mode_word_carries_every_option():
    options = {"neuron": "cuba", "reset": "subtract_next", "decay_round": "nearest", "bias_to": "membrane",
               "u_overflow": "wrap", "v_range": "symmetric", "input_shift": 16}
    word = regmap.mode_word(**options)
    assert regmap.mode_labels(word) == options
    assert regmap.mode_word(neuron="lif", reset="subtract", **OPTION_DEFAULTS) == 0  # v1's MODE words are unchanged
    assert regmap.judge_write(CoreConfig.build((8, 4), options=True), regmap.layer_offset(0, "MODE"), word).performed
    assert not regmap.judge_write(CoreConfig.build((8, 4)), regmap.layer_offset(0, "MODE"), word).performed
    with pytest.raises(KeyError, match="MODE needs decay_round"):
        regmap.mode_word(neuron="lif", reset="zero", input_shift=0)
    with pytest.raises(ValueError, match=r"MODE.input_shift = 17 is outside \[0, 16\]"):
        regmap.mode_word(**{**options, "input_shift": 17})
    with pytest.raises(ValueError, match=r"MODE.decay_round = 3 is not one of the codes 0 floor, 1 zero, 2 nearest"):
        regmap.mode_labels(3 << regmap.layer_register("MODE").field("decay_round").lsb)
