"""Formal proofs of the gateware (yowasp-sby + z3), one test per job of `formal_jobs.JOBS`.

Each job's files (RTLIL, .sby, sby's logs and any counterexample or cover trace as VCD) are
under build/formal/<job>/; the failure message names the failed properties by line of
tests/formal/formal_jobs.py. Run one by hand with `python tests/formal/formal_jobs.py <job>`.
"""

from __future__ import annotations

import os

import formal_jobs as formal
import pytest
from amaranth.hdl import Cat, Const, Value

from spikeloop.network import Rounding
from spikeloop.rtl import events, neuron
from spikeloop.rtl.neuron import NeuronArray

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKDIR = os.path.join(ROOT, "build", "formal")

MISSING = formal.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"formal tools: {MISSING}")


#: Jobs left out of the test run, with why (none: the core's k-induction closes at depth 2 since each
#: component's count is proven apart from their sum, core-prove and core-count-prove).
SLOW: dict[str, str] = {}
#: Jobs run with `make experiments`: the core's covers from reset take minutes (the core's proofs, the neuron's
#: and the decays' covers stay in the test run).
LONG = {"core-cover"}


def _job_param(name):
    if name in SLOW:
        return pytest.param(name, marks=pytest.mark.skip(reason=SLOW[name]))
    return pytest.param(name, marks=pytest.mark.experiment) if name in LONG else name


@pytest.mark.parametrize("name", [_job_param(name) for name in formal.JOBS])
def test_formal_job(name):
    result = formal.run_job(formal.JOBS[name], WORKDIR)
    print(result.summary())
    assert result.passed, formal.failure_report(result)


def test_neuron_proof_fails_on_a_wrong_datapath(monkeypatch, tmp_path):
    """The proof is not vacuous: a spike taken on v' > theta instead of v' >= theta is caught."""
    real = neuron.neuron_update

    def wrong(m, **kwargs):
        lane = real(m, **kwargs)
        return lane._replace(z=lane.v_pre > kwargs["theta"])

    monkeypatch.setattr(neuron, "neuron_update", wrong)
    result = formal.run_job(formal.JOBS["neuron-prove"], tmp_path)
    assert result.status == "FAIL", formal.failure_report(result)
    assert "formal_jobs.py" in formal.failure_report(result)  # the failed assertion is located


def test_core_proof_fails_on_a_lost_count(monkeypatch, tmp_path):
    """The core's proof is not vacuous: a neuron array whose count leaves out its output register is caught,
    by the components' counting."""
    real = NeuronArray.elaborate

    def short(self, platform):
        m = real(self, platform)
        out = self.o_stream
        self._probes = {**self._probes, "steps": self._probes["steps"] - (out.valid & out.p.end)}
        return m

    monkeypatch.setattr(NeuronArray, "elaborate", short)
    result = formal.run_job(formal.JOBS["core-prove"], tmp_path)
    # the induction step fails (UNKNOWN: no base case of depth 2 reaches the neuron array's output)
    assert result.status in ("FAIL", "UNKNOWN"), formal.failure_report(result)
    with open(formal.__file__) as f:
        line = next(n for n, text in enumerate(f, 1) if "timesteps in - out != those it holds" in text)
    assert f"formal_jobs.py:{line}" in formal.failure_report(result)


@pytest.mark.parametrize("job", ["decay-shift-prove", "decay-multiply-prove"])
def test_decay_proof_fails_on_a_lost_rounding(monkeypatch, tmp_path, job):
    """A Decay that always floors (the v1 loss), whatever MODE.decay_round says, is caught."""
    real = neuron.Decay.__init__

    def floor_only(self, m, factor, *, rounding, **kwargs):
        real(self, m, factor, rounding=Const(Rounding.FLOOR, len(rounding)), **kwargs)

    monkeypatch.setattr(neuron.Decay, "__init__", floor_only)
    result = formal.run_job(formal.JOBS[job], tmp_path)
    assert result.status == "FAIL", formal.failure_report(result)
    with open(formal.__file__) as f:  # the failed assertion is the keep(x, d) one
        line = next(n for n, text in enumerate(f, 1) if "x - Decay.of(x) differs" in text)
    assert f"formal_jobs.py:{line}" in formal.failure_report(result)


def _failed_line(text: str) -> str:
    """`formal_jobs.py:<line>` of the first line of the harnesses holding `text`."""
    with open(formal.__file__) as f:
        return f"formal_jobs.py:{next(n for n, line in enumerate(f, 1) if text in line)}"


def test_events_proof_fails_on_a_walk_from_the_top(monkeypatch, tmp_path):
    """The event crossbar's walk is held to the lowest input first: one that takes each bank's highest first
    (its sums unchanged) is caught by the chooser's invariants."""
    def highest(bits):
        bits = Value.cast(bits)
        return Cat(*(bits[k] & ~bits[k + 1 :].any() for k in range(len(bits))))

    monkeypatch.setattr(events, "_lowest", highest)
    result = formal.run_job(formal.JOBS["events-prove"], tmp_path)
    # the induction step fails (UNKNOWN: a base case of depth 2 from reset reaches no item after a capture)
    assert result.status in ("FAIL", "UNKNOWN"), formal.failure_report(result)
    assert _failed_line("index is not the lowest input left") in formal.failure_report(result)


def test_events_sums_fail_on_swapped_lanes(monkeypatch, tmp_path):
    """The bounded check of the sums is not vacuous: lanes 0 and 1 swapped before the popcount trees are caught."""
    real = events.count_and_sum

    def swapped(*args, a_bits, **kwargs):
        return real(*args, a_bits=[a_bits[1], a_bits[0], *a_bits[2:]], **kwargs)

    monkeypatch.setattr(events, "count_and_sum", swapped)
    result = formal.run_job(formal.JOBS["events-sums-bmc"], tmp_path)
    assert result.status == "FAIL", formal.failure_report(result)
    assert _failed_line("sum differs from sum_i w[j,i] s[i]") in formal.failure_report(result)


def test_recurrent_check_fails_on_forgotten_spikes(monkeypatch, tmp_path):
    """The recurrent layer's check is not vacuous: an event-driven crossbar fed zeros instead of the previous spikes
    is caught."""
    from spikeloop.rtl import layer

    def forgetful(spikes, previous):  # the layer's only Cat without membranes or probes: its crossbar input
        return Cat(spikes, Const(0, len(previous)))

    monkeypatch.setattr(layer, "Cat", forgetful)
    result = formal.run_job(formal.JOBS["recurrent-events-bmc"], tmp_path)
    assert result.status == "FAIL", formal.failure_report(result)
    assert _failed_line("the recurrent inputs are not the collector's spikes") in formal.failure_report(result)


def test_sby_text_and_job_list(capsys):
    job = formal.JOBS["core-prove"]
    text = formal.sby_text(job, "x.il")
    assert "mode prove" in text and "smtbmc yices" in text and "read_rtlil x.il" in text
    assert "smtbmc z3" in formal.sby_text(formal.JOBS["neuron-prove"], "x.il")
    assert "prep -top top\nmemory_map\n" in formal.sby_text(formal.JOBS["events-sums-bmc"], "x.il")
    assert formal.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in formal.JOBS)
    with pytest.raises(SystemExit):
        formal.main(["no-such-job"])
