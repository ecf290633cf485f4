"""The overlay package: a built PYNQ bitstream as a pip-installable Python distribution.

    python -m spikeloop.boards.overlay --board pynq-z2 --bitdir build/boards/pynq-z2 --out build/boards/pynq-z2/overlay

`assemble(bitdir, out, board=)` checks the folder `make bitstream` filled (`check_bitdir`), then writes
the source tree of the distribution `spikeloop-<board>` (e.g. `spikeloop-pynq-z2`):

    pyproject.toml                               dependency spikeloop[board] only; the entry point; package data
    README.md
    spikeloop_pynq_z2/__init__.py                OVERLAY_DIR, BITFILE, DESIGN_HASH, metadata()
    spikeloop_pynq_z2/overlays/__init__.py       the `pynq.overlays` entry point
    spikeloop_pynq_z2/overlays/spikeloop/        spikeloop.bit, spikeloop.hwh, spikeloop.json

PYNQ's convention: the `pynq.overlays` entry point names a package of overlay folders, and
`pynq.Overlay("spikeloop.bit")` (so `SpikeloopOverlay()` and `open_core("pynq")`) looks for
`<package>/spikeloop/spikeloop.bit` when the name is not a file in the working directory.
`build_wheel` then runs `pip wheel --no-deps --no-build-isolation` (when setuptools is installed);
the command line also puts the wheel of spikeloop itself (the driver and the notebooks, for
`spikeloop[board]`) beside it, so `dist/` holds everything the board installs.

Refused, with the file named: a folder without the .bit, the .hwh or spikeloop.json; a .bit
and .hwh of different base names; an empty .bit (the placeholder of the simulated board); a
.hwh without the spikeloop core; metadata for another board, or whose design hash is not the
hash of its configuration. The packaged spikeloop.json is the build's, completed with the
SHA-256 of the .bit and .hwh and, when Vivado ran by hand (reports/summary.txt but no Vivado
version in the metadata), the Vivado version, timing and utilization of that summary.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from spikeloop import regmap
from spikeloop.config import ConfigError, CoreConfig, design_hash

from .devices import BOARDS
from .vivado import VLNV, read_summary

__all__ = ["OVERLAY", "METADATA", "OverlayError", "distribution_name", "module_name", "check_bitdir", "assemble",
           "build_wheel", "main"]

#: The overlay's base name: the installed files are spikeloop.bit, spikeloop.hwh, spikeloop.json.
OVERLAY = "spikeloop"
#: The metadata written next to a bitstream by the board flows.
METADATA = f"{OVERLAY}.json"
ENTRY_POINT_GROUP = "pynq.overlays"


class OverlayError(ValueError):
    """The folder cannot be packaged as an overlay (the message names the file and the reason)."""


def distribution_name(board: str) -> str:
    """The distribution's name, e.g. `spikeloop-pynq-z2`."""
    return f"spikeloop-{board}"


def module_name(board: str) -> str:
    """The import name of the package, e.g. `spikeloop_pynq_z2`."""
    return distribution_name(board).replace("-", "_")


def _pynq_board(board: str):
    found = BOARDS.get(board)
    if found is None:
        raise OverlayError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    if found.flow != "vivado":
        pynq_boards = ", ".join(name for name, b in BOARDS.items() if b.flow == "vivado")
        raise OverlayError(f"board {board!r} is not a PYNQ board (no overlay package); PYNQ boards: {pynq_boards}")
    return found


def _config(params) -> CoreConfig:
    """The CoreConfig of the metadata's `config` (`CoreConfig.params()`), or ConfigError."""
    try:
        return CoreConfig.from_params(params)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"not a spikeloop configuration ({type(exc).__name__}: {exc})") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_bitdir(bitdir, *, board: str = "pynq-z2") -> tuple[Path, Path, dict]:
    """(.bit, .hwh, metadata) of a built overlay folder, or `OverlayError` saying what is wrong."""
    _pynq_board(board)
    bitdir = Path(bitdir)
    if not bitdir.is_dir():
        raise OverlayError(f"{bitdir} is not a folder (run make bitstream BOARD={board} first)")
    bits = sorted(bitdir.glob("*.bit"))
    if not bits:
        raise OverlayError(f"no .bit file in {bitdir} (expected {OVERLAY}.bit, written by Vivado)")
    if len(bits) > 1:
        raise OverlayError(f"{bitdir} holds {len(bits)} .bit files ({', '.join(p.name for p in bits)}); keep one")
    bit = bits[0]
    hwh = bit.with_suffix(".hwh")
    if not hwh.exists():
        others = sorted(p.name for p in bitdir.glob("*.hwh"))
        if others:
            raise OverlayError(f"{bit.name} and {', '.join(others)} have different base names in {bitdir}; "
                               f"pynq.Overlay needs {bit.stem}.hwh beside {bit.name}")
        raise OverlayError(f"{hwh} is missing (Vivado writes it beside {bit.name}; pynq.Overlay needs it)")
    if bit.stat().st_size == 0:
        raise OverlayError(f"{bit} is empty: a placeholder, not a bitstream")
    if VLNV not in hwh.read_text(errors="replace"):
        raise OverlayError(f"{hwh} names no spikeloop core ({VLNV}): the hardware description of another design")
    meta_path = bitdir / METADATA
    if not meta_path.exists():
        raise OverlayError(f"{meta_path} is missing (make bitstream writes it; it holds the design hash)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise OverlayError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or "config" not in meta or "design_hash" not in meta:
        raise OverlayError(f"{meta_path} has no 'config' and 'design_hash': not spikeloop overlay metadata")
    if meta.get("board") != board:
        raise OverlayError(f"{meta_path} describes a build for board {meta.get('board')!r}, not {board!r}")
    try:
        config = _config(meta["config"])
    except ConfigError as exc:
        raise OverlayError(f"{meta_path}: 'config' is invalid: {exc}") from None
    want = design_hash(config).hex()
    if meta["design_hash"] != want:
        raise OverlayError(
            f"{meta_path}: design_hash {str(meta['design_hash'])[:16]}... is not the hash of its configuration "
            f"({want[:16]}... with register map {'.'.join(map(str, regmap.VERSION))}); the metadata was edited or "
            "belongs to another spikeloop version: rebuild with make bitstream")
    recorded = meta.get("bitstream") or {}
    for path in (bit, hwh):
        if path.name in recorded and recorded[path.name] != _sha256(path):
            raise OverlayError(f"{path}: its SHA-256 differs from the one {meta_path.name} records; the file was "
                               "replaced after the build")
    return bit, hwh, meta


def _completed(meta: dict, bit: Path, hwh: Path, bitdir: Path, *, name: str, version: str) -> dict:
    """The metadata to install: the build's, plus file hashes, the package and a hand-run Vivado's summary."""
    meta = {**meta, "tools": dict(meta.get("tools") or {})}
    summary_path = bitdir / "reports" / "summary.txt"
    if not meta["tools"].get("vivado") and summary_path.exists():
        summary = read_summary(summary_path)
        meta["tools"]["vivado"] = summary.get("vivado", "")
        if "wns_ns" in summary:
            meta["timing"] = {"wns_ns": float(summary["wns_ns"])}
        meta["utilization"] = {k: summary[k] for k in ("lut", "ff", "bram", "dsp") if k in summary}
        meta["status"] = "built (Vivado run by hand; completed from reports/summary.txt)"
    meta["bitstream"] = {f"{OVERLAY}.bit": _sha256(bit), f"{OVERLAY}.hwh": _sha256(hwh)}
    meta["package"] = {"name": name, "version": version}
    return meta


def _spikeloop_version() -> str:
    try:
        return importlib.metadata.version("spikeloop")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0"


def assemble(bitdir, out, *, board: str = "pynq-z2") -> Path:
    """Write the overlay distribution's source tree to `out` (emptied first); returns `out`."""
    bit, hwh, meta = check_bitdir(bitdir, board=board)
    name, module = distribution_name(board), module_name(board)
    spikeloop_version = _spikeloop_version()
    version = f"{spikeloop_version}+{meta['design_hash'][:12]}"
    out = Path(out)
    source = Path(bitdir).resolve()
    if out.resolve() == source or out.resolve() in source.parents:
        raise OverlayError(f"the output folder {out} holds the build folder {bitdir}; write the package inside it")
    if out.exists() and any(out.iterdir()):
        marker = out / "pyproject.toml"
        if not (marker.exists() and _MARKER in marker.read_text()):
            raise OverlayError(f"{out} exists and is not an overlay package written here; remove it or choose another")
        shutil.rmtree(out)
    folder = out / module / "overlays" / OVERLAY
    folder.mkdir(parents=True)
    shutil.copyfile(bit, folder / f"{OVERLAY}.bit")
    shutil.copyfile(hwh, folder / f"{OVERLAY}.hwh")
    installed = _completed(meta, bit, hwh, Path(bitdir), name=name, version=version)
    (folder / METADATA).write_text(json.dumps(installed, indent=1, sort_keys=True) + "\n")
    sizes = "-".join(map(str, _config(meta["config"]).sizes))
    values = {"name": name, "module": module, "version": version, "board": board, "sizes": sizes,
              "hash": meta["design_hash"], "spikeloop": spikeloop_version, "overlay": OVERLAY,
              "group": ENTRY_POINT_GROUP}
    (out / "pyproject.toml").write_text(_PYPROJECT.format(**values))
    (out / "README.md").write_text(_README.format(**values))
    (out / module / "__init__.py").write_text(_INIT.format(**values))
    (out / module / "overlays" / "__init__.py").write_text(_OVERLAYS_INIT.format(**values))
    return out


def build_wheel(tree, dist=None) -> Path | None:
    """`pip wheel --no-deps --no-build-isolation` of the tree into `dist` (default `<tree>/dist`);
    the wheel's path, or None when setuptools is not installed here."""
    if importlib.util.find_spec("setuptools") is None:
        return None
    tree = Path(tree)
    dist = Path(dist) if dist is not None else tree / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dist) as tmp:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", tmp,
               str(tree)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode or len(wheels) != 1:
            raise RuntimeError(f"pip wheel failed (exit {proc.returncode}, {len(wheels)} wheels):\n"
                               f"{proc.stdout}{proc.stderr}")
        wheel = dist / wheels[0].name
        os.replace(wheels[0], wheel)  # replaces an earlier build of the same version
    return wheel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spikeloop.boards.overlay", description=__doc__.splitlines()[0])
    p.add_argument("--board", default="pynq-z2", help="a PYNQ board (pynq-z2)")
    p.add_argument("--bitdir", type=Path, default=None, help="the built folder (default build/boards/<board>)")
    p.add_argument("--out", type=Path, default=None, help="the source tree to write (default <bitdir>/overlay)")
    p.add_argument("--no-wheel", action="store_true", help="write the source tree only")
    p.add_argument("--source", type=Path, default=Path("."),
                   help="the spikeloop checkout whose wheel goes beside the overlay's (default: the working directory)")
    args = p.parse_args(argv)
    from .flow import BUILD

    bitdir = args.bitdir or BUILD / "boards" / args.board
    out = args.out or bitdir / "overlay"
    try:
        tree = assemble(bitdir, out, board=args.board)
        wheel = None if args.no_wheel else build_wheel(tree)
        checkout = (args.source / "pyproject.toml").is_file()
        driver = build_wheel(args.source, wheel.parent) if wheel is not None and checkout else None  # spikeloop
    except (OverlayError, RuntimeError) as e:
        print(f"make overlay: error: {e}", file=sys.stderr)
        return 2
    print(f"{tree} ({distribution_name(args.board)})")
    if wheel is not None and driver is not None:
        print(f"{driver}\n{wheel}\n  on the board (copy {wheel.parent}): pip install {driver.name} {wheel.name}")
    elif wheel is not None:
        print(f"{wheel}\n  on the board (copy {wheel.parent}): pip install spikeloop[board] {wheel.name}")
    elif not args.no_wheel:
        print("setuptools is not installed: no wheel built; pip install the folder on the board")
    return 0


_MARKER = "written by spikeloop.boards.overlay"
_PYPROJECT = """\
# The {board} overlay of spikeloop, written by spikeloop.boards.overlay (make overlay BOARD={board}).
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = "spikeloop overlay for the {board}: a {sizes} core, design {hash}"
readme = "README.md"
requires-python = ">=3.10"
dependencies = [
    "spikeloop[board]=={spikeloop}",  # the driver (numpy + pynq) that speaks this bitstream's register map
]

# pynq.Overlay("{overlay}.bit") finds {module}/overlays/{overlay}/{overlay}.bit through this entry point.
[project.entry-points."{group}"]
{name} = "{module}.overlays"

[tool.setuptools]
packages = ["{module}", "{module}.overlays"]

[tool.setuptools.package-data]
"{module}.overlays" = ["{overlay}/{overlay}.bit", "{overlay}/{overlay}.hwh", "{overlay}/{overlay}.json"]
"""

_README = """\
# {name}

The spikeloop overlay for the {board}: a {sizes} core, design hash `{hash}`.

    pip install {module}-*.whl spikeloop-{spikeloop}-*.whl     # on the board; numpy and pynq only

Then, in Python or a notebook on the board:

    from spikeloop.host import open_core
    core = open_core("pynq")          # finds {overlay}.bit through the {group} entry point

The driver compares `{overlay}.json`'s design hash with the core's HASH0..7 registers and refuses
a bitstream that is not the design the metadata describes.
"""

_INIT = '''\
"""The spikeloop overlay for the {board} ({sizes}, design {hash}).

    from spikeloop.host import open_core
    core = open_core("pynq")          # pynq finds {overlay}.bit through the {group} entry point
"""

import json
from pathlib import Path

#: The folder holding {overlay}.bit, {overlay}.hwh and {overlay}.json.
OVERLAY_DIR = Path(__file__).resolve().parent / "overlays" / "{overlay}"
BITFILE = OVERLAY_DIR / "{overlay}.bit"
DESIGN_HASH = "{hash}"


def metadata() -> dict:
    """The build's metadata ({overlay}.json): configuration, design hash, tool versions, reports."""
    return json.loads((OVERLAY_DIR / "{overlay}.json").read_text())
'''

_OVERLAYS_INIT = '''\
"""The overlay folders of {name}, found by pynq through the {group} entry point."""
'''


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
