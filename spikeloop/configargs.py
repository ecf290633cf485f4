"""The core-configuration options every command shares (`spikeloop verilog`, `estimate`, `make bitstream`),
and the argparse types that check every option where it enters.

`--sizes --lanes --chunk --events --v-bits --u-bits --frac-bits --decay --options --membranes --probes --bus-width`,
so one
`CONFIG=...` works for `make verilog`, `make estimate` and `make bitstream`.

Each option is checked at the boundary, in one wording: an argparse type refuses what is out of
its range on its own (argparse then says `argument --steps: ...`), and `config_from_args` checks
`--lanes`, `--chunk` and `--events` against the layer sizes (`argument --chunk: 1000000 is outside [1, 784] ...`).
Nothing is capped silently: a value the core cannot take is refused with its true range.
"""

from __future__ import annotations

import argparse

from spikeloop.config import (
    DEFAULT_CHUNK,
    DEFAULT_LANES,
    DEFAULT_SIZES,
    MAX_CHUNK,
    MAX_EVENTS,
    MAX_LANES,
    MAX_ROW_BITS,
    ConfigError,
    CoreConfig,
)
from spikeloop.network import BITS_RANGE, DECAYS, FRAC_BITS_RANGE, MAX_LAYERS, MAX_WIDTH
from spikeloop.stream import BUS_WIDTHS

__all__ = [
    "add_config_arguments", "config_from_args", "config_args", "int_or_list", "int_in", "float_in", "ints_in",
    "sizes_type", "check_per_layer", "events_type", "check_events", "OptionError",
]


class OptionError(ConfigError):
    """A command-line option is out of its range (the message names the option and the range)."""


def int_or_list(text: str) -> int | list[int]:
    """'16' -> 16, '3,2' -> [3, 2] (one value per layer); an argparse type."""
    return _ints(text)


def _ints(text: str) -> int | list[int]:
    try:
        values = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _range(lo, hi) -> str:
    return f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"


def int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi] (hi None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {_range(lo, hi)}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected an integer {_range(lo, hi)}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float | None = None, *, open_lo: bool = False):
    """An argparse type: a number in [lo, hi] ((lo, hi] with `open_lo`; hi None: no upper bound)."""
    shown = (f"in {'(' if open_lo else '['}{lo:g}, {hi:g}]" if hi is not None
             else f"{'>' if open_lo else '>='} {lo:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {shown}, got {text!r}") from None
        if not (value > lo if open_lo else value >= lo) or (hi is not None and not value <= hi):
            raise argparse.ArgumentTypeError(f"expected a number {shown}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def ints_in(lo: int, hi: int | None = None):
    """An argparse type: one integer or comma-separated integers (one per layer), each in [lo, hi]."""

    def parse(text: str) -> int | list[int]:
        values = _ints(text)
        for v in values if isinstance(values, list) else [values]:
            if v < lo or (hi is not None and v > hi):
                where = f" (in {text})" if isinstance(values, list) else ""
                raise argparse.ArgumentTypeError(f"expected integers {_range(lo, hi)}, got {v}{where}")
        return values

    parse.__name__ = "integer list"
    return parse


def sizes_type(text: str) -> str:
    """An argparse type: `n_in,n_out0,...`, 2 to MAX_LAYERS + 1 sizes each in [1, MAX_WIDTH]; returns the text."""
    try:
        sizes = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 784,256,10, got {text!r}") from None
    if not 2 <= len(sizes) <= MAX_LAYERS + 1:
        raise argparse.ArgumentTypeError(
            f"expected an input size and 1 to {MAX_LAYERS} layer sizes like 784,256,10, got {text!r}")
    for s in sizes:
        if not 1 <= s <= MAX_WIDTH:
            raise argparse.ArgumentTypeError(f"expected sizes in [1, {MAX_WIDTH}], got {s} (in {text})")
    return ",".join(map(str, sizes))


def _decays(text: str) -> str:
    for d in str(text).split(","):
        if d not in DECAYS:
            raise argparse.ArgumentTypeError(f"expected {' or '.join(DECAYS)}, one or one per layer, got {text!r}")
    return str(text)


def _switches(text: str) -> bool | list[bool]:
    """'1' -> True, '0' -> False, '1,0,0' -> one per layer; an argparse type."""
    values = str(text).split(",")
    if any(v not in ("0", "1") for v in values):
        raise argparse.ArgumentTypeError(f"expected 0 or 1, one or one per layer, got {text!r}")
    return values[0] == "1" if len(values) == 1 else [v == "1" for v in values]


#: An argparse type for `--events`: E, 0 for a dense layer, one value or one per layer.
events_type = ints_in(0, MAX_EVENTS)


def check_events(value, sizes, chunk=None):
    """`--events` (an `events_type` value or None) as `CoreConfig.build` takes it, checked against the layers'
    inputs `sizes` and against a per-layer `--chunk`: 0 is a dense layer (None), one value serves every layer
    (capped at each layer's inputs), one value per layer is checked layer by layer. A per-layer `--chunk` must
    give an event-driven layer its events (its chunk) or be one value, which the dense layers take."""
    if value is None:
        return None
    sizes = list(sizes)
    if isinstance(value, (list, tuple)):
        if len(value) != len(sizes):
            raise OptionError(f"argument --events: {len(value)} values for {len(sizes)} layers")
        for k, (v, size) in enumerate(zip(value, sizes)):
            hi = min(MAX_EVENTS, size)
            if v and not 1 <= v <= hi:
                raise OptionError(f"argument --events: expected 0 (dense) or an integer in [1, {hi}] for layer {k} "
                                  f"(at most its inputs and {MAX_EVENTS}), got {v}")
        per_layer = [v or None for v in value]
    else:
        if not 0 <= value <= MAX_EVENTS:
            raise OptionError(f"argument --events: expected 0 (dense) or an integer in [1, {MAX_EVENTS}], got {value}")
        per_layer = [min(value, size) or None for size in sizes]
    if isinstance(chunk, (list, tuple)):
        for k, (c, e) in enumerate(zip(chunk, per_layer)):
            if e is not None and c != e:
                raise OptionError(f"arguments --chunk and --events: layer {k} is event-driven with events {e}, which "
                                  f"is its chunk, but --chunk gives it {c}: give {e} there, or one --chunk value (it "
                                  "serves the dense layers)")
    return per_layer


def check_per_layer(option: str, value, sizes, *, what: str, limit: int) -> None:
    """Refuse `--lanes` (sizes: each layer's n_out) or `--chunk` (each layer's n_in) out of its true range.

    One value serves every layer (a layer smaller than it takes its own size), so its range is
    [1, the largest layer's size]; one value per layer is checked layer by layer. The range is
    said the same way whatever the value (0, -4 or 1000000), and whichever command asks.
    """
    sizes = list(sizes)
    if isinstance(value, (list, tuple)):
        if len(value) != len(sizes):
            raise OptionError(f"argument {option}: {len(value)} values for {len(sizes)} layers")
        for k, (v, size) in enumerate(zip(value, sizes)):
            hi = min(limit, size)
            if not 1 <= v <= hi:
                raise OptionError(f"argument {option}: expected an integer in [1, {hi}] for layer {k} (at most its "
                                  f"{what}), got {v}")
        return
    hi = min(limit, max(sizes))
    if not 1 <= value <= hi:
        raise OptionError(f"argument {option}: expected an integer in [1, {hi}] (at most the largest layer's {what}; "
                          f"or one value per layer), got {value}")


def add_config_arguments(parser: argparse.ArgumentParser, *, sizes_required: bool = False,
                         default_sizes: str = "the board's") -> None:
    """Add the configuration options to `parser` (`default_sizes`: what the help says is the default)."""
    lo, hi = BITS_RANGE
    flo, fhi = FRAC_BITS_RANGE
    parser.add_argument("--sizes", required=sizes_required, default=None, type=sizes_type,
                        help=f"n_in,n_out0,n_out1,... e.g. 784,256,128,10 (default: {default_sizes})")
    parser.add_argument("--lanes", type=int_or_list, default=None,
                        help="P, neurons per clock: one value or one per layer, at most each layer's outputs")
    parser.add_argument("--chunk", type=int_or_list, default=None,
                        help="C, synapses per clock: one value or one per layer, at most each layer's inputs")
    parser.add_argument("--events", type=events_type, default=None,
                        help=f"E, active inputs per clock of the event-driven crossbar (1 to {MAX_EVENTS}, at most "
                             "the layer's inputs; 0: the dense crossbar): one value or one per layer like 16,0 "
                             "(default: every layer dense; an event-driven layer's chunk is its events)")
    parser.add_argument("--v-bits", type=ints_in(lo, hi), default=16,
                        help=f"membrane width in bits, {lo} to {hi}, one or one per layer (default 16)")
    parser.add_argument("--u-bits", type=ints_in(lo, hi), default=16,
                        help=f"synaptic current width in bits, {lo} to {hi}, one or one per layer (default 16)")
    parser.add_argument("--frac-bits", type=ints_in(flo, fhi), default=8,
                        help=f"F, fraction bits of the decay factors, {flo} to {fhi}, one or per layer (default 8)")
    parser.add_argument("--decay", default="shift", type=_decays,
                        help="shift or multiply, one or one per layer (default shift)")
    parser.add_argument("--options", nargs="?", const=True, default=False, type=_switches,
                        help="build with contract v2's options logic (decay_round, input_shift, bias_to, u_overflow, "
                             "v_range, reset subtract_next; docs/boards.md gives its cost): every layer, or 0/1 per "
                             "layer like 1,0,0 (default: off)")
    parser.add_argument("--recurrent", nargs="?", const=True, default=False, type=_switches,
                        help="recurrent layers: each also takes its own spikes of the previous timestep (its crossbar "
                             "has n_in + n_out inputs): every layer, or 0/1 per layer like 1,0 (default: none)")
    parser.add_argument("--membranes", action="store_true", help="output the last layer's membranes too")
    parser.add_argument("--probes", action="store_true",
                        help="build the probes: every layer's spikes, membranes and currents on request (PROBE)")
    parser.add_argument("--bus-width", type=int, choices=BUS_WIDTHS, default=32,
                        help="AXI-Stream data width in bits, 32 or 64 (default 32)")


def config_from_args(args, *, default_sizes=DEFAULT_SIZES, default_lanes=DEFAULT_LANES,
                     default_chunk=DEFAULT_CHUNK) -> CoreConfig:
    """The CoreConfig the options describe (defaults fill what is not given: the default core).

    Given `--lanes` and `--chunk` are checked against the sizes first (`check_per_layer`); the
    defaults are capped at each layer's size, as `CoreConfig.build` does with one value."""
    sizes = tuple(default_sizes) if args.sizes is None else tuple(int(x) for x in str(args.sizes).split(","))
    recurrent = getattr(args, "recurrent", False)
    loops = list(recurrent) if isinstance(recurrent, list) else [recurrent] * (len(sizes) - 1)
    if len(loops) != len(sizes) - 1:
        raise OptionError(f"argument --recurrent: {len(loops)} values for {len(sizes) - 1} layers")
    ins = [n_in + n_out if loop else n_in for n_in, n_out, loop in zip(sizes, sizes[1:], loops)]  # crossbar inputs
    if args.lanes is not None:
        check_per_layer("--lanes", args.lanes, sizes[1:], what="outputs", limit=MAX_LANES)
    if args.chunk is not None:
        check_per_layer("--chunk", args.chunk, ins, what="inputs", limit=MAX_CHUNK)
    lanes = default_lanes if args.lanes is None else args.lanes
    chunk = default_chunk if args.chunk is None else args.chunk
    events = check_events(getattr(args, "events", None), ins, chunk)
    rows = [p * (c if e is None else e) for p, c, e in zip(_each(lanes, sizes[1:]), _each(chunk, ins),
                                                              events or [None] * (len(sizes) - 1))]
    if max(rows) > MAX_ROW_BITS:
        raise OptionError(f"arguments --lanes and --chunk: lanes x chunk = {max(rows)} weight bits per clock, "
                          f"at most {MAX_ROW_BITS}")
    decay = str(args.decay).split(",")
    return CoreConfig.build(
        sizes, lanes=lanes, chunk=chunk, events=events,
        v_bits=args.v_bits, u_bits=args.u_bits, frac_bits=args.frac_bits,
        decay=decay[0] if len(decay) == 1 else decay, options=getattr(args, "options", False), recurrent=recurrent,
        membranes=args.membranes, bus_width=args.bus_width,
        probes=bool(getattr(args, "probes", False)),
    )


def _each(value, caps) -> list[int]:
    """One value per layer: a list as it is, one value capped at each layer's size (as CoreConfig.build does)."""
    return list(value) if isinstance(value, (list, tuple)) else [min(value, c) for c in caps]


def config_args(config: CoreConfig) -> list[str]:
    """Options that rebuild `config` (inverse of `config_from_args`), for logs and READMEs."""
    def col(name):
        values = [getattr(layer, name) for layer in config.layers]
        return str(values[0]) if len(set(values)) == 1 else ",".join(map(str, values))

    args = ["--sizes", ",".join(map(str, config.sizes)), "--lanes", col("lanes"), "--chunk", col("chunk"),
            "--v-bits", col("v_bits"), "--u-bits", col("u_bits"), "--frac-bits", col("frac_bits"),
            "--decay", col("decay"), "--bus-width", str(config.bus_width)]
    if any(layer.events is not None for layer in config.layers):
        args += ["--events", col("events").replace("None", "0")]
    for option in ("options", "recurrent"):
        switches = [getattr(layer, option) for layer in config.layers]
        if all(switches):
            args.append(f"--{option}")
        elif any(switches):
            args += [f"--{option}", ",".join(str(int(on)) for on in switches)]
    return args + (["--membranes"] if config.membranes else []) + (["--probes"] if config.probes else [])
