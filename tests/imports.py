"""The package's import graph, read from the source (nothing is imported), and the rule it must keep.

Rooms are the folders that `pyproject.toml` maps to packages: the contract (`spikeloop/`, numpy
only, also on the board), `app/` (command line, demo), `quant/`, `rtl/`, `sim/`, `host/`, `boards/`.
Imports flow one way (docs/architecture.md):

    contract <- rtl <- sim <- host;   quant -> contract;   boards -> rtl, contract;   app -> any

A module-level or function-level `import` counts alike; text inside strings does not.

    python tests/imports.py            # the rooms' graph as a Mermaid block (docs/architecture.md holds it)
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Room -> the rooms it may import from (itself always allowed).
ALLOWED = {
    "contract": set(),
    "rtl": {"contract"},
    "sim": {"rtl", "contract"},
    "host": {"sim", "rtl", "contract"},
    "quant": {"contract"},
    "boards": {"rtl", "contract"},
    "app": {"contract", "rtl", "sim", "host", "quant", "boards"},
}

#: Third-party packages a room must never import (the contract and the host run on a PYNQ board).
FORBIDDEN = {
    "contract": {"torch", "amaranth", "cocotb", "pynq", "serial", "matplotlib"},
    "host": {"torch", "amaranth", "cocotb"},
    "rtl": {"torch", "cocotb", "pynq"},
    "sim": {"torch", "cocotb"},
}


def rooms() -> dict[str, Path]:
    """Room name -> folder, from pyproject.toml's package-dir (the notebooks folder is no code)."""
    line = re.search(r"^package-dir = \{(.*)\}$", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    out = {}
    for package, folder in re.findall(r'"([\w.]+)" = "([\w/]+)"', line):
        if package == "spikeloop.notebooks":
            continue
        out["contract" if package == "spikeloop" else package.split(".", 1)[1]] = ROOT / folder
    return out


def room_of(module: str) -> str | None:
    """The room of a `spikeloop...` module name, None for anything else."""
    parts = module.split(".")
    if parts[0] != "spikeloop":
        return None
    if len(parts) > 1 and parts[1] in ALLOWED and parts[1] != "contract":
        return parts[1]
    return "contract"


def _module_name(room: str, folder: Path, path: Path) -> str:
    rel = path.relative_to(folder).with_suffix("").parts
    rel = rel[:-1] if rel[-1] == "__init__" else rel
    base = ["spikeloop"] if room == "contract" else ["spikeloop", room]
    return ".".join(base + list(rel))


def modules() -> dict[str, tuple[str, Path]]:
    """Module name -> (room, file) for every Python file of the package."""
    found = {}
    for room, folder in rooms().items():
        for path in sorted(folder.rglob("*.py")):
            found[_module_name(room, folder, path)] = (room, path)
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            out += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]  # `from pkg import module`
    return out


def edges() -> list[tuple[str, str, str, int]]:
    """(from room, to room or third-party top name, file, line) for every import."""
    known = modules()
    out = set()
    for name, (room, path) in known.items():
        for target, line in imports_of(name, path):
            to = room_of(target)
            if to is None:
                to = "3rd:" + target.split(".")[0]
            elif target not in known and target.rpartition(".")[0] not in known:
                to = "missing:" + target
            out.add((room, to, str(path.relative_to(ROOT)), line))
    return sorted(out)


def violations(found=None) -> list[str]:
    """Every import against the flow, and every forbidden third-party import, as 'file:line: why'
    (of `found`, edges as `edges()` gives them, by default the package's own)."""
    bad = []
    for src, dst, file, line in edges() if found is None else found:
        if dst.startswith("missing:"):
            bad.append(f"{file}:{line}: {src} imports {dst[8:]}, which is no module of the package")
        elif dst.startswith("3rd:"):
            if dst[4:] in FORBIDDEN.get(src, ()):
                bad.append(f"{file}:{line}: {src} imports {dst[4:]}")
        elif dst != src and dst not in ALLOWED[src]:
            bad.append(f"{file}:{line}: {src} imports {dst} (allowed: {', '.join(sorted(ALLOWED[src])) or 'nothing'})")
    return bad


def room_graph(found=None) -> dict[str, set[str]]:
    """Room -> the other rooms it imports (of `found`, by default the package's own edges)."""
    graph = defaultdict(set)
    for src, dst, _, _ in edges() if found is None else found:
        if dst in ALLOWED and dst != src:
            graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of rooms found by a depth-first walk (empty when imports flow one way)."""
    found, path = [], []

    def visit(room):
        if room in path:
            found.append(path[path.index(room):] + [room])
            return
        path.append(room)
        for nxt in sorted(graph.get(room, ())):
            visit(nxt)
        path.pop()

    for room in sorted(graph):
        visit(room)
    return found


def mermaid() -> str:
    """The rooms' import graph as a Mermaid flowchart (an arrow points from importer to imported)."""
    lines = ["```mermaid", "flowchart BT"]
    labels = {"contract": "spikeloop/ (contract)", "app": "app/", "quant": "quant/", "rtl": "rtl/",
              "sim": "sim/", "host": "host/", "boards": "boards/"}
    for room in ALLOWED:
        lines.append(f'    {room}["{labels[room]}"]')
    graph = room_graph()
    for src in ALLOWED:
        for dst in sorted(graph.get(src, ())):
            lines.append(f"    {src} --> {dst}")
    lines.append("```")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(mermaid())
