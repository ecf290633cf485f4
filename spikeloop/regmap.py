"""The core's wire protocol: configuration, AXI-Lite register map and spike bit packing.

This is the one module that the gateware (`spikeloop.rtl`) and the host driver both import.
Every register offset, field position, window base and packing rule is computed here and
nowhere else; docs/regmap.md is generated from it (`python -m spikeloop.regmap`).

numpy only (it runs on the board). Four parts:

1. `LayerConfig` / `CoreConfig`: what a bitstream is built for (sizes, lanes `P`, chunk `C`,
   widths, decay implementation, output stream options), validated up front, with the
   configuration readback registers and a design hash derived from it.
2. The register table: identity, control, status, counters, per-layer registers
   (`GLOBAL_REGISTERS`, `LAYER_REGISTERS`), and the parameter windows of a configuration
   (`windows`).
3. Spike packing on the AXI-Stream bus: `n` bits per timestep, LSB-first into `bus_width`-bit
   words (`pack_spikes`, `unpack_spikes`, `unpack_output`).
4. Window images: how weights (1 bit per synapse), thresholds, biases and state are laid out
   in the windows (`pack_weights`, `pack_neuron_values`, and their inverses).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from spikeloop.network import BITS_RANGE, FRAC_BITS_RANGE, MAX_LAYERS, MAX_WIDTH, Layer, LayerChain, Network

__all__ = [
    "MAGIC", "VERSION", "WORD_BYTES", "BUS_WIDTHS", "DECAYS", "NEURON_CODE", "RESET_CODE", "DECAY_CODE",
    "ConfigError", "LayerConfig", "CoreConfig", "Field", "Register", "Window",
    "GLOBAL_REGISTERS", "LAYER_REGISTERS", "LAYER_BASE", "LAYER_STRIDE", "WINDOW_BASE", "WINDOW_KINDS",
    "register", "layer_register", "layer_offset", "windows", "window", "address_bits", "decode_address",
    "design_hash", "hash_words", "layer_control_values", "load_writes",
    "words_per_timestep", "output_words_per_timestep", "pack_spikes", "unpack_spikes", "pack_output",
    "unpack_output", "pack_weights", "unpack_weights", "pack_neuron_values", "unpack_neuron_values",
    "neuron_word_index",
    "next_pow2", "markdown",
]

#: Identity word at offset 0: the ASCII bytes "SKLP" read as a little-endian 32-bit word.
MAGIC = int.from_bytes(b"SKLP", "little")
#: Register map version (major, minor). A major bump means old drivers must refuse the core.
VERSION = (1, 0)
#: AXI-Lite data width in bytes; every register and window word is 32 bits.
WORD_BYTES = 4
#: AXI-Stream TDATA widths the core supports.
BUS_WIDTHS = (32, 64)
#: How a layer implements its decays: `shift` takes lam, alpha in {0} U {2^m} and uses a barrel
#: shifter (no multiplier); `multiply` takes any value in [0, 2^F] and uses a multiplier.
DECAYS = ("shift", "multiply")

NEURON_CODE = {"lif": 0, "cuba": 1}
RESET_CODE = {"subtract": 0, "zero": 1, "none": 2}
DECAY_CODE = {"shift": 0, "multiply": 1}

MAX_LANES = 1024
MAX_CHUNK = 4096
MAX_ROW_BITS = 65536


class ConfigError(ValueError):
    """A core configuration breaks a rule, or a network does not fit a configuration."""


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (n >= 1)."""
    return 1 << (int(n) - 1).bit_length()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _int(where: str, name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{where}: {name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= int(value) <= hi:
        raise ConfigError(f"{where}: {name} = {int(value)} is outside [{lo}, {hi}]")
    return int(value)


# --------------------------------------------------------------------------------------------
# 1. Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerConfig:
    """What one layer of a bitstream is built for.

    `n_in`, `n_out`: sizes. `lanes` (P): neurons updated per clock. `chunk` (C): synapses per
    neuron per clock (default: 32, or n_in if smaller). `v_bits`, `u_bits`, `frac_bits`: widths of
    the numerics contract.
    `decay`: `"shift"` or `"multiply"` (see `DECAYS`). Neuron kind, reset mode, lam and alpha
    are run-time registers, not part of the build.
    """

    n_in: int
    n_out: int
    lanes: int = 1
    chunk: int | None = None
    v_bits: int = 16
    u_bits: int = 16
    frac_bits: int = 8
    decay: str = "shift"
    where: str = "layer"

    def __post_init__(self):
        w = self.where
        _int(w, "n_in", self.n_in, 1, MAX_WIDTH)
        _int(w, "n_out", self.n_out, 1, MAX_WIDTH)
        if self.chunk is None:
            object.__setattr__(self, "chunk", min(32, self.n_in))
        _int(w, "lanes", self.lanes, 1, min(MAX_LANES, self.n_out))
        _int(w, "chunk", self.chunk, 1, min(MAX_CHUNK, self.n_in))
        if self.lanes * self.chunk > MAX_ROW_BITS:
            raise ConfigError(f"{w}: lanes * chunk = {self.lanes * self.chunk} exceeds {MAX_ROW_BITS} bits per row")
        _int(w, "v_bits", self.v_bits, *BITS_RANGE)
        _int(w, "u_bits", self.u_bits, *BITS_RANGE)
        _int(w, "frac_bits", self.frac_bits, *FRAC_BITS_RANGE)
        if self.decay not in DECAYS:
            raise ConfigError(f"{w}: decay must be one of {', '.join(DECAYS)}; got {self.decay!r}")

    # Geometry of the memories (derived, read-only).
    @property
    def n_chunks(self) -> int:
        """Input chunks of `chunk` bits per timestep (the last one zero-padded)."""
        return _ceil_div(self.n_in, self.chunk)

    @property
    def n_groups(self) -> int:
        """Groups of `lanes` neurons (the last one padded with idle lanes)."""
        return _ceil_div(self.n_out, self.lanes)

    @property
    def row_bits(self) -> int:
        """Weight bits read per clock: lanes * chunk."""
        return self.lanes * self.chunk

    @property
    def row_words(self) -> int:
        """32-bit words holding one weight row."""
        return _ceil_div(self.row_bits, 32)

    @property
    def row_stride(self) -> int:
        """Words between weight rows in the weights window (a power of two)."""
        return next_pow2(self.row_words)

    @property
    def weight_rows(self) -> int:
        """Rows of the weight memory: one per (group, chunk)."""
        return self.n_groups * self.n_chunks

    @property
    def lane_stride(self) -> int:
        """Words between neuron groups in the theta/bias/v/u windows (a power of two >= lanes)."""
        return next_pow2(self.lanes)

    @property
    def syn_bits(self) -> int:
        """Signed width of sum_i w[j,i] s[i], which lies in [-n_in, n_in]."""
        return self.n_in.bit_length() + 1

    def check_layer(self, layer: Layer, where: str | None = None) -> None:
        """Raise ConfigError unless `layer` runs on this build exactly."""
        w = where or self.where
        for name in ("n_in", "n_out", "v_bits", "u_bits", "frac_bits"):
            have, want = getattr(layer, name), getattr(self, name)
            if have != want:
                raise ConfigError(f"{w}: the network has {name} = {have}, the core is built for {want}")
        if self.decay == "shift":
            for name in ("lam", "alpha"):
                value = getattr(layer, name)
                if value & (value - 1):
                    raise ConfigError(
                        f"{w}: {name} = {value} is not 0 or a power of two, and the core is built with "
                        "decay 'shift' (build with decay='multiply')"
                    )

    def params(self) -> dict:
        """The build parameters as a plain dict (for JSON, hashing and readback)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "where"}


@dataclass(frozen=True)
class CoreConfig(LayerChain):
    """What a bitstream is built for: its layers, the output stream options and the bus width.

    `membranes`: the output stream carries the last layer's pre-reset membranes after the spikes.
    `bus_width`: AXI-Stream TDATA width in bits (32 or 64).
    Build one from sizes with `CoreConfig.build`, or from a network with `CoreConfig.for_network`.
    """

    layers: tuple[LayerConfig, ...]
    membranes: bool = False
    bus_width: int = 32

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not 1 <= len(layers) <= MAX_LAYERS:
            raise ConfigError(f"config: {len(layers)} layers, expected 1 to {MAX_LAYERS}")
        for k, layer in enumerate(layers):
            if not isinstance(layer, LayerConfig):
                raise ConfigError(f"config: layers[{k}] is a {type(layer).__name__}, expected a LayerConfig")
            if k and layer.n_in != layers[k - 1].n_out:
                raise ConfigError(f"layer {k}: n_in = {layer.n_in} but layer {k - 1} has n_out = {layers[k - 1].n_out}")
        if not isinstance(self.membranes, (bool, np.bool_)):
            raise ConfigError(f"config: membranes must be True or False, got {self.membranes!r}")
        if self.bus_width not in BUS_WIDTHS:
            raise ConfigError(f"config: bus_width must be one of {BUS_WIDTHS}, got {self.bus_width!r}")

    @classmethod
    def build(
        cls,
        sizes,
        *,
        lanes=1,
        chunk=32,
        v_bits=16,
        u_bits=16,
        frac_bits=8,
        decay="shift",
        membranes: bool = False,
        bus_width: int = 32,
    ) -> CoreConfig:
        """A configuration from sizes `(n_in, n_out0, n_out1, ...)`.

        Every per-layer argument is a scalar (all layers) or a sequence (one per layer). A scalar
        `lanes` or `chunk` is capped at each layer's `n_out` or `n_in` respectively.
        """
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ConfigError(f"config: sizes = {sizes!r} needs at least an input and one layer")
        n = len(sizes) - 1

        def per_layer(name, value, cap=None):
            if isinstance(value, (list, tuple)):
                if len(value) != n:
                    raise ConfigError(f"config: {name} has {len(value)} entries for {n} layers")
                return list(value)
            if cap is not None and isinstance(value, int) and not isinstance(value, bool):
                return [min(value, c) for c in cap]
            return [value] * n

        outs, ins = sizes[1:], sizes[:-1]
        cols = {
            "lanes": per_layer("lanes", lanes, outs),
            "chunk": per_layer("chunk", chunk, ins),
            "v_bits": per_layer("v_bits", v_bits),
            "u_bits": per_layer("u_bits", u_bits),
            "frac_bits": per_layer("frac_bits", frac_bits),
            "decay": per_layer("decay", decay),
        }
        layers = tuple(
            LayerConfig(ins[k], outs[k], **{key: col[k] for key, col in cols.items()}, where=f"layer {k}")
            for k in range(n)
        )
        return cls(layers, membranes=membranes, bus_width=bus_width)

    @classmethod
    def for_network(cls, network: Network, *, lanes=1, chunk=32, decay=None, **options) -> CoreConfig:
        """The configuration that holds `network` exactly (sizes and widths taken from it).

        `decay` defaults to `"shift"` for layers whose lam and alpha are 0 or powers of two, else
        `"multiply"`.
        """
        if not isinstance(network, Network):
            raise TypeError(f"expected a Network, got {type(network).__name__}")

        def pow2_ok(layer):
            return all(x & (x - 1) == 0 for x in (layer.lam, layer.alpha))

        if decay is None:
            decay = ["shift" if pow2_ok(layer) else "multiply" for layer in network.layers]
        return cls.build(
            network.sizes, lanes=lanes, chunk=chunk, decay=decay,
            v_bits=[layer.v_bits for layer in network.layers],
            u_bits=[layer.u_bits for layer in network.layers],
            frac_bits=[layer.frac_bits for layer in network.layers],
            **options,
        )

    def check_network(self, network: Network) -> None:
        """Raise ConfigError unless `network` runs on this build exactly."""
        if len(network.layers) != len(self.layers):
            raise ConfigError(f"the network has {len(network.layers)} layers, the core is built for {len(self.layers)}")
        for k, (cfg, layer) in enumerate(zip(self.layers, network.layers)):
            cfg.check_layer(layer, f"layer {k}")

    def params(self) -> dict:
        """The whole configuration as a JSON-ready dict."""
        return {
            "layers": [layer.params() for layer in self.layers],
            "membranes": bool(self.membranes),
            "bus_width": self.bus_width,
        }

    @classmethod
    def from_params(cls, params: dict) -> CoreConfig:
        """Inverse of `params()` (a JSON file's configuration back to a CoreConfig, validated)."""
        layers = tuple(LayerConfig(**p, where=f"layer {k}") for k, p in enumerate(params["layers"]))
        return cls(layers, membranes=params["membranes"], bus_width=params["bus_width"])

    def readback(self) -> dict[int, int]:
        """Byte offset -> value of every read-only identity and configuration register."""
        values = {register("MAGIC").offset: MAGIC}
        values[register("VERSION").offset] = register("VERSION").encode(major=VERSION[0], minor=VERSION[1])
        for k, word in enumerate(hash_words(self)):
            values[register(f"HASH{k}").offset] = word
        values[register("CONFIG").offset] = register("CONFIG").encode(
            n_layers=len(self.layers), membranes=int(self.membranes), bus_bytes=self.bus_width // 8
        )
        values[register("ADDRESS_BITS").offset] = address_bits(self)
        values[register("WORDS_IN").offset] = words_per_timestep(self.n_in, self.bus_width)
        values[register("WORDS_OUT").offset] = output_words_per_timestep(self)
        for k, layer in enumerate(self.layers):
            values[layer_offset(k, "N_IN")] = layer.n_in
            values[layer_offset(k, "N_OUT")] = layer.n_out
            geometry = layer_register("GEOMETRY").encode(lanes=layer.lanes, chunk=layer.chunk)
            values[layer_offset(k, "GEOMETRY")] = geometry
            values[layer_offset(k, "WIDTHS")] = layer_register("WIDTHS").encode(
                v_bits=layer.v_bits, u_bits=layer.u_bits, frac_bits=layer.frac_bits, decay=DECAY_CODE[layer.decay]
            )
            for kind in WINDOW_KINDS:
                values[layer_offset(k, f"{kind.upper()}_BASE")] = window(self, k, kind).base
        return values

    @classmethod
    def from_readback(cls, read: Callable[[int], int]) -> CoreConfig:
        """Rebuild the configuration of a core from its registers; `read(offset)` reads one word.

        Raises ConfigError when the magic, version or design hash do not match.
        """
        magic = read(register("MAGIC").offset)
        if magic != MAGIC:
            raise ConfigError(f"magic = {magic:#010x}, expected {MAGIC:#010x}: not a spikeloop core")
        version = register("VERSION").decode(read(register("VERSION").offset))
        if version["major"] != VERSION[0]:
            raise ConfigError(
                f"register map version {version['major']}.{version['minor']}, this driver speaks {VERSION[0]}.x"
            )
        cfg = register("CONFIG").decode(read(register("CONFIG").offset))
        layers = []
        for k in range(cfg["n_layers"]):
            geometry = layer_register("GEOMETRY").decode(read(layer_offset(k, "GEOMETRY")))
            widths = layer_register("WIDTHS").decode(read(layer_offset(k, "WIDTHS")))
            decay = {code: name for name, code in DECAY_CODE.items()}.get(widths["decay"])
            if decay is None:
                raise ConfigError(f"layer {k}: unknown decay code {widths['decay']}")
            layers.append(LayerConfig(
                read(layer_offset(k, "N_IN")), read(layer_offset(k, "N_OUT")),
                lanes=geometry["lanes"], chunk=geometry["chunk"], v_bits=widths["v_bits"], u_bits=widths["u_bits"],
                frac_bits=widths["frac_bits"], decay=decay, where=f"layer {k}",
            ))
        config = cls(tuple(layers), membranes=bool(cfg["membranes"]), bus_width=cfg["bus_bytes"] * 8)
        got = [read(register(f"HASH{k}").offset) for k in range(8)]
        if got != hash_words(config):
            raise ConfigError("design hash does not match the configuration read back: stale or foreign bitstream")
        return config


def design_hash(config: CoreConfig) -> bytes:
    """SHA-256 of the configuration and the register map version: the core's identity.

    The gateware exposes it in HASH0..HASH7; two bitstreams with equal hashes behave the same
    to a driver.
    """
    text = json.dumps({"regmap": list(VERSION), "config": config.params()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def hash_words(config: CoreConfig) -> list[int]:
    """The design hash as eight 32-bit words, HASH0 holding bytes 0..3 (little-endian)."""
    digest = design_hash(config)
    return [int.from_bytes(digest[4 * k : 4 * k + 4], "little") for k in range(8)]


def load_writes(config: CoreConfig, network: Network, *, skip_zero: bool = False) -> list[tuple[int, int]]:
    """The (byte offset, word) register writes that load `network` into a core built as `config`.

    Per layer: MODE, LAM, ALPHA, then the weights, theta and bias windows. With `skip_zero`,
    zero words of the windows are left out: right only for a freshly configured core (memories
    start at 0 when the bitstream loads or a simulation starts; a reset keeps their contents).
    Raises ConfigError if the network does not fit the configuration.
    """
    config.check_network(network)
    writes = []
    for k, (cfg, layer) in enumerate(zip(config.layers, network.layers)):
        for name, value in layer_control_values(layer).items():
            writes.append((layer_offset(k, name), value))
        images = {
            "weights": pack_weights(layer.weights, cfg),
            "theta": pack_neuron_values(layer.theta, cfg),
            "bias": pack_neuron_values(layer.bias, cfg),
        }
        for kind, image in images.items():
            base = window(config, k, kind).base
            used = np.arange(image.size) if kind == "weights" else neuron_word_index(cfg)
            if kind == "weights":
                used = used[used % cfg.row_stride < cfg.row_words]
            for i in used:
                if not (skip_zero and image[i] == 0):
                    writes.append((base + WORD_BYTES * int(i), int(image[i])))
    return writes


def layer_control_values(layer: Layer) -> dict[str, int]:
    """Values of a layer's run-time registers (MODE, LAM, ALPHA) for a network layer."""
    mode = layer_register("MODE").encode(neuron=NEURON_CODE[layer.neuron], reset=RESET_CODE[layer.reset])
    return {"MODE": mode, "LAM": layer.lam, "ALPHA": layer.alpha}


# --------------------------------------------------------------------------------------------
# 2. Register table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A bit field of a register: bits [lsb, lsb+width)."""

    name: str
    lsb: int
    width: int
    doc: str = ""

    @property
    def mask(self) -> int:
        """The field's bits in place."""
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """A 32-bit register.

    `access`: `ro` (read-only), `rw`, `wo` (write-only, reads 0, writes act once) or `rw1c`
    (read; writing 1 to a sticky bit clears it). `offset` is a byte offset, relative to the
    layer block for per-layer registers.
    """

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()

    def field(self, name: str) -> Field:
        """The field called `name`."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    def encode(self, **values: int) -> int:
        """Pack field values into a register word; unknown names and values too wide are refused."""
        word = 0
        for name, value in values.items():
            f = self.field(name)
            value = int(value)
            if not 0 <= value < 1 << f.width:
                raise ValueError(f"{self.name}.{name} = {value} does not fit {f.width} bits")
            word |= value << f.lsb
        return word

    def decode(self, word: int) -> dict[str, int]:
        """Unpack a register word into its fields."""
        return {f.name: (int(word) >> f.lsb) & ((1 << f.width) - 1) for f in self.fields}


class _Block:
    """Allocates consecutive 32-bit registers, so that no offset is ever typed."""

    def __init__(self):
        self.registers: list[Register] = []

    def add(self, name, access, doc, fields=(), count=1):
        for k in range(count):
            suffix = str(k) if count > 1 else ""
            offset = WORD_BYTES * len(self.registers)
            self.registers.append(Register(name + suffix, offset, access, doc, tuple(fields)))


_g = _Block()
_g.add("MAGIC", "ro", f"Identity: {MAGIC:#010x} (ASCII 'SKLP').")
_g.add("VERSION", "ro", "Register map version.", [Field("minor", 0, 16), Field("major", 16, 16)])
_g.add("HASH", "ro", "Design hash (SHA-256 of the configuration), HASH0 = bytes 0..3, little-endian.", count=8)
_g.add("CONFIG", "ro", "Configuration readback.", [
    Field("n_layers", 0, 5, "number of layers"),
    Field("membranes", 8, 1, "the output stream carries the last layer's membranes"),
    Field("bus_bytes", 16, 8, "AXI-Stream TDATA width in bytes"),
])
_g.add("ADDRESS_BITS", "ro", "Width of the AXI-Lite byte address space (windows included).")
_g.add("WORDS_IN", "ro", "AXI-Stream words per input timestep.")
_g.add("WORDS_OUT", "ro", "AXI-Stream words per output timestep.")
_g.add("CONTROL", "wo", "Actions; each bit written 1 acts once.", [
    Field("clear_state", 0, 1, "zero every v and u once the timesteps in flight are done"),
    Field("clear_counters", 1, 1, "zero the counters"),
])
_g.add("STATUS", "rw1c", "State and sticky errors (write 1 to an error bit to clear it).", [
    Field("busy", 0, 1, "a timestep is in flight"),
    Field("clearing", 1, 1, "a state clear is pending or running"),
    Field("err_truncated", 8, 1, "input TLAST came before the last word of a timestep (zero-padded, processed)"),
    Field("err_param", 9, 1, "a run-time register write was refused (bad neuron/reset code, lam or alpha)"),
    Field("err_address", 10, 1, "an access to an unmapped or read-only address"),
    Field("err_busy_write", 11, 1, "a parameter window was written while a timestep was in flight"),
])
for _name, _doc in (
    ("TIMESTEPS", "timesteps output"),
    ("SPIKES_IN", "input spikes received"),
    ("SPIKES_OUT", "output spikes sent"),
    ("BUSY_CYCLES", "clock cycles with a timestep in flight"),
):
    _g.add(f"{_name}_LO", "ro", f"Counter of {_doc}, bits 31..0; reading it latches _HI.")
    _g.add(f"{_name}_HI", "ro", f"Counter of {_doc}, bits 63..32 as latched by the last read of _LO.")

#: Global registers (absolute byte offsets).
GLOBAL_REGISTERS: tuple[Register, ...] = tuple(_g.registers)

_l = _Block()
_l.add("N_IN", "ro", "Inputs of the layer.")
_l.add("N_OUT", "ro", "Neurons of the layer.")
_l.add("GEOMETRY", "ro", "Lanes and chunk.", [Field("lanes", 0, 16, "P"), Field("chunk", 16, 16, "C")])
_l.add("WIDTHS", "ro", "Widths and decay implementation.", [
    Field("v_bits", 0, 8), Field("u_bits", 8, 8), Field("frac_bits", 16, 8),
    Field("decay", 24, 1, "0 shift, 1 multiply"),
])
_l.add("MODE", "rw", "Neuron kind and reset mode.", [
    Field("neuron", 0, 1, "0 lif, 1 cuba"),
    Field("reset", 1, 2, "0 subtract, 1 zero, 2 none"),
])
_l.add("LAM", "rw", "Membrane decay lam, 0..2^F (a power of two or 0 with decay 'shift').")
_l.add("ALPHA", "rw", "Current decay alpha, 0..2^F (a power of two or 0 with decay 'shift').")
_l.add("WEIGHTS_BASE", "ro", "Byte offset of the weights window.")
_l.add("THETA_BASE", "ro", "Byte offset of the thresholds window.")
_l.add("BIAS_BASE", "ro", "Byte offset of the biases window.")
_l.add("V_BASE", "ro", "Byte offset of the membrane readout window.")
_l.add("U_BASE", "ro", "Byte offset of the current readout window.")

#: Per-layer registers (byte offsets relative to the layer's block).
LAYER_REGISTERS: tuple[Register, ...] = tuple(_l.registers)

_GLOBAL_SPAN = next_pow2(WORD_BYTES * len(GLOBAL_REGISTERS))
#: Byte offset of layer 0's register block; layer k's block is at LAYER_BASE + k * LAYER_STRIDE.
LAYER_BASE = max(0x100, _GLOBAL_SPAN)
#: Bytes between layer register blocks.
LAYER_STRIDE = max(0x40, next_pow2(WORD_BYTES * len(LAYER_REGISTERS)))
#: Byte offset where the parameter windows begin.
WINDOW_BASE = next_pow2(LAYER_BASE + MAX_LAYERS * LAYER_STRIDE)
#: Window kinds of every layer, in address order.
WINDOW_KINDS = ("weights", "theta", "bias", "v", "u")

_BY_NAME = {r.name: r for r in GLOBAL_REGISTERS}
_LAYER_BY_NAME = {r.name: r for r in LAYER_REGISTERS}


def register(name: str) -> Register:
    """The global register called `name`."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no global register {name!r}") from None


def layer_register(name: str) -> Register:
    """The per-layer register called `name` (offset relative to the layer block)."""
    try:
        return _LAYER_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no per-layer register {name!r}") from None


def layer_offset(k: int, name: str) -> int:
    """Absolute byte offset of per-layer register `name` of layer `k`."""
    if not 0 <= k < MAX_LAYERS:
        raise ValueError(f"layer index {k} is outside [0, {MAX_LAYERS - 1}]")
    return LAYER_BASE + k * LAYER_STRIDE + layer_register(name).offset


@dataclass(frozen=True)
class Window:
    """A parameter window: `words` 32-bit words from byte offset `base` (aligned to `span` bytes).

    `kind`: weights, theta, bias (read/write) or v, u (read-only state readout).
    """

    layer: int
    kind: str
    base: int
    words: int
    span: int

    @property
    def writable(self) -> bool:
        """Whether the host may write the window."""
        return self.kind in ("weights", "theta", "bias")

    @property
    def end(self) -> int:
        """Byte offset just past the window's words."""
        return self.base + WORD_BYTES * self.words


def _window_words(layer: LayerConfig, kind: str) -> int:
    if kind == "weights":
        return layer.weight_rows * layer.row_stride
    return layer.n_groups * layer.lane_stride


def windows(config: CoreConfig) -> tuple[Window, ...]:
    """Every window of a configuration, in address order; each aligned to its power-of-two span."""
    out = []
    addr = WINDOW_BASE
    for k, layer in enumerate(config.layers):
        for kind in WINDOW_KINDS:
            words = _window_words(layer, kind)
            span = next_pow2(WORD_BYTES * words)
            addr = _ceil_div(addr, span) * span
            out.append(Window(k, kind, addr, words, span))
            addr += span
    return tuple(out)


def window(config: CoreConfig, layer: int, kind: str) -> Window:
    """The window of `kind` of layer `layer`."""
    for w in windows(config):
        if w.layer == layer and w.kind == kind:
            return w
    raise KeyError(f"no window {kind!r} for layer {layer}")


def address_bits(config: CoreConfig) -> int:
    """Bits of the AXI-Lite byte address space that holds every register and window."""
    end = max(w.base + w.span for w in windows(config))
    return (end - 1).bit_length()


def decode_address(config: CoreConfig, offset: int) -> tuple[str, object]:
    """What lives at byte `offset`: ("global", Register), ("layer", (k, Register)),
    ("window", (Window, word index)) or ("unmapped", None)."""
    offset = int(offset)
    if offset % WORD_BYTES:
        return ("unmapped", None)
    for r in GLOBAL_REGISTERS:
        if r.offset == offset:
            return ("global", r)
    if LAYER_BASE <= offset < LAYER_BASE + len(config.layers) * LAYER_STRIDE:
        k, rel = divmod(offset - LAYER_BASE, LAYER_STRIDE)
        for r in LAYER_REGISTERS:
            if r.offset == rel:
                return ("layer", (k, r))
    for w in windows(config):
        if w.base <= offset < w.end:
            return ("window", (w, (offset - w.base) // WORD_BYTES))
    return ("unmapped", None)


# --------------------------------------------------------------------------------------------
# 3. Spike packing on the AXI-Stream bus
# --------------------------------------------------------------------------------------------


def _dtype(bus_width: int):
    if bus_width not in BUS_WIDTHS:
        raise ValueError(f"bus_width must be one of {BUS_WIDTHS}, got {bus_width!r}")
    return np.uint32 if bus_width == 32 else np.uint64


def words_per_timestep(n: int, bus_width: int = 32) -> int:
    """Bus words carrying `n` spike bits."""
    _dtype(bus_width)
    return _ceil_div(int(n), bus_width)


def output_words_per_timestep(config: CoreConfig) -> int:
    """Bus words per output timestep: spikes, then (with `membranes`) one 32-bit field per neuron."""
    words = words_per_timestep(config.n_out, config.bus_width)
    if config.membranes:
        words += _ceil_div(32 * config.n_out, config.bus_width)
    return words


# Little-endian word dtypes of the stream (the wire order), by bus width. A closed loop packs and
# unpacks one timestep per call: these helpers avoid every copy and conversion numpy can skip.
_WIRE = {32: np.dtype("<u4"), 64: np.dtype("<u8")}


def _pack_bits(bits: np.ndarray, bus_width: int, scratch: np.ndarray | None = None) -> np.ndarray:
    """bool [T, n] -> words [T, ceil(n/bus_width)], bit i of a row in bit i%W of word i//W.

    `scratch`: a zeroed bool [T, words * W] buffer to reuse (only its first n columns are written)."""
    dtype = _dtype(bus_width)
    steps, n = bits.shape
    padded = scratch if scratch is not None else np.zeros((steps, -(-n // bus_width) * bus_width), np.bool_)
    padded[:, :n] = bits
    return np.packbits(padded, axis=1, bitorder="little").view(_WIRE[bus_width]).astype(dtype, copy=False)


def _unpack_bits(words: np.ndarray, n: int, bus_width: int) -> np.ndarray:
    """Inverse of `_pack_bits`: words [T, per] (little-endian, contiguous rows) -> bool [T, n]."""
    as_bytes = words.view(np.uint8).reshape(words.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, count=n, bitorder="little").view(np.bool_)


def _unpack_rows(rows: np.ndarray, config: CoreConfig, spike_words: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Output rows [T, words per output timestep] (wire order) -> (spikes, membranes or None)."""
    spikes = _unpack_bits(np.ascontiguousarray(rows[:, :spike_words]), config.n_out, config.bus_width)
    if not config.membranes:
        return spikes, None
    m = np.ascontiguousarray(rows[:, spike_words:])
    return spikes, m.view("<i4").reshape(rows.shape[0], -1)[:, : config.n_out].astype(np.int64)


class StreamCodec:
    """The stream words of one core configuration, sizes worked out once: a closed loop packs and
    unpacks a timestep per call, where numpy's per-call overhead is most of the work. The same
    layout as `pack_spikes` / `unpack_output`; the caller has checked the spikes (bool [t, n_in])."""

    def __init__(self, config: CoreConfig):
        self.config = config
        self.words_in = words_per_timestep(config.n_in, config.bus_width)
        self.words_out = output_words_per_timestep(config)
        self._spike_words = words_per_timestep(config.n_out, config.bus_width)
        self._wire = _WIRE[config.bus_width]
        self._scratch = np.zeros((1, self.words_in * config.bus_width), np.bool_)  # one timestep, reused

    def pack(self, spikes: np.ndarray) -> np.ndarray:
        """bool [t, n_in] -> the flat stream words of t timesteps."""
        scratch = self._scratch if spikes.shape[0] == 1 else None
        return _pack_bits(spikes, self.config.bus_width, scratch).reshape(-1)

    def unpack(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output words of whole timesteps -> (spikes bool [t, n_out], membranes int64 [t, n_out] or None)."""
        rows = np.ascontiguousarray(words, dtype=self._wire).reshape(-1, self.words_out)
        return _unpack_rows(rows, self.config, self._spike_words)


def pack_spikes(spikes, bus_width: int = 32) -> np.ndarray:
    """Spikes bool/0-1 [T, n] -> the stream words of T timesteps, flat [T * words_per_timestep].

    Each timestep starts a new word; bit i of the timestep is bit i % W of its word i // W.
    """
    arr = np.asarray(spikes)
    if arr.ndim != 2:
        raise ValueError(f"spikes must have shape [T, n], got {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer) or ((arr != 0) & (arr != 1)).any():
            raise ValueError("spikes must be bool or integers 0/1")
    return _pack_bits(arr.astype(bool), bus_width).reshape(-1)


def unpack_spikes(words, n: int, bus_width: int = 32) -> np.ndarray:
    """Stream words of whole timesteps -> bool [T, n]. The padding bits of each last word are ignored."""
    words = np.asarray(words).reshape(-1)
    per = words_per_timestep(n, bus_width)
    if words.size % per:
        raise ValueError(f"{words.size} words is not a whole number of {per}-word timesteps")
    return _unpack_bits(np.ascontiguousarray(words, dtype=_WIRE[bus_width]).reshape(-1, per), n, bus_width)


def pack_output(spikes, membranes, config: CoreConfig) -> np.ndarray:
    """What the core sends: per timestep the spike words, then (with `membranes`) the membranes
    as 32-bit two's complement fields, LSB-first (membrane j in bits 32*(j % (W/32)) of word j // (W/32))."""
    z = _pack_bits(np.asarray(spikes, dtype=bool), config.bus_width)
    if not config.membranes:
        return z.reshape(-1)
    v = np.asarray(membranes, dtype=np.int64)
    per32 = config.bus_width // 32
    n = config.n_out
    padded = np.zeros((v.shape[0], _ceil_div(n, per32) * per32), np.uint32)
    padded[:, :n] = (v & 0xFFFFFFFF).astype(np.uint32)
    mw = padded.astype("<u4").view(np.uint8).reshape(v.shape[0], -1)
    mwords = np.ascontiguousarray(mw).view(np.dtype(_dtype(config.bus_width)).newbyteorder("<"))
    return np.concatenate([z, mwords.astype(z.dtype)], axis=1).reshape(-1)


def unpack_output(words, config: CoreConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Output stream words -> (spikes bool [T, n_out], membranes int64 [T, n_out] or None)."""
    words = np.asarray(words).reshape(-1)
    per = output_words_per_timestep(config)
    if words.size % per:
        raise ValueError(f"{words.size} words is not a whole number of {per}-word output timesteps")
    rows = np.ascontiguousarray(words, dtype=_WIRE[config.bus_width]).reshape(-1, per)
    return _unpack_rows(rows, config, words_per_timestep(config.n_out, config.bus_width))


# --------------------------------------------------------------------------------------------
# 4. Window images
# --------------------------------------------------------------------------------------------


def pack_weights(weights, layer: LayerConfig) -> np.ndarray:
    """+/-1 weights [n_out, n_in] -> the weights window image, uint32 [weight_rows * row_stride].

    Row `g * n_chunks + c` holds, for lane p and bit b, the synapse of neuron `g*P + p` from
    input `c*C + b` at row bit `p*C + b` (1 for +1); a row is `row_words` words LSB-first,
    followed by zero padding up to `row_stride`. Padding lanes and inputs hold 0.
    """
    w = np.asarray(weights)
    if w.shape != (layer.n_out, layer.n_in):
        raise ValueError(f"weights have shape {w.shape}, the layer has [{layer.n_out}, {layer.n_in}]")
    P, C = layer.lanes, layer.chunk
    bits = np.zeros((layer.n_groups * P, layer.n_chunks * C), np.uint8)
    bits[: layer.n_out, : layer.n_in] = w > 0
    # [g, p, c, b] -> [g, c, p, b]
    rows = bits.reshape(layer.n_groups, P, layer.n_chunks, C).transpose(0, 2, 1, 3).reshape(layer.weight_rows, P * C)
    padded = np.zeros((layer.weight_rows, layer.row_stride * 32), np.uint8)
    padded[:, : P * C] = rows
    return np.packbits(padded, axis=1, bitorder="little").view("<u4").astype(np.uint32).reshape(-1)


def unpack_weights(words, layer: LayerConfig) -> np.ndarray:
    """Inverse of `pack_weights`: int8 [n_out, n_in] of +/-1."""
    words = np.asarray(words, dtype=np.uint32).reshape(layer.weight_rows, layer.row_stride)
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), axis=1, bitorder="little")[:, : layer.row_bits]
    P, C = layer.lanes, layer.chunk
    full = bits.reshape(layer.n_groups, layer.n_chunks, P, C).transpose(0, 2, 1, 3)
    full = full.reshape(layer.n_groups * P, layer.n_chunks * C)[: layer.n_out, : layer.n_in]
    return (2 * full.astype(np.int8) - 1).astype(np.int8)


def pack_neuron_values(values, layer: LayerConfig) -> np.ndarray:
    """Per-neuron integers [n_out] (theta, bias) -> a neuron window image, uint32 [n_groups * lane_stride].

    Neuron j lives at word `(j // P) * lane_stride + j % P`, as 32-bit two's complement.
    """
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.shape != (layer.n_out,):
        raise ValueError(f"expected {layer.n_out} values, got shape {np.shape(values)}")
    image = np.zeros(layer.n_groups * layer.lane_stride, np.uint32)
    image[neuron_word_index(layer)] = (v & 0xFFFFFFFF).astype(np.uint32)
    return image


def unpack_neuron_values(words, layer: LayerConfig) -> np.ndarray:
    """Inverse of `pack_neuron_values`: int64 [n_out] (sign-extended from 32 bits)."""
    words = np.asarray(words, dtype=np.uint32).reshape(-1)
    return words[neuron_word_index(layer)].astype(np.int32).astype(np.int64)


def neuron_word_index(layer: LayerConfig) -> np.ndarray:
    """Word index of each neuron j in a theta/bias/v/u window."""
    j = np.arange(layer.n_out)
    return (j // layer.lanes) * layer.lane_stride + j % layer.lanes


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------


def _fields_text(r: Register) -> str:
    if not r.fields:
        return ""
    return "; ".join(
        f"`{f.name}` [{f.lsb + f.width - 1}:{f.lsb}]" + (f" {f.doc}" if f.doc else "") if f.width > 1
        else f"`{f.name}` [{f.lsb}]" + (f" {f.doc}" if f.doc else "")
        for f in r.fields
    )


_DOC_HEAD = """\
# Register map and stream format

<!-- Generated by `python -m spikeloop.regmap > docs/regmap.md` from spikeloop/regmap.py. Do not edit;
     tests/rtl/test_rtl_regmap.py fails when this file and the module disagree. -->

`spikeloop/regmap.py` is the single source of every offset, field and packing rule below;
the gateware (`spikeloop.rtl.top`) and the host driver both import it.

## Conventions

- AXI-Lite: 32-bit words at byte offsets; `wstrb` is ignored (writes are whole words).
  Register map version {major}.{minor}, magic `{magic:#010x}`.
- Every access answers OKAY: an error response is a bus fault on the Zynq that kills the
  process. Refused accesses are reported by sticky bits of `STATUS` instead (write 1 to clear).
- Unmapped or read-only addresses: reads give 0, writes are dropped, both set `err_address`.
- 64-bit counters: read `_LO` first; it latches the upper half, which `_HI` returns.
- The configuration registers (`CONFIG`, per-layer `N_IN` ... `U_BASE`) describe the build;
  `CoreConfig.from_readback` rebuilds it and checks it against `HASH0..7`.
- Codes: neuron {neuron}, reset {reset}, decay {decay}.

## Global registers

| offset | name | access | description | fields |
|---|---|---|---|---|
"""

_DOC_LAYERS = """
## Per-layer registers

Layer `k`'s block starts at `{base:#x} + k * {stride:#x}` (up to {max_layers} layers).

| offset in block | name | access | description | fields |
|---|---|---|---|---|
"""

_DOC_WINDOWS = """
## Parameter windows

Windows start at `{base:#x}`, layer by layer in the order {kinds}; each is aligned to its
power-of-two span. Their bases are in the per-layer `*_BASE` registers. With `P` lanes and
chunks of `C` synapses:

- `weights` (rw): row `g * n_chunks + c` holds the synapses of the `P` neurons of group `g`
  from input chunk `c`; neuron `g*P + p`, input `c*C + b` is row bit `p*C + b` (1 for +1,
  0 for -1). A row is `ceil(P*C/32)` words, LSB-first, at a stride of the next power of two
  (`pack_weights`).
- `theta`, `bias` (rw), `v`, `u` (ro): neuron `j` is word `(j // P) * next_pow2(P) + j % P`,
  a 32-bit two's complement value (`pack_neuron_values`). Writes outside
  `1 <= theta <= 2^(v_bits-1)-1`, or outside the `v_bits` range for `bias`, are refused
  (`err_param`). `v` is the membrane after reset, `u` the current.
- Windows are written while the core is idle; a write during a timestep is performed but
  sets `err_busy_write`.

"""

_DOC_EXAMPLE = """\
Example: sizes {sizes}, lanes {lanes}, chunk {chunk} ({bits} address bits):

| layer | window | base | words | span (bytes) | access |
|---|---|---|---|---|---|
"""

_DOC_STREAM = """
## AXI-Stream

- Input, per timestep: `WORDS_IN = ceil(n_in / W)` words of `W` = `bus_width` bits; spike `i`
  is bit `i % W` of word `i // W` (LSB-first, `pack_spikes`). Padding bits are ignored.
- Output, per timestep: `ceil(n_out / W)` spike words packed the same way, then, when the core
  is built with `membranes`, the last layer's pre-reset membranes `v'` as 32-bit two's
  complement fields, `W/32` per word, neuron `j` in bits `32*(j % (W/32))` of membrane word
  `j // (W/32)` (`pack_output` / `unpack_output`).
- TLAST: on the output, on the last word of the timestep that carried the input TLAST. A TLAST
  before the last word of an input timestep ends it early: the missing bits are 0, the
  timestep is processed and `err_truncated` is set. T timesteps in always give T timesteps out.
"""


def markdown(example: CoreConfig | None = None) -> str:
    """docs/regmap.md: the whole register map and stream format, generated from this module."""
    example = example or EXAMPLE
    text = _DOC_HEAD.format(major=VERSION[0], minor=VERSION[1], magic=MAGIC, neuron=NEURON_CODE,
                            reset=RESET_CODE, decay=DECAY_CODE)
    text += "".join(f"| `{r.offset:#05x}` | `{r.name}` | {r.access} | {r.doc} | {_fields_text(r)} |\n"
                    for r in GLOBAL_REGISTERS)
    text += _DOC_LAYERS.format(base=LAYER_BASE, stride=LAYER_STRIDE, max_layers=MAX_LAYERS)
    text += "".join(f"| `{r.offset:#04x}` | `{r.name}` | {r.access} | {r.doc} | {_fields_text(r)} |\n"
                    for r in LAYER_REGISTERS)
    text += _DOC_WINDOWS.format(base=WINDOW_BASE, kinds=", ".join(WINDOW_KINDS))
    text += _DOC_EXAMPLE.format(sizes="-".join(map(str, example.sizes)), lanes=[c.lanes for c in example.layers],
                                chunk=[c.chunk for c in example.layers], bits=address_bits(example))
    text += "".join(f"| {w.layer} | `{w.kind}` | `{w.base:#x}` | {w.words} | `{w.span:#x}` | "
                    f"{'rw' if w.writable else 'ro'} |\n" for w in windows(example))
    return text + _DOC_STREAM


#: The configuration whose windows docs/regmap.md shows.
EXAMPLE = CoreConfig.build((784, 256, 128, 10), lanes=16, chunk=64, membranes=True)

if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
