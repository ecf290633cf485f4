"""The `sim` transport: the simulated board (`spikeloop.sim.board.SimBoard`), the generated
Verilog compiled by Verilator, driven per transaction in this process.

Register accesses are AXI-Lite transactions of a few clock cycles each; a stream transfer arms
the receive, queues the input words and runs the clock in slices until the receive ends,
checking the deadline between slices. Bit-exact with the PYNQ board by construction (it is the
same Verilog), and with the golden model by test.
"""

from __future__ import annotations

import time

import numpy as np

from spikeloop.config import CoreConfig

from .transport import Received, TransferTimeout, Transport, TransportError

__all__ = ["SimTransport"]

#: Clock cycles run per slice between two deadline checks (a few ms of simulation).
SLICE_CYCLES = 20_000
#: Cycles without an output word after which `drain` decides the core is empty.
QUIET_CYCLES = 4_000


class SimTransport(Transport):
    """The simulated board of `config` (built once per design and cached), or a given `board`.

    Parameters (keyword-only)
    ----------
    config : CoreConfig to build the board for (ignored when `board` is given).
    board : an existing `SimBoard` to drive.
    profile, log : passed to `SimBoard` (build profile "fast" or "quick"; progress messages).
    """

    name = "sim"
    cycles_per_second = 50_000.0  # conservative: a loaded machine, the "quick" profile

    def __init__(self, *, config: CoreConfig | None = None, board=None, profile: str | None = None, log=None):
        from spikeloop.sim.board import SimBoard

        if board is None:
            if not isinstance(config, CoreConfig):
                raise TypeError(f"config must be a CoreConfig, got {type(config).__name__}")
            board = SimBoard(config, profile=profile, log=log)
        self.board = board

    def describe(self) -> str:
        return f"sim transport ({'-'.join(map(str, self.board.config.sizes))}, {self.board.library.name})"

    def read(self, offset: int) -> int:
        return self.board.read(int(offset))

    def write(self, offset: int, value: int) -> None:
        self.board.write(int(offset), int(value))

    def read_many(self, offsets) -> np.ndarray:
        return self.board.read_many(offsets)

    def write_many(self, offsets, values) -> None:
        self.board.write_many(offsets, values)

    def transfer(self, words, n_out: int, *, deadline: float) -> Received:
        from spikeloop.sim.board import RECEIVED, RX_ARMED, RX_LAST, BoardError

        words = np.asarray(words).reshape(-1)
        board = self.board
        c0, t0 = board.cycles, time.monotonic()
        try:  # the receive is armed before the first input word goes out; then the first slice runs
            state = board.transfer(words, n_out, SLICE_CYCLES)
        except BoardError:
            raise TransportError("sim: input words of an earlier transfer are still queued; "
                                 "reset the core first") from None
        while state & RX_ARMED:
            if time.monotonic() > deadline:
                status = {"received": board.received, "expected": n_out, "unsent_words": board.pending,
                          "cycles": board.cycles - c0}
                self.abort()
                raise TransferTimeout(
                    f"sim: the receive got {status['received']} of {n_out} words in {time.monotonic() - t0:.2f} s "
                    f"({status['cycles']} clock cycles); {status['unsent_words']} input words were not taken. "
                    "The transfer was aborted; reset the core before the next one.", status)
            board.run(SLICE_CYCLES, RECEIVED)
            state = board.rx_state
        return Received(board.take(n_out).astype(words.dtype), bool(state & RX_LAST))

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
                raise TransferTimeout(f"sim: the core kept sending ({total} words discarded) until the deadline",
                                      {"discarded": total})

    def pause(self) -> None:
        self.board.run(64)

    def close(self) -> None:
        self.board.close()
