"""A load frame taken by a software model of the core (the golden board): the words of one transfer
collected up to TLAST, then walked as the gateware walks them (`spikeloop.paramstream.parse_frame`).
numpy only.
"""

from __future__ import annotations

import numpy as np

from spikeloop.paramstream import FrameError, parse_frame

__all__ = ["FrameTaker"]


class FrameTaker:
    """The words of a load frame, collected until TLAST (`take`); then `writes` and `error`."""

    def __init__(self, config):
        self._config = config
        self._words: list[np.ndarray] = []

    def take(self, words, *, last: bool) -> tuple[list[tuple[int, int]], FrameError | None] | None:
        """Collect `words`; at TLAST (`last`) return (the writes the core makes, the error refusing the
        frame or None) and start over; before it, None."""
        self._words.append(np.asarray(words, dtype=np.uint64).reshape(-1))
        if not last:
            return None
        words, self._words = np.concatenate(self._words), []
        try:
            return parse_frame(self._config, words), None
        except FrameError as exc:
            return exc.writes, exc

    def forget(self) -> None:
        """Drop the words collected (a reset)."""
        self._words = []
