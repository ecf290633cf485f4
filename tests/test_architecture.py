"""The package's rooms and the one-way flow of imports between them (tests/imports.py, docs/architecture.md)."""

from __future__ import annotations

import imports


def test_imports_flow_one_way():
    bad = imports.violations()
    assert not bad, "imports against the flow (docs/architecture.md):\n" + "\n".join(bad)


def test_no_cycle_between_rooms():
    assert imports.cycles(imports.room_graph()) == []
    assert imports.cycles(imports.ALLOWED) == []  # the rule itself is a one-way order


def test_the_walk_sees_every_room_and_the_imports_between_them():
    found = imports.edges()
    assert len(found) > 200, len(found)  # not a vacuous pass: the walker reads the package's imports
    assert {src for src, *_ in found} == set(imports.ALLOWED)
    assert imports.room_graph()["sim"] >= {"rtl", "contract"}


def test_a_reverse_import_a_forbidden_package_and_a_missing_module_are_named():
    found = [("sim", "host", "sim/x.py", 3), ("contract", "3rd:torch", "spikeloop/y.py", 5),
             ("rtl", "missing:spikeloop.cli", "rtl/z.py", 7), ("host", "sim", "host/ok.py", 1)]
    bad = imports.violations(found)
    assert bad == ["sim/x.py:3: sim imports host (allowed: contract, rtl)", "spikeloop/y.py:5: contract imports torch",
                   "rtl/z.py:7: rtl imports spikeloop.cli, which is no module of the package"]
    assert imports.cycles(imports.room_graph(found + [("host", "sim", "h.py", 1)])) == [["host", "sim", "host"],
                                                                                       ["sim", "host", "sim"]]


def test_the_architecture_doc_holds_the_generated_graph():
    text = (imports.ROOT / "docs" / "architecture.md").read_text()
    assert imports.mermaid() in text, "regenerate it: python tests/imports.py (then paste into docs/architecture.md)"
