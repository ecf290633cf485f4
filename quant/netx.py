"""lava-dl netx HDF5 in: a network as Lava 0.10 runs it on its bit-accurate Loihi models, as a contract v2 `Network`.

`from_netx(path)` reads the file lava-dl writes (``layer/<k>/{type, shape, weight, bias, neuron/...}``) and
maps every ``dense`` block to a cuba layer with Loihi's options (`LOIHI`); anything the contract cannot
express is refused with `NetxError` naming the block, the field, the value and what was expected, every
problem of a file at once. `lava_trace` replays what Lava's monitors record (Lava's Dense delays each layer
by one timestep) and `lava_states` starts `spikeloop.golden.run` so that it reproduces that record.
docs/lava.md has the mapping table, the timing and the facts it rests on (read from Lava 0.10 and
lava-dl 0.6 and checked against the recorded fixtures in tests/fixtures/lava).

Needs h5py (installed with nir: the train extra), neither torch nor Lava.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spikeloop import golden
from spikeloop.network import Layer, Network, NetworkError

#: Loihi's alignment shift: the synaptic input and the threshold mantissa are shifted left by 6 bits, and
#: netx gives every bias mantissa the exponent 6.
LOIHI_SHIFT = 6
#: The contract options of every imported layer: Lava's PyLifModelBitAcc (12-bit decays, 24-bit u and v).
LOIHI = {
    "neuron": "cuba", "reset": "zero", "v_bits": 24, "u_bits": 24, "frac_bits": 12, "decay_round": "zero",
    "bias_to": "membrane", "u_overflow": "wrap", "v_range": "symmetric",
}
DECAY_RANGE = (0, 1 << 12)  # iDecay, vDecay: netx passes du = iDecay - 1 and Lava decays u by du + 1
VTH_MANT_RANGE = (0, (1 << 17) - 1)  # Loihi's unsigned 17-bit threshold mantissa
BIAS_MANT_RANGE = (-(1 << 12), (1 << 12) - 1)  # Loihi's signed 13-bit bias mantissa
MAX_WEIGHT = 128  # the largest uniform magnitude netx's weight scaling keeps exact (lava-dl writes -256..254)
NEURON_TYPES = ("CUBA", "LOIHI")  # the netx neuron types Lava runs as LIF
REF_DELAY_MAX = 1  # lava-dl writes 1 for every CUBA neuron; Lava's LIF has no refractory period


class NetxError(ValueError):
    """A netx file cannot be imported as a contract network."""


@dataclass(frozen=True)
class NetxLayerReport:
    """How one netx dense block became a contract layer."""

    index: int
    block: str  # "layer/<k>"
    n_in: int
    n_out: int
    weight: int  # c: every file weight is +c or -c
    signs: str  # "mixed" or "positive"
    input_shift: int  # 6 + log2(c)
    alpha: int  # iDecay
    lam: int  # vDecay
    vth_mant: int
    theta: int
    bias: tuple[int, int] | None  # contract bias (bias mantissa << 6), None when the block has none

    def __str__(self) -> str:
        bias = "none" if self.bias is None else f"[{self.bias[0]}, {self.bias[1]}] (file bias << {LOIHI_SHIFT})"
        return "\n".join([
            f"layer {self.index}: {self.block}, dense {self.n_in} -> {self.n_out}",
            f"  weights +/-{self.weight} ({self.signs}) -> +/-1 with input_shift = {self.input_shift}",
            (f"  alpha = {self.alpha} (iDecay), lam = {self.lam} (vDecay), theta = {self.theta} "
             f"(vThMant {self.vth_mant} << {LOIHI_SHIFT}, + 1), bias {bias}"),
        ])


@dataclass(frozen=True)
class NetxReport:
    """What `from_netx` did: one entry per layer and what a user comparing with Lava must know."""

    path: str
    layers: tuple[NetxLayerReport, ...]
    warnings: tuple[str, ...]

    def __str__(self) -> str:
        options = ", ".join(f"{k} {v}" for k, v in LOIHI.items())
        lines = [f"netx import of {self.path} (Lava 0.10 PyLifModelBitAcc: {options})"]
        lines += [str(layer) for layer in self.layers]
        lines.append("timing: each Dense delays by one step: without biases Lava's layer k at step t is spikeloop's "
                     "layer k at step t-(k+1); lava_trace and lava_states cover biases too (docs/lava.md)")
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


class Imported(NamedTuple):
    """The result of `from_netx`."""

    network: Network
    report: NetxReport


# ---------------------------------------------------------------------------------------------
# Reading


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py comes with nir, part of the train extra
        raise NetxError("netx import needs h5py: pip install spikeloop[train]") from e
    return h5py


def _text(value) -> str:
    """A string dataset as lava-dl writes it (bytes, a 1-element array of bytes, or str)."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    return value.decode("ascii", "replace") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _scalar(block: str, field: str, value, lo: int, hi: int, expected: str) -> tuple[int | None, str | None]:
    """An integer field in [lo, hi]: (value, None) or (None, problem)."""
    arr = np.asarray(value).reshape(-1)
    if arr.size == 0 or arr.dtype.kind not in "biuf" or not np.isfinite(arr).all() or (arr % 1).any():
        return None, f"{block}: {field} = {value!r}, expected one integer ({expected})"
    if (arr != arr[0]).any():  # lava-dl writes one per neuron when its parameters are not shared
        return None, (f"{block}: {field} holds {np.unique(arr).size} different values from {arr.min():g} to "
                      f"{arr.max():g}, expected one for the layer (the contract has one per layer)")
    x = int(arr[0])
    if not lo <= x <= hi:
        return None, f"{block}: {field} = {x}, expected an integer in [{lo}, {hi}] ({expected})"
    return x, None


def _integers(block: str, field: str, arr: np.ndarray) -> str | None:
    """A problem when `arr` is not all integers (netx reads these fields with astype(int), truncating)."""
    if arr.dtype.kind not in "biuf":
        return f"{block}: {field} has dtype {arr.dtype}, expected numbers"
    bad = ~np.isfinite(arr) | (np.mod(arr, 1) != 0) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
    if bad.any():
        idx = [int(i) for i in np.argwhere(bad)[0]] if arr.ndim else []
        return (f"{block}: {field}{idx} = {arr[tuple(idx)]!r}, expected an integer (netx truncates it toward zero; "
                "lava-dl writes integers)")
    return None


def _weights(block: str, w: np.ndarray, n_out: int) -> tuple[np.ndarray, int, str, list[str]]:
    """(+/-1 int8 [n_out, n_in], c, sign mode, problems) of a block's weight matrix."""
    problems = []
    if w.ndim == 1 and w.size % max(n_out, 1) == 0:
        w = w.reshape(n_out, -1)  # as netx reshapes a flat weight
    if w.ndim != 2 or w.shape[0] != n_out or 0 in w.shape:
        return None, 0, "", [f"{block}: weight has shape {w.shape}, expected [{n_out}, n_in] ({n_out} = shape)"]
    problem = _integers(block, "weight", w)
    if problem:
        return None, 0, "", [problem]
    w = w.astype(np.int64)
    mag = np.abs(w)
    c = int(mag.flat[0])
    bad = mag != c
    if bad.any():
        idx = [int(i) for i in np.argwhere(bad)[0]]
        problems.append(f"{block}: weight{idx} = {w[tuple(idx)]}, expected +{c} or -{c} like weight[0, 0] (the "
                        "contract's weights are binary: every weight of a layer must have one magnitude)")
    elif c == 0 or c > MAX_WEIGHT or c & (c - 1):
        problems.append(f"{block}: weight magnitude {c}, expected a power of two from 1 to {MAX_WEIGHT} (it becomes "
                        "the input shift; larger ones netx rescales inexactly)")
    elif (w < 0).all():
        problems.append(f"{block}: every weight is -{c}, expected at least one positive weight (Lava 0.10 runs an "
                        "all-inhibitory netx layer with zero weights: netx's scaling to -256 is clipped to -255 and "
                        "truncated to 0)")
    if problems:
        return None, 0, "", problems
    return np.where(w > 0, 1, -1).astype(np.int8), c, "positive" if (w > 0).all() else "mixed", []


def _bias(block: str, group, n_out: int) -> tuple[np.ndarray | None, list[str]]:
    """The file's bias mantissas int64 [n_out] (None without one) and problems."""
    if "bias" not in group:
        return None, []
    b = np.asarray(group["bias"][()])
    problem = _integers(block, "bias", b)
    if problem:
        return None, [problem]
    if b.size == 1:
        b = np.full(n_out, b.reshape(-1)[0])
    if b.shape != (n_out,):
        return None, [f"{block}: bias has shape {b.shape}, expected [{n_out}] or one value"]
    b = b.astype(np.int64)
    lo, hi = BIAS_MANT_RANGE
    bad = (b < lo) | (b > hi)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        return None, [(f"{block}: bias[{j}] = {b[j]}, expected an integer in [{lo}, {hi}] (Loihi's 13-bit bias "
                      "mantissa; Lava would wrap it at 16 bits)")]
    return b, []


def _neuron(block: str, group) -> tuple[dict | None, list[str]]:
    """iDecay, vDecay and vThMant of a block's neuron group, or the problems that refuse it."""
    if "neuron" not in group:
        return None, [(f"{block}: no neuron group, expected a CUBA neuron (netx makes a non-spiking integrator of "
                      "a dense block without one)")]
    neuron = group["neuron"]
    kind = _text(neuron["type"][()]) if "type" in neuron else "(missing)"
    if kind not in NEURON_TYPES:
        return None, [(f"{block}: neuron/type = {kind!r}, expected one of {', '.join(NEURON_TYPES)} (Lava's LIF; "
                      "sigma-delta and resonate-and-fire neurons have no contract equivalent)")]
    problems = []
    graded = np.asarray(neuron["gradedSpike"][()]) if "gradedSpike" in neuron else np.asarray(False)
    if graded.any():
        problems.append(f"{block}: neuron/gradedSpike = {bool(graded.any())}, expected False (graded spikes carry "
                        "integers; contract spikes are 0/1)")
    if "messageBits" in neuron:
        _, problem = _scalar(block, "neuron/messageBits", neuron["messageBits"][()], 0, 0, "binary spikes")
        problems += [problem] if problem else []
    if "refDelay" in neuron:
        _, problem = _scalar(block, "neuron/refDelay", neuron["refDelay"][()], 0, REF_DELAY_MAX,
                             "no refractory period: Lava's LIF has none and lava-dl writes 1")
        problems += [problem] if problem else []
    if "weight_exp" in neuron:
        _, problem = _scalar(block, "neuron/weight_exp", neuron["weight_exp"][()], 0, 0,
                             "netx 0.6 ignores this normalization exponent, so Lava runs a different network")
        problems += [problem] if problem else []
    fields = {}
    for field, (lo, hi), what in (("iDecay", DECAY_RANGE, "current decay of 2^12"),
                                  ("vDecay", DECAY_RANGE, "voltage decay of 2^12"),
                                  ("vThMant", VTH_MANT_RANGE, "Loihi's 17-bit threshold mantissa")):
        if field not in neuron:
            problems.append(f"{block}: neuron/{field} is missing, expected an integer in [{lo}, {hi}] ({what})")
            continue
        fields[field], problem = _scalar(block, f"neuron/{field}", neuron[field][()], lo, hi, what)
        problems += [problem] if problem else []
    return (None if problems else fields), problems


def _blocks(f) -> list[tuple[str, object]]:
    """(name, group) of the file's layer/<k> groups in order of k."""
    if "layer" not in f:
        raise NetxError(f"no 'layer' group at the top (it has {sorted(f.keys())}); expected a netx file as "
                        "lava-dl's export_hdf5 writes it")
    keys = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
    bad = [k for k in keys if not k.isdigit()]
    if bad:
        raise NetxError(f"layer/{bad[0]}: expected groups named 0, 1, 2, ... under 'layer'")
    if not keys:
        raise NetxError("the 'layer' group is empty; expected at least one dense block")
    return [(f"layer/{k}", f["layer"][k]) for k in keys]


def from_netx(path) -> Imported:
    """Import a lava-dl netx HDF5 file as a contract v2 `Network` that runs as Lava 0.10 runs it.

    Each ``dense`` block becomes a cuba layer with `LOIHI`'s options: weights +/-c (c a power of two up
    to 128) become +/-1 with ``input_shift = 6 + log2(c)``, ``alpha = iDecay``, ``lam = vDecay``,
    ``theta = (vThMant << 6) + 1``, ``bias = bias << 6`` into the membrane (docs/lava.md). An ``input``
    block without a neuron only names the input shape. Returns ``(network, report)``.
    """
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise NetxError(f"{path}: no such netx file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise NetxError(f"{path}: not an HDF5 file ({e})") from e
    with f:
        try:
            layers, reports, warnings = _import(_blocks(f))
        except NetxError as e:
            raise NetxError(f"{path}: {e}") from None
    try:
        network = Network(tuple(layers))
    except NetworkError as e:  # pragma: no cover - every field was checked above
        raise NetxError(f"{path}: {e}") from e
    return Imported(network, NetxReport(str(path), tuple(reports), tuple(warnings)))


def _import(blocks):
    h5py = _h5py()
    layers, reports, problems, warnings = [], [], [], []
    n_prev = None  # outputs of the previous block (the input shape before the first dense block)
    dense = 0  # dense blocks seen
    for name, group in blocks:
        kind = _text(group["type"][()]) if "type" in group else "(missing)"
        shape = np.asarray(group["shape"][()]).reshape(-1) if "shape" in group else None
        if kind == "input" and not layers:
            if "neuron" in group:
                problems.append(f"{name}: an input block with a neuron, expected none (netx feeds it through the "
                                "neuron's bias: graded input the contract does not have)")
            elif shape is not None:
                n_prev = int(np.prod(shape))
            continue
        if kind != "dense":
            problems.append(f"{name}: type = {kind!r}, expected 'dense' (spikeloop imports chains of dense blocks; "
                            "conv, pool, flatten, recurrent and complex blocks have no contract equivalent)")
            break  # what follows would be misread
        if "delay" in group:
            problems.append(f"{name}: has axonal delays ('delay'), expected none (the contract has no synaptic "
                            "delays)")
            continue
        if "weight" not in group or isinstance(group["weight"], h5py.Group):
            problems.append(f"{name}: weight is {'missing' if 'weight' not in group else 'a group (complex)'}, "
                            "expected a real [n_out, n_in] matrix")
            continue
        if shape is None:
            problems.append(f"{name}: shape is missing, expected the number of neurons")
            continue
        n_out = int(np.prod(shape))
        dense += 1
        w, c, signs, errs = _weights(name, np.asarray(group["weight"][()]), n_out)
        bias, bias_errs = _bias(name, group, n_out)
        params, neuron_errs = _neuron(name, group)
        errs += bias_errs + neuron_errs
        if w is not None and n_prev is not None and w.shape[1] != n_prev:
            errs.append(f"{name}: weight has {w.shape[1]} inputs, expected {n_prev} (the "
                        f"{'input size' if dense == 1 else 'previous block size'})")
        n_prev = n_out
        if errs:
            problems += errs
            continue
        shift = LOIHI_SHIFT + c.bit_length() - 1
        theta = np.full(n_out, (params["vThMant"] << LOIHI_SHIFT) + 1, np.int64)
        b = np.zeros(n_out, np.int64) if bias is None else bias << LOIHI_SHIFT
        index = len(layers)
        try:
            layer = Layer(w, theta=theta, bias=b, alpha=params["iDecay"], lam=params["vDecay"], input_shift=shift,
                          where=f"{name} (layer {index})", **LOIHI)
        except NetworkError as e:  # pragma: no cover - every field was checked above
            problems.append(str(e))
            continue
        if w.shape[1] * c << LOIHI_SHIFT > 1 << 24:
            warnings.append(f"{name}: one step's synaptic input can reach {w.shape[1] * c << LOIHI_SHIFT} > 2^24, so "
                            "u can pass +/-3*2^23, which Lava's single wrap leaves outside 24 bits (docs/lava.md)")
        layers.append(layer)
        reports.append(NetxLayerReport(
            index, name, w.shape[1], n_out, c, signs, shift, params["iDecay"], params["vDecay"], params["vThMant"],
            int(theta[0]), None if bias is None else (int(b.min()), int(b.max())),
        ))
    if not problems and not layers:
        problems.append("no dense block; expected at least one")
    if problems:
        raise NetxError(problems[0] if len(problems) == 1 else
                        f"{len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems))
    return layers, reports, warnings


# ---------------------------------------------------------------------------------------------
# Lava's timing


def _delayed(x: np.ndarray) -> np.ndarray:
    """x [T, n] one timestep later: Lava's Dense sends at step t what it summed at step t-1 (zeros at t = 0)."""
    return np.concatenate([np.zeros_like(x[:1]), x[:-1]])


def lava_trace(network: Network, spikes, *, engine: str = "auto") -> tuple[golden.LayerStep, ...]:
    """What Lava's monitors record when ``network`` (as `from_netx` made it) runs in Lava on ``spikes``.

    ``spikes``: 0/1 [T, n_in], row t sent by Lava's ring buffer at its step t+1 (Lava counts from 1). Per layer
    ``LayerStep(z, v, u)`` [T, n_out] in Lava's steps: Lava's layer k sees layer k-1's spikes of the
    previous step (the input's for k = 0), so each layer runs alone on its input delayed by one step
    (`spikeloop.golden.run` on a one-layer network), biases acting from the first step. ``v`` is after
    the reset, as Lava's ``v`` variable is (the contract's records keep the pre-reset ``v'``).
    """
    x, _ = _check(network, spikes)
    out = []
    for layer in network.layers:
        rec = golden.run(Network((layer,)), _delayed(x), record=True, engine=engine).layers[0]
        out.append(golden.LayerStep(rec.z, np.where(rec.z, 0, rec.v), rec.u))
        x = rec.z
    return tuple(out)


def lava_states(network: Network) -> tuple[golden.LayerState, ...]:
    """Initial states with which ``spikeloop.golden.run(network, delayed_input, states=...)`` reproduces Lava.

    With ``delayed_input`` the spikes one step later (a zero row first, the last row dropped), layer k
    of that run at step j is Lava's layer k at step j + k. Layer k's state is where Lava's layer k is
    after its first k steps, which it runs before any input reaches it (driven by its bias and the
    spikes the bias makes upstream); all zero for a network without biases, where Lava's layer k at
    step t is simply ``golden.run(network, spikes)``'s layer k at step t - (k+1).
    """
    depth = len(network.layers)
    fill = lava_trace(network, np.zeros((max(depth - 1, 1), network.n_in), np.uint8))
    states = []
    for k, layer in enumerate(network.layers):
        if k == 0:
            states.append(golden.LayerState.zeros(layer))
            continue
        # layer k alone on its first k delayed inputs (the upstream record of the fill), its final state
        x = _delayed(fill[k - 1].z[:k])
        states.append(golden.run(Network((layer,)), x).states[0])
    return tuple(states)


def _check(network: Network, spikes) -> tuple[np.ndarray, int]:
    if not isinstance(network, Network):
        raise NetxError(f"expected a Network, got {type(network).__name__}")
    x = np.asarray(spikes)
    if x.ndim != 2 or x.shape[1] != network.n_in or x.shape[0] < 1:
        raise NetxError(f"spikes have shape {x.shape}, expected [T, {network.n_in}] (one sequence, T >= 1)")
    if x.dtype.kind not in "biu" or ((x != 0) & (x != 1)).any():
        raise NetxError("spikes must be 0/1 integers or booleans")
    return x.astype(np.uint8), x.shape[0]
