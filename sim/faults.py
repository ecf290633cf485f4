"""Boards with faults in their memories, for testing what a host (or a training loop) sees.

`StuckWeightBits(board, fraction=, seed=)` wraps any `spikeloop.sim.interface.Board`: a seeded
choice of ``fraction`` of the synapse bits of every weights window is stuck, each at 0 (weight
-1) or at 1 (weight +1) with equal odds, and every AXI-Lite write to such a word (one by one or
in bulk) stores the word with those bits forced, as a memory with stuck cells would. Reads give
what is stored, so a load with read-back (`Core.load(verify=True)`) finds the fault, and one
without (`verify=False`) runs the faulty network. Padding bits of the windows are never chosen.
Everything else goes to the wrapped board unchanged.

Parameter loads by stream frames do not pass through here yet (MMIO writes only).
"""

from __future__ import annotations

import numpy as np

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.windows import pack_weights

from .interface import Board

__all__ = ["StuckWeightBits"]


class StuckWeightBits(Board):
    """``board`` with stuck synapse bits in its weights windows (see the module's docstring).

    Parameters (keyword-only after ``board``)
    ----------
    fraction : share of each layer's synapses that are stuck, in [0, 1].
    seed : seeds which synapses and at which value (a non-negative integer).
    """

    def __init__(self, board: Board, *, fraction: float, seed: int):
        if not isinstance(board, Board):
            raise TypeError(f"board must be a Board (a SimBoard or a GoldenBoard), got {type(board).__name__}")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"fraction = {fraction!r}, expected a number in [0, 1]")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed = {seed!r}, expected a non-negative integer")
        self.board = board
        self.fraction, self.seed = float(fraction), int(seed)
        self.cycles_per_second = board.cycles_per_second
        rng = np.random.default_rng(self.seed)
        self._force: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # word offset -> (bits to clear, bits to set)
        self._stuck: list[np.ndarray] = []
        config = board.config
        for k, layer in enumerate(config.layers):
            real = pack_weights(np.ones((layer.n_out, layer.n_in), np.int8), layer)  # 1 on every synapse bit
            bits = np.unpackbits(real.astype("<u4").view(np.uint8), bitorder="little").astype(bool)
            where = np.flatnonzero(bits)
            n = int(round(self.fraction * where.size))
            chosen = np.sort(rng.choice(where, n, replace=False))
            ones = rng.random(n) < 0.5
            clear = np.zeros(bits.size, np.uint8)
            put = np.zeros(bits.size, np.uint8)
            clear[chosen] = 1
            put[chosen[ones]] = 1
            clear_words = np.packbits(clear, bitorder="little").view("<u4").astype(np.uint32)
            put_words = np.packbits(put, bitorder="little").view("<u4").astype(np.uint32)
            w = regmap.window(config, k, "weights")
            for i in np.flatnonzero(clear_words):
                self._force[w.base + regmap.WORD_BYTES * int(i)] = (clear_words[i], put_words[i])
            self._stuck.append(np.stack([chosen, ones.astype(np.int64)], 1) if n else np.zeros((0, 2), np.int64))

    @property
    def stuck_bits(self) -> tuple[np.ndarray, ...]:
        """Per layer, the stuck bits: rows of (bit index in the weights window, stuck value 0 or 1)."""
        return tuple(s.copy() for s in self._stuck)

    def _forced(self, offset: int, value: int) -> int:
        hit = self._force.get(int(offset))
        if hit is None:
            return int(value)
        clear, put = hit
        return (int(value) & ~int(clear) & 0xFFFFFFFF) | int(put)

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int:
        return self.board.read(offset)

    def write(self, offset: int, value: int) -> None:
        self.board.write(offset, self._forced(offset, value))

    def read_many(self, offsets) -> np.ndarray:
        return self.board.read_many(offsets)

    def write_many(self, offsets, values) -> None:
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.int64).reshape(-1) & 0xFFFFFFFF
        values = np.array([self._forced(o, v) for o, v in zip(offsets.tolist(), values.tolist())], dtype=np.int64)
        self.board.write_many(offsets, values)

    # ------------------------------------------------------------------ the rest, unchanged
    @property
    def config(self) -> CoreConfig:
        return self.board.config

    @property
    def cycles(self) -> int:
        return self.board.cycles

    def describe(self) -> str:
        return f"{self.board.describe()} with {sum(len(s) for s in self._stuck)} stuck weight bits"

    def send(self, words, *, last: bool = True) -> None:
        self.board.send(words, last=last)

    @property
    def pending(self) -> int:
        return self.board.pending

    def discard(self) -> None:
        self.board.discard()

    def arm(self, room: int) -> None:
        self.board.arm(room)

    def disarm(self) -> None:
        self.board.disarm()

    @property
    def rx_state(self) -> int:
        return self.board.rx_state

    @property
    def received(self) -> int:
        return self.board.received

    def take(self, limit: int | None = None) -> np.ndarray:
        return self.board.take(limit)

    def drain(self, quiet: int = 2000, max_cycles: int = 10_000_000) -> int:
        return self.board.drain(quiet, max_cycles)

    def run(self, max_cycles: int, until: int = 0) -> int:
        return self.board.run(max_cycles, until)

    def transfer(self, words, room: int, max_cycles: int) -> int:
        return self.board.transfer(words, room, max_cycles)

    def reset(self, cycles: int = 16) -> None:
        self.board.reset(cycles)

    def fault(self, kind: int, value: int = 0) -> None:
        self.board.fault(kind, value)

    def close(self) -> None:
        self.board.close()

    def network(self):
        """The network the wrapped board's registers hold (boards that model one, e.g. the golden board)."""
        return self.board.network()
