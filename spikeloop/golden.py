"""The golden model in numpy: the numerics contract (docs/numerics.md), for places without torch.

The public API, one engine for every caller (`spikeloop.quant.golden` is its PyTorch adapter):

- `neuron_step(a, state, layer) -> (LayerStep, LayerState)`: the reference step, pure, a
  line-by-line transcription of the contract; `network_step` chains it through the layers.
- `run(network, spikes, *, record, states, engine)`: a whole sequence. `engine` chooses how,
  never what (tests/test_golden_fast.py holds every engine equal to the reference):
  `"auto"` (default) the native kernel (spikeloop/native/golden_kernel.c, compiled with the
  system C compiler on first use and cached; it adds only the weight rows of active inputs)
  when it is available, else `"numpy"`, in-place numpy with preallocated buffers;
  `"reference"` is the plain loop over `neuron_step`.
- `Stepper(network, batch)`: the streaming model for closed loops, one timestep per
  `step(spikes)` call, state kept inside and every buffer preallocated.
- Helpers: `initial_state`, `states_fit` (may a fast engine continue from these states?),
  `check_engine`, `synaptic_input`, `native_available`.

`SPIKELOOP_NATIVE=0` in the environment turns the native kernel off everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeloop.network import Layer, Network, signed_range, v_range_bounds
from spikeloop.spikes import SpikeError, as_bool_spikes, check_spikes, check_step

__all__ = [
    "ENGINES", "STEPPER_ENGINES", "LayerState", "LayerStep", "Stepper", "Trace", "check_engine", "initial_state",
    "keep", "native_available", "network_step", "neuron_step", "recurrent_input", "run", "shifted_input",
    "states_fit",
    "synaptic_input", "wrap",
]

ENGINES = ("auto", "native", "numpy", "reference")  # of `run`
STEPPER_ENGINES = ("auto", "native", "numpy")  # of `Stepper`


def check_engine(engine, *, choices=ENGINES) -> str:
    """`engine` if it is one of `choices`, else a ValueError naming it and the choices."""
    if not isinstance(engine, str) or engine not in choices:
        raise ValueError(f"engine must be one of {', '.join(choices)}; got {engine!r}")
    return engine


@dataclass(frozen=True)
class LayerState:
    """State of one layer carried between timesteps: membranes `v` and currents `u`, int64 [B, n_out], and
    the spikes `z` of the previous timestep, bool [B, n_out] (a recurrent layer's extra inputs; None: all
    zero, as after a clear)."""

    v: np.ndarray
    u: np.ndarray
    z: np.ndarray | None = None

    @classmethod
    def zeros(cls, layer: Layer, batch: int = 1) -> LayerState:
        """The state after a clear: all zero."""
        shape = (batch, layer.n_out)
        return cls(np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.bool_))

    def previous_spikes(self) -> np.ndarray:
        """`z` as bool [B, n_out] (zeros when None)."""
        return np.zeros(self.v.shape, np.bool_) if self.z is None else np.asarray(self.z, np.bool_)


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
    """a = (sum_i w[j,i] s[i]) << input_shift + bias[j] (the bias only when it enters the current) for 0/1
    spikes s [..., n_in]; int64 [..., n_out]. A recurrent layer's own spikes add `recurrent_input`.

    Uses a float32 matrix product, exact because |sum| <= n_in <= 65536 < 2^24.
    """
    assert layer.n_in < 1 << 24, "float32 sums are exact only below 2^24"
    w = _float_weights(layer)
    return shifted_input(layer, (s.astype(np.float32) @ w).astype(np.int64))


def recurrent_input(layer: Layer, z_prev: np.ndarray) -> np.ndarray:
    """(sum_k r[j,k] z[t-1,k]) << input_shift: what a recurrent layer's own previous spikes z_prev (0/1
    [..., n_out]) add to `synaptic_input`; int64 [..., n_out]. Exact as a float32 product (|sum| <= n_out)."""
    r = getattr(layer, "_float_rt", None)
    if r is None:
        r = layer._float_rt = np.ascontiguousarray(layer.recurrent.T, dtype=np.float32)
    sums = (np.asarray(z_prev).astype(np.float32) @ r).astype(np.int64)
    return np.left_shift(sums, layer.input_shift, out=sums) if layer.input_shift else sums


def shifted_input(layer: Layer, sums: np.ndarray) -> np.ndarray:
    """The current's input `a` from the integer sums `sum_i w[j,i] s[i]` (int64, modified in place)."""
    if layer.input_shift:
        np.left_shift(sums, layer.input_shift, out=sums)
    if layer.bias_to == "current":
        sums += layer.bias
    return sums


def _float_weights(layer: Layer) -> np.ndarray:
    cached = getattr(layer, "_float_wt", None)
    if cached is None:
        cached = np.ascontiguousarray(layer.weights.T, dtype=np.float32)
        layer._float_wt = cached
    return cached


def keep(x: np.ndarray, factor: int, frac_bits: int, rounding: str) -> np.ndarray:
    """What is left of `x` after a decay by factor/2^F, rounded as `rounding` says (docs/numerics.md):
    "floor" x - floor(x*factor/2^F); with p = x*(2^F - factor), "zero" sign(p)*(|p| >> F), "nearest"
    sign(p)*((|p| + 2^(F-1)) >> F) (half away from zero)."""
    if rounding == "floor":
        return x - ((x * factor) >> frac_bits)
    p = x * ((1 << frac_bits) - factor)
    half = (1 << frac_bits) >> 1 if rounding == "nearest" else 0
    return np.sign(p) * ((np.abs(p) + half) >> frac_bits)


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """x wrapped to a two's complement integer of `bits` bits."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _fit_current(x: np.ndarray, layer: Layer) -> np.ndarray:
    """The cuba current brought into u_bits: saturated or wrapped (`u_overflow`)."""
    if layer.u_overflow == "wrap":
        return wrap(x, layer.u_bits)
    return np.clip(x, *signed_range(layer.u_bits))


def neuron_step(a: np.ndarray, state: LayerState, layer: Layer) -> tuple[LayerStep, LayerState]:
    """The reference step: one layer's neurons advanced by one timestep, pure.

    Input: the current's input `a` (int64 [B, n_out], see `synaptic_input`); state: `v`, `u` of the
    previous timestep; params: the layer. With `keep` the decay under the layer's `decay_round`,
    `fit_U` the saturation or wrap of u, `sat_V` the clamp to the layer's `v_range`, and
    `b_v` the bias when it enters the membrane (docs/numerics.md):

        u  = a                                                  (neuron "lif")
        u  = fit_U(keep(u_prev, alpha) + a)                     (neuron "cuba")
        r  = theta * (v_prev >= theta) for reset "subtract_next", else 0
        v' = sat_V(keep(v_prev, lam) + u + b_v - r)
        z  = v' >= theta
        v  = v' - theta*z ("subtract") | v'*(1-z) ("zero") | v' ("none", "subtract_next")

    Returns the output `LayerStep(z, v', u)` and the new state `LayerState(v, u, z)` (a lif
    layer carries its state's `u` unchanged). A recurrent layer's `a` includes `recurrent_input` of
    the state's `z`.
    """
    rounding, F = layer.decay_round, layer.frac_bits
    u = _fit_current(keep(state.u, layer.alpha, F, rounding) + a, layer) if layer.neuron == "cuba" else a
    v_in = keep(state.v, layer.lam, F, rounding) + u + layer.membrane_bias
    if layer.reset == "subtract_next":
        v_in = v_in - layer.theta * (state.v >= layer.theta)
    v_pre = np.clip(v_in, *v_range_bounds(layer))
    z = v_pre >= layer.theta
    if layer.reset == "subtract":
        v = v_pre - layer.theta * z
    elif layer.reset == "zero":
        v = np.where(z, 0, v_pre)
    else:
        v = v_pre
    return LayerStep(z, v_pre, u), LayerState(v, u if layer.neuron == "cuba" else state.u, z)


def initial_state(network: Network, batch: int = 1) -> tuple[LayerState, ...]:
    """All-zero state for every layer."""
    return tuple(LayerState.zeros(layer, batch) for layer in network.layers)


def network_step(
    network: Network, s: np.ndarray, states: tuple[LayerState, ...]
) -> tuple[tuple[LayerStep, ...], tuple[LayerState, ...]]:
    """One timestep of the whole network for input spikes s (0/1 [B, n_in]); layers chain within the step."""
    steps, new_states = [], []
    x = check_step(s, network.n_in)
    for layer, state in zip(network.layers, states):
        a = synaptic_input(layer, x)
        if layer.is_recurrent:
            a += recurrent_input(layer, state.previous_spikes())
        out, new = neuron_step(a, state, layer)
        steps.append(out)
        new_states.append(new)
        x = out.z
    return tuple(steps), tuple(new_states)


def run(network: Network, spikes, *, record: bool = False, states=None, engine: str = "auto",
        synaptic=None) -> Trace:
    """Run a whole sequence: spikes [T, n_in] or [B, T, n_in] (0/1).

    Layer by layer: all timesteps' synaptic sums in one matrix product, then the recurrence.
    `states` (from `initial_state` or a previous `Trace`) continues a run; it is not modified.

    `engine` (one of `ENGINES`) chooses how, never what (all are integer-exact and equal):
    `"auto"` the native kernel when it is available, else `"numpy"`; `"native"` the native
    kernel or an error; `"numpy"` in-place numpy; `"reference"` the plain loop over
    `neuron_step`. States that do not fit (`states_fit`) take the reference path, whose
    results they define, under `"auto"` and `"numpy"`; `"native"` refuses them.

    `synaptic(layer, x)`, bool x [..., n_in] -> int64 [..., n_out], replaces `synaptic_input`
    in the `"numpy"` engine (and in `"auto"` falling back to it); it must give the same
    integers (`spikeloop.quant.golden` passes an int8 matrix product).
    """
    check_engine(engine)
    if synaptic is not None and not callable(synaptic):
        raise TypeError(f"synaptic must be a function (layer, x) -> int64 sums, got {type(synaptic).__name__}")
    s, batched = check_spikes(spikes, network.n_in)
    batch, steps = s.shape[:2]
    states = states if states is not None else initial_state(network, batch)
    fit = engine != "reference" and states_fit(network, batch, states)
    if engine == "native" and not fit:
        raise ValueError("engine='native' needs states that are int64 [B, n_out] inside their layer's ranges")
    lib = _kernel(engine) if fit else None
    if lib is not None:
        recorded, finals = _run_native(lib, network, s, states, record)
    elif fit:
        recorded, finals = _run_numpy(network, s, states, record, synaptic)
    else:
        recorded, finals = _run_reference(network, s, states)
    last = recorded[-1]
    unbatch = (lambda x: x) if batched else (lambda x: x[0])
    layers = tuple(LayerStep(unbatch(r.z), unbatch(r.v), unbatch(r.u)) for r in recorded) if record else None
    return Trace(unbatch(last.z), unbatch(last.v), tuple(finals), layers)


def _run_reference(network: Network, s: np.ndarray, states) -> tuple[list[LayerStep], list[LayerState]]:
    """The plain loop: `neuron_step` per timestep (s: bool [B, T, n_in])."""
    steps = s.shape[1]
    x = s
    recorded, finals = [], []
    for layer, state in zip(network.layers, states):
        a = synaptic_input(layer, x)  # [B, T, n_out]
        z = np.empty(a.shape, np.bool_)
        v = np.empty(a.shape, np.int64)
        u = np.empty(a.shape, np.int64)
        for t in range(steps):
            a_t = a[:, t] + recurrent_input(layer, state.previous_spikes()) if layer.is_recurrent else a[:, t]
            out, state = neuron_step(a_t, state, layer)
            z[:, t], v[:, t], u[:, t] = out.z, out.v, out.u
        recorded.append(LayerStep(z, v, u))
        finals.append(state)
        x = z
    return recorded, finals


# ---------------------------------------------------------------------------------------------
# Fast paths. Exactness rests on: states inside the contract's ranges (checked on entry), so
# v*lam fits int64 and (v*2^k) >> F == v >> (F-k); integer sums of +/-1 rows are exact.


def states_fit(network: Network, batch: int, states) -> bool:
    """Whether the fast engines may continue from `states`: one per layer, `v` (and a cuba
    layer's `u`) int64 numpy [batch, n_out] inside its layer's range, and a recurrent layer's `z`
    None or bool numpy [batch, n_out]."""
    try:
        if len(states) != len(network.layers):
            return False
        for layer, st in zip(network.layers, states):
            z = getattr(st, "z", None)
            if layer.is_recurrent and z is not None and not (
                    isinstance(z, np.ndarray) and z.dtype == np.bool_ and z.shape == (batch, layer.n_out)):
                return False
            checks = [(st.v, layer.v_bits)] + ([(st.u, layer.u_bits)] if layer.neuron == "cuba" else [])
            for arr, bits in checks:
                if not isinstance(arr, np.ndarray) or arr.dtype != np.int64 or arr.shape != (batch, layer.n_out):
                    return False
                lo, hi = signed_range(bits)
                if arr.size and (arr.min() < lo or arr.max() > hi):
                    return False
    except (AttributeError, TypeError):
        return False
    return True


def _kernel(engine: str):
    """The native kernel for `engine` ("auto": None when unavailable; "native": it or an error); it runs
    every option of contract v2."""
    if engine not in ("auto", "native"):
        return None
    from spikeloop.native import golden_kernel

    lib = golden_kernel.kernel()
    if lib is None and engine == "native":
        raise RuntimeError(f"engine='native': the native kernel is unavailable ({golden_kernel.unavailable_reason()})")
    return lib


def native_available() -> bool:
    """Whether the native kernel can be used here (builds it on first call; warns if it cannot)."""
    return _kernel("auto") is not None


def _run_native(lib, network: Network, s: np.ndarray, states, record: bool):
    from spikeloop.native.golden_kernel import NativeRun

    batch, steps, n_in = s.shape
    v = [np.array(st.v, np.int64, order="C") for st in states]
    u = [np.array(st.u, np.int64, order="C") if layer.neuron == "cuba" else np.zeros_like(v[k])
         for k, (layer, st) in enumerate(zip(network.layers, states))]
    zp = [np.array(st.previous_spikes(), np.uint8, order="C") for st in states]
    nr = NativeRun(lib, network, batch, steps, v=v, u=u, record=record, zp=zp)
    x = np.ascontiguousarray(s)
    nr.advance(x.ctypes.data, steps * n_in, n_in, check=False)  # check_spikes validated s
    recorded = [
        LayerStep(z.view(np.bool_), vr, ur)
        for z, vr, ur in zip(nr.z_rec, nr.v_rec, nr.u_rec) if z is not None
    ]
    finals = [
        LayerState(v[k], u[k] if layer.neuron == "cuba" else st.u, zp[k].view(np.bool_))
        for k, (layer, st) in enumerate(zip(network.layers, states))
    ]
    return recorded, finals


class _Decay:
    """x - ((x * factor) >> F) into `out`, as a shift when factor is 0 or 2^k (exact in range)."""

    def __init__(self, factor: int, frac_bits: int):
        self.factor, self.frac_bits = factor, frac_bits
        k = factor.bit_length() - 1
        self.shift = frac_bits - k if factor and factor == 1 << k else None

    def __call__(self, x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        if self.factor == 0:
            if out is not x:
                np.copyto(out, x)
        elif self.shift is not None:
            np.right_shift(x, self.shift, out=tmp)
            np.subtract(x, tmp, out=out)
        else:
            np.multiply(x, self.factor, out=tmp)
            np.right_shift(tmp, self.frac_bits, out=tmp)
            np.subtract(x, tmp, out=out)


class _NumpyNeurons:
    """One layer's neuron update on [batch, n_out] int64 buffers, in place (v1 options allocate nothing)."""

    def __init__(self, layer: Layer, batch: int):
        self.layer = layer
        self.cuba = layer.neuron == "cuba"
        self.reset = layer.reset
        self.theta = layer.theta
        self.floor = layer.decay_round == "floor"
        self.v_lo, self.v_hi = v_range_bounds(layer)
        self.u_lo, self.u_hi = signed_range(layer.u_bits)
        self.lam = _Decay(layer.lam, layer.frac_bits)
        self.alpha = _Decay(layer.alpha, layer.frac_bits)
        self.tmp = np.empty((batch, layer.n_out), np.int64)

    def _keep(self, decay: _Decay, x, out) -> None:
        if self.floor:
            decay(x, out, self.tmp)
        else:
            np.copyto(out, keep(x, decay.factor, decay.frac_bits, self.layer.decay_round))

    def __call__(self, a, v, u, vp, z) -> None:
        """Given the current's input `a`, advance states `v`, `u` in place; write v' into `vp`, spikes into `z`."""
        tmp, layer = self.tmp, self.layer
        if self.cuba:
            self._keep(self.alpha, u, u)
            np.add(u, a, out=u)
            if layer.u_overflow == "wrap":
                np.copyto(u, wrap(u, layer.u_bits))
            else:
                np.maximum(u, self.u_lo, out=u)
                np.minimum(u, self.u_hi, out=u)
            a = u
        self._keep(self.lam, v, vp)
        np.add(vp, a, out=vp)
        if layer.bias_to == "membrane":
            np.add(vp, layer.bias, out=vp)
        if self.reset == "subtract_next":
            np.multiply(self.theta, v >= self.theta, out=tmp)
            np.subtract(vp, tmp, out=vp)
        np.maximum(vp, self.v_lo, out=vp)
        np.minimum(vp, self.v_hi, out=vp)
        np.greater_equal(vp, self.theta, out=z)
        if self.reset == "subtract":
            np.multiply(self.theta, z, out=tmp)
            np.subtract(vp, tmp, out=v)
        else:
            np.copyto(v, vp)
            if self.reset == "zero":
                np.copyto(v, 0, where=z)


def _batch_major(r: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(r.transpose(1, 0, 2))


def _run_numpy(network: Network, s: np.ndarray, states, record: bool, synaptic=None):
    """In-place numpy: per layer one product for all timesteps (`synaptic`, default
    `synaptic_input`), then the recurrence time-major."""
    synaptic = synaptic or synaptic_input
    batch, steps = s.shape[:2]
    x = np.ascontiguousarray(s.transpose(1, 0, 2))  # [T, B, n_in]: each timestep contiguous
    recorded, finals = [], []
    for k, (layer, state) in enumerate(zip(network.layers, states)):
        a = np.ascontiguousarray(synaptic(layer, x))  # [T, B, n_out]
        z = np.empty(a.shape, np.bool_)
        vp = np.empty(a.shape, np.int64)
        cuba = layer.neuron == "cuba"
        u_rec = np.empty(a.shape, np.int64) if cuba else a
        v = state.v.copy()
        u = state.u.copy() if cuba else None
        update = _NumpyNeurons(layer, batch)
        z_prev = state.previous_spikes()
        for t in range(steps):
            if layer.is_recurrent:
                np.add(a[t], recurrent_input(layer, z_prev), out=a[t])
            update(a[t], v, u, vp[t], z[t])
            z_prev = z[t]
            if cuba and record:
                np.copyto(u_rec[t], u)
        if record:
            recorded.append(LayerStep(_batch_major(z), _batch_major(vp), _batch_major(u_rec)))
        elif k == len(network.layers) - 1:
            recorded.append(LayerStep(_batch_major(z), _batch_major(vp), None))
        finals.append(LayerState(v, u if cuba else state.u, z_prev.copy()))
        x = z
    return recorded, finals


class Stepper:
    """The golden model for closed loops: one timestep per `step` call, state kept inside.

    `Stepper(network, batch=1)` preallocates every buffer; `step(spikes)` takes the input
    spikes of one timestep, 0/1 of shape [n_in] (batch 1) or [batch, n_in] (bool, uint8 or int8
    take the fast path; other integer dtypes and torch tensors are accepted too), and returns
    `(spikes_out, membranes_out)`: the last layer's spikes (bool) and pre-reset membranes v'
    (int64), shaped [n_out] or [batch, n_out] like the input. The returned arrays are fresh
    copies. `reset()` clears the state (or loads given `states`), `states` returns a copy of
    it as `LayerState`s, interchangeable with `network_step` / `run(states=...)`.

    Step after step, the results equal `network_step`'s (tests/test_golden_fast.py).
    `engine` (one of `STEPPER_ENGINES`): "auto" (native kernel when available, else numpy), "native", or "numpy".
    A refused input (values other than 0/1, wrong shape) raises `SpikeError` and leaves the
    state unchanged. One Stepper is not meant to be stepped from several threads at once.
    """

    def __init__(self, network: Network, batch: int = 1, *, states=None, engine: str = "auto"):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a Network, got {type(network).__name__}")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        check_engine(engine, choices=STEPPER_ENGINES)
        self.network = network
        self.batch = batch = int(batch)
        n_in, n_out = network.n_in, network.n_out
        self._shape_b, self._shape_1 = (batch, n_in), ((n_in,) if batch == 1 else None)
        self._v = [np.zeros((batch, layer.n_out), np.int64) for layer in network.layers]
        self._u = [np.zeros((batch, layer.n_out), np.int64) for layer in network.layers]
        self._zp = [np.zeros((batch, layer.n_out), np.uint8) for layer in network.layers]  # last step's spikes
        self._in = np.zeros((batch, n_in), np.uint8)
        self._in_bool = self._in.view(np.bool_)
        lib = _kernel(engine)
        if lib is not None:
            from spikeloop.native.golden_kernel import NativeRun

            self._native = NativeRun(lib, network, batch, 1, v=self._v, u=self._u, record=False, zp=self._zp)
            self._native.bind_input(self._in.ctypes.data, n_in, 0, check=True)
            self._fn, self._call = self._native.fn, self._native.call_ptr
            self._z = self._native.z_rec[-1].reshape(batch, n_out).view(np.bool_)
            self._vp = self._native.v_rec[-1].reshape(batch, n_out)
        else:
            self._native = None
            self._xf = [np.zeros((batch, layer.n_in), np.float32) for layer in network.layers]
            self._af = [np.zeros((batch, layer.n_out), np.float32) for layer in network.layers]
            self._a = [np.zeros((batch, layer.n_out), np.int64) for layer in network.layers]
            self._zs = [zp.view(np.bool_) for zp in self._zp]
            self._vps = [np.zeros((batch, layer.n_out), np.int64) for layer in network.layers]
            self._updates = [_NumpyNeurons(layer, batch) for layer in network.layers]
            self._wt = [_float_weights(layer) for layer in network.layers]
            self._z, self._vp = self._zs[-1], self._vps[-1]
        self._z1, self._vp1 = self._z[0], self._vp[0]
        self.reset(states)

    @property
    def engine(self) -> str:
        """"native" or "numpy": what `step` runs on."""
        return "native" if self._native is not None else "numpy"

    def reset(self, states=None) -> None:
        """Clear the state to zero, or load `states` (per layer `.v`, `.u`, [batch, n_out], in range, and
        the previous spikes `.z`, 0/1 [batch, n_out] or None for none)."""
        if states is None:
            for arr in (*self._v, *self._u, *self._zp):
                arr.fill(0)
            return
        if len(states) != len(self.network.layers):
            raise ValueError(f"states has {len(states)} layers, the network {len(self.network.layers)}")
        checked = []
        for k, (layer, st) in enumerate(zip(self.network.layers, states)):
            pair = []
            for name, value, bits in (("v", st.v, layer.v_bits), ("u", st.u, layer.u_bits)):
                arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
                if arr.shape != (self.batch, layer.n_out) or not np.issubdtype(arr.dtype, np.integer):
                    raise ValueError(f"layer {k}: state {name} must be integer [{self.batch}, {layer.n_out}], "
                                     f"got {arr.dtype} {arr.shape}")
                lo, hi = signed_range(bits)
                if arr.size and (arr.min() < lo or arr.max() > hi):
                    raise ValueError(f"layer {k}: state {name} lies outside [{lo}, {hi}]")
                pair.append(arr)
            z = getattr(st, "z", None)
            z = np.zeros((self.batch, layer.n_out), np.bool_) if z is None else np.asarray(
                z.detach().cpu().numpy() if hasattr(z, "detach") else z)
            if z.shape != (self.batch, layer.n_out) or not ((z == 0) | (z == 1)).all():
                raise ValueError(f"layer {k}: state z must be 0/1 [{self.batch}, {layer.n_out}], "
                                 f"got {z.dtype} {z.shape}")
            checked.append((*pair, z))
        for k, (v, u, z) in enumerate(checked):
            np.copyto(self._v[k], v)
            np.copyto(self._u[k], u)
            np.copyto(self._zp[k], z, casting="unsafe")

    @property
    def states(self) -> tuple[LayerState, ...]:
        """A copy of the current state of every layer."""
        return tuple(LayerState(v.copy(), u.copy(), zp.view(np.bool_).copy())
                     for v, u, zp in zip(self._v, self._u, self._zp))

    def _coerce(self, spikes) -> tuple[np.ndarray, bool]:
        """Validate any input form (as `check_spikes` does); returns (bool array, batched)."""
        if hasattr(spikes, "detach") and hasattr(spikes, "numpy"):  # a torch tensor
            spikes = spikes.detach().cpu().numpy()
        arr = np.asarray(spikes)
        n_in = self.network.n_in
        if arr.shape == self._shape_b:
            batched = True
        elif arr.shape == self._shape_1:
            batched = False
        else:
            want = f"[{n_in}] or [1, {n_in}]" if self.batch == 1 else f"[{self.batch}, {n_in}]"
            raise SpikeError(f"spikes has shape {arr.shape}, expected {want}")
        return as_bool_spikes(arr), batched

    def step(self, spikes) -> tuple[np.ndarray, np.ndarray]:
        """Advance one timestep; returns the last layer's (spikes, pre-reset membranes)."""
        x = spikes
        if type(x) is np.ndarray and x.dtype in _BYTE_DTYPES and (
            x.shape == self._shape_b or x.shape == self._shape_1
        ):
            batched = x.ndim == 2
            if self._native is None and x.dtype != _BOOL:
                x, batched = self._coerce(x)
        else:
            x, batched = self._coerce(x)
        self._in[...] = x
        if self._native is not None:
            bad = self._fn(self._call)
            if bad >= 0:
                idx = list(np.unravel_index(bad, self._in.shape))
                if not batched:
                    idx = idx[1:]
                raise SpikeError(f"spikes{idx} = {np.asarray(spikes)[tuple(idx)]}, expected 0 or 1")
        else:
            self._step_numpy()
        if batched:
            return self._z.copy(), self._vp.copy()
        return self._z1.copy(), self._vp1.copy()

    def _step_numpy(self) -> None:
        x = self._in_bool
        for k in range(len(self._v)):
            xf, af, a = self._xf[k], self._af[k], self._a[k]
            np.copyto(xf, x)
            np.matmul(xf, self._wt[k], out=af)  # exact: |sum| <= n_in < 2^24
            np.copyto(a, af, casting="unsafe")
            layer = self.network.layers[k]
            shifted_input(layer, a)
            if layer.is_recurrent:  # before the update overwrites the previous spikes
                a += recurrent_input(layer, self._zs[k])
            self._updates[k](a, self._v[k], self._u[k], self._vps[k], self._zs[k])
            x = self._zs[k]


_BOOL = np.dtype(np.bool_)
_BYTE_DTYPES = frozenset((_BOOL, np.dtype(np.uint8), np.dtype(np.int8)))
