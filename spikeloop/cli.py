"""The `spikeloop` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spikeloop.network import Network, NetworkError, random_network
from spikeloop.spikes import SpikeError, check_spikes, load_spikes, poisson_spikes, save_spikes

BACKENDS = ("golden",)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes must be comma-separated integers like 784,256,10, got {text!r}"
        ) from None
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"sizes needs at least an input and one layer, got {text!r}")
    return sizes


def cmd_info(args) -> int:
    """Print a network image's layers, parameters and content hash."""
    net = Network.load(args.network)
    print(f"network  {args.network}")
    print(f"sizes    {'-'.join(map(str, net.sizes))}")
    print(f"hash     {net.content_hash}")
    for k, layer in enumerate(net.layers):
        p = layer.params()
        plus = int((layer.weights > 0).sum())
        print(
            f"layer {k}  {p['n_in']:>5} -> {p['n_out']:<5} {p['neuron']:<4} reset={p['reset']:<8} "
            f"v_bits={p['v_bits']} u_bits={p['u_bits']} F={p['frac_bits']} lam={p['lam']} alpha={p['alpha']} "
            f"theta=[{layer.theta.min()}..{layer.theta.max()}] bias=[{layer.bias.min()}..{layer.bias.max()}] "
            f"+1 weights={plus / layer.weights.size:.1%}"
        )
    return 0


def run_backend(network: Network, spikes: np.ndarray, backend: str):
    """Run spikes through a network on the named backend; returns (spikes_out, membranes_out)."""
    if backend == "golden":
        from spikeloop import golden

        trace = golden.run(network, spikes)
        return trace.spikes, trace.membranes
    raise ValueError(f"backend {backend!r} is not available; choose from {', '.join(BACKENDS)}")


def cmd_run(args) -> int:
    """Run a spike file through a network and write the output spikes (and membranes)."""
    net = Network.load(args.network)
    spikes = load_spikes(args.input)
    check_spikes(spikes, net.n_in, name=str(args.input))
    t0 = time.perf_counter()
    out, membranes = run_backend(net, spikes, args.backend)
    dt = time.perf_counter() - t0
    extra = {"membranes": membranes} if args.membranes else {}
    save_spikes(args.out, out, **extra)
    steps = int(np.prod(spikes.shape[:-1]))
    print(
        f"{args.backend}: {steps} timesteps in {dt * 1e3:.1f} ms, {int(out.sum())} output spikes "
        f"-> {args.out} (spikes {tuple(out.shape)}{', membranes' if args.membranes else ''})"
    )
    return 0


def cmd_random_network(args) -> int:
    """Write a random network image of the given sizes (for trying things out)."""
    net = random_network(args.sizes, seed=args.seed, neuron=args.neuron, reset=args.reset)
    digest = net.save(args.out)
    print(f"{'-'.join(map(str, net.sizes))} {args.neuron} network -> {args.out} ({digest})")
    return 0


def cmd_random_spikes(args) -> int:
    """Write a spike file of Bernoulli spikes."""
    shape = (args.steps, args.n_in) if args.batch is None else (args.batch, args.steps, args.n_in)
    save_spikes(args.out, poisson_spikes(shape, args.density, seed=args.seed))
    print(f"spikes {shape} density {args.density} -> {args.out}")
    return 0


def cmd_demo(args) -> int:
    """The main job on a built-in default; see spikeloop.demo."""
    from spikeloop.demo import demo

    return demo(Path(args.out), seed=args.seed)


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `spikeloop` command."""
    p = argparse.ArgumentParser(prog="spikeloop", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help=cmd_info.__doc__)
    s.add_argument("network", type=Path, help="network image (.npz)")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("run", help=cmd_run.__doc__)
    s.add_argument("--network", required=True, type=Path, help="network image (.npz)")
    s.add_argument("--input", required=True, type=Path,
                   help="spike file: .npz with bool 'spikes' [T, n_in] or [B, T, n_in]")
    s.add_argument("--backend", default="golden", choices=BACKENDS, help="where to run (default: golden)")
    s.add_argument("--out", required=True, type=Path, help="output spike file (.npz)")
    s.add_argument("--membranes", action="store_true", help="also store the last layer's pre-reset membranes")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("random-network", help=cmd_random_network.__doc__)
    s.add_argument("--sizes", required=True, type=_sizes, help="e.g. 784,256,10")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--neuron", default="lif", choices=("lif", "cuba"))
    s.add_argument("--reset", default="subtract", choices=("subtract", "zero", "none"))
    s.add_argument("--out", required=True, type=Path)
    s.set_defaults(func=cmd_random_network)

    s = sub.add_parser("random-spikes", help=cmd_random_spikes.__doc__)
    s.add_argument("--n-in", required=True, type=int)
    s.add_argument("--steps", required=True, type=int)
    s.add_argument("--batch", type=int, default=None)
    s.add_argument("--density", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, type=Path)
    s.set_defaults(func=cmd_random_spikes)

    s = sub.add_parser("demo", help="build a default network, run it, report and plot")
    s.add_argument("--out", type=Path, default=Path("build/demo"))
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    """Entry point; bad input ends with a one-line error and exit status 2."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (NetworkError, SpikeError, ValueError, FileNotFoundError) as e:
        print(f"spikeloop {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
