"""The host driver: one `Core` over any transport (golden, simulated board, PYNQ).

    from spikeloop.host import open_core
    core = open_core("sim", network=net)            # or "golden", or "pynq" with bitfile=...
    out = core.run(spikes)                          # [T, n_in] or [B, T, n_in] -> out.spikes, out.membranes
    core.reset()
    for obs in loop:                                # closed loop: one (or a few) timesteps per call
        z, v = core.step(encode(obs))

numpy only; torch tensors are accepted wherever spikes are (converted on the CPU), never required.

What the driver does, for every transport alike:
- identity: on opening, rebuilds the configuration from the core's registers
  (`CoreConfig.from_readback`: magic, version, design hash) and cross-checks WORDS_IN, WORDS_OUT
  and ADDRESS_BITS; with `expect=` it also refuses a core of another design;
- load: refuses a network the core cannot hold (`CoreConfig.check_network`, `ConfigError`), writes
  `windows.load_writes` by one stream transfer (a load frame of `spikeloop.paramstream`, where the
  transport can send one) or in bulk over AXI-Lite (`via="mmio"`), reads every word back and checks
  the sticky error bits (`LoadError`), then clears the state and the counters. After a failed load
  `run` and `step` refuse to run (`LoadError`) until a load succeeds;
- run / step: packs spikes with `stream.StreamCodec` (the layout of `stream.pack_spikes`), makes one
  stream transfer per chunk of timesteps with a deadline, checks that exactly the expected words came
  back with TLAST (`TransferError`), unpacks them, and checks STATUS for sticky errors
  set by the gateware (`CoreError`); `run(..., probe=)` sets `PROBE` (when it changes) and also
  returns every layer's spikes, membranes v' and currents u (a core built with probes);
- readouts: membranes and currents per layer, counters, status;
- reset: stops a transfer in flight, drains what the core still holds, completes a partial input
  timestep, clears errors, state and counters. After any error above, `reset()` makes the core
  usable again.
Every wait has a deadline (`timeout=` seconds, or one computed from the configuration).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spikeloop import regmap
from spikeloop.config import ConfigError, CoreConfig, design_hash, max_timestep_cycles
from spikeloop.network import Network
from spikeloop.paramstream import build_frame, bus_words
from spikeloop.spikes import SpikeError, as_bool_spikes, check_spikes
from spikeloop.stream import PROBE_KINDS, StreamCodec, output_words_per_timestep, words_per_timestep
from spikeloop.windows import load_writes, neuron_word_index, unpack_neuron_values

from .transport import Transport, TransportError, open_transport, transport_class

__all__ = [
    "Core", "Output", "Status", "CoreError", "LoadError", "TransferError", "ConfigError", "SpikeError",
    "TransportError", "open_core", "describe_config", "probe_value", "PROBE_NAMES",
]

_STATUS = regmap.register("STATUS")
_CONTROL = regmap.register("CONTROL")
_PROBE = regmap.register("PROBE")
_ERROR_MASK = sum(_STATUS.field(name).mask for name in regmap.ERRORS)
#: Names `run(probe=...)` takes besides the sections of `PROBE_KINDS`.
PROBE_NAMES = {"off": (), "spikes": ("spikes",), "all": PROBE_KINDS}


#: How `Core.load` can write a network: one load frame by a stream transfer, or AXI-Lite writes.
LOAD_PATHS = ("stream", "mmio")


class CoreError(RuntimeError):
    """The core set sticky error bits (`.errors`, names from regmap's STATUS fields), or the core is
    closed (`.errors` empty)."""

    def __init__(self, message: str, errors=(), status: int = 0):
        super().__init__(message)
        self.errors = tuple(errors)
        self.status = status


class LoadError(RuntimeError):
    """Loading parameters failed: a word read back differently, or the core refused a write."""


class TransferError(RuntimeError):
    """A stream transfer did not bring back what the contract promises (T timesteps in, T out)."""


class _Pair(NamedTuple):
    spikes: np.ndarray
    membranes: np.ndarray | None


class Output(_Pair):
    """What the core returned: spikes (bool) and, when the core outputs them, membranes v' (int64),
    a pair (`z, v = core.step(...)`); with a probe, `.layers`: a `golden.LayerStep(z, v, u)` per layer,
    shaped as the spikes with that layer's n_out (v, u None when the probe does not select them),
    as `golden.run(record=True).layers`; None without a probe."""

    def __new__(cls, spikes, membranes, layers=None):
        self = super().__new__(cls, spikes, membranes)
        self.layers = layers
        return self


def probe_value(probe, config: CoreConfig) -> int:
    """The `PROBE` register value of a `run(probe=...)` argument: None or "off" (0), "spikes", "all"
    (spikes, v, u), or an iterable of names from `PROBE_KINDS`. Refuses a probe on a core built
    without probes (`ConfigError`) and unknown names (`ValueError`)."""
    if probe is None:
        kinds = ()
    elif isinstance(probe, str):
        if probe not in PROBE_NAMES:
            raise ValueError(f"unknown probe {probe!r}; choose from {', '.join(map(repr, PROBE_NAMES))} or a set "
                             f"of {', '.join(map(repr, PROBE_KINDS))}")
        kinds = PROBE_NAMES[probe]
    else:
        try:
            kinds = tuple(probe)
        except TypeError:
            raise ValueError(f"probe must be None, a name or an iterable of names, got {probe!r}") from None
        for kind in kinds:
            if kind not in PROBE_KINDS:
                raise ValueError(f"unknown probe section {kind!r} in {probe!r}; choose from "
                                 f"{', '.join(map(repr, PROBE_KINDS))}")
    value = _PROBE.encode(**dict.fromkeys(kinds, 1))
    if value and not config.probes:
        raise ConfigError(f"probe {probe!r}: this core was built without probes: build it with "
                          "CoreConfig(..., probes=True) or `--probes`")
    return value


@dataclass(frozen=True)
class Status:
    """The STATUS register, decoded."""

    word: int
    busy: bool
    clearing: bool
    errors: tuple[str, ...]
    loading: bool = False


def describe_config(config: CoreConfig) -> str:
    """One line: sizes, lanes, chunks, event-driven layers (events E, `-` for a dense layer), recurrent layers
    (their indices), output options and the design hash prefix."""
    lanes = "/".join(str(c.lanes) for c in config.layers)
    chunk = "/".join(str(c.chunk) for c in config.layers)
    events = "/".join("-" if c.events is None else str(c.events) for c in config.layers)
    loops = ",".join(str(k) for k, c in enumerate(config.layers) if c.recurrent)
    extra = ((f", events {events}" if any(c.events is not None for c in config.layers) else "")
             + (f", recurrent layers {loops}" if loops else "")
             + (", membranes" if config.membranes else "") + (", probes" if config.probes else ""))
    return (f"{'-'.join(map(str, config.sizes))} (lanes {lanes}, chunk {chunk}{extra}, {config.bus_width}-bit bus, "
            f"design {design_hash(config).hex()[:12]})")


def _error_text(names) -> str:
    return "; ".join(f"{name} ({_STATUS.field(name).doc})" for name in names)


class Core:
    """A spikeloop core behind a transport.

    Parameters
    ----------
    transport : a `Transport` (see `spikeloop.host.transport`).
    network : a `Network` to load right away (optional).
    expect : a `CoreConfig`: refuse the core unless it is exactly this design.
    timeout : seconds every transfer may take at most (default: computed per transfer from the
        configuration and the transport's speed).
    check_errors : read STATUS after every transfer and raise `CoreError` on sticky errors.
    """

    def __init__(self, transport: Transport, *, network: Network | None = None, expect: CoreConfig | None = None,
                 timeout: float | None = None, check_errors: bool = True):
        if not isinstance(transport, Transport):
            raise TypeError(f"transport must be a Transport, got {type(transport).__name__}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._transport: Transport | None = transport
        self.timeout = timeout
        self.check_errors = bool(check_errors)
        self._config = self._identify(expect)
        cfg = self._config
        self._words_in = words_per_timestep(cfg.n_in, cfg.bus_width)
        self._words_out = output_words_per_timestep(cfg)
        self._dtype = np.dtype(np.uint32 if cfg.bus_width == 32 else np.uint64)
        self._codec = StreamCodec(cfg)
        self._codecs = {0: self._codec}  # by PROBE value
        # the PROBE value last written (None: unknown; a core built without probes holds 0)
        self._probe: int | None = None if cfg.probes else 0
        limit = transport.max_transfer_words
        self._max_steps = max(1, min(limit // self._words_in, limit // self._words_out))
        self._chunk_steps = self._max_steps
        self._cycles_per_step_bound = max_timestep_cycles(cfg)
        self._network: Network | None = None
        self._load_failed: str | None = None  # why the last load failed (run and step refuse then)
        #: Seconds spent in the last transfer: pack (spikes to words), transfer (the transport:
        #: sending, the core computing, receiving), unpack (words to arrays), check (STATUS).
        self.last_timing = {"pack": 0.0, "transfer": 0.0, "unpack": 0.0, "check": 0.0}
        if network is not None:
            self.load(network)

    @property
    def transport(self) -> Transport:
        """The transport; `CoreError` once the core is closed (every method goes through here)."""
        if self._transport is None:
            raise CoreError(f"the core is closed: open a new one with open_core(...) ({self._closed_what})")
        return self._transport

    @property
    def closed(self) -> bool:
        """True after `close()` (or the end of the `with` block): every method then raises `CoreError`."""
        return self._transport is None

    # ------------------------------------------------------------------ identity
    def _identify(self, expect: CoreConfig | None) -> CoreConfig:
        where = self.transport.describe()
        try:
            config = CoreConfig.from_readback(self.transport.read)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        checks = {"WORDS_IN": words_per_timestep(config.n_in, config.bus_width),
                  "WORDS_OUT": output_words_per_timestep(config),
                  "ADDRESS_BITS": regmap.address_bits(config)}
        for name, want in checks.items():
            got = self.transport.read(regmap.register(name).offset)
            if got != want:
                raise ConfigError(f"{where}: {name} reads {got}, the configuration read back implies {want}")
        if expect is not None and design_hash(expect) != design_hash(config):
            raise ConfigError(f"{where}: the core is {describe_config(config)}, expected {describe_config(expect)}")
        return config

    @property
    def config(self) -> CoreConfig:
        """The configuration read back from the core."""
        return self._config

    @property
    def words_in(self) -> int:
        """Bus words per input timestep."""
        return self._words_in

    @property
    def words_out(self) -> int:
        """Bus words per output timestep."""
        return self._words_out

    @property
    def steps_per_transfer(self) -> int:
        """Timesteps `run` sends per stream transfer (at most what the transport can move at once)."""
        return self._chunk_steps

    @steps_per_transfer.setter
    def steps_per_transfer(self, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= self._max_steps:
            raise ValueError(f"steps_per_transfer must be an integer in [1, {self._max_steps}], got {steps!r}")
        self._chunk_steps = int(steps)

    @property
    def network(self) -> Network | None:
        """The network loaded by this driver (None before `load`)."""
        return self._network

    @property
    def design_hash(self) -> str:
        """The core's design hash, hex."""
        return design_hash(self._config).hex()

    def __repr__(self) -> str:
        where = f"closed, was {self._closed_what}" if self.closed else self.transport.describe()
        return f"Core({where}: {describe_config(self._config)})"

    # ------------------------------------------------------------------ registers
    def _offset(self, name: str, layer: int | None) -> int:
        if layer is None:
            return regmap.register(name).offset
        self._layer_index(layer)
        return regmap.layer_offset(layer % len(self._config.layers), name)

    def read_register(self, name: str, layer: int | None = None) -> int:
        """A register by name (per-layer registers need `layer`)."""
        return self.transport.read(self._offset(name, layer))

    def write_register(self, name: str, value: int, layer: int | None = None) -> None:
        """Write a register by name (per-layer registers need `layer`). No check: the core has its own."""
        offset = self._offset(name, layer)
        if offset == _PROBE.offset:
            self._probe = None  # `run` writes PROBE again
        self.transport.write(offset, int(value) & 0xFFFFFFFF)

    def _set_probe(self, value: int) -> StreamCodec:
        """Write PROBE when it differs from what was last written; the codec of its output words."""
        if value != self._probe:
            self.transport.write(_PROBE.offset, value)
            self._probe = value
        codec = self._codecs.get(value)
        if codec is None:
            codec = self._codecs[value] = StreamCodec(self._config, value)
        return codec

    def status(self) -> Status:
        """STATUS, decoded."""
        word = self.transport.read(_STATUS.offset)
        fields = _STATUS.decode(word)
        return Status(word, bool(fields["busy"]), bool(fields["clearing"]),
                      tuple(name for name in regmap.ERRORS if fields[name]), bool(fields["loading"]))

    def errors(self) -> tuple[str, ...]:
        """Names of the sticky error bits that are set."""
        return self.status().errors

    def raise_errors(self) -> None:
        """Raise `CoreError` if any sticky error bit is set."""
        status = self.status()
        if status.errors:
            raise CoreError(f"the core reports {_error_text(status.errors)}. The bits stay set until "
                            "clear_errors() or reset().", status.errors, status.word)

    def _check_errors(self) -> None:
        """`raise_errors` with one STATUS read, decoded only when an error bit is set."""
        if self.transport.read(_STATUS.offset) & _ERROR_MASK:
            self.raise_errors()

    def clear_errors(self) -> None:
        """Clear every sticky error bit."""
        self.transport.write(_STATUS.offset, _ERROR_MASK)

    def counters(self) -> dict[str, int]:
        """The 64-bit counters: timesteps, spikes_in, spikes_out, busy_cycles."""
        out = {}
        for name in regmap.COUNTERS:
            lo = self.transport.read(regmap.register(f"{name}_LO").offset)  # latches _HI
            hi = self.transport.read(regmap.register(f"{name}_HI").offset)
            out[name.lower()] = hi << 32 | lo
        return out

    def _layer_index(self, layer: int) -> int:
        n = len(self._config.layers)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -n <= layer < n:
            raise IndexError(f"layer {layer!r} does not exist; the core has {n} layers")
        return int(layer) % n

    def _read_neurons(self, kind: str, layer: int) -> np.ndarray:
        k = self._layer_index(layer)
        cfg = self._config.layers[k]
        w = regmap.window(self._config, k, kind)
        index = neuron_word_index(cfg)
        words = self.transport.read_many(w.base + regmap.WORD_BYTES * index)
        image = np.zeros(w.words, np.uint32)
        image[index] = words
        return unpack_neuron_values(image, cfg)

    def membranes(self, layer: int = -1) -> np.ndarray:
        """Membranes v (after reset) of a layer's neurons, int64 [n_out]."""
        return self._read_neurons("v", layer)

    def currents(self, layer: int = -1) -> np.ndarray:
        """Currents u of a layer's neurons, int64 [n_out] (zero for lif layers)."""
        return self._read_neurons("u", layer)

    def states(self):
        """Every layer's state as `golden.LayerState` ([1, n_out] arrays), comparable with the golden model."""
        from spikeloop.golden import LayerState

        layers = range(len(self._config.layers))
        return tuple(LayerState(self.membranes(k)[None], self.currents(k)[None]) for k in layers)

    # ------------------------------------------------------------------ deadlines
    def _deadline(self, steps: int = 1, timeout: float | None = None, extra_words: int = 0) -> float:
        timeout = timeout if timeout is not None else self.timeout
        if timeout is None:
            rate = self.transport.cycles_per_second
            timeout = 2.0 + 4.0 * steps * (self._cycles_per_step_bound + extra_words) / rate
        return time.monotonic() + timeout

    def _wait_status(self, done, what: str, deadline: float) -> Status:
        while True:
            status = self.status()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.transport.describe()}: {what} did not happen before the deadline "
                                   f"(STATUS = {status.word:#x}); reset() drains and restarts the core")
            self.transport.pause()

    # ------------------------------------------------------------------ load
    def load(self, network: Network, *, verify: bool = True, via: str | None = None,
             timeout: float | None = None) -> None:
        """Load `network`: refuse it unless the core holds it exactly, write it, read it back, reset.

        `via`: "stream" (one load frame by a stream transfer; the default where the transport can
        send one, `transport.can_send_frames`) or "mmio" (one AXI-Lite write per word). `verify`:
        read every word back through AXI-Lite. Raises `ConfigError` (does not fit), `LoadError`
        (the core refused the frame or a write, or a word read back differently); after a
        `LoadError`, `run` and `step` refuse until a load succeeds.
        """
        if not isinstance(network, Network):
            raise TypeError(f"network must be a Network, got {type(network).__name__}")
        if via is None:
            via = "stream" if self.transport.can_send_frames else "mmio"
        if via not in LOAD_PATHS:
            raise ValueError(f"via must be {' or '.join(map(repr, LOAD_PATHS))}, not {via!r}")
        try:
            self._config.check_network(network)
        except ConfigError as exc:
            raise ConfigError(f"this core ({describe_config(self._config)}) cannot hold the "
                              f"{'-'.join(map(str, network.sizes))} network: {exc}") from None
        writes = load_writes(self._config, network)
        deadline = self._deadline(timeout=timeout)
        if timeout is None and self.timeout is None:  # and a cycle per word, 8 times over, for the frame
            deadline += 8 * len(writes) / self.transport.cycles_per_second
        self._wait_status(lambda s: not s.busy and not s.clearing, "the core going idle", deadline)
        self.clear_errors()
        offsets, values = (np.array(x, dtype=np.int64) for x in zip(*writes))
        self._network = None
        self._load_failed = "it did not finish"
        try:
            if via == "stream":
                self._load_frame(network, deadline)
            else:
                self.transport.write_many(offsets, values)
            self._verify_load(offsets, values, verify)
        except LoadError as exc:
            self._load_failed = str(exc)
            raise
        self._load_failed = None
        self._network = network
        self.clear_state(timeout=timeout)
        self.clear_counters()

    def _load_frame(self, network: Network, deadline: float) -> None:
        """Arm a load, send the network's load frame, wait until the core has walked it; `LoadError`
        naming what the core refused."""
        frame = build_frame(self._config, network)
        words = bus_words(frame, self._config.bus_width).astype(self._dtype)
        self.transport.write(_CONTROL.offset, _CONTROL.encode(load_params=1))
        self.transport.send_frame(words, deadline=deadline)
        status = self._wait_status(lambda s: not s.loading, "the end of the parameter load", deadline)
        if "err_load" in status.errors:
            hash0 = self.transport.read(regmap.register("HASH0").offset)
            why = (f"the frame's design hash word {int(frame[1]):#010x} is not the core's HASH0 {hash0:#010x}"
                   if hash0 != int(frame[1]) else f"the {words.size} bus words sent ({frame.size} frame words) did "
                   "not arrive as one whole frame ending with TLAST (magic, length)")
            raise LoadError(f"the core refused the parameter load frame: {why}; STATUS: {_error_text(status.errors)}. "
                            "Nothing half-loaded is used: load again before running.")

    def _verify_load(self, offsets: np.ndarray, values: np.ndarray, verify: bool) -> None:
        if verify:
            got = self.transport.read_many(offsets).astype(np.int64)
            bad = np.flatnonzero(got != (values & 0xFFFFFFFF))
            if bad.size:
                i = int(bad[0])
                raise LoadError(f"{bad.size} of {offsets.size} words read back differently; the first is "
                                f"{self._where(int(offsets[i]))}: wrote {int(values[i]) & 0xFFFFFFFF:#010x}, read "
                                f"{int(got[i]):#010x}")
        status = self.status()
        if status.errors:
            raise LoadError(f"the core refused part of the network: {_error_text(status.errors)}")

    def _check_loaded(self) -> None:
        """`LoadError` while the last load failed: nothing half-loaded is used."""
        if self._load_failed is not None:
            raise LoadError(f"the last parameter load failed ({self._load_failed}); load a network before running")

    def _where(self, offset: int) -> str:
        kind, what = regmap.decode_address(self._config, offset)
        if kind == "window":
            w, index = what
            return f"layer {w.layer} {w.kind} word {index} (offset {offset:#x})"
        if kind == "layer":
            return f"layer {what[0]} {what[1].name} (offset {offset:#x})"
        return f"offset {offset:#x}"

    # ------------------------------------------------------------------ control
    def clear_state(self, *, timeout: float | None = None) -> None:
        """Zero every membrane and current (waits until the core has done it)."""
        self.transport.write(_CONTROL.offset, _CONTROL.encode(clear_state=1))
        self._wait_status(lambda s: not s.clearing, "the state clear", self._deadline(timeout=timeout))

    def clear_counters(self) -> None:
        """Zero the counters."""
        self.transport.write(_CONTROL.offset, _CONTROL.encode(clear_counters=1))

    def reset(self, *, timeout: float | None = None) -> None:
        """Make the core usable again after anything: stop and drain transfers, finish a partial
        input timestep, clear errors, state and counters. The loaded parameters stay."""
        deadline = self._deadline(timeout=timeout)
        self.transport.abort()
        self.transport.drain(deadline=deadline)
        status = self.status()
        if status.busy and not status.clearing:
            # Input words of a timestep went in without the rest: finish it with one word and TLAST
            # (the core zero-pads it, sets err_truncated, and answers one timestep, discarded here).
            self.transport.transfer(np.zeros(1, self._dtype), self._words_out, deadline=deadline)
            self.transport.drain(deadline=deadline)
            status = self._wait_status(lambda s: not s.busy, "the core going idle", deadline)
        if status.loading and self.transport.can_send_frames:
            # An armed load, or a frame cut short: one word with TLAST ends it (refused: err_load, cleared below).
            self.transport.send_frame(np.zeros(1, self._dtype), deadline=deadline)
            self._wait_status(lambda s: not s.loading, "the end of an unfinished parameter load", deadline)
        self.clear_errors()
        self.clear_state(timeout=timeout)
        self.clear_counters()

    # ------------------------------------------------------------------ spikes
    def _transfer(self, spikes: np.ndarray, timeout: float | None, codec: StreamCodec | None = None):
        """bool [t, n_in] -> (bool [t, n_out], int64 [t, n_out] or None, per-layer probes or None), one
        transfer; `codec`: the one of the PROBE value set (default: probes off)."""
        self._check_loaded()
        codec = codec or self._codec
        t0 = time.perf_counter()
        steps = spikes.shape[0]
        words = codec.pack(spikes)
        n_out = steps * codec.words_out
        t1 = time.perf_counter()
        deadline = self._deadline(steps, timeout, codec.words_out - self._words_out)
        got = self.transport.transfer(words, n_out, deadline=deadline)
        t2 = time.perf_counter()
        if got.words.size != n_out or not got.last:
            raise TransferError(
                f"{self.transport.describe()}: {steps} timesteps in gave {got.words.size} words out, expected {n_out} "
                f"({codec.words_out} per timestep){' ending with TLAST' if got.last else ' and no TLAST'}. "
                "The output is unusable; call reset() before the next transfer.")
        z, v = codec.unpack(got.words)
        layers = codec.unpack_probes(got.words)
        t3 = time.perf_counter()
        if self.check_errors:
            self._check_errors()
        self.last_timing = {"pack": t1 - t0, "transfer": t2 - t1, "unpack": t3 - t2, "check": time.perf_counter() - t3}
        return z, v, layers

    def run(self, spikes, *, reset: bool = True, probe=None, timeout: float | None = None) -> Output:
        """Run whole sequences: spikes [T, n_in] or [B, T, n_in] of 0/1 (bool, integers; numpy or torch).

        Each sequence starts from a cleared state (as `golden.run`), unless `reset=False` (one
        unbatched sequence continuing from the current state). Batch entries run one after the
        other. Returns `Output(spikes [.., T, n_out] bool, membranes int64 or None, layers)`.

        `probe` (a core built with probes): None or "off", "spikes" (every layer's spikes), "all"
        (spikes, pre-reset membranes v' and currents u), or an iterable of "spikes", "v", "u".
        `layers` is then a `golden.LayerStep` per layer, equal to `golden.run(record=True).layers`
        (the sections not selected are None); None without a probe. PROBE is written only when it
        changes. While probing, the core runs one timestep at a time (docs/gateware.md).
        """
        codec = self._set_probe(probe_value(probe, self._config))
        s, batched = check_spikes(spikes, self._config.n_in)
        if batched and not reset:
            raise ValueError("reset=False continues one sequence; give spikes of shape [T, n_in], not a batch")
        B, T = s.shape[:2]
        n_out = self._config.n_out
        z_all = np.empty((B, T, n_out), bool)
        v_all = np.empty((B, T, n_out), np.int64) if self._config.membranes else None
        kinds = dict.fromkeys(PROBE_KINDS, False)
        kinds.update(_PROBE.decode(codec.probe))
        layers_all = None
        if codec.probe:
            layers_all = [{kind: np.empty((B, T, layer.n_out), bool if kind == "spikes" else np.int64)
                           for kind in PROBE_KINDS if kinds[kind]} for layer in self._config.layers]
        chunk = max(1, min(self._chunk_steps, self.transport.max_transfer_words // codec.words_out))
        for b in range(B):
            if reset:
                self.clear_state(timeout=timeout)
            for t0 in range(0, T, chunk):
                z, v, layers = self._transfer(s[b, t0 : t0 + chunk], timeout, codec)
                t1 = t0 + z.shape[0]
                z_all[b, t0:t1] = z
                if v_all is not None:
                    v_all[b, t0:t1] = v
                for got, step in zip(layers_all or (), layers or ()):
                    for kind, arr in got.items():
                        arr[b, t0:t1] = {"spikes": step.z, "v": step.v, "u": step.u}[kind]
        pick = (lambda x: x[0]) if not batched else (lambda x: x)
        layers_out = None
        if layers_all is not None:
            from spikeloop.golden import LayerStep

            layers_out = tuple(LayerStep(*(pick(got[kind]) if kind in got else None for kind in PROBE_KINDS))
                               for got in layers_all)
        return Output(pick(z_all), None if v_all is None else pick(v_all), layers_out)

    def step(self, spikes, *, timeout: float | None = None) -> Output:
        """The next timestep(s) of a closed loop, from the current state: spikes [n_in] (one
        timestep; returns [n_out]) or [k, n_in] (k timesteps; returns [k, n_out])."""
        if type(spikes) is not np.ndarray:
            if hasattr(spikes, "detach") and hasattr(spikes, "numpy"):  # a torch tensor, without importing torch
                spikes = spikes.detach().cpu().numpy()
            spikes = np.asarray(spikes)
        arr = spikes
        n_in = self._config.n_in
        if arr.ndim not in (1, 2) or arr.shape[-1] != n_in or arr.size == 0:
            raise SpikeError(f"step takes spikes of shape [{n_in}] (one timestep) or [k, {n_in}] (k timesteps), "
                             f"got shape {arr.shape}")
        if arr.dtype != np.bool_:
            arr = as_bool_spikes(arr)
        if self._probe != 0:  # a run with a probe came before: the closed loop streams the output alone
            self._set_probe(0)
        z, v, _ = self._transfer(arr.reshape(-1, n_in), timeout)
        if arr.ndim == 1:
            return Output(z[0], None if v is None else v[0])
        return Output(z, v)

    def close(self) -> None:
        """Close the transport. The core is unusable afterwards: every method raises `CoreError`.
        Closing again does nothing."""
        transport, self._transport = self._transport, None
        if transport is not None:
            self._closed_what = transport.describe()
            transport.close()

    def __enter__(self):
        self.transport  # noqa: B018 - refuses a closed core
        return self

    def __exit__(self, *exc):
        self.close()


def open_core(backend: str, network: Network | None = None, *, config: CoreConfig | None = None, lanes=16, chunk=64,
              events=None, membranes: bool = True, bus_width: int = 32, probes: bool = False,
              timeout: float | None = None, check_errors: bool = True, **options) -> Core:
    """Open a core by transport name and (optionally) load `network` into it.

    "golden" and "sim" build the core they talk to: from `config`, else from the network
    (`CoreConfig.for_network(network, lanes=, chunk=, events=, membranes=, bus_width=, probes=)`). "pynq" talks to a
    built bitstream (`bitfile=`, `overlay=`, `device=` ... see `PynqTransport`); a given `config`
    is then the design it must be. Other keyword `options` go to the transport.
    """
    cls = transport_class(backend)
    builds = backend in ("golden", "sim")
    if builds:
        if config is None:
            if network is None:
                raise ValueError(f"the {backend} transport needs a config= or a network= to build its core from")
            config = CoreConfig.for_network(network, lanes=lanes, chunk=chunk, events=events, membranes=membranes,
                                            bus_width=bus_width, probes=probes)
        transport = cls(config=config, **options)
    else:
        transport = open_transport(backend, **options)
    try:
        return Core(transport, network=network, expect=config, timeout=timeout, check_errors=check_errors)
    except BaseException:
        transport.close()
        raise
