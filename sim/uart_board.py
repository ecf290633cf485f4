"""A board on a serial line, for tests and for users without a ULX3S: the UART bridge's protocol
(`spikeloop.uartlink`) served on a pseudo-terminal or a serial port, every frame executed on a
simulated board (any `spikeloop.sim.interface.Board`: the Verilated `SimBoard`, clock cycle by clock
cycle, or the `GoldenBoard`, where a timestep takes no time).

    with UARTBoard(SimBoard(config)) as board:           # serves on a new pseudo-terminal
        core = open_core("serial", port=board.port)      # board.port: "/dev/pts/N"

    python -m spikeloop.sim.uart_board --network net.npz [--golden] [--port /dev/ttyUSB1]

(`python bench/bench_faces.py uart ...` measures the serial transport against this emulator.)

It behaves as the gateware bridge (spikeloop.boards.uart_bridge): unknown command bytes are
dropped; a WRITE or READ is executed once the stream words received before it have entered the
core; every output word goes out as an OUTPUT frame with the core's TLAST as the core produces it
(at the latest after SLICE_CYCLES clock cycles). The clock runs while there is work: input the
core has not taken, output owed for the timesteps received, and QUIET_CYCLES after any frame.
A background thread serves; `stop()` (or leaving the `with` block) ends it and closes the port.

For tests: `inject("mute" | "garbage" | "wrong_reply")` makes the line misbehave, `core_fault`
injects the board's faults (Fault.TRUNCATE, Fault.MUTE of spikeloop.sim.interface), and
`stats` counts bytes, frames and the host's flow-control violations (a timestep of input started
while outputs of an earlier one were still owed: the real bridge could then lose bytes).
"""

from __future__ import annotations

import argparse
import os
import select
import threading
import tty
from collections import deque

import numpy as np

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.stream import output_words_per_timestep, words_per_timestep
from spikeloop.uartlink import DEFAULT_BAUD, frame_ack, frame_output, frame_read_data, parse_commands

from .interface import Board, Rx, Until

__all__ = ["UARTBoard", "LINK_FAULTS", "main"]

#: Clock cycles run between two looks at the line (while output is owed, and otherwise).
SLICE_CYCLES = 64
TAIL_SLICE_CYCLES = 16
#: The simulated board's receive: armed for this many words, restarted at every output TLAST and
#: after REARM_WORDS words (Fault.TRUNCATE counts its words from there).
ROOM_WORDS = 1 << 30
REARM_WORDS = 4096
#: Cycles the clock keeps running after the last frame or output word.
QUIET_CYCLES = 4_000
#: Cycles the clock keeps running without news while output is still owed (then the emulator gives up on it).
PATIENCE_CYCLES = 200_000
#: Seconds the idle emulator sleeps between looks at the line (input wakes it at once).
IDLE_SECONDS = 0.05
#: Line faults `inject` knows.
LINK_FAULTS = ("mute", "garbage", "wrong_reply")
_READ_SIZE = 1 << 16
_PROBE_OFFSET = regmap.register("PROBE").offset


class _Core:
    """Frames executed on a `Board`, with the bridge's timing of the stream ports."""

    def __init__(self, board: Board):
        self.board = board
        self.config = board.config
        self._mask = (1 << regmap.address_bits(board.config)) - 1  # the bridge drives addr[:ADDRESS_BITS]
        self._forwarded = 0  # words of the current receive already sent to the host
        self._news = board.cycles
        board.arm(ROOM_WORDS)

    def ready(self) -> bool:
        """True once no stream word waits for the core (the bridge would be stuck pushing it); runs
        the clock up to a slice for the core to take them."""
        if self.board.pending:
            self.board.run(SLICE_CYCLES, Until.SENT)
        return self.board.pending == 0

    def touch(self) -> None:
        self._news = self.board.cycles

    def read(self, addr: int) -> int:
        self.touch()
        return self.board.read(addr & self._mask)

    def write(self, addr: int, value: int) -> None:
        self.touch()
        self.board.write(addr & self._mask, value)

    def push(self, word: int, last: bool) -> None:
        self.touch()
        self.board.send(np.array([word], np.uint64), last=last)

    def run(self, owed: bool) -> tuple[list[tuple[int, bool]], bool]:
        """Run a slice of clock cycles if there is work; returns (output words, still working)."""
        board = self.board
        patience = PATIENCE_CYCLES if owed else QUIET_CYCLES
        if not board.pending and board.cycles - self._news >= patience:
            return [], False
        # Short slices while nothing is owed: the host's next frame is then answered sooner.
        board.run(SLICE_CYCLES if owed or board.pending else TAIL_SLICE_CYCLES, Until.RECEIVED)  # ends early at TLAST
        received, state = board.received, board.rx_state
        ended = not state & Rx.ARMED
        outputs = []
        if received > self._forwarded:
            words = board.take()[self._forwarded :]
            tlast = ended and bool(state & Rx.LAST)
            outputs = [(int(w), tlast and i == words.size - 1) for i, w in enumerate(words)]
            self._forwarded = received
            self.touch()
        if ended or received >= REARM_WORDS:
            board.arm(ROOM_WORDS)
            self._forwarded = 0
        return outputs, True

    def fault(self, kind: int, value: int) -> None:
        self.touch()
        self.board.fault(kind, value)


class UARTBoard:
    """Serves the UART bridge's protocol for `target` on a pseudo-terminal (default) or `port`.

    Parameters
    ----------
    target : the board to serve, any `Board` (a `SimBoard` or a `GoldenBoard`).
    port : a serial device or pyserial URL with a file descriptor to serve on instead of a new pty.
    baudrate : the rate of that port (a pty has none).
    """

    def __init__(self, target, *, port: str | None = None, baudrate: int = DEFAULT_BAUD):
        if not isinstance(target, Board):
            raise TypeError(f"target must be a Board (a SimBoard or a GoldenBoard), got {type(target).__name__}")
        self._core = _Core(target)
        config = self._core.config
        self._bus_width = config.bus_width
        self._per_in = words_per_timestep(config.n_in, config.bus_width)
        self._per_out = output_words_per_timestep(config)
        self._serial = None
        self._slave = None
        if port is None:
            self._fd, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no line editing, before anyone opens it
            self.port = os.ttyname(self._slave)
        else:
            self._fd = self._open_port(port, baudrate)
            self.port = port
        os.set_blocking(self._fd, False)
        self.stats = dict.fromkeys(("bytes_in", "bytes_out", "frames_in", "outputs", "flow_violations"), 0)
        self._lock = threading.Lock()
        self._mute, self._garbage, self._wrong_reply = False, b"", False
        self._commands: deque = deque()
        self._steps_in = self._words_out = self._word_in_step = 0
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"uart-board {self.port}", daemon=True)
        self._thread.start()

    def _open_port(self, port: str, baudrate: int) -> int:
        import serial

        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0)
            return self._serial.fileno()
        except (serial.SerialException, ValueError, OSError, AttributeError) as exc:
            if self._serial is not None:
                self._serial.close()
            raise ValueError(f"cannot serve on port {port!r} (a serial device with a file descriptor is needed): "
                             f"{exc}") from None

    # ------------------------------------------------------------------ control
    @property
    def config(self) -> CoreConfig:
        """The configuration of the core served."""
        return self._core.config

    def inject(self, fault: str | None, data: bytes = b"\x55") -> None:
        """Make the line misbehave: "mute" (ignore every byte and answer nothing, until `inject(None)`),
        "garbage" (send `data` before the next reply, once), "wrong_reply" (answer the next WRITE
        with READ_DATA, or the next READ with WRITE_ACK, once); None ends them all."""
        if fault is not None and fault not in LINK_FAULTS:
            raise ValueError(f"unknown line fault {fault!r}; choose from {', '.join(LINK_FAULTS)} or None")
        if fault == "garbage" and (not isinstance(data, (bytes, bytearray)) or not data):
            raise ValueError(f"garbage needs some bytes to send, got {data!r}")
        with self._lock:
            self._mute = fault == "mute"
            self._garbage = bytes(data) if fault == "garbage" else b""
            self._wrong_reply = fault == "wrong_reply"

    def core_fault(self, kind: int, value: int = 0) -> None:
        """Inject a fault of the board (`spikeloop.sim.interface.FAULT_*`), Fault.NONE to end it."""
        with self._lock:
            self._core.fault(kind, value)

    def stop(self) -> None:
        """Stop serving and close the line; raises what went wrong in the serving thread, if anything."""
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError(f"uart board {self.port}: the serving thread did not stop within 10 s")
        for fd in (self._wake_r, self._wake_w, self._slave, None if self._serial else self._fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = self._slave = None
        if self._serial is not None:
            self._serial.close()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"uart board {self.port} failed: {error!r}") from error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        inbuf, outbuf = bytearray(), bytearray()
        busy = False
        try:
            while not self._stopping.is_set():
                writers = [self._fd] if outbuf else []
                ready, _, _ = select.select([self._fd, self._wake_r], writers, [], 0 if busy else IDLE_SECONDS)
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                data = self._read() if self._fd in ready else b""
                with self._lock:
                    if data and not self._mute:
                        inbuf += data
                        self.stats["bytes_in"] += len(data)
                        commands, used = parse_commands(inbuf, self._bus_width)
                        del inbuf[:used]
                        self._commands.extend(commands)
                        self.stats["frames_in"] += len(commands)
                    outbuf += self._execute()
                    owed = self._steps_in * self._per_out > self._words_out
                    outputs, busy = self._core.run(owed)
                    for word, last in outputs:
                        outbuf += frame_output(word, last, self._bus_width)
                    self._words_out += len(outputs)
                    self.stats["outputs"] += len(outputs)
                    busy = busy or bool(self._commands)
                    if not busy and self._word_in_step == 0:  # idle: start counting timesteps afresh
                        self._steps_in = self._words_out = 0
                if outbuf and not self._mute:
                    outbuf = self._write(outbuf)
                elif self._mute:
                    outbuf.clear()
        except BaseException as exc:  # reported by stop()
            self._error = exc

    def _read(self) -> bytes:
        try:
            return os.read(self._fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return b""

    def _write(self, outbuf: bytearray) -> bytearray:
        try:
            n = os.write(self._fd, outbuf)
        except (BlockingIOError, InterruptedError):
            return outbuf
        self.stats["bytes_out"] += n
        del outbuf[:n]
        return outbuf

    def _execute(self) -> bytes:
        """Run the queued commands in order, as far as the core lets the bridge; returns the replies."""
        out = bytearray()
        while self._commands:
            name, args = self._commands[0]
            if name == "STREAM":  # queued for the core, which takes them as fast as the bridge would push them
                self._commands.popleft()
                self._note_stream(args[1])
                self._core.push(*args)
                continue
            if not self._core.ready():
                break
            self._commands.popleft()
            if name == "WRITE":
                self._core.write(*args)
                if args[0] & self._core._mask == _PROBE_OFFSET:  # the output timesteps grow by the probe's words
                    self._per_out = output_words_per_timestep(self._core.config, self._core.board.read(_PROBE_OFFSET))
                reply = frame_read_data(0) if self._wrong_reply else frame_ack()
            else:
                value = self._core.read(*args)
                reply = frame_ack() if self._wrong_reply else frame_read_data(value)
            out += self._garbage + reply
            self._garbage, self._wrong_reply = b"", False
        return bytes(out)

    def _note_stream(self, last: bool) -> None:
        """Count timesteps of input, and the ones started while outputs of earlier ones were owed."""
        if self._word_in_step == 0:
            if self._steps_in * self._per_out > self._words_out:
                self.stats["flow_violations"] += 1
            self._steps_in += 1
        self._word_in_step += 1
        if last or self._word_in_step == self._per_in:
            self._word_in_step = 0


def main(argv=None) -> int:
    """Serve a core until Ctrl-C (prints the port to open with the serial transport)."""
    from .board import SimBoard, add_served_core_arguments, serve_until_interrupted, served_core
    from .golden_board import GoldenBoard

    parser = argparse.ArgumentParser(prog="python -m spikeloop.sim.uart_board", description=__doc__.splitlines()[0])
    add_served_core_arguments(parser)
    parser.add_argument("--golden", action="store_true", help="execute on the golden model, not the simulated board")
    parser.add_argument("--port", default=None, help="serve on this serial device instead of a new pseudo-terminal")
    parser.add_argument("--baudrate", type=int, default=DEFAULT_BAUD)
    args = parser.parse_args(argv)
    _, config = served_core(args)
    target = GoldenBoard(config) if args.golden else SimBoard(config, profile=args.profile, log=print)
    with UARTBoard(target, port=args.port, baudrate=args.baudrate) as board:
        print(f"serving a {'-'.join(map(str, config.sizes))} core on {board.port}: "
              f'open_core("serial", port="{board.port}")  (Ctrl-C stops)', flush=True)
        serve_until_interrupted()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
