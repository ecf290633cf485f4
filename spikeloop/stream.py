"""The core's AXI-Stream words: how spikes (and membranes) are packed per timestep.

`n` bits per timestep, LSB-first into `bus_width`-bit words, each timestep starting a new word
(`pack_spikes`, `unpack_spikes`); the output adds the last layer's membranes as 32-bit fields
when the core is built with `membranes` (`pack_output`, `unpack_output`). `StreamCodec` does the
same with the sizes of one configuration worked out once. numpy only (it runs on the board).
A `config` here is a `spikeloop.config.CoreConfig` (only its sizes, `membranes` and `bus_width`
are read).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BUS_WIDTHS", "StreamCodec", "words_per_timestep", "output_words_per_timestep", "pack_spikes", "unpack_spikes",
    "pack_output", "unpack_output",
]

#: AXI-Stream TDATA widths the core supports.
BUS_WIDTHS = (32, 64)


def _dtype(bus_width: int):
    if bus_width not in BUS_WIDTHS:
        raise ValueError(f"bus_width must be one of {BUS_WIDTHS}, got {bus_width!r}")
    return np.uint32 if bus_width == 32 else np.uint64


def words_per_timestep(n: int, bus_width: int = 32) -> int:
    """Bus words carrying `n` spike bits."""
    _dtype(bus_width)
    return -(-int(n) // bus_width)


def output_words_per_timestep(config) -> int:
    """Bus words per output timestep: spikes, then (with `membranes`) one 32-bit field per neuron."""
    words = words_per_timestep(config.n_out, config.bus_width)
    if config.membranes:
        words += words_per_timestep(32 * config.n_out, config.bus_width)
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


def _unpack_rows(rows: np.ndarray, config, spike_words: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Output rows [T, words per output timestep] (wire order) -> (spikes, membranes or None)."""
    spikes = _unpack_bits(np.ascontiguousarray(rows[:, :spike_words]), config.n_out, config.bus_width)
    if not config.membranes:
        return spikes, None
    m = np.ascontiguousarray(rows[:, spike_words:])
    return spikes, m.view("<i4").reshape(rows.shape[0], -1)[:, : config.n_out].astype(np.int64)


class StreamCodec:
    """The stream words of one core configuration, sizes worked out once: a closed loop packs and
    unpacks a timestep per call, where numpy's per-call overhead is most of the work. The same
    layout as `pack_spikes` / `unpack_output`; the caller has checked the spikes (bool [t, n_in])."""

    def __init__(self, config):
        self.config = config
        self.words_in = words_per_timestep(config.n_in, config.bus_width)
        self.words_out = output_words_per_timestep(config)
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


def pack_output(spikes, membranes, config) -> np.ndarray:
    """What the core sends: per timestep the spike words, then (with `membranes`) the membranes
    as 32-bit two's complement fields, LSB-first (membrane j in bits 32*(j % (W/32)) of word j // (W/32))."""
    z = _pack_bits(np.asarray(spikes, dtype=bool), config.bus_width)
    if not config.membranes:
        return z.reshape(-1)
    v = np.asarray(membranes, dtype=np.int64)
    per32 = config.bus_width // 32
    n = config.n_out
    padded = np.zeros((v.shape[0], -(-n // per32) * per32), np.uint32)
    padded[:, :n] = (v & 0xFFFFFFFF).astype(np.uint32)
    mw = padded.astype("<u4").view(np.uint8).reshape(v.shape[0], -1)
    mwords = np.ascontiguousarray(mw).view(np.dtype(_dtype(config.bus_width)).newbyteorder("<"))
    return np.concatenate([z, mwords.astype(z.dtype)], axis=1).reshape(-1)


def unpack_output(words, config) -> tuple[np.ndarray, np.ndarray | None]:
    """Output stream words -> (spikes bool [T, n_out], membranes int64 [T, n_out] or None)."""
    words = np.asarray(words).reshape(-1)
    per = output_words_per_timestep(config)
    if words.size % per:
        raise ValueError(f"{words.size} words is not a whole number of {per}-word output timesteps")
    rows = np.ascontiguousarray(words, dtype=_WIRE[config.bus_width]).reshape(-1, per)
    return _unpack_rows(rows, config, words_per_timestep(config.n_out, config.bus_width))
