"""Calibration on the simulated board: straight-through against Bayesian binary SNNs.

For each data set (two moons, digits, MNIST-5k; `spikeloop.quant.data`) and seed, three ways to train
on the host (`spikeloop.quant.train.train`):

- ``ste``: straight-through binary weights (the frequentist baseline);
- ``bisnn``: the Bayesian rule with BiSNN's published update (Jang, Skatchkovsky & Simeone 2021,
  arXiv 2012.08300: mirror descent on the natural parameters, ``TrainConfig(rule="bayes", update="bisnn")``);
- ``adam``: the Bayesian rule trained with Adam on the loss and the exact KL (``update="adam"``).

Each trained model is exported with fixed widths (`CORE_BITS`, so one core holds every model of a data
set): the straight-through network as a point-mass posterior, the Bayesian ones as their posterior
(`spikeloop.quant.export.posterior`). All are evaluated on the simulated board (`open_core("sim", ...)`,
one core per data set, reloaded per model) with `spikeloop.host.ensemble.predict`: the mode for every
model, and for the Bayesian ones an ensemble and a committee of ``samples`` networks (10). Accuracy, ECE
(20 bins) and the mean confidence come from the core's outputs (``backend="golden"``: the golden board behind
the same driver, for a quick check without Verilator). Once per data set the core's
`Prediction` of the first Bayesian model (mode, ensemble and committee) is checked equal, integer for
integer, to the golden model's (``predict(None, ...)``).

    python -m spikeloop.app.calibration --out build/calibration           # the full study (make calibration-study)
    python -m spikeloop.app.calibration --out build/calibration --quick   # the small one the tests run

Writes ``table.md`` (mean ± standard deviation over the seeds), ``diagnostics.md`` (the readout gain, the
share of undecided synapses, the factor on the gain that would fit the test set best: what lies behind
the numbers), ``rows.json`` (every row, the checks,
the settings), ``predictions.npz`` (every network's scores and the labels, per data set, method,
prediction and seed), every model's posterior (``posteriors/<data set>_<method>_<seed>.npz``) and one
reliability diagram per data set, method and prediction (pooled over the seeds) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

DATASETS = ("moons", "digits", "mnist5k")
#: Training methods: straight-through, Bayes with BiSNN's update, Bayes with Adam on the exact KL.
METHODS = ("ste", "bisnn", "adam")
#: The predictions each method is evaluated with on the core.
METHOD_PREDICTIONS = {"ste": ("mode",), "bisnn": ("mode", "ensemble", "committee"),
                      "adam": ("mode", "ensemble", "committee")}
#: Where the models run: the simulated board (the study's), or the golden board behind the same driver.
BACKENDS = ("sim", "golden")
#: Membrane and current bits of every layer of every exported network: wide enough never to saturate
#: the study's networks (T = 8, at most 784 inputs), so the core equals the trained model's hardware mode.
CORE_BITS = 16
#: The seed of the ensemble's and the committee's draws is the training seed plus this.
DRAW_SEED_OFFSET = 7_000


class StudyError(ValueError):
    """A study setting that cannot run, named with its value."""


@dataclass(frozen=True)
class DataPlan:
    """How one data set is trained and tested: hidden sizes, epochs, and a seeded test subset (None: all)."""

    hidden: tuple[int, ...]
    epochs: int
    max_test: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise StudyError(f"hidden = {self.hidden!r}, expected positive layer sizes")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise StudyError(f"epochs = {self.epochs!r}, expected a positive integer")
        if self.max_test is not None and (isinstance(self.max_test, bool) or not isinstance(self.max_test, int)
                                          or self.max_test < 1):
            raise StudyError(f"max_test = {self.max_test!r}, expected a positive integer or None")


#: The full study (about 10 minutes on 2 free cores): every training split, the MNIST-5k test split cut to 500.
FULL_PLANS = {"moons": DataPlan((32,), 30), "digits": DataPlan((64,), 30), "mnist5k": DataPlan((64,), 8, 500)}
#: The small study of the tests: seconds of training, a few dozen test samples.
QUICK_PLANS = {"moons": DataPlan((16,), 3, 60), "digits": DataPlan((32,), 3, 60), "mnist5k": DataPlan((32,), 1, 40)}


@dataclass(frozen=True)
class StudyConfig:
    """The study's settings; the defaults are the full study (`StudyConfig.quick()`: the small one)."""

    datasets: tuple[str, ...] = DATASETS
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = METHODS
    plans: dict = field(default_factory=lambda: dict(FULL_PLANS))
    steps: int = 8
    samples: int = 10  # networks of an ensemble and of a committee
    batch_size: int = 64  # training; the core runs batches of predict's default (64) too
    kl_weight: float | None = None  # None: TrainConfig's default
    tau: float | None = None  # None: TrainConfig's default
    lanes: int = 16  # the simulated board's neurons per clock (capped at each layer's outputs)
    chunk: int = 64  # its synapses per clock (capped at each layer's inputs)
    workers: int = 2  # training processes (1: train in this process)
    backend: str = "sim"  # the core's transport: "sim" (the simulated board) or "golden" (the numerics alone)
    lr: float | None = None  # the Bayesian rules' synapse learning rate (None: TrainConfig's default)

    def __post_init__(self):
        for name, known in (("datasets", DATASETS), ("methods", METHODS)):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            bad = [v for v in value if v not in known]
            if bad or not value or len(set(value)) != len(value):
                raise StudyError(f"{name} = {value!r}; expected distinct names from {', '.join(known)}")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise StudyError(f"seeds = {self.seeds!r}, expected non-negative integers")
        missing = [d for d in self.datasets if not isinstance(self.plans.get(d), DataPlan)]
        if missing:
            raise StudyError(f"plans: no DataPlan for {', '.join(missing)}")
        for name in ("steps", "samples", "batch_size", "lanes", "chunk", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise StudyError(f"{name} = {v!r}, expected a positive integer")
        if self.backend not in BACKENDS:
            raise StudyError(f"backend = {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        for name in ("kl_weight", "tau", "lr"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < np.inf
                                  or (name != "kl_weight" and v == 0)):
                kind = "non-negative" if name == "kl_weight" else "positive"
                raise StudyError(f"{name} = {v!r}, expected None or a {kind} finite number")

    @classmethod
    def quick(cls, **changes) -> StudyConfig:
        """The small study (seconds per model): one seed, `QUICK_PLANS`, ensembles and committees of 3."""
        return cls(**{"seeds": (0,), "plans": dict(QUICK_PLANS), "samples": 3, "workers": 1, **changes})

    def train_config(self, dataset: str, method: str, seed: int):
        """The `TrainConfig` of one model."""
        from spikeloop.quant.train import TrainConfig

        plan = self.plans[dataset]
        bayes = {} if method == "ste" else {"rule": "bayes", "update": method}
        tuned = {k: v for k, v in (("kl_weight", self.kl_weight), ("tau", self.tau), ("lr", self.lr))
                 if v is not None and bayes}
        return TrainConfig(dataset=dataset, hidden=plan.hidden, steps=self.steps, epochs=plan.epochs,
                           batch_size=self.batch_size, seed=seed, **bayes, **tuned)


@dataclass
class Trained:
    """One trained model as the core needs it: its posterior and its test spikes and labels."""

    dataset: str
    method: str
    seed: int
    posterior: object  # spikeloop.posterior.Posterior
    x_test: np.ndarray  # uint8 [N, T, n_in]
    y_test: np.ndarray  # int64 [N]
    train_seconds: float
    host: dict  # the trainer's own metrics of the model (torch, hardware mode)


def subset_indices(n: int, max_test: int | None, seed: int) -> np.ndarray:
    """The sorted indices of a seeded subset of ``max_test`` of ``n`` test samples (all when None or >= n)."""
    if max_test is None or max_test >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed + 12345).choice(n, max_test, replace=False))


def train_one(study: StudyConfig, dataset: str, method: str, seed: int) -> Trained:
    """Train one model on the host and export it with `CORE_BITS` (runs in a worker process too)."""
    from spikeloop.quant.export import posterior
    from spikeloop.quant.train import encode_test, train

    cfg = study.train_config(dataset, method, seed)
    data = cfg.load_data()
    keep = subset_indices(len(data.y_test), study.plans[dataset].max_test, seed)
    data = replace(data, x_test=data.x_test[keep], y_test=data.y_test[keep])
    result = train(cfg, data=data, progress=False, evaluate_float=False)
    widths = [(CORE_BITS, CORE_BITS)] * len(result.model.layers)
    host = {k: v for k, v in result.metrics.items() if k != "train_seconds"}
    return Trained(dataset, method, seed, posterior(result.model, widths=widths), encode_test(cfg, data.x_test),
                   data.y_test, result.metrics["train_seconds"], host)


@dataclass
class Row:
    """One model and one prediction, measured on the core."""

    dataset: str
    method: str
    seed: int
    prediction: str
    accuracy: float
    ece: float
    confidence: float  # mean top-label probability
    loads: int  # networks loaded into the core
    seconds: float  # predict's, on the core
    train_seconds: float
    n_test: int
    gain: float  # the posterior's readout gain: logits = gain * scores
    counts: list  # samples per confidence bin (20 bins of (0, 1])
    undecided: float  # share of the posterior's synapses with 0.05 < P(w = +1) < 0.95 (0 for straight-through)
    best_scale: float  # diagnostic: the factor on the gain that `rescaled` found (see there)
    best_scale_ece: float  # diagnostic: the ECE with it


#: The factors on the readout gain `rescaled` tries (0.1 to 10, log-spaced).
SCALES = np.geomspace(0.1, 10.0, 41)


def rescaled(scores, labels, gain: float) -> tuple[float, float]:
    """Diagnostic, not a method: the factor c of `SCALES` on the readout gain whose probabilities (the predictions'
    own rule, `spikeloop.metrics.pooled_probabilities` of ``c * gain * scores``) have the least negative
    log-likelihood on these very samples, and the ECE they leave: (c, ECE). c > 1: the model was under-confident
    by its readout's scale alone."""
    from spikeloop.metrics import expected_calibration_error, pooled_probabilities

    scores = np.asarray(scores, np.float64)
    n = scores.shape[1]
    best = None
    for scale in SCALES:
        probs = pooled_probabilities(scale * gain * scores)
        nll = -np.log(np.maximum(probs[np.arange(n), labels], 1e-300)).mean()
        if best is None or nll < best[0]:
            best = (nll, float(scale), probs)
    return best[1], expected_calibration_error(best[2], labels)


def undecided_share(posterior) -> float:
    """The share of the posterior's synapses with 0.05 < P(w = +1) < 0.95."""
    probs = np.concatenate([p.ravel() for p in posterior.probs])
    return float(np.mean((probs > 0.05) & (probs < 0.95)))


def _row(trained: Trained, how: str, p) -> Row:
    scale, scaled_ece = rescaled(p.scores, trained.y_test, trained.posterior.gain)
    labels = trained.y_test
    return Row(trained.dataset, trained.method, trained.seed, how, p.accuracy(labels), p.ece(labels),
               float(p.probs.max(1).mean()), p.loads, p.seconds, trained.train_seconds, len(labels),
               trained.posterior.gain, p.reliability(labels).counts.tolist(), undecided_share(trained.posterior),
               scale, scaled_ece)


def equal_predictions(a, b) -> bool:
    """Whether two `Prediction`s agree integer for integer (scores, predictions) and in every probability."""
    return (a.how == b.how and a.samples == b.samples and np.array_equal(a.scores, b.scores)
            and np.array_equal(a.predictions, b.predictions) and np.array_equal(a.probs, b.probs))


def evaluate_dataset(study: StudyConfig, models: list[Trained], *, log=None) -> tuple[list[Row], dict, dict]:
    """Every model of one data set on one core (``study.backend``): (rows, the golden check, predictions).

    The predictions map (method, prediction, seed) to (scores int64 [K, N, C], labels, probs)."""
    from spikeloop.host import open_core
    from spikeloop.host.ensemble import predict

    say = log or (lambda line: None)
    rows, kept, check = [], {}, {}
    first = models[0].posterior.network
    checked = next((t for t in models if t.method != "ste"), models[0])  # the first Bayesian model, if any
    t0 = time.perf_counter()
    with open_core(study.backend, first, lanes=study.lanes, chunk=study.chunk, membranes=True) as core:
        check["core"] = repr(core)
        check["open_seconds"] = time.perf_counter() - t0
        for trained in models:
            for how in METHOD_PREDICTIONS[trained.method]:
                p = predict(core, trained.posterior, trained.x_test, how=how, samples=study.samples,
                            seed=trained.seed + DRAW_SEED_OFFSET)
                rows.append(_row(trained, how, p))
                kept[trained.method, how, trained.seed] = (p.scores, trained.y_test, p.probs)
                if trained is checked:
                    gold = predict(None, trained.posterior, trained.x_test, how=how, samples=study.samples,
                                   seed=trained.seed + DRAW_SEED_OFFSET)
                    check.setdefault("compared", {})[how] = {
                        "equal": equal_predictions(p, gold), "scores": int(p.scores.size),
                        "nonzero_scores": int(np.count_nonzero(p.scores)), "loads": p.loads}
                    check.update(method=trained.method, seed=trained.seed,
                                 equal=all(c["equal"] for c in check["compared"].values()))
                r = rows[-1]
                say(f"{r.dataset} {r.method} seed {r.seed} {how}: accuracy {r.accuracy:.3f}, ECE {r.ece:.3f}, "
                    f"confidence {r.confidence:.3f} ({r.loads} loads, {r.seconds:.1f} s on the core)")
    return rows, check, kept


def _trained_models(study: StudyConfig, log):
    """Yield (data set, its trained models) in the study's order, training in ``study.workers`` processes."""
    jobs = [(d, m, s) for d in study.datasets for s in study.seeds for m in study.methods]
    if study.workers == 1:
        for dataset in study.datasets:
            mine = [job for job in jobs if job[0] == dataset]
            yield dataset, [_announce(train_one(study, *job), log) for job in mine]
        return
    import multiprocessing

    with ProcessPoolExecutor(study.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {job: pool.submit(train_one, study, *job) for job in jobs}
        for dataset in study.datasets:
            yield dataset, [_announce(futures[job].result(), log) for job in jobs if job[0] == dataset]


def _announce(trained: Trained, log) -> Trained:
    if log is not None:
        log(f"trained {trained.dataset} {trained.method} seed {trained.seed} in {trained.train_seconds:.1f} s "
            f"(host, hardware mode: accuracy {trained.host['accuracy']:.3f}, ECE {trained.host['ece']:.3f})")
    return trained


@dataclass
class Study:
    """What `run_study` measured: the rows, the golden checks per data set, the predictions (data set, method,
    prediction, seed) -> (scores, labels, probs), seconds."""

    config: StudyConfig
    rows: list[Row]
    checks: dict
    predictions: dict = field(repr=False)
    seconds: float
    posteriors: dict = field(default_factory=dict, repr=False)  # (data set, method, seed) -> Posterior

    def pooled(self, dataset: str, method: str, how: str) -> tuple[np.ndarray, np.ndarray]:
        """(probs, labels) of one data set, method and prediction, concatenated over the seeds."""
        mine = [v for (d, m, h, _), v in sorted(self.predictions.items()) if (d, m, h) == (dataset, method, how)]
        return np.concatenate([probs for _, _, probs in mine]), np.concatenate([labels for _, labels, _ in mine])


def run_study(study: StudyConfig | None = None, *, log=None) -> Study:
    """Train every model, evaluate each on its data set's simulated board, check the core against the golden model."""
    study = study or StudyConfig()
    start = time.perf_counter()
    rows, checks, predictions, posteriors = [], {}, {}, {}
    for dataset, models in _trained_models(study, log):
        mine, checks[dataset], kept = evaluate_dataset(study, models, log=log)
        rows += mine
        predictions.update({(dataset, *key): value for key, value in kept.items()})
        posteriors.update({(t.dataset, t.method, t.seed): t.posterior for t in models})
    return Study(study, rows, checks, predictions, time.perf_counter() - start, posteriors)


def _mean_std(values) -> str:
    values = np.asarray(values, np.float64)
    return f"{values.mean():.3f} ± {values.std():.3f}"


def table(rows: list[Row]) -> str:
    """A Markdown table: per data set, method and prediction, the mean ± standard deviation over the seeds of
    accuracy, ECE and confidence minus accuracy (> 0: over-confident)."""
    lines = ["| data set | training | prediction | seeds | accuracy | ECE (20 bins) | confidence − accuracy |",
             "|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for method in METHODS:
            for how in METHOD_PREDICTIONS[method]:
                mine = [r for r in rows if (r.dataset, r.method, r.prediction) == (dataset, method, how)]
                if not mine:
                    continue
                gap = [r.confidence - r.accuracy for r in mine]
                lines.append(f"| {dataset} | {method} | {how} | {len(mine)} | {_mean_std([r.accuracy for r in mine])} "
                             f"| {_mean_std([r.ece for r in mine])} | {_mean_std(gap)} |")
    return "\n".join(lines)


def diagnostics(rows: list[Row]) -> str:
    """A Markdown table of what lies behind the calibration: the readout gain, the share of undecided synapses,
    and the factor on the gain that fits the test set best with the ECE it leaves (means over the seeds)."""
    header = "| data set | training | prediction | gain | undecided synapses | best factor on the gain | ECE with it |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for method in METHODS:
            for how in METHOD_PREDICTIONS[method]:
                mine = [r for r in rows if (r.dataset, r.method, r.prediction) == (dataset, method, how)]
                if mine:
                    lines.append(f"| {dataset} | {method} | {how} | {np.mean([r.gain for r in mine]):.4f} | "
                                 f"{np.mean([r.undecided for r in mine]):.1%} | "
                                 f"{np.exp(np.mean(np.log([r.best_scale for r in mine]))):.2f} | "
                                 f"{np.mean([r.best_scale_ece for r in mine]):.3f} |")
    return "\n".join(lines)


def write(result: Study, out: Path) -> dict:
    """``table.md``, ``rows.json``, ``predictions.npz`` (per data set, method, prediction and seed: the scores
    of every network, the labels), the posteriors and the reliability diagrams (pooled over the seeds) into
    ``out``; returns the files by name."""
    from spikeloop.metrics import expected_calibration_error, reliability
    from spikeloop.quant.plots import reliability_diagram

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "table.md", "diagnostics": out / "diagnostics.md", "rows": out / "rows.json",
             "predictions": out / "predictions.npz"}
    files["table"].write_text(table(result.rows) + "\n")
    files["diagnostics"].write_text(diagnostics(result.rows) + "\n")
    arrays = {}
    for (dataset, method, how, seed), (scores, labels, _) in result.predictions.items():
        arrays[f"{dataset}_{method}_{how}_{seed}_scores"] = scores
        arrays[f"{dataset}_{method}_{how}_{seed}_labels"] = labels
    np.savez_compressed(files["predictions"], **arrays)
    for (dataset, method, seed), posterior in sorted(result.posteriors.items()):
        name = f"posterior_{dataset}_{method}_{seed}"
        files[name] = out / "posteriors" / f"{name[len('posterior_'):]}.npz"
        files[name].parent.mkdir(exist_ok=True)
        posterior.save(files[name])
    seeds = ", ".join(map(str, result.config.seeds))
    for dataset, method, how in sorted({key[:3] for key in result.predictions}):
        probs, labels = result.pooled(dataset, method, how)
        name = f"reliability_{dataset}_{method}_{how}"
        files[name] = reliability_diagram(
            reliability(probs, labels), out / f"{name}.png", ece=expected_calibration_error(probs, labels),
            title=f"{dataset}, {method}, {how} ({result.config.backend} core; seeds {seeds} pooled)")
    settings = asdict(result.config)
    settings["plans"] = {k: asdict(v) for k, v in result.config.plans.items()}
    files["rows"].write_text(json.dumps({
        "study": settings, "core_bits": CORE_BITS, "seconds": result.seconds, "checks": result.checks,
        "rows": [asdict(r) for r in result.rows], "figures": {k: str(v) for k, v in files.items()}}, indent=1))
    return files


def main(argv=None) -> int:
    """Run the study; print the table and the golden checks (and write them to ``--out``)."""
    p = argparse.ArgumentParser(prog="python -m spikeloop.app.calibration", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("build/calibration"), help="folder for table.md, rows.json, PNGs")
    p.add_argument("--quick", action="store_true", help="the small study of the tests (one seed, tiny models)")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=None)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--samples", type=int, default=None, help="networks per ensemble and committee (10; quick 3)")
    p.add_argument("--workers", type=int, default=None, help="training processes (2; quick 1)")
    p.add_argument("--kl-weight", type=float, default=None, help="the Bayesian rules' KL weight (TrainConfig's)")
    p.add_argument("--tau", type=float, default=None, help="the concrete relaxation's temperature (TrainConfig's)")
    p.add_argument("--lr", type=float, default=None, help="the Bayesian rules' synapse learning rate (TrainConfig's)")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="sim (the study's) or golden (the numerics)")
    ns = p.parse_args(argv)
    given = {k: v for k, v in (("datasets", ns.datasets), ("methods", ns.methods), ("seeds", ns.seeds),
                               ("samples", ns.samples), ("workers", ns.workers), ("kl_weight", ns.kl_weight),
                               ("tau", ns.tau), ("lr", ns.lr), ("backend", ns.backend)) if v is not None}
    try:
        study = StudyConfig.quick(**given) if ns.quick else StudyConfig(**given)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = run_study(study, log=lambda line: print(line, file=sys.stderr, flush=True))
    files = write(result, ns.out)
    print(table(result.rows))
    print()
    print(diagnostics(result.rows))
    for dataset, check in result.checks.items():
        print(f"{dataset}: the core's predictions {'EQUAL' if check.get('equal') else 'DIFFERENT'} to the golden "
              f"model's ({check.get('method')} seed {check.get('seed')}: "
              f"{', '.join(check.get('compared', {}))})")
    diagrams = sum(name.startswith("reliability_") for name in files)
    print(f"{result.seconds:.0f} s; {files['table']}, {files['rows']}, {files['predictions']}, {diagrams} "
          f"reliability diagrams, the posteriors in {ns.out / 'posteriors'}")
    return 0 if all(c.get("equal") for c in result.checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
