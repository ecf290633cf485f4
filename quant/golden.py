"""The golden model in PyTorch: an adapter on the engine of `spikeloop.golden`.

`lif_step` is the contract's step (docs/numerics.md) in torch: pure, explicit typed state,
vectorized over batch and neurons. The integer golden model below runs it on int64 tensors;
the training model (`spikeloop.quant.models.BinaryLIF`) runs the very same function on
float tensors with straight-through roundings and surrogate spikes, so what is trained is what
is deployed. `GoldenModel` wraps a `Network` as a module.

`GoldenModel.run` on the CPU hands the sequence to `spikeloop.golden.run` (its native kernel,
or an int8 matrix product (`torch._int_mm`) and an in-place numpy recurrence); `engine="torch"`
is the plain tensor loop over `lif_step`. All are integer-exact and tested equal
(tests/test_golden_fast.py). For closed loops, `GoldenModel.stepper()` returns the streaming
`spikeloop.golden.Stepper`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from spikeloop import golden as np_golden
from spikeloop.network import Layer, Network, signed_range, v_range_bounds
from spikeloop.spikes import check_spikes, check_step

__all__ = [
    "ENGINES", "GoldenModel", "GoldenTrace", "LIFOutput", "LIFState", "LayerParams", "kept", "lif_step",
    "observe", "recurrent_input", "round_shift", "synaptic_input", "threshold", "zero_state",
]

ENGINES = ("auto", "native", "numpy", "torch")  # of `GoldenModel.run`


class LIFState(NamedTuple):
    """State carried between timesteps: membranes `v` and currents `u`, int64 [B, n_out], and the spikes `z`
    of the previous timestep [B, n_out] (a recurrent layer's extra inputs; None: none, as after a clear)."""

    v: torch.Tensor
    u: torch.Tensor
    z: torch.Tensor | None = None


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
    """A layer's parameters as tensors, ready for `lif_step` and `synaptic_input`.

    `LayerParams.of(layer)` gives the contract's integers; the training model fills the same
    fields with float tensors (with gradients) and, before its widths are chosen, ranges of
    None (no saturation).
    """

    weights_t: torch.Tensor  # float32 [n_in, n_out], +/-1
    theta: torch.Tensor  # int64 [n_out]
    bias: torch.Tensor  # int64 [n_out]
    neuron: str
    reset: str
    v_range: tuple[int, int] | None
    u_range: tuple[int, int] | None
    frac_bits: int
    lam: int | torch.Tensor
    alpha: int | torch.Tensor
    decay_round: str = "floor"  # contract v2's options (docs/numerics.md); the defaults are v1's
    input_shift: int = 0
    membrane_bias: torch.Tensor | None = None  # the bias when it enters the membrane (bias is then 0)
    u_wrap: int | None = None  # u_bits when the current wraps instead of saturating
    recurrent_t: torch.Tensor | None = None  # float32 [n_out, n_out], +/-1: r transposed (recurrent layers)

    @classmethod
    def of(cls, layer: Layer, device=None) -> LayerParams:
        """Convert a validated `Layer`."""
        def ints(x):
            return torch.as_tensor(x.copy(), dtype=torch.int64, device=device)

        return cls(
            torch.as_tensor(layer.weights.T.copy(), dtype=torch.float32, device=device),
            ints(layer.theta), ints(layer.current_bias),
            layer.neuron, layer.reset, v_range_bounds(layer), signed_range(layer.u_bits),
            layer.frac_bits, layer.lam, layer.alpha, layer.decay_round, layer.input_shift,
            ints(layer.membrane_bias) if layer.bias_to == "membrane" else None,
            layer.u_bits if layer.u_overflow == "wrap" else None,
            None if layer.recurrent is None else torch.as_tensor(layer.recurrent.T.copy(), dtype=torch.float32,
                                                                 device=device),
        )


def synaptic_input(s: torch.Tensor, p: LayerParams) -> torch.Tensor:
    """a = (sum_i w[j,i] s[i]) << input_shift + bias[j] (the bias that enters the current); s is 0/1
    [..., n_in]. Exact: |sum| <= n_in < 2^24 in float32."""
    if p.weights_t.shape[0] >= 1 << 24:
        raise ValueError(f"n_in = {p.weights_t.shape[0]}: float32 sums are exact only below 2^24")
    return ((s.to(torch.float32) @ p.weights_t).to(torch.int64) << p.input_shift) + p.bias


def recurrent_input(z_prev: torch.Tensor | None, p: LayerParams) -> torch.Tensor | int:
    """(sum_k r[j,k] z[t-1,k]) << input_shift for a recurrent layer's previous spikes z_prev (0/1 [B, n_out];
    None: none yet), int64; 0 for a feed-forward layer (`spikeloop.golden.recurrent_input`)."""
    if p.recurrent_t is None or z_prev is None:
        return 0
    return (z_prev.to(torch.float32) @ p.recurrent_t).to(torch.int64) << p.input_shift


def round_shift(p: torch.Tensor, frac_bits: int, rounding: str) -> torch.Tensor:
    """p / 2^F rounded as `rounding` says, on integer tensors: "floor" p >> F; "zero" sign(p) * (|p| >> F);
    "nearest" sign(p) * ((|p| + 2^(F-1)) >> F) (halves away from zero; 2^(F-1) is 0 at F = 0)."""
    if rounding == "floor":
        return p >> frac_bits
    half = (1 << frac_bits) >> 1 if rounding == "nearest" else 0
    return torch.sign(p) * ((p.abs() + half) >> frac_bits)


def kept(x: torch.Tensor, factor, p: LayerParams, rounding=round_shift) -> torch.Tensor:
    """What is left of `x` after a decay by factor/2^F under `p.decay_round` (`spikeloop.golden.keep`):
    "floor" x - rounding(x*factor, F, "floor"); "zero" and "nearest" rounding(x*(2^F - factor), F, ...).

    `rounding(p, F, how)` is `round_shift` on integer tensors; the training model passes its
    straight-through version (float64 forward equal to it, identity backward) or, in float mode,
    no rounding at all (with F = 0 and real decay fractions)."""
    if p.decay_round == "floor":
        return x - rounding(x * factor, p.frac_bits, "floor")
    return rounding(x * ((1 << p.frac_bits) - factor), p.frac_bits, p.decay_round)


def _fit_current(x: torch.Tensor, p: LayerParams) -> torch.Tensor:
    """The cuba current brought into u_bits: saturated, or wrapped (`p.u_wrap`; integers or floats
    holding integers: `remainder` rounds toward minus infinity like two's complement does)."""
    if p.u_wrap is None:
        return _saturate(x, p.u_range)
    half = 1 << (p.u_wrap - 1)
    return torch.remainder(x + half, 1 << p.u_wrap) - half


def threshold(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """z = v >= theta (bool): the contract's spike."""
    return v >= theta


def _saturate(x: torch.Tensor, bounds: tuple[int, int] | None) -> torch.Tensor:
    return x if bounds is None else x.clamp(*bounds)


def observe(x: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
    """``seen``'s value with ``x``'s gradient (``x + (seen - x).detach()``); ``x`` when ``seen`` is None.

    In-the-loop training puts a core's probed values in place of the model's with it
    (`spikeloop.quant.inloop`): forward the core's, backward the model's.
    """
    if seen is None:
        return x
    return x + (seen.to(x.dtype) - x).detach()


def lif_step(
    a: torch.Tensor, state: LIFState, p: LayerParams, *, rounding=round_shift, fire=threshold,
    detach_reset: bool = False, observed: LIFOutput | None = None,
) -> tuple[LIFOutput, LIFState]:
    """One timestep of one layer given synaptic input `a` [B, n_out]: `spikeloop.golden.neuron_step` in torch.

        u  = a                                                  (lif)
        u  = fit_U(kept(u_prev, alpha) + a)                     (cuba)
        r  = theta * (v_prev >= theta) for reset "subtract_next", else 0
        v' = sat_V(kept(v_prev, lam) + u + membrane_bias - r);  z = fire(v', theta)
        v  = v' - theta*z (subtract) | v'*(1-z) (zero) | v' (none, subtract_next)

    By default on int64 tensors: `rounding` is `round_shift` (see `kept`) and `fire` is
    `threshold`, `v' >= theta` (bool z): the contract exactly. The training model passes its
    straight-through roundings and surrogate spike (0/1 floats) instead; `detach_reset` then
    keeps the gradient out of the reset's `z` (and, for "subtract_next", out of the previous
    step's spike `fire(v_prev, theta)`). A range of None in `p` does not saturate.

    `observed` (a core's `LIFOutput` of this timestep, for in-the-loop training) puts its
    currents (cuba), pre-reset membranes and spikes in place of the computed ones with `observe`,
    each before it is used: the spike is fired from the observed membrane, the next state
    follows from the observed values, and the gradient is the model's.
    """
    seen = observed if observed is not None else LIFOutput(None, None, None)
    if p.neuron == "cuba":
        u = observe(_fit_current(kept(state.u, p.alpha, p, rounding) + a, p), seen.u)
    else:
        u = a
    v_in = kept(state.v, p.lam, p, rounding) + u
    if p.membrane_bias is not None:
        v_in = v_in + p.membrane_bias
    if p.reset == "subtract_next":  # the stored v is the previous v': it spiked when v >= theta
        fired = fire(state.v, p.theta)
        v_in = v_in - p.theta * (fired.detach() if detach_reset else fired)
    v_pre = observe(_saturate(v_in, p.v_range), seen.v)
    z = fire(v_pre, p.theta)
    if seen.z is not None:
        z = observe(z, seen.z) if z.dtype != torch.bool else seen.z.to(torch.bool)
    zr = z.detach() if detach_reset else z
    if p.reset == "subtract":
        v = v_pre - p.theta * zr
    elif p.reset == "zero":  # bool z of the integer model, 0/1 floats of the training model
        v = v_pre.masked_fill(zr, 0) if zr.dtype == torch.bool else v_pre * (1 - zr)
    else:  # none, subtract_next
        v = v_pre
    return LIFOutput(z, v_pre, u), LIFState(v, u if p.neuron == "cuba" else state.u, z)


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
        self._int8_weights: dict[int, torch.Tensor] = {}  # id(layer) -> int8 [n_in, n_out], on demand

    def initial_state(self, batch: int = 1) -> tuple[LIFState, ...]:
        """All-zero state of every layer."""
        return tuple(zero_state(p.theta.shape[0], batch, self.device) for p in self.params)

    def step(self, s, states: tuple[LIFState, ...]) -> tuple[tuple[LIFOutput, ...], tuple[LIFState, ...]]:
        """One timestep: s is 0/1 [B, n_in]; layer k+1 sees layer k's spikes of this timestep."""
        x = torch.from_numpy(check_step(s, self.network.n_in)).to(self.device)
        outs, new = [], []
        for p, state in zip(self.params, states):
            out, st = lif_step(synaptic_input(x, p) + recurrent_input(state.z, p), state, p)
            outs.append(out)
            new.append(st)
            x = out.z
        return tuple(outs), tuple(new)

    def run(self, spikes, *, record: bool = False, states=None, engine: str = "auto") -> GoldenTrace:
        """Whole sequence, spikes [T, n_in] or [B, T, n_in] (0/1, numpy or torch).

        Layer by layer: every timestep's synaptic sums in one matrix product, then the recurrence.
        `states` continues from a previous run's `GoldenTrace.states`.

        `engine` chooses how, never what (all integer-exact and equal): `"auto"` on the CPU the
        native kernel of `spikeloop.golden` when available, else `"numpy"`; `"native"` that
        kernel or an error; `"numpy"` int8 matrix products and an in-place numpy recurrence;
        `"torch"` the plain tensor loop over `lif_step` (also what runs on other devices, and for
        states outside the contract's ranges).
        """
        np_golden.check_engine(engine, choices=ENGINES)
        s, batched = check_spikes(spikes, self.network.n_in)
        if engine != "torch" and torch.device(self.device or "cpu").type == "cpu":
            fast = self._run_fast(s, batched, record, states, engine)
            if fast is not None:
                return fast
        elif engine in ("native", "numpy"):
            raise ValueError(f"engine={engine!r} runs on the CPU only; this model is on {self.device}")
        return self._run_torch(s, batched, record, states)

    def _run_fast(self, s: np.ndarray, batched: bool, record: bool, states, engine: str) -> GoldenTrace | None:
        """The CPU engines of `spikeloop.golden.run`; None when the states need the plain loop."""
        batch = s.shape[0]
        np_states = None if states is None else tuple(
            np_golden.LayerState(*(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
                                   for x in (st.v, st.u)),
                                 None if st.z is None else np.asarray(st.z.detach().cpu().numpy(), np.bool_))
            for st in states
        )
        if np_states is not None and not np_golden.states_fit(self.network, batch, np_states):
            if engine != "auto":
                raise ValueError(f"engine={engine!r} needs states that are int64 [B, n_out] inside their ranges")
            return None
        trace = np_golden.run(self.network, s, record=record, states=np_states, engine=engine,
                              synaptic=self._int8_synaptic)

        def t(x):
            return None if x is None else torch.from_numpy(x)

        out = [LIFOutput(t(r.z), t(r.v), t(r.u)) for r in trace.layers or ()]
        last = LIFOutput(t(trace.spikes), t(trace.membranes), None)
        if not batched:
            out = [LIFOutput(*(x[0] for x in r)) for r in out]
            last = LIFOutput(last.z[0], last.v[0], None)
        new_states = []
        for k, (layer, fin) in enumerate(zip(self.network.layers, trace.states)):
            if layer.neuron == "cuba" or states is None:
                u = t(np.ascontiguousarray(fin.u))
            else:
                u = states[k].u  # a lif layer's u is carried unchanged, as lif_step does
            new_states.append(LIFState(t(fin.v), u, None if fin.z is None else t(np.ascontiguousarray(fin.z))))
        return GoldenTrace(last.z, last.v, tuple(new_states), tuple(out) if record else None)

    def _run_torch(self, s, batched: bool, record: bool, states) -> GoldenTrace:
        """The plain tensor loop: one float product per layer, then `lif_step` per timestep."""
        x = torch.from_numpy(s).to(self.device)
        batch, steps = x.shape[:2]
        states = states if states is not None else self.initial_state(batch)
        recorded, finals = [], []
        for p, state in zip(self.params, states):
            a = synaptic_input(x, p)  # [B, T, n_out], all timesteps in one product
            zs, vs, us = [], [], []
            for t in range(steps):
                out, state = lif_step(a[:, t] + recurrent_input(state.z, p), state, p)
                zs.append(out.z)
                vs.append(out.v)
                us.append(out.u)
            recorded.append(LIFOutput(torch.stack(zs, 1), torch.stack(vs, 1), torch.stack(us, 1)))
            finals.append(state)
            x = recorded[-1].z
        if not batched:
            recorded = [LIFOutput(*(t[0] for t in r)) for r in recorded]
        return GoldenTrace(recorded[-1].z, recorded[-1].v, tuple(finals), tuple(recorded) if record else None)

    def _int8_synaptic(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        """a = sum_i w[j,i] x[i] + bias[j] for 0/1 x (bool [..., n_in]) as an int8 x int8 -> int32
        product (`torch._int_mm`, exact: |sum| <= n_in <= 65536); else the float32 product."""
        cache = self._int8_weights
        w8 = cache.get(id(layer))
        if w8 is None:
            # a fresh copy: canonical strides even for n_in == 1 (a transposed [1, n] view is
            # "contiguous" with stride 1 on its first axis, which _int_mm reads as the row pitch)
            w8 = cache[id(layer)] = torch.from_numpy(np.array(layer.weights.T, np.int8, order="C"))
        flat = np.ascontiguousarray(x).reshape(-1, layer.n_in)
        if flat.strides != (layer.n_in, 1):
            flat = np.array(flat, order="C")
        try:
            acc = torch._int_mm(torch.from_numpy(flat.view(np.int8)), w8).numpy()
        except (RuntimeError, AttributeError):  # shape or platform limits of _int_mm
            return np_golden.synaptic_input(layer, x)
        a = np_golden.shifted_input(layer, acc.astype(np.int64))
        return a.reshape(*x.shape[:-1], layer.n_out)

    def stepper(self, batch: int = 1, *, engine: str = "auto") -> np_golden.Stepper:
        """The streaming golden model of this network (numpy in, numpy out): see `spikeloop.golden.Stepper`."""
        return np_golden.Stepper(self.network, batch, engine=engine)

    def forward(self, spikes) -> torch.Tensor:
        """Output spikes of the last layer for a whole sequence."""
        return self.run(spikes).spikes

