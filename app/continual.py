"""Continual learning on the core: five two-class tasks learnt one after the other, Bayes against straight-through.

As Skatchkovsky, Jang & Simeone (2022, "Bayesian continual learning via spiking neural networks",
arXiv 2208.13723) set it up: a data set is split into five tasks of two classes each ([0, 1],
[2, 3], ..., `TASKS`), and a network learns them in order, seeing only the current task's
training data (and, with a coreset, a few batches kept from every earlier task, replayed with it).

- ``bayes``: the BiSNN rule (``TrainConfig(rule="bayes", update="bisnn")``); after each task
  `spikeloop.quant.bayes.carry_prior` makes the posterior the next task's prior, so the KL term
  pulls every synapse toward what the earlier tasks taught it;
- ``ste``: the frequentist straight-through rule, the same schedule, nothing carried.

Every forward pass of training runs on a core (`spikeloop.quant.inloop.fit` with ``core=``: one
binary network per step, a sample of the posterior for ``bayes``, loaded by stream), the learning
steps on the host. After each task the test split of every task seen so far runs on the same
core (`spikeloop.host.ensemble.predict`): the mode network for both rules, and for ``bayes`` the
ensemble of ``samples`` networks drawn afresh per batch from the exported posterior
(`spikeloop.quant.export.posterior`). The network has one output per class (ten), shared by all
tasks; a task's test samples are classified between the task's two classes (the task is known
at test time), with the probabilities the softmax of those two logits averaged over the
ensemble's networks (`spikeloop.metrics.pooled_probabilities`, the ensembles' one rule).
``all_classes`` keeps the accuracy over all ten outputs too.

Results per run (rule, coreset, seed): the accuracy matrix (row i: after task i; column j <= i:
task j), the ECE matrix (20 bins), the average accuracy (last row), forgetting (`forgetting`).

    python -m spikeloop.app.continual --dataset digits --backend sim --out build/continual
    spikeloop continual --dataset mnist5k --rule bayes --coreset 2 --seeds 0 --out build/continual-mnist

The cores: one per process, opened once with probes (`spikeloop.app.inloop.open_loop_core`), its
widths those the study's untrained models need on the training set plus `MARGIN_BITS` (the
largest over the runs, so every run fits the one core); ``jobs`` processes share the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from spikeloop.metrics import expected_calibration_error, pooled_probabilities

#: The five tasks of a split data set: two classes each.
TASKS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
DATASETS = ("digits", "mnist5k")
RULES = ("bayes", "ste")
#: How a run predicts: the mode network (both rules), the ensemble of sampled networks (bayes).
HOWS = {"bayes": ("mode", "ensemble"), "ste": ("mode",)}
BACKENDS = ("golden", "sim", "pynq")
#: Processes of the command line's study unless told (the study is sized for 2 free cores).
DEFAULT_JOBS = 2
#: Offsets of the seeds of the study's random draws (a run's seed plus these): the tasks' training order and
#: rate codes (per task), the coreset's choice, the ensembles' draws, the per-task subsets.
TASK_SEED_STRIDE = 1000
CORESET_SEED = 7_000_001
ENSEMBLE_SEED = 9_000_011
SUBSET_SEED = 12_345


class ContinualError(ValueError):
    """A continual study was asked for something it cannot do; the message names the value."""


def _positive(name: str, value, *, zero: bool = False) -> int:
    lo = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ContinualError(f"{name} = {value!r}, expected an integer >= {lo}")
    return int(value)


@dataclass(frozen=True)
class ContinualConfig:
    """The study's settings; the defaults are the full digits study on the simulated board."""

    dataset: str = "digits"
    rules: tuple[str, ...] = RULES
    coresets: tuple[int, ...] = (0, 2)  # batches kept per past task and replayed (0: none)
    seeds: tuple[int, ...] = (0, 1, 2)
    tasks: int = len(TASKS)  # the first this many tasks of `TASKS`
    hidden: tuple[int, ...] = (64,)
    steps: int = 8  # timesteps per sample
    epochs: int = 3  # per task
    batch_size: int = 32
    samples: int = 10  # ensemble size
    max_train: int | None = None  # per task: a seeded subset of its training split (None: all)
    max_test: int | None = None  # per task: a seeded subset of its test split (None: all)
    backend: str = "sim"
    jobs: int = 1  # processes sharing the runs (each with its own core)
    kl_weight: float | None = None  # bayes: the KL term's weight (toward the carried prior); None: TrainConfig's

    def __post_init__(self):
        for name in ("rules", "coresets", "seeds", "hidden"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.dataset not in DATASETS:
            raise ContinualError(f"dataset = {self.dataset!r}; expected one of {', '.join(DATASETS)}")
        bad = [r for r in self.rules if r not in RULES]
        if bad or not self.rules or len(set(self.rules)) != len(self.rules):
            raise ContinualError(f"rules = {self.rules!r}; expected some of {', '.join(RULES)}, each once")
        if self.backend not in BACKENDS:
            raise ContinualError(f"backend = {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        if not self.coresets or len(set(self.coresets)) != len(self.coresets):
            raise ContinualError(f"coresets = {self.coresets!r}; expected distinct batch counts >= 0")
        for c in self.coresets:
            _positive("coreset", c, zero=True)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ContinualError(f"seeds = {self.seeds!r}; expected distinct integers >= 0")
        for s in self.seeds:
            _positive("seed", s, zero=True)
        if not self.hidden:
            raise ContinualError("hidden = (); expected at least one hidden layer size")
        for h in self.hidden:
            _positive("hidden", h)
        for name in ("steps", "epochs", "batch_size", "samples", "jobs"):
            _positive(name, getattr(self, name))
        if not 2 <= _positive("tasks", self.tasks) <= len(TASKS):
            raise ContinualError(f"tasks = {self.tasks}; expected 2 to {len(TASKS)}")
        for name in ("max_train", "max_test"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.jobs > 1 and self.backend == "pynq":
            raise ContinualError(f"jobs = {self.jobs}: a PYNQ board is one core; expected jobs = 1 with it")
        v = self.kl_weight
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < np.inf):
            raise ContinualError(f"kl_weight = {v!r}, expected a non-negative number or None")

    @property
    def methods(self) -> list[tuple[str, int]]:
        """(rule, coreset) of every method, in table order."""
        return [(rule, c) for rule in self.rules for c in self.coresets]

    def train_config(self, rule: str, seed: int):
        """The `TrainConfig` every task of a run trains with."""
        from spikeloop.quant.train import TrainConfig

        extra = {"update": "bisnn"} if rule == "bayes" else {}
        if rule == "bayes" and self.kl_weight is not None:
            extra["kl_weight"] = self.kl_weight
        return TrainConfig(dataset=self.dataset, hidden=self.hidden, steps=self.steps, epochs=self.epochs,
                           batch_size=self.batch_size, rule=rule, n_samples=self.samples, seed=seed, **extra)


#: The study's size per data set where it differs from `ContinualConfig`'s defaults (the digits study): split
#: MNIST-5k's 784-input network runs about a quarter as fast on the simulated board, so it gets a smaller hidden
#: layer, fewer epochs and per-task subsets to finish in about the digits study's time.
SIZES = {"digits": {}, "mnist5k": {"hidden": (32,), "epochs": 2, "max_train": 240, "max_test": 60}}


def sized_config(dataset: str = "digits", **overrides) -> ContinualConfig:
    """The full study of a data set (`SIZES`), with ``overrides``."""
    if dataset not in SIZES:
        raise ContinualError(f"dataset = {dataset!r}; expected one of {', '.join(DATASETS)}")
    return ContinualConfig(dataset=dataset, **{**SIZES[dataset], **overrides})


def quick_config(**overrides) -> ContinualConfig:
    """A study of seconds to a minute (one seed, small network, subsets): for trying the path out."""
    base = {"seeds": (0,), "hidden": (16,), "epochs": 1, "max_train": 64, "max_test": 32, "samples": 3,
            "coresets": (0, 1)}
    return ContinualConfig(**{**base, **overrides})


# ---------------------------------------------------------------------------------------------
# Tasks, coresets, the arithmetic


def split_tasks(data, tasks: int = len(TASKS)) -> list:
    """The first ``tasks`` two-class tasks of a `Dataset` (train and test splits filtered by `TASKS`; labels and
    ``n_classes`` kept: the network keeps one output per class)."""
    if data.n_classes != 10:
        raise ContinualError(f"the data set {data.name!r} has {data.n_classes} classes; split tasks need 10")
    out = []
    for k, classes in enumerate(TASKS[:tasks]):
        tr = np.isin(data.y_train, classes)
        te = np.isin(data.y_test, classes)
        out.append(replace(data, name=f"{data.name} task {k} {list(classes)}", x_train=data.x_train[tr],
                            y_train=data.y_train[tr], x_test=data.x_test[te], y_test=data.y_test[te]))
    return out


def subset(task, *, max_train: int | None, max_test: int | None, seed: int):
    """A seeded subset of a task's splits (order kept)."""
    rng = np.random.default_rng(seed + SUBSET_SEED)
    picks = {}
    for split, cap in (("train", max_train), ("test", max_test)):
        y = getattr(task, f"y_{split}")
        keep = np.arange(len(y)) if cap is None or cap >= len(y) else np.sort(rng.choice(len(y), cap, replace=False))
        picks[f"x_{split}"] = getattr(task, f"x_{split}")[keep]
        picks[f"y_{split}"] = y[keep]
    return replace(task, **picks)


def coreset(task, batches: int, batch_size: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``batches`` batches of a task's training samples (a seeded choice without repetition; all of them if fewer):
    what the task leaves to be replayed with later tasks. (x, y); empty with ``batches`` 0."""
    n = min(batches * batch_size, len(task.y_train))
    pick = np.sort(np.random.default_rng(seed + CORESET_SEED).choice(len(task.y_train), n, replace=False))
    return task.x_train[pick], task.y_train[pick]


def with_replay(task, kept: list[tuple[np.ndarray, np.ndarray]]):
    """The task's training split with the earlier tasks' coresets added (its test split unchanged)."""
    if not kept or not any(len(y) for _, y in kept):
        return task
    x = np.concatenate([task.x_train, *[x for x, _ in kept]])
    y = np.concatenate([task.y_train, *[y for _, y in kept]])
    return replace(task, x_train=x, y_train=y)


def average_accuracy(matrix) -> float:
    """The mean of the last row of an accuracy matrix (every task after the last one was learnt)."""
    m = np.asarray(matrix, np.float64)
    return float(np.mean(m[-1, :m.shape[0]]))


def forgetting(matrix) -> tuple[float, list[float]]:
    """Forgetting of an accuracy matrix [T, T] (row i: after task i; entries j > i unused): per task j < T - 1,
    the best accuracy on it after any earlier task (rows j .. T - 2) minus the final one (row T - 1); and their
    mean (Chaudhry et al. 2018, "Riemannian walk", eq. 4). The last task has none."""
    m = np.asarray(matrix, np.float64)
    t = m.shape[0]
    if m.ndim != 2 or m.shape[1] != t or t < 2:
        raise ContinualError(f"an accuracy matrix must be square with at least 2 tasks, got shape {m.shape}")
    per = [float(np.max(m[j:t - 1, j]) - m[t - 1, j]) for j in range(t - 1)]
    return float(np.mean(per)), per


def task_probabilities(scores, gain: float, classes) -> np.ndarray:
    """Per sample, the probabilities of its task's classes: `spikeloop.metrics.pooled_probabilities` (the softmax
    of the logits ``gain * scores`` averaged over the networks) restricted to those classes. ``scores`` int
    [K, N, C]; ``classes`` int [N, 2]."""
    scores = np.asarray(scores)
    classes = np.asarray(classes)
    picked = np.take_along_axis(scores, np.broadcast_to(classes[None], (scores.shape[0], *classes.shape)), axis=2)
    return pooled_probabilities(gain * picked.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# One run


@dataclass
class Run:
    """One rule, coreset and seed: per way of predicting (`HOWS`), the matrices [T, T] (NaN above the diagonal)."""

    rule: str
    coreset: int
    seed: int
    accuracy: dict  # how -> [T][T] task accuracy (between the task's two classes)
    ece: dict  # how -> [T][T] ECE of the task's two-class probabilities (20 bins)
    all_classes: dict  # how -> [T][T] accuracy over all ten outputs (no task given)
    core_calls: dict = field(default_factory=dict)  # core.run and core.load calls: train_runs, train_loads,
    #                                                 test_runs, test_loads (the networks the evaluations loaded)
    samples_trained: int = 0
    seconds: dict = field(default_factory=dict)  # "train", "test"
    train_samples_per_second: float = float("nan")

    def summary(self, how: str) -> dict:
        """Average accuracy, forgetting (mean and per task), final average ECE and all-class accuracy."""
        acc = np.asarray(self.accuracy[how])
        mean, per = forgetting(acc)
        return {"average_accuracy": average_accuracy(acc), "forgetting": mean, "forgetting_per_task": per,
                "ece": average_accuracy(self.ece[how]), "all_classes": average_accuracy(self.all_classes[how])}


class CoreCalls:
    """Counts a core's `run` and `load` calls while in a ``with`` block (its own methods, wrapped on the instance:
    the core stays the driver's `Core`)."""

    def __init__(self, core):
        self.core, self.runs, self.loads = core, 0, 0

    def __enter__(self) -> CoreCalls:
        run, load = self.core.run, self.core.load

        def counted_run(*args, **kwargs):
            self.runs += 1
            return run(*args, **kwargs)

        def counted_load(*args, **kwargs):
            self.loads += 1
            return load(*args, **kwargs)

        self.core.run, self.core.load = counted_run, counted_load
        return self

    def __exit__(self, *exc) -> None:
        del self.core.run, self.core.load


def posterior_of(model, widths):
    """What the core evaluates: the exported posterior (bayes), or the network as a point mass (ste)."""
    from spikeloop.posterior import Posterior, mode_probs
    from spikeloop.quant import export as exporting

    if model.rule == "bayes":
        return exporting.posterior(model, widths=list(widths))
    network = exporting.export(model, widths=list(widths)).network
    return Posterior(network, mode_probs(network), readout=model.readout, gain=model.logit_gain(hardware=True))


def evaluate_seen(core, model, widths, tasks: list, encode, *, hows, samples: int, seed: int,
                  batch_size: int = 64) -> dict:
    """Test every task in ``tasks`` on ``core`` (one `predict` call per way over their test splits put together).
    Returns how -> (accuracy per task, ECE per task, all-class accuracy per task)."""
    from spikeloop.host.ensemble import predict

    post = posterior_of(model, widths)
    spikes = np.concatenate([encode(t.x_test) for t in tasks])
    labels = np.concatenate([t.y_test for t in tasks])
    which = np.concatenate([np.full(len(t.y_test), k) for k, t in enumerate(tasks)])
    task_classes = np.array([TASKS[k] for k in which], dtype=np.int64).reshape(-1, 2)
    local = (labels == task_classes[:, 1]).astype(np.int64)
    out = {}
    for how in hows:
        p = predict(core, post, spikes, how=how, samples=samples, seed=seed, batch_size=batch_size)
        probs = task_probabilities(p.scores, post.gain, task_classes)
        right = probs.argmax(1) == local
        accs, eces, alls = [], [], []
        for k in range(len(tasks)):
            sel = which == k
            accs.append(float(right[sel].mean()))
            eces.append(expected_calibration_error(probs[sel], local[sel]))
            alls.append(float((p.predictions[sel] == labels[sel]).mean()))
        out[how] = (accs, eces, alls)
    return out


def run_one(study: ContinualConfig, rule: str, coreset_batches: int, seed: int, *, core, widths, data=None,
            progress: bool = False, log=None, on_task=None) -> Run:
    """Learn the study's tasks in order with ``rule`` and a coreset of ``coreset_batches`` batches per past task,
    every forward pass on ``core`` (built for ``widths``); test after each task on the tasks seen so far.
    ``on_task(i, model)`` hears the end of each task's training (before the prior is carried)."""
    from spikeloop.quant.inloop import fit
    from spikeloop.quant.train import build_model, encode_test

    say = log or (lambda line: None)
    cfg = study.train_config(rule, seed)
    data = data if data is not None else cfg.load_data()
    tasks = [subset(t, max_train=study.max_train, max_test=study.max_test, seed=seed + k)
             for k, t in enumerate(split_tasks(data, study.tasks))]
    model = build_model(cfg, data.n_in, data.n_classes)
    model.set_widths(widths)
    hows = HOWS[rule]
    t_count = study.tasks
    nan = [[float("nan")] * t_count for _ in range(t_count)]
    acc = {h: [row[:] for row in nan] for h in hows}
    ece = {h: [row[:] for row in nan] for h in hows}
    alls = {h: [row[:] for row in nan] for h in hows}
    kept: list = []
    trained, train_s, test_s, train_core_s = 0, 0.0, 0.0, 0.0
    calls = dict.fromkeys(("train_runs", "train_loads", "test_runs", "test_loads"), 0)
    for i, task in enumerate(tasks):
        t0 = time.perf_counter()
        with CoreCalls(core) as counted:
            done = fit(cfg, data=with_replay(task, kept), model=model, core=core, widths=widths,
                       seed_offset=TASK_SEED_STRIDE * i, progress=progress)
        calls["train_runs"] += counted.runs
        calls["train_loads"] += counted.loads
        if on_task is not None:
            on_task(i, model)
        if rule == "bayes":
            from spikeloop.quant.bayes import carry_prior

            carry_prior(model)
        if coreset_batches:
            kept.append(coreset(task, coreset_batches, study.batch_size, seed=seed * TASK_SEED_STRIDE + i))
        t1 = time.perf_counter()
        trained += done.totals["samples"]
        train_core_s += sum(done.totals[k] for k in ("core", "load", "forward", "backward", "optimizer"))
        with CoreCalls(core) as counted:
            seen = evaluate_seen(core, model, widths, tasks[:i + 1], lambda x: encode_test(cfg, x), hows=hows,
                                 samples=study.samples, seed=seed * TASK_SEED_STRIDE + ENSEMBLE_SEED + i)
        calls["test_runs"] += counted.runs
        calls["test_loads"] += counted.loads
        for how, (a, e, al) in seen.items():
            acc[how][i][:i + 1], ece[how][i][:i + 1], alls[how][i][:i + 1] = a, e, al
        t2 = time.perf_counter()
        train_s += t1 - t0
        test_s += t2 - t1
        say(f"{rule} coreset {coreset_batches} seed {seed}: after task {i} "
            + "; ".join(f"{how} " + " ".join(f"{v:.2f}" for v in acc[how][i][:i + 1]) for how in hows)
            + f" ({t2 - t0:.0f} s)")
    rate = trained / train_core_s if train_core_s > 0 else float("nan")
    return Run(rule, coreset_batches, seed, acc, ece, alls, calls, trained, {"train": train_s, "test": test_s}, rate)


# ---------------------------------------------------------------------------------------------
# The study


def study_widths(study: ContinualConfig, data_by_seed: dict, margin_bits: int | None = None) -> list[tuple[int, int]]:
    """The core's (v_bits, u_bits) per layer: the largest that any run's untrained model needs on its training set
    (`spikeloop.quant.export.export` with ``margin_bits``, default `spikeloop.app.inloop.MARGIN_BITS`)."""
    from spikeloop.app.inloop import MARGIN_BITS
    from spikeloop.quant.export import export
    from spikeloop.quant.train import build_model, calibration_spikes

    margin = MARGIN_BITS if margin_bits is None else margin_bits
    best = None
    for seed, data in data_by_seed.items():
        for rule in study.rules:
            cfg = study.train_config(rule, seed)
            model = build_model(cfg, data.n_in, data.n_classes)
            report = export(model, calibration=calibration_spikes(cfg, data), margin_bits=margin).report
            got = [(layer.v_bits, layer.u_bits) for layer in report.layers]
            best = got if best is None else [(max(a, c), max(b, d)) for (a, b), (c, d) in zip(best, got)]
    return best


def _sized_network(study: ContinualConfig, data, widths):
    """A network of the study's sizes and widths (the first run's untrained model): what the core is built for."""
    from spikeloop.quant.export import export
    from spikeloop.quant.train import build_model

    cfg = study.train_config(study.rules[0], study.seeds[0])
    model = build_model(cfg, data.n_in, data.n_classes)
    model.set_widths(widths)
    return export(model, widths=list(widths)).network


_WORKER: dict = {}  # per process: the open core of the study (opened once)


def _worker_core(study: ContinualConfig, data, widths, options: dict):
    from spikeloop.app.inloop import open_loop_core

    key = (study.backend, tuple(map(tuple, widths)), study.dataset, study.hidden)
    if _WORKER.get("key") != key:
        if "core" in _WORKER:
            _WORKER.pop("core").close()
        _WORKER["core"] = open_loop_core(_sized_network(study, data, widths), study.backend,
                                         say=lambda line: None, **options)
        _WORKER["key"] = key
    return _WORKER["core"]


def _run_job(study: ContinualConfig, rule: str, coreset_batches: int, seed: int, widths, options: dict) -> Run:
    """A run in a worker process (its own data and core)."""
    import torch

    torch.set_num_threads(1)
    data = study.train_config(rule, seed).load_data()
    core = _worker_core(study, data, widths, options)
    return run_one(study, rule, coreset_batches, seed, core=core, widths=widths, data=data,
                   log=lambda line: print(line, file=sys.stderr, flush=True))


@dataclass
class StudyResult:
    """Every run of a study, the core's widths and the wall time."""

    study: ContinualConfig
    runs: list[Run]
    widths: list
    seconds: float
    open_seconds: float = 0.0

    def runs_of(self, rule: str, coreset_batches: int) -> list[Run]:
        return [r for r in self.runs if r.rule == rule and r.coreset == coreset_batches]

    def mean_matrix(self, rule: str, coreset_batches: int, how: str, what: str = "accuracy") -> np.ndarray:
        """The mean over the seeds of a matrix (``what``: accuracy, ece, all_classes)."""
        return np.mean([np.asarray(getattr(r, what)[how], np.float64) for r in self.runs_of(rule, coreset_batches)],
                       axis=0)

    def to_json(self) -> dict:
        return {"study": asdict(self.study), "widths": [list(w) for w in self.widths], "seconds": self.seconds,
                "open_seconds": self.open_seconds,
                "runs": [{**asdict(r), "summary": {h: r.summary(h) for h in HOWS[r.rule]}} for r in self.runs]}


def load_result(path) -> StudyResult:
    """A study's `StudyResult` back from its rows.json (`save`), e.g. to redraw its plots or tables."""
    record = json.loads(Path(path).read_text())
    def known(cls, values: dict) -> dict:  # fields of this version (rows.json may hold more)
        return {k: v for k, v in values.items() if k in {f.name for f in fields(cls)}}

    runs = [Run(**known(Run, r)) for r in record["runs"]]
    return StudyResult(ContinualConfig(**known(ContinualConfig, record["study"])), runs,
                       [tuple(w) for w in record["widths"]],
                       record["seconds"], record.get("open_seconds", 0.0))


def run_study(study: ContinualConfig | None = None, *, core=None, progress: bool = False, log=None,
              **options) -> StudyResult:
    """Every rule, coreset and seed of ``study``. ``core``: an open core with probes built for the study's widths
    (not closed here; ``jobs`` must be 1); else one is opened per process on ``study.backend`` (``options`` go to
    `open_core`, e.g. ``bitfile=`` for pynq) and closed at the end."""
    study = study or ContinualConfig()
    say = log or (lambda line: None)
    start = time.perf_counter()
    datas = {seed: study.train_config(study.rules[0], seed).load_data() for seed in study.seeds}
    widths = study_widths(study, datas)
    say(f"continual {study.dataset}: {len(study.methods)} methods x {len(study.seeds)} seeds, network "
        f"{datas[study.seeds[0]].n_in}-{'-'.join(map(str, study.hidden))}-10, widths {widths}, on {study.backend}")
    jobs = [(rule, c, seed) for seed in study.seeds for rule, c in study.methods]
    runs: list[Run] = []
    opened = 0.0
    if study.jobs > 1 and core is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(study.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_job, study, rule, c, seed, widths, options) for rule, c, seed in jobs]
            runs = [f.result() for f in futures]
    else:
        own = core is None
        if own:
            from spikeloop.app.inloop import open_loop_core

            t0 = time.perf_counter()
            core = open_loop_core(_sized_network(study, datas[study.seeds[0]], widths), study.backend,
                                  say=say, **options)
            opened = time.perf_counter() - t0
        try:
            for rule, c, seed in jobs:
                runs.append(run_one(study, rule, c, seed, core=core, widths=widths, data=datas[seed],
                                    progress=progress, log=say))
        finally:
            if own:
                core.close()
    return StudyResult(study, runs, widths, time.perf_counter() - start, opened)


# ---------------------------------------------------------------------------------------------
# Reports


def _pm(values, percent: bool = True) -> str:
    v = np.asarray(values, np.float64)
    if percent:
        return f"{v.mean():.1%} ± {v.std():.1%}"
    return f"{v.mean():.3f} ± {v.std():.3f}"


def method_name(rule: str, coreset_batches: int, how: str) -> str:
    """A method's name in tables and plots, e.g. "bayes ensemble, coreset 2"."""
    return f"{rule} {how}" + (f", coreset {coreset_batches}" if coreset_batches else "")


def table(result: StudyResult) -> str:
    """A Markdown table: per method, mean ± standard deviation over the seeds of the average accuracy, forgetting,
    the final ECE (mean over the tasks) and the all-class accuracy."""
    lines = ["| method | seeds | average accuracy | forgetting | ECE (per task, mean) | all ten classes |",
             "|---|---|---|---|---|---|"]
    for rule, c in result.study.methods:
        runs = result.runs_of(rule, c)
        if not runs:
            continue
        for how in HOWS[rule]:
            s = [r.summary(how) for r in runs]
            lines.append(f"| {method_name(rule, c, how)} | {', '.join(str(r.seed) for r in runs)} | "
                         f"{_pm([x['average_accuracy'] for x in s])} | {_pm([x['forgetting'] for x in s])} | "
                         f"{_pm([x['ece'] for x in s], percent=False)} | {_pm([x['all_classes'] for x in s])} |")
    return "\n".join(lines)


def matrix_text(matrix, name: str) -> str:
    """An accuracy matrix as text rows ("after task i: a_0 a_1 ..."), the mean over the seeds."""
    m = np.asarray(matrix)
    rows = [f"{name}"]
    for i in range(m.shape[0]):
        rows.append(f"  after task {i}: " + " ".join(f"{m[i, j]:6.1%}" for j in range(i + 1)))
    return "\n".join(rows)


def report(result: StudyResult) -> str:
    """The table, then every method's mean accuracy matrix, forgetting per task and ECE per task (means over the
    seeds)."""
    parts = [table(result), ""]
    for rule, c in result.study.methods:
        if not result.runs_of(rule, c):
            continue
        for how in HOWS[rule]:
            m = result.mean_matrix(rule, c, how)
            per = np.mean([r.summary(how)["forgetting_per_task"] for r in result.runs_of(rule, c)], axis=0)
            parts.append(matrix_text(m, f"{method_name(rule, c, how)}: accuracy (mean over seeds)"))
            parts.append("  forgetting per task: " + " ".join(f"{v:+.1%}" for v in per))
            ece = result.mean_matrix(rule, c, how, "ece")[-1]
            parts.append("  ECE per task after the last: " + " ".join(f"{v:.3f}" for v in ece))
    return "\n".join(parts)


def plots(result: StudyResult, out: Path) -> dict:
    """The accuracy-matrix heat maps and the per-task accuracy curves (PNGs in ``out``)."""
    from spikeloop.quant.plots import accuracy_matrices, task_curves

    panels = [(method_name(rule, c, how), result.mean_matrix(rule, c, how))
              for rule, c in result.study.methods if result.runs_of(rule, c) for how in HOWS[rule]]
    seeds = result.study.seeds
    name = f"split {result.study.dataset}, " + (f"seed {seeds[0]}" if len(seeds) == 1 else
                                                 f"mean over seeds {', '.join(map(str, seeds))}")
    return {"accuracy_matrix": accuracy_matrices(panels, out / "accuracy_matrix.png",
                                                 title=f"task accuracy after each task: {name}"),
            "task_curves": task_curves(panels, out / "task_curves.png", title=f"accuracy per task: {name}")}


def save(result: StudyResult, out) -> dict:
    """Write table.md, rows.json and the plots to ``out``; returns the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "table.md", "rows": out / "rows.json"}
    files["table"].write_text(report(result) + "\n")
    files["rows"].write_text(json.dumps(result.to_json(), indent=1))
    files.update(plots(result, out))
    return files


# ---------------------------------------------------------------------------------------------
# Command line (`python -m spikeloop.app.continual` and `spikeloop continual` share it)


def add_arguments(p: argparse.ArgumentParser, int_in=None) -> None:
    """The study's options (``int_in``: an argparse type factory for integers >= lo, `spikeloop.configargs.int_in`)."""
    from spikeloop.configargs import float_in
    from spikeloop.configargs import int_in as _int_in

    int_in = int_in or _int_in
    d = ContinualConfig()
    p.add_argument("--dataset", default=d.dataset, choices=DATASETS, help="digits or mnist5k (default digits)")
    p.add_argument("--rule", nargs="+", default=None, choices=RULES,
                   help="bayes (BiSNN, the posterior as the next prior) and/or ste (straight-through) (default both)")
    p.add_argument("--coreset", type=int_in(0), nargs="+", default=None,
                   help=f"batches kept per past task and replayed, 0 = none; one or more (default "
                        f"{' '.join(map(str, d.coresets))})")
    p.add_argument("--seeds", type=int_in(0), nargs="+", default=None,
                   help=f"seeds, one run each (default {' '.join(map(str, d.seeds))})")
    m = SIZES["mnist5k"]
    p.add_argument("--epochs", type=int_in(1), default=None,
                   help=f"epochs per task (default {d.epochs}; mnist5k {m['epochs']})")
    p.add_argument("--hidden", type=int_in(1, 4096), nargs="+", default=None,
                   help=f"hidden layer sizes (default {' '.join(map(str, d.hidden))}; mnist5k "
                        f"{' '.join(map(str, m['hidden']))})")
    p.add_argument("--samples", type=int_in(1), default=None,
                   help=f"networks in the Bayesian ensemble (default {d.samples})")
    p.add_argument("--kl-weight", type=float_in(0.0), default=None,
                   help="bayes: the weight of the KL term toward the carried prior (default: TrainConfig's, 0.1)")
    p.add_argument("--tasks", type=int_in(2, len(TASKS)), default=None,
                   help=f"learn the first N tasks of {len(TASKS)} (default all)")
    p.add_argument("--max-train", type=int_in(1), default=None,
                   help=f"per task: a subset of its training split (default all; mnist5k {m['max_train']})")
    p.add_argument("--max-test", type=int_in(1), default=None,
                   help=f"per task: a subset of its test split (default all; mnist5k {m['max_test']})")
    p.add_argument("--backend", default=d.backend, choices=BACKENDS,
                   help="the core: golden (the numerics), sim (the simulated board, Verilator) or pynq (default sim)")
    p.add_argument("--bitfile", default="spikeloop.bit", help="--backend pynq: the overlay's bitstream (with probes)")
    p.add_argument("--jobs", type=int_in(1), default=None,
                   help="processes sharing the runs, one core each (default 2; 1 with --quick or --backend pynq)")
    p.add_argument("--out", type=Path, default=Path("build/continual"),
                   help="folder for table.md, rows.json and the plots (default build/continual)")
    p.add_argument("--quick", action="store_true",
                   help="a small study (one seed, a 16-neuron layer, 64 training samples per task): about a minute")


def config_from_args(args) -> ContinualConfig:
    """The study the parsed options ask for (`add_arguments`), refusing what cannot run, naming the option."""
    jobs = args.jobs if args.jobs is not None else 1 if args.quick or args.backend == "pynq" else DEFAULT_JOBS
    given = {"dataset": args.dataset, "backend": args.backend, "jobs": jobs}
    for opt, name in (("rule", "rules"), ("coreset", "coresets"), ("seeds", "seeds"), ("epochs", "epochs"),
                      ("hidden", "hidden"), ("samples", "samples"), ("tasks", "tasks"), ("max_train", "max_train"),
                      ("max_test", "max_test"), ("kl_weight", "kl_weight")):
        if getattr(args, opt) is not None:
            given[name] = getattr(args, opt)
    rules = given.get("rules", RULES)
    if args.samples is not None and "bayes" not in rules:
        raise ContinualError("argument --samples: only the Bayesian ensemble takes it; --rule ste predicts with its "
                             "one network")
    if args.kl_weight is not None and "bayes" not in rules:
        raise ContinualError("argument --kl-weight: only the Bayesian rule has a KL term; --rule ste has none")
    if jobs > 1 and args.backend == "pynq":
        raise ContinualError(f"argument --jobs: {jobs} processes, but a PYNQ board is one core; use --jobs 1")
    for name, opt in (("rules", "--rule"), ("coresets", "--coreset"), ("seeds", "--seeds")):
        values = list(given.get(name, ()))
        if len(set(values)) != len(values):
            raise ContinualError(f"argument {opt}: {' '.join(map(str, values))} names a value twice")
    if args.quick:
        return quick_config(**given)
    return sized_config(given.pop("dataset"), **given)


def backend_options(args) -> dict:
    """`open_core` options of the chosen backend (the bitstream of a PYNQ)."""
    return {"bitfile": args.bitfile} if args.backend == "pynq" else {}


def main(argv=None) -> int:
    """Run the study; print the table, the matrices and forgetting; write them and the plots to ``--out``."""
    p = argparse.ArgumentParser(prog="python -m spikeloop.app.continual", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    ns = p.parse_args(argv)
    try:
        study = config_from_args(ns)
    except ContinualError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = run_study(study, log=lambda line: print(line, file=sys.stderr, flush=True), **backend_options(ns))
    print(report(result))
    files = save(result, ns.out)
    print(f"{len(result.runs)} runs in {result.seconds:.0f} s; " + ", ".join(str(f) for f in files.values()))
    return 0


__all__ = [
    "BACKENDS", "DATASETS", "HOWS", "RULES", "SIZES", "TASKS", "ContinualConfig", "ContinualError", "CoreCalls", "Run",
    "StudyResult", "add_arguments", "average_accuracy", "config_from_args", "coreset", "evaluate_seen", "forgetting",
    "load_result", "main", "plots", "posterior_of", "quick_config", "report", "run_one", "run_study", "save",
    "sized_config", "split_tasks", "study_widths", "subset", "table", "task_probabilities", "with_replay",
]


if __name__ == "__main__":
    raise SystemExit(main())
