"""The learning curve of closed-loop training (`spikeloop loop --learn es`) as a PNG (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path


def plot_learning_curve(report: dict, path, *, title: str = "") -> Path:
    """Draw mean, max and min return of the population and the centre's return per generation.

    `report`: the dict written to learning.json (`spikeloop.host.evolve.save`), with `curve` rows
    holding `generation`, `mean`, `max`, `min`, `centre`. Returns the PNG's path.
    """
    curve = report.get("curve") or []
    if not curve:
        raise ValueError("the report holds no learning curve (no generation finished)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
