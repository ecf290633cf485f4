"""The transports over a simulated board (`spikeloop.sim.interface.Board`): `BoardTransport` over
any board, and the two that build theirs by name: `sim` (`SimTransport`: the Verilated core of
`spikeloop.sim.board`, clock cycle by clock cycle) and `golden` (`GoldenTransport`: the register
model over the golden numerics of `spikeloop.sim.golden_board`, no time).

Register accesses are the board's AXI-Lite transactions; a stream transfer arms the receive,
queues the input words and runs the clock in slices until the receive ends, checking the
deadline between slices. The sim transport is bit-exact with the PYNQ board by construction (it
is the same Verilog), and with the golden one by test.
"""

from __future__ import annotations

import time

import numpy as np

from spikeloop.config import CoreConfig

from .transport import Received, TransferTimeout, Transport, TransportError

__all__ = ["BoardTransport", "SimTransport", "GoldenTransport"]

#: Clock cycles run per slice between two deadline checks (a few ms of simulation).
SLICE_CYCLES = 20_000
#: Cycles without an output word after which `drain` decides the core is empty.
QUIET_CYCLES = 4_000


class BoardTransport(Transport):
    """A transport over `board`, any `spikeloop.sim.interface.Board`.

    Parameters (keyword-only)
    ----------
    board : the board to drive (closed with the transport).
    """

    name = "board"

    def __init__(self, *, board):
        from spikeloop.sim.interface import Board

        if not isinstance(board, Board):
            raise TypeError(f"board must be a Board (a SimBoard or a GoldenBoard), got {type(board).__name__}")
        self.board = board
        self.cycles_per_second = board.cycles_per_second

    def describe(self) -> str:
        return f"{self.name} transport ({self.board.describe()})"

    def read(self, offset: int) -> int:
        self.stats.mmio_reads += 1
        return self.board.read(int(offset))

    def write(self, offset: int, value: int) -> None:
        self.stats.mmio_writes += 1
        self.board.write(int(offset), int(value))

    def read_many(self, offsets) -> np.ndarray:
        self.stats.mmio_reads += int(np.size(offsets))
        return self.board.read_many(offsets)

    def write_many(self, offsets, values) -> None:
        self.stats.mmio_writes += int(np.size(offsets))
        self.board.write_many(offsets, values)

    def _start(self, words):
        """A stream transfer's words as a flat array, and the board, once nothing earlier is queued (counted)."""
        words = np.asarray(words).reshape(-1)
        if self.board.pending:
            raise TransportError(f"{self.name}: input words of an earlier transfer are still queued; "
                                 "reset the core first")
        self.stats.count_stream(sent=words.nbytes)
        return words, self.board

    def send_frame(self, words, *, deadline: float) -> None:
        from spikeloop.sim.interface import Until

        words, board = self._start(words)
        c0, t0 = board.cycles, time.monotonic()
        board.send(words, last=True)
        while board.pending:
            if time.monotonic() > deadline:
                unsent = board.pending
                self.abort()
                raise TransferTimeout(f"{self.name}: the core took {words.size - unsent} of {words.size} words in "
                                      f"{time.monotonic() - t0:.2f} s ({board.cycles - c0} clock cycles). The "
                                      "transfer was aborted; reset the core before the next one.",
                                      {"unsent_words": unsent, "cycles": board.cycles - c0})
            board.run(SLICE_CYCLES, Until.SENT)

    def transfer(self, words, n_out: int, *, deadline: float) -> Received:
        from spikeloop.sim.interface import BoardError, Rx, Until

        words, board = self._start(words)
        c0, t0 = board.cycles, time.monotonic()
        try:  # the receive is armed before the first input word goes out; then the first slice runs
            state = board.transfer(words, n_out, SLICE_CYCLES)
        except BoardError as exc:
            raise TransportError(f"{self.name}: {exc}") from None
        while state & Rx.ARMED:
            if time.monotonic() > deadline:
                status = {"received": board.received, "expected": n_out, "unsent_words": board.pending,
                          "cycles": board.cycles - c0}
                self.abort()
                raise TransferTimeout(
                    f"{self.name}: the receive got {status['received']} of {n_out} words in "
                    f"{time.monotonic() - t0:.2f} s ({status['cycles']} clock cycles); {status['unsent_words']} "
                    "input words were not taken. The transfer was aborted; reset the core before the next one.",
                    status)
            board.run(SLICE_CYCLES, Until.RECEIVED)
            state = board.rx_state
        got = board.take(n_out).astype(words.dtype)
        self.stats.stream_bytes_received += got.nbytes
        return Received(got, bool(state & Rx.LAST))

    def abort(self) -> None:
        self.board.discard()
        self.board.disarm()

    def drain(self, *, deadline: float) -> int:
        total = 0
        while True:
            got = self.board.drain(QUIET_CYCLES, SLICE_CYCLES)
            total += got
            if got == 0:
                return total * self.board.config.bus_width // 8
            if time.monotonic() > deadline:
                raise TransferTimeout(f"{self.name}: the core kept sending ({total} words discarded) until the "
                                      "deadline", {"discarded": total})

    def pause(self) -> None:
        self.board.run(64)

    def close(self) -> None:
        self.board.close()


class SimTransport(BoardTransport):
    """The simulated board of `config` (built once per design and cached), or a given `board`.

    Parameters (keyword-only)
    ----------
    config : CoreConfig to build the board for (ignored when `board` is given).
    board : an existing `SimBoard` to drive.
    profile, log : passed to `SimBoard` (build profile "fast" or "quick"; progress messages).
    """

    name = "sim"

    def __init__(self, *, config: CoreConfig | None = None, board=None, profile: str | None = None, log=None):
        if board is None:
            from spikeloop.sim.board import SimBoard

            board = SimBoard(config, profile=profile, log=log)  # which refuses what is not a CoreConfig
        super().__init__(board=board)


class GoldenTransport(BoardTransport):
    """The golden board of `config` (`spikeloop.sim.golden_board.GoldenBoard`): the numerics alone
    behind the core's registers, fastest, numpy only.

    Parameters (keyword-only)
    ----------
    config : CoreConfig the modelled core is "built" for.
    """

    name = "golden"

    def __init__(self, *, config: CoreConfig):
        from spikeloop.sim.golden_board import GoldenBoard

        super().__init__(board=GoldenBoard(config))
