"""The golden model in numpy: the numerics contract (docs/numerics.md), for places without torch.

`spikeloop.quant.golden` is the PyTorch twin; the tests hold the two equal. Both are pure:
`(input, state, layer) -> (output, new_state)`, state explicit, nothing hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeloop.network import Layer, Network, signed_range
from spikeloop.spikes import check_spikes


@dataclass(frozen=True)
class LayerState:
    """State of one layer carried between timesteps: membranes `v` and currents `u`, int64 [B, n_out]."""

    v: np.ndarray
    u: np.ndarray

    @classmethod
    def zeros(cls, layer: Layer, batch: int = 1) -> LayerState:
        """The state after a clear: all zero."""
        return cls(np.zeros((batch, layer.n_out), np.int64), np.zeros((batch, layer.n_out), np.int64))


@dataclass(frozen=True)
class LayerStep:
    """What one layer produced in one timestep: spikes `z` (bool), pre-reset membranes `v`, currents `u`."""

    z: np.ndarray
    v: np.ndarray
    u: np.ndarray


@dataclass(frozen=True)
class Trace:
    """Result of running a sequence.

    `spikes`: the last layer's spikes, bool [B, T, n_out] (or [T, n_out] for unbatched input).
    `membranes`: the last layer's pre-reset membranes v', int64, same leading shape.
    `states`: every layer's state after the last timestep (pass it back to continue).
    `layers`: per layer (spikes, membranes, currents) when recording was requested, else None.
    """

    spikes: np.ndarray
    membranes: np.ndarray
    states: tuple[LayerState, ...]
    layers: tuple[LayerStep, ...] | None = None


def synaptic_input(layer: Layer, s: np.ndarray) -> np.ndarray:
    """a = sum_i w[j,i] s[i] + bias[j] for 0/1 spikes s [..., n_in]; int64 [..., n_out].

    Uses a float32 matrix product, exact because |sum| <= n_in <= 65536 < 2^24.
    """
    assert layer.n_in < 1 << 24, "float32 sums are exact only below 2^24"
    w = _float_weights(layer)
    return (s.astype(np.float32) @ w).astype(np.int64) + layer.bias


def _float_weights(layer: Layer) -> np.ndarray:
    cached = getattr(layer, "_float_wt", None)
    if cached is None:
        cached = np.ascontiguousarray(layer.weights.T, dtype=np.float32)
        layer._float_wt = cached
    return cached


def _decay(x: np.ndarray, factor: int, frac_bits: int) -> np.ndarray:
    """x - floor(x * factor / 2^F)."""
    return x - ((x * factor) >> frac_bits)


def neuron_step(a: np.ndarray, state: LayerState, layer: Layer) -> tuple[LayerStep, LayerState]:
    """Advance one layer's neurons by one timestep given their synaptic input `a` (int64 [B, n_out])."""
    if layer.neuron == "cuba":
        u = np.clip(_decay(state.u, layer.alpha, layer.frac_bits) + a, *signed_range(layer.u_bits))
    else:
        u = a
    v_pre = np.clip(_decay(state.v, layer.lam, layer.frac_bits) + u, *signed_range(layer.v_bits))
    z = v_pre >= layer.theta
    if layer.reset == "subtract":
        v = v_pre - layer.theta * z
    elif layer.reset == "zero":
        v = np.where(z, 0, v_pre)
    else:
        v = v_pre
    return LayerStep(z, v_pre, u), LayerState(v, u if layer.neuron == "cuba" else state.u)


def initial_state(network: Network, batch: int = 1) -> tuple[LayerState, ...]:
    """All-zero state for every layer."""
    return tuple(LayerState.zeros(layer, batch) for layer in network.layers)


def network_step(
    network: Network, s: np.ndarray, states: tuple[LayerState, ...]
) -> tuple[tuple[LayerStep, ...], tuple[LayerState, ...]]:
    """One timestep of the whole network for input spikes s (bool [B, n_in]); layers chain within the step."""
    steps, new_states = [], []
    x = s
    for layer, state in zip(network.layers, states):
        out, new = neuron_step(synaptic_input(layer, x), state, layer)
        steps.append(out)
        new_states.append(new)
        x = out.z
    return tuple(steps), tuple(new_states)


def run(network: Network, spikes, *, record: bool = False, states=None) -> Trace:
    """Run a whole sequence: spikes [T, n_in] or [B, T, n_in] (0/1).

    Layer by layer: all timesteps' synaptic sums in one matrix product, then the recurrence.
    `states` (from `initial_state`) continues from a previous run; it is not modified.
    """
    s, batched = check_spikes(spikes, network.n_in)
    batch, steps = s.shape[:2]
    states = states if states is not None else initial_state(network, batch)
    x = s
    recorded, finals = [], []
    for layer, state in zip(network.layers, states):
        a = synaptic_input(layer, x)  # [B, T, n_out]
        z = np.empty(a.shape, np.bool_)
        v = np.empty(a.shape, np.int64)
        u = np.empty(a.shape, np.int64)
        for t in range(steps):
            out, state = neuron_step(a[:, t], state, layer)
            z[:, t], v[:, t], u[:, t] = out.z, out.v, out.u
        recorded.append(LayerStep(z, v, u))
        finals.append(state)
        x = z
    last = recorded[-1]
    unbatch = (lambda x: x) if batched else (lambda x: x[0])
    layers = tuple(LayerStep(unbatch(r.z), unbatch(r.v), unbatch(r.u)) for r in recorded) if record else None
    return Trace(unbatch(last.z), unbatch(last.v), tuple(finals), layers)
