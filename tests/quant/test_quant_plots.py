"""The pictures (spikeloop.quant.plots): each writes a PNG a user can open; bad input is refused."""

import numpy as np
import pytest

from spikeloop.metrics import reliability
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
         "reliability_diagram: 3 edges for 20 bins"),
    ],
)
def test_picture_refusals(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "x.png")


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions save, kept for inspection."""
    from spikeloop.quant import plots

    kept = []
    save = plots._save

    def keep(fig, path, title):
        kept.append(fig)
        return save(fig, path, title)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _reliability_case():
    """Fifteen bins: one of 1, 2 and 3 samples, the rest of 40; accuracy above and below confidence."""
    from spikeloop.metrics import Reliability

    edges = np.linspace(0, 1, 16)
    counts = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 40, 40, 40, 40, 40, 40])
    conf = np.where(counts > 0, edges[:-1] + 1 / 30, np.nan)
    acc = np.where(counts > 0, np.clip(conf + np.array([0] * 6 + [0.4, -0.3, 0.2, -0.1, 0.1, -0.05, 0.05, 0, 0.02]),
                                       0, 1), np.nan)
    return Reliability(edges, counts, conf, acc)


def test_reliability_draws_nothing_over_a_bar_and_every_colour_in_the_legend(tmp_path, figures):
    from matplotlib.colors import to_hex
    from matplotlib.patches import Rectangle

    reliability_diagram(_reliability_case(), tmp_path / "rel.png", ece=0.123, few=4)
    ax = figures[0].axes[0]
    bars = sorted((p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0), key=lambda p: p.get_x())
    assert len(bars) == 9
    boxes = [p.get_bbox() for p in bars]
    for i, a in enumerate(boxes):  # no filled area over another: no blended colour
        for b in boxes[i + 1:]:
            overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
            assert overlap < 1e-9 or min(a.y1, b.y1) <= max(a.y0, b.y0)
    legend = ax.get_legend()
    legend_colours = {to_hex(h.get_facecolor()) for h in legend.legend_handles if hasattr(h, "get_hatch")}
    assert {to_hex(p.get_facecolor()) for p in bars} <= legend_colours
    assert all(p.get_alpha() in (None, 1) for p in bars)  # opaque: what the legend shows is what is drawn
    pale = {to_hex(p.get_facecolor()) for p, n in zip(bars, [1, 2, 3] + [40] * 6) if n < 4}
    full = {to_hex(p.get_facecolor()) for p, n in zip(bars, [1, 2, 3] + [40] * 6) if n >= 4}
    assert len(pale) == len(full) == 1 and pale != full  # bins of fewer than `few` samples stand apart
    assert "< 4 samples" in " ".join(t.get_text() for t in legend.get_texts())
    assert legend.get_title().get_text() == "ECE = 0.123"


def test_reliability_ece_sits_above_the_bars(tmp_path, figures):
    reliability_diagram(_reliability_case(), tmp_path / "rel.png", ece=0.05)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures[0]
    ax = fig.axes[0]
    FigureCanvasAgg(fig).draw()  # the saved figure is closed: lay it out again to measure it
    renderer = fig.canvas.get_renderer()
    title = ax.get_legend().get_title().get_window_extent(renderer)
    assert title.y0 >= ax.get_window_extent(renderer).y1  # outside the plotting area: on no bar


def test_reliability_counts_written_per_bin(tmp_path, figures):
    reliability_diagram(_reliability_case(), tmp_path / "rel.png")
    axn = figures[0].axes[1]
    assert [t.get_text() for t in axn.texts] == ["1", "2", "3"] + ["40"] * 6
    assert axn.get_yscale() == "log"
    assert figures[0].axes[0].get_legend().get_title().get_text() == ""  # no ECE given, none written


def test_rate_means_have_four_digits(tmp_path, figures):
    rate_histogram([("a", np.array([0.27014, 0.0])), ("b", np.array([0.27021]))], tmp_path / "r.png")
    texts = [t.get_text() for ax in figures[0].axes for t in ax.texts]
    assert texts == ["mean 0.1351\nsilent 1", "mean 0.2702\nsilent 0"]


def test_raster_panel_note(tmp_path, figures):
    spikes = np.zeros((5, 3), bool)
    spike_raster([("input", spikes), ("readout", spikes, "the class comes from the membranes")], tmp_path / "x.png")
    notes = [t.get_text() for t in figures[0].axes[1].texts]
    assert "the class comes from the membranes" in notes
    assert len(figures[0].axes[0].texts) == 1  # no note: only the rate


def test_reliability_refuses_a_bad_few(tmp_path):
    with pytest.raises(ValueError, match="few must be a positive integer, got 0"):
        reliability_diagram(_reliability_case(), tmp_path / "x.png", few=0)
