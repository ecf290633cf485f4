"""NIR in and out: the Neuromorphic Intermediate Representation <-> a contract `Network`.

`from_nir` imports a NIR graph (as snnTorch's `export_to_nir` or Norse's `to_nir` write them)
into a `spikeloop.network.Network`; `to_nir` writes a `Network` as a NIR graph; `model_to_nir`
exports a trained `BinarySNN` first; ``to_nir(reader=...)`` writes for snnTorch's or Norse's own
NIR reader and refuses what that reader cannot express. The discrete-time fixed-point profile that both follow
(what one timestep is, how a time constant becomes ``lam``/``alpha``, how thresholds and
biases become integers, the reset order) is docs/nir.md; this module implements that text.

Supported graphs are chains ``Input -> [Flatten] -> (Linear | Affine) -> (LIF | CubaLIF | IF)
-> ... -> Output``; a neuron node may feed its spikes back to itself through one Linear/Affine node
(a recurrent layer, flat or as a NIRGraph subgraph, as snnTorch's RLeaky writes it). Weights must be
exactly +/-1 unless ``binarize=True``. Anything else (self-only, sparse or cross-layer recurrence
included) is refused with `NIRError` naming the node and what was expected there. `agreement` runs the golden
model of an imported graph on the input spikes a source framework was recorded with and compares
the output spikes (`spikeloop nir agree`).

This module needs `nir` (and numpy), not torch; `model_to_nir` imports torch when called.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spikeloop.network import (
    FRAC_BITS_RANGE,
    INPUT_SHIFT_RANGE,
    OPTION_DEFAULTS,
    RESETS,
    ROUNDINGS,
    Layer,
    Network,
    NetworkError,
)

PROFILE = "spikeloop-fxp/2"
DEFAULT_DT = 1e-4  # seconds per timestep: snnTorch's export convention
NORSE_DT = 1e-3  # Norse's default dt, which its to_nir also writes into every time constant
#: Where a graph comes from: "nir" reads NIR's equations; "norse" reads what Norse 1.1.0's to_nir writes
#: (tau = dt / tau_mem_inv; a CubaLIF's input enters its current with gain w_in, without dt / tau_syn).
SOURCES = ("nir", "norse")
#: The contract settings a graph from a float simulator (no spikeloop metadata) gets unless told: the ones that
#: agree best with snnTorch and Norse on the fixtures (docs/nir.md, "Agreement with the source").
FLOAT_DEFAULTS = {"frac_bits": 16, "input_shift": 12, "decay_round": "nearest"}
DEFAULT_BITS = 16  # v_bits (and u_bits) in weight units: the default width is DEFAULT_BITS + input_shift
SNAP = 1e-6  # relative distance within which a stored real is taken as the nearby grid value
META = "spikeloop_"  # prefix of the metadata keys spikeloop writes on its nodes and graph

SYNAPSES = ("Linear", "Affine")
NEURON_NODES = ("LIF", "CubaLIF", "IF")


#: The reset source of a layer whose graph says nothing of the reset kind (NIR's reset to v_reset = 0).
RESET_UNSAID = "NIR reset to v_reset = 0"
RESET_NORSE = "Norse resets to v_reset"


class NIRError(ValueError):
    """A NIR graph cannot be imported or a network cannot be exported under the profile."""


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover - nir is part of the train extra
        raise NIRError("NIR support needs the 'nir' package: pip install spikeloop[train]") from e
    return nir


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class NIRLayerReport:
    """How one (synapse, neuron) node pair became a contract layer."""

    index: int
    synapse: str  # node names
    neuron: str
    node_type: str  # "LIF", "CubaLIF" or "IF"
    kind: str  # contract neuron: "lif" or "cuba"
    reset: str
    reset_source: str
    lam: int
    lam_real: float  # 2^F * (decay per step) before rounding (0 for IF)
    alpha: int
    alpha_real: float
    gain: tuple[float, float]  # (min, max) of the input gain folded into theta
    scale: tuple[float, float] | None  # binarization scales (min, max), None when weights were +/-1
    theta: tuple[int, int]
    bias_changed: int
    bias_max_abs: float  # largest |integer - real| of the bias in contract units (2^-k weights)
    decay_round: str = OPTION_DEFAULTS["decay_round"]
    input_shift: int = OPTION_DEFAULTS["input_shift"]
    silent: int = 0  # neurons whose threshold no input can reach (binarize)
    recurrent: str | None = None  # the recurrent weight node of a recurrent layer

    def __str__(self) -> str:
        lines = [
            (f"layer {self.index}: {self.synapse} -> {self.neuron} ({self.node_type} -> {self.kind}, "
             f"reset={self.reset} [{self.reset_source}])"),
            f"  lam = {self.lam} (2^F dt/tau = {self.lam_real:.6g})"
            + (f", alpha = {self.alpha} (2^F dt/tau_syn = {self.alpha_real:.6g})" if self.kind == "cuba" else "")
            + f", decay_round = {self.decay_round}, input_shift = {self.input_shift}",
            f"  input gain in [{self.gain[0]:.6g}, {self.gain[1]:.6g}], theta in [{self.theta[0]}, {self.theta[1]}]",
            f"  bias: {self.bias_changed} rounded, max |d| = {self.bias_max_abs:.3g}",
        ]
        if self.recurrent is not None:
            lines.append(f"  recurrent: {self.recurrent} (all-to-all, the layer's own spikes of the previous step)")
        if self.scale is not None:
            lo, hi = self.scale
            row = "W" if self.recurrent is None else "[W | R]"
            lines.append(f"  binarized: sign({row}), scale mean|{row}| per neuron in [{lo:.6g}, {hi:.6g}] (in theta, "
                         "bias)")
        return "\n".join(lines)


@dataclass(frozen=True)
class NIRReport:
    """What `from_nir` did: the profile's settings and one entry per layer."""

    dt: float
    frac_bits: int
    layers: tuple[NIRLayerReport, ...]
    producer: str
    source: str = "nir"
    notes: tuple[str, ...] = ()  # further warnings (a binarized network that stays silent on a probe)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the import had to assume (a reset kind the graph does not say) or found doubtful."""
        found = []
        guessed = [layer.index for layer in self.layers if layer.reset_source == RESET_UNSAID]
        if guessed:
            found.append(
                f"the graph does not say which reset layer(s) {', '.join(map(str, guessed))} use (NIR has no field "
                "for it, and snnTorch writes v_reset = 0 for its subtract reset too): imported as 'zero'; if the "
                "source network subtracts the threshold, import with --reset: snnTorch's Leaky (reset_mechanism "
                "'subtract', its default) takes the threshold off at the next step after the decay, which is "
                "reset='subtract_next' (spikeloop nir import --reset subtract_next)")
        for layer in self.layers:
            if layer.silent:
                found.append(f"layer {layer.index} ({layer.neuron}): {layer.silent} neuron(s) can never fire (theta "
                             "above the largest membrane any input reaches)")
        return (*found, *self.notes)

    def __str__(self) -> str:
        head = (f"NIR import ({PROFILE}, dt = {self.dt:g} s, F = {self.frac_bits}, graph from {self.producer}, "
                f"read as {self.source})")
        return "\n".join([head, *(str(layer) for layer in self.layers), *(f"warning: {w}" for w in self.warnings)])


class Imported(NamedTuple):
    """The result of `from_nir`."""

    network: Network
    report: NIRReport


# ---------------------------------------------------------------------------------------------
# Small helpers


def _meta_value(value):
    """A metadata value as read back from HDF5 (bytes, numpy scalars) as a plain Python value."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf8")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _meta(node, key: str, default=None):
    metadata = getattr(node, "metadata", None)
    if not isinstance(metadata, dict) or META + key not in metadata:
        return default
    return _meta_value(metadata[META + key])


def _snap(x: np.ndarray, unit: float = 1.0) -> np.ndarray:
    """Values within SNAP (relative, at most unit/8) of a multiple of `unit` become that multiple
    (NIR files often hold float32, so an exact 2 may come back as 2.0000001)."""
    grid = np.rint(x / unit) * unit
    close = np.abs(x - grid) <= np.minimum(SNAP * np.maximum(1.0, np.abs(x)), unit / 8)
    return np.where(close & np.isfinite(x), grid, x)


def _round_half_even(x: np.ndarray) -> np.ndarray:
    """Round half to even after snapping to the half-integer grid."""
    return np.rint(_snap(x, 0.5))


def _param(name: str, node, field: str, n: int) -> np.ndarray:
    """A node's per-neuron parameter as float64 [n] (scalars broadcast); refuses NaN and bad shapes."""
    value = getattr(node, field, None)
    if value is None:
        raise NIRError(f"node '{name}': field '{field}' is missing")
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 1:
        arr = np.full(n, float(arr.reshape(-1)[0]))
    arr = arr.reshape(-1) if arr.ndim > 1 and arr.size == n else arr
    if arr.shape != (n,):
        raise NIRError(f"node '{name}': {field} has shape {np.shape(value)}, expected [{n}] (one per neuron)")
    if np.isnan(arr).any():
        raise NIRError(f"node '{name}': {field}[{int(np.flatnonzero(np.isnan(arr))[0])}] is NaN")
    return arr


def _first_bad(name: str, field: str, arr: np.ndarray, bad: np.ndarray, expected: str) -> NIRError:
    j = int(np.flatnonzero(bad)[0])
    return NIRError(f"node '{name}': {field}[{j}] = {arr[j]:.8g}, expected {expected}")


def _step(dt: float, source: str) -> float:
    """The numerator of the decay per step: dt (NIR: dt / tau), dt^2 for Norse 1.1.0 (dt * dt / tau)."""
    return dt * dt if source == "norse" else dt


def _decay(name: str, field: str, tau: np.ndarray, dt: float, source: str) -> np.ndarray:
    """The fraction lost per step, per neuron (0 for tau = inf): dt / tau (NIR), or dt * dt / tau for a graph
    from Norse 1.1.0, whose to_nir writes tau = dt / tau_inv while its cells decay by dt * tau_inv per step.
    Refuses tau <= 0 and decays above 1."""
    bad = ~(tau > 0)
    if bad.any():
        raise _first_bad(name, field, tau, bad, "a positive time constant (seconds)")
    step = _step(dt, source)
    with np.errstate(divide="ignore"):
        d = _snap(np.where(np.isinf(tau), 0.0, step / tau))
    bad = d > 1
    if bad.any():
        if source == "norse":
            raise _first_bad(name, field, tau, bad, f"tau >= dt^2 = {step:g} (Norse writes tau = dt / tau_inv; "
                             f"dt = {dt:g} s, so tau_inv <= 1/dt)")
        j = int(np.flatnonzero(bad)[0])
        raise NIRError(
            f"node '{name}': {field}[{j}] = {tau[j]:.8g}, expected a time constant >= dt = {dt:g} s (the decay "
            f"dt/tau would exceed 1); Norse 1.1.0's to_nir writes tau = dt/tau_inv (1e-05 for its default "
            "tau_mem_inv = 100/s), which falls below dt: a graph from Norse imports with source='norse' "
            "(spikeloop nir import --source norse)")
    return d


def _gain(name: str, field: str, factor: np.ndarray, tau_field: str, tau: np.ndarray, step: float) -> np.ndarray:
    """The Euler input gain factor * d (d = step/tau, the decay per step, not snapped: a decay too small for
    any F still passes its input); infinite tau with infinite factor is 1 (snnTorch writes factor = tau/dt),
    infinite tau with a finite factor is refused (no input would arrive)."""
    inf_tau, inf_f = np.isinf(tau), np.isinf(factor)
    bad = inf_tau != inf_f
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise NIRError(
            f"node '{name}': {tau_field}[{j}] = {tau[j]:g} with {field}[{j}] = {factor[j]:g}: the input gain "
            f"{field}*dt/{tau_field} is undefined; expected both finite, or both infinite (no decay, gain 1)"
        )
    with np.errstate(invalid="ignore"):
        return np.where(inf_tau, 1.0, factor * np.where(inf_tau, 0.0, step / np.where(inf_tau, 1.0, tau)))


def _integer_decay(name: str, field: str, d: np.ndarray, frac_bits: int) -> tuple[int, float]:
    """One integer decay factor for the layer: round_half_even(2^F * d), equal for every neuron."""
    scaled = d * (1 << frac_bits)
    ints = _round_half_even(scaled)
    if ints.min() != ints.max():
        raise NIRError(
            f"node '{name}': {field} gives decay factors from {int(ints.min())} to {int(ints.max())} "
            f"(F = {frac_bits}) across neurons; the contract has one per layer, expected equal time constants"
        )
    return int(ints[0]), float(scaled[0])


# ---------------------------------------------------------------------------------------------
# Import


def read_nir(path, *, type_check: bool = True) -> object:
    """Read a NIR file (HDF5); a missing or unreadable file raises `NIRError` naming it.

    ``type_check=False`` skips NIR's own check that every edge joins matching shapes, which files
    written by older NIR versions often fail (the import checks the shapes it uses itself).
    """
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"{path}: no such NIR file")
    try:
        return _as_written(nir.read(path, type_check=bool(type_check)), path)
    except Exception as e:  # h5py and nir raise many kinds
        if type_check:
            try:
                nir.read(path, type_check=False)
            except Exception:  # unreadable either way: the messages below say why
                pass
            else:
                raise NIRError(f"{path}: NIR's type check refuses the graph ({e}); files written by older NIR "
                               "versions often fail it: import with type_check=False (spikeloop nir import "
                               "--no-type-check)") from e
        unknown = _unknown_types(path)
        if unknown:
            name, kind = unknown[0]
            raise NIRError(f"{path}: node '{name}' has type {kind!r}, which NIR {nir.version} does not know "
                           f"(it knows {', '.join(sorted(_node_types()))})") from e
        raise NIRError(f"{path}: not a readable NIR graph ({type(e).__name__}: {e})") from e


def _as_written(graph, path: Path):
    """The graph with only the nodes its file holds: NIR's reader adds an Input before every node that no edge
    enters and an Output after every node no edge leaves (``input_output`` before an unconnected Output), names
    the user never wrote; they and their edges are taken out again, so the import names the user's own nodes."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            written = set(f["node"]["nodes"].keys())
    except Exception:  # not laid out as NIR writes it: keep what NIR read
        return graph
    added = set(graph.nodes) - written
    if added and written <= set(graph.nodes):
        for name in added:
            del graph.nodes[name]
        graph.edges = [(a, b) for a, b in graph.edges if a not in added and b not in added]
    return graph


def _node_types() -> set[str]:
    """The names of the node types the installed NIR package reads."""
    nir = _nir()
    found, todo = set(), [nir.NIRNode]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub.__name__)
            todo.append(sub)
    return found


def _unknown_types(path: Path) -> list[tuple[str, str]]:
    """(node, type) of the nodes of a NIR file whose type NIR does not know, at any depth; [] when the file
    cannot be walked."""
    import h5py

    known, found = _node_types(), []

    def walk(group, where):
        for name, node in group.get("nodes", {}).items():
            kind = node.get("type")
            kind = kind[()].decode() if kind is not None and isinstance(kind[()], bytes) else None
            if kind is not None and kind not in known:
                found.append((where + name, kind))
            if isinstance(node, h5py.Group):
                walk(node, f"{where}{name}.")

    try:
        with h5py.File(path, "r") as f:
            walk(f["node"], "")
    except Exception:  # not HDF5, or not laid out as NIR writes it: the caller's message stands
        return []
    return found


def _back_edge(start: str, edges: list[tuple[str, str]]) -> list[str] | None:
    """The cycle closed by the first edge, in a depth-first walk from ``start`` in edge order, that leads back
    to a node on the walk's current path: its nodes ``[b, ..., a]`` (the edge ``(a, b)`` closes it), or None."""
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    on_path, done = [start], {start}
    todo = [iter(succ.get(start, ()))]
    while todo:
        b = next(todo[-1], None)
        if b is None:
            todo.pop()
            on_path.pop()
        elif b in on_path:
            return on_path[on_path.index(b):]
        elif b not in done:
            done.add(b)
            on_path.append(b)
            todo.append(iter(succ.get(b, ())))
    return None


def _edges(graph, where: str) -> list[tuple[str, str]]:
    """The graph's edges as (str, str) (HDF5 gives bytes), each end checked to name one of its nodes."""
    edges = []
    for edge in graph.edges:
        a, b = (str(x.decode() if isinstance(x, bytes) else x) for x in edge)
        for end in (a, b):
            if end not in graph.nodes:
                raise NIRError(f"edge ({where + a!r}, {where + b!r}) names node '{where + end}', which is not in the "
                               "graph")
        edges.append((a, b))
    return edges


def _inline(graph, where: str = "") -> tuple[dict, list[tuple[str, str]]]:
    """(nodes, edges) of ``graph`` with every NIRGraph node (a subgraph, as snnTorch writes a recurrent layer)
    replaced by its own nodes, named ``'{subgraph}.{node}'``: an edge into the subgraph enters what its Input
    node feeds, an edge out of it leaves from what feeds its Output node. ``where`` prefixes the names in
    messages (the subgraph being read)."""
    nir = _nir()
    nodes, edges, ends = {}, [], {}  # ends: subgraph -> (what its input feeds, what feeds its output)
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner, inner_edges = _inline(node, f"{where}{name}.")
        inputs = [k for k, n in inner.items() if isinstance(n, nir.Input)]
        outputs = [k for k, n in inner.items() if isinstance(n, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise NIRError(f"node '{where + name}' is a NIRGraph with input nodes {inputs} and output nodes "
                           f"{outputs}; expected one of each (a subgraph such as snnTorch's RLeaky writes)")
        (entry,), (exit_,) = inputs, outputs
        if (entry, exit_) in inner_edges:
            raise NIRError(f"node '{where + name}': the subgraph's input node '{entry}' feeds its output node "
                           f"'{exit_}' directly; expected the subgraph's nodes between them")
        ends[name] = ([f"{name}.{b}" for a, b in inner_edges if a == entry],
                      [f"{name}.{a}" for a, b in inner_edges if b == exit_])
        for k, n in inner.items():
            if k not in (entry, exit_):
                if f"{name}.{k}" in graph.nodes or f"{name}.{k}" in nodes:
                    raise NIRError(f"node '{where}{name}.{k}' of the subgraph '{where + name}' has the name of "
                                   "another node of the graph; expected unique names")
                nodes[f"{name}.{k}"] = n
        edges += [(f"{name}.{a}", f"{name}.{b}") for a, b in inner_edges if entry not in (a, b) and exit_ not in (a, b)]
    for a, b in _edges(graph, where):
        edges += [(x, y) for x in (ends[a][1] if a in ends else [a]) for y in (ends[b][0] if b in ends else [b])]
    return nodes, edges


def _kind(node) -> str:
    return type(node).__name__


def _recurrences(nodes: dict, edges: list[tuple[str, str]]) -> dict[str, str]:
    """neuron node -> its recurrent weight node: a Linear/Affine node fed only by that neuron node and feeding
    only it back (how snnTorch's RLeaky and the NIR paper's recurrent networks write a recurrent layer).
    Refuses a neuron node fed back straight into itself and a neuron node with two recurrent weights."""
    pred: dict[str, set[str]] = {}
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        if a == b:
            if _kind(nodes[a]) in NEURON_NODES:
                raise NIRError(
                    f"edge ({a!r}, {a!r}) feeds the neuron node '{a}' straight back into itself, without a weight "
                    "node: a self-only (one-to-one) recurrence cannot be expressed; spikeloop's recurrent layers "
                    "feed their spikes back all-to-all, through a Linear/Affine node of +/-1 weights")
            raise NIRError(f"edge ({a!r}, {a!r}) feeds node '{a}' ({_kind(nodes[a])}) back into itself; expected a "
                           "recurrence from a neuron node (LIF/CubaLIF/IF) through one Linear/Affine node back into "
                           "that neuron node")
        succ.setdefault(a, set()).add(b)
        pred.setdefault(b, set()).add(a)
    found: dict[str, str] = {}
    for name, node in nodes.items():
        around = pred.get(name, set())
        if _kind(node) not in SYNAPSES or len(around) != 1 or succ.get(name, set()) != around:
            continue
        (neuron,) = around
        if _kind(nodes[neuron]) not in NEURON_NODES:
            continue
        if neuron in found:
            raise NIRError(f"the neuron node '{neuron}' has two recurrent weight nodes, '{found[neuron]}' and "
                           f"'{name}'; expected one (the layer's all-to-all recurrence)")
        found[neuron] = name
    return found


def _cycle_error(nodes: dict, edges: list[tuple[str, str]], cycle: list[str]) -> NIRError:
    """Why the cycle ``cycle`` (nodes ``[b, ..., a]``, closed by the edge ``(a, b)``) is not a recurrent layer."""
    a, b = cycle[-1], cycle[0]
    path = " -> ".join([*cycle, b])
    head = f"edge ({a!r}, {b!r}) is recurrent ({path})"
    if _kind(nodes[b]) not in NEURON_NODES:
        return NIRError(f"{head}: it enters '{b}', a {_kind(nodes[b])}, not a neuron node; a recurrence must feed "
                        "a layer's spikes through one Linear/Affine node back into the same neuron node "
                        "(LIF/CubaLIF/IF), as snnTorch's RLeaky writes one")
    neurons = [n for n in cycle if _kind(nodes[n]) in NEURON_NODES]
    if len(neurons) > 1:
        return NIRError(f"{head}: it feeds the spikes of '{neurons[-1]}' back into '{b}', an earlier layer; a "
                        "recurrence spanning several layers cannot be expressed: spikeloop's recurrent layers take "
                        "only their own spikes of the previous timestep")
    middle = cycle[1:]
    if len(middle) == 1 and _kind(nodes[middle[0]]) in SYNAPSES:
        w = middle[0]
        others = sorted(({x for x, y in edges if y == w} | {y for x, y in edges if x == w}) - {b})
        return NIRError(f"node '{w}' carries the recurrence of '{b}' but is also joined to {others}; expected a "
                        f"recurrent weight node fed only by '{b}' and feeding only '{b}'")
    if len(middle) == 1:
        return NIRError(f"node '{middle[0]}' ({_kind(nodes[middle[0]])}) carries the recurrence of '{b}'; expected "
                        "a Linear or Affine node (the recurrent +/-1 weights)")
    return NIRError(f"{head}: the recurrence of '{b}' runs through {len(middle)} nodes; expected one Linear/Affine "
                    "node")


class _Chain(NamedTuple):
    shape: tuple  # the input's shape
    path: list[str]  # node names from the Input to the Output node, both excluded
    nodes: dict  # name -> node, subgraphs inlined
    recurrent: dict[str, str]  # neuron node -> its recurrent weight node


def _chain(graph) -> _Chain:
    """The graph as a chain from its Input to its Output node, with the recurrent weight of each recurrent
    layer (`_recurrences`) set aside."""
    nir = _nir()
    nodes, edges = _inline(graph)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(f"the graph has input nodes {inputs} and output nodes {outputs}; expected one of each")
    recurrent = _recurrences(nodes, edges)
    aside = set(recurrent.values())
    forward = [(a, b) for a, b in edges if a not in aside and b not in aside]
    cycle = _back_edge(inputs[0], forward)
    if cycle is not None:
        raise _cycle_error(nodes, forward, cycle)
    succ: dict[str, str] = {}
    pred: dict[str, str] = {}
    for a, b in forward:
        if a in succ and succ[a] != b:
            raise NIRError(f"node '{a}' feeds both '{succ[a]}' and '{b}'; spikeloop imports a single chain")
        if b in pred and pred[b] != a:
            raise NIRError(f"node '{b}' is fed by both '{pred[b]}' and '{a}'; spikeloop imports a single chain")
        succ[a], pred[b] = b, a
    if outputs[0] not in pred:
        raise NIRError(f"the output node '{outputs[0]}' is not connected (no edge enters it); expected a chain from "
                       f"'{inputs[0]}' to '{outputs[0]}'")
    path, name = [], inputs[0]
    seen = {name}
    while name != outputs[0]:
        if name not in succ:
            raise NIRError(f"node '{name}' has no outgoing edge; expected a chain from '{inputs[0]}' to '{outputs[0]}'")
        name = succ[name]
        if name in seen:
            raise NIRError(f"node '{name}' closes a cycle; spikeloop networks are feed-forward")
        seen.add(name)
        if name != outputs[0]:
            path.append(name)
    stray = sorted(set(nodes) - seen - aside)
    if stray:
        raise NIRError(f"node '{stray[0]}' is not on the chain from '{inputs[0]}' to '{outputs[0]}'")
    shape = nodes[inputs[0]].input_type["input"]
    return _Chain(tuple(int(x) for x in np.asarray(shape).reshape(-1)), path, nodes, recurrent)


def _latent_hint(w: np.ndarray) -> str:
    """What to do with weights that all lie in [-1, 1], as a straight-through model's latent weights do."""
    scale = np.abs(w).mean(1)
    return ("All its weights lie in [-1, 1], as the latent weights of a straight-through model do: if the model "
            "computes with sign(W), export the signs instead (write torch.sign(W) into the layer before exporting), "
            "since binarize divides its thresholds by the mean |W| per neuron (here "
            f"{scale.min():.3g} to {scale.max():.3g}) and makes a different network")


def _matrix(name: str, node, field: str = "weight") -> np.ndarray:
    """A synapse node's weight as a finite float64 [n_out, n_in] matrix."""
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2 or 0 in w.shape:
        raise NIRError(f"node '{name}': {field} has shape {w.shape}, expected a 2-D [n_out, n_in] matrix")
    if not np.isfinite(w).all():
        bad = np.argwhere(~np.isfinite(w))[0]
        raise NIRError(f"node '{name}': {field}{[int(i) for i in bad]} = {w[tuple(bad)]}, expected a finite number")
    return w


def _bias(name: str, node, n: int) -> np.ndarray:
    """An Affine node's bias as finite float64 [n] (zeros for a Linear node)."""
    bias = _param(name, node, "bias", n) if _kind(node) == "Affine" else np.zeros(n)
    if not np.isfinite(bias).all():
        raise _first_bad(name, "bias", bias, ~np.isfinite(bias), "a finite number")
    return bias


#: why a recurrent weight of 0 cannot be imported
ALL_TO_ALL = "spikeloop's recurrence is all-to-all, r[j, k] = +1 or -1 for every pair of the layer's neurons"


def _recurrent_matrix(name: str, node, n: int) -> np.ndarray:
    """A recurrent weight node's matrix (float64 [n, n], no zero); refuses self-only and sparse recurrences."""
    r = _matrix(name, node, "recurrent weight")
    if r.shape != (n, n):
        raise NIRError(f"node '{name}': recurrent weight has shape {r.shape}, expected [{n}, {n}] (the layer's {n} "
                       "neurons back to themselves)")
    zero = r == 0
    if zero.any():
        off = ~np.eye(n, dtype=bool)
        if n > 1 and not r[off].any() and r.diagonal().any():
            raise NIRError(f"node '{name}': the recurrent weight is diagonal (each neuron feeds back only its own "
                           "spike, as snnTorch's RLeaky(all_to_all=False) writes): a self-only recurrence cannot be "
                           f"expressed; {ALL_TO_ALL}")
        j, k = (int(i) for i in np.argwhere(zero)[0])
        raise NIRError(f"node '{name}': recurrent weight[{j}, {k}] = 0 ({int(zero.sum())} of {n * n} entries are 0): "
                       f"a sparse recurrence cannot be expressed; {ALL_TO_ALL}")
    return r


def _weights(name: str, node, binarize: bool, rec_name: str | None = None, rec=None):
    """(+/-1 int8 w [n_out, n_in], +/-1 int8 r [n_out, n_out] or None, bias float64 [n_out], scale float64 [n_out]
    or None) of a synapse node and, for a recurrent layer, its recurrent weight node ``rec``. The bias is the sum
    of both nodes' biases (an Affine recurrent weight adds its bias at every step, the first one included).
    ``binarize`` takes the signs of ``[W | R]``, the layer's whole row, and one scale per neuron over it."""
    w = _matrix(name, node)
    n_out = w.shape[0]
    bias = _bias(name, node, n_out)
    r = None
    if rec is not None:
        r = _recurrent_matrix(rec_name, rec, n_out)
        bias = bias + _bias(rec_name, rec, n_out)
    row = w if r is None else np.concatenate([w, r], axis=1)
    if binarize:
        scale = np.abs(row).mean(1)
        if (scale == 0).any():
            raise NIRError(f"node '{name}': weight row {int(np.flatnonzero(scale == 0)[0])} is all zero; "
                           "binarize needs a nonzero mean magnitude per neuron")
        signs = np.where(row >= 0, 1, -1).astype(np.int8)
        return signs[:, :w.shape[1]], None if r is None else signs[:, w.shape[1]:], bias, scale
    for where, m, field in ((name, w, "weight"), (rec_name, r, "recurrent weight")):
        if m is None:
            continue
        bad = (m != 1) & (m != -1)
        if bad.any():
            idx = [int(i) for i in np.argwhere(bad)[0]]
            message = (f"node '{where}': {field}{idx} = {m[tuple(idx)]:.8g}, expected exactly +1 or -1; pass "
                       "binarize=True (CLI: --binarize) to take the signs and fold each neuron's mean |weight| into "
                       "its threshold and bias")
            if np.abs(row).max() <= 1:
                message += ". " + _latent_hint(row)
            raise NIRError(message)
    return w.astype(np.int8), None if r is None else r.astype(np.int8), bias, None


def _check_int(field: str, value, lo: int, hi: int, flag: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise NIRError(f"{field} = {value!r}, expected an integer in [{lo}, {hi}] ({flag})")


def from_nir(
    graph,
    *,
    dt: float | None = None,
    frac_bits: int | None = None,
    v_bits: int | None = None,
    u_bits: int | None = None,
    reset: str | None = None,
    decay_round: str | None = None,
    input_shift: int | None = None,
    source: str | None = None,
    binarize: bool = False,
    type_check: bool = True,
) -> Imported:
    """Import a NIR graph (or the path of a NIR file) as a contract `Network` under the profile (docs/nir.md).

    ``source``: ``"nir"`` (default: NIR's equations) or ``"norse"`` (what Norse 1.1.0's ``to_nir`` writes).
    ``dt``: seconds per timestep (default: the graph's ``spikeloop_dt`` metadata, else 1e-4 as snnTorch
    exports, 1e-3 for Norse). ``frac_bits``, ``input_shift``, ``decay_round``, ``v_bits``, ``u_bits``:
    contract fields NIR does not carry (default: spikeloop's metadata, else `FLOAT_DEFAULTS` and
    ``DEFAULT_BITS + input_shift`` bits). ``reset``: one of `RESETS` for every layer (default: spikeloop's
    metadata, else ``"zero"``, NIR's reset to ``v_reset = 0``, with a warning unless the source is Norse).
    ``binarize``: take the signs of non-binary weights (see docs/nir.md). ``type_check``: NIR's own
    shape check when reading a file (`read_nir`). Returns ``(network, report)``.

    A neuron node fed back through one Linear/Affine node of its own spikes becomes a recurrent layer
    (``Layer.recurrent``; docs/nir.md, "Recurrent layers"); subgraphs are inlined first.
    """
    nir = _nir()
    if source is None:
        source = "nir"
    if source not in SOURCES:
        raise NIRError(f"source = {source!r}, expected one of {', '.join(SOURCES)}")
    if isinstance(graph, (str, Path)):
        graph = read_nir(graph, type_check=type_check)
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"expected a nir.NIRGraph or the path of a NIR file, got {type(graph).__name__}")
    if dt is None:
        dt = _meta(graph, "dt", NORSE_DT if source == "norse" else DEFAULT_DT)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt = {dt!r}, expected a positive number of seconds per timestep")
    dt = float(dt)
    if reset is not None and reset not in RESETS:
        raise NIRError(f"reset = {reset!r}, expected one of {', '.join(RESETS)} or None (from the graph)")
    if decay_round is not None and decay_round not in ROUNDINGS:
        raise NIRError(f"decay_round = {decay_round!r}, expected one of {', '.join(ROUNDINGS)} or None")
    _check_int("input_shift", input_shift, *INPUT_SHIFT_RANGE, "--input-shift")
    for field, value in (("frac_bits", frac_bits), ("v_bits", v_bits), ("u_bits", u_bits)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise NIRError(f"{field} = {value!r}, expected an integer")
    if frac_bits is None:
        frac_bits = _meta(graph, "frac_bits", FLOAT_DEFAULTS["frac_bits"])
    _check_int("frac_bits", frac_bits, *FRAC_BITS_RANGE, "--frac-bits")
    frac_bits = int(frac_bits)
    given = {"reset": reset, "decay_round": decay_round, "input_shift": input_shift, "v_bits": v_bits,
             "u_bits": u_bits}

    shape, path, nodes, recurrent = _chain(graph)
    n_in = int(np.prod(shape)) if shape else 1
    k = 0
    while k < len(path) and type(nodes[path[k]]).__name__ == "Flatten":
        k += 1  # the input is taken flattened in C order, which is what Flatten does
    body = path[k:]
    if not body:
        raise NIRError("the graph has no Linear/Affine -> LIF/CubaLIF/IF layer between its input and output")
    layers, reports, problems = [], [], []
    prev_out = n_in
    for i in range(0, len(body), 2):
        syn_name = body[i]
        syn = nodes[syn_name]
        if type(syn).__name__ not in SYNAPSES:
            where = "after the input" if i == 0 else f"after the neuron node '{body[i - 1]}'"
            problems.append(f"node '{syn_name}' is a {type(syn).__name__} {where}; expected Linear or Affine "
                            "(spikeloop imports chains of Linear/Affine -> LIF/CubaLIF/IF)")
            break  # the chain's pairing is lost: what follows would be misread
        if i + 1 >= len(body):
            problems.append(f"node '{syn_name}' ({type(syn).__name__}) feeds the output directly; "
                            "expected a LIF, CubaLIF or IF node after it")
            break
        neu_name = body[i + 1]
        neu = nodes[neu_name]
        if type(neu).__name__ not in NEURON_NODES:
            problems.append(f"node '{neu_name}' is a {type(neu).__name__} after '{syn_name}'; expected LIF, CubaLIF "
                            "or IF (spikeloop layers spike; LI, CubaLI and I readouts are not supported)")
            break
        rec_name = recurrent.get(neu_name)
        try:
            w, r, bias, scale = _weights(syn_name, syn, binarize, rec_name, nodes.get(rec_name))
            n_out, layer_in = w.shape
            expected_in, prev_out = prev_out, n_out
            if layer_in != expected_in:
                raise NIRError(f"node '{syn_name}': weight has {layer_in} inputs, expected {expected_in} "
                               f"({'the input size' if i == 0 else 'the previous layer size'})")
            layer, report = _layer(i // 2, syn_name, neu_name, neu, w, bias, scale, dt=dt, frac_bits=frac_bits,
                                   source=source, given=given, rec_name=rec_name, rec=r)
        except NIRError as e:  # go on: every layer's problems are reported at once
            problems.append(str(e))
            shape_of = np.shape(getattr(syn, "weight", ()))
            prev_out = shape_of[0] if len(shape_of) == 2 else prev_out
            continue
        layers.append(layer)
        reports.append(report)
    if problems:
        raise NIRError(problems[0] if len(problems) == 1 else
                       f"{len(problems)} problems in the graph:\n" + "\n".join(f"- {p}" for p in problems))
    try:
        network = Network(tuple(layers))
    except NetworkError as e:
        raise NIRError(str(e)) from e
    producer = _meta(graph, "producer", "unknown")
    notes = _probe(network, body) if binarize else ()
    return Imported(network, NIRReport(dt, frac_bits, tuple(reports), str(producer), source, notes))


PROBE = {"samples": 16, "steps": 64, "rate": 0.5, "seed": 0}  # the input a binarized network must answer


def _probe(network: Network, body: list[str]) -> tuple[str, ...]:
    """A warning when the (binarized) network gives no output spike on `PROBE`'s random input spikes."""
    from spikeloop import golden

    rng = np.random.default_rng(PROBE["seed"])
    x = rng.random((PROBE["samples"], PROBE["steps"], network.n_in)) < PROBE["rate"]
    if golden.run(network, x, record=True).layers[-1].z.any():
        return ()
    theta = network.layers[-1].theta
    note = (f"with --binarize the network gives no output spike on a probe ({PROBE['samples']} random inputs, "
            f"rate {PROBE['rate']}, {PROBE['steps']} steps, seed {PROBE['seed']}; last node '{body[-1]}', theta up "
            f"to {int(theta.max())}): the binarized thresholds are likely out of reach. If the model computes with "
            "sign(W) (a straight-through model), export the signs instead of binarizing")
    return (note,)


def _reachable(w: np.ndarray, bias: np.ndarray, lam: int, alpha: int, frac_bits: int, neuron: str,
               k: int) -> np.ndarray:
    """An upper bound of each neuron's membrane (contract units) over any input: every excitatory input
    spiking at every step, the geometric sum of the decays plus one unit of rounding per step (inf where
    nothing decays and the drive is positive)."""
    drive = ((w > 0).sum(1) * float(1 << k) + np.maximum(bias, 0)).astype(np.float64)

    def settle(x, factor):
        if factor == 0:
            return np.where(x > 0, np.inf, 0.0)
        return (x + 1) * float(1 << frac_bits) / factor

    return settle(drive, lam) if neuron == "lif" else settle(settle(drive, alpha), lam)


def _layer(index, syn_name, name, node, w, bias, scale, *, dt, frac_bits, source, given, rec_name=None, rec=None):
    kind_name = type(node).__name__
    n = w.shape[0]
    thr = _param(name, node, "v_threshold", n)
    v_reset = _param(name, node, "v_reset", n) if getattr(node, "v_reset", None) is not None else np.zeros(n)
    if (v_reset != 0).any():
        raise _first_bad(name, "v_reset", v_reset, v_reset != 0,
                         "0 (the contract resets to zero, subtracts the threshold, or does not reset)")
    if kind_name != "IF":
        v_leak = _param(name, node, "v_leak", n)
        if (v_leak != 0).any():
            raise _first_bad(name, "v_leak", v_leak, v_leak != 0, "0 (the contract decays toward zero)")
    alpha, alpha_real = 0, 0.0
    if kind_name == "IF":
        r = _param(name, node, "r", n)
        lam, lam_real = 0, 0.0
        gain = r  # no leak: v <- v + r*I per timestep (dt does not enter, as in snnTorch and Norse)
        neuron = "lif"
    elif kind_name == "LIF":
        tau, r = _param(name, node, "tau", n), _param(name, node, "r", n)
        d = _decay(name, "tau", tau, dt, source)
        lam, lam_real = _integer_decay(name, "tau", d, frac_bits)
        gain = _gain(name, "r", r, "tau", tau, _step(dt, source))
        neuron = "lif"
    else:  # CubaLIF
        tau_syn, tau_mem = _param(name, node, "tau_syn", n), _param(name, node, "tau_mem", n)
        r, w_in = _param(name, node, "r", n), _param(name, node, "w_in", n)
        d_syn, d_mem = _decay(name, "tau_syn", tau_syn, dt, source), _decay(name, "tau_mem", tau_mem, dt, source)
        alpha, alpha_real = _integer_decay(name, "tau_syn", d_syn, frac_bits)
        lam, lam_real = _integer_decay(name, "tau_mem", d_mem, frac_bits)
        # Norse's LIFCell adds its input to the current as it comes (i <- i + x): gain w_in, not w_in * dt/tau_syn
        syn_gain = w_in if source == "norse" else _gain(name, "w_in", w_in, "tau_syn", tau_syn, _step(dt, source))
        gain = syn_gain * _gain(name, "r", r, "tau_mem", tau_mem, _step(dt, source))
        neuron = "cuba"
    bad = ~(np.isfinite(gain) & (gain > 0))
    if bad.any():
        raise _first_bad(name, "input gain", gain, bad, "a positive finite number (r, w_in > 0)")
    spikeloop_node = _meta(node, "neuron") is not None
    base = OPTION_DEFAULTS if spikeloop_node else {**OPTION_DEFAULTS, "decay_round": FLOAT_DEFAULTS["decay_round"],
                                                    "input_shift": FLOAT_DEFAULTS["input_shift"]}
    options = {key: given.get(key) if given.get(key) is not None else _meta(node, key, base[key])
               for key in OPTION_DEFAULTS}
    k = options["input_shift"]
    lo, hi = INPUT_SHIFT_RANGE
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not lo <= k <= hi:
        raise NIRError(f"node '{name}': metadata {META}input_shift = {k!r}, expected an integer in [{lo}, {hi}]")
    k = int(k)
    unit = gain * (scale if scale is not None else 1.0) / (1 << k)  # one contract unit, in the node's membrane units
    t = _snap(thr / unit)
    bad = ~np.isfinite(t)
    if bad.any():
        raise _first_bad(name, "v_threshold", thr, bad, "a finite threshold")
    theta = np.floor(t) + 1  # v > t  <=>  v >= floor(t) + 1 for integer v
    bad = theta < 1
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise NIRError(f"node '{name}': v_threshold[{j}] = {thr[j]:.8g} is {t[j]:.8g} contract units, giving theta = "
                       f"{int(theta[j])}; expected a threshold >= 0 (the contract needs theta >= 1)")
    b_real = bias / (scale if scale is not None else 1.0) * (1 << k)
    b_int = _round_half_even(b_real)
    if given["reset"] is not None:
        layer_reset, reset_source = given["reset"], "given"
    elif _meta(node, "reset") is not None:
        layer_reset, reset_source = _meta(node, "reset"), "spikeloop metadata"
    elif source == "norse":
        layer_reset, reset_source = "zero", RESET_NORSE
    else:
        layer_reset, reset_source = "zero", RESET_UNSAID
    vb = given["v_bits"] if given["v_bits"] is not None else _meta(node, "v_bits", DEFAULT_BITS + k)
    ub = given["u_bits"] if given["u_bits"] is not None else _meta(
        node, "u_bits", vb if neuron == "lif" else DEFAULT_BITS + k)
    top = 2 ** (int(vb) - 1) - 1 if isinstance(vb, (int, np.integer)) and 2 <= vb <= 62 else None
    if top is not None and theta.max() > top:
        j = int(np.argmax(theta))
        need = int(theta[j]).bit_length() + 1
        raise NIRError(f"node '{name}': theta[{j}] = {int(theta[j])} is outside [1, {top}], the range of "
                       f"v_bits = {vb}; expected v_bits >= {need} (spikeloop nir import --v-bits {need})")
    too_big = max(abs(theta).max(), abs(b_int).max())
    if too_big >= 2.0**62:
        raise NIRError(f"node '{name}': v_threshold or bias of {too_big:.3g} contract units, expected values that "
                       "fit 62-bit integers")
    silent = 0
    if scale is not None:
        reach = _reachable(w if rec is None else np.concatenate([w, rec], axis=1), b_int, lam, alpha, frac_bits, neuron,
                           k)
        never = theta > reach
        if never.all():
            j = int(np.argmin(theta))
            raise NIRError(
                f"node '{name}': v_threshold[{j}] = {thr[j]:.8g} becomes theta[{j}] = {int(theta[j])} after binarize "
                f"(dividing by mean|W| = {scale[j]:.3g}), above {reach[j]:.6g}, the largest membrane any input "
                "reaches, and so does every neuron's: the layer would never fire; expected a reachable threshold. "
                "If the model computes with sign(W) (a straight-through model), export the signs instead of "
                "binarizing")
        silent = int(never.sum())
    try:
        layer = Layer(
            w, recurrent=rec, theta=theta.astype(np.int64), bias=b_int.astype(np.int64), neuron=neuron,
            reset=layer_reset, v_bits=vb, u_bits=ub, frac_bits=frac_bits, lam=lam, alpha=alpha, where=f"node '{name}'",
            **{key: options[key] for key in OPTION_DEFAULTS if key != "input_shift"}, input_shift=k,
        )
    except NetworkError as e:
        raise NIRError(f"{e} (layer {index} of the imported network)") from e
    diff = np.abs(b_int - b_real)
    report = NIRLayerReport(
        index, syn_name, name, kind_name, neuron, layer_reset, reset_source, lam, lam_real, alpha, alpha_real,
        (float(gain.min()), float(gain.max())),
        None if scale is None else (float(scale.min()), float(scale.max())),
        (int(theta.min()), int(theta.max())), int((diff > 0).sum()), float(diff.max()),
        options["decay_round"], k, silent, rec_name,
    )
    return layer, report


# ---------------------------------------------------------------------------------------------
# Agreement with the source framework


class Agreement(NamedTuple):
    """How the imported network's output spikes compare with the ones the source framework recorded."""

    bits: float  # fraction of equal output spike bits over samples x timesteps x outputs
    predictions: float  # fraction of samples with the same prediction (most output spikes, first on ties)
    spikes: int  # output spikes of the imported network
    reference_spikes: int  # output spikes recorded from the source
    samples: int


#: The options `agreement_table` varies (each row: one combination, the other options at their defaults).
SWEEP = {"decay_round": ROUNDINGS, "input_shift": (0, 4, 8, 12)}


def read_recording(path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs bool [N, T, n_in], outputs bool [N, T, n_out]) from an .npz holding arrays ``inputs`` and
    ``outputs``: 0/1 or bool, or bits packed along the last axis (uint8, with ``n_in`` and ``n_out``; how
    tests/fixtures/nir/digits_task.py saves them)."""
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"{path}: no such recording")
    with np.load(path) as f:
        found = dict(f)
    arrays = []
    for key, size in (("inputs", "n_in"), ("outputs", "n_out")):
        if key not in found:
            raise NIRError(f"{path}: no array '{key}', expected 'inputs' and 'outputs' [samples, steps, neurons]")
        x = found[key]
        if size in found:
            x = np.unpackbits(x.astype(np.uint8), axis=-1, count=int(found[size]))
        if x.ndim != 3 or not np.isin(x, (0, 1)).all():
            raise NIRError(f"{path}: '{key}' has shape {x.shape} (or values other than 0/1), expected 0/1 spikes "
                           "[samples, steps, neurons]")
        arrays.append(x.astype(bool))
    inputs, outputs = arrays
    if inputs.shape[:2] != outputs.shape[:2]:
        raise NIRError(f"{path}: inputs {inputs.shape} and outputs {outputs.shape}, expected the same samples and "
                       "steps")
    return inputs, outputs


def agreement(network: Network, inputs: np.ndarray, outputs: np.ndarray) -> Agreement:
    """Run the golden model on ``inputs`` (bool [N, T, n_in]) and compare its output spikes at every step
    with ``outputs`` (bool [N, T, n_out], what the source framework gave)."""
    from spikeloop import golden

    if outputs.shape != (*inputs.shape[:2], network.n_out):
        raise NIRError(f"recorded outputs have shape {outputs.shape}, expected {(*inputs.shape[:2], network.n_out)} "
                       "(the inputs' samples and steps, the network's outputs)")
    ours = golden.run(network, inputs, record=True).layers[-1].z.astype(bool)
    same_prediction = ours.sum(1).argmax(1) == outputs.sum(1).argmax(1)
    return Agreement(float((ours == outputs).mean()), float(same_prediction.mean()), int(ours.sum()),
                     int(outputs.sum()), int(inputs.shape[0]))


def agreement_table(graph, inputs: np.ndarray, outputs: np.ndarray, *, sweep: dict | None = None,
                    **import_options) -> list[tuple[dict, Agreement]]:
    """`agreement` under the import's defaults (``import_options`` as `from_nir` takes them), then for every
    combination of the `SWEEP` options (``sweep`` replaces it); rows are ``(options given, agreement)``,
    the first ``({}, ...)`` the defaults."""
    if isinstance(graph, (str, Path)):
        graph = read_nir(graph, type_check=import_options.pop("type_check", True))
    sweep = SWEEP if sweep is None else sweep
    rows = [({}, agreement(from_nir(graph, **import_options).network, inputs, outputs))]
    keys = list(sweep)
    for combo in itertools.product(*(sweep[key] for key in keys)):
        options = dict(zip(keys, combo))
        rows.append((options, agreement(from_nir(graph, **{**import_options, **options}).network, inputs, outputs)))
    return rows


def format_agreement(rows: list[tuple[dict, Agreement]]) -> str:
    """`agreement_table`'s rows as a Markdown table."""
    lines = ["| options | spike bits equal | predictions equal | spikes (ours / source) |", "|---|---|---|---|"]
    for options, a in rows:
        name = ", ".join(f"{k}={v}" for k, v in options.items()) or "**defaults**"
        lines.append(f"| {name} | {100 * a.bits:.2f}% | {100 * a.predictions:.1f}% | "
                     f"{a.spikes} / {a.reference_spikes} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Export


def _time_constant(factor: int, frac_bits: int, dt: float) -> float:
    """tau with dt/tau = factor / 2^F (inf for factor 0: no decay)."""
    return math.inf if factor == 0 else dt * (1 << frac_bits) / factor


#: the float simulators whose NIR readers ``to_nir(reader=...)`` writes for (docs/nir.md, "Read back by")
READERS = ("snntorch", "norse")
#: snnTorch 1.0's ``import_from_nir`` takes every time constant at this dt (it ignores the graph's)
SNNTORCH_DT = 1e-4
#: tau / dt of a layer without leak written for snnTorch, which reads ``IF`` as a leaky ``Leaky(beta=0.9)``
#: and ``tau = inf`` as a threshold of nan: a leak of 2^-40 per step never moves a membrane across
#: ``theta - 1/2`` within the contract's range, and `from_nir` rounds it back to ``lam = 0``
NO_LEAK_STEPS = 2.0**40


class NIRReaderWarning(UserWarning):
    """What a reader of an exported graph (`READERS`) computes only approximately."""


def reader_check(network: Network, reader: str, dt: float) -> tuple[str, ...]:
    """What `reader`'s NIR import cannot express in ``network`` (all problems, one `NIRError`); returns the
    warnings for what it expresses only approximately."""
    if reader not in READERS:
        raise NIRError(f"reader = {reader!r}, expected one of {', '.join(READERS)} or None")
    who = {"snntorch": "snnTorch 1.0's import_from_nir", "norse": "Norse 1.1.0's from_nir"}[reader]
    problems, warnings = [], []
    if reader == "snntorch" and not math.isclose(dt, SNNTORCH_DT, rel_tol=1e-9):
        problems.append(f"dt = {dt:g}, expected {SNNTORCH_DT:g}: {who} takes every time constant at dt = "
                        f"{SNNTORCH_DT:g} s")
    for k, layer in enumerate(network.layers):
        name = f"layer {k} (lif{k})"
        if reader == "snntorch" and layer.is_recurrent and layer.neuron == "cuba":
            problems.append(f"{name}: a recurrent cuba layer, expected lif: snnTorch 1.0 reads it as an "
                            "RSynaptic(reset_delay=False), whose forward fails (it reads a local spk that is None)")
        elif reader == "snntorch" and layer.is_recurrent:
            warnings.append(f"{name}: recurrent: {who} misreads it (under nirtorch 2.6 it feeds the layer's input "
                            "through the recurrent weight and runs the layer as a nested graph, not an RLeaky); "
                            "snnTorch's own node reader (snntorch.import_nir._nir_to_snntorch_module on the subgraph "
                            "that _replace_rnn_subgraph_with_nirgraph makes) builds the RLeaky that computes it: "
                            "docs/nir.md")
        if reader == "norse" and layer.is_recurrent and k == len(network.layers) - 1:
            problems.append(f"{name}: the last layer is recurrent, expected a feed-forward last layer: {who} "
                            f"(nirtorch's graph executor) gives the output of the node it runs last, which is then "
                            f"rec{k}, not the layer's spikes")
        if layer.reset != "zero":
            hint = (" (snnTorch's Leaky(reset_mechanism='subtract') computes subtract_next: set it on the imported "
                    "modules)" if reader == "snntorch" and layer.reset == "subtract_next" else "")
            problems.append(f"{name}: reset = {layer.reset!r}, expected 'zero': {who} builds every neuron with a "
                            f"reset to zero at the spike's step{hint}")
        if layer.neuron == "cuba" and (layer.alpha == 0 or layer.lam == 0):
            problems.append(f"{name}: cuba with alpha = {layer.alpha}, lam = {layer.lam}, expected both > 0: {who} "
                            f"reads an infinite time constant of a CubaLIF as an undefined input gain")
        if layer.neuron == "cuba" and layer.bias_to == "membrane" and layer.bias.any():
            problems.append(f"{name}: bias_to = 'membrane' in a cuba layer, expected 'current': {who} adds a bias "
                            f"to the synaptic current")
        if reader == "snntorch" and len(np.unique(layer.theta)) > 1:
            problems.append(f"{name}: theta differs across the layer's neurons, expected one value: {who} takes "
                            f"one threshold per layer")
        if layer.lam or (layer.neuron == "cuba" and layer.alpha):
            warnings.append(f"{name}: decay_round = {layer.decay_round!r} rounds every decay to an integer; {who} "
                            f"decays in float: spikes agree unless a rounding moves a membrane across theta")
        for option in ("u_overflow", "v_range"):
            if getattr(layer, option) != OPTION_DEFAULTS[option]:
                warnings.append(f"{name}: {option} = {getattr(layer, option)!r} is not expressed: {who} does not "
                                f"bound its membranes")
    if problems:
        raise NIRError(f"{len(problems)} problem(s) exporting for {reader}: " + "; ".join(problems))
    return tuple(warnings)


def to_nir(network: Network, *, dt: float = DEFAULT_DT, producer: str = "spikeloop", reader: str | None = None):
    """Write ``network`` as a NIR graph under the profile (docs/nir.md).

    Layer k becomes ``fc{k}`` (Affine, or Linear when every bias is 0; weights +/-1) and ``lif{k}``:
    an ``IF`` node for a ``lif`` layer without leak, a ``LIF`` node for a leaky ``lif`` layer, a
    ``CubaLIF`` node for a ``cuba`` layer, with ``v_threshold = (theta - 1/2) / 2^k`` and biases
    ``bias / 2^k`` in weight units (k = ``input_shift``), unit input gains (``r = tau/dt``,
    ``w_in = tau_syn/dt``; ``r = 1`` for IF) and ``v_reset = 0``. The fields NIR lacks (reset kind,
    widths, F, dt, the contract's options) go into ``spikeloop_*`` metadata, so `from_nir` gives
    the same network back. A recurrent layer adds ``rec{k}`` (Linear, its +/-1 recurrent weights) with the
    edges ``lif{k} -> rec{k} -> lif{k}``, the flat form snnTorch's ``export_to_nir`` writes for an RLeaky.

    ``reader`` ("snntorch" or "norse") writes the same network in the form that framework's NIR import
    runs with the same spikes: refused (`NIRError`, every problem named) where it cannot express the
    network, a `NIRReaderWarning` each where it is approximate (`reader_check`). snnTorch: a layer without
    leak becomes a ``LIF`` with ``tau = 2^40 dt``. Norse: a leaky ``LIF`` gets ``r = 1`` (Norse ignores
    ``r``) and its threshold times ``dt / tau``; read it with ``from_nir(graph, dt=dt)``.
    """
    nir = _nir()
    if not isinstance(network, Network):
        raise NIRError(f"expected a Network, got {type(network).__name__}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt = {dt!r}, expected a positive number of seconds per timestep")
    frac = {layer.frac_bits for layer in network.layers}
    if len(frac) != 1:
        raise NIRError(f"the layers use frac_bits {sorted(frac)}; the NIR profile has one F per graph, expected equal")
    dt = float(dt)
    if reader is not None:
        import warnings

        for message in reader_check(network, reader, dt):
            warnings.warn(message, NIRReaderWarning, stacklevel=2)
    nodes = {"input": nir.Input(input_type={"input": np.array([network.n_in])})}
    edges = []
    for k, layer in enumerate(network.layers):
        n = layer.n_out
        w = layer.weights.astype(np.float64)
        unit = float(1 << layer.input_shift)  # contract units per weight
        if layer.bias.any():
            nodes[f"fc{k}"] = nir.Affine(weight=w, bias=layer.bias.astype(np.float64) / unit)
        else:
            nodes[f"fc{k}"] = nir.Linear(weight=w)
        meta = {META + "neuron": layer.neuron, META + "reset": layer.reset, META + "v_bits": layer.v_bits,
                META + "u_bits": layer.u_bits, META + "frac_bits": layer.frac_bits,
                **{META + key: value for key, value in layer.options().items()}}
        thr = (layer.theta.astype(np.float64) - 0.5) / unit
        zeros = np.zeros(n)
        tau_mem = _time_constant(layer.lam, layer.frac_bits, dt)
        if layer.neuron == "lif" and layer.lam == 0 and reader == "snntorch":
            tau = dt * NO_LEAK_STEPS
            node = nir.LIF(tau=np.full(n, tau), r=np.full(n, NO_LEAK_STEPS), v_leak=zeros, v_threshold=thr,
                           v_reset=zeros, metadata=meta)
        elif layer.neuron == "lif" and layer.lam == 0:
            node = nir.IF(r=np.ones(n), v_threshold=thr, v_reset=zeros, metadata=meta)
        elif layer.neuron == "lif" and reader == "norse":
            d = dt / tau_mem
            node = nir.LIF(tau=np.full(n, tau_mem), r=np.ones(n), v_leak=zeros, v_threshold=thr * d, v_reset=zeros,
                           metadata=meta)
        elif layer.neuron == "lif":
            node = nir.LIF(tau=np.full(n, tau_mem), r=np.full(n, tau_mem / dt), v_leak=zeros, v_threshold=thr,
                           v_reset=zeros, metadata=meta)
        else:
            tau_syn = _time_constant(layer.alpha, layer.frac_bits, dt)
            node = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, tau_mem / dt),
                               v_leak=zeros, v_threshold=thr, v_reset=zeros, w_in=np.full(n, tau_syn / dt),
                               metadata=meta)
        nodes[f"lif{k}"] = node
        edges += [("input" if k == 0 else f"lif{k - 1}", f"fc{k}"), (f"fc{k}", f"lif{k}")]
        if layer.is_recurrent:
            # the loop's edges before the edge to the next layer: nirtorch's executor (Norse's reader) runs the
            # nodes in that order and takes the last one it runs before the output as the graph's output
            nodes[f"rec{k}"] = nir.Linear(weight=layer.recurrent.astype(np.float64))
            edges += [(f"lif{k}", f"rec{k}"), (f"rec{k}", f"lif{k}")]
    nodes["output"] = nir.Output(output_type={"output": np.array([network.n_out])})
    edges.append((f"lif{len(network.layers) - 1}", "output"))
    metadata = {META + "profile": PROFILE, META + "dt": dt, META + "frac_bits": frac.pop(), META + "producer": producer}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(network: Network, path, *, dt: float = DEFAULT_DT, reader: str | None = None) -> Path:
    """`to_nir` and write the graph to ``path`` (HDF5, as `nir.write` does)."""
    nir = _nir()
    graph = to_nir(network, dt=dt, reader=reader)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)
    return path


def model_to_nir(model, *, calibration=None, dt: float = DEFAULT_DT, **export_kwargs):
    """Export a trained `BinarySNN` (`spikeloop.quant.export.export`) and write it as a NIR graph;
    returns ``(graph, network, export_report)``."""
    from .export import export

    network, report = export(model, calibration=calibration, **export_kwargs)
    return to_nir(network, dt=dt), network, report
