"""Verilog of a core configuration, written under build/ with a manifest.

    python -m spikeloop.rtl.verilog --sizes 784,256,128,10 --lanes 16 --chunk 64 --out build/verilog

writes `<out>/spikeloop_core.v` (module `spikeloop_core`: `aclk`, `aresetn`, `s_axis_*`,
`m_axis_*`, `s_axi_*`) and `<out>/spikeloop_core.json` (the configuration, its design hash,
the address width and the port list), which the simulated board and the board flows read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from amaranth.back import verilog

from spikeloop import regmap
from spikeloop.regmap import CoreConfig

from .common import check_type
from .top import CoreTop, axi_members

__all__ = ["MODULE", "generate", "manifest", "main"]

#: Name of the generated top module.
MODULE = "spikeloop_core"


def manifest(config: CoreConfig) -> dict:
    """What a consumer of the Verilog needs to know without parsing it."""
    return {
        "module": MODULE,
        "config": config.params(),
        "design_hash": regmap.design_hash(config).hex(),
        "regmap_version": list(regmap.VERSION),
        "address_bits": regmap.address_bits(config),
        "words_in": regmap.words_per_timestep(config.n_in, config.bus_width),
        "words_out": regmap.output_words_per_timestep(config),
        "ports": ["aclk", "aresetn", *axi_members(config)],
    }


def generate(config: CoreConfig, out_dir) -> Path:
    """Write `<out_dir>/spikeloop_core.v` and its manifest; returns the Verilog path.

    Files are rewritten only when their content changes, so make-style timestamps stay useful.
    """
    check_type("config", config, CoreConfig)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(CoreTop(config=config), name=MODULE, emit_src=False)
    path = out / f"{MODULE}.v"
    for target, content in ((path, text), (out / f"{MODULE}.json", json.dumps(manifest(config), indent=1) + "\n")):
        if not target.exists() or target.read_text() != content:
            target.write_text(content)
    return path


def _ints(text: str) -> list[int] | int:
    values = [int(x) for x in text.split(",")]
    return values[0] if len(values) == 1 else values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikeloop.rtl.verilog", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", required=True, help="n_in,n_out0,n_out1,... e.g. 784,256,128,10")
    parser.add_argument("--lanes", default="1", help="P, one value or one per layer")
    parser.add_argument("--chunk", default="32", help="C, one value or one per layer")
    parser.add_argument("--v-bits", default="16")
    parser.add_argument("--u-bits", default="16")
    parser.add_argument("--frac-bits", default="8")
    parser.add_argument("--decay", default="shift", help="shift or multiply, one or one per layer")
    parser.add_argument("--membranes", action="store_true", help="output the last layer's membranes too")
    parser.add_argument("--bus-width", type=int, default=32)
    parser.add_argument("--out", default="build/verilog")
    args = parser.parse_args(argv)
    decay = args.decay.split(",")
    config = CoreConfig.build(
        [int(x) for x in args.sizes.split(",")], lanes=_ints(args.lanes), chunk=_ints(args.chunk),
        v_bits=_ints(args.v_bits), u_bits=_ints(args.u_bits), frac_bits=_ints(args.frac_bits),
        decay=decay[0] if len(decay) == 1 else decay, membranes=args.membranes, bus_width=args.bus_width,
    )
    path = generate(config, args.out)
    print(f"{path} (design hash {regmap.design_hash(config).hex()[:16]}...)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
