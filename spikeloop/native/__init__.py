"""Native code compiled on first use, loaded with ctypes.

`load_library(name, sources)` compiles C (or C++) sources into a shared library with the
toolchain's build plan (`spikeloop.toolchain.BuildPlan`): cached in `cache_dir("native")` under a
key over the sources, headers named in `depends`, the compiler and its version, the flags and the
platform; a second call, or a second process, loads the cached library without compiling.

No compiler, a failing build or `SPIKELOOP_NATIVE=0` in the environment raise
`NativeUnavailable` (a `NativeBuildError` carries the compiler's output and log); callers fall back
to pure Python / numpy code and warn. Nothing here imports torch.

Environment: `CC` / `CXX` (the compiler, see `spikeloop.toolchain.find`), `SPIKELOOP_CACHE_DIR`
(the cache, see `spikeloop.toolchain.cache_dir`), `SPIKELOOP_NATIVE=0` (never compile nor load).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import os
import platform
import sys
import tempfile
import threading
from pathlib import Path

from spikeloop import toolchain

__all__ = ["NativeBuildError", "NativeUnavailable", "build_library", "load_library", "native_enabled"]

_BUILD_SCHEME = "2"  # bump to invalidate every cached library
_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL] = {}


class NativeUnavailable(RuntimeError):
    """Native code cannot be used here (disabled, no compiler, or the build failed)."""


class NativeBuildError(NativeUnavailable):
    """The compiler ran and failed; `.command`, `.output` and `.log` tell how."""

    def __init__(self, message: str, command=None, output: str = "", log=None):
        super().__init__(message)
        self.command, self.output, self.log = command, output, log


def native_enabled() -> bool:
    """False when the environment says `SPIKELOOP_NATIVE=0` (or off/no/false)."""
    return os.environ.get("SPIKELOOP_NATIVE", "1").strip().lower() not in ("0", "off", "no", "false")


def _suffix() -> str:
    return ".dylib" if sys.platform == "darwin" else (".dll" if os.name == "nt" else ".so")


def build_library(name: str, sources, *, cflags=None, extra_flags=(), ldflags=(), include_dirs=(), depends=(),
                  cplusplus: bool | None = None, timeout: float = 600.0) -> Path:
    """Compile `sources` (paths or package resources) into a shared library; return its cached path.

    `cflags` replaces the default optimization flags (`-O3`); `-fPIC -shared` are always passed.
    `extra_flags` are added after them, `ldflags` after the sources. Files in `depends` (headers)
    are part of the key but not compiled. `cplusplus` defaults to True when a source ends in
    .cc/.cpp/.cxx. Raises `NativeUnavailable` / `NativeBuildError`.
    """
    if not native_enabled():
        raise NativeUnavailable("native code is disabled by SPIKELOOP_NATIVE=0")
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if cplusplus is None:
        cplusplus = any(Path(str(s)).suffix in (".cc", ".cpp", ".cxx", ".C") for s in sources)
    try:
        compiler = toolchain.find("c++" if cplusplus else "cc")
        flags = [*(cflags if cflags is not None else ["-O3"]), "-fPIC", "-shared", *extra_flags,
                 *(f"-I{d}" for d in include_dirs)]
        library = f"{name}{_suffix()}"

        def build(folder: Path) -> None:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=_suffix(), dir=folder)
            os.close(fd)
            try:
                with _real_paths(sources) as paths:
                    toolchain.run([*compiler.argv, *flags, *paths, "-o", tmp, *ldflags], log=folder / "build.log",
                                  what=f"building {name}", timeout=timeout)
                os.replace(tmp, folder / library)  # atomic: a library being loaded is never half-written
            finally:
                Path(tmp).unlink(missing_ok=True)

        plan = toolchain.BuildPlan("native", name, {
            "scheme": _BUILD_SCHEME, "platform": [sys.platform, platform.machine()],
            "compiler": [*compiler.argv, compiler.version()], "flags": flags, "ldflags": [str(f) for f in ldflags],
            "sources": [_key_input(s) for s in sources], "depends": [_key_input(d) for d in depends],
        }, build, products=(library,))
        return plan.execute() / library
    except toolchain.ToolFailed as exc:
        raise NativeBuildError(str(exc), exc.command, exc.output, exc.log) from exc
    except toolchain.ToolchainError as exc:
        raise NativeUnavailable(str(exc)) from exc


def _key_input(source):
    """A source as a content-key input: a Path for a path, the resource itself for a package resource."""
    return Path(source) if isinstance(source, str) else source


@contextlib.contextmanager
def _real_paths(sources):
    """The sources as real file paths for the compiler (package resources through importlib.resources)."""
    with contextlib.ExitStack() as stack:
        yield [str(s) if isinstance(s, (str, Path)) else str(stack.enter_context(importlib.resources.as_file(s)))
               for s in sources]


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
