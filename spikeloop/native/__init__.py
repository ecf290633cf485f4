"""Native code compiled on first use, loaded with ctypes.

A small, reusable build-and-load helper: `load_library(name, sources)` compiles C (or C++)
sources with the system compiler into a shared library, caches it under a user cache
directory keyed by a hash of everything that goes into the build (sources, headers named in
`depends`, compiler and its version, flags, platform), and loads it with `ctypes.CDLL`.
A second call, or a second process, finds the cached library and loads it without compiling.

No compiler, a failing build or `SPIKELOOP_NATIVE=0` in the environment raise
`NativeUnavailable` (a `NativeBuildError` carries the compiler's output); callers fall back to
pure Python / numpy code and warn. Nothing here imports torch.

Environment:
- `CC` / `CXX`: the compiler (may include arguments), else the first of cc, gcc, clang
  (c++, g++, clang++ for C++) on PATH;
- `SPIKELOOP_CACHE_DIR`: where built libraries go, else `$XDG_CACHE_HOME/spikeloop/native`
  (`~/.cache/spikeloop/native`), or a per-user temporary directory if that is not writable;
- `SPIKELOOP_NATIVE=0`: never compile nor load native code.

Used by `spikeloop.golden` (the golden-model kernel, `golden_kernel.c`); the Verilator harness
of the simulated board is meant to be built the same way.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

__all__ = [
    "NativeBuildError",
    "NativeUnavailable",
    "build_library",
    "cache_dir",
    "find_compiler",
    "load_library",
    "native_enabled",
]

HERE = Path(__file__).resolve().parent
_BUILD_SCHEME = "1"  # bump to invalidate every cached library
_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL] = {}
_versions: dict[tuple[str, ...], str] = {}


class NativeUnavailable(RuntimeError):
    """Native code cannot be used here (disabled, no compiler, or the build failed)."""


class NativeBuildError(NativeUnavailable):
    """The compiler ran and failed; `.command` and `.output` tell how."""

    def __init__(self, message: str, command: list[str] | None = None, output: str = ""):
        super().__init__(message + (f"\n{output.strip()}" if output.strip() else ""))
        self.command = command
        self.output = output


def native_enabled() -> bool:
    """False when the environment says `SPIKELOOP_NATIVE=0` (or off/no/false)."""
    return os.environ.get("SPIKELOOP_NATIVE", "1").strip().lower() not in ("0", "off", "no", "false")


def find_compiler(cplusplus: bool = False) -> list[str] | None:
    """The compiler command as an argument list (`$CC`/`$CXX` first), or None when none is found."""
    env = os.environ.get("CXX" if cplusplus else "CC", "").strip()
    if env:
        argv = shlex.split(env)
        if argv and shutil.which(argv[0]):
            return [shutil.which(argv[0]), *argv[1:]]
        return None
    for name in ("c++", "g++", "clang++") if cplusplus else ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def cache_dir() -> Path:
    """The directory holding built libraries (created if needed)."""
    candidates = []
    if os.environ.get("SPIKELOOP_CACHE_DIR"):
        candidates.append(Path(os.environ["SPIKELOOP_CACHE_DIR"]))
    else:
        if sys.platform == "darwin":
            base = Path.home() / "Library" / "Caches"
        elif os.name == "nt":
            base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        else:
            base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        candidates.append(base / "spikeloop" / "native")
    user = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
    candidates.append(Path(tempfile.gettempdir()) / f"spikeloop-{user}" / "native")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    raise NativeUnavailable(f"no writable cache directory among {', '.join(map(str, candidates))}")


def _compiler_version(compiler: list[str]) -> str:
    key = tuple(compiler)
    if key not in _versions:
        try:
            res = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=60)
            _versions[key] = res.stdout + res.stderr
        except (OSError, subprocess.SubprocessError) as exc:
            _versions[key] = f"unknown: {exc}"
    return _versions[key]


def _suffix() -> str:
    return ".dylib" if sys.platform == "darwin" else (".dll" if os.name == "nt" else ".so")


def build_library(
    name: str,
    sources,
    *,
    cflags=None,
    extra_flags=(),
    ldflags=(),
    include_dirs=(),
    depends=(),
    cplusplus: bool | None = None,
    timeout: float = 600.0,
) -> Path:
    """Compile `sources` into a shared library in the cache directory; return its path.

    `cflags` replaces the default optimization flags (`-O3`); `-fPIC -shared` are always
    passed. `extra_flags` are added after them, `ldflags` after the sources. Files in
    `depends` (headers) are hashed into the cache key but not compiled. `cplusplus` defaults to
    True when a source ends in .cc/.cpp/.cxx. Raises `NativeUnavailable` / `NativeBuildError`.
    """
    if not native_enabled():
        raise NativeUnavailable("native code is disabled by SPIKELOOP_NATIVE=0")
    sources = [Path(s).resolve() for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    depends = [Path(d).resolve() for d in depends]
    if cplusplus is None:
        cplusplus = any(s.suffix in (".cc", ".cpp", ".cxx", ".C") for s in sources)
    compiler = find_compiler(cplusplus)
    if compiler is None:
        which = "CXX / c++ / g++ / clang++" if cplusplus else "CC / cc / gcc / clang"
        raise NativeUnavailable(f"no {'C++' if cplusplus else 'C'} compiler found ({which})")
    opt = list(cflags) if cflags is not None else ["-O3"]
    flags = [*opt, "-fPIC", "-shared", *extra_flags, *(f"-I{d}" for d in include_dirs)]
    digest = hashlib.sha256()
    for part in (
        _BUILD_SCHEME, sys.platform, os.uname().machine if hasattr(os, "uname") else "",
        " ".join(compiler), _compiler_version(compiler), "\0".join(flags), "\0".join(map(str, ldflags)),
    ):
        digest.update(part.encode() + b"\0")
    for path in (*sources, *depends):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError as exc:
            raise NativeUnavailable(f"cannot read {path}: {exc}") from exc
    out_dir = cache_dir()
    target = out_dir / f"{name}-{digest.hexdigest()[:20]}{_suffix()}"
    if target.exists():
        return target
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=_suffix(), dir=out_dir)
    os.close(fd)
    command = [*compiler, *flags, *map(str, sources), "-o", tmp, *ldflags]
    try:
        res = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NativeBuildError(f"building {name} failed: {exc}", command) from exc
    if res.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise NativeBuildError(f"building {name} failed (exit {res.returncode}): {shlex.join(command)}",
                               command, res.stdout + res.stderr)
    os.replace(tmp, target)  # atomic: concurrent builders (pytest-xdist) each install a whole file
    return target


def load_library(name: str, sources, **build_options) -> ctypes.CDLL:
    """Build (or find in the cache) and load a shared library; the same object on later calls.

    `name` names the library in the cache; `sources` and `build_options` are those of
    `build_library`. Raises `NativeUnavailable` (or its subclass `NativeBuildError`).
    """
    with _lock:
        path = build_library(name, sources, **build_options)
        key = str(path)
        if key not in _loaded:
            try:
                _loaded[key] = ctypes.CDLL(key)
            except OSError as exc:
                raise NativeUnavailable(f"cannot load {path}: {exc}") from exc
        return _loaded[key]
