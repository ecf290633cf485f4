"""ctypes bindings of the golden-model kernel (golden_kernel.c), numpy only.

`kernel()` builds and loads the library on first use (see `spikeloop.native.load_library`) and
returns None, with one warning, when that is impossible; `spikeloop.golden` then uses numpy.
`NativeRun` binds a network to state and output buffers and advances it; it is what
`spikeloop.golden.Stepper` and `spikeloop.golden.run` use. The kernel runs every option of
contract v2 (`spikeloop.network.OPTION_DEFAULTS`, reset "subtract_next"); its results are held
equal to the numpy reference by tests/test_golden_fast.py.
"""

from __future__ import annotations

import ctypes
import threading
import warnings

import numpy as np

from spikeloop import toolchain
from spikeloop.native import NativeBuildError, NativeUnavailable, load_library, native_enabled
from spikeloop.network import Layer, Network, Neuron, Reset, Rounding, signed_range, v_range_bounds

SOURCE = ("spikeloop.native", "golden_kernel.c")  # a package file (importlib.resources)
ABI = 3
ALIGN = 64
SCRATCH_PER_COLUMN = 28  # bytes of kernel scratch per (padded) output column, as in golden_kernel.c

_I64 = ctypes.c_int64
_P = ctypes.c_void_p


class SlLayer(ctypes.Structure):
    """Mirror of `sl_layer` in golden_kernel.c."""

    _fields_ = [
        *((name, _I64) for name in (
            "n_in", "n_out", "stride", "neuron", "reset", "frac_bits", "lam", "alpha",
            "v_lo", "v_hi", "u_lo", "u_hi", "decay_round", "input_shift", "u_wrap", "recurrent",
        )),
        *((name, _P) for name in (
            "wt", "theta", "bias", "vbias", "v", "u", "acc", "z", "zp", "z_rec", "v_rec", "u_rec",
        )),
    ]


class SlCall(ctypes.Structure):
    """Mirror of `sl_call` in golden_kernel.c: the arguments of one kernel call."""

    _fields_ = [
        ("layers", _P), ("n_layers", _I64), ("batch", _I64), ("steps", _I64),
        ("input", _P), ("in_sb", _I64), ("in_st", _I64), ("idx", _P), ("check", _I64),
    ]


_lock = threading.Lock()
_state: dict = {}


def kernel():
    """The loaded kernel (a ctypes.CDLL), or None when native code is unavailable (warns once)."""
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib = None
        if native_enabled():
            try:
                lib = _load()
            except NativeUnavailable as exc:
                warnings.warn(
                    f"spikeloop: the native golden-model kernel is unavailable, using numpy (slower): {exc}",
                    RuntimeWarning, stacklevel=3,
                )
                _state["error"] = exc
        _state["lib"] = lib
        return lib


def unavailable_reason() -> str | None:
    """Why `kernel()` returned None (None when it did not, or was not called yet)."""
    if not native_enabled():
        return "disabled by SPIKELOOP_NATIVE=0"
    err = _state.get("error")
    return str(err) if err is not None else None


def _load():
    last = None
    # GCC's per-ISA clones need ifunc support (glibc); retry as a single portable build if not.
    for extra in ((), ("-DSPIKELOOP_NO_CLONES",)):
        try:
            lib = load_library("spikeloop_golden", [toolchain.resource(*SOURCE)], extra_flags=extra)
            break
        except NativeBuildError as exc:
            last = exc
    else:
        raise last
    lib.spikeloop_golden_abi.restype = _I64
    lib.spikeloop_golden_sizeof_layer.restype = _I64
    lib.spikeloop_golden_selftest.restype = _I64
    lib.spikeloop_golden_sizeof_call.restype = _I64
    if lib.spikeloop_golden_abi() != ABI:
        raise NativeUnavailable(f"kernel ABI {lib.spikeloop_golden_abi()} != {ABI}")
    if (lib.spikeloop_golden_sizeof_layer() != ctypes.sizeof(SlLayer)
            or lib.spikeloop_golden_sizeof_call() != ctypes.sizeof(SlCall)):
        raise NativeUnavailable("kernel structs do not match their ctypes mirrors")
    if lib.spikeloop_golden_selftest() != 1:
        raise NativeUnavailable("the C compiler's >> on negative integers is not an arithmetic shift")
    fn = lib.spikeloop_golden_run
    fn.restype = _I64
    fn.argtypes = [_P]
    return lib


def aligned_zeros(shape, dtype) -> np.ndarray:
    """A zeroed C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.zeros(n + ALIGN, np.uint8)
    off = (-raw.ctypes.data) % ALIGN
    return raw[off:off + n].view(dtype).reshape(shape)


class LayerData:
    """A layer's arrays in the kernel's layout: transposed int8 crossbar weights (a recurrent layer's
    recurrent rows after its input rows) padded to `stride` columns, the bias split into the current's and
    the membrane's (None unless `bias_to` is membrane)."""

    def __init__(self, layer: Layer):
        self.stride = -(-layer.n_out // ALIGN) * ALIGN
        weights = layer.crossbar_weights
        self.wt = aligned_zeros((weights.shape[1], self.stride), np.int8)
        self.wt[:, :layer.n_out] = weights.T
        self.theta = np.ascontiguousarray(layer.theta, np.int64)
        self.bias = np.ascontiguousarray(layer.current_bias, np.int64)
        self.vbias = np.ascontiguousarray(layer.bias, np.int64) if layer.bias_to == "membrane" else None
        v_lo, v_hi = v_range_bounds(layer)
        u_lo, u_hi = signed_range(layer.u_bits)
        self.scalars = dict(
            n_in=layer.n_in, n_out=layer.n_out, stride=self.stride,
            neuron=int(Neuron.of(layer.neuron)), reset=int(Reset.of(layer.reset)),
            frac_bits=layer.frac_bits, lam=layer.lam, alpha=layer.alpha,
            v_lo=v_lo, v_hi=v_hi, u_lo=u_lo, u_hi=u_hi, decay_round=int(Rounding.of(layer.decay_round)),
            input_shift=layer.input_shift, u_wrap=int(layer.u_overflow == "wrap"), recurrent=int(layer.is_recurrent),
        )

    def fill(self, st: SlLayer) -> None:
        """Set the layer's fields of a kernel struct (addresses taken now: a cached LayerData may
        have been copied or unpickled along with its layer)."""
        for name, value in self.scalars.items():
            setattr(st, name, value)
        st.wt, st.theta, st.bias = self.wt.ctypes.data, self.theta.ctypes.data, self.bias.ctypes.data
        st.vbias = _ptr(self.vbias)

    @classmethod
    def of(cls, layer: Layer) -> LayerData:
        """Prepared once per (immutable) layer and cached on it."""
        cached = getattr(layer, "_native_data", None)
        if cached is None:
            cached = cls(layer)
            layer._native_data = cached
        return cached


def _ptr(arr) -> int | None:
    return None if arr is None else arr.ctypes.data


class NativeRun:
    """A network bound to its state and output buffers for `batch` rows and `steps` timesteps per call.

    `v[k]`, `u[k]` (int64 [batch, n_out], C-contiguous) are the states, advanced in place by
    `advance`; `zp[k]` (uint8 [batch, n_out]) the spikes of the last step run (a recurrent layer's
    inputs at the next; zeros by default). Outputs go to `z_rec[k]` (uint8), `v_rec[k]`, `u_rec[k]` (int64), each
    [batch, steps, n_out] or None (not recorded; the last layer's z and v are always recorded).
    """

    def __init__(self, lib, network: Network, batch: int, steps: int, *, v, u, record: bool, zp=None):
        self.fn = lib.spikeloop_golden_run
        self.network, self.batch, self.steps = network, batch, steps
        self.v, self.u = list(v), list(u)
        self.zp = list(zp) if zp is not None else [np.zeros((batch, layer.n_out), np.uint8)
                                                   for layer in network.layers]
        n = len(network.layers)
        self.layers = (SlLayer * n)()
        self.z_rec, self.v_rec, self.u_rec = [], [], []
        self._keep = []
        for k, layer in enumerate(network.layers):
            data = LayerData.of(layer)
            last = k == n - 1
            shape = (batch, steps, layer.n_out)
            z_rec = np.empty(shape, np.uint8) if (record or last) else None
            v_rec = np.empty(shape, np.int64) if (record or last) else None
            u_rec = np.empty(shape, np.int64) if record else None
            acc = aligned_zeros((SCRATCH_PER_COLUMN * data.stride,), np.uint8)
            z = np.zeros(layer.n_out, np.uint8)
            for arr in (self.v[k], self.u[k]):
                assert arr.dtype == np.int64 and arr.flags.c_contiguous and arr.shape == (batch, layer.n_out)
            assert self.zp[k].dtype == np.uint8 and self.zp[k].flags.c_contiguous
            assert self.zp[k].shape == (batch, layer.n_out)
            st = self.layers[k]
            data.fill(st)
            st.v, st.u = self.v[k].ctypes.data, self.u[k].ctypes.data
            st.acc, st.z, st.zp = acc.ctypes.data, z.ctypes.data, self.zp[k].ctypes.data
            st.z_rec, st.v_rec, st.u_rec = _ptr(z_rec), _ptr(v_rec), _ptr(u_rec)
            self.z_rec.append(z_rec)
            self.v_rec.append(v_rec)
            self.u_rec.append(u_rec)
            self._keep += [data, acc, z]
        self._idx = np.zeros(max(layer.crossbar_weights.shape[1] for layer in network.layers), np.int32)
        self.call = SlCall(layers=ctypes.addressof(self.layers), n_layers=n, batch=batch, steps=steps,
                           idx=self._idx.ctypes.data)
        self.call_ptr = ctypes.addressof(self.call)

    def bind_input(self, ptr: int, stride_b: int, stride_t: int, check: bool) -> None:
        """Set where the input is read (row (b, t) at ptr + b*stride_b + t*stride_t) for `fn(call_ptr)`."""
        self.call.input, self.call.in_sb, self.call.in_st, self.call.check = ptr, stride_b, stride_t, int(check)

    def advance(self, ptr: int, stride_b: int, stride_t: int, check: bool) -> int:
        """Run on the input bytes at address `ptr` (see `bind_input`).

        Returns -1, or with `check` the flat index of the first input value other than 0/1
        (then nothing has been advanced).
        """
        self.bind_input(ptr, stride_b, stride_t, check)
        return self.fn(self.call_ptr)

