"""The golden board: the core's register file and streams modelled over the numerics alone
(`spikeloop.golden`), behind the board interface (`spikeloop.sim.interface.Board`). numpy only.

    board = GoldenBoard(config)
    board.write_many(offsets, values)                  # load_writes(config, network)
    board.transfer(words, n_out, max_cycles); board.take()

The register file is modelled from `spikeloop.regmap` (identity, configuration readback, CONTROL,
STATUS with its sticky bits, counters, MODE (with the numerics options)/LAM/ALPHA, the parameter windows and the
membrane/current readout), so a host checks identity, loads and verifies parameters exactly as on
the simulated board or the PYNQ. Refused writes set `err_param` / `err_address` as the gateware does.
Input words are taken at once; each complete timestep (or one ended early by TLAST: zero-padded,
`err_truncated`) runs through `golden.run` from the kept state, and its output, packed as the core
packs it (with the per-layer sections `PROBE` selects, from `golden.run(record=True)`), waits in
the core until a receive takes it (`arm`), as on the simulated board.

Time is not modelled: a transfer completes at once, in zero clock cycles. `run` only lets the
clock count (`cycles`) advance while its `until` conditions do not hold (a host waiting for output
that never comes, under Fault.MUTE, sees time pass); `BUSY_CYCLES` stays 0. `busy` is seen while
input words of an unfinished timestep are held, `clearing` while a state clear waits for that
timestep to end; bus faults are not modelled, nor the phantom neurons of the core's padding lanes
(their state readout reads 0 here).

Parameter loads by stream: after `CONTROL.load_params` (`STATUS.loading`), the next transfer up to
TLAST is a load frame, walked at its TLAST as the gateware walks it (`spikeloop.paramstream.parse_frame`,
in `load_frames`), each write judged as an AXI-Lite write, `err_load` when the frame is refused.
"""

from __future__ import annotations

import numpy as np

from spikeloop import golden, regmap
from spikeloop.config import CoreConfig
from spikeloop.network import Layer, Network, NetworkError
from spikeloop.stream import pack_output, unpack_spikes, words_per_timestep
from spikeloop.windows import pack_neuron_values, unpack_neuron_values

from .interface import Board, BoardError, Fault, Rx, Until, check_fault
from .load_frames import FrameTaker

__all__ = ["GoldenBoard"]

_STATUS = regmap.register("STATUS")
_CONTROL = regmap.register("CONTROL")
_PROBE = regmap.register("PROBE")
_RUN_TIME = tuple(r.name for r in regmap.LAYER_REGISTERS if r.access == "rw")  # MODE, LAM, ALPHA
_NO_WORDS = np.zeros(0, np.uint64)


class GoldenBoard(Board):
    """The golden model presented as a core built for `config`; see the module's docstring.

    Parameters
    ----------
    config : CoreConfig the modelled core is "built" for.
    """

    cycles_per_second = float("inf")

    def __init__(self, config: CoreConfig):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
        self._config = config
        self._ro = config.readback()
        self._windows = {w.base: (w, np.zeros(w.words, np.uint32)) for w in regmap.windows(config)}
        self._bases = np.array(sorted(self._windows), dtype=np.int64)
        self._per_in = words_per_timestep(config.n_in, config.bus_width)
        # the spike bits of each word of a timestep (the last word's high bits are padding)
        bits = np.minimum(config.bus_width, config.n_in - config.bus_width * np.arange(self._per_in))
        self._in_masks = np.array([(1 << int(b)) - 1 for b in bits], np.uint64)
        self._network: Network | None = None
        self._cycles = 0
        self._fault, self._fault_value = Fault.NONE, 0
        self._frames = FrameTaker(config)
        self.reset()

    @property
    def config(self) -> CoreConfig:
        """The configuration the board models."""
        return self._config

    @property
    def cycles(self) -> int:
        """Clock cycles `run`, `reset` and `drain` let pass (the work itself takes none)."""
        return self._cycles

    def reset(self, cycles: int = 16) -> None:
        """Reset the registers (STATUS, counters, MODE/LAM/ALPHA), the state and both streams; the
        parameter windows (memories on the core) keep their contents."""
        n = len(self._config.layers)
        self._states = tuple(golden.LayerState(np.zeros((1, c.n_out), np.int64), np.zeros((1, c.n_out), np.int64))
                             for c in self._config.layers)
        self._run_time = {name: [0] * n for name in _RUN_TIME}
        self._probe = 0
        self._errors = dict.fromkeys(regmap.ERRORS, False)
        self._counters = dict.fromkeys(regmap.COUNTERS, 0)
        self._shadows = dict.fromkeys(regmap.COUNTERS, 0)
        self._network = None
        self._clear_pending = False
        self._loading = False  # CONTROL.load_params armed a load; the next transfer is a frame
        self._frames.forget()
        self._partial = _NO_WORDS  # input words of an unfinished timestep, held by the core
        self._out = _NO_WORDS  # output words the core holds, and their TLAST flags
        self._out_last = np.zeros(0, bool)
        self._rx, self._room = _NO_WORDS, 0
        self._armed = self._rx_last = self._rx_overflow = self._dropping = False
        self._cycles += max(int(cycles), 1) + 1

    def fault(self, kind: int, value: int = 0) -> None:
        """Inject a fault (`Fault.TRUNCATE` after `value` words, `Fault.MUTE`), or `Fault.NONE`."""
        self._fault, self._fault_value = check_fault(kind), int(value)
        self._dropping = False
        self._flow()

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
        if 0 <= rel < len(self._config.layers) * regmap.LAYER_STRIDE:
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
            bits = {**self._errors, "busy": self._partial.size > 0, "clearing": self._clear_pending,
                    "loading": self._loading}
            return sum(1 << _STATUS.field(name).lsb for name, on in bits.items() if on)
        if offset == _CONTROL.offset:
            return 0
        if offset == _PROBE.offset:
            return self._probe
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
                return int(pack_neuron_values(values, self._config.layers[w.layer])[index])
            return int(image[index])
        self._errors["err_address"] = True
        return 0

    def write(self, offset: int, value: int) -> None:
        offset, value = int(offset), int(value) & 0xFFFFFFFF
        verdict = regmap.judge_write(self._config, offset, value, busy=bool(self._partial.size))
        for name in verdict.errors:
            self._errors[name] = True
        if not verdict.performed:
            return
        if offset == _CONTROL.offset:
            if value & _CONTROL.field("clear_state").mask:
                self._clear_pending = True
                self._clear_state_when_idle()
            if value & _CONTROL.field("clear_counters").mask:
                self._counters = dict.fromkeys(regmap.COUNTERS, 0)
            if value & _CONTROL.field("load_params").mask:
                self._loading = True
            return
        if offset == _STATUS.offset:
            for name in regmap.ERRORS:
                if value & _STATUS.field(name).mask:
                    self._errors[name] = False
            return
        if offset == _PROBE.offset:
            self._probe = value
            return
        layer_reg = self._layer_reg(offset)
        if layer_reg:  # MODE, LAM or ALPHA: the writable per-layer registers
            k, name = layer_reg
            self._run_time[name][k] = value
        else:  # a word of a writable window
            _, image, index = self._window_at(offset)
            image[index] = value
        self._network = None

    def _clear_state_when_idle(self) -> None:
        """A state clear waits for the timestep in flight to end, as on the core."""
        if self._clear_pending and not self._partial.size:
            self._states = tuple(golden.LayerState(np.zeros_like(s.v), np.zeros_like(s.u)) for s in self._states)
            self._clear_pending = False

    # ------------------------------------------------------------------ numerics
    def network(self) -> Network:
        """The network the registers hold (`BoardError` if they hold none)."""
        if self._network is None:
            layers = []
            for k, cfg in enumerate(self._config.layers):
                image = {w.kind: img for w, img in self._windows.values() if w.layer == k}
                mode = regmap.mode_labels(self._run_time["MODE"][k])
                weights = cfg.weight_window.unpack(image["weights"])  # [w | r] of a recurrent layer
                try:
                    layers.append(Layer(
                        weights[:, : cfg.n_in], recurrent=weights[:, cfg.n_in :] if cfg.recurrent else None,
                        theta=unpack_neuron_values(image["theta"], cfg),
                        bias=unpack_neuron_values(image["bias"], cfg),
                        **mode, v_bits=cfg.v_bits, u_bits=cfg.u_bits,
                        frac_bits=cfg.frac_bits, lam=self._run_time["LAM"][k],
                        alpha=self._run_time["ALPHA"][k] if mode["neuron"] == "cuba" else 0, where=f"layer {k}",
                    ))
                except NetworkError as exc:
                    raise BoardError(f"the registers hold no valid network ({exc}); load one first") from None
            self._network = Network(tuple(layers))
        return self._network

    def _execute(self, words: np.ndarray, last: bool) -> None:
        """Run the complete timesteps of `words` (the last one zero-padded when `last` ends it early)."""
        per, cfg = self._per_in, self._config
        if last and words.size % per:
            self._errors["err_truncated"] = True
            words = np.concatenate([words, np.zeros(per - words.size % per, np.uint64)])
        if not words.size:
            return
        spikes = unpack_spikes(words.astype(np.uint32 if cfg.bus_width == 32 else np.uint64),
                                      cfg.n_in, cfg.bus_width)
        probe = self._probe
        trace = golden.run(self.network(), spikes, states=self._states, record=bool(probe))
        self._states = trace.states
        out = pack_output(trace.spikes, trace.membranes, cfg, probe=probe, layers=trace.layers).astype(np.uint64)
        flags = np.zeros(out.size, bool)
        flags[-1:] = last
        self._out = np.concatenate([self._out, out])
        self._out_last = np.concatenate([self._out_last, flags])
        self._counters["TIMESTEPS"] += spikes.shape[0]
        self._counters["SPIKES_OUT"] += int(trace.spikes.sum())

    # ------------------------------------------------------------------ input stream
    def send(self, words, *, last: bool = True) -> None:
        """Take `words` at once (TLAST on the last one when `last`), running every timestep they end."""
        words = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)
        if not words.size:
            return
        if self._loading:  # words after the partly received timestep (if any) are a load frame
            spikes = min(words.size, -self._partial.size % self._per_in)
            if spikes:
                self._send_spikes(words[:spikes], last=last and spikes == words.size)
            if spikes < words.size:
                self._take_frame(words[spikes:], last=last)
            return
        self._send_spikes(words, last=last)

    def _take_frame(self, words: np.ndarray, *, last: bool) -> None:
        """Load frame words: at TLAST, every write the core makes (judged as AXI-Lite writes), err_load
        if it refuses the frame, and the load is over."""
        done = self._frames.take(words, last=last)
        if done is None:
            return
        writes, error = done
        for offset, value in writes:
            self.write(offset, value)
        if error is not None:
            self._errors["err_load"] = True
        self._loading = False

    def _send_spikes(self, words: np.ndarray, *, last: bool) -> None:
        masks = self._in_masks[(self._partial.size + np.arange(words.size)) % self._per_in]
        self._counters["SPIKES_IN"] += int(np.unpackbits((words & masks).view(np.uint8)).sum())  # counted as taken
        held = np.concatenate([self._partial, words])
        whole = held.size if last else held.size - held.size % self._per_in
        self._partial = _NO_WORDS
        try:
            self._execute(held[:whole], last)
        finally:
            self._partial = held[whole:]
        self._clear_state_when_idle()
        self._flow()

    @property
    def pending(self) -> int:
        """Always 0: the model takes input words as they come."""
        return 0

    def discard(self) -> None:
        """Nothing to forget: input words are taken as they come."""

    # ------------------------------------------------------------------ output stream
    def _flow(self) -> None:
        """Move the output words the core holds into the receive, as far as it accepts them."""
        while self._out.size:
            if self._dropping:  # the rest of a truncated timestep, up to its TLAST
                ends = np.flatnonzero(self._out_last)
                n = int(ends[0]) + 1 if ends.size else self._out.size
                self._dropping = not ends.size
                self._pop(n)
                continue
            if not self._armed or self._fault == Fault.MUTE:
                return
            n = min(self._out.size, self._room - self._rx.size)
            ends = np.flatnonzero(self._out_last[:n])
            if ends.size:
                n = int(ends[0]) + 1
            truncate = self._fault == Fault.TRUNCATE and self._rx.size + n >= self._fault_value
            if truncate:
                n = max(1, min(n, self._fault_value - self._rx.size))
            last = bool(self._out_last[n - 1])
            self._rx = np.concatenate([self._rx, self._pop(n)])
            if last or truncate:
                self._rx_last, self._armed = True, False
                self._dropping = not last
            elif self._rx.size >= self._room:
                self._rx_overflow, self._armed = True, False

    def _pop(self, n: int) -> np.ndarray:
        words = self._out[:n]
        self._out, self._out_last = self._out[n:], self._out_last[n:]
        return words

    def arm(self, room: int) -> None:
        self._rx, self._room = _NO_WORDS, int(room)
        self._armed = self._room > 0
        self._rx_last = self._rx_overflow = False
        self._flow()

    def disarm(self) -> None:
        self._armed = False

    @property
    def rx_state(self) -> int:
        return ((Rx.ARMED if self._armed else 0) | (Rx.LAST if self._rx_last else 0)
                | (Rx.OVERFLOW if self._rx_overflow else 0))

    @property
    def received(self) -> int:
        return int(self._rx.size)

    def take(self, limit: int | None = None) -> np.ndarray:
        return self._rx[: self._rx.size if limit is None else int(limit)].copy()

    def drain(self, quiet: int = 2000, max_cycles: int = 10_000_000) -> int:
        """Discard the output words the core holds; `quiet` clock cycles pass."""
        count = int(self._out.size)
        self._pop(count)
        self._dropping = False
        self._cycles += int(quiet)
        return count

    # ------------------------------------------------------------------ clock
    def run(self, max_cycles: int, until: int = 0) -> int:
        """Nothing happens in time here: returns 0 when the `until` conditions hold, else lets
        `max_cycles` pass."""
        if until and not (until & Until.RECEIVED and self._armed) and not (until & Until.SENT and self.pending):
            return 0
        self._cycles += int(max_cycles)
        return int(max_cycles)
