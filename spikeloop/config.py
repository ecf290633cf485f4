"""What a bitstream is built for: `LayerConfig` / `CoreConfig`, validated up front.

Sizes, lanes `P`, chunk `C` or events `E` (the crossbar's kind), widths, decay implementation, the options
and recurrence switches and the output stream options of a core; the design hash that names a build and the
configuration readback that lets a driver rebuild it from the registers (`CoreConfig.readback`,
`CoreConfig.from_readback`); the cycles a timestep takes; and the default core (`DEFAULT_CORE`). numpy only
(it runs on the board).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from spikeloop.network import (
    BITS_RANGE,
    DECAYS,
    FRAC_BITS_RANGE,
    INPUT_SHIFT_RANGE,
    MAX_WIDTH,
    OPTION_DEFAULTS,
    Decay,
    Layer,
    LayerChain,
    Network,
    Reset,
    check_chain,
    check_int,
)
from spikeloop.regmap import (
    MAGIC,
    VERSION,
    WINDOW_KINDS,
    address_bits,
    ceil_div,
    layer_offset,
    layer_register,
    next_pow2,
    register,
    window,
)
from spikeloop.stream import BUS_WIDTHS, FIELD_BITS, output_words_per_timestep, words_per_timestep
from spikeloop.windows import MAX_EVENTS, DenseGeometry, EventGeometry

__all__ = [
    "ConfigError", "LayerConfig", "CoreConfig", "MAX_LANES", "MAX_CHUNK", "MAX_ROW_BITS", "MAX_EVENTS",
    "design_hash", "hash_words", "tree_stages", "state_cycles", "crossbar_latency", "recurrent_wait", "layer_cycles",
    "framing_cycles", "max_timestep_cycles",
    "DEFAULT_SIZES", "DEFAULT_LANES", "DEFAULT_CHUNK", "DEFAULT_CORE",
]

MAX_LANES = 1024
MAX_CHUNK = 4096
MAX_ROW_BITS = 65536


class ConfigError(ValueError):
    """A core configuration breaks a rule, or a network does not fit a configuration."""


def _int(where: str, name: str, value, lo: int, hi: int) -> int:
    return check_int(f"{where}: {name}", value, lo, hi, error=ConfigError, type_error=ConfigError)


@dataclass(frozen=True)
class LayerConfig:
    """What one layer of a bitstream is built for.

    `n_in`, `n_out`: sizes. `lanes` (P): neurons updated per clock. `chunk` (C): synapses per
    neuron per clock (default: 32, or n_in if smaller). `v_bits`, `u_bits`, `frac_bits`: widths of
    the numerics contract.
    `decay`: `"shift"` or `"multiply"` (see `DECAYS`). Neuron kind, reset mode, lam and alpha
    are run-time registers, not part of the build.
    `options`: the neuron array carries contract v2's options logic (MODE's decay_round, input_shift,
    bias_to, u_overflow, v_range and reset subtract_next; about 290 LUTs a lane); without it those
    fields are tied to their v1 values and a MODE write of another value is refused.
    `events` (E): None for the dense crossbar (rtl/crossbar.py: every input chunk that holds a spike, a
    clock each); an int in 1..MAX_EVENTS (and <= n_in) for the event-driven one (rtl/events.py: E active
    inputs a clock, whichever they are). Its E inputs a clock are its synapses per neuron per clock, so
    `chunk` is E: leave chunk unset (or equal to E); another chunk is refused.
    `recurrent`: the layer also takes its own spikes of the previous timestep, with their own weights: its
    crossbar has `crossbar_inputs` = n_in + n_out inputs (the layer's n_in, then its n_out previous spikes),
    and chunk and events are bounded by that width; the neuron array is the same.
    """

    n_in: int
    n_out: int
    lanes: int = 1
    chunk: int | None = None
    v_bits: int = 16
    u_bits: int = 16
    frac_bits: int = 8
    decay: str = "shift"
    options: bool = False
    events: int | None = None
    recurrent: bool = False
    where: str = "layer"

    def __post_init__(self):
        w = self.where
        _int(w, "n_in", self.n_in, 1, MAX_WIDTH)
        _int(w, "n_out", self.n_out, 1, MAX_WIDTH)
        if not isinstance(self.recurrent, (bool, np.bool_)):
            raise ConfigError(f"{w}: recurrent must be True or False, got {self.recurrent!r}")
        object.__setattr__(self, "recurrent", bool(self.recurrent))
        width = self.crossbar_inputs
        if self.events is not None:
            _int(w, "events", self.events, 1, min(MAX_EVENTS, width))
            if self.chunk is None:
                object.__setattr__(self, "chunk", self.events)
            elif self.chunk != self.events:
                raise ConfigError(
                    f"{w}: chunk = {self.chunk!r} with events = {self.events}: an event-driven layer takes `events` "
                    "inputs a clock (its chunk); leave chunk unset or equal to events"
                )
        if self.chunk is None:
            object.__setattr__(self, "chunk", min(32, width))
        _int(w, "lanes", self.lanes, 1, min(MAX_LANES, self.n_out))
        _int(w, "chunk", self.chunk, 1, min(MAX_CHUNK, width))
        if self.lanes * self.chunk > MAX_ROW_BITS:
            raise ConfigError(f"{w}: lanes * chunk = {self.lanes * self.chunk} exceeds {MAX_ROW_BITS} bits per row")
        _int(w, "v_bits", self.v_bits, *BITS_RANGE)
        _int(w, "u_bits", self.u_bits, *BITS_RANGE)
        _int(w, "frac_bits", self.frac_bits, *FRAC_BITS_RANGE)
        if self.decay not in DECAYS:
            raise ConfigError(f"{w}: decay must be one of {', '.join(DECAYS)}; got {self.decay!r}")
        if not isinstance(self.options, (bool, np.bool_)):
            raise ConfigError(f"{w}: options must be True or False, got {self.options!r}")
        object.__setattr__(self, "options", bool(self.options))

    # Geometry of the memories (derived, read-only).
    @property
    def crossbar_inputs(self) -> int:
        """Inputs of the layer's crossbar: n_in, and with `recurrent` the n_out previous spikes after them."""
        return self.n_in + self.n_out if self.recurrent else self.n_in

    @property
    def weight_window(self) -> DenseGeometry | EventGeometry:
        """The weights window's layout for this layer's crossbar kind: words, padding, packer
        (`DenseGeometry`, or `EventGeometry` with `events`). Every user of the window goes through it."""
        n_in = self.crossbar_inputs
        if self.events is None:
            return DenseGeometry(n_in=n_in, n_out=self.n_out, lanes=self.lanes, chunk=self.chunk)
        return EventGeometry(n_in=n_in, n_out=self.n_out, lanes=self.lanes, events=self.events)

    @property
    def n_chunks(self) -> int:
        """Input chunks of `chunk` bits per timestep over the crossbar's inputs (the last one zero-padded; with
        `recurrent`, the previous spikes' chunks last); with `events`, the bank rows K = ceil(inputs / E): the
        most clocks a group takes."""
        return ceil_div(self.crossbar_inputs, self.chunk)

    @property
    def late_chunks(self) -> int:
        """Chunks of a dense recurrent layer's crossbar holding a previous spike: the last ones of each group's walk,
        at which the walk of a timestep's first group waits for the previous timestep's spikes (0 for a feed-forward
        or an event-driven layer)."""
        if not self.recurrent or self.events is not None:
            return 0
        return self.n_chunks - self.n_in // self.chunk

    @property
    def n_groups(self) -> int:
        """Groups of `lanes` neurons (the last one padded with idle lanes)."""
        return ceil_div(self.n_out, self.lanes)

    @property
    def row_bits(self) -> int:
        """Weight bits read per clock: lanes * chunk (with `events`, P bits from each of E banks)."""
        return self.lanes * self.chunk

    @property
    def row_words(self) -> int:
        """32-bit words holding one weight row of the window (`weight_window.row_words`)."""
        return self.weight_window.row_words

    @property
    def row_stride(self) -> int:
        """Words between weight rows in the weights window, a power of two (`weight_window.row_stride`)."""
        return self.weight_window.row_stride

    @property
    def weight_rows(self) -> int:
        """Rows of `row_stride` words in the weights window (`weight_window.slots`): one per (group, chunk),
        or with `events` one per (group, bank row, bank slot)."""
        return self.weight_window.slots

    @property
    def lane_stride(self) -> int:
        """Words between neuron groups in the theta/bias/v/u windows (a power of two >= lanes)."""
        return next_pow2(self.lanes)

    @property
    def syn_bits(self) -> int:
        """Signed width of the synaptic sum, which lies in [-inputs, inputs] (`crossbar_inputs`: with `recurrent`,
        the previous spikes' terms too)."""
        return self.crossbar_inputs.bit_length() + 1

    @property
    def current_bits(self) -> int:
        """Signed width of a neuron's current of the timestep as the probes hold it: fit_U(...) for cuba,
        a_u = (syn << k) + bias for lif (k up to 16 with `options`, else 0), at most a stream field (which
        carries it modulo 2^32)."""
        k = INPUT_SHIFT_RANGE[1] if self.options else 0
        return min(FIELD_BITS, max(self.u_bits, max(self.syn_bits + k, self.v_bits) + 1))

    def check_layer(self, layer: Layer, where: str | None = None) -> None:
        """Raise ConfigError unless `layer` runs on this build exactly."""
        w = where or self.where
        for name in ("n_in", "n_out", "v_bits", "u_bits", "frac_bits"):
            have, want = getattr(layer, name), getattr(self, name)
            if have != want:
                raise ConfigError(f"{w}: the network has {name} = {have}, the core is built for {want}")
        if layer.is_recurrent != self.recurrent:
            raise ConfigError(
                f"{w}: the network has recurrent = {layer.is_recurrent}, the core is built with recurrent = "
                f"{self.recurrent}" + (" (build with recurrent=True, `--recurrent` on the command line)"
                                       if layer.is_recurrent else "")
            )
        if self.decay == Decay.SHIFT.label:
            for name in ("lam", "alpha"):
                value = getattr(layer, name)
                if value & (value - 1):
                    raise ConfigError(
                        f"{w}: {name} = {value} is not 0 or a power of two, and the core is built with "
                        "decay 'shift' (build with decay='multiply')"
                    )
        if not self.options:
            used = {**{k: v for k, v in layer.options().items() if v != OPTION_DEFAULTS[k]},
                    **({"reset": layer.reset} if layer.reset == Reset.SUBTRACT_NEXT.label else {})}
            if used:
                name, value = next(iter(used.items()))
                raise ConfigError(
                    f"{w}: {name} = {value!r} needs contract v2's options logic, and the core is built without it "
                    "(build with options=True, `--options` on the command line)"
                )

    def params(self) -> dict:
        """The build parameters as a plain dict (for JSON, hashing and readback); `options` and `recurrent` only
        when on and `events` only when set, so a build without them keeps the parameters and design hash it had
        before they existed."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "where" and (f.name != "options" or self.options)
                and (f.name != "recurrent" or self.recurrent)
                and (f.name != "events" or self.events is not None)}


@dataclass(frozen=True)
class CoreConfig(LayerChain):
    """What a bitstream is built for: its layers, the output stream options and the bus width.

    `membranes`: the output stream carries the last layer's pre-reset membranes after the spikes.
    `probes`: the core can also stream every layer's spikes, pre-reset membranes and currents
    per timestep, as the run-time `PROBE` register selects (costs a register per neuron state).
    `bus_width`: AXI-Stream TDATA width in bits (32 or 64).
    Build one from sizes with `CoreConfig.build`, or from a network with `CoreConfig.for_network`.
    """

    layers: tuple[LayerConfig, ...]
    membranes: bool = False
    bus_width: int = 32
    probes: bool = False

    def __post_init__(self):
        object.__setattr__(self, "layers", check_chain(self.layers, LayerConfig, ConfigError, "config"))
        if not isinstance(self.membranes, (bool, np.bool_)):
            raise ConfigError(f"config: membranes must be True or False, got {self.membranes!r}")
        if not isinstance(self.probes, (bool, np.bool_)):
            raise ConfigError(f"config: probes must be True or False, got {self.probes!r}")
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
        options=False,
        events=None,
        recurrent=False,
        membranes: bool = False,
        bus_width: int = 32,
        probes: bool = False,
    ) -> CoreConfig:
        """A configuration from sizes `(n_in, n_out0, n_out1, ...)`.

        Every per-layer argument is a scalar (all layers) or a sequence (one per layer). A scalar
        `lanes`, `chunk` or `events` is capped at each layer's `n_out` and crossbar inputs (`n_in`, with
        `recurrent` n_in + n_out) respectively. `recurrent`: a bool (all layers) or one per layer.
        `events`: None (every layer dense), an int (every layer event-driven) or one entry per layer, None
        for a dense layer. A scalar `chunk` applies to the dense layers only (an event-driven layer's chunk
        is its events); a per-layer chunk entry of an event-driven layer must be None or equal its events.
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
        loops = per_layer("recurrent", recurrent)
        widths = [n_in + n_out if isinstance(loop, (bool, np.bool_)) and loop else n_in
                  for n_in, n_out, loop in zip(ins, outs, loops)]
        cols = {
            "lanes": per_layer("lanes", lanes, outs),
            "chunk": per_layer("chunk", chunk, widths),
            "v_bits": per_layer("v_bits", v_bits),
            "u_bits": per_layer("u_bits", u_bits),
            "frac_bits": per_layer("frac_bits", frac_bits),
            "decay": per_layer("decay", decay),
            "options": per_layer("options", options),
            "events": per_layer("events", events, widths),
            "recurrent": loops,
        }
        if not isinstance(chunk, (list, tuple)):
            cols["chunk"] = [None if e is not None else c for c, e in zip(cols["chunk"], cols["events"])]
        layers = tuple(
            LayerConfig(ins[k], outs[k], **{key: col[k] for key, col in cols.items()}, where=f"layer {k}")
            for k in range(n)
        )
        return cls(layers, membranes=membranes, bus_width=bus_width, probes=probes)

    @classmethod
    def for_network(cls, network: Network, *, lanes=1, chunk=32, decay=None, options=None, events=None,
                    recurrent=None, **kwargs) -> CoreConfig:
        """The configuration that holds `network` exactly (sizes and widths taken from it).

        `decay` defaults to `"shift"` for layers whose lam and alpha are 0 or powers of two, else
        `"multiply"`; `options` to on for the layers that use contract v2's options (`not Layer.is_v1`).
        `events` as in `build`; `recurrent` defaults to the network's own (`Layer.is_recurrent`).
        """
        if not isinstance(network, Network):
            raise TypeError(f"expected a Network, got {type(network).__name__}")

        def pow2_ok(layer):
            return all(x & (x - 1) == 0 for x in (layer.lam, layer.alpha))

        if decay is None:
            decay = [(Decay.SHIFT if pow2_ok(layer) else Decay.MULTIPLY).label for layer in network.layers]
        if options is None:
            options = [not layer.is_v1 for layer in network.layers]
        if recurrent is None:
            recurrent = [layer.is_recurrent for layer in network.layers]
        return cls.build(
            network.sizes, lanes=lanes, chunk=chunk, decay=decay, options=options, events=events, recurrent=recurrent,
            v_bits=[layer.v_bits for layer in network.layers],
            u_bits=[layer.u_bits for layer in network.layers],
            frac_bits=[layer.frac_bits for layer in network.layers],
            **kwargs,
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
            "probes": bool(self.probes),
        }

    @classmethod
    def from_params(cls, params: dict) -> CoreConfig:
        """Inverse of `params()` (a JSON file's configuration back to a CoreConfig, validated)."""
        layers = tuple(LayerConfig(**p, where=f"layer {k}") for k, p in enumerate(params["layers"]))
        return cls(layers, membranes=params["membranes"], bus_width=params["bus_width"],
                   probes=params.get("probes", False))

    def readback(self) -> dict[int, int]:
        """Byte offset -> value of every read-only identity and configuration register."""
        values = {register("MAGIC").offset: MAGIC}
        values[register("VERSION").offset] = register("VERSION").encode(major=VERSION[0], minor=VERSION[1])
        for k, word in enumerate(hash_words(self)):
            values[register(f"HASH{k}").offset] = word
        values[register("CONFIG").offset] = register("CONFIG").encode(
            n_layers=len(self.layers), membranes=int(self.membranes), probes=int(self.probes),
            bus_bytes=self.bus_width // 8,
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
                v_bits=layer.v_bits, u_bits=layer.u_bits, frac_bits=layer.frac_bits, decay=Decay.of(layer.decay),
                options=int(layer.options), events=int(layer.events is not None), recurrent=int(layer.recurrent),
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
            if widths["decay"] not in tuple(Decay):
                raise ConfigError(f"layer {k}: unknown decay code {widths['decay']}")
            decay = Decay(widths["decay"]).label
            layers.append(LayerConfig(
                read(layer_offset(k, "N_IN")), read(layer_offset(k, "N_OUT")),
                lanes=geometry["lanes"], chunk=geometry["chunk"], v_bits=widths["v_bits"], u_bits=widths["u_bits"],
                frac_bits=widths["frac_bits"], decay=decay, options=bool(widths["options"]),
                events=geometry["chunk"] if widths["events"] else None, recurrent=bool(widths["recurrent"]),
                where=f"layer {k}",
            ))
        config = cls(tuple(layers), membranes=bool(cfg["membranes"]), bus_width=cfg["bus_bytes"] * 8,
                     probes=bool(cfg["probes"]))
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


#: Counter levels (one LUT6 each) of the popcount trees between two register stages: two, because
#: synthesis may split a counter's table in two LUT levels (Yosys's ABC9 shares logic between a
#: counter's bits), and two such counters stay within the xc7's six levels at 100 MHz.
LEVELS_PER_STAGE = 2
#: Bits a counter takes: a LUT6 has 6 inputs.
_COUNTER_INPUTS = 6


def _groups(height: int) -> list[int]:
    """Sizes of the counters over a column of `height` bits of one weight (none at 2 or fewer):
    as few as take 6 bits each, of balanced sizes (each at least 3, so every counter shrinks the heap)."""
    if height <= 2:
        return []
    n = -(-height // _COUNTER_INPUTS)
    return [height // n + (i < height % n) for i in range(n)]


def _compress(heap: list[list], count) -> list[list]:
    """One counter level over a heap (column i: bits of weight 2^i): `count(bits)` gives a counter's
    result bits, which go to its column and the next ones; bits outside counters pass."""
    after = [[] for _ in range(len(heap) + 2)]
    for i, column in enumerate(heap):
        start = 0
        for size in _groups(len(column)):
            for k, bit in enumerate(count(column[start : start + size])):
                after[i + k].append(bit)
            start += size
        after[i] += column[start:]
    while after and not after[-1]:
        after.pop()
    return after


def _stage_levels(chunk: int) -> list[int]:
    """Counter levels of each register stage of the popcount tree of `chunk` bits (to two rows)."""
    heap, levels = [[None] * chunk], 0
    while max(map(len, heap)) > 2:
        heap, levels = _compress(heap, lambda bits: [None] * len(bits).bit_length()), levels + 1
    return [min(LEVELS_PER_STAGE, levels - done) for done in range(0, levels, LEVELS_PER_STAGE)]


def tree_stages(chunk: int) -> int:
    """Register stages (T1..Tk) of the crossbar's popcount tree of a chunk of C bits (rtl/crossbar.py)."""
    return len(_stage_levels(chunk))


def state_cycles(layer: LayerConfig) -> int:
    """Clocks from the neuron array's read of a group's v and u to the first read that sees them written
    back (rtl/neuron.py: read ports, read registers, the decays' product with decay "multiply", the
    losses, five update stages, the write landing): the least time between two timesteps of a group."""
    return 9 + (layer.decay == "multiply")


def crossbar_latency(layer: LayerConfig) -> int:
    """Clocks from a crossbar's last item issued to its group's sums in the output register: 5 + tree_stages(C)
    (C = E for the event-driven crossbar; `Crossbar.latency`, `EventCrossbar.latency`)."""
    return 5 + tree_stages(layer.chunk)


def recurrent_wait(layer: LayerConfig) -> int:
    """W, the clocks from a recurrent layer's last item of a timestep issued to its next timestep's recurrent
    inputs usable (0 for a feed-forward layer): the crossbar's latency, the neuron array's pipeline
    (`state_cycles`) and a clock to hand them over (docs/gateware.md, "Recurrent layers")."""
    return crossbar_latency(layer) + state_cycles(layer) + 1 if layer.recurrent else 0


def layer_cycles(layer: LayerConfig, nonzero_chunks=None, *, state: bool = True, early=None):
    """Clocks a layer spends on one timestep with `nonzero_chunks` (Z) clocks per group (default: dense
    input, `n_chunks`): its crossbar's Z items per group, at least one, and one clock to take the next
    timestep; with `state`, at least `state_cycles`, which only a layer of few groups reaches
    (docs/gateware.md, "Throughput"). Z is the input chunks holding a spike for the dense crossbar, the
    most active inputs of one bank for the event-driven one (`EventGeometry.items`; then this is
    `rtl.events.event_cycles`, and the dense default K = n_chunks is its all-active case).

    A recurrent layer: Z counts its chunks of previous spikes too. An event-driven one works on a timestep at a
    time and adds `recurrent_wait` (W). A dense one walks its first group's chunks of inputs (`early` of them
    hold a spike; default: Z less its `late_chunks`) while the previous timestep finishes, then waits at its
    late chunks: it adds max(1, W - 1 - early) (a clock at least, to take the previous spikes in), and a clock
    when its late chunks hold no spike after some early one (the first group's walk issues an empty item)."""
    z = layer.n_chunks if nonzero_chunks is None else nonzero_chunks
    cycles = layer.n_groups * np.maximum(1, z) + 1
    if layer.recurrent and layer.events is not None:
        cycles = cycles + recurrent_wait(layer)
    elif layer.recurrent:
        e = np.maximum(0, np.asarray(z) - layer.late_chunks) if early is None else np.asarray(early)
        cycles = cycles + np.maximum(1, recurrent_wait(layer) - 1 - e) + ((np.asarray(z) == e) & (e > 0))
    cycles = np.maximum(cycles, state_cycles(layer) if state else 0)
    return cycles if np.ndim(cycles) else cycles.item()


def framing_cycles(config: CoreConfig) -> int:
    """Clocks the stream framing spends on a timestep: a word per clock in and out, plus the hand-over."""
    return max(words_per_timestep(config.n_in, config.bus_width), output_words_per_timestep(config)) + 1


def max_timestep_cycles(config: CoreConfig) -> int:
    """An upper bound on the clocks from a timestep's first input word to its last output word:
    every layer dense, one after the other, each with its crossbar's latency (capture, issue, memory,
    popcount trees of at most one register stage per bit of C, accumulate, output: bounded by
    6 + C.bit_length()), its neuron array's and a few clocks of hand-over, and the stream words.
    Deadlines of drivers and test benches are computed from it."""
    layers = sum(int(layer_cycles(layer)) + 6 + layer.chunk.bit_length() + state_cycles(layer) + 3
                 for layer in config.layers)
    return layers + words_per_timestep(config.n_in, config.bus_width) + output_words_per_timestep(config) + 8


#: The default core: the 784-256-128-10 network of the examples, 16 lanes, chunks of 64 synapses.
DEFAULT_SIZES = (784, 256, 128, 10)
DEFAULT_LANES = 16
DEFAULT_CHUNK = 64
DEFAULT_CORE = CoreConfig.build(DEFAULT_SIZES, lanes=DEFAULT_LANES, chunk=DEFAULT_CHUNK)
