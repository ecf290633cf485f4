"""The board interface: what every simulated board offers, and all that the faces (`zynq`,
`pynq_remote`, `uart_board`) and the host's board transport use.

A board is one core with its ports as a bus master and a DMA see them:

- AXI-Lite: `read(offset)`, `write(offset, value)` and their bulk forms (32-bit words at byte
  offsets of `spikeloop.regmap`);
- the input stream: `send(words, last=)` queues words (TLAST on the last when `last`), which the
  core takes as fast as it can; `pending` counts the words not taken yet, `discard()` forgets them;
- the output stream: `arm(room)` starts a receive of up to `room` words, which ends at the core's
  TLAST (`RX_LAST`) or when the room is full (`RX_OVERFLOW`); until then `rx_state` has `RX_ARMED`.
  Without an armed receive the core's output waits in the core (backpressure). `received` and
  `take()` give the words of the current receive; `disarm()` stops it; `drain()` accepts and
  discards what the core still holds;
- the clock: `run(max_cycles, until=)` lets up to `max_cycles` clock cycles pass, stopping early
  once the `until` conditions hold (`RECEIVED`: no receive armed; `SENT`: no word pending);
  `cycles` counts them. `transfer(words, room, max_cycles)` is `arm` + `send` + `run(RECEIVED)`.
- `reset()` (the core's registers, its state and both streams; the parameter windows keep their
  contents), `fault()`
  (injected faults, for testing hosts), `close()`.

Boards: `spikeloop.sim.board.SimBoard` (the Verilated core, clock cycle by clock cycle) and
`spikeloop.sim.golden_board.GoldenBoard` (the register model over the golden numerics, no time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from spikeloop.config import CoreConfig

__all__ = ["Board", "BoardError", "RECEIVED", "SENT", "RX_ARMED", "RX_LAST", "RX_OVERFLOW",
           "FAULT_NONE", "FAULT_TRUNCATE", "FAULT_MUTE", "FAULTS", "check_fault"]

#: `run` conditions (`until`), as in sim/board.cpp.
RECEIVED, SENT = 1, 2
#: `rx_state` bits, as in sim/board.cpp.
RX_ARMED, RX_LAST, RX_OVERFLOW = 1, 2, 4
#: Faults a board can inject, as in sim/board.cpp: FAULT_TRUNCATE ends every receive after `value`
#: words (as if the core sent TLAST early) and drops the rest of that output timestep; FAULT_MUTE
#: never accepts an output word (a core that never answers).
FAULT_NONE, FAULT_TRUNCATE, FAULT_MUTE = 0, 1, 2
FAULTS = (FAULT_NONE, FAULT_TRUNCATE, FAULT_MUTE)


def check_fault(kind) -> int:
    """`kind` if it is one of FAULTS, else ValueError."""
    if kind not in FAULTS:
        raise ValueError(f"unknown fault {kind!r}; expected one of {FAULTS} (FAULT_NONE, FAULT_TRUNCATE, FAULT_MUTE)")
    return int(kind)


class BoardError(RuntimeError):
    """A board could not do what was asked (the message says what and why)."""


class Board(ABC):
    """One simulated core behind its AXI-Lite and AXI-Stream ports. Not thread-safe: one caller at a time."""

    #: A conservative lower bound of the board's clock cycles per wall-clock second, for deadlines.
    cycles_per_second: float = 1e6

    @property
    @abstractmethod
    def config(self) -> CoreConfig:
        """The configuration of the core."""

    @property
    @abstractmethod
    def cycles(self) -> int:
        """Clock cycles run since the board was created."""

    def describe(self) -> str:
        """A short description for messages: the core's sizes."""
        return "-".join(map(str, self.config.sizes))

    # ------------------------------------------------------------------ AXI-Lite
    @abstractmethod
    def read(self, offset: int) -> int:
        """The 32-bit register word at byte `offset`."""

    @abstractmethod
    def write(self, offset: int, value: int) -> None:
        """Write a 32-bit register word at byte `offset`."""

    def read_many(self, offsets) -> np.ndarray:
        """Words at `offsets`, read in order; uint32."""
        return np.array([self.read(int(o)) for o in np.asarray(offsets).reshape(-1)], dtype=np.uint32)

    def write_many(self, offsets, values) -> None:
        """Write `values` at `offsets`, in order."""
        for o, v in zip(np.asarray(offsets).reshape(-1), np.asarray(values, dtype=np.int64).reshape(-1)):
            self.write(int(o), int(v) & 0xFFFFFFFF)

    # ------------------------------------------------------------------ input stream
    @abstractmethod
    def send(self, words, *, last: bool = True) -> None:
        """Queue words for the input stream (TLAST on the last one when `last`)."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Queued input words the core has not taken yet."""

    @abstractmethod
    def discard(self) -> None:
        """Forget queued input words."""

    # ------------------------------------------------------------------ output stream
    @abstractmethod
    def arm(self, room: int) -> None:
        """Start a receive of up to `room` output words (forgets the previous one)."""

    @abstractmethod
    def disarm(self) -> None:
        """Stop accepting output words."""

    @property
    @abstractmethod
    def rx_state(self) -> int:
        """Bits RX_ARMED, RX_LAST (ended by TLAST), RX_OVERFLOW (room full without TLAST)."""

    @property
    @abstractmethod
    def received(self) -> int:
        """Words received by the current receive."""

    @abstractmethod
    def take(self, limit: int | None = None) -> np.ndarray:
        """The words of the current receive (at most `limit`), uint64; they stay received."""

    @abstractmethod
    def drain(self, quiet: int = 2000, max_cycles: int = 10_000_000) -> int:
        """Accept and discard output words until `quiet` cycles pass without one; returns the count."""

    # ------------------------------------------------------------------ clock
    @abstractmethod
    def run(self, max_cycles: int, until: int = 0) -> int:
        """Run up to `max_cycles` clocks, stopping when the `until` conditions (RECEIVED | SENT) all
        hold; returns the cycles run."""

    def transfer(self, words, room: int, max_cycles: int) -> int:
        """`arm(room)`, `send(words)` and `run(max_cycles, RECEIVED)` in one call; returns `rx_state`
        (with RX_ARMED the receive goes on: continue with `run`). `BoardError` if input words of an
        earlier transfer are still queued."""
        if self.pending:
            raise BoardError(f"{self.pending} input words of an earlier transfer are still queued")
        self.arm(room)
        self.send(words, last=True)
        self.run(max_cycles, RECEIVED)
        return self.rx_state

    # ------------------------------------------------------------------ the rest
    @abstractmethod
    def reset(self, cycles: int = 16) -> None:
        """Reset the core's registers and state (`cycles` clocks of reset); forget queued and received
        words. The parameter windows keep their contents."""

    @abstractmethod
    def fault(self, kind: int, value: int = 0) -> None:
        """Inject a fault (`FAULT_TRUNCATE` after `value` words, `FAULT_MUTE`), or `FAULT_NONE`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the board holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
