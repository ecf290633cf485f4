"""`make demo`: the main job end to end, from training to the simulated board and back.

Trains a binary-weight SNN on scikit-learn's digits (rate code, T = 16, 64-256-10, straight-
through rule: `spikeloop.quant.train`), exports it to the integer contract, saves and reloads the
network image, runs the numpy golden model on the test split, reports the integer model's
accuracy and the bit-exact check against the hardware-mode training model, checks the PyTorch
golden model against the numpy one, and draws the pictures (raster of a real digit's input and
layer spikes, membrane traces, firing rates, training curves, reliability diagram).
Then the board: the same network is loaded into the simulated board (the generated Verilog
under Verilator, through the driver that runs a PYNQ board), every test digit is run on it and
its output spikes and membranes are compared with the golden model's, word for word; and a
closed loop balances Gymnasium's CartPole with the SNN policy of `spikeloop.host.cartpole` on
the simulated board. `report.json` collects the numbers.

`quick=True` trains a small network for two epochs (what the tests run). Without PyTorch the
demo falls back to a built-in random network, run and plotted with numpy alone; without
Verilator (or gymnasium) the board stages say why they are left out.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from spikeloop import golden
from spikeloop.config import DEFAULT_SIZES
from spikeloop.network import Network, random_network
from spikeloop.quant.plots import spike_raster
from spikeloop.spikes import save_spikes

STEPS = 200


def default_network(seed: int = 0) -> Network:
    """The built-in network of the numpy-only fallback: lif, cuba and lif layers, 16-bit membranes, F = 8."""
    net = random_network(DEFAULT_SIZES, seed=seed, lam=32, frac_bits=8)
    middle = net.layers[1].replace(neuron="cuba", alpha=64, lam=64)
    return Network((net.layers[0], middle, net.layers[2]))


def demo_input(n_in: int, steps: int, *, seed: int) -> np.ndarray:
    """Input spikes whose density sweeps from 5% to 35% and back, so the raster shows the network respond."""
    rng = np.random.default_rng(seed)
    density = 0.05 + 0.30 * np.sin(np.linspace(0, np.pi, steps)) ** 2
    return rng.random((steps, n_in)) < density[:, None]


def say(message: str) -> None:
    """An announcement of a long step, or its progress (stderr, so stdout holds the results)."""
    print(message, file=sys.stderr, flush=True)


def demo(out: Path, *, seed: int = 0, quick: bool = False) -> int:
    """Run the demo into `out`; returns the process exit status (1 when a check fails)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("spikeloop demo: PyTorch is not installed (pip install spikeloop[train]); "
              "running the built-in network with numpy only")
        return builtin_demo(out, seed=seed)
    return trained_demo(out, seed=seed, quick=quick)


def trained_demo(out: Path, *, seed: int = 0, quick: bool = False) -> int:
    """Train on digits -> export -> image -> golden model -> accuracy and bit-exact checks -> pictures."""
    from spikeloop.quant.golden import GoldenModel
    from spikeloop.quant.train import TrainConfig, run

    start = time.perf_counter()
    cfg = TrainConfig(seed=seed, hidden=(32,), epochs=2, steps=8) if quick else TrainConfig(seed=seed)
    say(f"spikeloop demo: training on {cfg.dataset}, hidden {'-'.join(map(str, cfg.hidden))}, T = {cfg.steps}, "
        f"{cfg.epochs} epochs ({'a few seconds' if quick else 'about 15-45 s on 2 cores'}; progress per epoch) ...")
    done = run(cfg, out=out, progress=False, plots=True, log=lambda line: say(f"  {line}"))
    s, net, ver = done.summary, done.network, done.verification
    m = s["model_metrics"]
    data = done.result.data
    x_test = done.x_test

    t0 = time.perf_counter()
    trace = golden.run(net, x_test, record=True)
    dt = time.perf_counter() - t0
    save_spikes(out / "input.npz", x_test)
    save_spikes(out / "output.npz", trace.spikes, membranes=trace.membranes)
    twin = GoldenModel(net).run(x_test, record=True, engine="torch")
    same = all(
        np.array_equal(a.z, b.z.numpy()) and np.array_equal(a.v, b.v.numpy()) and np.array_equal(a.u, b.u.numpy())
        for a, b in zip(trace.layers, twin.layers)
    )

    sizes = "-".join(map(str, net.sizes))
    n = len(x_test)
    print(f"spikeloop demo: {cfg.dataset}, {sizes}, {cfg.neuron}, rate code T = {cfg.steps}, rule {cfg.rule}, "
          f"{cfg.epochs} epochs, seed {seed}{' (quick)' if quick else ''}")
    print(f"  train    {len(data.y_train)} samples in {m['train_seconds']:.1f} s "
          f"(final training accuracy {done.result.history[-1]['train_accuracy']:.1%})")
    for layer, rep in zip(net.layers, done.report.layers):
        print(f"  export   layer {rep.index}: {layer.n_in:>4} -> {layer.n_out:<4} {layer.neuron} reset={layer.reset} "
              f"lam={layer.lam}/2^{layer.frac_bits} v_bits={rep.v_bits} "
              f"theta=[{layer.theta.min()}..{layer.theta.max()}] bias=[{layer.bias.min()}..{layer.bias.max()}]")
    print(f"  image    {done.files['network']}  {s['content_hash']}  (saved and loaded back)")
    print(f"  golden   numpy, {n} test samples x {cfg.steps} steps in {dt * 1e3:.1f} ms")
    print(f"  accuracy integer model on the golden model: {s['golden_test_accuracy']:.2%} of {n} test digits "
          f"(float mode {m['float_accuracy']:.2%}, ECE {m['ece']:.3f})")
    exact = "EQUAL" if ver.equal else "MISMATCH"
    print(f"  check    golden model vs hardware-mode model, every layer's spikes, membranes, currents and "
          f"{n} predictions: {exact}")
    print(f"  torch    golden model vs numpy golden model, every layer: {'EQUAL' if same else 'MISMATCH'}")
    for name in ("raster", "membranes", "rates", "training_curves", "reliability"):
        print(f"  picture  {done.files[name]}")
    print(f"  files    {out / 'metrics.json'}, {out / 'checkpoint.pt'}, {out / 'input.npz'}, {out / 'output.npz'}")
    report = {"dataset": cfg.dataset, "sizes": list(net.sizes), "content_hash": s["content_hash"],
              "golden_test_accuracy": s["golden_test_accuracy"], "training_check_equal": bool(ver.equal),
              "torch_numpy_equal": bool(same)}
    report["board"] = board_check(net, x_test, trace, done.verification.predictions, data.y_test)
    report["closed_loop"] = closed_loop(seed=seed, steps=100 if quick else 500)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"  report   {out / 'report.json'}")
    print(f"  time     {time.perf_counter() - start:.1f} s")
    ok = [ver.equal, same] + [stage["ok"] for stage in (report["board"], report["closed_loop"]) if "ok" in stage]
    return 0 if all(ok) else 1


#: Throughput knobs of the demo's simulated board (docs/gateware.md): 16 lanes, 64-synapse chunks.
BOARD_LANES, BOARD_CHUNK = 16, 64


def board_check(net: Network, x_test: np.ndarray, trace, predictions, labels) -> dict:
    """Run every test sample on the simulated board and compare its output words with the golden model.

    Returns the numbers of the report; `ok` is False on any mismatch. Without Verilator the stage
    is left out (`skipped` says why).
    """
    from spikeloop.host import open_core
    from spikeloop.host.driver import describe_config
    from spikeloop.sim.board import board_available

    reason = board_available()
    if reason:
        print(f"  board    left out: {reason}")
        return {"skipped": reason}
    from spikeloop.app.cli import sim_build_log

    t0 = time.perf_counter()
    with open_core("sim", net, lanes=BOARD_LANES, chunk=BOARD_CHUNK, membranes=True,
                   log=sim_build_log(net.sizes, say)) as core:
        opened = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = core.run(x_test)
        seconds = time.perf_counter() - t0
        counters = core.counters()
    spikes_equal = bool(np.array_equal(out.spikes, trace.spikes))
    membranes_equal = bool(np.array_equal(out.membranes, trace.membranes))
    board_predictions = np.argmax(out.membranes[:, -1], axis=1)  # the membrane readout, ties to the lowest index
    fired = int(out.spikes.sum())
    n, steps = x_test.shape[:2]
    ok = spikes_equal and membranes_equal and bool(np.array_equal(board_predictions, predictions)) and fired > 0
    print(f"  board    simulated board (Verilator), core {describe_config(core.config)}")
    print(f"           built and loaded in {opened:.1f} s; {n} digits x {steps} steps in {seconds:.2f} s "
          f"({n * steps / seconds:,.0f} timesteps/s, {counters.get('busy_cycles', 0):,} busy cycles)")
    print(f"  check    board vs golden model: output spikes ({fired:,} fired) "
          f"{'EQUAL' if spikes_equal else 'MISMATCH'}, membranes {'EQUAL' if membranes_equal else 'MISMATCH'}, "
          f"accuracy on the board {float(np.mean(board_predictions == labels)):.2%}")
    return {"ok": ok, "spikes_equal": spikes_equal, "membranes_equal": membranes_equal, "spikes_fired": fired,
            "accuracy": float(np.mean(board_predictions == labels)), "timesteps": n * steps,
            "seconds": seconds, "build_and_load_seconds": opened, "lanes": BOARD_LANES, "chunk": BOARD_CHUNK,
            "counters": {k: int(v) for k, v in counters.items()}}


def closed_loop(*, seed: int = 0, steps: int = 500) -> dict:
    """Balance CartPole-v1 for `steps` steps with the SNN policy on the simulated board (`spikeloop loop`)."""
    from spikeloop.host import cartpole, open_core
    from spikeloop.host.loop import run_loop
    from spikeloop.sim.board import board_available

    reason = board_available()
    try:
        env = cartpole.make_env()
    except ImportError as e:
        reason = f"needs {e.name} (pip install gymnasium)"
    if reason:
        print(f"  loop     left out: {reason}")
        return {"skipped": reason}
    from spikeloop.app.cli import sim_build_log

    encoder = cartpole.ThermometerEncoder()
    policy = cartpole.policy_network(encoder)
    with open_core("sim", policy, **cartpole.GEOMETRY, log=sim_build_log(policy.sizes, say)) as core:
        result = run_loop(core, env, encoder, cartpole.decode, max_steps=steps, seed=seed, progress=False,
                          close_env=True)
    if result.interrupted:  # run_loop stops cleanly on Ctrl-C; the demo stops with it
        raise KeyboardInterrupt
    balanced = result.steps[0] >= steps
    p50 = result.percentiles((50,))["step"][0]
    print(f"  loop     CartPole-v1 on the simulated board: {result.steps[0]} of {steps} steps "
          f"{'balanced' if balanced else 'NOT balanced'}, {result.steps_per_second:,.0f} steps/s, "
          f"median step {p50:.0f} us")
    return {"ok": balanced, "steps": result.steps[0], "target": steps, "steps_per_second": result.steps_per_second,
            "median_step_us": p50}


def builtin_demo(out: Path, *, seed: int = 0) -> int:
    """The numpy-only demo: a built-in random network, generated spikes, a raster."""
    net = default_network(seed)
    digest = net.save(out / "network.npz")
    net = Network.load(out / "network.npz")
    spikes = demo_input(net.n_in, STEPS, seed=seed + 1)
    save_spikes(out / "input.npz", spikes)
    t0 = time.perf_counter()
    trace = golden.run(net, spikes, record=True)
    dt = time.perf_counter() - t0
    save_spikes(out / "output.npz", trace.spikes, membranes=trace.membranes)
    print(f"spikeloop demo: network {'-'.join(map(str, net.sizes))}, {STEPS} timesteps, seed {seed}")
    print(f"  image    {out / 'network.npz'}  {digest}")
    print(f"  golden   numpy, {dt * 1e3:.1f} ms ({STEPS / dt:,.0f} timesteps/s)")
    for k, (layer, rec) in enumerate(zip(net.layers, trace.layers)):
        print(f"  layer {k}  {layer.neuron:<4} {layer.n_in:>4} -> {layer.n_out:<4} fired {rec.z.mean():6.1%}")
    panels = [("input", spikes)] + [(f"layer {k}", rec.z) for k, rec in enumerate(trace.layers)]
    png = spike_raster(panels, out / "raster.png", title=f"spikeloop demo: {'-'.join(map(str, net.sizes))}")
    print(f"  raster   {png}")
    return 0
