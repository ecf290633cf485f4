"""Networks of binary-weight LIF layers: the objects of the numerics contract (docs/numerics.md).

Everything here is numpy only, so it runs on a PYNQ board as well as on a workstation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class _Code(IntEnum):
    """A code of the register map; its lowercase name is what users write ("lif", "subtract", ...)."""

    @property
    def label(self) -> str:
        """The name users write."""
        return self.name.lower()

    @classmethod
    def of(cls, label: str):
        """The code called `label` (KeyError if there is none)."""
        return cls[label.upper()]

    @classmethod
    def labels(cls) -> tuple[str, ...]:
        """Every label, in code order."""
        return tuple(code.label for code in cls)


class Neuron(_Code):
    """Neuron kind (MODE.neuron): `lif` integrates the synaptic sum, `cuba` a decaying current."""

    LIF = 0
    CUBA = 1


class Reset(_Code):
    """Reset mode after a spike (MODE.reset): subtract theta, set to zero, keep v, or subtract theta at
    the next step after the decay (`subtract_next`, snnTorch's `Leaky`)."""

    SUBTRACT = 0
    ZERO = 1
    NONE = 2
    SUBTRACT_NEXT = 3


class Rounding(_Code):
    """How a decay rounds (contract v2): `floor` of the decrement (v1), the kept product toward `zero`
    (Loihi), or to the `nearest` (half away from zero; closest to a float simulator)."""

    FLOOR = 0
    ZERO = 1
    NEAREST = 2


class BiasTo(_Code):
    """Where the bias enters (contract v2): the `current` (v1) or the `membrane` (Loihi)."""

    CURRENT = 0
    MEMBRANE = 1


class Overflow(_Code):
    """What a cuba current does beyond u_bits (contract v2): `saturate` (v1) or `wrap` (Loihi)."""

    SATURATE = 0
    WRAP = 1


class VRange(_Code):
    """The membrane's saturation range (contract v2): `full` two's complement (v1) or `symmetric`,
    [-(2^(V-1) - 1), 2^(V-1) - 1] (Loihi)."""

    FULL = 0
    SYMMETRIC = 1


class Decay(_Code):
    """How a core implements a layer's decays (WIDTHS.decay): `shift` takes lam, alpha in {0} U {2^m}
    and uses a barrel shifter (no multiplier); `multiply` takes any value in [0, 2^F]."""

    SHIFT = 0
    MULTIPLY = 1


#: The names users pass for `neuron`, `reset` and a core's `decay`.
NEURONS = Neuron.labels()
RESETS = Reset.labels()
DECAYS = Decay.labels()
ROUNDINGS = Rounding.labels()
BIAS_TOS = BiasTo.labels()
OVERFLOWS = Overflow.labels()
V_RANGES = VRange.labels()
INPUT_SHIFT_RANGE = (0, 16)
#: Contract v2's per-layer options and the values that mean exactly what contract v1 meant.
OPTION_DEFAULTS = {"decay_round": "floor", "input_shift": 0, "bias_to": "current", "u_overflow": "saturate",
                   "v_range": "full"}
MAX_LAYERS = 16
MAX_WIDTH = 65536
BITS_RANGE = (2, 32)
FRAC_BITS_RANGE = (0, 16)


class NetworkError(ValueError):
    """A network or layer breaks a rule of the numerics contract."""


def signed_range(bits: int) -> tuple[int, int]:
    """The inclusive range of a two's complement integer of `bits` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def membrane_range(v_bits: int, v_range: str) -> tuple[int, int]:
    """The inclusive range a membrane of `v_bits` bits saturates to under `v_range` ("full" or "symmetric")."""
    lo, hi = signed_range(v_bits)
    return (lo + 1 if v_range == "symmetric" else lo), hi


def v_range_bounds(layer) -> tuple[int, int]:
    """The inclusive range the membrane of `layer` saturates to (its v_bits and v_range)."""
    return membrane_range(layer.v_bits, layer.v_range)


def check_int(name: str, value, lo: int, hi: int | None = None, *, error: type[Exception] = ValueError,
              type_error: type[Exception] = TypeError) -> int:
    """`value` as an int if it is an integer (not a bool) in [lo, hi] (`hi` None: no upper bound).

    Else raise `type_error` (not an integer) or `error` (out of range), naming `name` and the value.
    The one integer check of the project: the network, the core configuration and the gateware's
    parameters all call it.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise type_error(f"{name} must be an integer, not {value!r}")
    if not lo <= int(value) <= (int(value) if hi is None else hi):
        raise error(f"{name} = {int(value)} is outside [{lo}, {'inf' if hi is None else hi}]")
    return int(value)


def _check_int(where: str, name: str, value, lo: int, hi: int) -> int:
    return check_int(f"{where}: {name}", value, lo, hi, error=NetworkError, type_error=NetworkError)


def _check_choice(where: str, name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise NetworkError(f"{where}: {name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _int_array(where: str, name: str, value, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """Return `value` as an int64 array of `shape` with every entry in [lo, hi], or raise."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise NetworkError(
            f"{where}: {name} must hold integers, got dtype {arr.dtype} "
            "(round it yourself, e.g. np.rint(x).astype(np.int64), after checking that nothing is lost)"
        )
    if arr.ndim == 0 and len(shape) == 1:
        arr = np.full(shape, arr)
    if arr.shape != shape:
        raise NetworkError(f"{where}: {name} has shape {arr.shape}, expected {shape}")
    out_of_range = (arr < lo) | (arr > hi)
    if out_of_range.any():
        idx = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise NetworkError(f"{where}: {name}{list(idx)} = {arr[idx]!r} is outside [{lo}, {hi}]")
    return arr.astype(np.int64)


def _pm1_array(where: str, name: str, value, shape: tuple[int, int]) -> np.ndarray:
    """`value` as an int64 array of `shape` holding only -1 and +1, or a NetworkError naming the entry."""
    if np.asarray(value).dtype == np.bool_:
        raise NetworkError(f"{where}: {name} must be +1/-1 integers, got a bool array (map it with 2*w-1)")
    arr = _int_array(where, name, value, shape, -1, 1)
    zeros = arr == 0
    if zeros.any():
        idx = [int(i) for i in np.argwhere(zeros)[0]]
        raise NetworkError(f"{where}: {name}{idx} = 0, expected -1 or +1 (the contract has no absent synapse)")
    return arr


class Layer:
    """One layer: `n_out` neurons fed by a binary (+1/-1) crossbar of `n_in` inputs.

    Every field is validated against the contract on construction; `theta` and `bias`
    may be scalars (broadcast to [n_out]). `weights` becomes read-only int8 [n_out, n_in]
    of +/-1, `theta` and `bias` read-only int64 [n_out]. `recurrent` (None: a feed-forward layer)
    is the +/-1 matrix [n_out, n_out] by which the layer's own spikes of the previous timestep
    enter its sum, all to all (docs/numerics.md). `where` names the layer in errors.
    """

    def __init__(
        self,
        weights,
        *,
        recurrent=None,
        theta=1,
        bias=0,
        neuron: str = "lif",
        reset: str = "subtract",
        v_bits: int = 16,
        u_bits: int = 16,
        frac_bits: int = 8,
        lam: int = 0,
        alpha: int = 0,
        decay_round: str = "floor",
        input_shift: int = 0,
        bias_to: str = "current",
        u_overflow: str = "saturate",
        v_range: str = "full",
        where: str = "layer",
    ):
        w = np.asarray(weights)
        if w.ndim != 2 or 0 in w.shape:
            raise NetworkError(f"{where}: weights must be a 2-D [n_out, n_in] array, got shape {w.shape}")
        n_out, n_in = w.shape
        for name, n in (("n_out", n_out), ("n_in", n_in)):
            if n > MAX_WIDTH:
                raise NetworkError(f"{where}: {name} = {n} exceeds the maximum {MAX_WIDTH}")
        w = _pm1_array(where, "weights", w, (n_out, n_in))
        if recurrent is not None:
            recurrent = _pm1_array(where, "recurrent", recurrent, (n_out, n_out)).astype(np.int8)
            recurrent.setflags(write=False)
        self.recurrent = recurrent
        self.neuron = _check_choice(where, "neuron", neuron, NEURONS)
        self.reset = _check_choice(where, "reset", reset, RESETS)
        self.v_bits = _check_int(where, "v_bits", v_bits, *BITS_RANGE)
        self.u_bits = _check_int(where, "u_bits", u_bits, *BITS_RANGE)
        self.frac_bits = _check_int(where, "frac_bits", frac_bits, *FRAC_BITS_RANGE)
        self.lam = _check_int(where, "lam", lam, 0, 1 << self.frac_bits)
        self.alpha = _check_int(where, "alpha", alpha, 0, 1 << self.frac_bits)
        if self.neuron == "lif" and self.alpha != 0:
            raise NetworkError(f"{where}: alpha = {self.alpha} but neuron 'lif' has no current; expected 0")
        self.decay_round = _check_choice(where, "decay_round", decay_round, ROUNDINGS)
        self.input_shift = _check_int(where, "input_shift", input_shift, *INPUT_SHIFT_RANGE)
        self.bias_to = _check_choice(where, "bias_to", bias_to, BIAS_TOS)
        self.u_overflow = _check_choice(where, "u_overflow", u_overflow, OVERFLOWS)
        self.v_range = _check_choice(where, "v_range", v_range, V_RANGES)
        v_lo, v_hi = signed_range(self.v_bits)
        self.weights = w.astype(np.int8)
        self.theta = _int_array(where, "theta", theta, (n_out,), 1, v_hi)
        self.bias = _int_array(where, "bias", bias, (n_out,), v_lo, v_hi)
        for arr in (self.weights, self.theta, self.bias):
            arr.setflags(write=False)

    @property
    def n_in(self) -> int:
        """Number of inputs (synapses per neuron)."""
        return self.weights.shape[1]

    @property
    def n_out(self) -> int:
        """Number of neurons."""
        return self.weights.shape[0]

    @property
    def is_recurrent(self) -> bool:
        """Whether the layer's own spikes of the previous timestep enter its sum."""
        return self.recurrent is not None

    @property
    def crossbar_weights(self) -> np.ndarray:
        """The weights of everything the crossbar adds, int8 [n_out, n_in (+ n_out)]: `weights`, then
        `recurrent` when the layer has it (its inputs are then the spikes s[t], then its own z[t-1])."""
        if self.recurrent is None:
            return self.weights
        cached = getattr(self, "_crossbar_weights", None)
        if cached is None:
            cached = np.concatenate([self.weights, self.recurrent], axis=1)
            cached.setflags(write=False)
            self._crossbar_weights = cached
        return cached

    def with_crossbar_weights(self, weights) -> Layer:
        """A validated copy whose crossbar weights (`crossbar_weights`' shape: the recurrent ones last) are
        `weights`."""
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[1] != self.crossbar_weights.shape[1]:
            raise NetworkError(f"crossbar weights of shape {w.shape}, expected {self.crossbar_weights.shape}")
        return self.replace(weights=w[:, :self.n_in], recurrent=w[:, self.n_in:] if self.is_recurrent else None)

    @property
    def current_bias(self) -> np.ndarray:
        """The bias the synaptic input carries into the current (all of it, unless `bias_to` is membrane)."""
        return self.bias if self.bias_to == "current" else np.zeros_like(self.bias)

    @property
    def membrane_bias(self) -> np.ndarray:
        """The bias added to the membrane directly (`bias_to` membrane; else zero)."""
        return self.bias if self.bias_to == "membrane" else np.zeros_like(self.bias)

    def options(self) -> dict:
        """Contract v2's options of the layer (keys of `OPTION_DEFAULTS`)."""
        return {key: getattr(self, key) for key in OPTION_DEFAULTS}

    @property
    def is_v1(self) -> bool:
        """Whether contract v1 expresses this layer: every option at its default, and a v1 reset."""
        return self.options() == OPTION_DEFAULTS and self.reset != "subtract_next"

    def params(self) -> dict:
        """The scalar fields, as stored in the image metadata."""
        return {
            "n_in": self.n_in, "n_out": self.n_out, "neuron": self.neuron, "reset": self.reset,
            "v_bits": self.v_bits, "u_bits": self.u_bits, "frac_bits": self.frac_bits,
            "lam": self.lam, "alpha": self.alpha, **self.options(),
        }

    def replace(self, **changes) -> Layer:
        """A validated copy with some fields changed."""
        fields = {"weights": self.weights, "recurrent": self.recurrent, "theta": self.theta, "bias": self.bias,
                  **self.params(), **changes}
        del fields["n_in"], fields["n_out"]
        return Layer(fields.pop("weights"), **fields)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Layer) and self.params() == other.params()
            and np.array_equal(self.weights, other.weights)
            and (self.recurrent is None) == (other.recurrent is None)
            and (self.recurrent is None or np.array_equal(self.recurrent, other.recurrent))
            and np.array_equal(self.theta, other.theta) and np.array_equal(self.bias, other.bias)
        )

    __hash__ = None

    def __repr__(self) -> str:
        p = self.params()
        return "Layer(" + ", ".join(f"{k}={v!r}" for k, v in p.items()) + (
            ", recurrent=True" if self.is_recurrent else "") + ")"


def check_chain(layers, kind: type, error: type[Exception], where: str) -> tuple:
    """`layers` as a tuple, after the rules of every chain of layers (a network, a core build, a
    training model): 1 to MAX_LAYERS layers, each a `kind`, each taking the previous one's outputs.
    The first broken rule raises `error`, its message starting with `where`."""
    layers = tuple(layers)
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise error(f"{where}: {len(layers)} layers, expected 1 to {MAX_LAYERS}")
    for k, layer in enumerate(layers):
        if not isinstance(layer, kind):
            raise error(f"{where}: layers[{k}] is a {type(layer).__name__}, expected a {kind.__name__}")
        if k and layer.n_in != layers[k - 1].n_out:
            raise error(f"layer {k}: n_in = {layer.n_in} but layer {k - 1} has n_out = {layers[k - 1].n_out}")
    return layers


def check_densities(densities, n_ins, error: type[Exception], where: str = "densities") -> tuple:
    """`densities` checked: one entry per layer (`n_ins`, its inputs), each the layer's input spike density
    (a share in [0, 1]) or one such share per input; returned as floats and read-only float64 arrays,
    else `error` naming the value."""
    if isinstance(densities, (str, bytes)) or not hasattr(densities, "__len__"):
        raise error(f"{where} = {densities!r}, expected one input density per layer ({len(n_ins)})")
    if len(densities) != len(n_ins):
        raise error(f"{where}: {len(densities)} values for {len(n_ins)} layers")
    out = []
    for k, (d, n_in) in enumerate(zip(densities, n_ins)):
        if isinstance(d, (list, tuple, np.ndarray)):
            arr = np.asarray(d)
            if arr.shape != (n_in,) or arr.dtype.kind not in "iuf" or not ((arr >= 0) & (arr <= 1)).all():
                raise error(f"{where}[{k}]: {n_in} shares in [0, 1] expected (one per input of layer {k}), got "
                            f"shape {arr.shape} dtype {arr.dtype}" + (f" in [{arr.min()}, {arr.max()}]"
                                                                     if arr.size and arr.dtype.kind in "iuf" else ""))
            arr = arr.astype(np.float64)
            arr.flags.writeable = False
            out.append(arr)
        elif isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)) or not 0 <= d <= 1:
            raise error(f"{where}[{k}] = {d!r}, expected a spike density in [0, 1] or one per input")
        else:
            out.append(float(d))
    return tuple(out)


class LayerChain:
    """Sizes of anything made of `layers` that each have `n_in` and `n_out` (networks, core builds)."""

    @property
    def n_in(self) -> int:
        """Width of the input spike vector."""
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        """Width of the output spike vector."""
        return self.layers[-1].n_out

    @property
    def sizes(self) -> tuple[int, ...]:
        """(n_in, n_out of layer 0, n_out of layer 1, ...)."""
        return (self.n_in, *(layer.n_out for layer in self.layers))


@dataclass(frozen=True)
class Network(LayerChain):
    """A chain of layers; layer k+1 sees layer k's spikes of the same timestep (and a recurrent layer
    its own spikes of the previous timestep).

    `densities`: optional, per layer its input spike density (the share of input bits that are 1), or one
    per input, as measured on calibration data when the network was exported (`check_densities`); it
    sizes the core (`spikeloop.boards.estimate.largest`) and takes no part in the numerics, equality or
    content hash.
    """

    layers: tuple[Layer, ...]
    densities: tuple | None = field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "layers", check_chain(self.layers, Layer, NetworkError, "network"))
        if self.densities is not None:
            n_ins = [layer.n_in for layer in self.layers]
            object.__setattr__(self, "densities", check_densities(self.densities, n_ins, NetworkError))

    def with_densities(self, densities) -> Network:
        """The same network carrying each layer's measured input densities (None: none)."""
        return Network(self.layers, densities)

    def mean_densities(self) -> tuple[float, ...] | None:
        """Each layer's input spike density (the mean over its inputs), or None."""
        return None if self.densities is None else tuple(float(np.mean(d)) for d in self.densities)

    @classmethod
    def build(cls, layers: list[dict]) -> Network:
        """Build from a list of keyword dicts for `Layer`, e.g. `[{"weights": w, "theta": 8}, ...]`."""
        return cls(tuple(Layer(**spec, where=f"layer {k}") for k, spec in enumerate(layers)))

    def save(self, path) -> str:
        """Write the network image file (docs/image-format.md); returns its content hash."""
        from spikeloop.image import save_image

        return save_image(self, path)

    @classmethod
    def load(cls, path) -> Network:
        """Read and validate a network image file."""
        from spikeloop.image import load_image

        return load_image(path)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the network's content as defined by the image format."""
        from spikeloop.image import content_hash

        return content_hash(self)


def random_network(
    sizes,
    *,
    seed: int,
    neuron: str = "lif",
    reset: str = "subtract",
    v_bits: int = 16,
    u_bits: int = 16,
    frac_bits: int = 8,
    lam: int | None = None,
    alpha: int | None = None,
    theta: int | None = None,
    recurrent=False,
    **options,
) -> Network:
    """A random network of the given sizes, e.g. (784, 256, 10), that fires on ~20% dense input.

    `recurrent`: whether the layers take their own previous spikes (random +/-1 recurrent weights),
    one bool for every layer or one per layer.

    Thresholds default to random values up to about sqrt(n_in) (times 2^input_shift), so that random
    +/-1 sums cross them now and then; a given `theta` is used for every neuron. `options` are contract
    v2's (`OPTION_DEFAULTS`' keys), the same for every layer.
    """
    shift = options.get("input_shift", 0)
    scale = 1 << shift if isinstance(shift, int) and INPUT_SHIFT_RANGE[0] <= shift <= INPUT_SHIFT_RANGE[1] else 1
    rng = np.random.default_rng(seed)
    n_layers = len(sizes) - 1
    if isinstance(recurrent, (bool, np.bool_)):
        recurrent = (bool(recurrent),) * n_layers
    elif not (isinstance(recurrent, (list, tuple)) and len(recurrent) == n_layers
              and all(isinstance(r, (bool, np.bool_)) for r in recurrent)):
        raise ValueError(f"recurrent = {recurrent!r}, expected a bool or one bool per layer ({n_layers})")
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        v_hi = max(1, (1 << (v_bits - 1)) - 1) if isinstance(v_bits, int) and v_bits >= 1 else 1
        th_hi = max(1, min(v_hi, int(np.sqrt(n_in)) * scale))
        layers.append(
            Layer(
                rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_out, n_in)),
                recurrent=rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_out, n_out)) if recurrent[k] else None,
                theta=rng.integers(max(1, th_hi // 2), th_hi + 1, size=n_out) if theta is None else theta,
                bias=rng.integers(-1, 3, size=n_out).clip(-v_hi, v_hi),
                neuron=neuron, reset=reset, v_bits=v_bits, u_bits=u_bits, frac_bits=frac_bits,
                lam=(1 << frac_bits) // 8 if lam is None else lam,
                alpha=0 if neuron == "lif" else ((1 << frac_bits) // 4 if alpha is None else alpha),
                where=f"layer {k}", **options,
            )
        )
    return Network(tuple(layers))
