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
