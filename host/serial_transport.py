"""The `serial` transport: a core behind the UART bridge of a board without a processor (the ULX3S),
reached over a USB-UART with pyserial, or the board emulator of `spikeloop.sim.uart_board`.

The protocol is `spikeloop.uartlink` (frames, flow-control rule). What the rule allows and this
transport does:
- register accesses one at a time: each WRITE or READ waits for its reply (the bridge holds one
  received byte; back-to-back accesses could overrun it while it is still sending a reply);
- a stream transfer in lock-step: the STREAM frames of one timestep go out in one write, the next
  timestep only after every OUTPUT frame of the previous one has come back.
Every wait has a deadline: `reply_timeout` seconds per register access, the caller's deadline
for a transfer (`TransferTimeout`, with what was received). Bytes that are not the expected
frame raise `TransportError` naming the byte or the frame; `reset()` of the driver then drains
the line (`abort()` + `drain()`) and the core is usable again.

The transport needs only the port: the bus width and the words per timestep are read from the
core's identity registers before the first transfer (`bus_width=` is then checked against them).
"""

from __future__ import annotations

import time

import numpy as np

from spikeloop import regmap
from spikeloop.stream import BUS_WIDTHS
from spikeloop.uartlink import (
    DEFAULT_BAUD,
    FRAMES,
    NAMES,
    FrameError,
    decode_reply,
    frame_length,
    frame_read,
    frame_seconds,
    frame_stream_words,
    frame_write,
)

from .transport import Received, TransferTimeout, Transport, TransportError

__all__ = ["SerialTransport"]

#: Seconds one read from the port may block; deadlines are checked between reads.
POLL_SECONDS = 0.02
#: `drain` decides the board has stopped sending after this long without a byte.
QUIET_SECONDS = 0.1
#: A round trip over a USB-UART (FTDI's default latency timer is 16 ms).
ROUND_TRIP_SECONDS = 0.02
#: Bytes kept of the latest received data for error messages.
_SHOWN = 16


def _pyserial():
    try:
        import serial
    except ImportError:
        raise TransportError("the serial transport needs pyserial: pip install spikeloop[serial]") from None
    return serial


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class SerialTransport(Transport):
    """A core behind a UART bridge on a serial port.

    Parameters (keyword-only)
    ----------
    port : a device ("/dev/ttyUSB0", "COM3") or any pyserial URL ("socket://host:port", "loop://").
    baudrate : bits per second (default: the ULX3S bridge's 1,000,000).
    bus_width : the core's stream bus width, if known; checked against the core's registers.
    reply_timeout : seconds a register access may wait for its reply.
    """

    name = "serial"
    #: The bridge's flow control paces the input by the output frames it sends back (`uartlink`); a
    #: load frame gets none, so parameters load by register writes (`Core.load(via="mmio")`).
    can_send_frames = False

    def __init__(self, *, port: str, baudrate: int = DEFAULT_BAUD, bus_width: int | None = None,
                 reply_timeout: float = 1.0):
        if not isinstance(port, str) or not port:
            raise ValueError(f"port must be a serial device or a pyserial URL such as '/dev/ttyUSB0', got {port!r}")
        self.baudrate = _positive_int("baudrate", baudrate)
        if bus_width is not None and bus_width not in BUS_WIDTHS:
            raise ValueError(f"bus_width must be one of {BUS_WIDTHS} or None (read from the core), "
                             f"got {bus_width!r}")
        if isinstance(reply_timeout, bool) or not isinstance(reply_timeout, (int, float)) or not reply_timeout > 0:
            raise ValueError(f"reply_timeout must be a positive number of seconds, got {reply_timeout!r}")
        serial = _pyserial()
        self._link_errors = (serial.SerialException, OSError)
        self._write_timeout = serial.SerialTimeoutException
        self.port = port
        self.reply_timeout = float(reply_timeout)
        self._bus_width = bus_width
        self._geometry: tuple[int, int, int] | None = None  # bus width, words in and out per timestep
        self._buffer = bytearray()
        # The driver's default deadline allows 4 x (a bound of at least 10 cycles per timestep) /
        # cycles_per_second; a timestep here costs a round trip and a frame time per word.
        self.cycles_per_second = 1.0 / (frame_seconds("OUTPUT", self.baudrate, 64) + ROUND_TRIP_SECONDS / 10)
        try:
            self._serial = serial.serial_for_url(port, baudrate=self.baudrate, timeout=POLL_SECONDS,
                                                 write_timeout=self.reply_timeout)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise TransportError(f"serial: cannot open port {port!r} at {self.baudrate} baud: {exc}") from None
        self._serial.reset_input_buffer()

    def describe(self) -> str:
        return f"serial transport ({self.port} at {self.baudrate} baud)"

    # ------------------------------------------------------------------ bytes
    def _send(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except self._write_timeout:
            raise TransferTimeout(
                f"serial ({self.port}): {len(data)} bytes could not be written within {self.reply_timeout} s; the "
                "board does not read its UART (a frame may have been cut: power-cycle the board if reset() fails)",
                {"port": self.port, "bytes": len(data)}) from None
        except self._link_errors as exc:
            raise TransportError(f"serial ({self.port}): writing failed: {exc}") from None

    def _receive(self, wanted: int) -> int:
        """Append up to `wanted` bytes to the buffer (waits at most POLL_SECONDS); returns how many came."""
        try:
            data = self._serial.read(max(1, wanted))
        except self._link_errors as exc:
            raise TransportError(f"serial ({self.port}): reading failed: {exc}") from None
        self._buffer += data
        return len(data)

    def _shown(self) -> str:
        return bytes(self._buffer[:_SHOWN]).hex(" ") + (" ..." if len(self._buffer) > _SHOWN else "")

    def _unexpected(self, exc: FrameError | None, got: str | None, waiting: str) -> TransportError:
        """The error for bytes that are not the frame `waiting` names; the buffer is kept for drain()."""
        what = str(exc) if exc is not None else f"an unexpected {got} frame ({FRAMES[got]:#04x}) arrived"
        return TransportError(f"serial ({self.port}): {what} while waiting for {waiting}; received bytes: "
                              f"{self._shown()}. The link is out of step; reset() discards what is left.")

    def _next_frame(self, expect: str, waiting: str, deadline: float, status: dict, coming: int = 0):
        """The next board frame, which must be `expect`: (value, end) of `decode_reply`. `coming` is
        how many bytes are surely on their way (read at once when more than one frame's worth)."""
        width = self._bus_width or 32  # only OUTPUT frames depend on it, and those know it by then
        while True:
            if self._buffer:
                try:
                    got = decode_reply(self._buffer, 0, width)
                except FrameError as exc:
                    raise self._unexpected(exc, None, waiting) from None
                name = NAMES[self._buffer[0]]
                if name != expect:
                    raise self._unexpected(None, name, waiting)
                if got is not None:
                    return got[1], got[2]
            if time.monotonic() > deadline:
                status.update(port=self.port, bytes_pending=len(self._buffer), pending=self._shown())
                pending = f": {self._shown()}" if self._buffer else ""
                raise TransferTimeout(f"serial ({self.port}): {waiting} did not arrive before the deadline "
                                      f"({len(self._buffer)} bytes of a frame pending{pending}). Is the board "
                                      f"programmed, and its UART at {self.baudrate} baud? reset() before going on.",
                                      status)
            self._receive(max(coming, frame_length(expect, width)) - len(self._buffer))

    # ------------------------------------------------------------------ registers
    def _access(self, frame: bytes, expect: str, waiting: str):
        self._send(frame)
        deadline = time.monotonic() + self.reply_timeout
        value, end = self._next_frame(expect, waiting, deadline, {"waiting_for": expect})
        del self._buffer[:end]
        return value

    def read(self, offset: int) -> int:
        offset = int(offset)
        self.stats.mmio_reads += 1
        return self._access(frame_read(offset), "READ_DATA", f"the READ_DATA of offset {offset:#x}")

    def write(self, offset: int, value: int) -> None:
        offset = int(offset)
        self.stats.mmio_writes += 1
        self._access(frame_write(offset, value), "WRITE_ACK", f"the WRITE_ACK of offset {offset:#x}")

    def read_many(self, offsets) -> np.ndarray:
        return np.array([self.read(o) for o in np.asarray(offsets, dtype=np.int64).reshape(-1)], dtype=np.uint32)

    def write_many(self, offsets, values) -> None:
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.int64).reshape(-1)
        if offsets.size != values.size:
            raise ValueError(f"write_many got {offsets.size} offsets and {values.size} values")
        for offset, value in zip(offsets.tolist(), (values & 0xFFFFFFFF).tolist()):
            self.write(offset, value)

    # ------------------------------------------------------------------ streams
    def _stream_geometry(self) -> tuple[int, int, int]:
        """(bus width, words in, words out per timestep) from the core's registers, read once."""
        if self._geometry is None:
            magic = self.read(regmap.register("MAGIC").offset)
            if magic != regmap.MAGIC:
                raise TransportError(f"serial ({self.port}): MAGIC reads {magic:#010x}, expected "
                                     f"{regmap.MAGIC:#010x}: the board is not a spikeloop core")
            config = regmap.register("CONFIG").decode(self.read(regmap.register("CONFIG").offset))
            width = config["bus_bytes"] * 8
            if self._bus_width is not None and self._bus_width != width:
                raise TransportError(f"serial ({self.port}): bus_width={self._bus_width} was given, the core's "
                                     f"CONFIG register says {width}")
            self._bus_width = width
            self._geometry = (width, self.read(regmap.register("WORDS_IN").offset),
                              self.read(regmap.register("WORDS_OUT").offset))
        return self._geometry

    def transfer(self, words, n_out: int, *, deadline: float) -> Received:
        words = np.asarray(words).reshape(-1)
        if words.size == 0:
            return Received(words[:0], False)
        if self._buffer:
            raise TransportError(f"serial ({self.port}): {len(self._buffer)} bytes nobody asked for came before the "
                                 f"transfer: {self._shown()}. reset() discards them.")
        width, per_in, per_out = self._stream_geometry()
        self.stats.count_stream(sent=words.nbytes)
        frames = frame_stream_words(words, last=True, bus_width=width)
        step_bytes = per_in * frame_length("STREAM", width)
        frame_bytes = frame_length("OUTPUT", width)
        steps = -(-words.size // per_in)
        per_out = max(per_out, n_out // steps)  # a probe (PROBE) lengthens the output timesteps past WORDS_OUT
        out = np.zeros(n_out, words.dtype)
        got, sent, last = 0, 0, False
        t0 = time.monotonic()
        while got < n_out and not last:
            if sent < steps and got >= sent * per_out:  # every output of the timesteps sent is in
                self._send(frames[sent * step_bytes : (sent + 1) * step_bytes])
                sent += 1
            status = {"received": got, "expected": n_out, "timesteps_sent": sent, "timesteps": steps}
            waiting = f"output word {got} of {n_out} (timestep {got // per_out} of {steps})"
            try:
                (word, last), end = self._next_frame("OUTPUT", waiting, deadline, status,
                                                     (sent * per_out - got) * frame_bytes)
            except TransferTimeout as exc:
                self.abort()
                raise TransferTimeout(
                    f"serial ({self.port}): the receive got {got} of {n_out} words in {time.monotonic() - t0:.2f} s; "
                    f"{sent} of {steps} timesteps of input were sent (one at a time, each after the outputs of the "
                    f"one before). The transfer was aborted; reset the core before the next one.", exc.status) from None
            del self._buffer[:end]
            out[got] = word
            got += 1
        return Received(out[:got], last)

    def abort(self) -> None:
        """Forget the bytes received and not yet used (input not yet sent is never queued here)."""
        self._buffer.clear()
        self._serial.reset_input_buffer()

    def drain(self, *, deadline: float) -> int:
        total = len(self._buffer)
        self._buffer.clear()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < QUIET_SECONDS:
            if time.monotonic() > deadline:
                raise TransferTimeout(f"serial ({self.port}): the board kept sending ({total} bytes discarded) until "
                                      "the deadline", {"port": self.port, "discarded": total})
            got = self._receive(max(1, self._serial.in_waiting))
            if got:
                total += got
                quiet_since = time.monotonic()
            self._buffer.clear()
        return total

    def close(self) -> None:
        self._serial.close()
