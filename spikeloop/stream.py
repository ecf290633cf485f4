"""The core's AXI-Stream words: how spikes (and membranes) are packed per timestep.

`n` bits per timestep, LSB-first into `bus_width`-bit words, each timestep starting a new word
(`pack_spikes`, `unpack_spikes`); the output adds the last layer's membranes as 32-bit fields
when the core is built with `membranes` (`pack_output`, `unpack_output`). On a core built with
`probes`, the `PROBE` register value (`probe`) appends, per layer in order, that layer's spikes,
pre-reset membranes v' and currents u (the selected ones, each section on a new word, packed like
the output's spikes and membranes; `pack_output(..., probe=, layers=)`, `unpack_probes`).
`StreamCodec` does the same with the sizes of one configuration worked out once. numpy only (it
runs on the board). A `config` here is a `spikeloop.config.CoreConfig` (only its sizes,
`membranes` and `bus_width` are read).
"""

from __future__ import annotations

import numpy as np

from spikeloop.golden import LayerStep
from spikeloop.regmap import register

__all__ = [
    "BUS_WIDTHS", "FIELD_BITS", "PROBE_KINDS", "StreamCodec", "words_per_timestep", "output_words_per_timestep",
    "probe_kinds", "pack_spikes", "unpack_spikes", "pack_output", "unpack_output", "unpack_probes",
]

#: AXI-Stream TDATA widths the core supports.
BUS_WIDTHS = (32, 64)
#: Bits of a membrane or current field of the output stream (two's complement; a value is carried modulo 2^32).
FIELD_BITS = 32


def _dtype(bus_width: int):
    if bus_width not in BUS_WIDTHS:
        raise ValueError(f"bus_width must be one of {BUS_WIDTHS}, got {bus_width!r}")
    return np.uint32 if bus_width == 32 else np.uint64


def words_per_timestep(n: int, bus_width: int = 32) -> int:
    """Bus words carrying `n` spike bits."""
    _dtype(bus_width)
    return -(-int(n) // bus_width)


#: The sections a probe can select for every layer, in stream order (the `PROBE` register's fields).
PROBE_KINDS = tuple(f.name for f in register("PROBE").fields)
_PROBE_MASK = sum(f.mask for f in register("PROBE").fields)


def probe_kinds(probe: int) -> tuple[str, ...]:
    """The sections (of `PROBE_KINDS`) a `PROBE` register value selects, in stream order."""
    if isinstance(probe, bool) or not isinstance(probe, (int, np.integer)) or probe < 0 or probe & ~_PROBE_MASK:
        raise ValueError(f"probe must be a PROBE register value in [0, {_PROBE_MASK}], got {probe!r}")
    fields = register("PROBE").decode(int(probe))
    return tuple(kind for kind in PROBE_KINDS if fields[kind])


def _section_words(kind: str, n: int, bus_width: int) -> int:
    """Bus words of `n` spikes (`kind` "spikes") or of `n` 32-bit fields (membranes, currents)."""
    return words_per_timestep(n if kind == "spikes" else 32 * n, bus_width)


def output_words_per_timestep(config, probe: int = 0) -> int:
    """Bus words per output timestep: spikes, then (with `membranes`) one 32-bit field per neuron,
    then the sections `probe` (a `PROBE` register value) selects, for every layer."""
    words = words_per_timestep(config.n_out, config.bus_width)
    if config.membranes:
        words += words_per_timestep(32 * config.n_out, config.bus_width)
    for kind in probe_kinds(probe):
        words += sum(_section_words(kind, layer.n_out, config.bus_width) for layer in config.layers)
    return words


# Little-endian word dtypes of the stream (the wire order), by bus width. A closed loop packs and
# unpacks one timestep per call: these helpers avoid every copy and conversion numpy can skip.
_WIRE = {32: np.dtype("<u4"), 64: np.dtype("<u8")}


def _pack_bits(bits: np.ndarray, bus_width: int, scratch: np.ndarray | None = None) -> np.ndarray:
    """bool [T, n] -> words [T, ceil(n/bus_width)], bit i of a row in bit i%W of word i//W.

    `scratch`: a zeroed bool [T, words * W] buffer to reuse (only its first n columns are written)."""
    dtype = _dtype(bus_width)
    steps, n = bits.shape
    padded = scratch if scratch is not None else np.zeros((steps, -(-n // bus_width) * bus_width), np.bool_)
    padded[:, :n] = bits
    return np.packbits(padded, axis=1, bitorder="little").view(_WIRE[bus_width]).astype(dtype, copy=False)


def _unpack_bits(words: np.ndarray, n: int, bus_width: int) -> np.ndarray:
    """Inverse of `_pack_bits`: words [T, per] (little-endian, contiguous rows) -> bool [T, n]."""
    as_bytes = words.view(np.uint8).reshape(words.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, count=n, bitorder="little").view(np.bool_)


def _pack_fields(values, bus_width: int) -> np.ndarray:
    """int [T, n] -> words [T, ceil(32 n / W)]: 32-bit two's complement fields, value j in bits
    32*(j % (W/32)) of word j // (W/32)."""
    v = np.asarray(values, dtype=np.int64)
    per32 = bus_width // 32
    n = v.shape[1]
    padded = np.zeros((v.shape[0], -(-n // per32) * per32), np.uint32)
    padded[:, :n] = (v & 0xFFFFFFFF).astype(np.uint32)
    mw = padded.astype("<u4").view(np.uint8).reshape(v.shape[0], -1)
    return np.ascontiguousarray(mw).view(np.dtype(_dtype(bus_width)).newbyteorder("<")).astype(_dtype(bus_width))


def _unpack_fields(rows: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `_pack_fields`: words [T, per] (wire order) -> int64 [T, n]."""
    m = np.ascontiguousarray(rows)
    return m.view("<i4").reshape(rows.shape[0], -1)[:, :n].astype(np.int64)


def _unpack_rows(rows: np.ndarray, config, spike_words: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Output rows [T, words per output timestep] (wire order) -> (spikes, membranes or None)."""
    spikes = _unpack_bits(np.ascontiguousarray(rows[:, :spike_words]), config.n_out, config.bus_width)
    if not config.membranes:
        return spikes, None
    end = spike_words + words_per_timestep(32 * config.n_out, config.bus_width)
    return spikes, _unpack_fields(rows[:, spike_words:end], config.n_out)


def _unpack_layers(rows: np.ndarray, config, probe: int) -> tuple[LayerStep, ...]:
    """The probe sections of output rows (wire order) -> a `LayerStep` per layer (None where not selected)."""
    W = config.bus_width
    start = output_words_per_timestep(config)
    kinds = probe_kinds(probe)
    out = []
    for layer in config.layers:
        got = dict.fromkeys(PROBE_KINDS)
        for kind in kinds:
            end = start + _section_words(kind, layer.n_out, W)
            section = np.ascontiguousarray(rows[:, start:end])
            got[kind] = (_unpack_bits(section, layer.n_out, W) if kind == "spikes"
                         else _unpack_fields(section, layer.n_out))
            start = end
        out.append(LayerStep(got["spikes"], got["v"], got["u"]))
    return tuple(out)


class StreamCodec:
    """The stream words of one core configuration, sizes worked out once: a closed loop packs and
    unpacks a timestep per call, where numpy's per-call overhead is most of the work. The same
    layout as `pack_spikes` / `unpack_output`; the caller has checked the spikes (bool [t, n_in])."""

    def __init__(self, config, probe: int = 0):
        self.config = config
        self.probe = int(probe)
        self.words_in = words_per_timestep(config.n_in, config.bus_width)
        self.words_out = output_words_per_timestep(config, probe)
        self._spike_words = words_per_timestep(config.n_out, config.bus_width)
        self._wire = _WIRE[config.bus_width]
        self._scratch = np.zeros((1, self.words_in * config.bus_width), np.bool_)  # one timestep, reused

    def pack(self, spikes: np.ndarray) -> np.ndarray:
        """bool [t, n_in] -> the flat stream words of t timesteps."""
        scratch = self._scratch if spikes.shape[0] == 1 else None
        return _pack_bits(spikes, self.config.bus_width, scratch).reshape(-1)

    def unpack(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Output words of whole timesteps -> (spikes bool [t, n_out], membranes int64 [t, n_out] or None)."""
        rows = np.ascontiguousarray(words, dtype=self._wire).reshape(-1, self.words_out)
        return _unpack_rows(rows, self.config, self._spike_words)

    def unpack_probes(self, words: np.ndarray) -> tuple[LayerStep, ...] | None:
        """The probe sections of output words of whole timesteps: a `LayerStep` per layer ([t, n_out]
        arrays, None for what the probe does not select); None when the probe is 0."""
        if not self.probe:
            return None
        rows = np.ascontiguousarray(words, dtype=self._wire).reshape(-1, self.words_out)
        return _unpack_layers(rows, self.config, self.probe)


def pack_spikes(spikes, bus_width: int = 32) -> np.ndarray:
    """Spikes bool/0-1 [T, n] -> the stream words of T timesteps, flat [T * words_per_timestep].

    Each timestep starts a new word; bit i of the timestep is bit i % W of its word i // W.
    """
    arr = np.asarray(spikes)
    if arr.ndim != 2:
        raise ValueError(f"spikes must have shape [T, n], got {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer) or ((arr != 0) & (arr != 1)).any():
            raise ValueError("spikes must be bool or integers 0/1")
    return _pack_bits(arr.astype(bool), bus_width).reshape(-1)


def unpack_spikes(words, n: int, bus_width: int = 32) -> np.ndarray:
    """Stream words of whole timesteps -> bool [T, n]. The padding bits of each last word are ignored."""
    words = np.asarray(words).reshape(-1)
    per = words_per_timestep(n, bus_width)
    if words.size % per:
        raise ValueError(f"{words.size} words is not a whole number of {per}-word timesteps")
    return _unpack_bits(np.ascontiguousarray(words, dtype=_WIRE[bus_width]).reshape(-1, per), n, bus_width)


def pack_output(spikes, membranes, config, *, probe: int = 0, layers=None) -> np.ndarray:
    """What the core sends: per timestep the spike words, then (with `membranes`) the membranes
    as 32-bit two's complement fields, LSB-first (membrane j in bits 32*(j % (W/32)) of word j // (W/32)),
    then, for each layer in order, the sections `probe` selects (`probe_kinds`): its spikes packed
    like the output's spikes, its pre-reset membranes v' and its currents u packed like the
    membranes, each section starting a new word. `layers`: a `golden.LayerStep` per layer, [T, n_out]
    arrays (`golden.run(..., record=True).layers`), needed when `probe` is not 0."""
    W = config.bus_width
    z = np.asarray(spikes, dtype=bool)
    parts = [_pack_bits(z, W)]
    if config.membranes:
        parts.append(_pack_fields(membranes, W))
    kinds = probe_kinds(probe)
    if kinds:
        if layers is None or len(layers) != len(config.layers):
            raise ValueError(f"probe {probe} needs layers= with a LayerStep for each of the "
                             f"{len(config.layers)} layers")
        for k, (cfg, step) in enumerate(zip(config.layers, layers)):
            for kind in kinds:
                values = np.asarray({"spikes": step.z, "v": step.v, "u": step.u}[kind])
                if values.shape != (z.shape[0], cfg.n_out):
                    raise ValueError(f"layer {k} {kind} has shape {values.shape}, expected {(z.shape[0], cfg.n_out)}")
                parts.append(_pack_bits(values.astype(bool), W) if kind == "spikes" else _pack_fields(values, W))
    if len(parts) == 1:
        return parts[0].reshape(-1)
    return np.concatenate(parts, axis=1).reshape(-1)


def _output_rows(words, config, probe: int) -> np.ndarray:
    words = np.asarray(words).reshape(-1)
    per = output_words_per_timestep(config, probe)
    if words.size % per:
        raise ValueError(f"{words.size} words is not a whole number of {per}-word output timesteps")
    return np.ascontiguousarray(words, dtype=_WIRE[config.bus_width]).reshape(-1, per)


def unpack_output(words, config, *, probe: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Output stream words -> (spikes bool [T, n_out], membranes int64 [T, n_out] or None); with
    `probe`, the words carry the probe sections too (`unpack_probes` reads them)."""
    rows = _output_rows(words, config, probe)
    return _unpack_rows(rows, config, words_per_timestep(config.n_out, config.bus_width))


def unpack_probes(words, config, probe: int) -> tuple[LayerStep, ...]:
    """The probe sections of output stream words -> a `golden.LayerStep(z, v, u)` per layer: spikes
    bool [T, n_out], v' and u int64 [T, n_out], None for a section `probe` does not select."""
    return _unpack_layers(_output_rows(words, config, probe), config, probe)
