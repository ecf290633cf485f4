"""The core-configuration options every command shares (`spikeloop verilog`, `estimate`, `make bitstream`).

`--sizes --lanes --chunk --v-bits --u-bits --frac-bits --decay --membranes --bus-width`, so one
`CONFIG=...` works for `make verilog`, `make estimate` and `make bitstream`.
"""

from __future__ import annotations

import argparse

from spikeloop.config import DEFAULT_CHUNK, DEFAULT_LANES, DEFAULT_SIZES, CoreConfig

__all__ = ["add_config_arguments", "config_from_args", "config_args", "int_or_list"]


def int_or_list(text: str) -> int | list[int]:
    """'16' -> 16, '3,2' -> [3, 2] (one value per layer); an argparse type."""
    return _ints(text)


def _ints(text: str) -> int | list[int]:
    try:
        values = [int(x) for x in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def add_config_arguments(parser: argparse.ArgumentParser, *, sizes_required: bool = False) -> None:
    """Add the configuration options to `parser`."""
    parser.add_argument("--sizes", required=sizes_required, default=None,
                        help="n_in,n_out0,n_out1,... e.g. 784,256,128,10 (default: the board's)")
    parser.add_argument("--lanes", type=_ints, default=None, help="P, one value or one per layer")
    parser.add_argument("--chunk", type=_ints, default=None, help="C, one value or one per layer")
    parser.add_argument("--v-bits", type=_ints, default=16)
    parser.add_argument("--u-bits", type=_ints, default=16)
    parser.add_argument("--frac-bits", type=_ints, default=8)
    parser.add_argument("--decay", default="shift", help="shift or multiply, one or one per layer")
    parser.add_argument("--membranes", action="store_true", help="output the last layer's membranes too")
    parser.add_argument("--bus-width", type=int, default=32)


def config_from_args(args, *, default_sizes=DEFAULT_SIZES, default_lanes=DEFAULT_LANES,
                     default_chunk=DEFAULT_CHUNK) -> CoreConfig:
    """The CoreConfig the options describe (defaults fill what is not given: the default core)."""
    sizes = default_sizes if args.sizes is None else [int(x) for x in str(args.sizes).split(",")]
    decay = str(args.decay).split(",")
    return CoreConfig.build(
        sizes, lanes=default_lanes if args.lanes is None else args.lanes,
        chunk=default_chunk if args.chunk is None else args.chunk,
        v_bits=args.v_bits, u_bits=args.u_bits, frac_bits=args.frac_bits,
        decay=decay[0] if len(decay) == 1 else decay, membranes=args.membranes, bus_width=args.bus_width,
    )


def config_args(config: CoreConfig) -> list[str]:
    """Options that rebuild `config` (inverse of `config_from_args`), for logs and READMEs."""
    def col(name):
        values = [getattr(layer, name) for layer in config.layers]
        return str(values[0]) if len(set(values)) == 1 else ",".join(map(str, values))

    args = ["--sizes", ",".join(map(str, config.sizes)), "--lanes", col("lanes"), "--chunk", col("chunk"),
            "--v-bits", col("v_bits"), "--u-bits", col("u_bits"), "--frac-bits", col("frac_bits"),
            "--decay", col("decay"), "--bus-width", str(config.bus_width)]
    return args + (["--membranes"] if config.membranes else [])
