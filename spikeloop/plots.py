"""Pictures a user can open: spike rasters (matplotlib, imported only when drawing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def spike_raster(panels: list[tuple[str, np.ndarray]], path, *, title: str = "") -> Path:
    """Save a raster PNG: one panel per (name, bool spikes [T, n]) stacked vertically, time on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    heights = [max(1.0, min(3.0, s.shape[1] / 64)) for _, s in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.2 + 1.4 * sum(heights)), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, spikes) in zip(axes[:, 0], panels):
        t, n = np.nonzero(np.asarray(spikes))
        ax.scatter(t, n, s=1.5, marker="|", color="black", linewidths=0.6)
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{name}\n({spikes.shape[1]})")
        rate = np.asarray(spikes).mean()
        ax.text(1.0, 1.0, f"{rate:.1%} of neuron-steps", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
    axes[-1, 0].set_xlim(-0.5, panels[0][1].shape[0] - 0.5)
    axes[-1, 0].set_xlabel("timestep")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
