"""Faults: each gives a clear error, nothing hangs, and `reset()` makes the core usable again."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from conftest import PROFILE, SEED, main_config, main_network, make_core, spike_train

from spikeloop import golden, regmap
from spikeloop.host import TransferError, TransferTimeout, TransportError
from spikeloop.host.sim_transport import GoldenTransport
from spikeloop.stream import pack_spikes

pytestmark = pytest.mark.usefixtures("main_board_built")


def _board(core):
    transport = core.transport
    return transport.board if hasattr(transport, "board") else transport.device.board


def _works(core, seed=SEED + 50):
    spikes = spike_train((12, 40), seed)
    out = core.run(spikes)
    ref = golden.run(main_network(), spikes)
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)


@pytest.mark.parametrize("backend", ["sim", "pynq"])
def test_a_core_that_returns_fewer_words(backend):
    from spikeloop.sim.interface import Fault

    core = make_core(backend, main_config(), main_network())
    _board(core).fault(Fault.TRUNCATE, 10)  # TLAST after 10 words, the rest of that timestep dropped
    with pytest.raises(TransferError, match=r"5 timesteps in gave 10 words out, expected 35 \(7 per timestep\)"):
        core.run(spike_train((5, 40), SEED))
    _board(core).fault(Fault.NONE)
    core.reset()
    _works(core)


@pytest.mark.parametrize("backend, message", [
    ("sim", "sim: the receive got 0 of 140 words"),
    ("pynq", (r"AXI DMA .*S2MM \(receive\) did not finish before the deadline: .* S2MM \(receive\) DMASR = "
              r"0x00000000 \(running, not idle\)")),
])
def test_a_core_that_never_answers_times_out(backend, message):
    from spikeloop.sim.interface import Fault

    core = make_core(backend, main_config(), main_network(), timeout=0.5)
    _board(core).fault(Fault.MUTE, 0)
    t0 = time.monotonic()
    with pytest.raises(TransferTimeout, match=message) as info:
        core.run(spike_train((20, 40), SEED))
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - t0 < 10, "the deadline was not kept"
    if backend == "pynq":
        assert not info.value.status["s2mm_dmasr"] & 2, "the receive should not be idle"
    _board(core).fault(Fault.NONE)
    core.reset()
    assert not core.status().busy
    _works(core)


@pytest.mark.parametrize("backend", ["sim", "pynq"])
def test_a_receive_shorter_than_the_packet(backend):
    core = make_core(backend, main_config(), main_network())
    words = pack_spikes(spike_train((3, 40), SEED), 32)
    deadline = time.monotonic() + 10
    if backend == "pynq":  # the DMA flags the packet longer than its buffer, and is reset
        with pytest.raises(TransportError, match=r"S2MM \(receive\) error: DMASR = .*DMAIntErr.*internal error"):
            core.transport.transfer(words, 7, deadline=deadline)
    else:
        got = core.transport.transfer(words, 7, deadline=deadline)
        assert got.words.size == 7 and not got.last
    core.reset()
    _works(core)


def test_a_partial_input_timestep_is_completed_by_reset():
    core = make_core("sim", main_config(), main_network())
    board = core.transport.board
    board.send(np.ones(1, np.uint64), last=False)  # the first of two words of a timestep
    board.run(200)
    assert core.status().busy
    core.reset()
    status = core.status()
    assert not status.busy and status.errors == ()
    _works(core)


def test_waits_have_deadlines():
    class Stuck(GoldenTransport):
        def read(self, offset):  # a core forever clearing its state
            value = super().read(offset)
            return value | 2 if offset == regmap.register("STATUS").offset else value

    from spikeloop.host import Core

    core = Core(Stuck(config=main_config()), timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="the state clear did not happen before the deadline"):
        core.clear_state()
    assert time.monotonic() - t0 < 5


def test_a_failing_board_build_is_reported(tmp_path, monkeypatch):
    import tempfile

    from spikeloop.sim.board import BoardBuildError, build_board

    made = []  # the half-built libraries of this build only (the cache is shared with parallel tests)

    def mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        made.append(path)
        return fd, path

    real_mkstemp = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    broken = tmp_path / "broken.cpp"
    broken.write_text('#include "Vcore.h"\nextern "C" int sb_new( { return 0; }\n')
    with pytest.raises(BoardBuildError, match="compiling the harness failed") as info:
        build_board(main_config(), profile=PROFILE, harness=broken)
    assert "error" in info.value.output
    assert made and not [path for path in made if os.path.exists(path)], "a half-built library was left behind"
    monkeypatch.undo()
    build_board(main_config(), profile=PROFILE)  # the good harness still builds in the same cache

    with pytest.raises(BoardBuildError, match="Verilator failed") as info:
        build_board(main_config(), profile=PROFILE, extra_verilator_args=["--no-such-option"], build_root=tmp_path)
    assert "no-such-option" in str(info.value)
    with pytest.raises(ValueError, match="profile must be one of"):
        build_board(main_config(), profile="turbo")
