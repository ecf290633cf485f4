"""What the core's parameter windows hold: weights, thresholds, biases and state as 32-bit words.

Weights are 1 bit per synapse, a row per (neuron group, input chunk) (`pack_weights`); per-neuron
values are 32-bit two's complement words, a group of `lanes` neurons per power-of-two stride
(`pack_neuron_values`); `load_writes` lists every register write that loads a network. Where the
windows lie is `spikeloop.regmap` (`windows`, `window`). numpy only (it runs on the board).
A `layer` here is a `spikeloop.config.LayerConfig`, a `config` a `CoreConfig`.
"""

from __future__ import annotations

import numpy as np

from spikeloop.network import Layer, Network
from spikeloop.regmap import WORD_BYTES, layer_offset, mode_word, window

__all__ = [
    "pack_weights", "unpack_weights", "pack_neuron_values", "unpack_neuron_values", "neuron_word_index",
    "load_writes", "layer_control_values",
]


def pack_weights(weights, layer) -> np.ndarray:
    """+/-1 weights [n_out, n_in] -> the weights window image, uint32 [weight_rows * row_stride].

    Row `g * n_chunks + c` holds, for lane p and bit b, the synapse of neuron `g*P + p` from
    input `c*C + b` at row bit `p*C + b` (1 for +1); a row is `row_words` words LSB-first,
    followed by zero padding up to `row_stride`. Padding lanes and inputs hold 0.
    """
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
    words = np.asarray(words, dtype=np.uint32).reshape(layer.weight_rows, layer.row_stride)
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), axis=1, bitorder="little")[:, : layer.row_bits]
    P, C = layer.lanes, layer.chunk
    full = bits.reshape(layer.n_groups, layer.n_chunks, P, C).transpose(0, 2, 1, 3)
    full = full.reshape(layer.n_groups * P, layer.n_chunks * C)[: layer.n_out, : layer.n_in]
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
            "weights": pack_weights(layer.weights, cfg),
            "theta": pack_neuron_values(layer.theta, cfg),
            "bias": pack_neuron_values(layer.bias, cfg),
        }
        for kind, image in images.items():
            base = window(config, k, kind).base
            used = np.arange(image.size) if kind == "weights" else neuron_word_index(cfg)
            if kind == "weights":
                used = used[used % cfg.row_stride < cfg.row_words]
            for i in used:
                if not (skip_zero and image[i] == 0):
                    writes.append((base + WORD_BYTES * int(i), int(image[i])))
    return writes


def layer_control_values(layer: Layer) -> dict[str, int]:
    """Values of a layer's run-time registers (MODE with the numerics options, LAM, ALPHA) for a network layer."""
    mode = mode_word(neuron=layer.neuron, reset=layer.reset, **layer.options())
    return {"MODE": mode, "LAM": layer.lam, "ALPHA": layer.alpha}
