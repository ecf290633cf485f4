"""Parameter load frames: the writes of a network load sent as one AXI-Stream transfer.

After `CONTROL.load_params` the core takes its next input transfer, up to TLAST, as a load frame
of 32-bit words (`build_frame`):

    word 0      LOAD_MAGIC ("SKLD" read as a little-endian word)
    word 1      HASH0 of the design (`config.hash_words(config)[0]`)
    word 2      the frame's length in 32-bit words, these three included
    then segments [byte offset, count, count data words], each writing consecutive words from
    that AXI-Lite byte offset (offset, offset + 4, ...)

Every data word is one register write with the rules of an AXI-Lite write (`regmap.judge_write`).
On a 64-bit bus two frame words travel in one bus word, the lower one in the low half; the last
bus word's high half is zero padding when the length is odd (`bus_words`). The core refuses a
frame (`STATUS.err_load`, no further writes) on a bad magic, another design's hash, a length
below 3, a TLAST before the declared length, the declared length reached without TLAST, or a
segment running past the length; magic and hash errors write nothing. `parse_frame` is that
walk in software: the writes the core makes, and a `FrameError` naming what it refused (with the
writes it made before). numpy only (it runs on the board).
"""

from __future__ import annotations

import numpy as np

from spikeloop.config import hash_words
from spikeloop.regmap import WORD_BYTES
from spikeloop.stream import BUS_WIDTHS
from spikeloop.windows import load_writes

__all__ = [
    "LOAD_MAGIC", "HEADER_WORDS", "FrameError", "frame_from_writes", "build_frame", "bus_words", "frame_words",
    "parse_frame", "runs", "markdown",
]

#: Word 0 of a load frame: the ASCII bytes "SKLD" read as a little-endian 32-bit word.
LOAD_MAGIC = int.from_bytes(b"SKLD", "little")
#: Words before the first segment: magic, HASH0, length.
HEADER_WORDS = 3


class FrameError(ValueError):
    """A load frame the core refuses. `.writes` are the (offset, value) writes the core made before
    it refused the frame (none for a bad magic, hash or length word); `.reason` is a short code:
    "magic", "hash", "length", "tlast_early", "no_tlast", "segment"."""

    def __init__(self, message: str, *, reason: str, writes=()):
        super().__init__(message)
        self.reason = reason
        self.writes = list(writes)


def _check_bus_width(bus_width) -> int:
    if bus_width not in BUS_WIDTHS:
        raise ValueError(f"bus_width must be one of {BUS_WIDTHS}, got {bus_width!r}")
    return int(bus_width)


def runs(writes) -> list[tuple[int, list[int]]]:
    """(offset, value) writes grouped into runs of consecutive words: [(first offset, values)], in order."""
    out: list[tuple[int, list[int]]] = []
    for offset, value in writes:
        offset, value = int(offset), int(value) & 0xFFFFFFFF
        if out and out[-1][0] + WORD_BYTES * len(out[-1][1]) == offset:
            out[-1][1].append(value)
        else:
            out.append((offset, [value]))
    return out


def frame_from_writes(config, writes) -> np.ndarray:
    """A load frame (uint32 words) making `writes` ((byte offset, word) pairs, in order) on a core of `config`."""
    body = []
    for offset, values in runs(writes):
        if not 0 <= offset < 1 << 32:
            raise ValueError(f"byte offset {offset:#x} does not fit a 32-bit frame word")
        body += [offset, len(values), *values]
    length = HEADER_WORDS + len(body)
    return np.array([LOAD_MAGIC, hash_words(config)[0], length, *body], dtype=np.uint32)


def build_frame(config, network) -> np.ndarray:
    """The load frame of `network` on a core built as `config`: the writes of `windows.load_writes`
    (MODE, LAM, ALPHA and the weight, threshold and bias windows), grouped into runs. uint32 words.
    Raises ConfigError if the network does not fit the configuration."""
    return frame_from_writes(config, load_writes(config, network))


def bus_words(frame, bus_width: int) -> np.ndarray:
    """Frame words -> bus words: uint32 on a 32-bit bus; on a 64-bit bus uint64, two frame words per
    bus word (the lower one in the low half), the last one zero-padded."""
    _check_bus_width(bus_width)
    frame = np.asarray(frame, dtype=np.uint32).reshape(-1)
    if bus_width == 32:
        return frame.copy()
    padded = np.zeros(frame.size + frame.size % 2, np.uint32)
    padded[: frame.size] = frame
    return padded.astype("<u4").view("<u8").astype(np.uint64)


def frame_words(words, bus_width: int) -> np.ndarray:
    """Bus words -> the frame words they carry (uint32; a 64-bit bus gives two per bus word)."""
    _check_bus_width(bus_width)
    words = np.asarray(words).reshape(-1)
    if bus_width == 32:
        return words.astype(np.uint32)
    return (words.astype(np.uint64) & np.uint64(0xFFFFFFFFFFFFFFFF)).astype("<u8").view("<u4").astype(np.uint32)


def parse_frame(config, words, *, bus_width: int | None = None) -> list[tuple[int, int]]:
    """The (byte offset, value) writes a core of `config` makes for one transfer of bus `words`
    (TLAST on the last), as the gateware walks it, or `FrameError` naming what it refuses.

    `bus_width`: of the words (default: the configuration's). The writes are not judged here: each
    one then goes through `regmap.judge_write` like an AXI-Lite write.
    """
    bus_width = _check_bus_width(config.bus_width if bus_width is None else bus_width)
    per_beat = bus_width // 32
    frame = frame_words(words, bus_width)
    n = frame.size
    if n == 0:
        raise FrameError("an empty transfer is no load frame", reason="tlast_early")
    last_beat = (n - 1) // per_beat  # TLAST is on the last bus word
    hash0 = hash_words(config)[0]
    writes: list[tuple[int, int]] = []
    length = offset = remaining = 0
    state = "offset"
    for pos in range(n):
        w = int(frame[pos])
        if pos == 0 and w != LOAD_MAGIC:
            raise FrameError(f"word 0 is {w:#010x}, not the load magic {LOAD_MAGIC:#010x} ('SKLD')", reason="magic")
        if pos == 1 and w != hash0:
            raise FrameError(f"word 1 (design hash) is {w:#010x}; this core's HASH0 is {hash0:#010x}: the frame "
                             "was built for another design", reason="hash")
        if pos == 2:
            if w < HEADER_WORDS:
                raise FrameError(f"word 2 declares a length of {w} words, less than the {HEADER_WORDS} of the header",
                                 reason="length")
            length = w
        elif pos > 2:
            if state == "offset":
                if pos + 1 == length:
                    raise FrameError(f"a segment at word {pos} runs past the declared length of {length} words "
                                     "(its count is missing)", reason="segment", writes=writes)
                offset, state = w, "count"
            elif state == "count":
                if w > length - (pos + 1):
                    raise FrameError(f"the segment at word {pos - 1} (offset {offset:#x}) has {w} data words, "
                                     f"more than the {length - pos - 1} left of the declared length {length}",
                                     reason="segment", writes=writes)
                remaining, state = w, "data" if w else "offset"
            else:
                writes.append((offset & 0xFFFFFFFF, w))
                offset += WORD_BYTES
                remaining -= 1
                if not remaining:
                    state = "offset"
        if pos >= 2 and pos + 1 == length:
            if pos // per_beat != last_beat:
                raise FrameError(f"the declared length of {length} words was reached without TLAST (the transfer "
                                 f"has {n} words)", reason="no_tlast", writes=writes)
            return writes
    end = f"the declared length of {length} words" if n > 2 else f"the end of the {HEADER_WORDS}-word header"
    raise FrameError(f"TLAST after {n} frame words, before {end}", reason="tlast_early", writes=writes)


def markdown() -> str:
    """The load frame's section of docs/regmap.md."""
    return f"""
## Parameter load frames

After `CONTROL.load_params` (`STATUS.loading` = 1), once no input timestep is partly received, the
next input transfer up to its TLAST is a load frame instead of spikes (`spikeloop/paramstream.py`):

| frame word | content |
|---|---|
| 0 | `LOAD_MAGIC` = `{LOAD_MAGIC:#010x}` (ASCII 'SKLD', little-endian) |
| 1 | `HASH0` of the design |
| 2 | the frame's length in 32-bit words, these {HEADER_WORDS} included |
| 3 ... | segments `[byte offset, count, count data words]` |

- A segment writes its data words at `offset`, `offset + 4`, ...: each one is a register write with
  the rules of an AXI-Lite write (`judge_write`: refusals set `err_param`, `err_address`,
  `err_busy_write`), without a bus response. `build_frame` makes the frame of `load_writes`, its
  consecutive writes grouped into segments.
- On a 64-bit bus two frame words travel per bus word, the lower one in the low half; the last
  bus word's high half is zero padding when the length is odd.
- The core refuses a frame with `err_load` and makes no further writes on: a bad magic, another
  design's hash, a length below {HEADER_WORDS} (none of these writes anything), TLAST before the
  declared length, the declared length reached without TLAST (the words up to TLAST are swallowed),
  a segment running past the length. `loading` clears at the frame's TLAST.
- The core walks one frame word per clock cycle (a 64-bit bus word in two); an AXI-Lite access
  arriving meanwhile takes its turn between two frame writes, so `STATUS` can be polled during a load.
"""
