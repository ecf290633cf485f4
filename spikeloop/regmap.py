"""The core's AXI-Lite register map: every register, field and window address, and the rules of a write.

The gateware (`spikeloop.rtl`), the drivers and the simulated boards import this module; no offset
is typed anywhere else, and docs/regmap.md is generated from it (`python -m spikeloop.regmap`).
Plain Python (it runs on the board).

- The register table: identity (`MAGIC`, `VERSION`, the design hash), configuration readback,
  control, status with its sticky error bits (`ERRORS`), the 64-bit counters (`COUNTERS`) and the
  per-layer registers (`GLOBAL_REGISTERS`, `LAYER_REGISTERS`), allocated by `_Block` so that no
  offset is ever typed.
- The address map of a configuration: where its parameter windows lie (`windows`, `address_bits`)
  and what lives at an address (`decode_address`).
- `judge_write`: what a core does with a register write (taken, refused with `err_param`, dropped
  with `err_address`, flagged with `err_busy_write`).

What the windows hold is `spikeloop.windows`; the stream words are `spikeloop.stream`; the
configuration itself (a `config` below) is `spikeloop.config.CoreConfig`.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spikeloop.network import (
    INPUT_SHIFT_RANGE,
    MAX_LAYERS,
    OPTION_DEFAULTS,
    BiasTo,
    Decay,
    Neuron,
    Overflow,
    Reset,
    Rounding,
    VRange,
    signed_range,
)

__all__ = [
    "MAGIC", "VERSION", "WORD_BYTES", "ERRORS", "COUNTERS", "Field", "Register", "Window", "Verdict",
    "GLOBAL_REGISTERS", "LAYER_REGISTERS", "LAYER_BASE", "LAYER_STRIDE", "WINDOW_BASE", "WINDOW_KINDS",
    "register", "layer_register", "layer_offset", "windows", "window", "writable_offsets", "address_bits",
    "decode_address", "MODE_CODES", "mode_top", "mode_word", "mode_labels",
    "judge_write", "RegisterPort", "next_pow2", "ceil_div", "markdown",
]

#: Identity word at offset 0: the ASCII bytes "SKLP" read as a little-endian 32-bit word.
MAGIC = int.from_bytes(b"SKLP", "little")
#: Register map version (major, minor). A major bump means old drivers must refuse the core.
VERSION = (1, 2)
#: AXI-Lite data width in bytes; every register and window word is 32 bits.
WORD_BYTES = 4
_COUNTED = {
    "TIMESTEPS": "timesteps output",
    "SPIKES_IN": "input spikes received",
    "SPIKES_OUT": "output spikes sent",
    "BUSY_CYCLES": "clock cycles with a timestep in flight",
}
#: The 64-bit counters, each read as NAME_LO (which latches NAME_HI) then NAME_HI.
COUNTERS = tuple(_COUNTED)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (n >= 1)."""
    return 1 << (int(n) - 1).bit_length()


def ceil_div(a: int, b: int) -> int:
    """a / b rounded up (positive integers)."""
    return -(-a // b)


def _codes(enum) -> str:
    return ", ".join(f"{code.value} {code.label}" for code in enum)




#: The codes each field of a layer's MODE holds, by field name, in bit order; its last field,
#: `input_shift`, holds a number (the layer's k).
MODE_CODES = {"neuron": Neuron, "reset": Reset, "decay_round": Rounding, "bias_to": BiasTo, "u_overflow": Overflow,
              "v_range": VRange}


# --------------------------------------------------------------------------------------------
# The register table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A bit field of a register: bits [lsb, lsb+width); a write holding more than `top` in it is
    refused (None: every value is taken)."""

    name: str
    lsb: int
    width: int
    doc: str = ""
    top: int | None = None

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


def _mode_fields() -> list[Field]:
    """MODE's fields, packed from bit 0: each code field as wide as its largest code, then input_shift."""
    fields, lsb = [], 0
    for name, enum in MODE_CODES.items():
        fields.append(Field(name, lsb, max(enum).bit_length() or 1, _codes(enum), max(enum)))
        lsb += fields[-1].width
    lo, hi = INPUT_SHIFT_RANGE
    fields.append(Field("input_shift", lsb, hi.bit_length(), f"k in {lo}..{hi}: the synaptic sum is shifted left by k",
                        hi))
    return fields


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
    Field("probes", 9, 1, "the core is built with probes: PROBE may select per-layer traces"),
    Field("bus_bytes", 16, 8, "AXI-Stream TDATA width in bytes"),
])
_g.add("ADDRESS_BITS", "ro", "Width of the AXI-Lite byte address space (windows included).")
_g.add("WORDS_IN", "ro", "AXI-Stream words per input timestep.")
_g.add("WORDS_OUT", "ro", "AXI-Stream words per output timestep with PROBE = 0 (a probe adds its sections: "
       "`stream.output_words_per_timestep(config, probe)`).")
_g.add("CONTROL", "wo", "Actions; each bit written 1 acts once.", [
    Field("clear_state", 0, 1, "zero every v and u once the timesteps in flight are done"),
    Field("clear_counters", 1, 1, "zero the counters"),
    Field("load_params", 2, 1, "the next stream transfer, up to its TLAST, is a parameter load frame"),
])
_g.add("STATUS", "rw1c", "State and sticky errors (write 1 to an error bit to clear it).", [
    Field("busy", 0, 1, "a timestep is in flight"),
    Field("clearing", 1, 1, "a state clear is pending or running"),
    Field("loading", 2, 1, "a parameter load is armed or in progress"),
    Field("err_truncated", 8, 1, "input TLAST came before the last word of a timestep (zero-padded, processed)"),
    Field("err_param", 9, 1, "a run-time register write was refused (a MODE field out of its codes or of the build's "
          "options, lam or alpha)"),
    Field("err_address", 10, 1, "an access to an unmapped or read-only address"),
    Field("err_busy_write", 11, 1, "a parameter window was written while a timestep was in flight"),
    Field("err_load", 12, 1, "a parameter load frame was refused or cut short (magic, design hash, length): "
          "reload before running"),
])
for _name, _doc in _COUNTED.items():
    _g.add(f"{_name}_LO", "ro", f"Counter of {_doc}, bits 31..0; reading it latches _HI.")
    _g.add(f"{_name}_HI", "ro", f"Counter of {_doc}, bits 63..32 as latched by the last read of _LO.")
_g.add("PROBE", "rw", "What each output timestep carries after the network output: per layer, its spikes, "
       "pre-reset membranes v' and currents u (`stream.output_words_per_timestep`). Written while idle; "
       "a nonzero value is refused (err_param) unless the core is built with probes.", [
    Field("spikes", 0, 1, "every layer's spikes"),
    Field("v", 1, 1, "every layer's pre-reset membranes v'"),
    Field("u", 2, 1, "every layer's currents u"),
])

#: Global registers (absolute byte offsets).
GLOBAL_REGISTERS: tuple[Register, ...] = tuple(_g.registers)

_l = _Block()
_l.add("N_IN", "ro", "Inputs of the layer.")
_l.add("N_OUT", "ro", "Neurons of the layer.")
_l.add("GEOMETRY", "ro", "Lanes and chunk.", [Field("lanes", 0, 16, "P"), Field("chunk", 16, 16, "C")])
_l.add("WIDTHS", "ro", "Widths, decay implementation, the options switch, the crossbar's kind and recurrence.", [
    Field("v_bits", 0, 8), Field("u_bits", 8, 8), Field("frac_bits", 16, 8),
    Field("decay", 24, 1, _codes(Decay)),
    Field("options", 25, 1, "the layer is built with contract v2's options (else MODE takes only their v1 values)"),
    Field("events", 26, 1, "the layer's crossbar is event-driven, taking `GEOMETRY.chunk` active inputs a clock "
          "(else dense: every input chunk that holds a spike)"),
    Field("recurrent", 27, 1, "the layer also takes its own spikes of the previous timestep: its crossbar has "
          "N_IN + N_OUT inputs, the previous spikes last (weights rows of [w | r])"),
])
_l.add("MODE", "rw", "Neuron kind, reset mode and the layer's numerics options (docs/numerics.md).",
       _mode_fields())
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
_BY_OFFSET = {r.offset: r for r in GLOBAL_REGISTERS}
_LAYER_BY_NAME = {r.name: r for r in LAYER_REGISTERS}

#: The sticky error bits of STATUS, in bit order (write 1 to clear).
ERRORS = tuple(f.name for f in _BY_NAME["STATUS"].fields if f.name.startswith("err_"))


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


def _window_words(layer, kind: str) -> int:
    if kind == "weights":
        return layer.weight_window.words
    return layer.n_groups * layer.lane_stride


@functools.lru_cache(maxsize=64)
def windows(config) -> tuple[Window, ...]:
    """Every window of a configuration, in address order; each aligned to its power-of-two span."""
    out = []
    addr = WINDOW_BASE
    for k, layer in enumerate(config.layers):
        for kind in WINDOW_KINDS:
            words = _window_words(layer, kind)
            span = next_pow2(WORD_BYTES * words)
            addr = ceil_div(addr, span) * span
            out.append(Window(k, kind, addr, words, span))
            addr += span
    return tuple(out)


def window(config, layer: int, kind: str) -> Window:
    """The window of `kind` of layer `layer`."""
    for w in windows(config):
        if w.layer == layer and w.kind == kind:
            return w
    raise KeyError(f"no window {kind!r} for layer {layer}")


def writable_offsets(config) -> list[int]:
    """Every run-time layer register and every word of the writable windows (padding included): what a load
    may write, in address order within each kind."""
    offsets = [layer_offset(k, r.name) for k in range(len(config.layers)) for r in LAYER_REGISTERS if r.access == "rw"]
    for w in windows(config):
        if w.writable:
            offsets += [w.base + 4 * i for i in range(w.words)]
    return offsets


def address_bits(config) -> int:
    """Bits of the AXI-Lite byte address space that holds every register and window."""
    end = max(w.base + w.span for w in windows(config))
    return (end - 1).bit_length()


def decode_address(config, offset: int) -> tuple[str, object]:
    """What lives at byte `offset`: ("global", Register), ("layer", (k, Register)),
    ("window", (Window, word index)) or ("unmapped", None)."""
    offset = int(offset)
    if offset % WORD_BYTES:
        return ("unmapped", None)
    if offset in _BY_OFFSET:
        return ("global", _BY_OFFSET[offset])
    if LAYER_BASE <= offset < LAYER_BASE + len(config.layers) * LAYER_STRIDE:
        k, rel = divmod(offset - LAYER_BASE, LAYER_STRIDE)
        for r in LAYER_REGISTERS:
            if r.offset == rel:
                return ("layer", (k, r))
    for w in windows(config):
        if w.base <= offset < w.end:
            return ("window", (w, (offset - w.base) // WORD_BYTES))
    return ("unmapped", None)


class Verdict(NamedTuple):
    """What a core does with one register write: whether it takes effect, and the STATUS error
    bits it sets (names of `ERRORS`, in bit order)."""

    performed: bool
    errors: tuple[str, ...] = ()


_MODE = layer_register("MODE")
_MODE_BITS = max(f.lsb + f.width for f in _MODE.fields)
_PROBE_BITS = max(f.lsb + f.width for f in register("PROBE").fields)


def mode_top(name: str, options: bool) -> int | None:
    """The largest value MODE's field `name` takes on a layer built with or without contract v2's options:
    without them, the v1 value of an option and reset's codes below subtract_next (None: every value)."""
    f = _MODE.field(name)
    if options or name == "neuron":
        return None if f.top is None else int(f.top)
    if name == "reset":
        return int(Reset.SUBTRACT_NEXT) - 1
    return int(MODE_CODES[name].of(OPTION_DEFAULTS[name]) if name in MODE_CODES else OPTION_DEFAULTS[name])


def mode_word(*, neuron: str, reset: str, **options) -> int:
    """The MODE word of a layer: its neuron kind, reset mode and the five numerics options
    (`Layer.options()`: labels, and input_shift as a number)."""
    labels = {"neuron": neuron, "reset": reset, **options}
    missing = [f.name for f in _MODE.fields if f.name not in labels]
    if missing:
        raise KeyError(f"MODE needs {', '.join(missing)}")
    values = {name: MODE_CODES[name].of(v) if name in MODE_CODES else int(v) for name, v in labels.items()}
    for f in _MODE.fields:
        if f.top is not None and not 0 <= values[f.name] <= f.top:
            raise ValueError(f"MODE.{f.name} = {values[f.name]} is outside [0, {f.top}]")
    return _MODE.encode(**values)


def mode_labels(word: int) -> dict:
    """Inverse of `mode_word`: the MODE word's fields as labels (input_shift a number); ValueError for a code
    that is none."""
    out = {}
    for name, value in _MODE.decode(word).items():
        if name in MODE_CODES:
            if value not in tuple(MODE_CODES[name]):
                raise ValueError(f"MODE.{name} = {value} is not one of the codes {_codes(MODE_CODES[name])}")
            value = MODE_CODES[name](value).label
        out[name] = value
    return out


class RegisterPort(ABC):
    """Anything that holds the core's registers (a board, a transport): 32-bit words at byte offsets,
    one by one (`read`, `write`) or in bulk (`read_many`, `write_many`, by default one by one)."""

    @abstractmethod
    def read(self, offset: int) -> int:
        """The 32-bit register word at byte `offset`."""

    @abstractmethod
    def write(self, offset: int, value: int) -> None:
        """Write a 32-bit register word at byte `offset`."""

    def read_many(self, offsets) -> np.ndarray:
        """Words at `offsets`, read in order; uint32."""
        return np.array([self.read(int(o)) for o in np.asarray(offsets).reshape(-1)], dtype=np.uint32)

    def write_many(self, offsets, values) -> None:
        """Write `values` at `offsets`, in order (each taken modulo 2^32)."""
        for o, v in zip(np.asarray(offsets).reshape(-1), np.asarray(values, dtype=np.int64).reshape(-1)):
            self.write(int(o), int(v) & 0xFFFFFFFF)


def judge_write(config, offset: int, value: int, *, busy: bool = False) -> Verdict:
    """The core's decision on writing `value` to byte `offset` of a core built as `config`.

    - Misaligned, unmapped and read-only addresses (identity, readback, counters, the `v` and `u`
      windows): dropped, `err_address`.
    - `MODE` with bits above its fields or a field above its `mode_top` (an unknown code, input_shift
      above 16; on a layer built without options, any option but its v1 value, or reset subtract_next);
      `LAM`, `ALPHA` above 2^F or, with decay `shift`, neither 0 nor a power of two: dropped, `err_param`.
    - `theta` outside [1, 2^(v_bits-1) - 1], `bias` outside the `v_bits` range: dropped, `err_param`.
    - A window write while `busy` (a timestep in flight) also sets `err_busy_write`.
    - `PROBE` with bits above its fields, or nonzero on a core built without probes: dropped, `err_param`.
    `CONTROL` acts and `STATUS` clears the bits written 1. Every software model of a core calls
    this; the gateware has its own logic, held equal to it by tests/rtl/test_rtl_write_rules.py.
    """
    value = int(value) & 0xFFFFFFFF
    kind, what = decode_address(config, offset)
    if kind == "global" and what.access in ("wo", "rw1c"):
        return Verdict(True)
    if kind == "global" and what.access == "rw":  # PROBE
        ok = value >> _PROBE_BITS == 0 and (value == 0 or bool(config.probes))
        return Verdict(True) if ok else Verdict(False, ("err_param",))
    if kind == "layer" and what[1].access == "rw":
        k, reg = what
        layer = config.layers[k]
        if reg.name == "MODE":
            fields = reg.decode(value)
            ok = value >> _MODE_BITS == 0 and all(
                mode_top(f.name, layer.options) is None or fields[f.name] <= mode_top(f.name, layer.options)
                for f in reg.fields)
        else:
            ok = value <= 1 << layer.frac_bits and (layer.decay == Decay.MULTIPLY.label or value & (value - 1) == 0)
        return Verdict(True) if ok else Verdict(False, ("err_param",))
    if kind == "window" and what[0].writable:
        w = what[0]
        flags = ("err_busy_write",) if busy else ()
        if w.kind != "weights":
            lo, hi = signed_range(config.layers[w.layer].v_bits)
            signed = value - (1 << 32) if value >> 31 else value
            if not (1 if w.kind == "theta" else lo) <= signed <= hi:
                return Verdict(False, ("err_param", *flags))
        return Verdict(True, flags)
    return Verdict(False, ("err_address",))


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

`spikeloop/regmap.py` is the single source of every offset, field and write rule below,
`spikeloop/stream.py` of the stream packing, `spikeloop/windows.py` of the window images and
`spikeloop/paramstream.py` of the parameter load frames;
the gateware (`spikeloop.rtl.top`), the host driver and the simulated boards all import them.

## Conventions

- AXI-Lite: 32-bit words at byte offsets; `wstrb` is ignored (writes are whole words).
  Register map version {major}.{minor}, magic `{magic:#010x}`.
- Every access answers OKAY: an error response is a bus fault on the Zynq that kills the
  process. Refused accesses are reported by sticky bits of `STATUS` instead (write 1 to clear).
- Unmapped or read-only addresses: reads give 0, writes are dropped, both set `err_address`.
  What a core does with each write is `regmap.judge_write`, the rules below.
- 64-bit counters: read `_LO` first; it latches the upper half, which `_HI` returns.
- The configuration registers (`CONFIG`, per-layer `N_IN` ... `U_BASE`) describe the build;
  `spikeloop.config.CoreConfig.from_readback` rebuilds it and checks it against `HASH0..7`.
- Codes (`spikeloop.network.Neuron`, `Reset`, `Decay`, `Rounding`, `BiasTo`, `Overflow`, `VRange`): neuron
  {neuron}, reset {reset}, decay {decay}, decay_round {decay_round}, bias_to {bias_to}, u_overflow {u_overflow},
  v_range {v_range}.

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
  A layer with an event-driven crossbar (`WIDTHS.events`, `E` = `C` banks, input `i` in bank
  `i % E` at bank row `i // E`, `K = ceil(n_in/E)`) holds instead the `P` bits of (group `g`,
  bank row `k`, bank `b`), lane `p` at bit `p`, in `ceil(P/32)` words at word
  `((g*K + k) * next_pow2(E) + b) * next_pow2(ceil(P/32))` (`pack_event_weights`). Words past a
  row's data, and banks past `E`, are ignored on write and read as 0.
  A recurrent layer (`WIDTHS.recurrent`) has `n_in + n_out` crossbar inputs: inputs `n_in + k` are
  its own spikes `k` of the previous timestep, so its window holds the matrix `[w | r]`
  (`Layer.crossbar_weights`) laid out as above with `n_in + n_out` for `n_in`.
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
- Probes (a core built with `probes`, `PROBE` not 0): after those words, for each layer `k` in
  order, the sections `PROBE` selects, each starting a new word: `spikes`, the layer's spikes in
  `ceil(n_out_k / W)` words packed like the output spikes; `v`, its pre-reset membranes `v'`, and
  `u`, its currents `u` (`u = a` for `lif`), both as 32-bit two's complement fields like the output
  membranes (`pack_output(..., probe=, layers=)` / `unpack_probes`; the count is
  `output_words_per_timestep(config, probe)`). While `PROBE` is not 0 the core works on one
  timestep at a time.
- TLAST: on the output, on the last word of the timestep that carried the input TLAST. A TLAST
  before the last word of an input timestep ends it early: the missing bits are 0, the
  timestep is processed and `err_truncated` is set. T timesteps in always give T timesteps out.
"""


def markdown(example) -> str:
    """docs/regmap.md: the whole register map and stream format, with the windows of the
    configuration `example` (`spikeloop.config.DEFAULT_CORE` in the docs)."""
    codes = {name: {code.label: code.value for code in enum} for name, enum in {**MODE_CODES, "decay": Decay}.items()}
    text = _DOC_HEAD.format(major=VERSION[0], minor=VERSION[1], magic=MAGIC, **codes)
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
    from spikeloop.paramstream import markdown as frame_markdown  # it imports this module

    return text + _DOC_STREAM + frame_markdown()


if __name__ == "__main__":  # pragma: no cover
    from spikeloop.config import DEFAULT_CORE

    print(markdown(DEFAULT_CORE), end="")
