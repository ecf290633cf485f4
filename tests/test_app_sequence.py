"""The row-sequential study (spikeloop.app.sequence_study): feed-forward against recurrent networks on a core."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("torch")

from spikeloop.app.sequence_study import KINDS, Row, StudyConfig, main, run_study, table  # noqa: E402


@pytest.mark.parametrize("changes, message", [
    ({"datasets": ("digits", "cifar")}, "data set 'cifar'; the study knows digits, mnist5k"),
    ({"seeds": (0, -1)}, "seeds = (0, -1), expected non-negative integers"),
    ({"seeds": ()}, "seeds = (), expected non-negative integers"),
    ({"backend": "pynq"}, "backend = 'pynq'; expected one of sim, golden"),
    ({"kinds": ("recurrent", "lstm")}, "kinds = ('recurrent', 'lstm'); expected some of feedforward, recurrent"),
    ({"max_test": 0}, "max_test = 0, expected a positive integer or None"),
])
def test_settings_that_cannot_run_are_refused_naming_the_value(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        StudyConfig(**changes)


@pytest.mark.parametrize("backend", ["golden", "sim"])
def test_the_quick_study_runs_both_kinds_on_the_core_equal_to_golden(backend):
    rows = run_study(StudyConfig.quick(backend=backend))
    assert [r.kind for r in rows] == list(KINDS[:2])
    for r in rows:
        assert r.core_equals_golden, r
        assert r.nonzero_scores > 0 and r.core_accuracy > 0.2, r  # chance is 0.1
    assert rows[1].synapses == rows[0].synapses + 64 * 64
    text = table(rows)
    assert "| digits rows | recurrent | 8-64-10 | 5,248 |" in text and "NO" not in text


def test_the_wide_feedforward_network_has_as_many_synapses_as_the_recurrent_one():
    study = StudyConfig()
    for dataset, (n_in, width, hidden) in {"digits": (64, 8, 64), "mnist5k": (784, 28, 128)}.items():
        recurrent = study.train_config(dataset, "recurrent", 0, n_in=n_in, n_classes=10)
        wide = study.train_config(dataset, "feedforward-wide", 0, n_in=n_in, n_classes=10)
        assert recurrent.recurrent and not wide.recurrent and recurrent.hidden == (hidden,)
        synapses = hidden * (width + hidden + 10)
        assert abs(wide.hidden[0] * (width + 10) - synapses) <= (width + 10) / 2


def test_the_command_writes_the_table_and_the_rows(tmp_path):
    assert main(["--quick", "--backend", "golden", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [Row(**{**r, "sizes": tuple(r["sizes"])}).kind for r in rows] == list(KINDS[:2])
    assert (tmp_path / "table.md").read_text().startswith("| data set |")
