"""Training with the core in the loop and the closed loop, measured side by side.

    python bench/bench_inloop.py                  # digits 64-64-10, T=8, batch 32, 24 steps
    python bench/bench_inloop.py --quick          # a tiny run: 64-16-10, 2 steps of 4, short episodes
    python bench/bench_inloop.py --json build/bench/inloop.json

Training (`spikeloop.quant.inloop.fit`): the same model (same initial parameters, the core's
widths chosen once by `export` with 2 spare bits), the same data (scikit-learn digits), batches
and seeds, trained for the same number of steps in software (``core=None``), with the golden board
in the loop and with the simulated board (Verilated, "fast" profile) in the loop: samples/s and
their ratios, and where a step's time goes (`FitResult.timing`, the core's part split into the
transport's calls, i.e. the bus transfers with the simulated core computing, and the rest, the
driver; the load's part into the transport and the export).

Closed loop: `run_loop` with the ES CartPole policy (`spikeloop.host.evolve.PolicyShape`, task
"cartpole", its initial latents: the loop ES runs for every candidate) on the golden and the
simulated board, episodes until 1,000 environment steps: per step the phases' median latency
(encode, pack, core transfer, unpack, decode, env step).

PYNQ-Z2 estimate (no board here): the bus transactions of one closed-loop step and of one
training step (its core runs and its parameter load), counted on the pynq transport over the
Zynq/AXI-DMA model of `spikeloop.sim.zynq` (register reads and writes of the core and of the AXI
DMA, stream transfers and their bytes), times published costs: about 30 us per AXI-Lite access
from Python (TOOLCHAIN.md), the AXI DMA's rate (Xilinx PG021, as in bench_loads.py, for both
directions), plus the core's clock cycles at 100 MHz (its BUSY_CYCLES counter on the simulated
board for runs and steps; for a load, the load frame's cycles as bench_loads.py counts them). The host's
own Python (export, the model's forward and backward) is not in it: on a board without torch the
training runs on a PC, the core reached through PYNQ remote devices.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benches, when imported from elsewhere

from bench_loads import (  # noqa: E402
    CLOCK_HZ,
    CYCLES_PER_DMA_ACCESS,
    DMA_MM2S_BYTES_PER_SECOND,
    MMIO_SECONDS,
    _CountedDma,
    frame_cycles,
)
from bench_sim import _Timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_BACKENDS = ("software", "golden", "sim")
LOOP_BACKENDS = ("golden", "sim")
LOOP_PHASES = ("encode", "pack", "core", "unpack", "decode", "env")


def busy_cycles(board) -> int:
    """The core's BUSY_CYCLES counter (clock cycles with a timestep in flight), read on the board itself
    (not through the transport, so not counted)."""
    from spikeloop import regmap

    lo = board.read(regmap.register("BUSY_CYCLES_LO").offset)  # latches _HI
    return board.read(regmap.register("BUSY_CYCLES_HI").offset) << 32 | lo


class _CoreParts:
    """Wraps a core's `run`, `load` and `step` (on the instance): per method the seconds inside it, the
    seconds inside its transport's calls during it, the bus counts (`transport.stats`) during it and, given
    the simulated `board`, the core's busy cycles (given the Zynq model's `dma` counter, its accesses)."""

    def __init__(self, core, board=None, dma=None):
        self.core, self.board, self.dma = core, board, dma
        self.transport = _Timed(core.transport)
        self.parts = {name: {"calls": 0, "seconds": 0.0, "transport_seconds": 0.0, "counts": {}, "cycles": 0,
                             "dma_register_accesses": 0} for name in ("run", "load", "step")}
        for name in self.parts:
            if hasattr(core, name):
                setattr(core, name, self._wrap(name, getattr(core, name)))

    def _wrap(self, name, fn):
        part, stats = self.parts[name], self.core.transport.stats

        def wrapped(*args, **kwargs):
            before, inside = stats.as_dict(), self.transport.seconds
            c0 = busy_cycles(self.board) if self.board is not None else 0
            d0 = self.dma.accesses if self.dma is not None else 0
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                part["seconds"] += time.perf_counter() - t0
                part["transport_seconds"] += self.transport.seconds - inside
                part["calls"] += 1
                for key, value in stats.since(before).items():
                    part["counts"][key] = part["counts"].get(key, 0) + value
                if self.board is not None:
                    part["cycles"] += busy_cycles(self.board) - c0
                if self.dma is not None:
                    part["dma_register_accesses"] += self.dma.accesses - d0

        return wrapped

    def unwrap(self):
        for name in self.parts:
            self.core.__dict__.pop(name, None)


# ---------------------------------------------------------------------------------------- training
def training_setup(*, hidden: int, steps: int, batch: int):
    """(config, data, initial state, widths, the network of the initial model)."""
    from spikeloop.app.inloop import MARGIN_BITS
    from spikeloop.quant.export import export
    from spikeloop.quant.train import TrainConfig, build_model, calibration_spikes

    cfg = TrainConfig(dataset="digits", hidden=(hidden,), steps=steps, batch_size=batch, epochs=1, seed=0)
    data = cfg.load_data()
    model = build_model(cfg, data.n_in, data.n_classes)
    report = export(model, calibration=calibration_spikes(cfg, data), margin_bits=MARGIN_BITS).report
    widths = [(layer.v_bits, layer.u_bits) for layer in report.layers]
    model.set_widths(widths)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return cfg, data, state, widths, export(model, widths=widths).network


def fresh_model(cfg, data, state, widths):
    """The initial model again (the same parameters for every run)."""
    from spikeloop.quant.train import build_model

    model = build_model(cfg, data.n_in, data.n_classes)
    model.set_widths(widths)
    model.load_state_dict(state)
    return model


def open_training_core(backend: str, network, profile: str):
    """A core with probes on `backend` (golden, sim, or pynq over the Zynq model) and, for sim and pynq,
    its simulated board and (pynq) the AXI DMA access counter."""
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core, open_core

    if backend == "golden":
        return open_core("golden", network, probes=True), None, None
    from spikeloop.sim.board import SimBoard

    config = CoreConfig.for_network(network, lanes=16, chunk=64, membranes=True, probes=True)
    board = SimBoard(config, profile=profile)
    if backend == "sim":
        from spikeloop.host.sim_transport import SimTransport

        return Core(SimTransport(board=board), network=network), board, None
    from spikeloop.host.pynq_transport import PynqTransport, sim_overlay

    overlay = sim_overlay(board, cycles_per_access=CYCLES_PER_DMA_ACCESS)
    counter = _CountedDma(overlay.device.dma_model)
    return Core(PynqTransport(overlay=overlay), network=network), board, counter


def train_once(backend: str, setup, *, max_steps: int, profile: str) -> dict:
    """`fit` for `max_steps` steps on `backend` ("software": core=None); samples/s and the step's parts."""
    from spikeloop.quant.inloop import TIMING_KEYS, fit

    cfg, data, state, widths, network = setup
    model = fresh_model(cfg, data, state, widths)
    core = parts = None
    if backend != "software":
        t0 = time.perf_counter()
        core, board, dma = open_training_core(backend, network, profile)
        opened = time.perf_counter() - t0
        parts = _CoreParts(core, board, dma)
    try:
        done = fit(cfg, data=data, model=model, core=core, widths=widths if core is not None else None,
                   max_steps=max_steps, progress=False)
    finally:
        if core is not None:
            parts.unwrap()
            core.close()
    totals = done.totals
    out = {"steps": done.steps, "samples": totals["samples"], "samples_per_second": totals["samples_per_second"],
           "seconds": {k: totals[k] for k in TIMING_KEYS}, "wall_seconds": done.seconds,
           "final_loss": done.history[-1]["loss"] if done.history else None,
           "parameters": {k: v.detach().numpy().copy() for k, v in done.model.state_dict().items()}}
    if parts is not None:
        out["open_seconds"] = opened
        out["core_parts"] = {name: {k: v for k, v in p.items()} for name, p in parts.parts.items() if p["calls"]}
        run, load = parts.parts["run"], parts.parts["load"]
        out["seconds"]["core_transport"] = run["transport_seconds"]
        # the first load (before step 1) is in fit's "load" total too
        out["seconds"]["load_transport"] = load["transport_seconds"]
    return out


def fractions(result: dict) -> dict[str, float]:
    """The parts of a training step as fractions of its time (core and load split by the transport)."""
    s = result["seconds"]
    total = sum(s[k] for k in ("core", "load", "forward", "backward", "optimizer"))
    rows = {
        "core: transfers (transport calls)": s.get("core_transport", 0.0),
        "core: driver (probe runs, unpacking)": s["core"] - s.get("core_transport", 0.0),
        "load: transfers (transport calls)": s.get("load_transport", 0.0),
        "load: export and driver": s["load"] - s.get("load_transport", 0.0),
        "model forward": s["forward"],
        "backward": s["backward"],
        "optimizer": s["optimizer"],
    }
    return {k: v / total if total > 0 else float("nan") for k, v in rows.items()}


def pynq_training_step(setup, *, profile: str, samples: int) -> dict:
    """Bus transactions and core cycles of one training step on pynq over the Zynq model: `samples` probe runs
    (one batch) and one parameter load."""
    from spikeloop.quant.inloop import core_traces, load_model

    cfg, data, state, widths, network = setup
    model = fresh_model(cfg, data, state, widths)
    core, board, dma = open_training_core("pynq", network, profile)
    try:
        x = cfg.encoder()(data.x_train[:samples], seed=0)
        load_model(core, model, widths)  # warm: the first load of a core may differ
        parts = _CoreParts(core, board, dma)
        core_traces(core, x, len(model.layers))
        load_model(core, model, widths)
        parts.unwrap()
    finally:
        core.close()
    # a load runs no timestep: its cycles are the load frame's, from its first word to `loading` clear
    parts.parts["load"]["cycles"] = frame_cycles(core.config, network, profile)
    return {name: _bus(p) for name, p in parts.parts.items() if p["calls"]}


def _bus(part: dict) -> dict:
    c = part["counts"]
    accesses = c["mmio_reads"] + c["mmio_writes"] + part["dma_register_accesses"]
    nbytes = c["stream_bytes_sent"] + c["stream_bytes_received"]
    est = {"registers": accesses * MMIO_SECONDS, "dma": nbytes / DMA_MM2S_BYTES_PER_SECOND,
           "core": part["cycles"] / CLOCK_HZ}
    return {"calls": part["calls"], "mmio_reads": c["mmio_reads"], "mmio_writes": c["mmio_writes"],
            "dma_register_accesses": part["dma_register_accesses"], "register_accesses": accesses,
            "stream_transfers": c["stream_transfers"], "stream_bytes": nbytes, "cycles": part["cycles"],
            "estimate_seconds": est, "estimate_total_seconds": sum(est.values())}


# ---------------------------------------------------------------------------------------- closed loop
def loop_latency(backend: str, *, steps: int, max_steps: int, profile: str) -> dict:
    """`run_loop` with the ES CartPole policy (initial latents, seed 0) on `backend`, episode after episode
    (seeds 0, 1, ...) until at least `steps` environment steps: per-phase median latency."""
    from spikeloop.host import open_core
    from spikeloop.host.evolve import PolicyShape, make_task_env
    from spikeloop.host.loop import run_loop

    shape = PolicyShape("cartpole")
    network = shape.network(shape.initial(seed=0))
    options = {"profile": profile} if backend == "sim" else {}
    with open_core(backend, network, **shape.geometry, **options) as core:
        env = make_task_env(shape.task)
        latency, seconds, episodes = {p: [] for p in LOOP_PHASES}, 0.0, 0
        while sum(map(len, latency["core"])) < steps:
            result = run_loop(core, env, shape.encoder, shape.decoder, episodes=1, max_steps=max_steps,
                              seed=episodes, progress=False)
            for p in LOOP_PHASES:
                latency[p].append(result.latency[p])
            seconds += result.seconds
            episodes += 1
        env.close()
    latency = {p: np.concatenate(v) for p, v in latency.items()}
    step = sum(latency.values())
    median = {p: float(np.median(latency[p])) * 1e6 for p in LOOP_PHASES}
    return {"steps": int(step.size), "episodes": episodes, "steps_per_second": step.size / seconds,
            "median_us": median, "step_median_us": float(np.median(step)) * 1e6,
            "step_p99_us": float(np.percentile(step, 99)) * 1e6}


def pynq_loop_step(*, steps: int, profile: str) -> dict:
    """Bus transactions and core cycles per closed-loop step (`core.step`) on pynq over the Zynq model."""
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core
    from spikeloop.host.evolve import PolicyShape, make_task_env
    from spikeloop.host.loop import run_loop
    from spikeloop.host.pynq_transport import PynqTransport, sim_overlay
    from spikeloop.sim.board import SimBoard

    shape = PolicyShape("cartpole")
    network = shape.network(shape.initial(seed=0))
    board = SimBoard(CoreConfig.for_network(network, **shape.geometry), profile=profile)
    overlay = sim_overlay(board, cycles_per_access=CYCLES_PER_DMA_ACCESS)
    dma = _CountedDma(overlay.device.dma_model)
    with Core(PynqTransport(overlay=overlay), network=network) as core:
        parts = _CoreParts(core, board, dma)
        result = run_loop(core, make_task_env(shape.task), shape.encoder, shape.decoder, episodes=1,
                          max_steps=steps, seed=0, progress=False, close_env=True)
        parts.unwrap()
    step = _bus(parts.parts["step"])
    n = step["calls"]
    per = {k: step[k] / n for k in ("mmio_reads", "mmio_writes", "dma_register_accesses", "register_accesses",
                                    "stream_transfers", "stream_bytes", "cycles")}
    per["estimate_seconds"] = {k: v / n for k, v in step["estimate_seconds"].items()}
    per["estimate_total_seconds"] = step["estimate_total_seconds"] / n
    per["steps"] = n
    per["env_steps"] = result.total_steps
    return per


# ---------------------------------------------------------------------------------------- report
def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if k != "parameters"}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds once the boards are built)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 24; quick: 2)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions of the training runs (medians reported)")
    parser.add_argument("--profile", default=None, help="simulated board build profile (default fast; quick: quick)")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench" / "inloop.json"))
    args = parser.parse_args(argv)
    quick = args.quick
    hidden, timesteps, batch = (16, 8, 4) if quick else (64, 8, 32)
    max_steps = args.steps if args.steps is not None else (2 if quick else 24)
    profile = args.profile or ("quick" if quick else "fast")
    loop_steps = 20 if quick else 1000
    if max_steps < 1 or args.reps < 1:
        parser.error(f"--steps {max_steps} and --reps {args.reps}: expected positive integers")
    print(f"training: digits 64-{hidden}-10, T={timesteps}, batch {batch}, {max_steps} steps, {args.reps} "
          f"repetition(s); simulated board profile {profile!r}; load average {os.getloadavg()[0]:.1f}", flush=True)

    import torch

    setup = training_setup(hidden=hidden, steps=timesteps, batch=batch)
    runs: dict[str, list] = {b: [] for b in TRAIN_BACKENDS}
    for rep in range(args.reps):
        for backend in TRAIN_BACKENDS:
            runs[backend].append(train_once(backend, setup, max_steps=max_steps, profile=profile))
            r = runs[backend][-1]
            print(f"  {backend:8s} repetition {rep + 1}: {r['samples_per_second']:8.1f} samples/s, loss "
                  f"{r['final_loss']:.4f}", flush=True)
    training = {b: min(rs, key=lambda r: abs(r["samples_per_second"]
                                                - statistics.median(x["samples_per_second"] for x in rs)))
                for b, rs in runs.items()}
    # a faithful core gives exactly the software step's gradients: the parameters after training are equal
    same = {b: all(torch.equal(torch.as_tensor(training[b]["parameters"][k]),
                               torch.as_tensor(training["software"]["parameters"][k]))
                   for k in training["software"]["parameters"]) for b in TRAIN_BACKENDS}
    sw = training["software"]["samples_per_second"]
    ratios = {b: sw / training[b]["samples_per_second"] for b in TRAIN_BACKENDS}
    fracs = {b: fractions(training[b]) for b in TRAIN_BACKENDS}

    loop = {b: loop_latency(b, steps=loop_steps, max_steps=500, profile=profile) for b in LOOP_BACKENDS}
    pynq_train = pynq_training_step(setup, profile=profile, samples=batch)
    pynq_loop = pynq_loop_step(steps=min(loop_steps, 50), profile=profile)

    print("\nTraining: samples/s (the same model, data, batches and steps)")
    print("| training | samples/s | slower than software | parameters equal to software's |")
    print("|---|---|---|---|")
    for b in TRAIN_BACKENDS:
        name = "software (core=None)" if b == "software" else f"{b} board in the loop"
        print(f"| {name} | {training[b]['samples_per_second']:.1f} | {ratios[b]:.2f}x | {same[b]} |")
    print("\nWhere a training step's time goes (fraction of the step)")
    print("| part | " + " | ".join(TRAIN_BACKENDS) + " |")
    print("|---|" + "---|" * len(TRAIN_BACKENDS))
    for row in fracs["sim"]:
        print(f"| {row} | " + " | ".join(f"{fracs[b][row]:.1%}" for b in TRAIN_BACKENDS) + " |")
    print("\nClosed loop, ES CartPole policy (PolicyShape('cartpole')): median latency per environment step (us)")
    print("| backend | steps (episodes) | steps/s | " + " | ".join(LOOP_PHASES) + " | step (median) | step (p99) |")
    print("|---|---|---|" + "---|" * (len(LOOP_PHASES) + 2))
    for b in LOOP_BACKENDS:
        r = loop[b]
        print(f"| {b} | {r['steps']} ({r['episodes']}) | {r['steps_per_second']:.0f} | "
              + " | ".join(f"{r['median_us'][p]:.1f}" for p in LOOP_PHASES)
              + f" | {r['step_median_us']:.1f} | {r['step_p99_us']:.1f} |")
    print("\nPYNQ-Z2 estimate: transfers counted on the pynq transport over the Zynq model x published costs")
    print("| what | register accesses (core + DMA) | stream transfers | stream bytes | core cycles | "
          "registers x 30 us | bytes at PG021 rate | cycles at 100 MHz | total |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("closed-loop step (core.step)", pynq_loop),
            (f"training step: {batch} probe runs", pynq_train["run"]),
            ("training step: parameter load", pynq_train["load"])]
    for name, r in rows:
        e = r["estimate_seconds"]
        print(f"| {name} | {r['register_accesses']:.0f} | {r['stream_transfers']:.0f} | {r['stream_bytes']:.0f} | "
              f"{r['cycles']:.0f} | {e['registers'] * 1e3:.3f} ms | {e['dma'] * 1e3:.3f} ms | "
              f"{e['core'] * 1e3:.3f} ms | {r['estimate_total_seconds'] * 1e3:.3f} ms |")
    bus_step = pynq_train["run"]["estimate_total_seconds"] + pynq_train["load"]["estimate_total_seconds"]
    host = sum(training["software"]["seconds"][k] for k in ("forward", "backward", "optimizer")) / max_steps
    print(f"training step on a PYNQ-Z2, bus and core only: {bus_step * 1e3:.1f} ms ({batch / bus_step:.0f} samples/s "
          f"before the host's own {host * 1e3:.1f} ms of forward, backward and optimizer per step here)")
    print(f"closed-loop step on a PYNQ-Z2, bus and core only: {pynq_loop['estimate_total_seconds'] * 1e6:.0f} us "
          f"({1 / pynq_loop['estimate_total_seconds']:.0f} steps/s before encode, decode and the environment)")

    out = {"load_average": os.getloadavg(), "quick": quick, "profile": profile,
           "training": {"dataset": "digits", "sizes": [64, hidden, 10], "timesteps": timesteps, "batch": batch,
                        "steps": max_steps, "reps": args.reps, "results": training, "slower_than_software": ratios,
                        "parameters_equal_to_software": same, "fractions": fracs},
           "closed_loop": {"policy": "PolicyShape('cartpole'), initial latents seed 0", "results": loop},
           "pynq_z2_estimate": {"closed_loop_step": pynq_loop, "training_step": pynq_train,
                                "training_step_bus_seconds": bus_step},
           "sources": {"mmio_seconds_per_access": "TOOLCHAIN.md (PYNQ-Z2, Python MMIO)",
                       "dma_bytes_per_second": "Xilinx PG021 v7.1, Performance, Table 2 (MM2S, 100 MHz), "
                                               "used for both directions",
                       "clock_hz": CLOCK_HZ}}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(out), indent=1))
    print(f"written {path}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
