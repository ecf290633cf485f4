"""The `golden` transport: the numerics alone (`spikeloop.golden`) behind the core's registers.

The register file is emulated from `spikeloop.regmap` (identity, configuration readback,
CONTROL, STATUS with its sticky bits, counters, MODE/LAM/ALPHA, the parameter windows and the
membrane/current readout), so the driver checks identity, loads and verifies parameters exactly
as on the simulated board or the PYNQ. A stream transfer is unpacked, run through
`golden.run` from the kept state, and packed as the core packs its output.

What it does not model: timing (`BUSY_CYCLES` stays 0, `busy` and `clearing` are never seen),
and bus faults. Writes are judged by `regmap.judge_write`, the gateware's rules.
"""

from __future__ import annotations

import numpy as np

from spikeloop import golden, regmap
from spikeloop.config import CoreConfig
from spikeloop.network import Layer, Network, NetworkError, Neuron, Reset
from spikeloop.stream import pack_output, unpack_spikes, words_per_timestep
from spikeloop.windows import pack_neuron_values, unpack_neuron_values, unpack_weights

from .transport import Received, Transport, TransportError

__all__ = ["GoldenTransport"]

_STATUS = regmap.register("STATUS")
_CONTROL = regmap.register("CONTROL")
_MODE = regmap.layer_register("MODE")


class GoldenTransport(Transport):
    """The golden model presented as a core built for `config`.

    Parameters (keyword-only)
    ----------
    config : CoreConfig the emulated core is "built" for.
    """

    name = "golden"
    cycles_per_second = float("inf")

    def __init__(self, *, config: CoreConfig):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
        self.config = config
        self._ro = config.readback()
        self._windows = {w.base: (w, np.zeros(w.words, np.uint32)) for w in regmap.windows(config)}
        self._bases = np.array(sorted(self._windows), dtype=np.int64)
        n = len(config.layers)
        self._run_time = {"MODE": [0] * n, "LAM": [0] * n, "ALPHA": [0] * n}
        self._errors = dict.fromkeys(regmap.ERRORS, False)
        self._counters = dict.fromkeys(regmap.COUNTERS, 0)
        self._shadows = dict.fromkeys(regmap.COUNTERS, 0)
        self._states = tuple(golden.LayerState(np.zeros((1, c.n_out), np.int64), np.zeros((1, c.n_out), np.int64))
                             for c in config.layers)
        self._network: Network | None = None

    def describe(self) -> str:
        return f"golden transport ({'-'.join(map(str, self.config.sizes))})"

    # ------------------------------------------------------------------ registers
    def _window_at(self, offset: int):
        i = int(np.searchsorted(self._bases, offset, side="right")) - 1
        if i < 0:
            return None
        w, image = self._windows[int(self._bases[i])]
        if offset < w.end:
            return w, image, (offset - w.base) // regmap.WORD_BYTES
        return None

    def _layer_reg(self, offset: int):
        rel = offset - regmap.LAYER_BASE
        if 0 <= rel < len(self.config.layers) * regmap.LAYER_STRIDE:
            k, r = divmod(rel, regmap.LAYER_STRIDE)
            for reg in regmap.LAYER_REGISTERS:
                if reg.offset == r:
                    return k, reg.name
        return None

    def read(self, offset: int) -> int:
        offset = int(offset)
        if offset % regmap.WORD_BYTES:
            self._errors["err_address"] = True
            return 0
        if offset in self._ro:
            return self._ro[offset]
        if offset == _STATUS.offset:
            return sum(1 << _STATUS.field(name).lsb for name, on in self._errors.items() if on)
        if offset == _CONTROL.offset:
            return 0
        for name in regmap.COUNTERS:
            if offset == regmap.register(f"{name}_LO").offset:
                value = self._counters[name]
                self._shadows[name] = value >> 32
                return value & 0xFFFFFFFF
            if offset == regmap.register(f"{name}_HI").offset:
                return self._shadows[name]
        layer_reg = self._layer_reg(offset)
        if layer_reg and layer_reg[1] in self._run_time:
            return self._run_time[layer_reg[1]][layer_reg[0]]
        hit = self._window_at(offset)
        if hit:
            w, image, index = hit
            if w.kind in ("v", "u"):
                state = self._states[w.layer]
                values = (state.v if w.kind == "v" else state.u)[0]
                return int(pack_neuron_values(values, self.config.layers[w.layer])[index])
            return int(image[index])
        self._errors["err_address"] = True
        return 0

    def write(self, offset: int, value: int) -> None:
        offset, value = int(offset), int(value) & 0xFFFFFFFF
        verdict = regmap.judge_write(self.config, offset, value)
        for name in verdict.errors:
            self._errors[name] = True
        if not verdict.performed:
            return
        if offset == _CONTROL.offset:
            if value & _CONTROL.field("clear_state").mask:
                self._states = tuple(golden.LayerState(np.zeros_like(s.v), np.zeros_like(s.u)) for s in self._states)
            if value & _CONTROL.field("clear_counters").mask:
                self._counters = dict.fromkeys(regmap.COUNTERS, 0)
            return
        if offset == _STATUS.offset:
            for name in regmap.ERRORS:
                if value & _STATUS.field(name).mask:
                    self._errors[name] = False
            return
        layer_reg = self._layer_reg(offset)
        if layer_reg:  # MODE, LAM or ALPHA: the writable per-layer registers
            k, name = layer_reg
            self._run_time[name][k] = value
        else:  # a word of a writable window
            _, image, index = self._window_at(offset)
            image[index] = value
        self._network = None

    # ------------------------------------------------------------------ numerics
    def network(self) -> Network:
        """The network the emulated registers hold (raises TransportError if they hold none)."""
        if self._network is None:
            layers = []
            for k, cfg in enumerate(self.config.layers):
                image = {w.kind: img for w, img in self._windows.values() if w.layer == k}
                mode = _MODE.decode(self._run_time["MODE"][k])
                neuron = Neuron(mode["neuron"]).label
                try:
                    layers.append(Layer(
                        unpack_weights(image["weights"], cfg),
                        theta=unpack_neuron_values(image["theta"], cfg),
                        bias=unpack_neuron_values(image["bias"], cfg),
                        neuron=neuron, reset=Reset(mode["reset"]).label, v_bits=cfg.v_bits, u_bits=cfg.u_bits,
                        frac_bits=cfg.frac_bits, lam=self._run_time["LAM"][k],
                        alpha=self._run_time["ALPHA"][k] if neuron == "cuba" else 0, where=f"layer {k}",
                    ))
                except NetworkError as exc:
                    raise TransportError(f"golden: the registers hold no valid network ({exc}); "
                                         "load one first") from None
            self._network = Network(tuple(layers))
        return self._network

    def transfer(self, words, n_out: int, *, deadline: float) -> Received:
        words = np.asarray(words).reshape(-1)
        cfg = self.config
        per = words_per_timestep(cfg.n_in, cfg.bus_width)
        if words.size == 0:
            return Received(words[:0], False)
        if words.size % per:
            self._errors["err_truncated"] = True
            words = np.concatenate([words, np.zeros(per - words.size % per, words.dtype)])
        spikes = unpack_spikes(words, cfg.n_in, cfg.bus_width)
        trace = golden.run(self.network(), spikes, states=self._states)
        self._states = trace.states
        out = pack_output(trace.spikes, trace.membranes, cfg).astype(words.dtype)
        self._counters["TIMESTEPS"] += spikes.shape[0]
        self._counters["SPIKES_IN"] += int(spikes.sum())
        self._counters["SPIKES_OUT"] += int(trace.spikes.sum())
        if out.size > n_out:  # the receive fills up: the rest stays in the "core", as on a board
            return Received(out[:n_out], False)
        return Received(out, True)

    def abort(self) -> None:
        pass

    def drain(self, *, deadline: float) -> int:
        return 0
