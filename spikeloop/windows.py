"""What the core's parameter windows hold: weights, thresholds, biases and state as 32-bit words.

Weights are 1 bit per synapse, a row per (neuron group, input chunk) (`pack_weights`, `DenseGeometry`), or
for the event-driven crossbar a row per (neuron group, bank row, bank) (`pack_event_weights`, `EventGeometry`);
a layer's own is `LayerConfig.weight_window`; per-neuron
values are 32-bit two's complement words, a group of `lanes` neurons per power-of-two stride
(`pack_neuron_values`); `load_writes` lists every register write that loads a network. Where the
windows lie is `spikeloop.regmap` (`windows`, `window`). numpy only (it runs on the board).
A `layer` here is a `spikeloop.config.LayerConfig`, a `config` a `CoreConfig`.
"""

from __future__ import annotations

import numpy as np

from spikeloop.network import Layer, Network, check_int
from spikeloop.regmap import WORD_BYTES, ceil_div, layer_offset, mode_word, next_pow2, window

__all__ = [
    "DenseGeometry", "pack_weights", "unpack_weights",
    "MAX_EVENTS", "EventGeometry", "pack_event_weights", "unpack_event_weights",
    "pack_neuron_values", "unpack_neuron_values", "neuron_word_index",
    "load_writes", "layer_control_values",
]


class DenseGeometry:
    """The weights window of the dense crossbar (rtl/crossbar.py): `n_in`, `n_out`, `lanes` (P), `chunk` (C),
    checked with a ValueError or TypeError naming the value.

    Row `g * n_chunks + c` holds the P x C synapses of group g from input chunk c (`pack_weights`), in
    `row_words` words at a stride of `row_stride` words (a power of two). `LayerConfig.weight_window` is this
    or an `EventGeometry`; both give `slots` (rows of `row_stride` words), `words`, `data_words`, `pack`, `unpack`.
    """

    def __init__(self, *, n_in: int, n_out: int, lanes: int, chunk: int):
        self.n_in = check_int("n_in", n_in, 1, 65536)
        self.n_out = check_int("n_out", n_out, 1, 65536)
        self.lanes = check_int("lanes", lanes, 1, n_out)
        self.chunk = check_int("chunk", chunk, 1, n_in)

    def __repr__(self):
        return f"DenseGeometry(n_in={self.n_in}, n_out={self.n_out}, lanes={self.lanes}, chunk={self.chunk})"

    @property
    def n_groups(self) -> int:
        """Groups of `lanes` neurons (the last one padded with idle lanes)."""
        return ceil_div(self.n_out, self.lanes)

    @property
    def n_chunks(self) -> int:
        """Input chunks of `chunk` bits (the last one zero-padded)."""
        return ceil_div(self.n_in, self.chunk)

    @property
    def row_bits(self) -> int:
        """Weight bits of a row: lanes * chunk."""
        return self.lanes * self.chunk

    @property
    def row_words(self) -> int:
        """32-bit words holding one row."""
        return ceil_div(self.row_bits, 32)

    @property
    def row_stride(self) -> int:
        """Words between rows in the window (a power of two)."""
        return next_pow2(self.row_words)

    @property
    def weight_rows(self) -> int:
        """Rows of the weight memory: one per (group, chunk)."""
        return self.n_groups * self.n_chunks

    @property
    def slots(self) -> int:
        """Rows of `row_stride` words in the window: `weight_rows`."""
        return self.weight_rows

    @property
    def words(self) -> int:
        """Words of the weights window image."""
        return self.slots * self.row_stride

    def data_words(self) -> np.ndarray:
        """Indices of the window's words that hold weights (the rest is padding, ignored on write)."""
        index = np.arange(self.words)
        return index[index % self.row_stride < self.row_words]

    def pack(self, weights) -> np.ndarray:
        """`pack_weights` for this geometry."""
        return pack_weights(weights, self)

    def unpack(self, words) -> np.ndarray:
        """`unpack_weights` for this geometry."""
        return unpack_weights(words, self)


def pack_weights(weights, layer) -> np.ndarray:
    """+/-1 weights [n_out, n_in] -> the weights window image, uint32 [weight_rows * row_stride].

    Row `g * n_chunks + c` holds, for lane p and bit b, the synapse of neuron `g*P + p` from
    input `c*C + b` at row bit `p*C + b` (1 for +1); a row is `row_words` words LSB-first,
    followed by zero padding up to `row_stride`. Padding lanes and inputs hold 0. `layer`: a `DenseGeometry`
    or a dense `LayerConfig` (an event-driven layer's is `pack_event_weights`; `LayerConfig.weight_window.pack`
    picks the right one).
    """
    _check_dense(layer)
    w = np.asarray(weights)
    if w.shape != (layer.n_out, layer.n_in):
        raise ValueError(f"weights have shape {w.shape}, the layer has [{layer.n_out}, {layer.n_in}]")
    P, C = layer.lanes, layer.chunk
    bits = np.zeros((layer.n_groups * P, layer.n_chunks * C), np.uint8)
    bits[: layer.n_out, : layer.n_in] = w > 0
    # [g, p, c, b] -> [g, c, p, b]
    rows = bits.reshape(layer.n_groups, P, layer.n_chunks, C).transpose(0, 2, 1, 3).reshape(layer.weight_rows, P * C)
    padded = np.zeros((layer.weight_rows, layer.row_stride * 32), np.uint8)
    padded[:, : P * C] = rows
    return np.packbits(padded, axis=1, bitorder="little").view("<u4").astype(np.uint32).reshape(-1)


def unpack_weights(words, layer) -> np.ndarray:
    """Inverse of `pack_weights`: int8 [n_out, n_in] of +/-1."""
    _check_dense(layer)
    words = np.asarray(words, dtype=np.uint32).reshape(layer.weight_rows, layer.row_stride)
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), axis=1, bitorder="little")[:, : layer.row_bits]
    P, C = layer.lanes, layer.chunk
    full = bits.reshape(layer.n_groups, layer.n_chunks, P, C).transpose(0, 2, 1, 3)
    full = full.reshape(layer.n_groups * P, layer.n_chunks * C)[: layer.n_out, : layer.n_in]
    return (2 * full.astype(np.int8) - 1).astype(np.int8)


def _check_dense(layer) -> None:
    if getattr(layer, "events", None) is not None:
        raise ValueError(f"layer {layer!r} has an event-driven crossbar (events = {layer.events}): its weights "
                         "window is `pack_event_weights` (`LayerConfig.weight_window` picks the packer)")


#: Most inputs the event-driven crossbar takes per clock (its popcount trees: two register stages).
MAX_EVENTS = 64


class EventGeometry:
    """The weights window of the event-driven crossbar (rtl/events.py): `n_in`, `n_out`, `lanes` (P),
    `events` (E, 1 <= E <= min(MAX_EVENTS, n_in)), checked with a ValueError or TypeError naming the value.

    Input i lies in bank `i % E` at bank row `i // E` (K = ceil(n_in / E) rows per bank and group).
    The P weight bits of a (group g, bank row k, bank b) are the synapses of neurons g*P .. g*P+P-1
    from input k*E + b (lane p at bit p, 1 for +1), in `row_words` words LSB-first, at word

        ((g * K + k) * bank_stride + b) * row_stride + word

    where `row_stride` = next_pow2(row_words) and `bank_stride` = next_pow2(E): every field of the
    address is a bit field. Padding lanes, inputs, banks and words hold 0.
    """

    def __init__(self, *, n_in: int, n_out: int, lanes: int, events: int):
        self.n_in = check_int("n_in", n_in, 1, 65536)
        self.n_out = check_int("n_out", n_out, 1, 65536)
        self.lanes = check_int("lanes", lanes, 1, n_out)
        self.events = check_int("events", events, 1, min(MAX_EVENTS, n_in))

    def __repr__(self):
        return f"EventGeometry(n_in={self.n_in}, n_out={self.n_out}, lanes={self.lanes}, events={self.events})"

    @property
    def n_groups(self) -> int:
        """Groups of `lanes` neurons (the last one padded with idle lanes)."""
        return ceil_div(self.n_out, self.lanes)

    @property
    def bank_rows(self) -> int:
        """K: rows of a bank per group, ceil(n_in / E) (the last one padded in the banks past n_in % E)."""
        return ceil_div(self.n_in, self.events)

    @property
    def rows(self) -> int:
        """Rows of each bank's memory: one per (group, bank row)."""
        return self.n_groups * self.bank_rows

    @property
    def row_words(self) -> int:
        """32-bit words holding one bank row of P bits."""
        return ceil_div(self.lanes, 32)

    @property
    def row_stride(self) -> int:
        """Words between two (bank, row)s in the window (a power of two)."""
        return next_pow2(self.row_words)

    @property
    def bank_stride(self) -> int:
        """Bank slots per row in the window (a power of two >= E)."""
        return next_pow2(self.events)

    @property
    def slots(self) -> int:
        """(bank row, bank) slots of `row_stride` words in the window: `rows * bank_stride`."""
        return self.rows * self.bank_stride

    @property
    def words(self) -> int:
        """Words of the weights window image."""
        return self.slots * self.row_stride

    def items(self, spikes):
        """Z per timestep of `spikes` ([n_in] or [T, n_in] of 0/1): the most active inputs of one bank, the
        clocks a group takes when more than 0 (an int, or an array of T)."""
        s = np.asarray(spikes)
        if s.shape[-1:] != (self.n_in,):
            raise ValueError(f"spikes have shape {s.shape}, the layer has {self.n_in} inputs")
        padded = np.zeros((*s.shape[:-1], self.bank_rows * self.events), bool)
        padded[..., : self.n_in] = s != 0
        z = padded.reshape(*s.shape[:-1], self.bank_rows, self.events).sum(axis=-2).max(axis=-1)
        return z if np.ndim(z) else int(z)

    def data_words(self) -> np.ndarray:
        """Indices of the window's words that hold weights (padding words and banks are ignored on write)."""
        index = np.arange(self.words)
        word, slot = index % self.row_stride, index // self.row_stride
        return index[(word < self.row_words) & (slot % self.bank_stride < self.events)]

    def pack(self, weights) -> np.ndarray:
        """`pack_event_weights` for this geometry."""
        w = np.asarray(weights)
        if w.shape != (self.n_out, self.n_in):
            raise ValueError(f"weights have shape {w.shape}, the layer has [{self.n_out}, {self.n_in}]")
        return pack_event_weights(w, self.lanes, self.events)

    def unpack(self, words) -> np.ndarray:
        """`unpack_event_weights` for this geometry."""
        return unpack_event_weights(words, n_in=self.n_in, n_out=self.n_out, lanes=self.lanes, events=self.events)


def pack_event_weights(weights, lanes: int, events: int) -> np.ndarray:
    """+/-1 weights [n_out, n_in] -> the event-driven crossbar's weights window image, uint32
    [`EventGeometry.words`], laid out as `EventGeometry` says."""
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"weights have shape {w.shape}, expected [n_out, n_in]")
    geo = EventGeometry(n_in=w.shape[1], n_out=w.shape[0], lanes=lanes, events=events)
    P, E, K = geo.lanes, geo.events, geo.bank_rows
    bits = np.zeros((geo.n_groups * P, K * E), np.uint8)
    bits[: geo.n_out, : geo.n_in] = w > 0
    # [g, p, k, b] -> [g, k, b, p]
    rows = bits.reshape(geo.n_groups, P, K, E).transpose(0, 2, 3, 1)
    padded = np.zeros((geo.n_groups, K, geo.bank_stride, geo.row_stride * 32), np.uint8)
    padded[:, :, :E, :P] = rows
    padded = padded.reshape(-1, geo.row_stride * 32)
    return np.packbits(padded, axis=1, bitorder="little").view("<u4").astype(np.uint32).reshape(-1)


def unpack_event_weights(words, *, n_in: int, n_out: int, lanes: int, events: int) -> np.ndarray:
    """Inverse of `pack_event_weights`: int8 [n_out, n_in] of +/-1."""
    geo = EventGeometry(n_in=n_in, n_out=n_out, lanes=lanes, events=events)
    words = np.asarray(words, dtype=np.uint32)
    if words.shape != (geo.words,):
        raise ValueError(f"expected {geo.words} words, got shape {words.shape}")
    P, E, K = geo.lanes, geo.events, geo.bank_rows
    bits = np.unpackbits(words.reshape(-1, geo.row_stride).astype("<u4").view(np.uint8), axis=1, bitorder="little")
    rows = bits.reshape(geo.n_groups, K, geo.bank_stride, geo.row_stride * 32)[:, :, :E, :P]
    full = rows.transpose(0, 3, 1, 2).reshape(geo.n_groups * P, K * E)[:n_out, :n_in]
    return (2 * full.astype(np.int8) - 1).astype(np.int8)


def pack_neuron_values(values, layer) -> np.ndarray:
    """Per-neuron integers [n_out] (theta, bias) -> a neuron window image, uint32 [n_groups * lane_stride].

    Neuron j lives at word `(j // P) * lane_stride + j % P`, as 32-bit two's complement.
    """
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.shape != (layer.n_out,):
        raise ValueError(f"expected {layer.n_out} values, got shape {np.shape(values)}")
    image = np.zeros(layer.n_groups * layer.lane_stride, np.uint32)
    image[neuron_word_index(layer)] = (v & 0xFFFFFFFF).astype(np.uint32)
    return image


def unpack_neuron_values(words, layer) -> np.ndarray:
    """Inverse of `pack_neuron_values`: int64 [n_out] (sign-extended from 32 bits)."""
    words = np.asarray(words, dtype=np.uint32).reshape(-1)
    return words[neuron_word_index(layer)].astype(np.int32).astype(np.int64)


def neuron_word_index(layer) -> np.ndarray:
    """Word index of each neuron j in a theta/bias/v/u window."""
    j = np.arange(layer.n_out)
    return (j // layer.lanes) * layer.lane_stride + j % layer.lanes


def load_writes(config, network: Network, *, skip_zero: bool = False) -> list[tuple[int, int]]:
    """The (byte offset, word) register writes that load `network` into a core built as `config`.

    Per layer: MODE, LAM, ALPHA, then the weights, theta and bias windows. With `skip_zero`,
    zero words of the windows are left out: right only for a freshly configured core (memories
    start at 0 when the bitstream loads or a simulation starts; a reset keeps their contents).
    Raises ConfigError if the network does not fit the configuration.
    """
    config.check_network(network)
    writes = []
    for k, (cfg, layer) in enumerate(zip(config.layers, network.layers)):
        for name, value in layer_control_values(layer).items():
            writes.append((layer_offset(k, name), value))
        images = {
            "weights": cfg.weight_window.pack(layer.crossbar_weights),
            "theta": pack_neuron_values(layer.theta, cfg),
            "bias": pack_neuron_values(layer.bias, cfg),
        }
        for kind, image in images.items():
            base = window(config, k, kind).base
            used = cfg.weight_window.data_words() if kind == "weights" else neuron_word_index(cfg)
            for i in used:
                if not (skip_zero and image[i] == 0):
                    writes.append((base + WORD_BYTES * int(i), int(image[i])))
    return writes


def layer_control_values(layer: Layer) -> dict[str, int]:
    """Values of a layer's run-time registers (MODE with the numerics options, LAM, ALPHA) for a network layer."""
    mode = mode_word(neuron=layer.neuron, reset=layer.reset, **layer.options())
    return {"MODE": mode, "LAM": layer.lam, "ALPHA": layer.alpha}
