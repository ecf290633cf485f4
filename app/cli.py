"""The `spikeloop` command line: one entry point, one subcommand per job.

A thin layer over the library: each command parses its arguments, calls one library function
and prints what it did. PyTorch and NIR are imported only by the commands that need them
(`train`, `export`, `nir`, the demo), so `info`, `run` and the random generators work with
numpy alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spikeloop.config import DEFAULT_CHUNK, DEFAULT_LANES
from spikeloop.configargs import add_config_arguments
from spikeloop.network import NEURONS, RESETS, Network, NetworkError, random_network
from spikeloop.spikes import SpikeError, check_spikes, load_spikes, poisson_spikes, save_spikes
from spikeloop.uartlink import DEFAULT_BAUD

BACKENDS = ("golden", "sim", "pynq", "serial")


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


def _per_layer(text: str) -> int | list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


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


def run_backend(network: Network, spikes: np.ndarray, backend: str, **options):
    """Run spikes through a network on the named backend; returns (spikes_out, membranes_out).

    "sim", "pynq" and "serial" go through the host driver (spikeloop.host); `options` are
    `open_core`'s (lanes, chunk for the simulated core; bitfile for a PYNQ board; port, baudrate
    for a board on a serial port). Membranes are None when the core does not output them."""
    if backend == "golden":
        from spikeloop import golden

        trace = golden.run(network, spikes)
        return trace.spikes, trace.membranes
    if backend in ("sim", "pynq", "serial"):
        try:
            from spikeloop.host import open_core

            with open_core(backend, network, **options) as core:
                out = core.run(spikes)
        except ImportError as e:
            extra = {"pynq": "board", "serial": "serial"}.get(backend, "hw")
            raise ValueError(f"backend {backend} needs {e.name}: pip install spikeloop[{extra}]") from e
        except (RuntimeError, OSError, TimeoutError) as e:
            raise ValueError(f"backend {backend}: {e}") from e
        return out.spikes, out.membranes
    raise ValueError(f"backend {backend!r} is not available; choose from {', '.join(BACKENDS)}")


def board_options(args) -> dict[str, dict]:
    """`open_core` options of the transports that reach a built board, from `add_board_arguments`."""
    return {"pynq": {"bitfile": args.bitfile}, "serial": {"port": args.port, "baudrate": args.baudrate}}


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the backends that reach a built board: pynq's bitstream, the serial port."""
    parser.add_argument("--bitfile", default="spikeloop.bit", help="pynq: the overlay's bitstream (spikeloop.bit)")
    parser.add_argument("--port", default=None, help="serial: the board's port, e.g. /dev/ttyUSB0 (or a pyserial URL)")
    parser.add_argument("--baudrate", type=int, default=DEFAULT_BAUD,
                        help=f"serial: the UART's baud rate ({DEFAULT_BAUD})")


def cmd_run(args) -> int:
    """Run a spike file through a network and write the output spikes (and membranes)."""
    net = Network.load(args.network)
    spikes = load_spikes(args.input)
    check_spikes(spikes, net.n_in, name=str(args.input))
    t0 = time.perf_counter()
    options = {"sim": {"lanes": args.lanes, "chunk": args.chunk}, **board_options(args)}
    out, membranes = run_backend(net, spikes, args.backend, **options.get(args.backend, {}))
    dt = time.perf_counter() - t0
    if args.membranes and membranes is None:
        raise ValueError(f"the {args.backend} core does not output membranes (built without them)")
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


def _require(module: str, extra: str, what: str):
    """Import `module` or stop with the install command that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{what} needs {e.name or module}: pip install spikeloop[{extra}]") from e


TRAIN_OPTIONS = {  # CLI option -> (TrainConfig field, type, help); None values are left to TrainConfig's defaults
    "--dataset": ("dataset", str, "digits, mnist5k, temporal, nmnist, shd or dvsgesture (default digits)"),
    "--encoding": ("encoding", str, "rate or latency, for the image data sets (default rate)"),
    "--steps": ("steps", int, "timesteps per sample (default 16)"),
    "--neuron": ("neuron", str, "lif or cuba (default lif)"),
    "--reset": ("reset", str, "subtract, zero or none (default subtract)"),
    "--rule": ("rule", str, "ste (straight-through) or bayes (BiSNN) (default ste)"),
    "--readout": ("readout", str, "membrane or count (default membrane)"),
    "--leak": ("leak", float, "membrane decay per step, lam = round(leak * 2^F) (default 0.125)"),
    "--epochs": ("epochs", int, "(default 30)"),
    "--batch-size": ("batch_size", int, "(default 64)"),
    "--lr": ("lr", float, "synapse learning rate (default 0.05 ste, 0.2 bayes)"),
    "--seed": ("seed", int, "seeds the split, the encodings, the initial weights and the batches (default 0)"),
    "--data-root": ("data_root", str, "folder holding tonic's data set folders (nmnist, shd, dvsgesture)"),
    "--max-samples": ("max_samples", int, "cap on each split of an event data set"),
}


def cmd_train(args) -> int:
    """Train a binary-weight SNN, export it, check it bit-exact; write checkpoint, image, metrics and plots."""
    train = _require("spikeloop.quant.train", "train", "spikeloop train")
    given = {field: getattr(args, opt[2:].replace("-", "_")) for opt, (field, _, _) in TRAIN_OPTIONS.items()}
    given = {k: v for k, v in given.items() if v is not None}
    if args.hidden is not None:
        given["hidden"] = args.hidden
    cfg = train.TrainConfig(**given)
    done = train.run(cfg, out=args.out, progress=not args.quiet, plots=not args.no_plots)
    s = done.summary
    m = s["model_metrics"]
    print(done.report)
    print(f"trained {cfg.dataset} {'-'.join(map(str, s['sizes']))}, T = {cfg.steps}, {cfg.rule}, {cfg.epochs} epochs, "
          f"seed {cfg.seed}: {s['seconds']:.1f} s")
    print(f"test accuracy of the integer model on the golden model: {s['golden_test_accuracy']:.2%} "
          f"(float mode {m.get('float_accuracy', float('nan')):.2%}), ECE {m['ece']:.3f}")
    print(f"golden model vs hardware-mode model: {'EQUAL' if s['equal'] else 'DIFFERENT'}")
    for name, path in done.files.items():
        print(f"  {name:<16} {path}")
    return 0 if s["equal"] else 1


def cmd_export(args) -> int:
    """Export a training checkpoint to a network image, printing what was rounded and the widths chosen."""
    train = _require("spikeloop.quant.train", "train", "spikeloop export")
    network, report, cfg = train.export_checkpoint(args.checkpoint, margin_bits=args.margin_bits)
    print(report)
    digest = network.save(args.out)
    print(f"{'-'.join(map(str, network.sizes))} network -> {args.out} ({digest})")
    return 0


def cmd_nir_export(args) -> int:
    """Write a network image as a NIR graph (docs/nir.md)."""
    nir = _require("spikeloop.quant.nir", "train", "spikeloop nir")
    _require("nir", "train", "spikeloop nir")
    net = Network.load(args.network)
    path = nir.write_nir(net, args.out, dt=args.dt)
    print(f"{'-'.join(map(str, net.sizes))} network -> {path} (NIR, {nir.PROFILE}, dt = {args.dt:g} s)")
    return 0


def cmd_nir_import(args) -> int:
    """Import a NIR graph (snnTorch, Norse, spikeloop) as a network image (docs/nir.md)."""
    nir = _require("spikeloop.quant.nir", "train", "spikeloop nir")
    _require("nir", "train", "spikeloop nir")
    network, report = nir.from_nir(args.graph, dt=args.dt, frac_bits=args.frac_bits, v_bits=args.v_bits,
                                   u_bits=args.u_bits, reset=args.reset, binarize=args.binarize)
    print(report)
    digest = network.save(args.out)
    print(f"{'-'.join(map(str, network.sizes))} network -> {args.out} ({digest})")
    return 0


def cmd_loop(args) -> int:
    """Closed loop: Gymnasium's CartPole balanced by an SNN policy on the chosen backend (spikeloop.host)."""
    from spikeloop.host import cartpole, open_core
    from spikeloop.host.loop import run_loop

    encoder = cartpole.ThermometerEncoder()
    network = cartpole.policy_network(encoder)
    options = {"golden": cartpole.GEOMETRY, "sim": cartpole.GEOMETRY, **board_options(args)}[args.backend]
    try:
        env = cartpole.make_env()
        with open_core(args.backend, network, **options) as core:
            result = run_loop(core, env, encoder, cartpole.decode, episodes=args.episodes, seed=args.seed,
                              log=args.log, progress=not args.quiet, close_env=True)
    except ImportError as e:
        raise ValueError(f"spikeloop loop needs {e.name}: pip install gymnasium") from e
    except (RuntimeError, OSError, TimeoutError) as e:
        raise ValueError(f"backend {args.backend}: {e}") from e
    print(result.report())
    solved = not result.interrupted and min(result.steps) >= 500
    print(f"{args.backend}: CartPole-v1 {'solved' if solved else 'NOT solved'} (500 steps per episode)"
          + (f"; log {result.log}" if result.log else ""))
    return 0 if solved else 1


def cmd_demo(args) -> int:
    """Train on digits, export, run the golden model, check, report and plot; see spikeloop.app.demo."""
    from spikeloop.app.demo import demo

    return demo(Path(args.out), seed=args.seed, quick=args.quick)


def cmd_verilog(args) -> int:
    """Write the Verilog of a core configuration and its manifest (default: the 784-256-128-10 core)."""
    from spikeloop.rtl import verilog

    return verilog.run(args)


def cmd_estimate(args) -> int:
    """LUT/FF/BRAM/DSP (Yosys and analytic), cycles and ops/cycle of a core configuration on a board."""
    from spikeloop.boards import estimate

    return estimate.run(args)


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
    s.add_argument("--lanes", type=_per_layer, default=DEFAULT_LANES,
                   help=f"sim: neurons per clock P, one or per layer ({DEFAULT_LANES})")
    s.add_argument("--chunk", type=_per_layer, default=DEFAULT_CHUNK,
                   help=f"sim: synapses per clock C, one or per layer ({DEFAULT_CHUNK})")
    add_board_arguments(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("random-network", help=cmd_random_network.__doc__)
    s.add_argument("--sizes", required=True, type=_sizes, help="e.g. 784,256,10")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--neuron", default="lif", choices=NEURONS)
    s.add_argument("--reset", default="subtract", choices=RESETS)
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

    s = sub.add_parser("train", help=cmd_train.__doc__)
    for opt, (_, kind, text) in TRAIN_OPTIONS.items():
        s.add_argument(opt, type=kind, default=None, help=text)
    s.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layer sizes (default 256)")
    s.add_argument("--out", type=Path, default=Path("build/train"), help="output folder (default build/train)")
    s.add_argument("--no-plots", action="store_true", help="do not draw the PNGs")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("export", help=cmd_export.__doc__)
    s.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by `spikeloop train`")
    s.add_argument("--out", required=True, type=Path, help="network image to write (.npz)")
    s.add_argument("--margin-bits", type=int, default=0, help="extra bits on top of the widths the calibration needs")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("nir", help="NIR graphs in and out (docs/nir.md)")
    nsub = s.add_subparsers(dest="nir_command", required=True)
    n = nsub.add_parser("export", help=cmd_nir_export.__doc__)
    n.add_argument("--network", required=True, type=Path, help="network image (.npz)")
    n.add_argument("--out", required=True, type=Path, help="NIR file to write")
    n.add_argument("--dt", type=float, default=1e-4, help="seconds per timestep (default 1e-4, as snnTorch)")
    n.set_defaults(func=cmd_nir_export)
    n = nsub.add_parser("import", help=cmd_nir_import.__doc__)
    n.add_argument("graph", type=Path, help="NIR file")
    n.add_argument("--out", required=True, type=Path, help="network image to write (.npz)")
    n.add_argument("--dt", type=float, default=None,
                   help="seconds per timestep (default: the graph's spikeloop metadata, else 1e-4; Norse: 1e-3)")
    n.add_argument("--frac-bits", type=int, default=None, help="F of the decay factors (default 8)")
    n.add_argument("--v-bits", type=int, default=None, help="membrane width (default 16)")
    n.add_argument("--u-bits", type=int, default=None, help="current width (default 16)")
    n.add_argument("--reset", default=None, choices=RESETS,
                   help="reset of every layer (default: spikeloop metadata, else zero)")
    n.add_argument("--binarize", action="store_true",
                   help="take the signs of non-binary weights, folding their scale into thresholds and biases")
    n.set_defaults(func=cmd_nir_import)

    s = sub.add_parser("verilog", help=cmd_verilog.__doc__)
    add_config_arguments(s)
    s.add_argument("--out", type=Path, default=Path("build/verilog"), help="output folder (default build/verilog)")
    s.set_defaults(func=cmd_verilog)

    s = sub.add_parser("estimate", help=cmd_estimate.__doc__)
    from spikeloop.boards.estimate import add_arguments as add_estimate_arguments

    add_estimate_arguments(s)
    s.set_defaults(func=cmd_estimate)

    s = sub.add_parser("loop", help=cmd_loop.__doc__)
    s.add_argument("--backend", default="golden", choices=BACKENDS, help="where the policy runs (default: golden)")
    s.add_argument("--episodes", type=int, default=3)
    s.add_argument("--seed", type=int, default=0, help="episode e is reset with seed + e")
    s.add_argument("--log", type=Path, default=Path("build/loop.log"), help="log file (default build/loop.log)")
    add_board_arguments(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_loop)

    s = sub.add_parser("demo", help=cmd_demo.__doc__)
    s.add_argument("--out", type=Path, default=Path("build/demo"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quick", action="store_true", help="a few epochs of a small network (for tests)")
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
