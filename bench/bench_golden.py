"""Benchmark: the golden models against snnTorch doing the same work (`make bench`).

Network 784-256-10 with +/-1 weights (spikeloop.network.random_network, reset "subtract",
lam = 32 / 2^8), Poisson input of density 20%. snnTorch runs `snntorch.Leaky` layers behind
`torch.nn.Linear` layers holding the same +/-1 weights, thresholds and biases, with
beta = 1 - lam / 2^F and reset "subtract", in float32 under `torch.inference_mode()`.

1. streaming: batch 1, one timestep per call, as a closed loop drives it: microseconds per step.
   Ours: `spikeloop.golden.Stepper`.
2. sequence: batch 64 x 100 timesteps per run: milliseconds per run and timesteps per second.
   Ours: `spikeloop.golden.run` and `spikeloop.quant.golden.GoldenModel.run` (engine "auto").
   Also `golden.run` of the same sizes as contract v2's Loihi layers (`LOIHI`: cuba, F = 12,
   rounding toward zero, input shift 6, bias into the membrane, wrap of u, symmetric v range),
   on the native kernel and on numpy: what the v2 options cost.

Peers are measured interleaved, in a rotating order, in one process, so that the noise of a
shared machine hits all of them; each figure is the median over the repetitions. Before timing,
the fast paths are checked bit-exact against the plain reference (`golden.run(engine=
"reference")`), and the exit status is 1 if they are not. Results also go to
build/bench/golden.json (unless --no-json).

    .venv/bin/python bench/bench_golden.py [--reps N] [--stream-steps N] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import snntorch
import torch

from spikeloop import golden
from spikeloop.network import random_network
from spikeloop.quant.golden import GoldenModel
from spikeloop.spikes import poisson_spikes

SIZES = (784, 256, 10)
FRAC_BITS = 8
LAM = 32
DENSITY = 0.2
BATCH, STEPS = 64, 100
SEED = 2024
GOALS = {"streaming": 10.0, "sequence": 2.0}
#: Contract v2's options as Loihi's neuron uses them (docs/numerics.md), for the v2 rows.
LOIHI = dict(neuron="cuba", reset="zero", v_bits=24, u_bits=24, frac_bits=12, lam=300, alpha=401, decay_round="zero",
             input_shift=6, bias_to="membrane", u_overflow="wrap", v_range="symmetric")
SNN = "snnTorch (Linear + Leaky, float32)"
SNN1 = "snnTorch, torch.set_num_threads(1)"
ROOT = Path(__file__).resolve().parent.parent


class SnnTorchNet(torch.nn.Module):
    """The same network in snnTorch: Linear (+/-1 weights, bias) then Leaky, per layer, float32."""

    def __init__(self, network):
        super().__init__()
        self.fcs = torch.nn.ModuleList()
        self.lifs = torch.nn.ModuleList()
        for layer in network.layers:
            fc = torch.nn.Linear(layer.n_in, layer.n_out)
            with torch.no_grad():
                fc.weight.copy_(torch.from_numpy(layer.weights.astype(np.float32)))
                fc.bias.copy_(torch.from_numpy(layer.bias.astype(np.float32)))
            self.fcs.append(fc)
            self.lifs.append(snntorch.Leaky(
                beta=1.0 - layer.lam / (1 << layer.frac_bits),
                threshold=torch.from_numpy(layer.theta.astype(np.float32)),
                reset_mechanism="subtract",
            ))

    def zero_state(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, fc.out_features) for fc in self.fcs]

    def step(self, x: torch.Tensor, mems: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One timestep; `mems` is updated in the list. Returns the last layer's (spikes, membranes)."""
        h = x
        for k, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
            h, mems[k] = lif(fc(h), mems[k])
        return h, mems[-1]

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float [T, B, n_in]; returns stacked (spikes, membranes) [T, B, n_out]."""
        mems = self.zero_state(x.shape[1])
        spikes, membranes = [], []
        for t in range(x.shape[0]):
            z, v = self.step(x[t], mems)
            spikes.append(z)
            membranes.append(v)
        return torch.stack(spikes), torch.stack(membranes)


def timed(fn) -> float:
    """Seconds for one call of fn, with the garbage collector held off during it."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def interleaved(peers: dict, reps: int) -> dict[str, list[float]]:
    """Time every peer `reps` times, rotating the order each repetition."""
    names = list(peers)
    times = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed(peers[name]))
    return times


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def one_thread(fn):
    """fn run with torch.set_num_threads(1) (restored after): a second snnTorch configuration,
    because on a shared 2-core machine torch's default threads can lose to oversubscription."""
    def run():
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fn()
        finally:
            torch.set_num_threads(n)
    return run


def check(label: str, ok: bool, failures: list[str]) -> None:
    print(f"  exact: {label:<58} {'yes' if ok else 'NO'}")
    if not ok:
        failures.append(label)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="repetitions per peer (median reported)")
    ap.add_argument("--stream-steps", type=int, default=200, help="timesteps per streaming repetition")
    ap.add_argument("--quick", action="store_true", help="few repetitions, for a smoke run")
    ap.add_argument("--no-json", action="store_true", help="do not write build/bench/golden.json")
    args = ap.parse_args()
    reps = 3 if args.quick else args.reps
    warnings.simplefilter("default")

    network = random_network(SIZES, seed=SEED, reset="subtract", lam=LAM, frac_bits=FRAC_BITS)
    engine = "native" if golden.native_available() else "numpy (no C compiler: native kernel unavailable)"
    threads = torch.get_num_threads()
    print("golden-model benchmark: network 784-256-10, +/-1 weights, reset subtract, "
          f"lam={LAM}/2^{FRAC_BITS} (beta={1 - LAM / (1 << FRAC_BITS)}), input density {DENSITY:.0%}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"snntorch {snntorch.__version__}; torch threads {threads}, cpus {os.cpu_count()}, "
          f"{platform.machine()} {platform.processor() or ''}".rstrip())
    print(f"golden engine: {engine}; ours is single-threaded; snnTorch uses {threads} torch thread(s)")
    print(f"repetitions: {reps} per peer, interleaved in rotating order; medians reported")
    print(f"load average at start: {load_average()}\n")

    snn = SnnTorchNet(network).eval()
    model = GoldenModel(network)
    failures: list[str] = []

    # ---------------------------------------------------------------- streaming, batch 1
    n = args.stream_steps
    stream = poisson_spikes((n, SIZES[0]), DENSITY, seed=SEED + 1)
    stream_t = torch.from_numpy(stream.astype(np.float32))[:, None]  # [T, 1, n_in] for snnTorch
    stepper = golden.Stepper(network, 1)
    ref_stream = golden.run(network, stream, engine="reference")
    outs = [stepper.step(stream[t]) for t in range(n)]
    check(f"Stepper ({stepper.engine}), {n} steps vs reference run",
          np.array_equal(np.array([o[0] for o in outs]), ref_stream.spikes)
          and np.array_equal(np.array([o[1] for o in outs]), ref_stream.membranes), failures)

    def stream_ours():
        stepper.reset()
        step = stepper.step
        for t in range(n):
            step(stream[t])

    def stream_snn():
        with torch.inference_mode():
            mems = snn.zero_state(1)
            for t in range(n):
                snn.step(stream_t[t], mems)

    def stream_reference():
        states = golden.initial_state(network, 1)
        for t in range(n):
            _, states = golden.network_step(network, stream[t][None], states)

    def stream_torch_golden():
        states = model.initial_state(1)
        x = torch.from_numpy(stream)
        for t in range(n):
            _, states = model.step(x[t][None], states)

    stream_peers = {
        SNN: stream_snn,
        SNN1: one_thread(stream_snn),
        f"ours: golden.Stepper ({stepper.engine})": stream_ours,
        "golden.network_step (numpy reference)": stream_reference,
        "quant.golden.GoldenModel.step (torch)": stream_torch_golden,
    }
    for fn in stream_peers.values():
        fn()  # warm-up
    stream_times = interleaved(stream_peers, reps)

    # ---------------------------------------------------------------- sequence, batch 64 x 100
    seq = poisson_spikes((BATCH, STEPS, SIZES[0]), DENSITY, seed=SEED + 2)
    seq_t = torch.from_numpy(seq.astype(np.float32)).transpose(0, 1).contiguous()  # [T, B, n_in]
    ref = golden.run(network, seq, engine="reference")
    network_v2 = random_network(SIZES, seed=SEED, **LOIHI)
    ref_v2 = golden.run(network_v2, seq, engine="reference")
    for label, trace, want in (
        ("golden.run (auto)", golden.run(network, seq), ref),
        ("golden.run (numpy)", golden.run(network, seq, engine="numpy"), ref),
        ("golden.run, v2 Loihi options (auto)", golden.run(network_v2, seq), ref_v2),
        ("golden.run, v2 Loihi options (numpy)", golden.run(network_v2, seq, engine="numpy"), ref_v2),
    ):
        check(f"{label}, [64, 100] vs reference run", np.array_equal(trace.spikes, want.spikes)
              and np.array_equal(trace.membranes, want.membranes), failures)
    check("the v2 network spikes", bool(ref_v2.spikes.any()), failures)
    for eng in ("auto", "numpy"):
        trace = model.run(seq, engine=eng)
        check(f"GoldenModel.run ({eng}), [64, 100] vs reference run",
              np.array_equal(trace.spikes.numpy(), ref.spikes)
              and np.array_equal(trace.membranes.numpy(), ref.membranes), failures)

    def seq_snn():
        with torch.inference_mode():
            snn.run(seq_t)

    v2_engine = "native" if golden.native_available() else "numpy"
    seq_peers = {
        SNN: seq_snn,
        SNN1: one_thread(seq_snn),
        f"ours: golden.run ({'native' if golden.native_available() else 'numpy'})": lambda: golden.run(network, seq),
        "ours: GoldenModel.run (auto)": lambda: model.run(seq),
        "golden.run (engine=numpy)": lambda: golden.run(network, seq, engine="numpy"),
        "GoldenModel.run (engine=numpy: int8 mm)": lambda: model.run(seq, engine="numpy"),
        "golden.run (engine=reference)": lambda: golden.run(network, seq, engine="reference"),
        "GoldenModel.run (engine=torch)": lambda: model.run(seq, engine="torch"),
        f"golden.run, v2 Loihi options ({v2_engine})": lambda: golden.run(network_v2, seq),
        "golden.run, v2 Loihi options (engine=numpy)": lambda: golden.run(network_v2, seq, engine="numpy"),
    }
    for fn in seq_peers.values():
        fn()  # warm-up
    seq_times = interleaved(seq_peers, reps)

    # ---------------------------------------------------------------- report
    # Ratios are taken against the faster snnTorch configuration (default threads or one thread).
    print("\n1. streaming, batch 1, one timestep per call")
    print(f"   {'peer':<44} {'us/step':>10} {'best':>9} {'vs snnTorch':>12}")
    stream_us = {k: statistics.median(v) / n * 1e6 for k, v in stream_times.items()}
    snn_stream = min(stream_us[SNN], stream_us[SNN1])
    for name, us in stream_us.items():
        best = min(stream_times[name]) / n * 1e6
        print(f"   {name:<44} {us:>10.2f} {best:>9.2f} {snn_stream / us:>11.1f}x")
    ours_stream = next(k for k in stream_us if k.startswith("ours"))
    stream_ratio = snn_stream / stream_us[ours_stream]

    print(f"\n2. sequence, batch {BATCH} x {STEPS} timesteps per run")
    print(f"   {'peer':<44} {'ms/run':>10} {'best':>9} {'timesteps/s':>12} {'vs snnTorch':>12}")
    seq_ms = {k: statistics.median(v) * 1e3 for k, v in seq_times.items()}
    snn_seq = min(seq_ms[SNN], seq_ms[SNN1])
    for name, ms in seq_ms.items():
        best = min(seq_times[name]) * 1e3
        rate = BATCH * STEPS / (ms / 1e3)
        print(f"   {name:<44} {ms:>10.2f} {best:>9.2f} {rate:>12,.0f} {snn_seq / ms:>11.1f}x")
    ours_seq = [k for k in seq_ms if k.startswith("ours")]
    seq_ratios = {k: snn_seq / seq_ms[k] for k in ours_seq}

    print("\nratios (median of the faster snnTorch configuration / median of ours):")
    print(f"   streaming: {stream_ratio:6.1f}x  {ours_stream[6:]}  (goal >= {GOALS['streaming']:.0f}x: "
          f"{'met' if stream_ratio >= GOALS['streaming'] else 'NOT met'})")
    for k, r in seq_ratios.items():
        print(f"   sequence:  {r:6.1f}x  {k[6:]}  (goal >= {GOALS['sequence']:.0f}x: "
              f"{'met' if r >= GOALS['sequence'] else 'NOT met'})")
    print(f"   exactness: {'all fast paths bit-exact' if not failures else 'FAILED: ' + ', '.join(failures)}")
    print(f"   load average at end: {load_average()} (on {os.cpu_count()} cpus; other work inflates every row)")

    if not args.no_json:
        out = ROOT / "build" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        result = {
            "network": {"sizes": SIZES, "frac_bits": FRAC_BITS, "lam": LAM, "reset": "subtract", "seed": SEED},
            "network_v2": LOIHI,
            "density": DENSITY, "reps": reps, "engine": engine,
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "torch": torch.__version__, "snntorch": snntorch.__version__},
            "torch_threads": threads, "cpus": os.cpu_count(), "machine": platform.machine(),
            "streaming": {"steps_per_rep": n, "us_per_step_median": stream_us,
                          "seconds_per_rep": stream_times, "ratio": stream_ratio},
            "sequence": {"batch": BATCH, "steps": STEPS, "ms_per_run_median": seq_ms,
                         "seconds_per_run": seq_times, "ratios": seq_ratios},
            "goals": GOALS, "exact": not failures, "failures": failures, "load_average_end": load_average(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (out / "golden.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nresults written to {(out / 'golden.json').relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
