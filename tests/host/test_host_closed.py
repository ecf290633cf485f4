"""A closed core refuses every call with `CoreError`, on every transport alike; a closed simulated
board refuses every call with `BoardError` and never calls into its C library with a null handle
(which ended the Python process with a segmentation fault)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import main_config, main_network, make_core, spike_train

from spikeloop.host import Core, CoreError

#: Every public method of `Core` with valid arguments (`close` aside: closing again does nothing).
CALLS = {
    "read_register": lambda c: c.read_register("STATUS"),
    "write_register": lambda c: c.write_register("CONTROL", 0),
    "status": lambda c: c.status(),
    "errors": lambda c: c.errors(),
    "raise_errors": lambda c: c.raise_errors(),
    "clear_errors": lambda c: c.clear_errors(),
    "counters": lambda c: c.counters(),
    "membranes": lambda c: c.membranes(),
    "currents": lambda c: c.currents(0),
    "states": lambda c: c.states(),
    "load": lambda c: c.load(main_network()),
    "clear_state": lambda c: c.clear_state(),
    "clear_counters": lambda c: c.clear_counters(),
    "reset": lambda c: c.reset(),
    "run": lambda c: c.run(spike_train((5, 40), 1)),
    "step": lambda c: c.step(spike_train((40,), 2)),
    "__enter__": lambda c: c.__enter__(),
}


def test_calls_cover_every_public_method():
    methods = {name for name, value in vars(Core).items()
               if callable(value) and not name.startswith("_") and name != "close"}
    assert methods | {"__enter__"} == set(CALLS), "a public method of Core is missing from CALLS"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_closed_core_refuses_every_method(backend, name, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    core = make_core(backend, main_config(), main_network())
    with core:
        core.run(spike_train((3, 40), 0))
    assert core.closed
    with pytest.raises(CoreError, match=r"the core is closed: open a new one with open_core\(\.\.\.\)") as info:
        CALLS[name](core)
    assert info.value.errors == ()
    with pytest.raises(CoreError, match="closed"):
        core.transport  # noqa: B018
    core.close()  # closing again does nothing
    assert repr(core).startswith("Core(closed, was ")
    assert core.config == main_config()  # what the core was stays readable


def test_closed_sim_board_refuses_every_call(main_board_built):
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.interface import BoardError

    board = SimBoard(main_board_built, profile="quick")
    board.close()
    board.close()
    assert board.closed
    calls = [lambda b: b.read(0), lambda b: b.write(0, 0), lambda b: b.read_many([0]),
             lambda b: b.write_many([0], [0]), lambda b: b.send(np.zeros(2, np.uint32)), lambda b: b.pending,
             lambda b: b.discard(), lambda b: b.arm(4), lambda b: b.disarm(), lambda b: b.rx_state,
             lambda b: b.received, lambda b: b.take(), lambda b: b.transfer(np.zeros(2, np.uint32), 4, 100),
             lambda b: b.run(10), lambda b: b.drain(), lambda b: b.reset(), lambda b: b.fault(0),
             lambda b: b.cycles]
    for call in calls:
        with pytest.raises(BoardError, match="is closed"):
            call(board)


_AFTER_WITH = """
import sys
from spikeloop.host import CoreError, open_core
from conftest import main_network, spike_train

net = main_network()
with open_core("sim", net, lanes=[3, 2], chunk=[16, 12], profile="quick") as core:
    core.run(spike_train((4, 40), 0))
for name, call in [("counters", lambda: core.counters()), ("run", lambda: core.run(spike_train((4, 40), 1))),
                   ("step", lambda: core.step(spike_train((40,), 2)))]:
    try:
        call()
    except CoreError as exc:
        print(name, "CoreError:", exc)
    else:
        sys.exit(f"{name} on a closed core did not raise")
from spikeloop.sim.board import SimBoard
from spikeloop.sim.interface import BoardError
b = SimBoard(core.config, profile="quick")
b.close()
try:
    b.read(0)
except BoardError as exc:
    print("SimBoard BoardError:", exc)
"""


def test_sim_core_after_with_block_raises_in_a_fresh_process(main_board_built):
    """What a user types: the core used after its `with` block. Before the guard: exit code -11 (SIGSEGV)."""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}  # for conftest
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_AFTER_WITH)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["counters", "run", "step", "SimBoard"], proc.stdout
    assert all("is closed" in line for line in lines), proc.stdout
