"""`make demo`: the main job on a built-in default network, end to end as far as the project goes.

Builds a default 784-256-128-10 network (a cuba layer between lif layers), saves and reloads its
image, runs the numpy golden model on generated spikes, checks the PyTorch golden model against
it bit for bit when torch is installed, prints a report and saves a spike raster PNG.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from spikeloop import golden
from spikeloop.network import Network, random_network
from spikeloop.plots import spike_raster
from spikeloop.spikes import save_spikes

DEFAULT_SIZES = (784, 256, 128, 10)
STEPS = 200


def default_network(seed: int = 0) -> Network:
    """The built-in default network: lif, cuba and lif layers with 16-bit membranes, F = 8."""
    net = random_network(DEFAULT_SIZES, seed=seed, lam=32, frac_bits=8)
    middle = net.layers[1].replace(neuron="cuba", alpha=64, lam=64)
    return Network((net.layers[0], middle, net.layers[2]))


def demo_input(n_in: int, steps: int, *, seed: int) -> np.ndarray:
    """Input spikes whose density sweeps from 5% to 35% and back, so the raster shows the network respond."""
    rng = np.random.default_rng(seed)
    density = 0.05 + 0.30 * np.sin(np.linspace(0, np.pi, steps)) ** 2
    return rng.random((steps, n_in)) < density[:, None]


def demo(out: Path, *, seed: int = 0) -> int:
    """Run the demo, writing network.npz, input.npz, output.npz and raster.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
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
    print(f"  input    {spikes.mean():.1%} of input-steps spiked")
    for k, (layer, rec) in enumerate(zip(net.layers, trace.layers)):
        rate = rec.z.mean()
        print(f"  layer {k}  {layer.neuron:<4} {layer.n_in:>4} -> {layer.n_out:<4} fired {rate:6.1%}, "
              f"membranes in [{rec.v.min()}, {rec.v.max()}], silent neurons {int((~rec.z.any(0)).sum())}")
    counts = trace.spikes.sum(0)
    print(f"  output   spike counts per neuron {counts.tolist()}")

    exact = "skipped (torch not installed)"
    try:
        from spikeloop.quant.golden import GoldenModel
    except ImportError:
        pass
    else:
        t0 = time.perf_counter()
        twin = GoldenModel(net).run(spikes, record=True)
        dt = time.perf_counter() - t0
        same = all(
            np.array_equal(a.z, b.z.numpy()) and np.array_equal(a.v, b.v.numpy()) and np.array_equal(a.u, b.u.numpy())
            for a, b in zip(trace.layers, twin.layers)
        )
        exact = f"{'EQUAL' if same else 'MISMATCH'} ({dt * 1e3:.1f} ms)"
        if not same:
            print(f"  torch    golden model {exact}")
            return 1
    print(f"  torch    golden model vs numpy golden model, every layer's spikes, membranes, currents: {exact}")

    panels = [("input", spikes)] + [(f"layer {k}", rec.z) for k, rec in enumerate(trace.layers)]
    png = spike_raster(panels, out / "raster.png", title=f"spikeloop demo: {'-'.join(map(str, net.sizes))}")
    print(f"  raster   {png}")
    return 0
