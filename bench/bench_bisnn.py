"""Straight-through against the Bayesian rule trained with Adam and with the BiSNN update, on digits.

    python bench/bench_bisnn.py --seeds 0 1 2 --epochs 8

Prints, per variant and seed, the test accuracy and ECE (20 bins) of the mode network, the
ensemble and the committee (10 samples each), and the mean over the seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spikeloop.quant.train import TrainConfig, train

VARIANTS = {
    "ste adam": {"rule": "ste"},
    "bayes adam": {"rule": "bayes"},
    "bayes bisnn": {"rule": "bayes", "update": "bisnn"},
}


def measure(name: str, seed: int, *, epochs: int, hidden: int, **overrides) -> dict:
    """One training run's test metrics."""
    cfg = TrainConfig(hidden=(hidden,), epochs=epochs, seed=seed, **{**VARIANTS[name], **overrides})
    result = train(cfg, progress=False, evaluate_float=False)
    m = result.metrics
    row = {"variant": name, "seed": seed, "mode_acc": m["accuracy"], "mode_ece": m["ece"],
           "seconds": result.seconds}
    for how in ("ensemble", "committee"):
        if how in m:
            row[f"{how[:3]}_acc"], row[f"{how[:3]}_ece"] = m[how]["accuracy"], m[how]["ece"]
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--kl-weight", type=float, default=None)
    p.add_argument("--tau", type=float, default=None)
    ns = p.parse_args(argv)
    overrides = {k: v for k, v in (("lr", ns.lr), ("kl_weight", ns.kl_weight), ("tau", ns.tau)) if v is not None}
    keys = ("mode_acc", "mode_ece", "ens_acc", "ens_ece", "com_acc", "com_ece")
    print(f"digits, hidden {ns.hidden}, {ns.epochs} epochs, seeds {ns.seeds}, overrides {overrides}")
    print(f"{'variant':<12} {'seed':>4} " + " ".join(f"{k:>9}" for k in keys) + f" {'s':>6}")
    start = time.perf_counter()
    for name in ns.variants:
        rows = [measure(name, seed, epochs=ns.epochs, hidden=ns.hidden, **overrides) for seed in ns.seeds]
        for r in rows:
            print(f"{name:<12} {r['seed']:>4} " + " ".join(f"{r.get(k, float('nan')):>9.4f}" for k in keys)
                  + f" {r['seconds']:>6.1f}", flush=True)
        print(f"{name:<12} {'mean':>4} " + " ".join(f"{np.mean([r.get(k, np.nan) for r in rows]):>9.4f}" for k in keys))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
