"""A naive scalar reference of the numerics contract, written straight from docs/numerics.md.

Plain Python integers (unbounded) and explicit loops over batch, time, layer, neuron and
input: no numpy arithmetic, nothing shared with `spikeloop.golden` or `spikeloop.quant`.
It is slow on purpose and only meant for the small networks of the property tests.

Besides the outputs it counts the corners it went through (`RefResult.events`), so that
tests can assert that a corner really occurred instead of passing vacuously.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

NEURONS = ("lif", "cuba")
RESETS = ("subtract", "zero", "none", "subtract_next")
ROUNDINGS = ("floor", "zero", "nearest")


def sat(x: int, bits: int) -> int:
    """sat_N(x) = min(max(x, -2^(N-1)), 2^(N-1) - 1)."""
    lo = -(2 ** (bits - 1))
    hi = 2 ** (bits - 1) - 1
    return min(max(x, lo), hi)


def floor_div_pow2(x: int, frac_bits: int) -> int:
    """floor(x / 2^F) on unbounded integers (Python's // floors toward minus infinity)."""
    return x // (2**frac_bits)


def decay(x: int, factor: int, frac_bits: int, rounding: str = "floor") -> int:
    """What is left of `x` after one step of decay by factor / 2^F, rounded as `rounding` says:
    "floor": x - floor(x * factor / 2^F); with p = x * (2^F - factor), "zero": p / 2^F rounded toward
    zero; "nearest": p / 2^F rounded to the nearest integer, halves away from zero."""
    if rounding == "floor":
        return x - floor_div_pow2(x * factor, frac_bits)
    p = x * (2**frac_bits - factor)
    half = 2 ** (frac_bits - 1) if rounding == "nearest" and frac_bits > 0 else 0
    if rounding not in ("zero", "nearest"):
        raise ValueError(f"unknown rounding {rounding!r}")
    q = (abs(p) + half) // 2**frac_bits
    return q if p >= 0 else -q


def wrap(x: int, bits: int) -> int:
    """x wrapped into the two's complement range of `bits` bits."""
    return (x + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


@dataclass
class RefLayer:
    """One layer as plain Python values (lists of ints)."""

    weights: list  # [n_out][n_in] of -1/+1
    theta: list  # [n_out]
    bias: list  # [n_out]
    neuron: str = "lif"
    reset: str = "subtract"
    v_bits: int = 16
    u_bits: int = 16
    frac_bits: int = 8
    lam: int = 0
    alpha: int = 0
    decay_round: str = "floor"
    input_shift: int = 0
    bias_to: str = "current"
    u_overflow: str = "saturate"
    v_range: str = "full"

    @property
    def n_out(self) -> int:
        return len(self.weights)

    @property
    def n_in(self) -> int:
        return len(self.weights[0])

    @classmethod
    def of(cls, layer) -> RefLayer:
        """Copy a `spikeloop.network.Layer` (or anything with the same fields) into plain ints."""
        return cls(
            weights=[[int(w) for w in row] for row in layer.weights.tolist()],
            theta=[int(t) for t in layer.theta.tolist()],
            bias=[int(b) for b in layer.bias.tolist()],
            neuron=str(layer.neuron),
            reset=str(layer.reset),
            v_bits=int(layer.v_bits),
            u_bits=int(layer.u_bits),
            frac_bits=int(layer.frac_bits),
            lam=int(layer.lam),
            alpha=int(layer.alpha),
            decay_round=str(layer.decay_round),
            input_shift=int(layer.input_shift),
            bias_to=str(layer.bias_to),
            u_overflow=str(layer.u_overflow),
            v_range=str(layer.v_range),
        )


@dataclass
class RefResult:
    """Per layer k: z[k][b][t][j], v[k][b][t][j] (pre-reset v'), u[k][b][t][j];
    final state v_state[k][b][j], u_state[k][b][j]; and the corners met (`events`)."""

    z: list
    v: list
    u: list
    v_state: list
    u_state: list
    events: Counter = field(default_factory=Counter)


def zero_state(layers: list[RefLayer], batch: int) -> tuple[list, list]:
    """v and u of every layer after a clear: all zero."""
    v = [[[0 for _ in range(layer.n_out)] for _ in range(batch)] for layer in layers]
    u = [[[0 for _ in range(layer.n_out)] for _ in range(batch)] for layer in layers]
    return v, u


def run_reference(layers: list[RefLayer], spikes: list, v_state=None, u_state=None) -> RefResult:
    """Run `spikes` [B][T][n_in] (0/1 ints) through `layers`, starting from the given state
    (v_state[k][b][j], u_state[k][b][j]; all zero when None). Inputs are not modified."""
    batch = len(spikes)
    steps = len(spikes[0])
    if v_state is None or u_state is None:
        zv, zu = zero_state(layers, batch)
        v_state = zv if v_state is None else v_state
        u_state = zu if u_state is None else u_state
    # Copy the state so that the caller's lists are left alone.
    v_state = [[list(row) for row in per_layer] for per_layer in v_state]
    u_state = [[list(row) for row in per_layer] for per_layer in u_state]
    n_layers = len(layers)
    z_out = [[[None] * steps for _ in range(batch)] for _ in range(n_layers)]
    v_out = [[[None] * steps for _ in range(batch)] for _ in range(n_layers)]
    u_out = [[[None] * steps for _ in range(batch)] for _ in range(n_layers)]
    events = Counter()

    for b in range(batch):
        for t in range(steps):
            s = [int(x) for x in spikes[b][t]]
            for k in range(n_layers):
                layer = layers[k]
                assert len(s) == layer.n_in
                v_lo, v_hi = -(2 ** (layer.v_bits - 1)), 2 ** (layer.v_bits - 1) - 1
                if layer.v_range == "symmetric":
                    v_lo += 1
                u_lo, u_hi = -(2 ** (layer.u_bits - 1)), 2 ** (layer.u_bits - 1) - 1
                rounding, F = layer.decay_round, layer.frac_bits
                z_row, v_row, u_row = [], [], []
                for j in range(layer.n_out):
                    # a[j] = (sum_i w[j,i] * s[i]) * 2^k + bias[j] (bias to the current)   (not saturated)
                    acc = 0
                    for i in range(layer.n_in):
                        acc += layer.weights[j][i] * s[i]
                    a = acc * 2**layer.input_shift
                    b_v = 0
                    if layer.bias_to == "current":
                        a += layer.bias[j]
                    else:
                        b_v = layer.bias[j]
                        events["bias_to_membrane"] += 1

                    u_prev = u_state[k][b][j]
                    v_prev = v_state[k][b][j]
                    if layer.neuron == "lif":
                        u = a
                    elif layer.neuron == "cuba":
                        u_raw = decay(u_prev, layer.alpha, F, rounding) + a
                        if layer.u_overflow == "wrap":
                            u = wrap(u_raw, layer.u_bits)
                            if u != u_raw:
                                events["u_wrap"] += 1
                        else:
                            u = sat(u_raw, layer.u_bits)
                            if u_raw > u_hi:
                                events["u_sat_hi"] += 1
                            if u_raw < u_lo:
                                events["u_sat_lo"] += 1
                    else:
                        raise ValueError(f"unknown neuron {layer.neuron!r}")

                    theta = layer.theta[j]
                    kept = decay(v_prev, layer.lam, F, rounding)
                    if rounding == "nearest" and F and (abs(v_prev) * (2**F - layer.lam)) % 2**F == 2 ** (F - 1):
                        events["round_tie"] += 1
                    if 0 < v_prev and kept < v_prev and v_prev * layer.lam < 2**F:
                        events["small_leaked"] += 1
                    v_raw = kept + u + b_v
                    if layer.reset == "subtract_next" and v_prev >= theta:
                        v_raw -= theta
                        events["subtract_next"] += 1
                    v_pre = min(max(v_raw, v_lo), v_hi)
                    if v_raw > v_hi:
                        events["v_sat_hi"] += 1
                    if v_raw < v_lo:
                        events["v_sat_lo"] += 1

                    theta = layer.theta[j]
                    z = 1 if v_pre >= theta else 0
                    if v_pre == theta:
                        events["v_eq_theta"] += 1
                    if z:
                        events["spike"] += 1
                        if k == n_layers - 1:
                            events["output_spike"] += 1

                    if layer.reset == "subtract":
                        v = v_pre - theta * z
                    elif layer.reset == "zero":
                        v = v_pre * (1 - z)
                    elif layer.reset in ("none", "subtract_next"):
                        v = v_pre
                    else:
                        raise ValueError(f"unknown reset {layer.reset!r}")
                    # The contract: v after any reset stays inside the v_bits range.
                    assert v_lo <= v <= v_hi, (v, layer)

                    v_state[k][b][j] = v
                    u_state[k][b][j] = u
                    z_row.append(z)
                    v_row.append(v_pre)
                    u_row.append(u)
                z_out[k][b][t] = z_row
                v_out[k][b][t] = v_row
                u_out[k][b][t] = u_row
                # Layer k+1 sees layer k's spikes of the same timestep.
                s = z_row
    return RefResult(z_out, v_out, u_out, v_state, u_state, events)
