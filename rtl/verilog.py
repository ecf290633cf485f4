"""Verilog of a core configuration, written under build/ with a manifest.

    spikeloop verilog --sizes 784,256,128,10 --lanes 16 --chunk 64 --out build/verilog

writes `<out>/spikeloop_core.v` (module `spikeloop_core`: `aclk`, `aresetn`, `s_axis_*`,
`m_axis_*`, `s_axi_*`) and `<out>/spikeloop_core.json` (the configuration, its design hash,
the address width and the port list), which the simulated board and the board flows read.
"""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from spikeloop import regmap
from spikeloop.config import CoreConfig, design_hash
from spikeloop.overlay import MODULE
from spikeloop.stream import output_words_per_timestep, words_per_timestep

from .common import check_type
from .top import CoreTop, axi_members

__all__ = ["MODULE", "generate", "manifest"]



def manifest(config: CoreConfig) -> dict:
    """What a consumer of the Verilog needs to know without parsing it."""
    return {
        "module": MODULE,
        "config": config.params(),
        "design_hash": design_hash(config).hex(),
        "regmap_version": list(regmap.VERSION),
        "address_bits": regmap.address_bits(config),
        "words_in": words_per_timestep(config.n_in, config.bus_width),
        "words_out": output_words_per_timestep(config),
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
