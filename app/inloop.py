"""`spikeloop train --in-the-loop BACKEND`: training with a core in the loop, from the command line or Python.

    from spikeloop.app.inloop import train_in_the_loop
    summary = train_in_the_loop(TrainConfig(hidden=(64,), epochs=3), backend="golden", out="build/loop")

The model is built as `spikeloop.quant.train.build_model` builds it; the core's widths are chosen
once, before training, by `spikeloop.quant.export.export` on the training set with
`MARGIN_BITS` spare bits (the model then computes with the same widths, so it stays bit-exact
with the core); the core is opened with probes on the named backend (`open_core(backend,
network, probes=True)`), and `spikeloop.quant.inloop.fit` trains with every forward pass on it.
Afterwards the test split runs on the core, and ``out`` gets ``checkpoint.pt``, ``network.npz``
(the last parameters, as loaded) and ``metrics.json`` (accuracies, per-part timing).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

#: The backends a training loop can use (a core with probes: the golden board, the simulated board, a PYNQ).
LOOP_BACKENDS = ("golden", "sim", "pynq")
#: Spare bits on top of the widths the untrained model needs on the training set.
MARGIN_BITS = 2


def check_backend(backend) -> str:
    """``backend`` if in-the-loop training can use it, else ValueError naming it and the choices."""
    if backend not in LOOP_BACKENDS:
        raise ValueError(f"--in-the-loop {backend!r}: unknown backend; expected one of {', '.join(LOOP_BACKENDS)}")
    return backend


def open_loop_core(network, backend: str, *, say=None, **options):
    """A core with probes on ``backend``, loaded with ``network`` (`spikeloop.app.cli.open_backend`)."""
    from spikeloop.app.cli import _say, open_backend

    check_backend(backend)
    if backend in ("golden", "sim"):  # cores built here: with probes; a PYNQ's bitstream has them or not
        options["probes"] = True
    core = open_backend(network, backend, say=say or _say, **options)
    if not core.config.probes:
        what = core.transport.describe()
        core.close()
        raise ValueError(f"in-the-loop training needs a core built with probes (CONFIG.probes); {what} has none: "
                         "build the bitstream with probes")
    return core


def train_in_the_loop(cfg=None, *, backend: str = "golden", core=None, out=None, progress: bool = True, data=None,
                      margin_bits: int = MARGIN_BITS, log=None, **options) -> dict:
    """Train as ``cfg`` (a `TrainConfig`) says with every forward pass on a core; returns the summary.

    ``backend`` opens the core (``options`` go to `open_core`: ``bitfile=`` for pynq, ``lanes=``,
    ``chunk=``); or pass an open ``core`` (duck-typed as `spikeloop.quant.inloop` says; not closed
    here). Raises `spikeloop.quant.inloop.CoreFault` (checkpoint saved to ``out``) when the core fails,
    `InLoopInterrupted` on Ctrl-C.
    """
    from spikeloop.quant.export import export
    from spikeloop.quant.inloop import core_accuracy, fit
    from spikeloop.quant.train import TrainConfig, calibration_spikes, encode_test, evaluate, save_checkpoint

    check_backend(backend)
    cfg = cfg or TrainConfig()
    out = Path(out) if out is not None else None
    data = data if data is not None else cfg.load_data()
    from spikeloop.quant.train import build_model

    model = build_model(cfg, data.n_in, data.n_classes)
    report = export(model, calibration=calibration_spikes(cfg, data), margin_bits=margin_bits).report
    widths = [(layer.v_bits, layer.u_bits) for layer in report.layers]
    model.set_widths(widths)
    network = export(model, widths=widths).network
    t0 = time.perf_counter()
    own = core is None
    if own:
        core = open_loop_core(network, backend, **options)
    opened = time.perf_counter() - t0
    try:
        done = fit(cfg, data=data, model=model, core=core, widths=widths, progress=progress, log=log,
                   checkpoint=None if out is None else out / "checkpoint.pt")
        x_test = encode_test(cfg, data.x_test)
        t1 = time.perf_counter()
        core_acc = core_accuracy(core, x_test, data.y_test, model.readout)
        tested = time.perf_counter() - t1
    finally:
        if own:
            core.close()
    model_acc = evaluate(model, x_test, data.y_test, how="mode", hardware=True).accuracy
    network = export(model, widths=widths).network
    summary = {
        "config": asdict(cfg), "backend": backend, "sizes": list(network.sizes), "widths": [list(w) for w in widths],
        "steps": done.steps, "core_test_accuracy": core_acc, "model_test_accuracy": model_acc,
        "equal": core_acc == model_acc, "seconds": done.seconds, "open_seconds": opened,
        "test_seconds": tested, "timing": done.totals, "history": done.history,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        files = {"checkpoint": save_checkpoint(done.train_result(data, {"accuracy": model_acc,
                                                                        "core_accuracy": core_acc}),
                                               out / "checkpoint.pt"),
                 "network": out / "network.npz", "metrics": out / "metrics.json"}
        network.save(files["network"])
        summary["files"] = {k: str(v) for k, v in files.items()}
        files["metrics"].write_text(json.dumps(summary, indent=1))
    return summary
