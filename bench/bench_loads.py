"""Parameter loads: one AXI-Lite write per word (MMIO) against one load frame by stream (DMA).

    python bench/bench_loads.py                        # the default core, 3 repetitions, sim and pynq
    python bench/bench_loads.py --reps 1 --json build/bench/loads.json

The default core (`spikeloop.config.DEFAULT_CORE`: 784-256-128-10, lanes 16, chunk 64) and a
random network (seed 0). For each way in (`sim`: the simulated board; `pynq`: pynq's own MMIO and
AXI DMA driver over the Zynq/AXI-DMA model of `spikeloop.sim.zynq`), `Core.load(via="mmio")` and
`Core.load(via="stream")`, both without read-back (`verify=False`: what a reload in a training
loop costs): bus transactions (`transport.stats`: register reads and writes, stream transfers;
on pynq also the AXI DMA's register accesses), wall time (median), and the clock cycles the core
takes for the frame.

PYNQ-Z2 estimate (no board here):
- MMIO: one AXI-Lite access from Python per word, about 30 us each (TOOLCHAIN.md), times the
  register accesses of the MMIO load;
- stream: the register accesses of the stream load on the Zynq model (core and DMA registers, the
  DMA model letting 3,000 clock cycles, 30 us at 100 MHz, pass per DMA register access, so its
  polls are about as many as on a board) at 30 us each, plus the frame's bytes at the AXI DMA's
  published MM2S rate, 399.04 MB/s at 100 MHz with the default configuration (Xilinx PG021 v7.1,
  "Performance", Table 2), plus the core's clock cycles for the frame at 100 MHz (counted on the
  simulated board). Conservative: the polls overlap the transfer, which is counted again.
Goals: at least 100x fewer bus transactions than MMIO; under 1 ms per reload on a PYNQ-Z2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from spikeloop import paramstream
from spikeloop.config import DEFAULT_CORE, CoreConfig
from spikeloop.network import Network, random_network
from spikeloop.windows import load_writes

ROOT = Path(__file__).resolve().parents[1]
#: Seconds per AXI-Lite access from Python on a PYNQ-Z2 (TOOLCHAIN.md).
MMIO_SECONDS = 30e-6
#: AXI DMA MM2S throughput, bytes/s: Xilinx PG021 v7.1, "Performance", Table 2 (100 MHz, default configuration).
DMA_MM2S_BYTES_PER_SECOND = 399.04e6
#: The core's clock on the PYNQ-Z2 overlay (FCLK0).
CLOCK_HZ = 100e6
#: Clock cycles the Zynq model lets pass per DMA register access: 30 us at 100 MHz.
CYCLES_PER_DMA_ACCESS = int(MMIO_SECONDS * CLOCK_HZ)


class _CountedDma:
    """Counts the register accesses of the Zynq model's AXI DMA (its `read` and `write`)."""

    def __init__(self, dma_model):
        self.accesses = 0
        read, write = dma_model.read, dma_model.write

        def counted_read(offset):
            self.accesses += 1
            return read(offset)

        def counted_write(offset, value):
            self.accesses += 1
            return write(offset, value)

        dma_model.read, dma_model.write = counted_read, counted_write


def open_core(backend: str, config: CoreConfig, profile: str):
    """(Core, DMA access counter or None) on a fresh simulated board of `profile`."""
    from spikeloop.host import Core
    from spikeloop.sim.board import SimBoard

    board = SimBoard(config, profile=profile)
    if backend == "sim":
        from spikeloop.host.sim_transport import SimTransport

        return Core(SimTransport(board=board)), None
    from spikeloop.host.pynq_transport import PynqTransport, sim_overlay

    overlay = sim_overlay(board, cycles_per_access=CYCLES_PER_DMA_ACCESS)
    counter = _CountedDma(overlay.device.dma_model)
    return Core(PynqTransport(overlay=overlay)), counter


def measure(core, counter, network: Network, via: str) -> dict:
    """One `load(via=)` without read-back: transactions, DMA register accesses, wall time."""
    stats = core.transport.stats
    before = stats.as_dict()
    dma0 = counter.accesses if counter else 0
    t0 = time.perf_counter()
    core.load(network, via=via, verify=False)
    seconds = time.perf_counter() - t0
    out = stats.since(before)
    out["dma_register_accesses"] = (counter.accesses - dma0) if counter else 0
    out["register_accesses"] = out["mmio_reads"] + out["mmio_writes"] + out["dma_register_accesses"]
    out["seconds"] = seconds
    return out


def frame_cycles(config: CoreConfig, network: Network, profile: str) -> int:
    """Clock cycles from the frame's first word to the core's `loading` clear, on the simulated board."""
    from spikeloop import regmap
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.interface import Until

    control, status = regmap.register("CONTROL"), regmap.register("STATUS")
    words = paramstream.bus_words(paramstream.build_frame(config, network), config.bus_width)
    with SimBoard(config, profile=profile) as board:
        board.write(control.offset, control.encode(load_params=1))
        c0 = board.cycles
        board.send(words, last=True)
        board.run(10 * words.size + 1000, Until.SENT)
        while status.decode(board.read(status.offset))["loading"]:
            board.run(1)
            if board.cycles - c0 > 10 * words.size + 1000:
                raise RuntimeError("the core did not finish the load frame")
        cycles = board.cycles - c0
        if status.decode(board.read(status.offset))["err_load"]:
            raise RuntimeError("the core refused the load frame")
    return cycles


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (medians are reported)")
    parser.add_argument("--backends", default="sim,pynq", help="comma-separated: sim, pynq")
    parser.add_argument("--profile", default="fast", help="simulated board build profile (fast or quick)")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench" / "loads.json"))
    args = parser.parse_args(argv)
    config = DEFAULT_CORE
    network = random_network(config.sizes, seed=0)
    frame = paramstream.build_frame(config, network)
    writes = len(load_writes(config, network))
    print(f"core {'-'.join(map(str, config.sizes))}, lanes {config.layers[0].lanes}, chunk {config.layers[0].chunk}; "
          f"{writes} parameter words, frame of {frame.size} words ({4 * frame.size} bytes); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    cycles = frame_cycles(config, network, args.profile)
    results: dict[str, dict] = {}
    for backend in args.backends.split(","):
        core, counter = open_core(backend, config, args.profile)
        with core:
            for via in ("mmio", "stream"):
                samples = [measure(core, counter, network, via) for _ in range(max(1, args.reps))]
                last = dict(samples[-1])
                last["seconds"] = statistics.median(s["seconds"] for s in samples)
                results[f"{backend}/{via}"] = last
                print(f"{backend:5s} {via:6s}: {last['transactions']:6d} transactions, {last['seconds'] * 1e3:9.1f} ms",
                      flush=True)

    # PYNQ-Z2 estimate
    estimate = {}
    mmio = results.get("pynq/mmio") or results.get("sim/mmio")
    stream = results.get("pynq/stream") or results.get("sim/stream")
    estimate["mmio_seconds"] = mmio["register_accesses"] * MMIO_SECONDS
    dma_seconds = 4 * frame.size / DMA_MM2S_BYTES_PER_SECOND
    estimate["stream_seconds"] = (stream["register_accesses"] * MMIO_SECONDS + dma_seconds + cycles / CLOCK_HZ)
    estimate.update({"stream_register_accesses": stream["register_accesses"], "dma_seconds": dma_seconds,
                     "core_cycles": cycles, "core_seconds": cycles / CLOCK_HZ,
                     "mmio_register_accesses": mmio["register_accesses"]})

    print()
    print("| way | load | bus transactions | MMIO reads | MMIO writes | stream transfers | DMA register accesses "
          "| wall time (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        backend, via = key.split("/")
        print(f"| {backend} | {via} | {r['transactions']} | {r['mmio_reads']} | {r['mmio_writes']} | "
              f"{r['stream_transfers']} | {r['dma_register_accesses']} | {r['seconds'] * 1e3:.1f} |")
    print()
    ratios = {}
    for backend in args.backends.split(","):
        m, s = results[f"{backend}/mmio"], results[f"{backend}/stream"]
        ratios[backend] = {"transactions": m["transactions"] / s["transactions"],
                           "register_accesses": m["register_accesses"] / s["register_accesses"],
                           "wall_time": m["seconds"] / s["seconds"]}
        print(f"{backend}: MMIO / stream = {ratios[backend]['transactions']:.0f}x bus transactions "
              f"({ratios[backend]['register_accesses']:.0f}x register accesses counting the DMA's), "
              f"{ratios[backend]['wall_time']:.1f}x wall time")
    print(f"PYNQ-Z2 estimate: MMIO {estimate['mmio_register_accesses']} accesses x 30 us = "
          f"{estimate['mmio_seconds'] * 1e3:.1f} ms; stream {estimate['stream_register_accesses']} accesses x 30 us "
          f"+ {4 * frame.size} bytes at 399.04 MB/s ({dma_seconds * 1e6:.0f} us, PG021) + {cycles} cycles at 100 MHz "
          f"({cycles / CLOCK_HZ * 1e6:.0f} us) = {estimate['stream_seconds'] * 1e3:.3f} ms per reload "
          f"({estimate['mmio_seconds'] / estimate['stream_seconds']:.0f}x)")
    goals = {"100x_fewer_transactions": all(r["transactions"] >= 100 for r in ratios.values()),
             "under_1ms_per_reload_on_pynq_z2": estimate["stream_seconds"] < 1e-3}
    print(f"goals: {goals}")
    out = {"config": config.params(), "network_seed": 0, "parameter_words": writes, "frame_words": int(frame.size),
           "reps": args.reps, "profile": args.profile, "results": results, "ratios": ratios,
           "pynq_z2_estimate": estimate, "goals": goals,
           "sources": {"mmio_seconds_per_access": "TOOLCHAIN.md (PYNQ-Z2, Python MMIO)",
                       "dma_mm2s_bytes_per_second": "Xilinx PG021 v7.1, Performance, Table 2 (MM2S, 100 MHz)"}}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"written {path}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
