"""Where the loop earns its keep: fine-tuning with the core in the loop against fine-tuning in software.

Three ways a deployed network can differ from the model that trained it, each on the scikit-learn
digits (`spikeloop.quant.data`), for several seeds:

- ``float``: the network was trained in float mode (``hardware=False``) and deployed on the
  integer core (thresholds, biases and decays rounded, floor shifts, saturation);
- ``narrow``: the core's membranes are narrower than the model assumed: exported with
  ``narrow_bits`` fewer bits than the training set needs, so the core saturates; the model
  knows nothing of those widths (``narrow_layers``: every layer, or the hidden ones only);
- ``stuck``: a board with stuck weight bits (`spikeloop.sim.faults.StuckWeightBits` over the
  golden board, ``stuck_fraction`` of the synapses of every layer, seeded).

For each: the test accuracy on the core before fine-tuning, after fine-tuning in the loop
(`spikeloop.quant.inloop.fit` with the core: the model's own mode and widths, the core's
values), and after the same fine-tuning in software (`fit` without the core) deployed on the same
core. ``model`` is what the model itself predicts before fine-tuning (what its trainer expects).

    python -m spikeloop.app.inloop_study --out build/inloop_study       # the full study (minutes)
    make experiments                                                    # the same, as a test

The cores are the golden board behind the host driver (`spikeloop.host.Core` over
`BoardTransport`), built with probes: every forward pass is the driver's
``run(spikes, probe="all")``, every parameter load the driver's (a load frame by stream, through
the faulty board's memory when there is one).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

SCENARIOS = ("float", "narrow", "stuck")
COLUMNS = ("model", "before", "in_the_loop", "software")
NARROW_LAYERS = ("all", "hidden")


@dataclass(frozen=True)
class StudyConfig:
    """The study's settings; the defaults are the full study."""

    seeds: tuple[int, ...] = (0, 1, 2)
    scenarios: tuple[str, ...] = SCENARIOS
    hidden: tuple[int, ...] = (64,)
    steps: int = 8
    pre_epochs: int = 8
    fine_epochs: int = 3
    batch_size: int = 32
    lr: float = 0.02  # fine-tuning, synapses
    lr_neuron: float = 0.02  # fine-tuning, thresholds, biases, gain
    narrow_bits: int = 3
    narrow_layers: str = "all"  # which layers "narrow" narrows: "all", or "hidden" (all but the readout)
    stuck_fraction: float = 0.1
    max_train: int | None = None  # a seeded subset of the training split (None: all)
    max_test: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad or not self.scenarios:
            raise ValueError(f"scenarios = {self.scenarios!r}; expected some of {', '.join(SCENARIOS)}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds = {self.seeds!r}, expected non-negative integers")
        for name in ("steps", "pre_epochs", "fine_epochs", "batch_size", "narrow_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} = {v!r}, expected a positive integer")
        if self.narrow_layers not in NARROW_LAYERS:
            raise ValueError(f"narrow_layers = {self.narrow_layers!r}; expected one of {', '.join(NARROW_LAYERS)}")
        if not 0 < self.stuck_fraction <= 1:
            raise ValueError(f"stuck_fraction = {self.stuck_fraction!r}, expected a number in (0, 1]")


def golden_core(network, *, stuck_fraction: float | None = None, seed: int = 0):
    """A core with probes for ``network`` (its widths) on the golden board behind the driver, loaded (by
    stream, without read-back), with stuck weight bits when ``stuck_fraction`` is given."""
    from spikeloop.config import CoreConfig
    from spikeloop.host import Core
    from spikeloop.host.sim_transport import BoardTransport
    from spikeloop.sim.faults import StuckWeightBits
    from spikeloop.sim.golden_board import GoldenBoard

    config = CoreConfig.for_network(network, lanes=8, chunk=32, membranes=True, probes=True)
    board = GoldenBoard(config)
    if stuck_fraction is not None:
        board = StuckWeightBits(board, fraction=stuck_fraction, seed=seed)
    core = Core(BoardTransport(board=board), expect=config)
    core.load(network, verify=False)
    return core


@dataclass
class Row:
    """One scenario and seed: accuracies on the test split (see `COLUMNS`) and seconds spent."""

    scenario: str
    seed: int
    model: float
    before: float
    in_the_loop: float
    software: float
    seconds: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)  # the in-the-loop fine-tuning's, by part


def _subset(data, study: StudyConfig, seed: int):
    rng = np.random.default_rng(seed + 12345)
    x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
    if study.max_train is not None and study.max_train < len(y_tr):
        i = np.sort(rng.choice(len(y_tr), study.max_train, replace=False))
        x_tr, y_tr = x_tr[i], y_tr[i]
    if study.max_test is not None and study.max_test < len(y_te):
        i = np.sort(rng.choice(len(y_te), study.max_test, replace=False))
        x_te, y_te = x_te[i], y_te[i]
    return replace(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


def run_study(study: StudyConfig | None = None, *, progress: bool = False, log=None) -> list[Row]:
    """Every scenario for every seed; returns one `Row` each."""
    from spikeloop.quant.export import bits_for, export
    from spikeloop.quant.inloop import core_accuracy, fit, load_model
    from spikeloop.quant.train import TrainConfig, calibration_spikes, encode_test, evaluate, train

    study = study or StudyConfig()
    say = log or (lambda line: None)
    rows = []
    for seed in study.seeds:
        pretrained = {}
        for scenario in study.scenarios:
            t0 = time.perf_counter()
            hardware = scenario != "float"
            cfg = TrainConfig(dataset="digits", hidden=study.hidden, steps=study.steps, epochs=study.pre_epochs,
                              batch_size=study.batch_size, hardware=hardware, seed=seed)
            if hardware not in pretrained:
                data = _subset(cfg.load_data(), study, seed)
                pretrained[hardware] = (train(cfg, data=data, progress=progress, evaluate_float=False), data)
            result, data = pretrained[hardware]
            model = result.model
            x_test = encode_test(cfg, data.x_test)
            expected = evaluate(model, x_test, data.y_test, how="mode", hardware=hardware).accuracy
            auto = export(model, calibration=calibration_spikes(cfg, data)).report
            widths = [(layer.v_bits, layer.u_bits) for layer in auto.layers]
            if scenario == "narrow":
                ints = [layer.integer_params() for layer in model.layers]
                floor = [bits_for(min(int(p.bias.min()), 0), max(int(p.theta.max()), int(p.bias.max()), 1))
                         for p in ints]
                last = len(widths) - 1
                widths = [(v, u) if k == last and study.narrow_layers == "hidden" else
                          (max(v - study.narrow_bits, f), max(u - study.narrow_bits, f))
                          for k, ((v, u), f) in enumerate(zip(widths, floor))]
            network = export(model, widths=widths).network
            stuck = study.stuck_fraction if scenario == "stuck" else None
            core = golden_core(network, stuck_fraction=stuck, seed=seed)
            t1 = time.perf_counter()
            before = core_accuracy(core, x_test, data.y_test, model.readout)
            fine = replace(cfg, epochs=study.fine_epochs, lr=study.lr, lr_neuron=study.lr_neuron)
            loop_model = copy.deepcopy(model)
            loop = fit(fine, data=data, model=loop_model, core=core, widths=widths, seed_offset=1, progress=progress)
            in_loop = core_accuracy(core, x_test, data.y_test, model.readout)
            t2 = time.perf_counter()
            soft_model = copy.deepcopy(model)
            fit(fine, data=data, model=soft_model, seed_offset=1, progress=progress)
            load_model(core, soft_model, widths)
            software = core_accuracy(core, x_test, data.y_test, model.readout)
            t3 = time.perf_counter()
            core.close()
            row = Row(scenario, seed, expected, before, in_loop, software,
                      {"pretrain_and_deploy": t1 - t0, "in_the_loop": t2 - t1, "software": t3 - t2},
                      loop.totals)
            rows.append(row)
            say(f"{scenario} seed {seed}: model {expected:.3f}, on the core before {before:.3f}, in the loop "
                f"{in_loop:.3f}, software {software:.3f} ({t3 - t0:.0f} s)")
    return rows


def table(rows: list[Row]) -> str:
    """A Markdown table: per scenario, each column's mean and standard deviation over the seeds, and the seeds."""
    lines = ["| scenario | seeds | model | core before | core after in-the-loop | core after software |",
             "|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        mine = [r for r in rows if r.scenario == scenario]
        if not mine:
            continue
        cells = []
        for col in COLUMNS:
            values = np.array([getattr(r, col) for r in mine])
            cells.append(f"{values.mean():.1%} ± {values.std():.1%}")
        lines.append(f"| {scenario} | {', '.join(str(r.seed) for r in mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the study; print the table (and write rows and table to ``--out``)."""
    p = argparse.ArgumentParser(prog="python -m spikeloop.app.inloop_study", description=__doc__.split("\n\n")[0])
    d = StudyConfig()
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    p.add_argument("--scenarios", nargs="+", default=list(d.scenarios), choices=SCENARIOS)
    p.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden))
    for name in ("steps", "pre_epochs", "fine_epochs", "batch_size", "narrow_bits", "max_train", "max_test"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("lr", "lr_neuron", "stuck_fraction"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    p.add_argument("--narrow-layers", choices=NARROW_LAYERS, default=d.narrow_layers,
                   help="the layers the narrow scenario narrows (hidden: all but the readout)")
    p.add_argument("--out", type=Path, default=None, help="folder for rows.json and table.md")
    p.add_argument("--progress", action="store_true", help="progress bars")
    ns = p.parse_args(argv)
    try:
        study = StudyConfig(**{k: getattr(ns, k) for k in StudyConfig.__dataclass_fields__})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = run_study(study, progress=ns.progress, log=lambda line: print(line, file=sys.stderr, flush=True))
    text = table(rows)
    print(text)
    if ns.out is not None:
        ns.out.mkdir(parents=True, exist_ok=True)
        (ns.out / "rows.json").write_text(json.dumps({"study": asdict(study), "rows": [asdict(r) for r in rows]},
                                                     indent=1))
        (ns.out / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
