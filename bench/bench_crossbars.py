"""Crossbar kinds across input densities: the default (dense), an event-driven build and the automatic one.

    python bench/bench_crossbars.py                   # trains 784-256-128-10 on MNIST-5k first (about 2 min)
    python bench/bench_crossbars.py --network net.npz # an exported image (its measured densities)
    python bench/bench_crossbars.py --analytic        # the analytic LUT/FF/BRAM instead of Yosys (seconds)
    python bench/bench_crossbars.py --board           # also the mnist row measured on the simulated board
    python bench/bench_crossbars.py --json build/bench/crossbars.json

Configurations of 784-256-128-10 on the xc7z020:
- "dense": today's default build (lanes 16,16,10, chunk 64), the baseline of every ratio;
- "event": the default's lanes, every layer event-driven (events 64,16,8: banks of 13, 16 and 16 rows);
- "auto": `spikeloop estimate --auto` (`boards.estimate.automatic`) at each row's densities, within the
  default build's analytic LUTs.
Rows: every layer's input at density 1 %, 5 %, 10 %, 20 %, 50 %, 100 % (independent bits), and "mnist":
the trained network on rate-coded MNIST-5k test digits, each layer fed what the layer before it fired
(the golden model's spikes). Cycles per timestep are the throughput model of docs/gateware.md
(`rtl.throughput.core_cycles`) on those very spikes, averaged over the timesteps: exact when one stage
leads, else an upper bound: the one-timestep buffers between layers let a slow timestep of one layer overlap
a fast one of the next, down to the slowest layer's mean ("lower"). With `--board`, the mnist row also runs
on the simulated board (the Verilated core, "quick" profile) with the trained network's widths: cycles from
its first input word to its last output word over the test digits streamed back to back, the output held
equal to the golden model word for word. Effective synaptic ops per cycle: the network's 234,752 synapses
over the cycles. Resources: Yosys `synth_xilinx` (cached), or the analytic model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from spikeloop import golden
from spikeloop.boards import estimate
from spikeloop.boards.flow import config_args
from spikeloop.config import DEFAULT_CORE, DEFAULT_SIZES, CoreConfig, max_timestep_cycles
from spikeloop.network import Network
from spikeloop.rtl import throughput

DENSITIES = (0.01, 0.05, 0.10, 0.20, 0.50, 1.00)
EVENT = CoreConfig.build(DEFAULT_SIZES, lanes=[16, 16, 10], events=[64, 16, 8])
STEPS = 2000  # timesteps of random spikes per density
SEED = 2026


def mnist_network(seed: int = 0, epochs: int = 6):
    """(network with its measured densities, rate-coded MNIST-5k test spikes [N, T, 784]): trained here."""
    from spikeloop.quant.train import TrainConfig, encode_test, run

    cfg = TrainConfig(dataset="mnist5k", hidden=(256, 128), epochs=epochs, seed=seed)
    done = run(cfg, progress=False)
    print(f"trained 784-256-128-10 on MNIST-5k: test accuracy {done.summary['accuracy']:.3f}", flush=True)
    return done.network, encode_test(cfg, done.result.data.x_test)


def mnist_test_spikes(seed: int = 0) -> np.ndarray:
    """Rate-coded MNIST-5k test digits as training encodes them (for a given --network)."""
    from spikeloop.quant.data import load_mnist5k
    from spikeloop.quant.train import TrainConfig, encode_test

    cfg = TrainConfig(dataset="mnist5k", hidden=(256, 128), seed=seed)
    return encode_test(cfg, load_mnist5k(seed=seed).x_test)


def layer_inputs(network: Network, spikes: np.ndarray) -> list[np.ndarray]:
    """Each layer's input spikes [timesteps, n_in] over all samples: the data, then what each layer fired."""
    trace = golden.run(network, spikes, record=True)
    inputs = [spikes] + [np.asarray(layer.z) for layer in trace.layers[:-1]]
    return [x.reshape(-1, x.shape[-1]).astype(bool) for x in inputs]


def random_inputs(density: float, rng) -> list[np.ndarray]:
    """Independent input bits of `density` for every layer."""
    return [rng.random((STEPS, n)) < density for n in DEFAULT_SIZES[:-1]]


def cycles(config: CoreConfig, inputs) -> tuple[float, float]:
    """(mean over timesteps of the slowest stage, the slowest stage's mean): the model's cycles per timestep of
    `config` on each layer's input spikes, its upper and lower bound."""
    z = [throughput.nonzero_chunks(layer, x) for layer, x in zip(config.layers, inputs)]
    stages = throughput.stage_cycles(config, z)
    return float(stages.max(axis=0).mean()), float(stages.mean(axis=1).max())


def board_cycles(config: CoreConfig, network: Network, spikes: np.ndarray) -> float:
    """Cycles per timestep of `config`'s kinds and lanes, built for `network`'s widths, on the simulated board:
    `spikes` [N, T, n_in] streamed back to back at full rate, the output checked against the golden model."""
    from spikeloop.sim.board import SimBoard, Until
    from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes
    from spikeloop.windows import load_writes

    built = CoreConfig.for_network(network, lanes=[layer.lanes for layer in config.layers],
                                   chunk=[layer.chunk for layer in config.layers],
                                   events=[layer.events for layer in config.layers])
    flat = spikes.reshape(-1, spikes.shape[-1]).astype(bool)
    board = SimBoard(built, profile="quick")
    try:
        board.write_many(*zip(*load_writes(built, network)))
        n_out = len(flat) * output_words_per_timestep(built)
        board.arm(n_out)
        board.send(pack_spikes(flat, built.bus_width))
        start = board.cycles
        board.run(len(flat) * max_timestep_cycles(built), Until.RECEIVED | Until.SENT)
        taken = board.cycles - start
        out = board.take()
    finally:
        board.close()
    trace = golden.run(network, flat)
    want = pack_output(trace.spikes, None, built)
    if len(out) != n_out or not np.array_equal(out, want):
        raise SystemExit(f"the simulated board's output differs from the golden model ({len(out)} of {n_out} words)")
    return taken / len(flat)


def resources(config: CoreConfig, analytic: bool) -> dict:
    """LUT/FF/BRAM (RAMB36) of `config`: Yosys (cached) or the analytic model."""
    r = estimate.analytic(config) if analytic else estimate.synthesize(config, "pynq-z2").resources
    return {"lut": round(r.lut), "ff": round(r.ff), "bram": r.bram}


def _layout(config: CoreConfig) -> str:
    """Per layer P x C (dense) or P x E (event-driven), e.g. `16x64 16x64 10x64`."""
    return " ".join(f"{layer.lanes}x{layer.chunk}" + ("e" if layer.events else "") for layer in config.layers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", type=Path, help="a 784-256-128-10 image with densities (default: train one)")
    parser.add_argument("--analytic", action="store_true", help="analytic resources instead of Yosys")
    parser.add_argument("--board", action="store_true", help="also measure the mnist row on the simulated board")
    parser.add_argument("--digits", type=int, default=100, help="MNIST test digits for --board (100)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if args.network:
        network, test = Network.load(args.network), mnist_test_spikes()
    else:
        network, test = mnist_network()
    if network.sizes != tuple(DEFAULT_SIZES) or network.densities is None:
        print(f"the network must be {'-'.join(map(str, DEFAULT_SIZES))} with measured densities", file=sys.stderr)
        return 2
    rng = np.random.default_rng(SEED)
    rows_in = [(f"{d:.0%}", (d,) * 3, random_inputs(d, rng)) for d in DENSITIES]
    mnist = layer_inputs(network, test)
    measured = tuple(float(x.mean()) for x in mnist)
    rows_in.append(("mnist", measured, mnist))
    print(f"MNIST-5k input densities per layer (test digits): {', '.join(f'{d:.4f}' for d in measured)}; "
          f"at export (calibration): {', '.join(f'{d:.4f}' for d in network.mean_densities())}")
    budget = estimate.analytic(DEFAULT_CORE).lut
    synapses = throughput.synapses(DEFAULT_CORE)
    cost = {}
    rows = []
    print(" ".join([f"{'row':>6} {'kind':>6} {'cycles':>8} {'lower':>6} {'board':>6} {'x fewer':>7}",
                    f"{'ops/cycle':>9} {'LUT':>7} {'FF':>7} {'BRAM':>5}  P x C per layer (e: P x E, event-driven)"]))
    for name, dens, inputs in rows_in:
        kinds = {"dense": DEFAULT_CORE, "event": EVENT,
                 "auto": estimate.automatic(DEFAULT_SIZES, network.densities if name == "mnist" else dens)}
        on_board = args.board and name == "mnist"
        base = board_cycles(DEFAULT_CORE, network, test[:args.digits]) if on_board else cycles(DEFAULT_CORE, inputs)[0]
        for kind, config in kinds.items():
            key = json.dumps(config.params(), sort_keys=True)
            if key not in cost:
                cost[key] = resources(config, args.analytic)
            c, lower = cycles(config, inputs)
            board = board_cycles(config, network, test[:args.digits]) if on_board else None
            best = board or c
            row = {"row": name, "densities": [float(np.mean(d)) for d in dens], "kind": kind,
                   "config": config_args(config), "cycles_per_timestep": c, "cycles_lower": lower,
                   "cycles_board": board, "fewer_cycles": base / best, "ops_per_cycle": synapses / best,
                   **cost[key], "lut_ratio": cost[key]["lut"] / budget,
                   "resources": "analytic" if args.analytic else "yosys"}
            rows.append(row)
            print(f"{name:>6} {kind:>6} {c:>8.1f} {lower:>6.1f} {board or 0:>6.1f} {base / best:>7.2f} "
                  f"{synapses / best:>9,.0f} {row['lut']:>7,} {row['ff']:>7,} {row['bram']:>5g}  {_layout(config)}",
                  flush=True)
    default_luts = cost[json.dumps(DEFAULT_CORE.params(), sort_keys=True)]["lut"]
    auto = {r["row"]: r for r in rows if r["kind"] == "auto"}
    print(f"targets: mnist auto {auto['mnist']['fewer_cycles']:.2f}x fewer cycles (>= 3) with {auto['mnist']['lut']:,} "
          f"LUTs against the default's {default_luts:,}; at 5 % {auto['5%']['fewer_cycles']:.2f}x the ops/cycle (>= 5)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
