"""Where recurrence matters: row-sequential images, feed-forward against recurrent networks of the same size.

Each image is shown one row per timestep (`spikeloop.quant.data.rows_encode`: a pixel above 0.5 fires): the
scikit-learn digits as 8 rows of 8 inputs, MNIST-5k as 28 rows of 28. A network sees one row at a time and
must remember the rows before it; a feed-forward network has only its membranes for that, a recurrent one
also its own spikes of the previous timestep (docs/numerics.md). The feed-forward and the recurrent network
have the same layer sizes; a third, "feedforward-wide", has a hidden layer wide enough for as many synapses
as the recurrent one (its recurrent weights included). All are trained alike (`spikeloop.quant.train.run`:
straight-through weights, backpropagation through time, exported and checked bit-exact against the golden
model).

Every exported network then runs its test split on a core (``backend``: the simulated board, the generated
Verilog under Verilator, or the golden board), and the core's predictions are compared with the golden
model's, prediction for prediction.

    python -m spikeloop.app.sequence_study --out build/sequence_study      # the full study (minutes)
    make sequence-study                                                     # the same
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

KINDS = ("feedforward", "recurrent", "feedforward-wide")
BACKENDS = ("sim", "golden")
#: Per data set: timesteps (rows), hidden layer sizes, epochs.
TASKS = {
    "digits": {"steps": 8, "hidden": (64,), "epochs": 30},
    "mnist5k": {"steps": 28, "hidden": (128,), "epochs": 12},
}


@dataclass(frozen=True)
class StudyConfig:
    """The study's settings; the defaults are the full study."""

    datasets: tuple[str, ...] = tuple(TASKS)
    kinds: tuple[str, ...] = KINDS
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: dict = field(default_factory=lambda: {name: task["epochs"] for name, task in TASKS.items()})
    max_test: int | None = None  # test samples run on the core (None: the whole test split)
    backend: str = "sim"
    lanes: int = 16

    def __post_init__(self):
        for name in self.datasets:
            if name not in TASKS:
                raise ValueError(f"data set {name!r}; the study knows {', '.join(TASKS)}")
        if not self.kinds or any(kind not in KINDS for kind in self.kinds):
            raise ValueError(f"kinds = {self.kinds!r}; expected some of {', '.join(KINDS)}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds = {self.seeds!r}, expected non-negative integers")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend = {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        if self.max_test is not None and (isinstance(self.max_test, bool) or not isinstance(self.max_test, int)
                                          or self.max_test < 1):
            raise ValueError(f"max_test = {self.max_test!r}, expected a positive integer or None")

    @classmethod
    def quick(cls, **changes) -> StudyConfig:
        """A few epochs on the digits, feed-forward and recurrent, one seed, 100 test samples (for tests)."""
        return replace(cls(datasets=("digits",), kinds=KINDS[:2], seeds=(0,), epochs={"digits": 4}, max_test=100),
                       **changes)

    def train_config(self, dataset: str, kind: str, seed: int, *, n_in: int, n_classes: int):
        """The training run of one network (`n_in` pixels per image, `n_classes` classes)."""
        from spikeloop.quant.train import TrainConfig

        task = TASKS[dataset]
        hidden = task["hidden"]
        if kind == "feedforward-wide":  # as many synapses as the recurrent network of one hidden layer
            width = n_in // task["steps"]
            synapses = hidden[0] * (width + hidden[0] + n_classes)
            hidden = (round(synapses / (width + n_classes)),)
        return TrainConfig(dataset=dataset, encoding="rows", steps=task["steps"], hidden=hidden,
                           recurrent=kind == "recurrent", epochs=self.epochs.get(dataset, task["epochs"]), seed=seed)


@dataclass(frozen=True)
class Row:
    """One trained network on the core."""

    dataset: str
    kind: str
    seed: int
    sizes: tuple[int, ...]
    synapses: int
    model_accuracy: float  # the trained model (hardware mode) on the whole test split
    core_accuracy: float  # the core on the study's test samples
    core_equals_golden: bool  # every prediction of the core equals the golden model's
    nonzero_scores: int  # readout scores that are not 0 (a guard against a silent core)
    train_seconds: float
    core_seconds: float


def _synapses(network) -> int:
    return sum(layer.crossbar_weights.size for layer in network.layers)


def run_one(study: StudyConfig, dataset: str, kind: str, seed: int, *, data=None, log=None) -> Row:
    """Train one network, run its test split on the study's core, compare with the golden model."""
    from spikeloop.host import open_core
    from spikeloop.metrics import readout_scores
    from spikeloop.quant.models import predict
    from spikeloop.quant.train import run

    data = data if data is not None else task_data(dataset)
    cfg = study.train_config(dataset, kind, seed, n_in=data.n_in, n_classes=data.n_classes)
    done = run(cfg, progress=False, data=data)
    network, y_test = done.network, done.result.data.y_test
    n = len(y_test) if study.max_test is None else min(study.max_test, len(y_test))
    x = done.x_test[:n]
    t0 = time.perf_counter()
    with open_core(study.backend, network, lanes=study.lanes, membranes=True) as core:
        out = core.run(x)
    core_seconds = time.perf_counter() - t0
    readout = done.result.model.readout
    scores = readout_scores(out.spikes, out.membranes, readout)
    preds = predict(scores)
    golden_preds = done.verification.predictions[:n]
    row = Row(dataset, kind, seed, tuple(network.sizes), _synapses(network), done.result.metrics["accuracy"],
              float(np.mean(preds == y_test[:n])), bool(np.array_equal(preds, golden_preds)),
              int(np.count_nonzero(scores)), done.result.seconds, core_seconds)
    if log:
        log(f"{dataset} {kind} seed {seed}: model {row.model_accuracy:.3f}, core {row.core_accuracy:.3f} on {n} "
            f"samples ({'equal to' if row.core_equals_golden else 'DIFFERENT from'} golden), "
            f"{row.train_seconds:.0f} s training, {core_seconds:.1f} s on the {study.backend} core")
    return row


def task_data(dataset: str):
    """The data set split as every run of the study splits it (the split's seed is 0, whatever the run's)."""
    from spikeloop.quant.train import TrainConfig

    return TrainConfig(dataset=dataset).load_data()


def run_study(study: StudyConfig | None = None, *, log=None) -> list[Row]:
    """Every data set, kind and seed."""
    study = study or StudyConfig()
    rows = []
    for dataset in study.datasets:
        data = task_data(dataset)
        for seed in study.seeds:
            for kind in study.kinds:
                rows.append(run_one(study, dataset, kind, seed, data=data, log=log))
    return rows


def table(rows: list[Row]) -> str:
    """Markdown: per data set and kind, the mean (and spread) over seeds of the test accuracies."""
    lines = ["| data set | network | sizes | synapses | model accuracy | core accuracy | core = golden | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r.dataset for r in rows):
        for kind in KINDS:
            mine = [r for r in rows if r.dataset == dataset and r.kind == kind]
            if not mine:
                continue

            def stat(values):
                return f"{np.mean(values):.1%}" + (f" +/- {np.std(values):.1%}" if len(values) > 1 else "")

            lines.append(f"| {dataset} rows | {kind} | {'-'.join(map(str, mine[0].sizes))} | {mine[0].synapses:,} | "
                         f"{stat([r.model_accuracy for r in mine])} | {stat([r.core_accuracy for r in mine])} | "
                         f"{'yes' if all(r.core_equals_golden for r in mine) else 'NO'} | {len(mine)} |")
    return "\n".join(lines) + "\n"


def write(rows: list[Row], study: StudyConfig, out: Path) -> dict:
    """table.md and rows.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table(rows))
    (out / "rows.json").write_text(json.dumps({"study": asdict(study), "rows": [asdict(r) for r in rows]}, indent=1))
    return {"table": out / "table.md", "rows": out / "rows.json"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spikeloop.app.sequence_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("build/sequence_study"), help="folder for table.md, rows.json")
    p.add_argument("--datasets", nargs="+", choices=tuple(TASKS), default=None, help="default: all")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2")
    p.add_argument("--backend", choices=BACKENDS, default="sim", help="sim (the study's) or golden")
    p.add_argument("--quick", action="store_true", help="a few epochs on the digits, one seed (for tests)")
    args = p.parse_args(argv)
    study = StudyConfig.quick(backend=args.backend) if args.quick else StudyConfig(backend=args.backend)
    if args.datasets:
        study = replace(study, datasets=tuple(args.datasets))
    if args.seeds:
        study = replace(study, seeds=tuple(args.seeds))
    rows = run_study(study, log=lambda line: print(line, flush=True))
    files = write(rows, study, args.out)
    print(table(rows))
    print(f"wrote {files['table']} and {files['rows']}")
    return 0 if all(r.core_equals_golden for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
