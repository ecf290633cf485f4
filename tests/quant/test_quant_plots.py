"""The pictures (spikeloop.quant.plots): each writes a PNG a user can open; bad input is refused."""

import numpy as np
import pytest

from spikeloop.quant.metrics import reliability
from spikeloop.quant.plots import membrane_traces, rate_histogram, reliability_diagram, spike_raster, training_curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_picture_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    spikes = rng.random((12, 9)) < 0.3
    v = rng.integers(-5, 20, (12, 9))
    probs = rng.dirichlet(np.ones(4), 60)
    paths = [
        spike_raster([("input", spikes), ("long", rng.random((100, 5)) < 0.2)], tmp_path / "a" / "raster.png",
                     title="t"),
        membrane_traces([("layer 0", v, np.full(9, 8)), ("layer 1", v[:, :3], None)], tmp_path / "m.png", neurons=2),
        rate_histogram([("layer 0", spikes.mean(0)), ("layer 1", np.zeros(3))], tmp_path / "r.png"),
        training_curves([{"epoch": 0, "loss": 2.0, "train_accuracy": 0.3}, {"epoch": 1, "loss": 1.0,
                                                                             "train_accuracy": 0.6}],
                        tmp_path / "c.png", test_accuracy=0.55),
        reliability_diagram(reliability(probs, rng.integers(0, 4, 60)), tmp_path / "rel.png", ece=0.1),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG, path


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: spike_raster([], p), "spike_raster: no panels to draw"),
        (lambda p: spike_raster([("x", np.zeros(5, bool))], p), r"panel 'x' has shape \(5,\), expected 2 dimensions"),
        (lambda p: membrane_traces([("v", np.zeros((2, 3, 4)), None)], p), "panel 'v' has shape"),
        (lambda p: rate_histogram([("r", np.zeros((2, 2)))], p), "panel 'r' has shape"),
        (lambda p: training_curves([], p), "training_curves: the history is empty"),
        (lambda p: reliability_diagram(reliability(np.eye(3), np.arange(3))._replace(edges=np.zeros(3)), p),
         "reliability_diagram: 3 edges for 15 bins"),
    ],
)
def test_picture_refusals(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "x.png")
