"""Parameter load frames (`spikeloop.paramstream`): built from the MMIO load's writes, split into bus
words, and walked back into writes; every frame the core refuses is refused here with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from spikeloop import paramstream as ps
from spikeloop.config import CoreConfig, hash_words
from spikeloop.network import random_network
from spikeloop.windows import load_writes

SEED = 20261202
NET = random_network((40, 7, 3), seed=SEED)
#: padding lanes and padded weight rows: the writes have gaps, so the frame has many segments
CONFIG = CoreConfig.for_network(NET, lanes=[5, 2], chunk=[14, 7])
OTHER = CoreConfig.for_network(NET, lanes=[4, 2], chunk=[14, 7])


def test_magic_is_skld():
    assert ps.LOAD_MAGIC.to_bytes(4, "little") == b"SKLD"


@pytest.mark.parametrize("bus_width", [32, 64])
def test_round_trip_gives_the_mmio_writes(bus_width):
    config = CoreConfig.for_network(NET, lanes=[5, 2], chunk=[14, 7], bus_width=bus_width)
    frame = ps.build_frame(config, NET)
    writes = load_writes(config, NET)
    assert frame.dtype == np.uint32
    assert int(frame[0]) == ps.LOAD_MAGIC and int(frame[1]) == hash_words(config)[0] and int(frame[2]) == frame.size
    segments = ps.runs(writes)
    assert len(segments) > 5, "vacuous: the writes have no gaps"
    assert frame.size == ps.HEADER_WORDS + 2 * len(segments) + len(writes)
    words = ps.bus_words(frame, bus_width)
    assert words.size == -(-frame.size // (bus_width // 32))
    assert ps.parse_frame(config, words) == [(o, v & 0xFFFFFFFF) for o, v in writes]
    assert np.array_equal(ps.frame_words(words, bus_width)[: frame.size], frame)


def test_64_bit_words_carry_the_low_frame_word_first():
    words = ps.bus_words(np.array([1, 2, 3], np.uint32), 64)
    assert words.dtype == np.uint64 and [int(w) for w in words] == [2 << 32 | 1, 3]


def test_runs_split_at_gaps():
    assert ps.runs([(0x100, 1), (0x104, 2), (0x10C, 3), (0x110, -1)]) == [(0x100, [1, 2]), (0x10C, [3, 0xFFFFFFFF])]


def _errors(frame, config=CONFIG, bus_width=32):
    with pytest.raises(ps.FrameError) as info:
        ps.parse_frame(config, ps.bus_words(frame, bus_width), bus_width=bus_width)
    return info.value


def test_refusals_name_their_reason():
    frame = ps.build_frame(CONFIG, NET)
    bad_magic = frame.copy()
    bad_magic[0] ^= 1
    e = _errors(bad_magic)
    assert e.reason == "magic" and e.writes == [] and "SKLD" in str(e)
    e = _errors(ps.build_frame(OTHER, NET), CONFIG)
    assert e.reason == "hash" and e.writes == [] and "another design" in str(e)
    short = frame.copy()
    short[2] = 2
    assert _errors(short).reason == "length"
    e = _errors(frame[:-2])  # a truncated transfer: TLAST before the declared length (in the last segment)
    assert e.reason == "tlast_early" and len(e.writes) == len(load_writes(CONFIG, NET)) - 2
    assert _errors(frame[:2]).reason == "tlast_early"
    longer = np.concatenate([frame, [0, 0]]).astype(np.uint32)  # the length reached without TLAST
    e = _errors(longer)
    assert e.reason == "no_tlast" and len(e.writes) == len(load_writes(CONFIG, NET))
    past = frame.copy()
    past[4] = 10_000  # the first segment's count runs past the length
    e = _errors(past)
    assert e.reason == "segment" and e.writes == [] and "more than" in str(e)
    cut = frame.copy()
    cut[2] = frame.size + 1  # the frame then ends after a segment's offset word
    e = _errors(np.concatenate([cut, [0x100]]).astype(np.uint32))
    assert e.reason == "segment" and "count is missing" in str(e)
    with pytest.raises(ps.FrameError, match="empty"):
        ps.parse_frame(CONFIG, np.zeros(0, np.uint32))


def test_64_bit_length_and_padding():
    config = CoreConfig.for_network(NET, lanes=[5, 2], chunk=[14, 7], bus_width=64)
    frame = ps.build_frame(config, NET)
    even = frame if frame.size % 2 == 0 else np.concatenate([frame[:3], [0, 0], frame[3:]]).astype(np.uint32)
    even[2] = even.size
    assert len(ps.parse_frame(config, ps.bus_words(even, 64))) == len(load_writes(config, NET))
    longer = np.concatenate([even, [0, 0]]).astype(np.uint32)  # one bus word too many
    assert _errors(longer, config, 64).reason == "no_tlast"


def test_empty_frame_and_empty_segment():
    h = [ps.LOAD_MAGIC, hash_words(CONFIG)[0]]
    assert ps.parse_frame(CONFIG, np.array([*h, 3], np.uint32)) == []
    assert ps.parse_frame(CONFIG, np.array([*h, 8, 0x100, 0, 0x104, 1, 7], np.uint32)) == [(0x104, 7)]


def test_bad_bus_width_is_refused():
    with pytest.raises(ValueError, match="bus_width must be one of"):
        ps.bus_words(np.zeros(3, np.uint32), 48)


def test_a_recurrent_network_loads_its_crossbar_weights():
    """A recurrent layer's frame carries the rows of [w | r] (`Layer.crossbar_weights`), which a golden register
    model loaded from it splits back into the same network; a feed-forward build refuses the network."""
    from spikeloop.config import ConfigError
    from spikeloop.sim.golden_board import GoldenBoard

    net = random_network((40, 7, 3), seed=SEED + 1, recurrent=(True, False))
    config = CoreConfig.for_network(net, lanes=[5, 2], chunk=[14, 7])
    assert [layer.recurrent for layer in config.layers] == [True, False]
    writes = ps.parse_frame(config, ps.build_frame(config, net))
    assert writes == [(o, v & 0xFFFFFFFF) for o, v in load_writes(config, net)]
    board = GoldenBoard(config)
    offsets, values = zip(*writes)
    board.write_many(offsets, values)
    assert board.network() == net and board.network().layers[0].is_recurrent
    with pytest.raises(ConfigError, match="layer 0: the network has recurrent = True"):
        ps.build_frame(CONFIG, net)
