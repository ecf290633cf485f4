"""The golden model in PyTorch: the numerics contract (docs/numerics.md), integer-exact.

A pure step function with explicit typed state (`lif_step`), vectorized over batch and
neurons, a whole-sequence path (`run`) that computes every timestep's synaptic sums in one
matrix product per layer, and a module wrapper (`GoldenModel`). `spikeloop.golden` is the
numpy twin, held equal to this one by the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeloop.network import Layer, Network, signed_range
from spikeloop.spikes import check_spikes


class LIFState(NamedTuple):
    """State carried between timesteps: membranes `v` and currents `u`, int64 [B, n_out]."""

    v: torch.Tensor
    u: torch.Tensor


class LIFOutput(NamedTuple):
    """One layer's output for one timestep: spikes `z` (bool), pre-reset membranes `v`, currents `u` (int64)."""

    z: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor


class GoldenTrace(NamedTuple):
    """Result of a sequence run: the last layer's spikes (bool) and pre-reset membranes (int64) with the
    input's leading shape, every layer's final state, and per-layer outputs when recorded (else None)."""

    spikes: torch.Tensor
    membranes: torch.Tensor
    states: tuple[LIFState, ...]
    layers: tuple[LIFOutput, ...] | None = None


class LayerParams(NamedTuple):
    """A layer's parameters as tensors, ready for `lif_step` and `synaptic_input`."""

    weights_t: torch.Tensor  # float32 [n_in, n_out], +/-1
    theta: torch.Tensor  # int64 [n_out]
    bias: torch.Tensor  # int64 [n_out]
    neuron: str
    reset: str
    v_range: tuple[int, int]
    u_range: tuple[int, int]
    frac_bits: int
    lam: int
    alpha: int

    @classmethod
    def of(cls, layer: Layer, device=None) -> LayerParams:
        """Convert a validated `Layer`."""
        return cls(
            torch.as_tensor(layer.weights.T.copy(), dtype=torch.float32, device=device),
            torch.as_tensor(layer.theta.copy(), dtype=torch.int64, device=device),
            torch.as_tensor(layer.bias.copy(), dtype=torch.int64, device=device),
            layer.neuron, layer.reset, signed_range(layer.v_bits), signed_range(layer.u_bits),
            layer.frac_bits, layer.lam, layer.alpha,
        )


def synaptic_input(s: torch.Tensor, p: LayerParams) -> torch.Tensor:
    """a = sum_i w[j,i] s[i] + bias[j]; s is 0/1 [..., n_in]. Exact: |sum| <= n_in < 2^24 in float32."""
    if p.weights_t.shape[0] >= 1 << 24:
        raise ValueError(f"n_in = {p.weights_t.shape[0]}: float32 sums are exact only below 2^24")
    return (s.to(torch.float32) @ p.weights_t).to(torch.int64) + p.bias


def lif_step(a: torch.Tensor, state: LIFState, p: LayerParams) -> tuple[LIFOutput, LIFState]:
    """One timestep of one layer given synaptic input `a` (int64 [B, n_out]).

    u  = a                                                   (lif)
    u  = sat_U(u_prev - ((u_prev * alpha) >> F) + a)         (cuba)
    v' = sat_V(v_prev - ((v_prev * lam) >> F) + u);  z = v' >= theta
    v  = v' - theta*z (subtract) | v'*(1-z) (zero) | v' (none)
    """
    if p.neuron == "cuba":
        u = (state.u - ((state.u * p.alpha) >> p.frac_bits) + a).clamp_(*p.u_range)
    else:
        u = a
    v_pre = (state.v - ((state.v * p.lam) >> p.frac_bits) + u).clamp_(*p.v_range)
    z = v_pre >= p.theta
    if p.reset == "subtract":
        v = v_pre - p.theta * z
    elif p.reset == "zero":
        v = v_pre.masked_fill(z, 0)
    else:
        v = v_pre
    return LIFOutput(z, v_pre, u), LIFState(v, u if p.neuron == "cuba" else state.u)


def zero_state(n_out: int, batch: int = 1, device=None) -> LIFState:
    """The state after a clear."""
    zeros = torch.zeros(batch, n_out, dtype=torch.int64, device=device)
    return LIFState(zeros, zeros.clone())


class GoldenModel(torch.nn.Module):
    """The golden model of a `Network` as a module.

    `step(s, states)` advances one timestep (for closed loops); `forward(spikes)` runs a whole
    sequence and returns the last layer's spikes; `run(spikes, record=True)` also returns every
    layer's spikes, membranes and currents.
    """

    def __init__(self, network: Network, device=None):
        super().__init__()
        self.network = network
        self.params = [LayerParams.of(layer, device) for layer in network.layers]
        self.device = device

    def initial_state(self, batch: int = 1) -> tuple[LIFState, ...]:
        """All-zero state of every layer."""
        return tuple(zero_state(p.theta.shape[0], batch, self.device) for p in self.params)

    def step(self, s, states: tuple[LIFState, ...]) -> tuple[tuple[LIFOutput, ...], tuple[LIFState, ...]]:
        """One timestep: s is 0/1 [B, n_in]; layer k+1 sees layer k's spikes of this timestep."""
        x = torch.as_tensor(s, device=self.device)
        outs, new = [], []
        for p, state in zip(self.params, states):
            out, st = lif_step(synaptic_input(x, p), state, p)
            outs.append(out)
            new.append(st)
            x = out.z
        return tuple(outs), tuple(new)

    def run(self, spikes, *, record: bool = False, states=None) -> GoldenTrace:
        """Whole sequence, spikes [T, n_in] or [B, T, n_in] (0/1, numpy or torch).

        Layer by layer: every timestep's synaptic sums in one matrix product, then the recurrence.
        `states` continues from a previous run's `GoldenTrace.states`.
        """
        s, batched = check_spikes(spikes, self.network.n_in)
        x = torch.from_numpy(s).to(self.device)
        batch, steps = x.shape[:2]
        states = states if states is not None else self.initial_state(batch)
        recorded, finals = [], []
        for p, state in zip(self.params, states):
            a = synaptic_input(x, p)  # [B, T, n_out], all timesteps in one product
            zs, vs, us = [], [], []
            for t in range(steps):
                out, state = lif_step(a[:, t], state, p)
                zs.append(out.z)
                vs.append(out.v)
                us.append(out.u)
            recorded.append(LIFOutput(torch.stack(zs, 1), torch.stack(vs, 1), torch.stack(us, 1)))
            finals.append(state)
            x = recorded[-1].z
        if not batched:
            recorded = [LIFOutput(*(t[0] for t in r)) for r in recorded]
        return GoldenTrace(recorded[-1].z, recorded[-1].v, tuple(finals), tuple(recorded) if record else None)

    def forward(self, spikes) -> torch.Tensor:
        """Output spikes of the last layer for a whole sequence."""
        return self.run(spikes).spikes
