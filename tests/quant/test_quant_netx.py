"""lava-dl netx import (spikeloop.quant.netx): Lava 0.10's bit-accurate records of real lava-dl files, reproduced
bit for bit, and every refusal.

The fixtures (tests/fixtures/lava, recorded by record.py there in an environment with Lava) hold each layer's
spikes, u and v after every Lava timestep; these tests need neither Lava nor torch.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.app.cli import main
from spikeloop.network import OPTION_DEFAULTS, Network

h5py = pytest.importorskip("h5py")
from spikeloop.quant.netx import LOIHI, NetxError, from_netx, lava_states, lava_trace  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lava"
CASES = sorted(p.stem for p in FIXTURES.glob("*.net"))
WRAP = 1 << 23


def lava_record(name):
    """(input spikes [T, n_in], per layer (s, u, v) [T, n]) as Lava recorded them."""
    d = np.load(FIXTURES / f"{name}.npz")
    depth = sum(1 for key in d.files if key.startswith("s") and key[1:].isdigit())
    return d["input"], [(d[f"s{k}"].astype(bool), d[f"u{k}"].astype(np.int64), d[f"v{k}"].astype(np.int64))
                        for k in range(depth)]


def assert_guards(name, layers):
    """The record is not vacuous: every layer spikes, and its u and v move."""
    for k, (s, u, v) in enumerate(layers):
        assert s.any() and (u != 0).any() and (v != 0).any(), f"{name}: layer {k} is silent"


def test_there_are_fixtures():
    assert len(CASES) >= 5, CASES
    for name in CASES:
        assert (FIXTURES / f"{name}.npz").stat().st_size < 100_000
        assert (FIXTURES / f"{name}.net").stat().st_size < 100_000


@pytest.mark.parametrize("name", CASES)
def test_fixture_imports_with_loihi_s_options(name):
    network, report = from_netx(FIXTURES / f"{name}.net")
    _, layers = lava_record(name)
    assert len(network.layers) == len(layers) == len(report.layers)
    for layer, r, (s, _, _) in zip(network.layers, report.layers, layers):
        assert layer.n_out == s.shape[1]
        options = layer.options()
        assert options.pop("input_shift") == r.input_shift == 6 + r.weight.bit_length() - 1
        assert options == {k: LOIHI[k] for k in options}
        assert (layer.neuron, layer.reset, layer.v_bits, layer.u_bits, layer.frac_bits) == ("cuba", "zero", 24, 24, 12)
        assert ((layer.theta - 1) % 64 == 0).all() and (layer.bias % 64 == 0).all()
    text = str(report)
    assert "netx import of" in text and "input_shift" in text and "t-(k+1)" in text


@pytest.mark.parametrize("engine", ["auto", "numpy", "reference"])
@pytest.mark.parametrize("name", CASES)
def test_lava_trace_equals_lava_at_every_step_of_every_layer(name, engine):
    x, layers = lava_record(name)
    assert_guards(name, layers)
    network, _ = from_netx(FIXTURES / f"{name}.net")
    for k, (rec, (s, u, v)) in enumerate(zip(lava_trace(network, x, engine=engine), layers)):
        assert np.array_equal(rec.z, s), f"{name}: layer {k} spikes"
        assert np.array_equal(rec.u, u), f"{name}: layer {k} u"
        assert np.array_equal(rec.v, v), f"{name}: layer {k} v"


@pytest.mark.parametrize("name", CASES)
def test_golden_run_equals_lava_shifted_by_the_layer_s_depth(name):
    """golden.run on the input one step later, from `lava_states`: its layer k at step j is Lava's at step j + k;
    the pre-reset v' it records, reset to 0 where it spiked, is Lava's v."""
    x, layers = lava_record(name)
    assert_guards(name, layers)
    network, _ = from_netx(FIXTURES / f"{name}.net")
    later = np.concatenate([np.zeros_like(x[:1]), x[:-1]])
    trace = golden.run(network, later, states=lava_states(network), record=True)
    steps = x.shape[0]
    for k, (rec, layer, (s, u, v)) in enumerate(zip(trace.layers, network.layers, layers)):
        z, vp, cur = rec.z[: steps - k], rec.v[: steps - k], rec.u[: steps - k]
        assert np.array_equal(z, s[k:]), f"{name}: layer {k} spikes"
        assert np.array_equal(cur, u[k:]), f"{name}: layer {k} u"
        assert np.array_equal(np.where(z, 0, vp), v[k:]), f"{name}: layer {k} v"
        assert np.array_equal(z, vp >= layer.theta), f"{name}: layer {k} threshold"


@pytest.mark.parametrize("name", [n for n in CASES if "bias" not in n])
def test_without_biases_lava_is_golden_run_delayed_by_k_plus_1(name):
    x, layers = lava_record(name)
    network, _ = from_netx(FIXTURES / f"{name}.net")
    assert not any(layer.bias.any() for layer in network.layers)
    assert all(not st.v.any() and not st.u.any() for st in lava_states(network))
    trace = golden.run(network, x, record=True)
    steps = x.shape[0]
    for k, (rec, (s, u, v)) in enumerate(zip(trace.layers, layers)):
        assert not s[: k + 1].any() and not u[: k + 1].any() and not v[: k + 1].any(), f"{name}: layer {k}"
        n = steps - k - 1
        assert np.array_equal(rec.z[:n], s[k + 1:]), f"{name}: layer {k} spikes"
        assert np.array_equal(rec.u[:n], u[k + 1:]), f"{name}: layer {k} u"
        assert np.array_equal(np.where(rec.z[:n], 0, rec.v[:n]), v[k + 1:]), f"{name}: layer {k} v"


def test_with_biases_the_pipeline_fill_matters():
    """Lava's layer 1 runs one step on its bias alone before input reaches it: without `lava_states` the
    shifted golden run differs from Lava."""
    name = "pow2_bias_16_12_8"
    x, layers = lava_record(name)
    network, _ = from_netx(FIXTURES / f"{name}.net")
    assert network.layers[1].bias.any()
    states = lava_states(network)
    assert states[1].v.any()
    plain = golden.run(network, x, record=True).layers[1]
    n = x.shape[0] - 2
    same = (np.array_equal(plain.u[:n], layers[1][1][2:])
            and np.array_equal(np.where(plain.z, 0, plain.v)[:n], layers[1][2][2:]))
    assert not same


def test_the_wrap_fixture_wraps_u():
    _, layers = lava_record("wrap_16_8_4")
    u = layers[0][1]
    assert u.max() > WRAP // 2 and u.min() < -WRAP // 2
    jumps = np.diff(u, axis=0)
    assert (jumps < -WRAP).any(), "u passed 2^23 and wrapped"
    for name in CASES:  # Lava keeps +2^23 where a 24-bit wrap gives -2^23: no fixture reaches it
        assert all((np.abs(uu) != WRAP).all() for _, uu, _ in lava_record(name)[1]), name


def test_the_saturate_fixture_reaches_loihi_s_lowest_membrane():
    _, layers = lava_record("saturate_16_8_4")
    assert (layers[0][2] == -(WRAP - 1)).any() and layers[0][2].min() == -(WRAP - 1)


def matches(network, name):
    x, layers = lava_record(name)
    return all(np.array_equal(r.z, s) and np.array_equal(r.u, u) and np.array_equal(r.v, v)
               for r, (s, u, v) in zip(lava_trace(network, x), layers))


@pytest.mark.parametrize("option", [k for k in OPTION_DEFAULTS if k != "input_shift"])
def test_every_loihi_option_is_needed(option):
    """With any one of Loihi's options set back to its v1 value, some fixture no longer matches Lava."""
    differ = []
    for name in CASES:
        network, _ = from_netx(FIXTURES / f"{name}.net")
        assert matches(network, name), name
        changed_net = Network(tuple(layer.replace(**{option: OPTION_DEFAULTS[option]}) for layer in network.layers))
        differ += [] if matches(changed_net, name) else [name]
    assert differ, f"no fixture tells {option} = {LOIHI[option]!r} from {OPTION_DEFAULTS[option]!r}"


def test_the_cli_imports_into_a_new_folder(tmp_path, capsys):
    src = FIXTURES / "pow2_bias_16_12_8.net"
    out = tmp_path / "new" / "folder" / "net.npz"
    assert main(["netx", "import", str(src), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "netx import of" in text and "16-12-8 network ->" in text
    assert Network.load(out) == from_netx(src).network
    assert main(["netx", "import", str(tmp_path / "missing.net"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "spikeloop netx import: error:" in err and "missing.net: no such netx file" in err


# ---------------------------------------------------------------------------------------------
# Refusals: a fixture copied and changed in one place


def changed(tmp_path, edit, name="binary_16_12_8_4"):
    """A copy of a fixture after ``edit(file)``."""
    path = tmp_path / "changed.net"
    shutil.copy(FIXTURES / f"{name}.net", path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def put(f, key, value):
    if key in f:
        del f[key]
    f[key] = value


def scale_weight(key, fn):
    def edit(f):
        put(f, key, fn(f[key][()]))
    return edit


def input_block(f, shape=(16,)):
    """Shift the blocks up by one and put an input block without neuron first."""
    for k in sorted((int(k) for k in f["layer"]), reverse=True):
        f.move(f"layer/{k}", f"layer/{k + 1}")
    put(f, "layer/0/type", np.array([b"input"], "S10"))
    put(f, "layer/0/shape", np.array(shape))


REFUSALS = {
    "non-uniform": (scale_weight("layer/0/weight", lambda w: np.where(np.arange(w.size).reshape(w.shape) == 1,
                                                                         w / 2, w)),
                    "layer/0: weight[0, 1] = "),
    "not a power of two": (scale_weight("layer/1/weight", lambda w: w * 0.75), "layer/1: weight magnitude 48"),
    "too large": (scale_weight("layer/1/weight", lambda w: w * 4), "layer/1: weight magnitude 256"),
    "not integral": (scale_weight("layer/0/weight", lambda w: w / 128), "expected an integer (netx truncates"),
    "all inhibitory": (scale_weight("layer/2/weight", lambda w: -np.abs(w)), "layer/2: every weight is -64"),
    "refractory": (lambda f: put(f, "layer/1/neuron/refDelay", 2), "layer/1: neuron/refDelay = 2, expected"),
    "graded": (lambda f: put(f, "layer/0/neuron/gradedSpike", True), "layer/0: neuron/gradedSpike = True"),
    "message bits": (lambda f: put(f, "layer/0/neuron/messageBits", 3), "layer/0: neuron/messageBits = 3"),
    "sigma-delta": (lambda f: put(f, "layer/2/neuron/type", b"SDNN"), "layer/2: neuron/type = 'SDNN'"),
    "no neuron": (lambda f: f.__delitem__("layer/2/neuron"), "layer/2: no neuron group"),
    "conv": (lambda f: put(f, "layer/1/type", np.array([b"conv"], "S10")), "layer/1: type = 'conv', expected"),
    "delays": (lambda f: put(f, "layer/0/delay", np.zeros(12)), "layer/0: has axonal delays"),
    "weight exponent": (lambda f: put(f, "layer/0/neuron/weight_exp", 1), "layer/0: neuron/weight_exp = 1"),
    "iDecay": (lambda f: put(f, "layer/0/neuron/iDecay", 5000),
               "layer/0: neuron/iDecay = 5000, expected an integer in [0, 4096]"),
    "vDecay": (lambda f: put(f, "layer/1/neuron/vDecay", -1), "layer/1: neuron/vDecay = -1"),
    "vThMant": (lambda f: put(f, "layer/2/neuron/vThMant", 1 << 17), "layer/2: neuron/vThMant = 131072"),
    "per-neuron decays": (lambda f: put(f, "layer/1/neuron/iDecay", np.arange(8) + 100),
                          "layer/1: neuron/iDecay holds 8 different values from 100 to 107, expected one"),
    "missing vThMant": (lambda f: f.__delitem__("layer/2/neuron/vThMant"), "layer/2: neuron/vThMant is missing"),
    "bias range": (lambda f: put(f, "layer/0/bias", np.full(12, 5000.0)),
                   "layer/0: bias[0] = 5000, expected an integer in [-4096, 4095]"),
    "bias fraction": (lambda f: put(f, "layer/1/bias", np.full(8, 1.5)), "layer/1: bias[0] = 1.5"),
    "bias shape": (lambda f: put(f, "layer/1/bias", np.ones(3)), "layer/1: bias has shape (3,)"),
    "sizes": (scale_weight("layer/1/weight", lambda w: w[:, :10]), "layer/1: weight has 10 inputs, expected 12"),
    "input neuron": (lambda f: (input_block(f), f.create_group("layer/0/neuron")),
                     "layer/0: an input block with a neuron"),
    "no layers": (lambda f: f.move("layer", "layers"), "no 'layer' group at the top"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_name_block_field_value_and_expectation(case, tmp_path):
    edit, message = REFUSALS[case]
    with pytest.raises(NetxError) as e:
        from_netx(changed(tmp_path, edit))
    assert message in str(e.value), str(e.value)
    assert "changed.net" in str(e.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    def edit(f):
        put(f, "layer/0/neuron/refDelay", 3)
        put(f, "layer/2/neuron/gradedSpike", True)
    with pytest.raises(NetxError, match="2 problems") as e:
        from_netx(changed(tmp_path, edit))
    assert "layer/0: neuron/refDelay = 3" in str(e.value) and "layer/2: neuron/gradedSpike" in str(e.value)


def test_per_neuron_fields_that_agree_are_one_value(tmp_path):
    network, _ = from_netx(changed(tmp_path, lambda f: put(f, "layer/1/neuron/vDecay", np.full(8, 0))))
    assert network == from_netx(FIXTURES / "binary_16_12_8_4.net").network


def test_an_input_block_without_neuron_only_names_the_input_size(tmp_path):
    network, _ = from_netx(changed(tmp_path, input_block))
    assert network == from_netx(FIXTURES / "binary_16_12_8_4.net").network
    with pytest.raises(NetxError, match=r"layer/1: weight has 16 inputs, expected 20 \(the input size\)"):
        from_netx(changed(tmp_path, lambda f: input_block(f, (4, 5))))


def test_unreadable_files_and_bad_spikes(tmp_path):
    with pytest.raises(NetxError, match="no such netx file"):
        from_netx(tmp_path / "missing.net")
    (tmp_path / "text.net").write_text("not hdf5")
    with pytest.raises(NetxError, match="not an HDF5 file"):
        from_netx(tmp_path / "text.net")
    network, _ = from_netx(FIXTURES / "binary_16_12_8.net")
    with pytest.raises(NetxError, match=r"spikes have shape \(5, 15\), expected \[T, 16\]"):
        lava_trace(network, np.zeros((5, 15), np.uint8))
    with pytest.raises(NetxError, match="spikes must be 0/1"):
        lava_trace(network, np.full((5, 16), 2))


def test_a_layer_whose_input_can_pass_lava_s_single_wrap_is_warned_about(tmp_path):
    def wide(f):
        put(f, "layer/0/weight", np.full((4, 4097), 128.0) * np.where(np.arange(4097) % 2, 1, -1))
        put(f, "layer/0/shape", np.array([4]))
        put(f, "layer/1/weight", np.full((2, 4), 64.0) * np.array([1, -1, 1, 1]))
        put(f, "layer/1/shape", np.array([2]))
        del f["layer/2"]
    network, report = from_netx(changed(tmp_path, wide))
    assert network.sizes == (4097, 4, 2)
    assert len(report.warnings) == 1 and report.warnings[0].startswith("layer/0: one step's synaptic input can reach "
                                                                       "33562624 > 2^24")
    assert "warning: layer/0" in str(report)
    assert not from_netx(FIXTURES / "binary_16_12_8.net").report.warnings
