"""Gateware throughput: cycles per timestep and synaptic ops per cycle, measured against the model.

    python bench/bench_gateware.py                  # 784-256-128-10 at several (P, C), densities 1 .. 0
    python bench/bench_gateware.py --quick          # two configurations, three densities
    python bench/bench_gateware.py --json build/bench/gateware.json

Each configuration runs on Amaranth's simulator (`spikeloop.rtl.throughput.measure`): input
offered at full rate, output always taken, every neuron firing (so layers 1.. see dense input,
their worst case) and layer 0 fed random spikes of the given density. "measured" is the spacing of
output timesteps in steady state, "model" the formula of docs/gateware.md on the same spikes
(the slowest stage per timestep, averaged: exact when one stage leads at every timestep, else an
upper bound, with "lower" the slowest stage's average as the lower bound), "E[model]" the formula
with the expected number of nonzero chunks. Synaptic ops/cycle counts
every synapse of the network per timestep (on sparse input: the effective rate).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spikeloop.config import DEFAULT_SIZES, CoreConfig
from spikeloop.rtl import throughput

SIZES = DEFAULT_SIZES
#: (lanes per layer, chunk per layer) of 784-256-128-10.
CONFIGS = [
    ([8, 8, 10], [32, 32, 32]),
    ([16, 16, 10], [64, 64, 64]),  # the default build (`make verilog`)
    ([32, 16, 10], [112, 64, 64]),
    ([32, 16, 10], [160, 64, 64]),
    ([32, 16, 10], [196, 64, 64]),
    ([26, 4, 1], [196, 256, 32]),  # the largest that fits the xc7z020 (`spikeloop estimate --largest`)
]
QUICK = CONFIGS[1:2] + CONFIGS[-1:]
DENSITIES = (1.0, 0.2, 0.05, 0.01, 0.0)
#: Densities also run with layers 1.. silent (every neuron below threshold): sparse everywhere.
EMPTY_DEEPER = (0.01, 0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two configurations, densities 1, 0.05, 0")
    parser.add_argument("--steps", type=int, default=24, help="timesteps per density (the first quarter is warm-up)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    configs = QUICK if args.quick else CONFIGS
    densities = (1.0, 0.05, 0.0) if args.quick else DENSITIES
    runs = [("dense", densities), ("empty", EMPTY_DEEPER[-1:] if args.quick else EMPTY_DEEPER)]
    rows = []
    print(f"network {'-'.join(map(str, SIZES))}, 32-bit bus; weight bits read per clock = sum of P*C "
          f"(the xc7z020's BRAM gives ~10,000)")
    print("density: of layer 0's input; layers 1.. see dense input (every neuron fires) or none (none fires)")
    print(f"{'P':>10} {'C':>12} {'bits/clk':>8} {'density':>7} {'layers 1..':>10} {'measured':>9} {'model':>7} "
          f"{'lower':>7} {'E[model]':>8} {'ops/cycle':>9} {'sim s':>6}")
    for lanes, chunk in configs:
        config = CoreConfig.build(SIZES, lanes=lanes, chunk=chunk)
        bits = sum(layer.lanes * layer.chunk for layer in config.layers)
        for deeper, run_densities in runs:
            start = time.monotonic()
            results = throughput.measure(config, run_densities, steps=args.steps, deeper=deeper)
            seconds = time.monotonic() - start
            for r in results:
                print(f"{','.join(map(str, lanes)):>10} {','.join(map(str, chunk)):>12} {bits:>8} {r.density:>7g} "
                      f"{deeper:>10} {r.measured:>9.2f} {r.model:>7.2f} {r.lower:>7.2f} {r.expected:>8.2f} "
                      f"{r.ops_per_cycle:>9,.0f} {seconds:>6.0f}", flush=True)
                rows.append(_row(lanes, chunk, bits, deeper, r))
    _report(rows, args.json)
    return 0 if all(r["within_bounds"] for r in rows) else 1


def _row(lanes, chunk, bits, deeper, r) -> dict:
    return {"lanes": lanes, "chunk": chunk, "weight_bits_per_clock": bits, "density": r.density, "deeper": deeper,
            "cycles_measured": r.measured, "cycles_model": r.model, "cycles_lower": r.lower,
            "cycles_expected": r.expected, "ops_per_cycle": r.ops_per_cycle,
            "within_bounds": r.lower - 1e-9 <= r.measured <= r.model + 1e-9,
            "exact": abs(r.measured - r.model) < 1e-9}


def _report(rows, json_path) -> None:
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(rows, indent=1))
    bad = [r for r in rows if not r["within_bounds"]]
    if bad:
        print(f"{len(bad)} measurement(s) outside the model's bounds: {bad}", file=sys.stderr)
    else:
        exact = sum(r["exact"] for r in rows)
        print(f"every measurement lies within the model's bounds; {exact} of {len(rows)} equal the model exactly")


if __name__ == "__main__":
    raise SystemExit(main())
