"""Boards with faults in their memories, for testing what a host (or a training loop) sees.

`StuckWeightBits(board, fraction=, seed=)` wraps any `spikeloop.sim.interface.Board`: a seeded
choice of ``fraction`` of the synapse bits of every weights window is stuck, each at 0 (weight
-1) or at 1 (weight +1) with equal odds, and every AXI-Lite write to such a word (one by one or
in bulk) stores the word with those bits forced, as a memory with stuck cells would. Parameter
loads by stream get the same: after a write arming a load (`CONTROL.load_params`, with
`STATUS.loading` then set), the next transfer up to TLAST is walked as the core walks it
(`spikeloop.paramstream.parse_frame`), its weight words forced by the same rule, and the frame
rebuilt (`frame_from_writes`) before it goes on; a frame the core refuses goes on unchanged. Reads
give what is stored, so a load with read-back (`Core.load(verify=True)`) finds the fault, and one
without (`verify=False`) runs the faulty network, whether it was loaded by MMIO or by stream.
Padding bits of the windows are never chosen. Everything else goes to the wrapped board unchanged.
"""

from __future__ import annotations

import numpy as np

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.paramstream import FrameError, bus_words, frame_from_writes, parse_frame

from .interface import Board

__all__ = ["StuckWeightBits"]

_CONTROL = regmap.register("CONTROL")
_STATUS = regmap.register("STATUS")


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
        self._armed = False  # a write armed a parameter load: the next transfer up to TLAST may be its frame
        self._frame: list[np.ndarray] = []  # its words so far (sends without TLAST)
        config = board.config
        for k, layer in enumerate(config.layers):
            # 1 on every synapse bit (a recurrent layer's window holds [w | r])
            real = layer.weight_window.pack(np.ones((layer.n_out, layer.crossbar_inputs), np.int8))
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

    def forced_writes(self, writes) -> list[tuple[int, int]]:
        """(byte offset, word) ``writes`` as this memory stores them: the stuck bits of weight words forced."""
        return [(int(o), self._forced(o, v)) for o, v in writes]

    def forced_frame(self, words) -> np.ndarray:
        """The bus ``words`` of a load frame (one transfer, TLAST on the last) with the writes the core makes
        forced (`forced_writes`), rebuilt into a frame; a frame the core refuses, unchanged. Same dtype."""
        words = np.asarray(words).reshape(-1)
        config = self.board.config
        try:
            writes = parse_frame(config, words)
        except FrameError:
            return words
        forced = self.forced_writes(writes)
        if forced == [(int(o), int(v) & 0xFFFFFFFF) for o, v in writes]:
            return words
        return bus_words(frame_from_writes(config, forced), config.bus_width).astype(words.dtype)

    def _frame_words(self, words, last: bool):
        """Words sent while a load is armed: held until TLAST, then the whole frame forced (None before)."""
        self._frame.append(np.asarray(words).reshape(-1))
        if not last:
            return None
        words, self._frame, self._armed = np.concatenate(self._frame), [], False
        return self.forced_frame(words)

    def _loading(self) -> bool:
        if not self._armed:
            return False
        if self._frame:
            return True
        self._armed = bool(_STATUS.decode(self.board.read(_STATUS.offset))["loading"])
        return self._armed

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int:
        return self.board.read(offset)

    def write(self, offset: int, value: int) -> None:
        if int(offset) == _CONTROL.offset and _CONTROL.decode(int(value))["load_params"]:
            self._armed, self._frame = True, []
        self.board.write(offset, self._forced(offset, value))

    def read_many(self, offsets) -> np.ndarray:
        return self.board.read_many(offsets)

    def write_many(self, offsets, values) -> None:
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.int64).reshape(-1) & 0xFFFFFFFF
        if (offsets == _CONTROL.offset).any():
            self._armed, self._frame = True, []  # checked against STATUS.loading at the next send
        values = np.array([v for _, v in self.forced_writes(zip(offsets.tolist(), values.tolist()))], dtype=np.int64)
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
        if self._loading():
            words = self._frame_words(words, last)
            if words is None:
                return
        self.board.send(words, last=last)

    @property
    def pending(self) -> int:
        return self.board.pending

    def discard(self) -> None:
        self._frame = []
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
        if self._loading():
            words = self._frame_words(words, True)
        return self.board.transfer(words, room, max_cycles)

    def reset(self, cycles: int = 16) -> None:
        self._armed, self._frame = False, []
        self.board.reset(cycles)

    def fault(self, kind: int, value: int = 0) -> None:
        self.board.fault(kind, value)

    def close(self) -> None:
        self.board.close()

    def network(self):
        """The network the wrapped board's registers hold (boards that model one, e.g. the golden board)."""
        return self.board.network()
