"""The `spikeloop` command line: one entry point, one subcommand per job.

A thin layer over the library: each command parses its arguments, calls one library function
and prints what it did. PyTorch and NIR are imported only by the commands that need them
(`train`, `export`, `nir`, the demo), so `info`, `run` and the random generators work with
numpy alone.

Conventions: every option is checked where it enters (an argparse type, or
`spikeloop.configargs` for the core options), and refused with a message naming it and its true
range. Results go to stdout; announcements of long steps (with their expected duration) and
progress go to stderr, printed before the step starts. Every error is one line on stderr:
exit status 2 for bad input, 1 for a run that failed, 130 for Ctrl-C (after saying what was
kept); never a traceback (SPIKELOOP_TRACEBACK=1 shows it for a failed run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from spikeloop.config import DEFAULT_CHUNK, DEFAULT_LANES, MAX_CHUNK, MAX_LANES, design_hash
from spikeloop.configargs import (
    OptionError,
    add_config_arguments,
    events_type,
    float_in,
    int_in,
    int_or_list,
    sizes_type,
)
from spikeloop.network import (
    BIAS_TOS,
    BITS_RANGE,
    FRAC_BITS_RANGE,
    INPUT_SHIFT_RANGE,
    MAX_WIDTH,
    NEURONS,
    OPTION_DEFAULTS,
    OVERFLOWS,
    RESETS,
    ROUNDINGS,
    V_RANGES,
    Network,
    NetworkError,
    random_network,
)
from spikeloop.spikes import SpikeError, as_bool_spikes, check_spikes, load_spikes, poisson_spikes, save_spikes
from spikeloop.uartlink import DEFAULT_BAUD

BACKENDS = ("golden", "sim", "pynq", "serial")

DESCRIPTION = """\
spikeloop runs spiking neural networks with binary (+1/-1) weights on an FPGA, bit for bit
as the integer golden model computes them. Train a network in PyTorch, export it to a network
image (.npz), run it on the golden model, on a simulated board (Verilator) or on a PYNQ board,
close a control loop through it, and get the core's Verilog and its size on a board.
"""

EXAMPLES = """\
examples:
  spikeloop demo                                    train on digits, check, run on the simulated board
  spikeloop random-network --sizes 784,256,10 --out net.npz
  spikeloop random-spikes --n-in 784 --steps 100 --out in.npz
  spikeloop run --network net.npz --input in.npz --backend sim --out out.npz
  spikeloop estimate --board pynq-z2 --analytic     resources on the PYNQ-Z2 in a second
  spikeloop continual --quick --backend golden      split digits learnt task by task: Bayes vs straight-through

`spikeloop COMMAND --help` shows each command's options and examples.
"""

#: Examples shown under each subcommand's help.
COMMAND_EXAMPLES = {
    "info": ["spikeloop info net.npz"],
    "run": ["spikeloop run --network net.npz --input in.npz --out out.npz --membranes",
            "spikeloop run --network net.npz --input in.npy --backend sim --lanes 16 --chunk 64 --out out.npz",
            "spikeloop run --network net.npz --input in.npz --backend serial --port /dev/ttyUSB0 --out out.npz"],
    "random-network": ["spikeloop random-network --sizes 784,256,10 --out net.npz",
                       "spikeloop random-network --sizes 64,32,10 --neuron cuba --reset zero --seed 3 --out net.npz"],
    "random-spikes": ["spikeloop random-spikes --n-in 784 --steps 100 --density 0.2 --out in.npz",
                      "spikeloop random-spikes --n-in 64 --steps 16 --batch 8 --out batch.npz"],
    "train": ["spikeloop train --dataset digits --hidden 256 --epochs 30 --out build/train",
              "spikeloop train --in-the-loop sim --hidden 32 --epochs 2 --out build/loop",
              "spikeloop train --dataset temporal --neuron cuba --steps 32 --rule bayes --out build/temporal",
              "spikeloop train --dataset moons --rule bayes --update bisnn --predict ensemble --backend sim",
              "spikeloop train --rule bayes --predict committee --samples 5 --out build/committee"],
    "export": ["spikeloop export --checkpoint build/train/checkpoint.pt --out net.npz"],
    "nir": ["spikeloop nir export --network net.npz --out net.nir",
            "spikeloop nir import model.nir --out net.npz --binarize"],
    "nir export": ["spikeloop nir export --network net.npz --out net.nir --dt 1e-3",
                   "spikeloop nir export --network net.npz --out net.nir --reader snntorch"],
    "nir import": ["spikeloop nir import model_from_snntorch.nir --reset subtract_next --out net.npz",
                   "spikeloop nir import model_from_norse.nir --source norse --out net.npz"],
    "nir agree": ["spikeloop nir agree model.nir --recorded spikes.npz --reset subtract_next --sweep"],
    "netx": ["spikeloop netx import model.net --out net.npz"],
    "netx import": ["spikeloop netx import model.net --out net.npz"],
    "verilog": ["spikeloop verilog --out build/verilog",
                "spikeloop verilog --sizes 784,256,10 --lanes 16 --chunk 64 --membranes --out build/verilog"],
    "estimate": ["spikeloop estimate --analytic                      the analytic model, in a second",
                 "spikeloop estimate --board pynq-z2                 Yosys synthesis, 3-5 minutes (cached after)",
                 "spikeloop estimate --sizes 784,256,10 --lanes 8,4 --chunk 64,32 --analytic",
                 "spikeloop estimate --largest --analytic            the fastest core that fits (seconds)",
                 "spikeloop estimate --largest                       the same, synthesized: tens of minutes",
                 "spikeloop estimate --auto --analytic --network net.npz   the default's LUTs, spent at its densities"],
    "loop": ["spikeloop loop", "spikeloop loop --backend sim --episodes 5 --log build/loop.log",
             "spikeloop loop --learn es --task cartpole-positions --generations 40 --out build/evolve/positions",
             "spikeloop loop --task cartpole-positions --policy build/evolve/positions/policy.npz --backend sim"],
    "demo": ["spikeloop demo", "spikeloop demo --quick --out build/quick"],
    "continual": ["spikeloop continual --quick --backend golden --out build/continual-quick   a minute",
                  "spikeloop continual --dataset digits --backend sim --out build/continual    the full study",
                  "spikeloop continual --dataset mnist5k --rule bayes --coreset 2 --seeds 0 --out build/cm"],
}


def _examples(name: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in COMMAND_EXAMPLES[name])


def _sizes(text: str) -> tuple[int, ...]:
    """An argparse type: network sizes like 784,256,10 (checked by `spikeloop.configargs.sizes_type`)."""
    return tuple(int(x) for x in sizes_type(text).split(","))


def _out_file(path: Path, option: str = "--out") -> Path:
    """Make the folder of an output file (before any computing), or refuse the path naming the option."""
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"argument {option}: {path} is a folder, expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"argument {option}: cannot create the folder {path.parent} ({e.strerror})") from None
    return path


def _out_dir(path: Path, option: str = "--out") -> Path:
    """Make an output folder now (before any computing), or refuse the path naming the option."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OptionError(f"argument {option}: {path} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"argument {option}: cannot create the folder {path} ({e.strerror})") from None
    return path


class RunFailed(Exception):
    """A run that started and failed (a transfer, the core's status): exit status 1, one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept (`kept`: "nothing saved", or where the files are)."""

    def __init__(self, kept: str):
        super().__init__(kept)
        self.kept = kept


def _writable(path: Path, option: str) -> Path:
    """Check now that `path` can be appended to (a log file), naming the option when it cannot."""
    _out_file(path, option)
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise OptionError(f"argument {option}: cannot write {path} ({e.strerror})") from None
    return path


def _say(message: str) -> None:
    """An announcement or a progress line (stderr, flushed at once)."""
    print(message, file=sys.stderr, flush=True)


def load_input(path) -> np.ndarray:
    """Read input spikes: a spike file (.npz with a 0/1 array 'spikes') or a plain .npy array of 0/1."""
    path = Path(path)
    expected = "expected a spike file (.npz with a 0/1 array 'spikes') or a .npy array of 0/1 spikes"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such spike file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise SpikeError(f"{path}: not a readable spike file ({e}); {expected}") from None
    if isinstance(data, np.ndarray):
        return as_bool_spikes(data, name=str(path))
    with data:
        if "spikes" not in data.files:
            raise SpikeError(f"{path}: no array named 'spikes' (found {', '.join(data.files) or 'none'}); {expected}")
    return load_spikes(path)


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
            + "".join(f" {key}={value}" for key, value in layer.options().items() if value != OPTION_DEFAULTS[key])
            + (f" recurrent (+1 {float((layer.recurrent > 0).mean()):.1%})" if layer.is_recurrent else "")
            + ("" if net.densities is None else f" input density={net.mean_densities()[k]:.4f}")
        )
    return 0


def sim_build_log(sizes, say=_say):
    """A `log=` callback for the simulated board: announces a build (only when one happens) with its duration."""
    def log(message: str) -> None:
        if not log.started:
            log.started = True
            say(f"building the simulated board for {'-'.join(map(str, sizes))} "
                "(about a minute the first time, cached after) ...")
        say(f"  {message}")

    log.started = False  # whether a build began (Ctrl-C then says the next run builds again)
    return log


def _backend_error(backend: str, e: BaseException) -> ValueError:
    """The one-line error of a backend that failed to open or run, with the hint that fixes it."""
    if isinstance(e, ImportError):
        extra = {"pynq": "board", "serial": "serial"}.get(backend, "hw")
        return ValueError(f"backend {backend} needs {e.name}: pip install spikeloop[{extra}]")
    hint = {"pynq": "; off a PYNQ board, the simulated board is --backend sim (the numerics alone: --backend golden)",
            "serial": "; check --port (e.g. /dev/ttyUSB0) and that the board is plugged in"}.get(backend, "")
    return ValueError(f"backend {backend}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
                      f"{hint}")


def open_backend(network: Network, backend: str, *, say=_say, **options):
    """`open_core(backend, network, **options)` with the simulated board's build announced and errors in one line."""
    from spikeloop.host import open_core

    if backend == "sim":
        options.setdefault("log", sim_build_log(network.sizes, say))
    try:
        with warnings.catch_warnings():
            if backend == "pynq":  # pynq warns "No devices found" off a board; the error below says it once
                warnings.simplefilter("ignore", UserWarning)
            return open_core(backend, network, **options)
    except (ImportError, RuntimeError, OSError, TimeoutError) as e:
        raise _backend_error(backend, e) from e
    except KeyboardInterrupt:
        if getattr(options.get("log"), "started", False):  # the cache keeps only finished builds
            kept = "the simulated board was not built, nothing saved; the next run builds it again"
            raise Interrupted(kept) from None
        raise


def run_backend(network: Network, spikes: np.ndarray, backend: str, **options):
    """Run spikes through a network on the named backend; returns (spikes_out, membranes_out).

    "sim", "pynq" and "serial" go through the host driver (spikeloop.host); `options` are
    `open_core`'s (lanes, chunk for the simulated core; bitfile for a PYNQ board; port, baudrate
    for a board on a serial port). Membranes are None when the core does not output them."""
    out, membranes, _ = timed_run(network, spikes, backend, **options)
    return out, membranes


def timed_run(network: Network, spikes: np.ndarray, backend: str, **options):
    """`run_backend` that also returns (seconds opening the core: build and load, seconds running)."""
    if backend == "golden":
        from spikeloop import golden

        t0 = time.perf_counter()
        trace = golden.run(network, spikes)
        return trace.spikes, trace.membranes, (0.0, time.perf_counter() - t0)
    if backend not in ("sim", "pynq", "serial"):
        raise ValueError(f"backend {backend!r} is not available; choose from {', '.join(BACKENDS)}")
    t0 = time.perf_counter()
    with open_backend(network, backend, **options) as core:
        t1 = time.perf_counter()
        try:
            out = core.run(spikes)
        except (RuntimeError, OSError, TimeoutError) as e:  # the core failed while running: status 1
            raise RunFailed(str(_backend_error(backend, e))) from e
        t2 = time.perf_counter()
    return out.spikes, out.membranes, (t1 - t0, t2 - t1)


def board_options(args) -> dict[str, dict]:
    """`open_core` options of the transports that reach a built board, from `add_board_arguments`."""
    return {"pynq": {"bitfile": args.bitfile}, "serial": {"port": args.port, "baudrate": args.baudrate}}


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the backends that reach a built board: pynq's bitstream, the serial port."""
    parser.add_argument("--bitfile", default="spikeloop.bit", help="pynq: the overlay's bitstream (spikeloop.bit)")
    parser.add_argument("--port", default=None,
                        help="serial (needed there): the board's port, e.g. /dev/ttyUSB0 (or a pyserial URL)")
    parser.add_argument("--baudrate", type=int_in(1), default=DEFAULT_BAUD,
                        help=f"serial: the UART's baud rate ({DEFAULT_BAUD})")


def check_board_options(args) -> None:
    """Refuse what a backend cannot start without, before any work."""
    if args.backend == "serial" and not args.port:
        raise OptionError("--backend serial needs --port, the board's serial port (e.g. /dev/ttyUSB0)")


def cmd_run(args) -> int:
    """Run a spike file through a network and write the output spikes (and membranes)."""
    check_board_options(args)
    _out_file(args.out)
    net = Network.load(args.network)
    spikes = load_input(args.input)
    check_spikes(spikes, net.n_in, name=str(args.input))
    options = {"sim": sim_geometry(args, net), **board_options(args)}
    out, membranes, (opened, ran) = timed_run(net, spikes, args.backend, **options.get(args.backend, {}))
    if args.membranes and membranes is None:
        raise ValueError(f"the {args.backend} core does not output membranes (built without them)")
    extra = {"membranes": membranes} if args.membranes else {}
    save_spikes(args.out, out, **extra)
    steps = int(np.prod(spikes.shape[:-1]))
    opening = f" (core built and loaded in {opened:.1f} s)" if args.backend != "golden" else ""
    print(
        f"{args.backend}: {steps} timesteps in {ran * 1e3:.1f} ms{opening}, {int(out.sum())} output spikes "
        f"-> {args.out} (spikes {tuple(out.shape)}{', membranes' if args.membranes else ''})"
    )
    return 0


def sim_geometry(args, net: Network) -> dict:
    """`--lanes`, `--chunk` and `--events` of `run --backend sim`, checked against the network's layers (defaults
    16, 64, every layer dense)."""
    from spikeloop.configargs import check_events, check_per_layer

    if args.lanes is not None:
        check_per_layer("--lanes", args.lanes, net.sizes[1:], what="outputs", limit=MAX_LANES)
    if args.chunk is not None:
        check_per_layer("--chunk", args.chunk, net.sizes[:-1], what="inputs", limit=MAX_CHUNK)
    chunk = DEFAULT_CHUNK if args.chunk is None else args.chunk
    return {"lanes": DEFAULT_LANES if args.lanes is None else args.lanes, "chunk": chunk,
            "events": check_events(args.events, net.sizes[:-1], chunk)}


def cmd_random_network(args) -> int:
    """Write a random network image of the given sizes (for trying things out)."""
    _out_file(args.out)
    net = random_network(args.sizes, seed=args.seed, neuron=args.neuron, reset=args.reset)
    digest = net.save(args.out)
    print(f"{'-'.join(map(str, net.sizes))} {args.neuron} network -> {args.out} ({digest})")
    return 0


def cmd_random_spikes(args) -> int:
    """Write a spike file of Bernoulli spikes."""
    _out_file(args.out)
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


#: The choices of `spikeloop train`'s string options (held equal to spikeloop.quant.train.CHOICES by a test).
TRAIN_CHOICES = {
    "dataset": ("digits", "mnist5k", "moons", "temporal", "nmnist", "shd", "dvsgesture"),
    "encoding": ("rate", "latency", "rows"),
    "neuron": NEURONS,
    "reset": RESETS,
    "rule": ("ste", "bayes"),
    "readout": ("membrane", "count"),
    "update": ("adam", "bisnn"),
    "decay_round": ROUNDINGS,
    "bias_to": BIAS_TOS,
    "u_overflow": OVERFLOWS,
    "v_range": V_RANGES,
}

TRAIN_OPTIONS = {  # CLI option -> (TrainConfig field, type, help); None values are left to TrainConfig's defaults
    "--dataset": ("dataset", str, "digits, mnist5k, moons, temporal, nmnist, shd or dvsgesture (default digits)"),
    "--encoding": ("encoding", str, ("rate, latency, or rows (one image row per timestep: --steps 8 for digits, "
                                     "28 for mnist5k), for the image data sets (default rate)")),
    "--steps": ("steps", int_in(1), "timesteps per sample (default 16)"),
    "--neuron": ("neuron", str, "lif or cuba (default lif)"),
    "--reset": ("reset", str, "subtract, zero, none or subtract_next (snnTorch's Leaky) (default subtract)"),
    "--rule": ("rule", str, "ste (straight-through) or bayes (BiSNN) (default ste)"),
    "--readout": ("readout", str, "membrane or count (default membrane)"),
    "--update": ("update", str, "synapse update: adam, or bisnn (BiSNN's mirror descent, --rule bayes) (adam)"),
    "--leak": ("leak", float_in(0.0, 1.0), "membrane decay per step in [0, 1], lam = round(leak * 2^F) (0.125)"),
    "--decay-round": ("decay_round", str, "how the decays round: floor, zero or nearest (default floor)"),
    "--input-shift": ("input_shift", int_in(*INPUT_SHIFT_RANGE),
                      "fractional membrane bits: the synaptic sum is shifted left by this, 0..16 (default 0)"),
    "--bias-to": ("bias_to", str, "where the bias enters: current or membrane (default current)"),
    "--u-overflow": ("u_overflow", str, "what a cuba current does beyond u_bits: saturate or wrap (saturate)"),
    "--v-range": ("v_range", str, "the membrane's range: full or symmetric (default full)"),
    "--epochs": ("epochs", int_in(1), "passes over the training set (default 30)"),
    "--batch-size": ("batch_size", int_in(1), "samples per gradient step (default 64)"),
    "--lr": ("lr", float_in(0.0, open_lo=True), "synapse learning rate (0.05 ste, 0.2 bayes, 30 bayes + bisnn)"),
    "--seed": ("seed", int_in(0), "seeds the split, the encodings, the initial weights and the batches (default 0)"),
    "--data-root": ("data_root", str, "folder holding tonic's data set folders (nmnist, shd, dvsgesture)"),
    "--max-samples": ("max_samples", int_in(1), "cap on each split of an event data set"),
}


def cmd_train(args) -> int:
    """Train a binary-weight SNN, export it, check it bit-exact; write checkpoint, image, metrics and plots."""
    train = _require("spikeloop.quant.train", "train", "spikeloop train")
    given = {field: getattr(args, opt[2:].replace("-", "_")) for opt, (field, _, _) in TRAIN_OPTIONS.items()}
    given = {k: v for k, v in given.items() if v is not None}
    if args.hidden is not None:
        given["hidden"] = args.hidden
    if args.recurrent:
        given["recurrent"] = True
    cfg = train.TrainConfig(**given)
    check_predict_options(args, cfg)
    if args.in_the_loop is not None:
        return _train_in_the_loop(args, cfg)
    _out_dir(args.out)
    _say(f"training on {cfg.dataset}, hidden {'-'.join(map(str, cfg.hidden))}, T = {cfg.steps}, {cfg.epochs} epochs "
         "(Ctrl-C keeps the last complete epoch) ...")
    done = train.run(cfg, out=args.out, progress=not args.quiet, plots=not args.no_plots)
    s = done.summary
    m = s["model_metrics"]
    print(done.report)
    print(f"trained {cfg.dataset} {'-'.join(map(str, s['sizes']))}, T = {cfg.steps}, {cfg.rule}, {cfg.epochs} epochs, "
          f"seed {cfg.seed}: {s['seconds']:.1f} s")
    print(f"test accuracy of the integer model on the golden model: {s['golden_test_accuracy']:.2%} "
          f"(float mode {m.get('float_accuracy', float('nan')):.2%}), ECE {m['ece']:.3f}")
    print(f"golden model vs hardware-mode model: {'EQUAL' if s['equal'] else 'DIFFERENT'}")
    files, equal = dict(done.files), s["equal"]
    if args.predict is not None:
        predicted = predict_on_core(args, cfg, done)
        files.update(predicted["files"])
        equal = equal and predicted["equal"] is not False
    for name, path in files.items():
        print(f"  {name:<16} {path}")
    return 0 if equal else 1


#: Where `spikeloop train --predict` runs its networks.
PREDICT_BACKENDS = ("golden", "sim")


def check_predict_options(args, cfg) -> None:
    """Refuse `--predict`, `--samples` and `--backend` where they cannot work, before any training."""
    if args.predict is None:
        for option, value in (("--samples", args.samples), ("--backend", args.backend)):
            if value is not None:
                raise OptionError(f"argument {option}: only --predict takes it (--predict mode, ensemble or committee)")
        return
    if args.in_the_loop is not None:
        raise OptionError("argument --predict: not with --in-the-loop, whose test already runs on the loop's core; "
                          "leave one of them out")
    if args.predict != "mode" and cfg.rule != "bayes":
        raise OptionError(f"argument --predict: {args.predict} draws networks from a Bayesian posterior and --rule "
                          f"{cfg.rule} trains one network; add --rule bayes, or use --predict mode")
    if args.predict == "mode" and args.samples is not None:
        raise OptionError(f"argument --samples: --predict mode runs the one mode network, so --samples "
                          f"{args.samples} has nothing to draw; use it with --predict ensemble or committee")


def predict_on_core(args, cfg, done) -> dict:
    """`spikeloop train --predict`: the trained posterior on `--backend`'s core (spikeloop.host.ensemble.predict)
    over the test split; prints accuracy and ECE, writes posterior.npz, prediction.json and a reliability diagram.
    Returns {"files": ..., "equal": whether the core equals the golden model (None on the golden backend)}."""
    import json

    from spikeloop.host.ensemble import predict
    from spikeloop.quant.export import posterior
    from spikeloop.quant.plots import reliability_diagram

    model, labels = done.result.model, done.result.data.y_test
    post = posterior(model, widths=[(layer.v_bits, layer.u_bits) for layer in done.network.layers])
    files = {"posterior": args.out / "posterior.npz"}
    post.save(files["posterior"])
    samples = 1 if args.predict == "mode" else (args.samples or cfg.n_samples)
    backend = args.backend or PREDICT_BACKENDS[0]
    article = "an" if args.predict == "ensemble" else "a"
    what = ("the mode network" if args.predict == "mode"
            else f"{article} {args.predict} of {samples} networks drawn from the posterior")
    _say(f"predicting the {len(labels)} test samples with {what} on the {backend} core ...")
    with open_backend(post.network, backend) as core:
        try:
            p = predict(core, post, done.x_test, how=args.predict, samples=samples, seed=cfg.seed)
        except (RuntimeError, OSError, TimeoutError) as e:
            raise RunFailed(str(_backend_error(backend, e))) from e
    equal = None
    if backend != "golden":
        from spikeloop.app.calibration import equal_predictions

        equal = equal_predictions(p, predict(None, post, done.x_test, how=args.predict, samples=samples,
                                             seed=cfg.seed))
    accuracy, ece = p.accuracy(labels), p.ece(labels)
    print(f"{args.predict} ({samples} network{'s' if samples > 1 else ''}, {p.loads} loads) on {backend}: "
          f"test accuracy {accuracy:.2%}, ECE {ece:.3f} (20 bins), mean confidence {p.probs.max(1).mean():.3f}, "
          f"{p.seconds:.1f} s")
    if equal is not None:
        print(f"{backend} core vs golden model, every score of every network: {'EQUAL' if equal else 'DIFFERENT'}")
    files["reliability_core"] = reliability_diagram(
        p.reliability(labels), args.out / f"reliability_{args.predict}_{backend}.png", ece=ece,
        title=f"{cfg.dataset}, {cfg.rule}: {args.predict} of {samples} on {backend}")
    files["prediction"] = args.out / "prediction.json"
    files["prediction"].write_text(json.dumps({
        "how": args.predict, "samples": samples, "backend": backend, "seed": cfg.seed, "accuracy": accuracy,
        "ece": ece, "confidence": float(p.probs.max(1).mean()), "loads": p.loads, "seconds": p.seconds,
        "equal_to_golden": equal, "n_test": len(labels)}, indent=1))
    return {"files": files, "equal": equal}


def _train_in_the_loop(args, cfg) -> int:
    """`spikeloop train --in-the-loop BACKEND`: every forward pass on a core (spikeloop.app.inloop)."""
    from spikeloop.app.inloop import check_backend, train_in_the_loop
    from spikeloop.quant.inloop import CoreFault, InLoopInterrupted

    backend = check_backend(args.in_the_loop)
    _out_dir(args.out)
    options = {"bitfile": args.bitfile} if backend == "pynq" else {}
    _say(f"training on {cfg.dataset} with the {backend} core in the loop, hidden {'-'.join(map(str, cfg.hidden))}, "
         f"T = {cfg.steps}, {cfg.epochs} epochs (each batch runs on the core; Ctrl-C keeps the last complete step) ...")
    try:
        s = train_in_the_loop(cfg, backend=backend, out=args.out, progress=not args.quiet, **options)
    except CoreFault as e:
        raise RunFailed(str(e)) from e
    except InLoopInterrupted as e:
        kept = f"saved the checkpoint of step {e.steps} to {e.checkpoint}" if e.checkpoint else "nothing saved"
        raise Interrupted(kept) from None
    t = s["timing"]
    print(f"trained {cfg.dataset} {'-'.join(map(str, s['sizes']))} in the loop on {backend}: {s['steps']} steps, "
          f"{s['seconds']:.1f} s ({t['samples_per_second']:.0f} samples/s; core {t['core']:.1f} s, loads "
          f"{t['load']:.1f} s, forward {t['forward']:.1f} s, backward {t['backward']:.1f} s)")
    print(f"test accuracy on the core: {s['core_test_accuracy']:.2%}; the model in hardware mode: "
          f"{s['model_test_accuracy']:.2%} ({'EQUAL' if s['equal'] else 'DIFFERENT'})")
    for name, path in s.get("files", {}).items():
        print(f"  {name:<16} {path}")
    return 0 if s["equal"] else 1


def cmd_export(args) -> int:
    """Export a training checkpoint to a network image, printing what was rounded and the widths chosen."""
    train = _require("spikeloop.quant.train", "train", "spikeloop export")
    _out_file(args.out)
    network, report, cfg = train.export_checkpoint(args.checkpoint, margin_bits=args.margin_bits)
    print(report)
    digest = network.save(args.out)
    print(f"{'-'.join(map(str, network.sizes))} network -> {args.out} ({digest})")
    return 0


def _add_nir_import_arguments(n) -> None:
    """The options of `spikeloop nir import` and `spikeloop nir agree` (`from_nir`'s arguments)."""
    from spikeloop.quant.nir import FLOAT_DEFAULTS, SOURCES

    n.add_argument("--source", default=None, choices=SOURCES,
                   help="whose conventions the graph follows: nir (default) or norse (Norse 1.1.0's to_nir)")
    n.add_argument("--dt", type=float_in(0.0, open_lo=True), default=None,
                   help="seconds per timestep (default: the graph's spikeloop metadata, else 1e-4; --source norse: "
                        "1e-3)")
    n.add_argument("--frac-bits", type=int_in(*FRAC_BITS_RANGE), default=None,
                   help=f"F of the decay factors, {FRAC_BITS_RANGE[0]} to {FRAC_BITS_RANGE[1]} "
                        f"(default {FLOAT_DEFAULTS['frac_bits']})")
    n.add_argument("--input-shift", type=int_in(*INPUT_SHIFT_RANGE), default=None,
                   help=f"k: the membrane's fractional bits per weight, {INPUT_SHIFT_RANGE[0]} to "
                        f"{INPUT_SHIFT_RANGE[1]} (default {FLOAT_DEFAULTS['input_shift']})")
    n.add_argument("--decay-round", default=None, choices=ROUNDINGS,
                   help=f"how a decay rounds (default {FLOAT_DEFAULTS['decay_round']})")
    n.add_argument("--v-bits", type=int_in(*BITS_RANGE), default=None,
                   help=f"membrane width, {BITS_RANGE[0]} to {BITS_RANGE[1]} (default 16 + input shift)")
    n.add_argument("--u-bits", type=int_in(*BITS_RANGE), default=None,
                   help=f"current width, {BITS_RANGE[0]} to {BITS_RANGE[1]} (default 16 + input shift)")
    n.add_argument("--reset", default=None, choices=RESETS,
                   help="reset of every layer (default: spikeloop metadata, else zero; snnTorch's Leaky with its "
                        "default subtract reset: subtract_next)")
    n.add_argument("--binarize", action="store_true",
                   help="take the signs of non-binary weights, folding their scale into thresholds and biases")
    n.add_argument("--no-type-check", action="store_true",
                   help="skip NIR's own shape check when reading (files of older NIR versions often fail it; "
                        "the import checks the shapes it uses)")


def cmd_nir_export(args) -> int:
    """Write a network image as a NIR graph (docs/nir.md)."""
    nir = _require("spikeloop.quant.nir", "train", "spikeloop nir")
    _require("nir", "train", "spikeloop nir")
    _out_file(args.out)
    net = Network.load(args.network)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", nir.NIRReaderWarning)
        path = nir.write_nir(net, args.out, dt=args.dt, reader=args.reader)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"{'-'.join(map(str, net.sizes))} network -> {path} (NIR, {nir.PROFILE}, dt = {args.dt:g} s"
          + (f", for {args.reader}'s reader)" if args.reader else ")"))
    return 0


def _nir_import_options(args) -> dict:
    """`from_nir`'s keyword arguments from the options `_add_nir_import_arguments` declares."""
    return dict(dt=args.dt, frac_bits=args.frac_bits, v_bits=args.v_bits, u_bits=args.u_bits, reset=args.reset,
                decay_round=args.decay_round, input_shift=args.input_shift, source=args.source,
                binarize=args.binarize, type_check=not args.no_type_check)


def _nir_import(nir, graph, options: dict):
    """`from_nir`, its list of problems on one line (the command's error is one line)."""
    try:
        return nir.from_nir(graph, **options)
    except nir.NIRError as e:
        head, *problems = str(e).splitlines()
        if not problems:
            raise
        raise nir.NIRError(f"{head} " + "; ".join(p.removeprefix("- ") for p in problems)) from e


def cmd_nir_import(args) -> int:
    """Import a NIR graph (snnTorch, Norse, spikeloop) as a network image (docs/nir.md)."""
    nir = _require("spikeloop.quant.nir", "train", "spikeloop nir")
    _require("nir", "train", "spikeloop nir")
    _out_file(args.out)
    network, report = _nir_import(nir, args.graph, _nir_import_options(args))
    print(report)
    digest = network.save(args.out)
    print(f"{'-'.join(map(str, network.sizes))} network -> {args.out} ({digest})")
    return 0


def cmd_nir_agree(args) -> int:
    """Import a NIR graph and compare the golden model's output spikes with the source framework's (docs/nir.md)."""
    nir = _require("spikeloop.quant.nir", "train", "spikeloop nir")
    _require("nir", "train", "spikeloop nir")
    inputs, outputs = nir.read_recording(args.recorded)
    options = _nir_import_options(args)
    graph = nir.read_nir(args.graph, type_check=options.pop("type_check"))
    print(_nir_import(nir, graph, options).report)
    rows = nir.agreement_table(graph, inputs, outputs, sweep=None if args.sweep else {}, **options)
    print(f"output spikes of {args.graph} against {args.recorded} ({rows[0][1].samples} samples x "
          f"{inputs.shape[1]} steps x {outputs.shape[2]} outputs):")
    print(nir.format_agreement(rows))
    return 0


def cmd_netx_import(args) -> int:
    """Import a lava-dl netx HDF5 file as a network image that runs as Lava's Loihi model does (docs/lava.md)."""
    netx = _require("spikeloop.quant.netx", "train", "spikeloop netx")
    _require("h5py", "train", "spikeloop netx")
    _out_file(args.out)
    network, report = netx.from_netx(args.file)
    print(report)
    digest = network.save(args.out)
    print(f"{'-'.join(map(str, network.sizes))} network -> {args.out} ({digest})")
    return 0


#: `spikeloop loop` options that only training takes (--learn es): option -> (attribute, default).
LEARN_OPTIONS = {"--generations": ("generations", 40), "--population": ("population", 24),
                 "--sigma": ("sigma", 0.3), "--lr": ("lr", 0.05), "--hidden": ("hidden", 24),
                 "--eval-episodes": ("eval_episodes", 100), "--out": ("out", None), "--via": ("via", None),
                 "--init": ("init", None)}
LEARN_METHODS = ("es",)


def _check_loop_options(args) -> None:
    """Refuse option combinations `spikeloop loop` cannot run, before any work."""
    from spikeloop.host.evolve import TASKS

    if args.task not in TASKS:  # argparse's choices already refuse it; kept for direct callers
        raise OptionError(f"argument --task: {args.task!r}, expected one of {', '.join(TASKS)}")
    if args.learn is None:
        given = [opt for opt, (attr, _) in LEARN_OPTIONS.items() if getattr(args, attr) is not None]
        if given:
            raise OptionError(f"argument {given[0]}: only training takes it; add --learn es")
        if args.task != "cartpole" and args.policy is None:
            raise OptionError(f"argument --task: the hand-built policy sees the full state; --task {args.task} "
                              "needs --learn es (training) or --policy (a trained policy.npz)")
    else:
        if args.policy is not None:
            raise OptionError("argument --policy: runs a trained policy; leave it out with --learn es")
        for attr, default in LEARN_OPTIONS.values():
            if getattr(args, attr) is None and default is not None:
                setattr(args, attr, default)
        if args.population % 2:
            raise OptionError(f"argument --population: expected an even number (antithetic pairs), "
                              f"got {args.population}")
        if args.hidden % 2:
            raise OptionError(f"argument --hidden: expected an even number (mirror pairs), got {args.hidden}")


def cmd_loop(args) -> int:
    """Closed loop: Gymnasium's CartPole balanced by an SNN policy on the chosen backend (spikeloop.host);
    with --learn es, the policy is trained with the core in the loop."""
    from spikeloop.host import cartpole
    from spikeloop.host.loop import run_loop

    check_board_options(args)
    _check_loop_options(args)
    if args.learn is not None:
        return _learn(args)
    if args.log is not None:
        _writable(args.log, "--log")
    if args.policy is not None:
        from spikeloop.host.evolve import PolicyShape

        network = Network.load(args.policy)
        shape = PolicyShape(args.task, hidden=network.layers[0].n_out, v_bits=network.layers[0].v_bits)
        if network.sizes != (shape.n_in, shape.hidden, 1):
            raise ValueError(f"{args.policy}: a {'-'.join(map(str, network.sizes))} network, the {args.task} task's "
                             f"policies are {shape.n_in}-{shape.hidden}-1 (trained with --task {args.task}?)")
        encoder, decoder, geometry = shape.encoder, shape.decoder, shape.geometry
        env = None
    else:
        encoder, decoder, geometry = cartpole.ThermometerEncoder(), cartpole.decode, cartpole.GEOMETRY
        network = cartpole.policy_network(encoder)
    options = {"golden": geometry, "sim": geometry, **board_options(args)}[args.backend]
    try:
        if args.policy is not None:
            from spikeloop.host.evolve import make_task_env

            env = make_task_env(args.task)
        else:
            env = cartpole.make_env()
    except ImportError as e:
        raise ValueError(f"spikeloop loop needs {e.name}: pip install gymnasium") from e
    _say(f"CartPole-v1 on {args.backend}: {args.episodes} episode(s) of up to 500 steps (a second or so each "
         "on golden; Ctrl-C stops with a summary) ...")
    try:
        with open_backend(network, args.backend, **options) as core:
            result = run_loop(core, env, encoder, decoder, episodes=args.episodes, seed=args.seed,
                              log=args.log, progress=not args.quiet, close_env=True)
    except (RuntimeError, OSError, TimeoutError) as e:
        raise _backend_error(args.backend, e) from e
    log = f"; log {result.log}" if result.log else ""
    if result.interrupted:
        print(result.summary())
        print(f"{args.backend}: CartPole-v1 interrupted{log}")
        return 130
    print(result.report())
    solved = min(result.steps) >= 500
    print(f"{args.backend}: CartPole-v1 {'solved' if solved else 'NOT solved'} (500 steps per episode){log}")
    return 0 if solved else 1


def _learn(args) -> int:
    """`spikeloop loop --learn es`: train, evaluate, save the policy, the learning curve and its plot."""
    from spikeloop.host import evolve

    out = _out_dir(args.out if args.out is not None else Path("build/evolve") / args.task)
    shape = evolve.PolicyShape(args.task, hidden=args.hidden)
    config = evolve.ESConfig(population=args.population, generations=args.generations, episodes=args.episodes,
                             sigma=args.sigma, lr=args.lr, seed=args.seed)
    try:
        evolve.make_task_env(args.task).close()
    except ImportError as e:
        raise ValueError(f"spikeloop loop needs {e.name}: pip install gymnasium") from e
    options = {"golden": shape.geometry, "sim": shape.geometry, **board_options(args)}[args.backend]
    start = shape.initial(seed=args.seed)
    if args.init is not None:  # continue from saved latents
        try:
            start = np.load(args.init, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise OptionError(f"argument --init: cannot read {args.init} ({e})") from None
        if not isinstance(start, np.ndarray):
            raise OptionError(f"argument --init: {args.init} is not a .npy array of latents (latents.npy)")
        if start.shape != (shape.size,):
            raise OptionError(f"argument --init: {args.init} holds shape {start.shape}, the "
                              f"{args.task} policy with --hidden {args.hidden} has {shape.size} latents")
    try:
        core = open_backend(shape.network(start), args.backend, **options)
    except (RuntimeError, OSError, TimeoutError) as e:
        raise _backend_error(args.backend, e) from e
    with core:
        where = repr(core)
        evolve.load_options(core, args.via)  # refuses a --via the driver does not take, before any work
        _say(f"training {shape!r} on {args.backend} by evolution strategies: up to {config.generations} "
             f"generations of {config.population} candidates x {config.episodes} episode(s), seed {config.seed} "
             "(seconds to minutes per generation; Ctrl-C keeps what was learnt) ...")
        try:
            result = evolve.evolve(core, shape, config, params=start, via=args.via, progress=not args.quiet)
        except (RuntimeError, OSError, TimeoutError) as e:
            raise RunFailed(str(_backend_error(args.backend, e))) from e
        print(result.summary())
        evaluation = None
        if not result.interrupted and result.curve:
            _say(f"evaluating the policy on {args.eval_episodes} episodes of up to 500 steps ...")
            try:
                evaluation = evolve.evaluate(core, shape, result.params, episodes=args.eval_episodes, via=args.via,
                                             progress=not args.quiet)
            except KeyboardInterrupt:
                result.interrupted = True
            if evaluation is not None:
                print(f"evaluation: {evaluation.summary()}")
    if not result.curve:
        raise Interrupted("no generation finished; nothing saved")
    extra = {"backend": args.backend, "config": config, "core": where}
    files = evolve.save(out, shape, result, evaluation, extra=extra)
    import json

    from spikeloop.quant.plots import learning_curve

    files["plot"] = learning_curve(json.loads(files["curve"].read_text()), out / "learning.png")
    for name, path in files.items():
        print(f"  {name:<8} {path}")
    if result.interrupted:
        raise Interrupted(f"the policy learnt so far and its learning curve are in {out}")
    return 0


def cmd_demo(args) -> int:
    """Train on digits, export, run the golden model and the simulated board, check bit-exact, close a loop."""
    from spikeloop.app.demo import demo

    out = _out_dir(args.out)
    fresh = not any(out.iterdir())
    try:
        return demo(out, seed=args.seed, quick=args.quick)
    except KeyboardInterrupt as e:
        if getattr(e, "checkpoint", None) is not None or getattr(e, "epochs", None) is not None:
            raise  # training stopped: it says what it saved
        if fresh and any(out.iterdir()):
            raise Interrupted(f"the stages finished so far wrote their files to {out}") from None
        raise Interrupted("nothing saved") from None


def cmd_continual(args) -> int:
    """Continual learning on a core: five two-class tasks learnt in order, Bayes (the posterior as the next prior)
    against straight-through, with or without a coreset; prints the accuracy matrices and forgetting."""
    from spikeloop.app import continual

    study = continual.config_from_args(args)  # refused before any work
    out = _out_dir(args.out)
    _require("torch", "train", "spikeloop continual")
    from spikeloop.quant.inloop import CoreFault

    runs = len(study.methods) * len(study.seeds)
    _say(f"continual learning on split {study.dataset} ({study.tasks} tasks): {runs} runs on the {study.backend} "
         f"core, {study.jobs} at a time (minutes on the simulated board; Ctrl-C stops, nothing saved) ...")
    try:
        result = continual.run_study(study, log=_say, **continual.backend_options(args))
    except CoreFault as e:
        raise RunFailed(str(e)) from e
    except KeyboardInterrupt:
        raise Interrupted("nothing saved") from None
    print(continual.report(result))
    files = continual.save(result, out)
    print(f"{runs} runs in {result.seconds:.0f} s")
    for name, path in files.items():
        print(f"  {name:<16} {path}")
    return 0


def cmd_verilog(args) -> int:
    """Write the Verilog of a core configuration and its manifest (default: the 784-256-128-10 core)."""
    from spikeloop.configargs import config_from_args
    from spikeloop.rtl import verilog

    config = config_from_args(args)  # the options refused before any work
    _out_dir(args.out)
    sizes = "-".join(map(str, config.sizes))
    _say(f"writing the Verilog of {sizes} (Amaranth, then Yosys's Verilog back end: 10-30 s) ...")
    from spikeloop.boards.estimate import MAX_CHUNK as TIMING_CHUNK

    wide = max(layer.chunk for layer in config.layers)
    if wide > TIMING_CHUNK:
        _say(f"warning: chunk {wide} > {TIMING_CHUNK}: a popcount this wide takes Yosys a long time and much "
             "memory, and may not meet timing (spikeloop estimate --analytic says whether it fits a board)")
    path = verilog.generate(config, args.out)
    print(f"{path} (design hash {design_hash(config).hex()[:16]}...)")
    return 0


def cmd_estimate(args) -> int:
    """LUT/FF/BRAM/DSP (Yosys and analytic), cycles and ops/cycle of a core configuration on a board."""
    from spikeloop.boards import estimate
    from spikeloop.boards.devices import BOARDS

    if args.board not in BOARDS:
        raise OptionError(f"argument --board: {args.board!r}, expected one of {', '.join(BOARDS)}")
    if not 0 < args.margin <= 1:
        raise OptionError(f"argument --margin: expected a number in (0, 1], got {args.margin:g}")
    if not 0 <= args.max_chunk <= MAX_CHUNK:
        raise OptionError(f"argument --max-chunk: expected an integer in [0, {MAX_CHUNK}] (0: no cap), "
                          f"got {args.max_chunk}")
    if args.json is not None:
        _out_file(args.json, "--json")
    if args.cache is not None and args.cache.exists() and not args.cache.is_dir():
        raise OptionError(f"argument --cache: {args.cache} is a file, expected a folder")
    board = BOARDS[args.board]
    if args.largest or args.auto:  # the options checked (and refused) before any long step
        estimate.search_inputs(args, board)
    else:
        from spikeloop.configargs import config_from_args

        config_from_args(args, default_sizes=board.default_sizes, default_lanes=board.default_lanes,
                         default_chunk=board.default_chunk)
    if args.largest or args.auto:
        then = "" if args.analytic else ", then synthesizing it with Yosys (tens of minutes; --analytic skips it)"
        what = "the automatic configuration" if args.auto else "the largest configuration that fits"
        _say(f"searching for {what} (a few seconds){then} ...")
    elif not args.analytic:
        what = "Yosys, then nextpnr" if args.board == "ulx3s" else "Yosys"
        _say(f"synthesizing with {what} (about 3-5 minutes the first time, cached after; --analytic: a second) ...")
    return estimate.run(args)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and the examples' line breaks."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose refusals are one line (the option, its range) pointing to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(sub, name: str, func, help_text: str | None = None, **kwargs) -> argparse.ArgumentParser:
    help_text = help_text or func.__doc__
    s = sub.add_parser(name.split()[-1], help=help_text, description=help_text, epilog=_examples(name),
                       formatter_class=_Formatter, **kwargs)
    s.set_defaults(func=func)
    return s


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spikeloop")
    except PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `spikeloop` command."""
    from spikeloop.host.driver import LOAD_PATHS

    p = _Parser(prog="spikeloop", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"spikeloop {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = _command(sub, "info", cmd_info)
    s.add_argument("network", type=Path, help="network image (.npz)")

    s = _command(sub, "run", cmd_run)
    s.add_argument("--network", required=True, type=Path, help="network image (.npz)")
    s.add_argument("--input", required=True, type=Path,
                   help="input spikes [T, n_in] or [B, T, n_in] of 0/1 (bool or integer): a spike file .npz "
                        "with array 'spikes' (spikeloop random-spikes) or a plain .npy array")
    s.add_argument("--backend", default="golden", choices=BACKENDS,
                   help="golden (the numerics alone), sim (the simulated board, Verilator), pynq (on a PYNQ "
                        "board) or serial (a board on a USB-UART) (default: golden)")
    s.add_argument("--out", required=True, type=Path, help="output spike file (.npz); its folder is created")
    s.add_argument("--membranes", action="store_true", help="also store the last layer's pre-reset membranes")
    s.add_argument("--lanes", type=int_or_list, default=None,
                   help="sim: neurons per clock P, one or per layer, at most each layer's outputs "
                        f"(default {DEFAULT_LANES}, or a layer's outputs if fewer)")
    s.add_argument("--chunk", type=int_or_list, default=None,
                   help="sim: synapses per clock C, one or per layer, at most each layer's inputs "
                        f"(default {DEFAULT_CHUNK}, or a layer's inputs if fewer)")
    s.add_argument("--events", type=events_type, default=None,
                   help="sim: E, active inputs per clock of the event-driven crossbar, one or per layer (0: the "
                        "dense crossbar), at most each layer's inputs (default: every layer dense)")
    add_board_arguments(s)

    s = _command(sub, "random-network", cmd_random_network)
    s.add_argument("--sizes", required=True, type=_sizes, help="n_in,n_out0,n_out1,... e.g. 784,256,10")
    s.add_argument("--seed", type=int_in(0), default=0, help="seeds the weights and thresholds (default 0)")
    s.add_argument("--neuron", default="lif", choices=NEURONS, help="neuron model of every layer (lif)")
    s.add_argument("--reset", default="subtract", choices=RESETS, help="reset after a spike, every layer (subtract)")
    s.add_argument("--out", required=True, type=Path, help="network image to write (.npz); its folder is created")

    s = _command(sub, "random-spikes", cmd_random_spikes)
    s.add_argument("--n-in", required=True, type=int_in(1, MAX_WIDTH), help="inputs per timestep (the network's n_in)")
    s.add_argument("--steps", required=True, type=int_in(1), help="timesteps T, at least 1")
    s.add_argument("--batch", type=int_in(1), default=None,
                   help="batch entries B: writes [B, T, n_in] (default: [T, n_in])")
    s.add_argument("--density", type=float_in(0.0, 1.0), default=0.2,
                   help="probability that an input spikes at a timestep, in [0, 1] (default 0.2)")
    s.add_argument("--seed", type=int_in(0), default=0, help="seeds the random spikes (default 0)")
    s.add_argument("--out", required=True, type=Path, help="spike file to write (.npz); its folder is created")

    s = _command(sub, "train", cmd_train)
    for opt, (field, kind, text) in TRAIN_OPTIONS.items():
        choices = TRAIN_CHOICES.get(field)
        s.add_argument(opt, type=kind, default=None, help=text, choices=choices)
    s.add_argument("--hidden", type=int_in(1, MAX_WIDTH), nargs="+", default=None,
                   help="hidden layer sizes (default 256)")
    s.add_argument("--recurrent", action="store_true",
                   help="the hidden layers take their own spikes of the previous timestep (docs/numerics.md)")
    s.add_argument("--out", type=Path, default=Path("build/train"), help="output folder (default build/train)")
    s.add_argument("--no-plots", action="store_true", help="do not draw the PNGs")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--in-the-loop", metavar="BACKEND", default=None,
                   help="run every forward pass on a core with probes: golden, sim or pynq (the model's surrogate "
                        "gives the gradients; the parameters are loaded after each step)")
    s.add_argument("--bitfile", default="spikeloop.bit", help="--in-the-loop pynq: the overlay's bitstream")
    from spikeloop.host.ensemble import PREDICTIONS

    s.add_argument("--predict", default=None, choices=PREDICTIONS,
                   help="after training, predict the test split on --backend's core and print accuracy and ECE: "
                        "mode (the posterior's mode network), ensemble (--samples networks drawn afresh per batch) "
                        "or committee (--samples networks drawn once); the last two need --rule bayes")
    s.add_argument("--samples", type=int_in(1), default=None,
                   help="--predict ensemble or committee: networks drawn from the posterior, at least 1 (default 10)")
    s.add_argument("--backend", default=None, choices=PREDICT_BACKENDS,
                   help="--predict: golden (the numerics alone) or sim (the simulated board, checked equal to the "
                        "golden model) (default golden)")

    s = _command(sub, "export", cmd_export)
    s.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by `spikeloop train`")
    s.add_argument("--out", required=True, type=Path, help="network image to write (.npz)")
    s.add_argument("--margin-bits", type=int_in(0, BITS_RANGE[1]), default=0,
                   help="extra bits on top of the widths the calibration needs (default 0)")

    s = _command(sub, "nir", None, help_text="NIR graphs in and out (docs/nir.md)")
    nsub = s.add_subparsers(dest="nir_command", required=True, metavar="{export,import,agree}")
    s.set_defaults(func=None)
    n = _command(nsub, "nir export", cmd_nir_export)
    n.add_argument("--network", required=True, type=Path, help="network image (.npz)")
    n.add_argument("--out", required=True, type=Path, help="NIR file to write")
    n.add_argument("--dt", type=float_in(0.0, open_lo=True), default=1e-4,
                   help="seconds per timestep, > 0 (default 1e-4, as snnTorch)")
    n.add_argument("--reader", choices=("snntorch", "norse"), default=None,
                   help="write for that framework's NIR reader (snnTorch 1.0, Norse 1.1.0): refuses what it cannot "
                        "express, warns where it is approximate (docs/nir.md)")
    n = _command(nsub, "nir import", cmd_nir_import)
    n.add_argument("graph", type=Path, help="NIR file")
    n.add_argument("--out", required=True, type=Path, help="network image to write (.npz)")
    _add_nir_import_arguments(n)
    n = _command(nsub, "nir agree", cmd_nir_agree)
    n.add_argument("graph", type=Path, help="NIR file")
    n.add_argument("--recorded", required=True, type=Path,
                   help="the source framework's spikes (.npz: inputs and outputs [samples, steps, neurons])")
    n.add_argument("--sweep", action="store_true",
                   help="also every combination of --decay-round and --input-shift 0, 4, 8, 12")
    _add_nir_import_arguments(n)

    s = _command(sub, "netx", None, help_text="lava-dl netx HDF5 files in (docs/lava.md)")
    nsub = s.add_subparsers(dest="netx_command", required=True, metavar="{import}")
    s.set_defaults(func=None)
    n = _command(nsub, "netx import", cmd_netx_import)
    n.add_argument("file", type=Path, help="netx HDF5 file written by lava-dl (.net)")
    n.add_argument("--out", required=True, type=Path, help="network image to write (.npz)")

    s = _command(sub, "verilog", cmd_verilog)
    add_config_arguments(s, default_sizes="784,256,128,10, lanes 16, chunk 64")
    s.add_argument("--out", type=Path, default=Path("build/verilog"), help="output folder (default build/verilog)")

    s = _command(sub, "estimate", cmd_estimate)
    from spikeloop.boards.estimate import add_arguments as add_estimate_arguments

    add_estimate_arguments(s)

    s = _command(sub, "loop", cmd_loop)
    s.add_argument("--backend", default="golden", choices=BACKENDS, help="where the policy runs (default: golden)")
    s.add_argument("--episodes", type=int_in(1), default=3,
                   help="episodes to run, at least 1; with --learn: per candidate and generation (default 3)")
    s.add_argument("--seed", type=int_in(0), default=0,
                   help="episode e is reset with seed + e; with --learn: seeds the search (default 0)")
    s.add_argument("--log", type=Path, default=Path("build/loop.log"), help="log file (default build/loop.log)")
    s.add_argument("--task", default="cartpole", choices=("cartpole", "cartpole-positions"),
                   help="cartpole (full state) or cartpole-positions (cart position and pole angle only: the "
                        "policy needs memory) (default cartpole)")
    s.add_argument("--policy", type=Path, default=None,
                   help="run a trained policy (policy.npz written by --learn es) instead of the hand-built one")
    s.add_argument("--learn", default=None, choices=LEARN_METHODS,
                   help="train the policy with the core in the loop: es (evolution strategies)")
    s.add_argument("--generations", type=int_in(1), default=None, help="--learn: generations at most (default 40)")
    s.add_argument("--population", type=int_in(2), default=None,
                   help="--learn: candidates per generation, even (default 24)")
    s.add_argument("--sigma", type=float_in(0.0, open_lo=True), default=None,
                   help="--learn: noise on the latent parameters, > 0 (default 0.3)")
    s.add_argument("--lr", type=float_in(0.0, open_lo=True), default=None, help="--learn: Adam's step, > 0 (0.05)")
    s.add_argument("--hidden", type=int_in(2, 1024), default=None,
                   help="--learn: hidden neurons, even (mirror pairs) (default 24)")
    s.add_argument("--eval-episodes", type=int_in(1), default=None,
                   help="--learn: episodes of the final evaluation (default 100)")
    s.add_argument("--out", type=Path, default=None,
                   help="--learn: folder for policy.npz, latents.npy, learning.json, learning.png "
                        "(default build/evolve/TASK)")
    s.add_argument("--init", type=Path, default=None,
                   help="--learn: start from these latents (latents.npy of an earlier run) instead of random ones")
    s.add_argument("--via", default=None, choices=LOAD_PATHS,
                   help="--learn: how Core.load loads each candidate, passed as load(via=...) when the driver "
                        "takes it (default: the driver's own)")
    add_board_arguments(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    s = _command(sub, "continual", cmd_continual)
    from spikeloop.app.continual import add_arguments as add_continual_arguments

    add_continual_arguments(s)

    s = _command(sub, "demo", cmd_demo)
    s.add_argument("--out", type=Path, default=Path("build/demo"),
                   help="folder for the network, the pictures and report.json (default build/demo)")
    s.add_argument("--seed", type=int_in(0), default=0, help="seeds training, the data split and the loop (default 0)")
    s.add_argument("--quick", action="store_true", help="a few epochs of a small network (for tests)")
    return p


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _interrupted(e: KeyboardInterrupt) -> str:
    """What Ctrl-C left: the checkpoint training saved, or nothing."""
    if isinstance(e, Interrupted):
        return f"interrupted; {e.kept}"
    checkpoint = getattr(e, "checkpoint", None)
    if checkpoint is not None:
        return f"interrupted: saved the checkpoint of epoch {e.epochs} to {checkpoint}"
    if getattr(e, "epochs", None) == 0:
        return "interrupted before the first epoch ended; nothing saved"
    return "interrupted; nothing saved"


def main(argv=None) -> int:
    """Entry point; bad input ends with a one-line error and exit status 2, a failed run with 1, Ctrl-C with 130."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and argparse's refusals (2), already printed
        return e.code if isinstance(e.code, int) else 2
    except KeyboardInterrupt:
        print("spikeloop: interrupted; nothing saved", file=sys.stderr)
        return 130
    sub_command = getattr(args, "nir_command", None) or getattr(args, "netx_command", None)
    name = " ".join(filter(None, (args.command, sub_command)))
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"spikeloop {name}: {_interrupted(e)}", file=sys.stderr)
        return 130
    except (NetworkError, SpikeError, ValueError, FileNotFoundError) as e:
        print(f"spikeloop {name}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"spikeloop {name}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get("SPIKELOOP_TRACEBACK"):
            raise
        print(f"spikeloop {name}: failed: {type(e).__name__}: {_one_line(e)} "
              "(SPIKELOOP_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
