"""Ensembles of sampled binary networks on a core: samples/s, reloads against compute, and sampling on the core.

    python bench/bench_bayes.py                    # 64-128-10 and 784-128-10, K = 10, batch 64, 2 batches
    python bench/bench_bayes.py --quick            # a tiny run (seconds once its boards are built)
    python bench/bench_bayes.py --json build/bench/bayes.json

Simulated board: `spikeloop.host.ensemble.predict(core, posterior, spikes, how="ensemble", samples=K,
batch_size=B)` on the Verilated core ("fast" profile; lanes 16, chunk 64, membranes: `open_core`'s
defaults) for a digits-size (64-128-10) and an MNIST-size (784-128-10) posterior (a random mode
network, seed 0, P(w = +1) uniform in (0.05, 0.95)) and Poisson input spikes (density 0.2, T = 8):
samples/s, the seconds in loads and in runs, the bus transfers of one load and of one sample's run
(`transport.stats`), and the same prediction from the golden model (`core=None`), which must be equal.

PYNQ-Z2 estimate (no board here), with the costs bench_loads.py and bench_inloop.py use: the
register accesses of one load and of one sample's run counted on pynq's own driver over the
Zynq/AXI-DMA model (`spikeloop.sim.zynq`; core and DMA registers) at about 30 us each from Python
(TOOLCHAIN.md), their stream bytes at the AXI DMA's 399.04 MB/s (Xilinx PG021 v7.1, Table 2), and
the core's clock cycles at 100 MHz (BUSY_CYCLES for a run; for a load, the frame's words, one per
clock). Per batch of B samples and K networks: reload = K loads, compute = K * B runs. "Driver" is
the driver as it is (a stream transfer and a state clear per sample, each with its register
accesses); "one transfer per batch" keeps one run's register accesses per batch and network and
counts the bytes and the core's cycles of every sample (what sending a whole batch as one transfer,
the state cleared in the stream, would leave).

Sampling on the core (not built; the numbers that decide it): each synapse's P(w = +1) stored as
8 bits next to the weights (block RAM mapped by `spikeloop.boards.estimate.memory_map`, the xc7
rules the resource estimate uses), a generator of 8-bit uniforms (xorshift, reproduced by the
golden model), one comparator per synapse resampled per clock (8-bit less-than: 8 LUTs with the
carry chain), R synapses per clock: R = 32 (one weight word per clock through the loader's write
port) or a whole weight row per clock. Resampling all weights takes (weight words) / (R / 32)
clocks plus a CONTROL write and a STATUS poll from the host.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benches, when imported from elsewhere

from bench_inloop import busy_cycles  # noqa: E402
from bench_loads import (  # noqa: E402
    CLOCK_HZ,
    CYCLES_PER_DMA_ACCESS,
    DMA_MM2S_BYTES_PER_SECOND,
    MMIO_SECONDS,
    _CountedDma,
)

ROOT = Path(__file__).resolve().parents[1]
#: The networks measured: name -> sizes.
NETWORKS = {"digits": (64, 128, 10), "mnist": (784, 128, 10)}
QUICK_NETWORKS = {"small": (40, 16, 6)}
#: Batch sizes of the reload-against-compute table, and K.
BATCH_SIZES = (1, 16, 64, 256)
SAMPLES = 10
#: Bits of P(w = +1) stored per synapse for sampling on the core.
PROB_BITS = 8
#: LUTs of one PROB_BITS-bit less-than comparator (xc7: a LUT per bit with the carry chain).
COMPARATOR_LUTS = PROB_BITS
#: LUTs and flip-flops of one xorshift64 generator (64 state bits; three shift-xor stages fold into ~2 LUTs a bit).
GENERATOR_LUTS, GENERATOR_FFS = 128, 64
#: Register accesses from the host to start a resample and see it end (a CONTROL write, a STATUS read).
RESAMPLE_ACCESSES = 2
TIMESTEPS, DENSITY = 8, 0.2


def make_posterior(sizes, seed: int = 0):
    """A random mode network of `sizes` and P(w = +1) uniform in (0.05, 0.95)."""
    from spikeloop.network import random_network
    from spikeloop.posterior import Posterior

    net = random_network(sizes, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return Posterior(net, [rng.uniform(0.05, 0.95, layer.weights.shape) for layer in net.layers], gain=0.5)


def config_for(network):
    """The core `open_core` builds for `network` by default (lanes 16, chunk 64, membranes)."""
    from spikeloop.config import CoreConfig

    return CoreConfig.for_network(network, lanes=16, chunk=64, membranes=True)


def open_board(config, backend: str, profile: str):
    """A fresh board: the Verilated core ("sim") or the golden register model ("golden")."""
    if backend == "sim":
        from spikeloop.sim.board import SimBoard

        return SimBoard(config, profile=profile)
    from spikeloop.sim.golden_board import GoldenBoard

    return GoldenBoard(config)


def measure_ensemble(posterior, spikes, *, backend: str, profile: str, samples: int, batch: int) -> dict:
    """`predict` on a core over `backend`'s board and with the golden model: samples/s, load and run seconds,
    the bus transfers of one load and one sample's run, and whether the two predictions are equal."""
    from spikeloop.host import Core
    from spikeloop.host.ensemble import predict
    from spikeloop.host.sim_transport import BoardTransport

    config = config_for(posterior.network)
    t0 = time.perf_counter()
    board = open_board(config, backend, profile)
    opened = time.perf_counter() - t0
    with Core(BoardTransport(board=board)) as core:
        stats = core.transport.stats
        before = stats.as_dict()
        core.load(posterior.network, verify=False)
        load_bus = stats.since(before)
        before = stats.as_dict()
        core.run(spikes[:1])
        run_bus = stats.since(before)
        p = predict(core, posterior, spikes, how="ensemble", samples=samples, seed=0, batch_size=batch)
    g = predict(None, posterior, spikes, how="ensemble", samples=samples, seed=0, batch_size=batch)
    n = len(spikes)
    return {"backend": backend, "open_seconds": opened, "samples": n, "networks": p.loads,
            "seconds": p.seconds, "samples_per_second": n / p.seconds,
            "load_seconds": float(p.load_seconds.sum()), "run_seconds": float(p.run_seconds.sum()),
            "load_seconds_each": float(p.load_seconds.mean()), "run_seconds_per_sample": float(p.run_seconds.sum())
            / (n * samples), "bus_per_load": load_bus, "bus_per_sample": run_bus,
            "golden_model": {"seconds": g.seconds, "samples_per_second": n / g.seconds},
            "equal_to_golden_model": bool(np.array_equal(p.scores, g.scores) and np.array_equal(p.probs, g.probs))}


def pynq_counts(posterior, spikes, *, backend: str, profile: str, runs: int) -> dict:
    """Per load and per sample's run on pynq's driver over the Zynq model: register accesses (core and DMA),
    stream bytes and the core's clock cycles."""
    from spikeloop.host import Core
    from spikeloop.host.pynq_transport import PynqTransport, sim_overlay
    from spikeloop.paramstream import build_frame

    config = config_for(posterior.network)
    board = open_board(config, backend, profile)
    overlay = sim_overlay(board, cycles_per_access=CYCLES_PER_DMA_ACCESS)
    dma = _CountedDma(overlay.device.dma_model)
    out = {}
    with Core(PynqTransport(overlay=overlay)) as core:
        core.load(posterior.network, verify=False)  # warm: the first load may differ
        for what, act in (("load", lambda: core.load(posterior.network, verify=False)),
                          ("run", lambda: core.run(spikes[:runs]))):
            stats, d0 = core.transport.stats, dma.accesses
            before, c0 = stats.as_dict(), busy_cycles(board) if backend == "sim" else 0
            act()
            bus = stats.since(before)
            cycles = busy_cycles(board) - c0 if backend == "sim" else None
            per = 1 if what == "load" else runs
            out[what] = {"register_accesses": (bus["mmio_reads"] + bus["mmio_writes"] + dma.accesses - d0) / per,
                         "stream_transfers": bus["stream_transfers"] / per,
                         "stream_bytes": (bus["stream_bytes_sent"] + bus["stream_bytes_received"]) / per,
                         "cycles": None if cycles is None else cycles / per}
    from spikeloop.config import max_timestep_cycles

    # a load takes a frame word per clock; a run without a Verilated core is bounded by dense timesteps
    out["load"]["cycles"] = int(build_frame(config, posterior.network).size)
    if out["run"]["cycles"] is None:
        out["run"]["cycles"] = spikes.shape[1] * max_timestep_cycles(config)
        out["run"]["cycles_source"] = "max_timestep_cycles (dense bound)"
    else:
        out["run"]["cycles_source"] = "BUSY_CYCLES on the simulated board"
    for part in out.values():
        part["seconds"] = {"registers": part["register_accesses"] * MMIO_SECONDS,
                           "dma": part["stream_bytes"] / DMA_MM2S_BYTES_PER_SECOND,
                           "core": part["cycles"] / CLOCK_HZ}
        part["total_seconds"] = sum(part["seconds"].values())
    return out


def on_core_sampling(config) -> dict:
    """What sampling the weights on the core from stored 8-bit probabilities would take on the xc7z020, for R =
    32 synapses per clock (a weight word) and R = a weight row per clock."""
    from spikeloop.boards.devices import XC7Z020
    from spikeloop.boards.estimate import memory_map

    synapses = sum(layer.n_in * layer.n_out for layer in config.layers)
    words = sum(layer.weight_window.data_words().size for layer in config.layers)  # weight words, no padding
    row_bits = max(32 * layer.row_words for layer in config.layers)
    out = {"synapses": synapses, "weight_words": words, "prob_bits": PROB_BITS * synapses, "options": {}}
    for name, per_clock in (("word", 32), ("row", row_bits)):
        bram = 0.0
        for layer in config.layers:
            width = PROB_BITS * min(per_clock, 32 * layer.row_words)
            depth = layer.weight_window.data_words().size * 32 // (width // PROB_BITS)
            bram += memory_map(width, max(2, depth)).bram
        generators = math.ceil(PROB_BITS * per_clock / 64)
        luts = per_clock * COMPARATOR_LUTS + generators * GENERATOR_LUTS
        cycles = math.ceil(words * 32 / per_clock) + 8 * len(config.layers)
        out["options"][name] = {"synapses_per_clock": per_clock, "bram36": bram, "bram_share": bram / XC7Z020.bram,
                                "luts": luts, "lut_share": luts / XC7Z020.lut, "ffs": generators * GENERATOR_FFS,
                                "cycles": cycles,
                                "seconds": cycles / CLOCK_HZ + RESAMPLE_ACCESSES * MMIO_SECONDS}
    return out


def per_batch(counts: dict, resample_seconds: float, *, batch: int, samples: int) -> dict:
    """Seconds per batch of `batch` samples with `samples` networks: reloads, compute, and with sampling on the core."""
    load, run = counts["load"], counts["run"]
    reload = samples * load["total_seconds"]
    compute = samples * batch * run["total_seconds"]
    bound = samples * (batch * (run["seconds"]["dma"] + run["seconds"]["core"]) + run["seconds"]["registers"])
    on_core = samples * resample_seconds
    return {"batch": batch, "reload": reload, "compute": compute, "on_core_resample": on_core,
            "reload_share": reload / (reload + compute),
            "speedup_driver": (reload + compute) / (on_core + compute),
            "compute_one_transfer": bound, "reload_share_one_transfer": reload / (reload + bound),
            "speedup_one_transfer": (reload + bound) / (on_core + bound)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run: 40-16-6, K = 3, 2 batches of 4")
    parser.add_argument("--backend", default="sim", choices=("sim", "golden"),
                        help="the board under the driver (golden: no Verilator, cycles from the dense bound)")
    parser.add_argument("--batches", type=int, default=2, help="batches per measurement")
    parser.add_argument("--profile", default=None, help="simulated board build profile (default fast; quick: quick)")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench" / "bayes.json"))
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error(f"--batches {args.batches}: expected a positive integer")
    quick = args.quick
    networks = QUICK_NETWORKS if quick else NETWORKS
    samples, batch = (3, 4) if quick else (SAMPLES, 64)
    profile = args.profile or ("quick" if quick else "fast")
    print(f"ensemble of K = {samples}, batch {batch}, {args.batches} batches, T = {TIMESTEPS}, density {DENSITY}; "
          f"board {args.backend!r} (profile {profile!r}); load average {os.getloadavg()[0]:.1f}", flush=True)

    from spikeloop.config import DEFAULT_CORE

    results, counts = {}, {}
    for name, sizes in networks.items():
        posterior = make_posterior(sizes)
        spikes = np.random.default_rng(1).random((batch * args.batches, TIMESTEPS, sizes[0])) < DENSITY
        results[name] = measure_ensemble(posterior, spikes, backend=args.backend, profile=profile, samples=samples,
                                         batch=batch)
        counts[name] = pynq_counts(posterior, spikes, backend=args.backend, profile=profile, runs=min(batch, 4))
        r = results[name]
        print(f"  {name:6s} {'-'.join(map(str, sizes))}: {r['samples_per_second']:8.1f} samples/s on the board, "
              f"{r['golden_model']['samples_per_second']:8.1f} in the golden model; equal {r['equal_to_golden_model']}",
              flush=True)
    sampling = on_core_sampling(DEFAULT_CORE)
    word = sampling["options"]["word"]

    print(f"\nEnsemble inference on the {args.backend} board (K = {samples}, batch {batch}): where the time goes")
    print("| network | samples/s | golden model samples/s | board slower | loads | load ms each | run ms per "
          "sample and network | load share | load: stream transfers, MMIO r/w | run: stream transfers, MMIO r/w "
          "| equal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        lb, rb = r["bus_per_load"], r["bus_per_sample"]
        share = r["load_seconds"] / (r["load_seconds"] + r["run_seconds"])
        print(f"| {'-'.join(map(str, networks[name]))} | {r['samples_per_second']:.1f} | "
              f"{r['golden_model']['samples_per_second']:.0f} | "
              f"{r['golden_model']['samples_per_second'] / r['samples_per_second']:.0f}x | {r['networks']} | "
              f"{r['load_seconds_each'] * 1e3:.2f} | {r['run_seconds_per_sample'] * 1e3:.2f} | {share:.0%} | "
              f"{lb['stream_transfers']}, {lb['mmio_reads']}/{lb['mmio_writes']} | "
              f"{rb['stream_transfers']}, {rb['mmio_reads']}/{rb['mmio_writes']} | {r['equal_to_golden_model']} |")

    print("\nPYNQ-Z2 estimate per load and per sample's run (counted on pynq's driver over the Zynq model)")
    print("| network | what | register accesses | stream bytes | core cycles | registers x 30 us | bytes at PG021 "
          "| cycles at 100 MHz | total |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, c in counts.items():
        for what in ("load", "run"):
            p, s = c[what], c[what]["seconds"]
            print(f"| {'-'.join(map(str, networks[name]))} | {what} | {p['register_accesses']:.0f} | "
                  f"{p['stream_bytes']:.0f} | {p['cycles']:.0f} | {s['registers'] * 1e6:.0f} us | "
                  f"{s['dma'] * 1e6:.1f} us | {s['core'] * 1e6:.1f} us | {p['total_seconds'] * 1e6:.0f} us |")

    tables = {}
    print(f"\nPYNQ-Z2, per batch with K = {SAMPLES}: reloading by stream against compute, and sampling on the core "
          f"(R = 32 synapses per clock: {word['cycles']} cycles + {RESAMPLE_ACCESSES} register accesses = "
          f"{word['seconds'] * 1e6:.0f} us per network, for the default core)")
    print("| network | batch | reload (ms) | compute, driver (ms) | reload share | on-core resample (ms) | "
          "speed-up, driver | compute, one transfer per batch (ms) | reload share | speed-up, one transfer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, c in counts.items():
        # sampling on the core at R = 32 for this network's weight words
        own = on_core_sampling(config_for(make_posterior(networks[name]).network))["options"]["word"]["seconds"]
        tables[name] = [per_batch(c, own, batch=b, samples=SAMPLES) for b in BATCH_SIZES]
        for row in tables[name]:
            print(f"| {'-'.join(map(str, networks[name]))} | {row['batch']} | {row['reload'] * 1e3:.2f} | "
                  f"{row['compute'] * 1e3:.2f} | {row['reload_share']:.0%} | {row['on_core_resample'] * 1e3:.2f} | "
                  f"{row['speedup_driver']:.2f}x | {row['compute_one_transfer'] * 1e3:.2f} | "
                  f"{row['reload_share_one_transfer']:.0%} | {row['speedup_one_transfer']:.2f}x |")

    print(f"\nSampling on the core, default core {'-'.join(map(str, DEFAULT_CORE.sizes))} on the xc7z020 "
          f"({sampling['synapses']} synapses, {sampling['prob_bits']} bits of {PROB_BITS}-bit probabilities)")
    print("| synapses per clock | BRAM36 for P | of 140 | LUTs (comparators + xorshift) | of 53,200 | FFs | "
          "cycles to resample all | time incl. 2 register accesses |")
    print("|---|---|---|---|---|---|---|---|")
    for o in sampling["options"].values():
        print(f"| {o['synapses_per_clock']} | {o['bram36']:.1f} | {o['bram_share']:.0%} | {o['luts']} | "
              f"{o['lut_share']:.1%} | {o['ffs']} | {o['cycles']} | {o['seconds'] * 1e6:.0f} us |")

    out = {"load_average": os.getloadavg(), "quick": quick, "backend": args.backend, "profile": profile,
           "samples": samples, "batch": batch, "batches": args.batches, "timesteps": TIMESTEPS, "density": DENSITY,
           "networks": {k: list(v) for k, v in networks.items()}, "results": results, "pynq_z2_counts": counts,
           "pynq_z2_per_batch": tables, "on_core_sampling": sampling,
           "sources": {"mmio_seconds_per_access": "TOOLCHAIN.md (PYNQ-Z2, Python MMIO)",
                       "dma_bytes_per_second": "Xilinx PG021 v7.1, Performance, Table 2 (MM2S, 100 MHz), "
                                               "used for both directions",
                       "clock_hz": CLOCK_HZ, "xc7z020": "DS190 (boards/devices.py)"}}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"written {path}")
    return 0 if all(r["equal_to_golden_model"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
