"""Shared pieces of the gateware: parameter checks, arithmetic helpers, payload layouts and the
two internal interfaces (`MemBus` for parameter windows, `LayerControl` for run-time registers).
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Cat, Const, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeloop.config import LayerConfig
from spikeloop.network import check_int
from spikeloop.regmap import WINDOW_KINDS, layer_register

__all__ = [
    "parameters", "check_choice", "check_type", "decoder", "popcount", "saturate", "onehot_index", "SkidOutput",
    "index_shape", "word_layout", "spike_layout", "group_sum_layout", "neuron_out_layout",
    "probe_layout",
    "MemBus", "LayerControl", "WINDOW", "DECAY_BITS", "Probed",
]

#: Width of the lam/alpha ports: enough for 2^16 (frac_bits <= 16).
DECAY_BITS = 17
#: Window kind -> value of `MemBus.sel`.
WINDOW = {kind: code for code, kind in enumerate(WINDOW_KINDS)}


@contextmanager
def parameters(component):
    """Wrap a component's parameter checks: a component refused by them is not reported as unused."""
    try:
        yield
    except (TypeError, ValueError):
        component._MustUse__used = True
        raise


class Probed:
    """A component that names some of its internal values while it elaborates.

    The formal harnesses (`tests/formal/formal_jobs.py`) elaborate a design with `Fragment.get` and then
    state their invariants over these values: e.g. `steps`, the whole timesteps a pipelined
    component holds, and `lasts`, how many of them carry TLAST. Nothing in the gateware reads them.
    """

    @property
    def probes(self) -> dict:
        """Internal values named by the last elaboration (empty before it)."""
        return getattr(self, "_probes", {})


def check_type(name: str, value, kind: type):
    """Return `value` if it is a `kind`, else raise TypeError naming it."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, not {value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    """Return `value` if it is one of `choices`, else raise ValueError naming it."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return value


def popcount(value: Value) -> Value:
    """Number of set bits of `value`, as a balanced adder tree."""
    value = Value.cast(value)
    terms = [value[i] for i in range(len(value))]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            pairs.append(terms[-1])
        terms = pairs
    return terms[0]


def saturate(value: Value, bits: int, *, symmetric=None) -> Value:
    """sat_bits(value): clamp a signed value to the range of a `bits`-bit two's complement integer;
    with `symmetric` (a 1-bit value) set, to [-(2^(bits-1) - 1), 2^(bits-1) - 1]."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    value = Value.cast(value)
    shape = value.shape()
    if symmetric is None and (len(value) < bits or (shape.signed and len(value) == bits)):
        return value.as_signed() if shape.signed else value  # already inside the range
    # outside the range iff the bits from `bits - 1` up are not all equal: or-trees, no comparator
    extend = max(0, bits - len(value)) + (0 if shape.signed else 1)
    value = Cat(value, (value[-1] if shape.signed else Const(0, 1)).replicate(extend)) if extend else value
    top = value[bits - 1 :]
    inside = ~top.any() | top.all()
    low = top[-1] & ~inside
    if symmetric is not None:
        low = low | (Value.cast(symmetric) & inside & top[-1] & ~value[: bits - 1].any())
    high = ~top[-1] & ~inside
    floor = Const(lo, signed(bits)) if symmetric is None else Mux(symmetric, Const(lo + 1, signed(bits)),
                                                                    Const(lo, signed(bits)))
    return Mux(high, Const(hi, signed(bits)), Mux(low, floor, value[:bits].as_signed()))


def onehot_index(onehot: Value) -> Value:
    """Index of the set bit of a one-hot (or zero) value."""
    onehot = Value.cast(onehot)
    width = max(1, ceil_log2(len(onehot)))
    bits = []
    for b in range(width):
        hits = [onehot[i] for i in range(len(onehot)) if (i >> b) & 1]
        bits.append(Cat(*hits).any() if hits else Const(0, 1))
    return Cat(*bits)


def decoder(m, value, *, field_bits: int = 3):
    """`equals(k, lo=0)`, true when `value[lo:] == k >> lo`: `value` cut into fields of `field_bits`, each
    decoded one-hot into kept signals (one LUT level), so that every comparison is an AND of one term per
    field (one more; a field that `lo` cuts gives the OR of its matching one-hot bits), however many
    comparisons share the decoder (left to synthesis, they share chains of LUTs)."""
    fields = []
    for lsb in range(0, len(value), field_bits):
        part = value[lsb : lsb + field_bits]
        onehot = Signal(1 << len(part), name=f"decode{lsb}", attrs={"keep": 1})
        m.d.comb += onehot.eq(Const(1, len(onehot)) << part)
        fields.append((lsb, len(part), onehot))

    def equals(k: int, lo: int = 0):
        if k >> len(value):
            return Const(0)
        terms = []
        for lsb, width, onehot in fields:
            cut = max(0, lo - lsb)  # low bits of the field that do not take part
            if cut >= width:
                continue
            want = (k >> lsb) & ((1 << width) - 1)
            terms.append(Cat(*(onehot[j] for j in range(1 << width) if j >> cut == want >> cut)).any())
        return Cat(*terms).all()
    return equals


class SkidOutput:
    """A pipeline's output register with a skid register behind it, so that the pipeline's enable
    comes from registers only: `held` (a register) is set while the skid register is full, and the
    pipeline must not advance then.

    `offer(m, payload, load)`: on `load`, `payload` goes to the output register, or to the skid
    register if the output is blocked (which stops the pipeline from the next clock).
    """

    def __init__(self, o_stream):
        self._o_stream = o_stream
        self.valid = Signal(name="o_valid")  # the output register is full
        self.held = Signal(name="skid_valid")
        self.skid = Signal.like(o_stream.p, name="skid")

    def offer(self, m, payload, load) -> None:
        o_stream, o = self._o_stream, self._o_stream.p
        free = ~self.valid | o_stream.ready
        with m.If(o_stream.ready):
            m.d.sync += self.valid.eq(0)
        with m.If(self.held):
            with m.If(free):
                m.d.sync += [o.eq(self.skid), self.valid.eq(1), self.held.eq(0)]
        with m.Elif(load):
            with m.If(free):
                m.d.sync += [o.eq(payload), self.valid.eq(1)]
            with m.Else():
                m.d.sync += [self.skid.eq(payload), self.held.eq(1)]
        m.d.comb += o_stream.valid.eq(self.valid)

    def full(self) -> list:
        """(full, payload) of the skid and the output register, for the token counts."""
        return [(self.held, self.skid), (self.valid, self._o_stream.p)]


def index_shape(count: int) -> Shape:
    """Unsigned shape able to index `count` items (at least one bit)."""
    return unsigned(max(1, ceil_log2(count)))


def word_layout(width: int) -> data.StructLayout:
    """One bus word of a stream; `last` marks the last word of a transfer (TLAST)."""
    return data.StructLayout({"data": unsigned(width), "last": unsigned(1)})


def spike_layout(n: int, *, membranes: int | None = None) -> data.StructLayout:
    """A whole timestep of `n` spikes; `last` marks the timestep that carried the input TLAST.

    With `membranes` (a width), also the `n` pre-reset membranes `v`.
    """
    fields = {"spikes": unsigned(n), "last": unsigned(1)}
    if membranes is not None:
        fields["v"] = data.ArrayLayout(signed(membranes), n)
    return data.StructLayout(fields)


def group_sum_layout(config: LayerConfig) -> data.StructLayout:
    """Crossbar -> neuron array: sum_i w[j,i] s[i] for the `lanes` neurons of one group.

    `end` marks the last group of the timestep, `last` the timestep that carried TLAST.
    """
    return data.StructLayout({
        "syn": data.ArrayLayout(signed(config.syn_bits), config.lanes),
        "group": index_shape(config.n_groups),
        "end": unsigned(1),
        "last": unsigned(1),
    })


def neuron_out_layout(config: LayerConfig, *, probes: bool = False) -> data.StructLayout:
    """Neuron array -> collector: spikes `z` and pre-reset membranes `v` of one group; with
    `probes`, also the currents `u` of the timestep (`LayerConfig.current_bits` wide)."""
    fields = {
        "z": unsigned(config.lanes),
        "v": data.ArrayLayout(signed(config.v_bits), config.lanes),
        "group": index_shape(config.n_groups),
        "end": unsigned(1),
        "last": unsigned(1),
    }
    if probes:
        fields["u"] = data.ArrayLayout(signed(config.current_bits), config.lanes)
    return data.StructLayout(fields)


def probe_layout(config: LayerConfig) -> data.StructLayout:
    """A layer's capture of one timestep for the probes: spikes `z`, pre-reset membranes `v`, currents `u`."""
    return data.StructLayout({
        "z": unsigned(config.n_out),
        "v": data.ArrayLayout(signed(config.v_bits), config.n_out),
        "u": data.ArrayLayout(signed(config.current_bits), config.n_out),
    })


class MemBus(wiring.Signature):
    """Word access to the parameter windows of a layer or network, from the register file's side.

    `sel` picks the window kind (`WINDOW`), `layer` the layer (networks only), `addr` the 32-bit
    word inside the window. A one-cycle `w_stb` writes `w_data` at once; the target raises
    `w_err` in that cycle if it refuses the write (value out of range, read-only window).
    A one-cycle `r_stb` requests a read; the target answers some cycles later with a one-cycle
    `r_ack` and `r_data`. At most one read is outstanding; `sel`, `layer`, `addr` are sampled
    with the strobes.
    """

    def __init__(self, *, addr_width: int, n_layers: int | None = None):
        self._addr_width = check_int("addr_width", addr_width, 1, 32)
        self._n_layers = n_layers
        members = {
            "sel": Out(range(len(WINDOW_KINDS))),
            "addr": Out(addr_width),
            "w_data": Out(32),
            "w_stb": Out(1),
            "w_err": In(1),
            "r_stb": Out(1),
            "r_data": In(32),
            "r_ack": In(1),
        }
        if n_layers is not None:
            check_int("n_layers", n_layers, 1)
            members["layer"] = Out(index_shape(n_layers))
        super().__init__(members)

    @property
    def addr_width(self) -> int:
        """Width of the word address."""
        return self._addr_width

    def __eq__(self, other):
        return isinstance(other, MemBus) and (self._addr_width, self._n_layers) == (other._addr_width, other._n_layers)

    def __repr__(self):
        return f"MemBus(addr_width={self._addr_width}, n_layers={self._n_layers})"


class LayerControl(wiring.Signature):
    """Run-time registers of a layer, from the register file's side.

    One member per field of MODE (`neuron`, `reset`, `decay_round`, `bias_to`, `u_overflow`, `v_range`:
    codes of `regmap.MODE_CODES`; `input_shift`: k); `lam`, `alpha`: decays in [0, 2^F]; `clear`: a
    one-cycle pulse zeroes v and u (after the groups in flight); `clearing`: the clear is pending or
    running; `busy`: a timestep is in flight in the layer.
    """

    def __init__(self):
        super().__init__({
            **{f.name: Out(f.width) for f in layer_register("MODE").fields},
            "lam": Out(DECAY_BITS),
            "alpha": Out(DECAY_BITS),
            "clear": Out(1),
            "clearing": In(1),
            "busy": In(1),
        })

    def __eq__(self, other):
        return isinstance(other, LayerControl)

    def __repr__(self):
        return "LayerControl()"
