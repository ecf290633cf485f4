"""Contract v2's options for new networks, measured on digits: which defaults should the trainer take?

    python bench/bench_options.py                       # the demo's settings, seeds 0 and 1
    python bench/bench_options.py --seeds 0 --epochs 5  # quicker
    python bench/bench_options.py --json build/bench/options.json

Per option set (v1's floor with no input shift; "nearest" with input_shift 0, 4, 6; "zero" with
input_shift 6, Loihi's) and seed, two ways of making a network with the trainer's other settings
(`spikeloop.quant.train.TrainConfig`, the digits demo unless told otherwise):

- ``hardware``: trained in hardware mode with these options (`train`), exported (`export`, widths from
  the calibration spikes of `calibration_spikes`) and checked equal to the model on the test split
  (`check`, integer for integer);
- ``float``: trained once per seed in float mode (the real-valued dynamics, which no option changes),
  then exported with these options: what a float simulator's network becomes on the core.

For both: the exported network's test accuracy on the golden model, and its agreement with the float
model (the same parameters, `hardware=False`) on the test split: the fraction of equal spikes of the
hidden layers and of the output layer (every sample, timestep and neuron) and of equal predictions.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from spikeloop import golden
from spikeloop.metrics import readout_scores
from spikeloop.quant.export import check, export
from spikeloop.quant.models import predict
from spikeloop.quant.train import TrainConfig, calibration_spikes, encode_test, train

#: (label, options) measured; the first is contract v1's.
OPTION_SETS = (
    ("v1: floor, k=0", {"decay_round": "floor", "input_shift": 0}),
    ("nearest, k=0", {"decay_round": "nearest", "input_shift": 0}),
    ("nearest, k=4", {"decay_round": "nearest", "input_shift": 4}),
    ("nearest, k=6", {"decay_round": "nearest", "input_shift": 6}),
    ("zero, k=6", {"decay_round": "zero", "input_shift": 6}),
)


@torch.no_grad()
def agreement(model, network, x: np.ndarray) -> dict:
    """Fractions of equal hidden spikes, output spikes and predictions: float model vs the network."""
    out = model(torch.from_numpy(x), hardware=False, weights="mode")
    trace = golden.run(network, x.astype(bool), record=True)
    hidden = [(m.z.numpy() > 0) == g.z for m, g in zip(out.layers[:-1], trace.layers[:-1])]
    last = trace.layers[-1]
    g_pred = predict(readout_scores(last.z, last.v, model.readout))
    return {
        "hidden_spikes": float(np.mean(np.concatenate([h.ravel() for h in hidden]))) if hidden else None,
        "output_spikes": float(np.mean((out.layers[-1].z.numpy() > 0) == last.z)),
        "predictions": float(np.mean(predict(out.scores.numpy()) == g_pred)),
        "g_pred": g_pred,
        "f_pred": predict(out.scores.numpy()),
    }


def measure(model, cfg: TrainConfig, data, x_test: np.ndarray, *, verify: bool) -> dict:
    network, _ = export(model, calibration=calibration_spikes(cfg, data))
    if verify:
        check(model, network, x_test)
    agree = agreement(model, network, x_test)
    acc = float(np.mean(agree.pop("g_pred") == data.y_test))
    float_acc = float(np.mean(agree.pop("f_pred") == data.y_test))
    widths = [[layer.v_bits, layer.u_bits] for layer in network.layers]
    return {"accuracy": acc, "float_accuracy": float_acc, **agree, "widths": widths}


def with_options(model, options: dict):
    """A copy of a model whose layers carry ``options`` (what only the hardware mode and the export read)."""
    out = copy.deepcopy(model)
    for layer in out.layers:
        for key, value in options.items():
            setattr(layer, key, value)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--hidden", type=int, nargs="+", default=list(TrainConfig.hidden))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for seed in args.seeds:
        base = TrainConfig(seed=seed, epochs=args.epochs, hidden=tuple(args.hidden))
        t0 = time.perf_counter()
        floated = train(replace(base, hardware=False), progress=False, evaluate_float=False)
        data = floated.data
        x_test = encode_test(base, data.x_test)
        print(f"seed {seed}: float training {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for label, options in OPTION_SETS:
            cfg = replace(base, **options)
            t0 = time.perf_counter()
            hw = train(cfg, data=data, progress=False, evaluate_float=False)
            row = {"options": label, "seed": seed, "hardware": measure(hw.model, cfg, data, x_test, verify=True),
                   "float": measure(with_options(floated.model, cfg.options()), cfg, data, x_test, verify=True),
                   "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print("| options | seed | trained in | test accuracy (integer) | float model | equal hidden spikes "
          "| equal output spikes | equal predictions |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for mode in ("hardware", "float"):
            m = r[mode]
            print(f"| {r['options']} | {r['seed']} | {mode} mode | {m['accuracy']:.1%} | {m['float_accuracy']:.1%} "
                  f"| {m['hidden_spikes']:.2%} "
                  f"| {m['output_spikes']:.2%} | {m['predictions']:.1%} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
