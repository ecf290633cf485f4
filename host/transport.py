"""The transport interface: how the driver reaches a core, whatever the core is.

A transport offers two things, and the driver (`spikeloop.host.driver.Core`) needs nothing else:

- AXI-Lite: `read(offset)`, `write(offset, value)` and their bulk forms `read_many`,
  `write_many` (32-bit words at byte offsets of `spikeloop.regmap`);
- AXI-Stream: `transfer(words, n_out, deadline=...)` sends one transfer of input words (TLAST on
  the last) with a receive of `n_out` words armed *before* it, and waits for the receive to end
  (TLAST, or `n_out` words) until the deadline; `abort()` stops a transfer in flight and
  `drain(deadline=...)` accepts and discards the words a core still holds; `send_frame(words,
  deadline=...)` sends one transfer and expects nothing back (a parameter load frame,
  `spikeloop.paramstream`), where the transport can (`can_send_frames`).

Every transport counts what it puts on the buses in `stats` (`BusStats`): register reads and
writes (one per word, bulk forms included) and stream (DMA) transfers.

Every wait takes an absolute deadline (`time.monotonic()` seconds): nothing waits forever.
Transports are chosen by name with `open_transport` ("golden", "sim", "pynq", "serial"); the golden
one needs numpy only, "sim" needs Verilator and a C++ compiler, "pynq" needs the pynq package,
"serial" (a board behind a UART bridge, the ULX3S) needs pyserial.
"""

from __future__ import annotations

import importlib
import time
from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from spikeloop.regmap import RegisterPort

__all__ = ["Transport", "Received", "TransportError", "TransferTimeout", "TRANSPORTS", "open_transport", "remaining",
           "BusStats"]


class TransportError(RuntimeError):
    """A transport could not do what was asked (the message says what and why)."""


class TransferTimeout(TimeoutError):
    """A wait passed its deadline; `.status` holds what the transport knew at that moment."""

    def __init__(self, message: str, status: dict | None = None):
        super().__init__(message)
        self.status = dict(status or {})


@dataclass(frozen=True)
class Received:
    """What a receive got: the words (the dtype of the words sent) and whether TLAST ended it."""

    words: np.ndarray
    last: bool


@dataclass
class BusStats:
    """Bus transactions of a transport: register reads and writes (one per 32-bit word) and stream
    transfers (one per DMA transfer: a send with its receive, or a send alone), with their bytes."""

    mmio_reads: int = 0
    mmio_writes: int = 0
    stream_transfers: int = 0
    stream_bytes_sent: int = 0
    stream_bytes_received: int = 0

    @property
    def transactions(self) -> int:
        """Register accesses plus stream transfers."""
        return self.mmio_reads + self.mmio_writes + self.stream_transfers

    def as_dict(self) -> dict[str, int]:
        """The counts, and `transactions`."""
        return {**vars(self), "transactions": self.transactions}

    def since(self, before: dict) -> dict[str, int]:
        """What was counted since `before` (an `as_dict()` taken earlier)."""
        return {name: value - before[name] for name, value in self.as_dict().items()}

    def count_stream(self, sent: int = 0, received: int = 0) -> None:
        """Count one stream transfer of `sent` and `received` bytes."""
        self.stream_transfers += 1
        self.stream_bytes_sent += int(sent)
        self.stream_bytes_received += int(received)


def remaining(deadline: float) -> float:
    """Seconds left until `deadline` (negative when it has passed)."""
    return deadline - time.monotonic()


class Transport(RegisterPort):
    """One way to reach one core. Subclasses implement the abstract methods."""

    #: The name `open_transport` knows it by.
    name: str = ""
    #: A conservative lower bound of the core's clock cycles per second, for default deadlines.
    cycles_per_second: float = 1e6
    #: Largest transfer, in bus words, in either direction.
    max_transfer_words: int = 1 << 22
    #: Whether `send_frame` works (a transfer that expects nothing back).
    can_send_frames: bool = True

    @property
    def stats(self) -> BusStats:
        """What this transport has put on the buses (`BusStats`)."""
        stats = self.__dict__.get("_bus_stats")
        if stats is None:
            stats = self.__dict__["_bus_stats"] = BusStats()
        return stats

    def send_frame(self, words: np.ndarray, *, deadline: float) -> None:
        """Send `words` as one transfer (TLAST on the last) and wait until the core has taken them all,
        expecting no output; `TransferTimeout` at the deadline (the transfer aborted)."""
        raise TransportError(f"the {self.name} transport cannot send a stream without a receive; "
                             "load parameters with via='mmio'")

    @abstractmethod
    def transfer(self, words: np.ndarray, n_out: int, *, deadline: float) -> Received:
        """Send `words` (TLAST on the last) with a receive of up to `n_out` words armed first; wait
        until the receive ends or `deadline` passes (`TransferTimeout`, the transfer aborted)."""

    @abstractmethod
    def abort(self) -> None:
        """Stop any transfer in flight: forget input not yet sent, stop receiving."""

    @abstractmethod
    def drain(self, *, deadline: float) -> int:
        """Accept and discard output words until none come for a while; returns the bytes discarded."""

    def pause(self) -> None:  # noqa: B027 - optional hook
        """Let time pass between two polls (a simulated transport runs some clock cycles)."""

    def describe(self) -> str:
        """A short description for messages."""
        return f"{self.name} transport"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the transport holds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: name -> "module:class" of the transport, imported on first use.
TRANSPORTS = {
    "golden": "spikeloop.host.sim_transport:GoldenTransport",
    "sim": "spikeloop.host.sim_transport:SimTransport",
    "pynq": "spikeloop.host.pynq_transport:PynqTransport",
    "serial": "spikeloop.host.serial_transport:SerialTransport",
}


def transport_class(name: str) -> type[Transport]:
    """The class of the transport called `name`."""
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r}; choose from {', '.join(TRANSPORTS)}")
    module, cls = TRANSPORTS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def open_transport(name: str, **options) -> Transport:
    """A transport by name: `open_transport("sim", config=cfg)`, `open_transport("pynq", bitfile=...)`."""
    return transport_class(name)(**options)
