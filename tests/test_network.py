"""spikeloop.network: every validation rule of the contract (docs/numerics.md) has a test here."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spikeloop.network import (
    MAX_LAYERS,
    MAX_WIDTH,
    NEURONS,
    OPTION_DEFAULTS,
    RESETS,
    Layer,
    Network,
    NetworkError,
    random_network,
    signed_range,
    v_range_bounds,
)

W = np.array([[1, -1, 1], [-1, -1, 1]], dtype=np.int8)  # n_out = 2, n_in = 3


def make(weights=W, **kw) -> Layer:
    return Layer(weights, **kw)


# ----------------------------------------------------------------------------------------------
# A valid layer


def test_valid_layer_fields_and_dtypes():
    layer = make(theta=[3, 4], bias=-2, neuron="cuba", reset="zero", v_bits=8, u_bits=6, frac_bits=4,
                 lam=3, alpha=16)
    assert (layer.n_in, layer.n_out) == (3, 2)
    assert layer.weights.dtype == np.int8 and np.array_equal(layer.weights, W)
    assert layer.theta.dtype == np.int64 and layer.theta.tolist() == [3, 4]
    assert layer.bias.dtype == np.int64 and layer.bias.tolist() == [-2, -2]  # scalar broadcast
    assert layer.params() == {
        "n_in": 3, "n_out": 2, "neuron": "cuba", "reset": "zero", "v_bits": 8, "u_bits": 6,
        "frac_bits": 4, "lam": 3, "alpha": 16, "decay_round": "floor", "input_shift": 0, "bias_to": "current",
        "u_overflow": "saturate", "v_range": "full",
    }
    assert "neuron='cuba'" in repr(layer) and "n_in=3" in repr(layer)


def test_defaults():
    layer = make()
    assert layer.theta.tolist() == [1, 1] and layer.bias.tolist() == [0, 0]
    assert (layer.neuron, layer.reset, layer.v_bits, layer.u_bits, layer.frac_bits, layer.lam, layer.alpha) == (
        "lif", "subtract", 16, 16, 8, 0, 0
    )


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64])
def test_arrays_of_any_integer_dtype(dtype):
    w = W.astype(np.int64).astype(dtype) if np.issubdtype(dtype, np.signedinteger) else W.astype(np.int64)
    layer = make(w, theta=np.array([2, 3], dtype=dtype), bias=np.array([1, 0], dtype=dtype))
    assert layer.weights.dtype == np.int8 and np.array_equal(layer.weights, W)
    assert layer.theta.tolist() == [2, 3] and layer.bias.tolist() == [1, 0]


@pytest.mark.parametrize("field", ["weights", "theta", "bias"])
def test_float_dtype_arrays_refused(field):
    arrays = {"weights": W, "theta": np.array([2, 3]), "bias": np.array([-1, 0])}
    arrays[field] = arrays[field].astype(np.float64)
    with raises(field, "float64"):
        make(arrays.pop("weights"), **arrays)


def test_numpy_integer_scalars_accepted():
    layer = make(theta=np.int64(2), bias=np.int8(-1), v_bits=np.int32(8), frac_bits=np.int64(3), lam=np.uint8(8))
    assert layer.v_bits == 8 and type(layer.v_bits) is int
    assert layer.lam == 8 and layer.theta.tolist() == [2, 2]


@pytest.mark.parametrize("v_bits", [2, 3, 8, 16, 32])
def test_range_boundaries_accepted(v_bits):
    lo, hi = signed_range(v_bits)
    layer = make(theta=[1, hi], bias=[lo, hi], v_bits=v_bits, u_bits=v_bits)
    assert layer.theta.tolist() == [1, hi] and layer.bias.tolist() == [lo, hi]


@pytest.mark.parametrize("frac_bits", [0, 1, 16])
def test_decay_boundaries_accepted(frac_bits):
    one = 1 << frac_bits
    for lam, alpha in ((0, 0), (one, one), (0, one), (one, 0)):
        layer = make(neuron="cuba", frac_bits=frac_bits, lam=lam, alpha=alpha)
        assert (layer.lam, layer.alpha) == (lam, alpha)


def test_signed_range():
    assert signed_range(2) == (-2, 1)
    assert signed_range(8) == (-128, 127)
    assert signed_range(32) == (-(2**31), 2**31 - 1)


def test_widest_layers_accepted():
    assert make(np.ones((1, MAX_WIDTH), np.int8)).n_in == MAX_WIDTH == 65536
    assert make(np.ones((MAX_WIDTH, 1), np.int8)).n_out == MAX_WIDTH


def test_single_neuron_single_input():
    layer = make(np.array([[-1]]))
    assert (layer.n_in, layer.n_out) == (1, 1)


# ----------------------------------------------------------------------------------------------
# Layer validation errors: each message names the layer, the field and the bad value.


def raises(*parts: str):
    """pytest.raises(NetworkError) whose message contains every part, in order."""
    return pytest.raises(NetworkError, match=".*".join(re.escape(p) for p in parts))


@pytest.mark.parametrize(
    ("weights", "parts"),
    [
        (np.ones(3, np.int8), ["weights", "2-D", "(3,)"]),
        (np.ones((2, 3, 1), np.int8), ["weights", "2-D", "(2, 3, 1)"]),
        (np.ones((0, 3), np.int8), ["weights", "(0, 3)"]),
        (np.ones((3, 0), np.int8), ["weights", "(3, 0)"]),
        (np.int8(1), ["weights", "()"]),
    ],
)
def test_weights_shape_errors(weights, parts):
    with raises("layer", *parts):
        make(weights)


@pytest.mark.parametrize(("shape", "name"), [((1, MAX_WIDTH + 1), "n_in"), ((MAX_WIDTH + 1, 1), "n_out")])
def test_width_over_65536(shape, name):
    with raises("layer:", f"{name} = {MAX_WIDTH + 1}", str(MAX_WIDTH)):
        make(np.ones(shape, np.int8))


def test_bool_weights_refused():
    with raises("weights", "bool"):
        make(W > 0)


def test_zero_weight_refused():
    w = W.copy()
    w[1, 2] = 0
    with raises("weights[1, 2] = 0", "-1 or +1"):
        make(w)


@pytest.mark.parametrize("bad", [2, -2, 127])
def test_weight_out_of_range(bad):
    w = W.copy()
    w[0, 1] = bad
    with raises("weights[0, 1]", str(bad), "[-1, 1]"):
        make(w)


# Floats with a fractional part, NaN or infinity are refused whether or not float dtypes as such
# are (see test_float_dtype_arrays_refused): the message names the field and either the entry
# or the dtype.
NOT_INTEGER = r" must hold integers, got dtype float64"


@pytest.mark.parametrize("bad", [0.5, -0.999, np.nan, np.inf, -np.inf])
def test_non_integer_float_weights(bad):
    w = W.astype(np.float64)
    w[1, 0] = bad
    with pytest.raises(NetworkError, match="layer: weights" + NOT_INTEGER):
        make(w)


@pytest.mark.parametrize("field", ["theta", "bias"])
@pytest.mark.parametrize("bad", [2.5, np.nan, -np.inf])
def test_non_integer_float_theta_bias(field, bad):
    with pytest.raises(NetworkError, match=f"layer: {field}" + NOT_INTEGER):
        make(v_bits=8, **{field: [1, bad]})


@pytest.mark.parametrize("weights", [np.array([["1", "-1"]]), np.array([[1 + 0j, -1]]), np.array([[1, None]])])
def test_non_numeric_weights(weights):
    with raises("weights must hold integers", str(weights.dtype)):
        make(weights)


@pytest.mark.parametrize(
    ("field", "value", "parts"),
    [
        ("theta", 0, ["theta[0] = 0", "[1, 127]"]),
        ("theta", [1, 128], ["theta[1] = 128", "[1, 127]"]),
        ("theta", [-5, 3], ["theta[0] = -5"]),
        ("theta", [1, 2, 3], ["theta has shape (3,)", "expected (2,)"]),
        ("theta", [[1, 2]], ["theta has shape (1, 2)", "expected (2,)"]),
        ("theta", [True, True], ["theta must hold integers", "bool"]),
        ("theta", "3", ["theta must hold integers"]),
        ("bias", -129, ["bias[0] = -129", "[-128, 127]"]),
        ("bias", [0, 128], ["bias[1] = 128", "[-128, 127]"]),
        ("bias", [0], ["bias has shape (1,)", "expected (2,)"]),
        ("bias", np.array([0, 1], np.bool_), ["bias must hold integers", "bool"]),
    ],
)
def test_theta_bias_errors(field, value, parts):
    with raises("layer", *parts):
        make(v_bits=8, **{field: value})


@pytest.mark.parametrize(
    ("field", "value", "parts"),
    [
        ("v_bits", 1, ["v_bits = 1", "[2, 32]"]),
        ("v_bits", 33, ["v_bits = 33", "[2, 32]"]),
        ("v_bits", 16.0, ["v_bits must be an integer", "16.0"]),
        ("v_bits", True, ["v_bits must be an integer", "True"]),
        ("v_bits", "16", ["v_bits must be an integer", "'16'"]),
        ("u_bits", 1, ["u_bits = 1", "[2, 32]"]),
        ("u_bits", 64, ["u_bits = 64", "[2, 32]"]),
        ("u_bits", None, ["u_bits must be an integer", "None"]),
        ("frac_bits", -1, ["frac_bits = -1", "[0, 16]"]),
        ("frac_bits", 17, ["frac_bits = 17", "[0, 16]"]),
        ("frac_bits", np.bool_(True), ["frac_bits must be an integer"]),
        ("lam", -1, ["lam = -1", "[0, 256]"]),
        ("lam", 257, ["lam = 257", "[0, 256]"]),
        ("lam", 0.5, ["lam must be an integer", "0.5"]),
        ("neuron", "izhikevich", ["neuron must be one of lif, cuba", "'izhikevich'"]),
        ("neuron", "LIF", ["neuron", "'LIF'"]),
        ("neuron", None, ["neuron", "None"]),
        ("reset", "hard", ["reset must be one of subtract, zero, none", "'hard'"]),
        ("reset", None, ["reset", "None"]),
    ],
)
def test_scalar_field_errors(field, value, parts):
    with raises("layer", *parts):
        make(**{field: value})


@pytest.mark.parametrize(
    ("frac_bits", "alpha", "parts"),
    [(8, -1, ["alpha = -1", "[0, 256]"]), (8, 257, ["alpha = 257", "[0, 256]"]), (0, 2, ["alpha = 2", "[0, 1]"]),
     (16, 65537, ["alpha = 65537", "[0, 65536]"]), (4, 1.0, ["alpha must be an integer", "1.0"])],
)
def test_alpha_range_on_cuba(frac_bits, alpha, parts):
    with raises("layer", *parts):
        make(neuron="cuba", frac_bits=frac_bits, alpha=alpha)


@pytest.mark.parametrize("frac_bits", [0, 4, 16])
def test_lam_range_follows_frac_bits(frac_bits):
    make(frac_bits=frac_bits, lam=1 << frac_bits)
    with raises(f"lam = {(1 << frac_bits) + 1}", f"[0, {1 << frac_bits}]"):
        make(frac_bits=frac_bits, lam=(1 << frac_bits) + 1)


@pytest.mark.parametrize("alpha", [1, 256])
def test_alpha_on_lif_refused(alpha):
    with raises(f"alpha = {alpha}", "'lif'", "expected 0"):
        make(neuron="lif", alpha=alpha)


def test_theta_range_follows_v_bits():
    make(v_bits=2, theta=1, bias=[-2, 1])
    with raises("theta[0] = 2", "[1, 1]"):
        make(v_bits=2, theta=2)
    with raises("bias[0] = -3", "[-2, 1]"):
        make(v_bits=2, bias=-3)
    hi = 2**31 - 1
    make(v_bits=32, theta=hi, bias=[-(2**31), hi])
    with raises(f"theta[0] = {hi + 1}"):
        make(v_bits=32, theta=hi + 1)


def test_where_names_the_layer():
    with raises("layer 2: theta[1] = 0"):
        Network.build([{"weights": W.T, "theta": 1}, {"weights": W}, {"weights": W.T, "theta": [1, 0, 1]}])


def test_error_is_a_value_error():
    assert issubclass(NetworkError, ValueError)


# ----------------------------------------------------------------------------------------------
# Network validation


def chain(n: int) -> tuple[Layer, ...]:
    return tuple(Layer(np.ones((2, 2), np.int8), where=f"layer {k}") for k in range(n))


@pytest.mark.parametrize("n", [1, 2, MAX_LAYERS])
def test_network_layer_count_accepted(n):
    net = Network(chain(n))
    assert len(net.layers) == n and net.sizes == (2,) * (n + 1)


@pytest.mark.parametrize("n", [0, MAX_LAYERS + 1, 40])
def test_network_layer_count_refused(n):
    with raises(f"network: {n} layers", f"1 to {MAX_LAYERS}"):
        Network(chain(n))


def test_network_layers_must_be_layers():
    with raises("layers[1] is a dict", "Layer"):
        Network((chain(1)[0], {"weights": W}))
    with raises("layers[0] is a ndarray"):
        Network((W,))


def test_network_size_mismatch():
    l0 = Layer(np.ones((4, 3), np.int8))
    l1 = Layer(np.ones((2, 5), np.int8))
    with raises("layer 1: n_in = 5", "layer 0 has n_out = 4"):
        Network((l0, l1))
    l2 = Layer(np.ones((2, 4), np.int8))
    with raises("layer 2: n_in = 4", "layer 1 has n_out = 2"):
        Network((l0, l2, l2))


def test_network_accepts_a_list_and_stores_a_tuple():
    layers = list(chain(3))
    net = Network(layers)
    assert isinstance(net.layers, tuple) and net.layers == tuple(layers)
    layers.pop()
    assert len(net.layers) == 3


def test_network_properties():
    net = Network.build([{"weights": np.ones((4, 3), np.int8)}, {"weights": np.ones((2, 4), np.int8), "theta": 2}])
    assert (net.n_in, net.n_out, net.sizes) == (3, 2, (3, 4, 2))
    assert net.layers[1].theta.tolist() == [2, 2]


def test_network_is_frozen():
    net = Network(chain(1))
    with pytest.raises(AttributeError):
        net.layers = chain(2)


# ----------------------------------------------------------------------------------------------
# Equality, replace, read-only arrays


def test_layer_equality():
    a = make(theta=[1, 2], bias=[0, -1], neuron="cuba", alpha=3)
    b = make(W.astype(np.int64), theta=np.array([1, 2]), bias=[0, -1], neuron="cuba", alpha=3)
    assert a == b and not (a != b)
    assert a != a.replace(theta=[2, 2])
    assert a != a.replace(bias=[0, 0])
    assert a != a.replace(weights=-W)
    assert a != a.replace(alpha=4)
    assert a != a.replace(reset="zero")
    assert a != a.replace(u_bits=15)
    assert a != "not a layer" and a != None  # noqa: E711


def test_layer_is_unhashable():
    with pytest.raises(TypeError):
        hash(make())


def test_network_equality():
    net = random_network((5, 4, 3), seed=7)
    same = Network(tuple(layer.replace() for layer in net.layers))
    assert net == same
    other = Network((net.layers[0], net.layers[1].replace(theta=net.layers[1].theta + 1)))
    assert net != other


def test_replace_returns_a_validated_copy():
    layer = make(theta=[2, 3], v_bits=8, frac_bits=4, lam=2)
    copy = layer.replace(theta=5, lam=16)
    assert copy.theta.tolist() == [5, 5] and copy.lam == 16
    assert layer.theta.tolist() == [2, 3] and layer.lam == 2  # unchanged
    assert copy.replace(theta=[2, 3], lam=2) == layer
    cuba = layer.replace(neuron="cuba", alpha=16)
    assert cuba.neuron == "cuba" and cuba.alpha == 16
    with raises("theta[0] = 0"):
        layer.replace(theta=0)
    with raises("alpha = 1", "'lif'"):
        layer.replace(alpha=1)
    with raises("theta[0] = 200", "[1, 127]"):
        layer.replace(theta=200)
    with raises("lam = 17", "[0, 16]"):
        layer.replace(lam=17)
    with raises("v_bits = 40"):
        layer.replace(v_bits=40)


@pytest.mark.parametrize("field", ["weights", "theta", "bias"])
def test_arrays_are_read_only(field):
    layer = make(theta=[1, 2], bias=[0, 1])
    arr = getattr(layer, field)
    assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 1


def test_layer_copies_its_inputs():
    w, theta, bias = W.copy(), np.array([1, 2]), np.array([0, 1])
    layer = make(w, theta=theta, bias=bias)
    w[0, 0], theta[0], bias[0] = -w[0, 0], 9, 9
    assert np.array_equal(layer.weights, W) and layer.theta.tolist() == [1, 2] and layer.bias.tolist() == [0, 1]


# ----------------------------------------------------------------------------------------------
# random_network


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("reset", RESETS)
def test_random_network_fields(neuron, reset):
    seed = 11
    net = random_network((20, 8, 3), seed=seed, neuron=neuron, reset=reset, v_bits=10, u_bits=12, frac_bits=6)
    assert net.sizes == (20, 8, 3), f"seed {seed}"
    for layer in net.layers:
        assert (layer.neuron, layer.reset, layer.v_bits, layer.u_bits, layer.frac_bits) == (
            neuron, reset, 10, 12, 6
        )
        assert layer.lam == 64 // 8
        assert layer.alpha == (64 // 4 if neuron == "cuba" else 0)
        assert set(np.unique(layer.weights).tolist()) <= {-1, 1}
        assert (layer.theta >= 1).all() and (layer.theta <= signed_range(10)[1]).all()


def test_random_network_is_deterministic_per_seed():
    assert random_network((30, 10, 4), seed=3) == random_network((30, 10, 4), seed=3)
    assert random_network((30, 10, 4), seed=3) != random_network((30, 10, 4), seed=4)


def test_random_network_explicit_decays_and_theta():
    net = random_network((6, 5), seed=5, neuron="cuba", lam=0, alpha=256, theta=4)
    layer = net.layers[0]
    assert (layer.lam, layer.alpha) == (0, 256)
    assert ((layer.theta >= 2) & (layer.theta <= 4)).all()


@pytest.mark.parametrize("v_bits", [2, 3])
def test_random_network_tiny_v_bits(v_bits):
    net = random_network((100, 5), seed=1, v_bits=v_bits, u_bits=v_bits)
    lo, hi = signed_range(v_bits)
    assert (net.layers[0].theta <= hi).all() and (net.layers[0].bias >= lo).all()


def test_random_network_fires_on_sparse_input():
    from spikeloop.golden import run
    from spikeloop.spikes import poisson_spikes

    seed = 21
    net = random_network((784, 256, 10), seed=seed)
    trace = run(net, poisson_spikes((2, 30, 784), 0.2, seed=seed + 1), record=True)
    hidden_rate = trace.layers[0].z.mean()
    assert 0.01 < hidden_rate < 0.9, f"seed {seed}: hidden firing rate {hidden_rate}"
    assert trace.spikes.any(), f"seed {seed}: the output layer never fired"


@pytest.mark.parametrize("neuron", NEURONS)
def test_random_network_bad_arguments_are_network_errors(neuron):
    with raises("neuron must be one of", "'adex'"):
        random_network((4, 2), seed=0, neuron="adex")
    with raises("frac_bits = 20"):
        random_network((4, 2), seed=0, neuron=neuron, frac_bits=20)
    with raises("lam = 999"):
        random_network((4, 2), seed=0, neuron=neuron, lam=999)


@pytest.mark.parametrize(("kw", "parts"), [({"theta": 0}, ["theta", "0"]), ({"v_bits": 1}, ["v_bits = 1"]),
                                         ({"theta": 40000}, ["theta", "40000"])])
def test_random_network_out_of_range_arguments_name_the_field(kw, parts):
    with raises(*parts):
        random_network((5, 3), seed=1, **kw)


# ----------------------------------------------------------------------------------------------
# Contract v2's options


def test_options_default_to_what_v1_meant():
    layer = make(theta=2)
    assert layer.options() == OPTION_DEFAULTS and layer.is_v1
    assert not make(theta=2, reset="subtract_next").is_v1
    assert not make(theta=2, input_shift=3).is_v1


@pytest.mark.parametrize(("key", "value", "message"), [
    ("decay_round", "down", "layer: decay_round must be one of floor, zero, nearest; got 'down'"),
    ("decay_round", None, "layer: decay_round must be one of floor, zero, nearest; got None"),
    ("input_shift", -1, "layer: input_shift = -1 is outside [0, 16]"),
    ("input_shift", 17, "layer: input_shift = 17 is outside [0, 16]"),
    ("input_shift", 2.0, "layer: input_shift must be an integer, not 2.0"),
    ("input_shift", True, "layer: input_shift must be an integer, not True"),
    ("bias_to", "voltage", "layer: bias_to must be one of current, membrane; got 'voltage'"),
    ("u_overflow", "clip", "layer: u_overflow must be one of saturate, wrap; got 'clip'"),
    ("v_range", "signed", "layer: v_range must be one of full, symmetric; got 'signed'"),
    ("reset", "subtract-next", "layer: reset must be one of subtract, zero, none, subtract_next; got 'subtract-next'"),
])
def test_bad_options_are_refused_by_name(key, value, message):
    with pytest.raises(NetworkError, match="^" + re.escape(message) + "$"):
        make(theta=2, **{key: value})


def test_biases_split_by_where_they_enter():
    layer = make(theta=2, bias=[3, -1], neuron="cuba", bias_to="membrane")
    assert layer.current_bias.tolist() == [0, 0] and layer.membrane_bias.tolist() == [3, -1]
    layer = make(theta=2, bias=[3, -1])
    assert layer.current_bias.tolist() == [3, -1] and layer.membrane_bias.tolist() == [0, 0]


def test_symmetric_range_leaves_out_the_most_negative_value():
    assert v_range_bounds(make(theta=2, v_bits=8)) == (-128, 127)
    assert v_range_bounds(make(theta=2, v_bits=8, v_range="symmetric")) == (-127, 127)
