"""Pictures a user can open (PNG, matplotlib's Agg backend, imported only when drawing).

Spike rasters, membrane traces, firing-rate histograms, training curves, reliability
diagrams, the learning curves of closed-loop training, and continual learning's accuracy matrices
and per-task curves. Every function takes plain numpy data
(no torch), writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, title: str) -> Path:
    plt = _pyplot()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _check_panels(panels, what: str, ndim: int) -> list:
    panels = list(panels)
    if not panels:
        raise ValueError(f"{what}: no panels to draw")
    for name, arr, *_ in panels:
        if np.ndim(arr) != ndim:
            raise ValueError(f"{what}: panel {name!r} has shape {np.shape(arr)}, expected {ndim} dimensions")
    return panels


def spike_raster(panels: list[tuple], path, *, title: str = "") -> Path:
    """Save a raster PNG: one panel per (name, bool spikes [T, n]) stacked vertically, time on x. A
    third element of a panel is a note written above it on the left (e.g. that a readout layer's
    class comes from its membranes, not from its spikes)."""
    from matplotlib.ticker import MaxNLocator

    panels = _check_panels(panels, "spike_raster", 2)
    plt = _pyplot()
    heights = [max(1.0, min(3.0, np.shape(s)[1] / 64)) for _, s, *_ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.2 + 1.4 * sum(heights)), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, spikes, *note) in zip(axes[:, 0], panels):
        spikes = np.asarray(spikes)
        if spikes.shape[0] <= 64:  # few timesteps: one cell per (timestep, neuron)
            ax.imshow(spikes.T, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest", origin="lower")
        else:
            t, n = np.nonzero(spikes)
            ax.scatter(t, n, s=1.5, marker="|", color="black", linewidths=0.6)
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{name}\n({spikes.shape[1]})")
        rate = np.asarray(spikes).mean()
        ax.text(1.0, 1.0, f"{rate:.1%} of neuron-steps", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        if note and note[0]:
            ax.text(0.0, 1.0, note[0], transform=ax.transAxes, ha="left", va="bottom", fontsize=8, color="tab:red")
    axes[-1, 0].set_xlim(-0.5, panels[0][1].shape[0] - 0.5)
    axes[-1, 0].set_xlabel("timestep")
    return _save(fig, path, title)


def membrane_traces(panels: list[tuple], path, *, neurons: int = 4,
                    title: str = "") -> Path:
    """Membrane traces: per (name, pre-reset membranes v' [T, n], thresholds [n] or None) a panel with
    `neurons` neurons' v' over time (those that fire on about half of the steps, or the indices given
    as a fourth element of the panel), their thresholds dashed, spikes as dots."""
    panels = _check_panels(panels, "membrane_traces", 2)
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.0 + 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (name, v, theta, *pick) in zip(axes[:, 0], panels):
        v = np.asarray(v)
        theta = None if theta is None else np.broadcast_to(np.asarray(theta), (v.shape[1],))
        if theta is not None:  # the neurons that fire on about half of the steps show the dynamics best
            count = (v >= theta).sum(0)
            activity = count * (v.shape[0] - count) * (v.shape[0] + 1) + count
        else:
            activity = np.abs(v).sum(0)
        chosen = list(pick[0]) if pick else np.argsort(-activity, kind="stable")[:neurons]
        for j, color in zip(chosen, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
            ax.step(np.arange(v.shape[0]), v[:, j], where="mid", color=color, lw=1.2, label=f"neuron {j}")
            if theta is not None:
                ax.axhline(theta[j], color=color, lw=0.8, ls="--")
                fired = np.flatnonzero(v[:, j] >= theta[j])
                ax.plot(fired, v[fired, j], "o", color=color, ms=3)
        ax.set_ylabel(f"{name}\nv'")
        ax.legend(loc="upper left", fontsize=7, ncol=len(chosen))
    axes[-1, 0].set_xlabel("timestep (dashed: thresholds, dots: spikes)")
    return _save(fig, path, title)


def rate_histogram(panels: list[tuple[str, np.ndarray]], path, *, bins: int = 20, title: str = "") -> Path:
    """Firing-rate histograms: per (name, rates [n] in spikes per timestep) one panel, side by side;
    silent neurons are counted in the annotation."""
    panels = _check_panels(panels, "rate_histogram", 1)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3), squeeze=False)
    for ax, (name, rates) in zip(axes[0], panels):
        rates = np.asarray(rates, np.float64)
        ax.hist(rates, bins=np.linspace(0, 1, bins + 1), color="tab:blue", edgecolor="white")
        ax.set_xlabel("spikes per timestep")
        ax.set_title(f"{name} ({rates.size})", fontsize=9)
        ax.text(0.98, 0.95, f"mean {rates.mean():.4f}\nsilent {int((rates == 0).sum())}", transform=ax.transAxes,
                ha="right", va="top", fontsize=8)
    axes[0, 0].set_ylabel("neurons")
    return _save(fig, path, title)


def training_curves(history: Sequence[dict], path, *, test_accuracy: float | None = None, title: str = "") -> Path:
    """Loss and training accuracy per epoch (history: dicts with 'epoch', 'loss', 'train_accuracy');
    the final test accuracy as a marker when given."""
    if not history:
        raise ValueError("training_curves: the history is empty")
    plt = _pyplot()
    epochs = [h["epoch"] + 1 for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(epochs, [h["loss"] for h in history], "-o", ms=3)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.plot(epochs, [h["train_accuracy"] for h in history], "-o", ms=3, label="training (while learning)")
    if test_accuracy is not None:
        ax2.plot([epochs[-1]], [test_accuracy], "*", ms=12, color="tab:red",
                 label=f"test, integer model {test_accuracy:.1%}")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1.02)
    ax2.legend(loc="lower right", fontsize=8)
    return _save(fig, path, title)


#: The bars of bins with few samples: tab:blue, pale.
_PALE_BLUE = "#c6dbef"


def reliability_diagram(reliability, path, *, ece: float | None = None, few: int = 10, title: str = "") -> Path:
    """Reliability diagram from per-bin statistics (anything with ``edges``, ``counts``,
    ``confidence``, ``accuracy``, e.g. `spikeloop.metrics.reliability`): accuracy per
    confidence bin (pale hatched bars for bins of fewer than `few` samples, whose accuracy says
    little) against the diagonal, each bin's mean confidence as a red tick joined to the bar's top
    by a red line (the gap; nothing is drawn over a bar, so no colour appears that the legend does
    not show), the ECE above the plot, and the sample count of every bin below (log scale, numbers
    written on the bars)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    edges = np.asarray(reliability.edges, np.float64)
    counts = np.asarray(reliability.counts)
    conf = np.asarray(reliability.confidence, np.float64)
    acc = np.asarray(reliability.accuracy, np.float64)
    if not (len(edges) == len(counts) + 1 == len(conf) + 1 == len(acc) + 1):
        raise ValueError(f"reliability_diagram: {len(edges)} edges for {len(counts)} bins")
    if isinstance(few, bool) or not isinstance(few, (int, np.integer)) or few < 1:
        raise ValueError(f"reliability_diagram: few must be a positive integer, got {few!r}")
    plt = _pyplot()
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(4.8, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = np.diff(edges)
    centers = edges[:-1] + width / 2
    solid = counts >= few
    sparse = (counts > 0) & ~solid
    ax.bar(centers[solid], acc[solid], width=width[solid], color="tab:blue", edgecolor="white")
    ax.bar(centers[sparse], acc[sparse], width=width[sparse], color=_PALE_BLUE, hatch="///", edgecolor="tab:blue",
           linewidth=0.5)
    filled = counts > 0
    ax.vlines(centers[filled], acc[filled], conf[filled], color="tab:red", lw=1.5)
    ax.hlines(conf[filled], edges[:-1][filled], edges[1:][filled], color="tab:red", lw=2)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    handles = [Patch(color="tab:blue", label="accuracy"),
               Line2D([], [], color="tab:red", lw=2, label="mean confidence; stem: the gap"),
               Line2D([], [], color="black", ls="--", lw=1, label="perfect calibration")]
    if sparse.any():
        handles.insert(1, Patch(facecolor=_PALE_BLUE, hatch="///", edgecolor="tab:blue", linewidth=0.5,
                                label=f"accuracy, < {few} samples"))
    legend_title = None if ece is None else f"ECE = {ece:.3f}"
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=2, fontsize=7, frameon=False,
              title=legend_title, title_fontsize=9, borderaxespad=0)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    axn.bar(centers[filled], counts[filled], width=width[filled], color="gray", edgecolor="white")
    for x, n in zip(centers[filled], counts[filled]):
        axn.text(x, n, str(int(n)), ha="center", va="bottom", fontsize=6)
    axn.set_yscale("log")
    axn.set_ylim(0.7, max(10.0, float(counts.max()) * 4))
    axn.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axn.set_xlabel("confidence (top-label probability)")
    axn.set_ylabel("samples")
    return _save(fig, path, title)


def learning_curve(report: dict, path, *, title: str = "") -> Path:
    """Draw mean, max and min return of the population and the centre's return per generation.

    `report`: the dict written to learning.json (`spikeloop.host.evolve.save`), with `curve` rows
    holding `generation`, `mean`, `max`, `min`, `centre`. Returns the PNG's path.
    """
    curve = report.get("curve") or []
    if not curve:
        raise ValueError("the report holds no learning curve (no generation finished)")
    plt = _pyplot()
    gen = [row["generation"] for row in curve]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.fill_between(gen, [row["min"] for row in curve], [row["max"] for row in curve], alpha=0.2,
                    label="population min-max")
    ax.plot(gen, [row["mean"] for row in curve], label="population mean")
    ax.plot(gen, [row["max"] for row in curve], linewidth=0.8, label="population max")
    ax.plot(gen, [row["centre"] for row in curve], "k.-", label="centre of the search")
    kept = report.get("kept_generation")
    if kept is not None and 0 <= kept - gen[0] < len(curve):
        ax.plot([kept], [curve[kept - gen[0]]["centre"]], "r*", markersize=12, label="the policy kept")
    evaluation = report.get("evaluation")
    if evaluation:
        ax.axhline(evaluation["mean_steps"], color="g", linestyle="--",
                   label=f"evaluation: {evaluation['successes']}/{evaluation['episodes']} balanced")
    ax.set_xlabel("generation")
    ax.set_ylabel("return (steps balanced)")
    ax.set_ylim(0, 520)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or f"{report.get('task', '')}: evolution strategies with the core in the loop", fontsize=9)
    return _save(fig, path, "")


def _check_matrices(panels, what: str) -> list:
    panels = list(panels)
    if not panels:
        raise ValueError(f"{what}: no panels to draw")
    for name, m in panels:
        m = np.asarray(m, np.float64)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
            raise ValueError(f"{what}: panel {name!r} has shape {m.shape}, expected a square accuracy matrix")
    return [(name, np.asarray(m, np.float64)) for name, m in panels]


def accuracy_matrices(panels: list[tuple[str, np.ndarray]], path, *, title: str = "") -> Path:
    """Heat maps of continual-learning accuracy matrices, one panel per (name, matrix [T, T]): row i after
    task i was learnt, column j the accuracy on task j (entries above the diagonal, not yet learnt, blank);
    every cell written as a percentage."""
    panels = _check_matrices(panels, "accuracy_matrices")
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.1 * rows + 0.4), squeeze=False)
    image = None
    for ax, (name, m) in zip(axes.flat, panels):
        t = m.shape[0]
        shown = np.where(np.tril(np.ones((t, t), bool)), m, np.nan)
        image = ax.imshow(shown, vmin=0, vmax=1, cmap="viridis")
        for i in range(t):
            for j in range(i + 1):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] < 0.6 else "black")
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
        ax.set_xlabel("tested on task")
        ax.set_title(name, fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("after learning task")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="accuracy")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def task_curves(panels: list[tuple[str, np.ndarray]], path, *, title: str = "") -> Path:
    """Per-task accuracy curves of continual learning, one panel per (name, matrix [T, T]): for each task j a
    line of its accuracy after each task i >= j, so forgetting shows as a line going down."""
    panels = _check_matrices(panels, "task_curves")
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows + 0.4), squeeze=False, sharey=True)
    for ax, (name, m) in zip(axes.flat, panels):
        t = m.shape[0]
        for j in range(t):
            ax.plot(range(j, t), m[j:, j], "-o", ms=3, label=f"task {j}")
        ax.set_xticks(range(t))
        ax.set_xlabel("after learning task")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(name, fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path, title)
