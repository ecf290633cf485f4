"""Shared test setup: the hypothesis profiles and small helpers used by several test files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# tests/reference.py is imported as `reference` by the test files.
sys.path.insert(0, str(Path(__file__).parent))

# "ci": no per-example deadline (2 shared cores make timings noisy), print the blob needed to
# reproduce a failure, and do not complain when generating the nested networks is slow.
settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# "dev": the same, fewer examples, for a quick local loop (HYPOTHESIS_PROFILE=dev). The property
# tests fix their own max_examples, so this only affects tests that do not.
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ---- tiers: `make check` runs what needs no Verilator, Yosys or training run and is no long sweep -----------
# (-m "not slow and not tools and not sweep"; tests/README.md)
#: Folders whose every test builds or runs a tool: the cocotb regression, the formal proofs, the notebooks on
#: the simulated board, the boards' syntheses and bitstreams.
TOOL_FOLDERS = {"cocotb", "formal", "notebooks", "boards"}
#: Files whose tests build simulated boards or train networks (apart from the golden-only cases of the
#: parametrized host tests, which stay in the quick tier through their `backend` parameter).
TOOL_FILES = {"test_quant_train.py", "test_host_board.py", "test_pynq_remote.py", "test_serial_transport.py",
              "test_host_faults.py", "test_host_loop.py", "test_host_cli.py", "test_sim_netlist.py"}
#: Fixtures that build a simulated board.
TOOL_FIXTURES = {"main_board_built", "sim_board", "board"}


def _needs_tools(item) -> bool:
    path = Path(str(item.fspath))
    if TOOL_FOLDERS & set(path.parts) or path.name in TOOL_FILES:
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("backend", "golden") != "golden" or bool(TOOL_FIXTURES & set(item.fixturenames))


#: Long randomized sweeps, parametrized by `part` ("<shape>-<k>"): `make check` leaves them out, `make test`
#: runs part 0 of each shape (every shape and corner, fewer cases) and `make experiments` the rest.
SWEEPS = {"test_golden_models_match_reference"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _needs_tools(item):
            item.add_marker("tools")
        if item.originalname in SWEEPS:
            item.add_marker("sweep")
            if not str(item.callspec.params.get("part", "")).endswith("-0"):
                item.add_marker("experiment")
