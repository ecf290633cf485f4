"""The host link over a UART: frame codes and the pure encoders and decoders of its frames.

One table (`FRAMES`) for the gateware bridge (spikeloop.boards.uart_bridge), the host's `serial`
transport (spikeloop.host.serial_transport) and the board emulator (spikeloop.sim.uart_board).
numpy only, so it imports on a host that has nothing but numpy and pyserial.

A board without a processor (the ULX3S) reaches the core through its USB-UART: 8N1, multi-byte
fields little-endian, `W` = the core's bus width (32 or 64 bits).

    host -> board                                   board -> host
    WRITE  0x01 addr[4] data[4]                     WRITE_ACK 0x81
    READ   0x02 addr[4]                             READ_DATA 0x82 data[4]
    STREAM 0x03 flags[1] word[W/8]                  (no reply)
                                                    OUTPUT    0x84 flags[1] word[W/8]
    flags bit 0 = TLAST (the other bits are 0)

Each output stream word is sent as an OUTPUT frame whenever the core produces one; replies and
output frames never interleave inside a frame. Unknown command bytes are dropped by the board.
The UART has no flow control: the host keeps at most one timestep of input in flight beyond the
outputs it has received (the core then always accepts a word within a few cycles, long before
the next byte ends), and waits for each reply before the next WRITE or READ.
"""

from __future__ import annotations

import numpy as np

from spikeloop.stream import BUS_WIDTHS

__all__ = [
    "FRAMES", "NAMES", "COMMANDS", "REPLIES", "DEFAULT_BAUD", "BITS_PER_BYTE", "FrameError", "frame_length",
    "frame_write", "frame_read", "frame_stream", "frame_stream_words", "frame_ack", "frame_read_data",
    "frame_output", "decode_reply", "parse_replies", "parse_commands", "frame_seconds",
]

#: Frame codes (the first byte of every frame).
FRAMES = {
    "WRITE": 0x01, "READ": 0x02, "STREAM": 0x03,
    "WRITE_ACK": 0x81, "READ_DATA": 0x82, "OUTPUT": 0x84,
}
#: Frame code -> name.
NAMES = {code: name for name, code in FRAMES.items()}
#: The frames a host sends, and the frames a board sends.
COMMANDS = ("WRITE", "READ", "STREAM")
REPLIES = ("WRITE_ACK", "READ_DATA", "OUTPUT")
#: The ULX3S bridge's rate (spikeloop.boards.ulx3s.BAUD; a test holds the two equal).
DEFAULT_BAUD = 1_000_000
#: Bits on the wire per byte (8N1: start, 8 data, stop).
BITS_PER_BYTE = 10

_TLAST = 1


class FrameError(ValueError):
    """Bytes that are not a frame of the protocol; `.byte` is the offending byte, `.position` its index."""

    def __init__(self, message: str, byte: int, position: int):
        super().__init__(message)
        self.byte = byte
        self.position = position


def _check_bus_width(bus_width: int) -> int:
    if bus_width not in BUS_WIDTHS:
        raise ValueError(f"bus_width must be one of {BUS_WIDTHS}, got {bus_width!r}")
    return bus_width // 8


def frame_length(name: str, bus_width: int = 32) -> int:
    """Bytes of a whole frame called `name` (code included)."""
    wb = _check_bus_width(bus_width)
    lengths = {"WRITE": 9, "READ": 5, "STREAM": 2 + wb, "WRITE_ACK": 1, "READ_DATA": 5, "OUTPUT": 2 + wb}
    if name not in lengths:
        raise ValueError(f"unknown frame {name!r}; the frames are {', '.join(FRAMES)}")
    return lengths[name]


def frame_seconds(name: str, baudrate: int, bus_width: int = 32) -> float:
    """Seconds the frame `name` takes on the wire at `baudrate` (8N1)."""
    return frame_length(name, bus_width) * BITS_PER_BYTE / baudrate


# ---------------------------------------------------------------------- host -> board
def frame_write(addr: int, data: int) -> bytes:
    """Host bytes of a register write."""
    return bytes([FRAMES["WRITE"]]) + int(addr).to_bytes(4, "little") + (int(data) & 0xFFFFFFFF).to_bytes(4, "little")


def frame_read(addr: int) -> bytes:
    """Host bytes of a register read."""
    return bytes([FRAMES["READ"]]) + int(addr).to_bytes(4, "little")


def frame_stream_words(words, *, last: bool, bus_width: int = 32) -> bytes:
    """Host bytes of input stream words, one STREAM frame each; TLAST on the last word when `last`."""
    wb = _check_bus_width(bus_width)
    words = np.asarray(words).reshape(-1)
    if words.size and (words.dtype.kind not in "ui" or int(words.min()) < 0 or int(words.max()) >> bus_width):
        raise ValueError(f"stream words must be unsigned integers of {bus_width} bits, got {words.dtype} values "
                         f"in [{words.min()}, {words.max()}]")
    frames = np.zeros((words.size, 2 + wb), np.uint8)
    frames[:, 0] = FRAMES["STREAM"]
    if words.size and last:
        frames[-1, 1] = _TLAST
    frames[:, 2:] = words.astype(f"<u{wb}").view(np.uint8).reshape(-1, wb)
    return frames.tobytes()


def frame_stream(word: int, last: bool, bus_width: int = 32) -> bytes:
    """Host bytes of one input stream word."""
    _check_bus_width(bus_width)
    if not 0 <= int(word) < 1 << bus_width:
        raise ValueError(f"a stream word must be an unsigned integer of {bus_width} bits, got {word!r}")
    return frame_stream_words(np.array([int(word)], np.uint64), last=last, bus_width=bus_width)


def parse_commands(data: bytes, bus_width: int = 32) -> tuple[list[tuple[str, tuple]], int]:
    """Host bytes -> ([("WRITE", (addr, data)) | ("READ", (addr,)) | ("STREAM", (word, last))], bytes used).

    Unknown command bytes are dropped (as the gateware does); a trailing partial frame is left unused.
    """
    wb = _check_bus_width(bus_width)
    out, i, n = [], 0, len(data)
    while i < n:
        name = NAMES.get(data[i])
        if name not in COMMANDS:
            i += 1
            continue
        end = i + frame_length(name, bus_width)
        if end > n:
            break
        if name == "WRITE":
            addr, value = int.from_bytes(data[i + 1 : i + 5], "little"), int.from_bytes(data[i + 5 : end], "little")
            out.append((name, (addr, value)))
        elif name == "READ":
            out.append((name, (int.from_bytes(data[i + 1 : end], "little"),)))
        else:
            out.append((name, (int.from_bytes(data[i + 2 : i + 2 + wb], "little"), bool(data[i + 1] & _TLAST))))
        i = end
    return out, i


# ---------------------------------------------------------------------- board -> host
def frame_ack() -> bytes:
    """Board bytes of a write acknowledgement."""
    return bytes([FRAMES["WRITE_ACK"]])


def frame_read_data(value: int) -> bytes:
    """Board bytes of a register read's reply."""
    return bytes([FRAMES["READ_DATA"]]) + (int(value) & 0xFFFFFFFF).to_bytes(4, "little")


def frame_output(word: int, last: bool, bus_width: int = 32) -> bytes:
    """Board bytes of one output stream word."""
    return bytes([FRAMES["OUTPUT"], _TLAST if last else 0]) + int(word).to_bytes(_check_bus_width(bus_width), "little")


def decode_reply(data, start: int = 0, bus_width: int = 32) -> tuple[str, object, int] | None:
    """The board frame at `data[start:]`: (name, value, end) where value is None (WRITE_ACK), the
    register word (READ_DATA) or (word, last) (OUTPUT); None while the frame is incomplete.

    Raises `FrameError` on a byte that starts no board frame, or an OUTPUT flags byte with
    undefined bits set.
    """
    code = data[start]
    name = NAMES.get(code)
    if name not in REPLIES:
        known = ", ".join(f"{n} {FRAMES[n]:#04x}" for n in REPLIES)
        raise FrameError(f"unexpected byte {code:#04x} at {start}: it starts no board frame ({known})", code, start)
    end = start + frame_length(name, bus_width)
    if end > len(data):
        return None
    if name == "WRITE_ACK":
        return name, None, end
    if name == "READ_DATA":
        return name, int.from_bytes(bytes(data[start + 1 : end]), "little"), end
    flags = data[start + 1]
    if flags & ~_TLAST:
        raise FrameError(f"OUTPUT frame at {start} has flags {flags:#04x}; only bit 0 (TLAST) is defined",
                         flags, start + 1)
    return name, (int.from_bytes(bytes(data[start + 2 : end]), "little"), bool(flags)), end


def parse_replies(data: bytes, bus_width: int = 32) -> list[tuple[str, object]]:
    """Board bytes -> [("ack", None) | ("read", value) | ("output", (word, last))]; trailing partial frames ignored.

    Raises `FrameError` (a `ValueError`) naming the first unexpected byte.
    """
    short = {"WRITE_ACK": "ack", "READ_DATA": "read", "OUTPUT": "output"}
    out, i = [], 0
    while i < len(data):
        got = decode_reply(data, i, bus_width)
        if got is None:
            break
        name, value, i = got
        out.append((short[name], value))
    return out
