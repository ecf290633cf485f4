"""The board interface: what every simulated board offers, and all that the faces (`zynq`,
`pynq_remote`, `uart_board`) and the host's board transport use.

A board is one core with its ports as a bus master and a DMA see them:

- AXI-Lite: `read(offset)`, `write(offset, value)` and their bulk forms (32-bit words at byte
  offsets of `spikeloop.regmap`);
- the input stream: `send(words, last=)` queues words (TLAST on the last when `last`), which the
  core takes as fast as it can; `pending` counts the words not taken yet, `discard()` forgets them;
- the output stream: `arm(room)` starts a receive of up to `room` words, which ends at the core's
  TLAST (`Rx.LAST`) or when the room is full (`Rx.OVERFLOW`); until then `rx_state` has `Rx.ARMED`.
  Without an armed receive the core's output waits in the core (backpressure). `received` and
  `take()` give the words of the current receive; `disarm()` stops it; `drain()` accepts and
  discards what the core still holds;
- the clock: `run(max_cycles, until=)` lets up to `max_cycles` clock cycles pass, stopping early
  once the `until` conditions hold (`Until.RECEIVED`: no receive armed; `Until.SENT`: no word pending);
  `cycles` counts them. `transfer(words, room, max_cycles)` is `arm` + `send` + `run(Until.RECEIVED)`.
- `reset()` (the core's registers, its state and both streams; the parameter windows keep their
  contents), `fault()`
  (injected faults, for testing hosts), `close()`.

Boards: `spikeloop.sim.board.SimBoard` (the Verilated core, clock cycle by clock cycle) and
`spikeloop.sim.golden_board.GoldenBoard` (the register model over the golden numerics, no time).
"""

from __future__ import annotations

from abc import abstractmethod
from enum import IntEnum, IntFlag

import numpy as np

from spikeloop.config import CoreConfig
from spikeloop.regmap import RegisterPort

__all__ = ["Board", "BoardError", "Until", "Rx", "Fault", "check_fault"]


class Until(IntFlag):
    """`run` conditions, as in sim/board.cpp: stop once no receive is armed / no input word is pending."""

    RECEIVED = 1
    SENT = 2


class Rx(IntFlag):
    """`rx_state` bits, as in sim/board.cpp: a receive is armed, it ended at TLAST, its room filled first."""

    ARMED = 1
    LAST = 2
    OVERFLOW = 4


class Fault(IntEnum):
    """Faults a board can inject, as in sim/board.cpp: TRUNCATE ends every receive after `value` words (as
    if the core sent TLAST early) and drops the rest of that output timestep; MUTE never accepts an output
    word (a core that never answers)."""

    NONE = 0
    TRUNCATE = 1
    MUTE = 2


def check_fault(kind) -> Fault:
    """`kind` as a `Fault`, else ValueError naming it and the choices."""
    if isinstance(kind, bool) or kind not in tuple(Fault):
        choices = ", ".join(f"{f.value} ({f.name})" for f in Fault)
        raise ValueError(f"unknown fault {kind!r}; expected one of {choices}")
    return Fault(kind)


class BoardError(RuntimeError):
    """A board could not do what was asked (the message says what and why)."""


class Board(RegisterPort):
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
        """Bits Rx.ARMED, Rx.LAST (ended by TLAST), Rx.OVERFLOW (room full without TLAST)."""

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
        """Run up to `max_cycles` clocks, stopping when the `until` conditions (Until.RECEIVED | Until.SENT) all
        hold; returns the cycles run."""

    def transfer(self, words, room: int, max_cycles: int) -> int:
        """`arm(room)`, `send(words)` and `run(max_cycles, Until.RECEIVED)` in one call; returns `rx_state`
        (with Rx.ARMED the receive goes on: continue with `run`). `BoardError` if input words of an
        earlier transfer are still queued."""
        if self.pending:
            raise BoardError(f"{self.pending} input words of an earlier transfer are still queued")
        self.arm(room)
        self.send(words, last=True)
        self.run(max_cycles, Until.RECEIVED)
        return self.rx_state

    # ------------------------------------------------------------------ the rest
    @abstractmethod
    def reset(self, cycles: int = 16) -> None:
        """Reset the core's registers and state (`cycles` clocks of reset); forget queued and received
        words. The parameter windows keep their contents."""

    @abstractmethod
    def fault(self, kind: int, value: int = 0) -> None:
        """Inject a fault (`Fault.TRUNCATE` after `value` words, `Fault.MUTE`), or `Fault.NONE`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the board holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
