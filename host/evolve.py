"""Closed-loop learning with the core in the loop: evolution strategies that score every candidate
policy by running CartPole episodes on the core (docs/in-the-loop.md, "A closed loop that learns").

    shape = PolicyShape("cartpole-positions")
    core = open_core("golden", shape.network(shape.initial(seed=0)), **shape.geometry)
    result = evolve(core, shape, ESConfig(generations=40, seed=0))
    print(evaluate(core, shape, result.params).summary())

- Tasks (`TASKS`): `cartpole` (Gymnasium's CartPole-v1, full state) and `cartpole-positions`
  (the same, but the policy sees only the cart position and the pole angle: velocities hidden,
  so the policy needs memory, which it finds in the membranes the core carries from one
  environment step to the next; the state is cleared only at the start of an episode).
- Policy (`PolicyShape`): each observed variable becomes a thermometer code
  (`cartpole.ThermometerEncoder`), shown in one or more core timesteps per environment step, on
  input lines of its own per timestep (`BlockEncoder`); a hidden layer of binary-weight neurons in
  mirror pairs; one output neuron; push right iff it fired in the environment step's first
  timestep (`cartpole.decode`). For the positions task (3 timesteps, a hidden layer that leaks by
  half per timestep, no reset) a hidden membrane read in the first timestep holds the code's
  drive now plus the decayed drives of the blocks shown after the past read-outs: with opposite
  signs on the later blocks, a difference of positions, i.e. a velocity.
- Parameters: a real latent vector; a weight is the sign of its latent (+1 for 0), a threshold
  and a bias are rounded, clipped integers (`PolicyShape.network`).
- Search (`evolve`): OpenAI-style evolution strategies, antithetic pairs, centred-rank fitness,
  Adam; each candidate is loaded into the core (`core.load(network, verify=False)`, by stream
  where the driver offers `via=`) and scored by its mean return over the generation's episodes
  (the same seeds for every candidate). Training stops early once the centre of the search
  distribution (the population's mean, scored each generation too) reaches the target and holds
  it on `confirm` fresh episodes; otherwise the best-scoring centre is kept.

numpy only (no torch): it runs on the PYNQ board's ARM as well.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from spikeloop.network import Layer, Network, signed_range

from . import cartpole
from .loop import run_loop

__all__ = [
    "TASKS", "TaskSpec", "TASK_SPECS", "PolicyShape", "BlockEncoder", "ESConfig", "ESResult", "Evaluation",
    "evolve", "evaluate", "episode_trace", "load_options", "make_task_env", "TRAIN_SEED", "EVAL_SEED",
]

#: Episode seeds: generation g uses TRAIN_SEED + seed * 100_003 + g * 1000 + e; the confirmation
#: episodes and the final evaluation use seeds from EVAL_SEED on (never seen in training).
TRAIN_SEED = 1_000
EVAL_SEED = 10_000_000


@dataclass(frozen=True)
class TaskSpec:
    """A control task: which of CartPole's variables the policy observes and how the network holds memory."""

    name: str
    observed: tuple[int, ...]          # indices into CartPole's (x, x_dot, theta, theta_dot)
    ranges: tuple[float, ...]          # per observed variable: the magnitude where its code saturates
    levels: int                        # thermometer levels per sign and variable
    copies: tuple[int, ...]            # per core timestep of an environment step: copies of the code shown
    hidden_lam: int                    # the hidden layer's leak, in units of 2^-frac_bits
    hidden_reset: str                  # the hidden layer's reset
    description: str = ""


FRAC_BITS = 4

TASK_SPECS = {
    "cartpole": TaskSpec("cartpole", (0, 1, 2, 3), (2.4, 2.0, 0.21, 2.0), levels=8, copies=(1,),
                         hidden_lam=1 << FRAC_BITS, hidden_reset="zero",
                         description="CartPole-v1, full state; memoryless neurons (lam = 2^F)"),
    "cartpole-positions": TaskSpec("cartpole-positions", (0, 2), (1.2, 0.06), levels=16, copies=(1, 2, 1),
                                   hidden_lam=1 << (FRAC_BITS - 1), hidden_reset="none",
                                   description="CartPole-v1, cart position and pole angle only; hidden "
                                               "membranes leak by half per timestep and carry the past"),
}
TASKS = tuple(TASK_SPECS)


def _check_task(task: str) -> TaskSpec:
    if task not in TASK_SPECS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return TASK_SPECS[task]


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (
            hi is not None and value > hi):
        span = f"[{lo}, {hi}]" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")
    return int(value)


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def make_task_env(task: str):
    """The task's environment: CartPole-v1, or CartPole-v1 that shows only the positions."""
    spec = _check_task(task)
    env = cartpole.make_env()
    if spec.observed == (0, 1, 2, 3):
        return env
    return cartpole.ObservedOnly(env, spec.observed)


class BlockEncoder:
    """Observation -> spikes [timesteps, n_in] (or [n_in] for one timestep): in timestep j, the
    thermometer code of the observation on each of `copies[j]` blocks of input lines of its own."""

    def __init__(self, thermometer: cartpole.ThermometerEncoder, copies=(1,)):
        self.thermometer = thermometer
        self.copies = tuple(_check_int("copies", c, 1) for c in copies)
        if not self.copies:
            raise ValueError("copies must name at least one timestep")
        self.n_code = thermometer.n_in
        self.blocks = sum(self.copies)
        self.timesteps = len(self.copies)
        self.n_in = self.blocks * self.n_code
        self._block_step = np.repeat(np.arange(self.timesteps), self.copies)

    def __call__(self, obs) -> np.ndarray:
        code = self.thermometer(obs)
        if self.blocks == 1:
            return code
        out = np.zeros((self.timesteps, self.blocks, self.n_code), bool)
        out[self._block_step, np.arange(self.blocks)] = code
        return out.reshape(self.timesteps, self.n_in)


class PolicyShape:
    """The policy network of a task: latent vector <-> `Network`, the encoder, the decoder, the core's geometry.

    The network is odd by construction, as the hand-built controller is: hidden neurons come in
    mirror pairs (the second has the first's input weights negated, the same threshold and bias,
    and the negated output weight), and a neuron's weight on a variable's negative thermometer bit
    `n_j` is minus its weight on the positive bit `p_j` (so its drive is an odd function of each
    variable). With several input blocks (timesteps), a pair's weights on block b are its weights on
    block 0 times one sign per (block, variable): the pair chooses, per variable, which linear filter
    of the past its membrane applies (docs/in-the-loop.md). The latents: per pair its
    weights on the positive bits of block 0, its filter signs, its threshold and bias offset, its
    output weight; the output neuron's threshold and bias offset.

    Parameters (keyword-only after `task`)
    ----------
    task : one of `TASKS`.
    hidden : hidden neurons, even (default 24: 12 mirror pairs).
    v_bits : membrane width of both layers (default 12).
    """

    def __init__(self, task: str, *, hidden: int = 24, v_bits: int = 12):
        self.spec = _check_task(task)
        self.task = task
        self.hidden = _check_int("hidden", hidden, 2, 1024)
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (mirror pairs of neurons), got {hidden}")
        self.v_bits = _check_int("v_bits", v_bits, 6, 24)
        spec = self.spec
        levels = np.full(len(spec.observed), spec.levels)
        ranges = np.asarray(spec.ranges, float)
        self.thermometer = cartpole.ThermometerEncoder(gains=levels / ranges, ranges=ranges, unit=1.0)
        self.encoder = BlockEncoder(self.thermometer, spec.copies)
        self.n_in = self.encoder.n_in
        self.decoder = partial(cartpole.decode, timestep=0)
        pairs, self._k = self.hidden // 2, spec.levels
        n_vars, self._blocks = len(spec.observed), self.encoder.blocks
        self._slices = {}
        start = 0
        for name, size in (("w1", pairs * n_vars * spec.levels), ("filter", pairs * n_vars * (self._blocks - 1)),
                           ("theta1", pairs), ("bias1", pairs), ("w2", pairs), ("theta2", 1), ("bias2", 1)):
            self._slices[name] = slice(start, start + size)
            start += size
        self.size = start
        active = len(spec.observed) * spec.levels  # spikes of one timestep's code, at most
        self._scale1 = max(1.0, np.sqrt(active) / 2)
        self._scale2 = max(1.0, np.sqrt(self.hidden) / 2)
        self.bias_gain = _bias_gain(spec.hidden_lam, FRAC_BITS, self.encoder.timesteps)

    @property
    def geometry(self) -> dict:
        """`open_core` options of the core the golden and sim backends build for this shape."""
        return {"lanes": [min(8, self.hidden), 1], "chunk": [min(32, self.n_in), min(32, self.hidden)],
                "membranes": False}

    def __repr__(self) -> str:
        return (f"PolicyShape({self.task!r}: {self.n_in}-{self.hidden}-1, {self.encoder.timesteps} timestep(s) per "
                f"environment step, {self.size} parameters)")

    def initial(self, *, seed: int = 0) -> np.ndarray:
        """A random latent vector: weights of random sign, thresholds and bias offsets near their base."""
        rng = np.random.default_rng(_check_int("seed", seed, 0))
        z = rng.standard_normal(self.size) * 0.5
        for name in ("theta1", "bias1", "theta2", "bias2"):
            z[self._slices[name]] *= 0.4
        if self._blocks > 1:  # half of the pairs start as differences: every later block against the first
            pairs = self.hidden // 2
            f = z[self._slices["filter"]].reshape(pairs, -1)
            f[: pairs // 2] = -np.abs(f[: pairs // 2])
        return z

    def network(self, params) -> Network:
        """The network of a latent vector: weights = sign (0 -> +1), thresholds and biases rounded and clipped."""
        z = np.asarray(params, dtype=float)
        if z.shape != (self.size,):
            raise ValueError(f"params must have shape ({self.size},) for {self!r}, got {z.shape}")
        if not np.isfinite(z).all():
            raise ValueError("params hold a NaN or an infinity")
        lo, hi = signed_range(self.v_bits)
        pairs, part = self.hidden // 2, {name: z[s] for name, s in self._slices.items()}

        def theta(x, scale):
            return np.clip(np.rint(scale * (1 + x)), 1, hi // 4).astype(np.int64)

        def bias(x, scale, theta, gain=1.0):  # a neuron without input starts near its threshold: gain * bias
            return np.clip(np.rint((theta - 1 + scale * x) / gain), lo // 4, hi // 4).astype(np.int64)

        # block 0's positive-bit weights [pairs, 1, vars, K]; block b's are block 0's times the sign of the
        # pair's filter latent for (b, variable); then [pairs, blocks * vars, K] -> [pairs, n_in] with
        # (p_1..p_K, n_1..n_K) per variable
        pos0 = np.where(part["w1"] >= 0, 1, -1).reshape(pairs, 1, -1, self._k)
        filt = np.where(part["filter"] >= 0, 1, -1).reshape(pairs, self._blocks - 1, len(self.spec.observed), 1)
        pos = np.concatenate([pos0, pos0 * filt], axis=1).reshape(pairs, -1, self._k)
        w1 = np.concatenate([pos, -pos], axis=2).reshape(pairs, self.n_in)
        w2 = np.where(part["w2"] >= 0, 1, -1)
        theta1, theta2 = theta(part["theta1"], self._scale1), theta(part["theta2"], self._scale2)
        bias1 = bias(part["bias1"], self._scale1, theta1, self.bias_gain)
        common = {"v_bits": self.v_bits, "u_bits": self.v_bits, "frac_bits": FRAC_BITS}
        hidden = Layer(np.concatenate([w1, -w1]).astype(np.int8), theta=np.tile(theta1, 2), bias=np.tile(bias1, 2),
                       neuron="lif", reset=self.spec.hidden_reset, lam=self.spec.hidden_lam,
                       where=f"{self.task} hidden layer", **common)
        out = Layer(np.concatenate([w2, -w2])[None].astype(np.int8), theta=theta2,
                    bias=bias(part["bias2"], self._scale2, theta2), neuron="lif", reset="zero", lam=1 << FRAC_BITS,
                    where=f"{self.task} output layer", **common)
        return Network((hidden, out))


def _bias_gain(lam: int, frac_bits: int, timesteps: int) -> float:
    """What a constant bias of 1 adds, in the steady state, to a membrane that leaks by lam / 2^frac_bits per
    timestep and is read in the first of `timesteps` timesteps per environment step (no reset)."""
    keep = 1 - lam / (1 << frac_bits)
    per_step = sum(keep ** j for j in range(timesteps))  # the bias of one environment step, at its last timestep
    return 1 + keep * per_step / (1 - keep ** timesteps) if keep < 1 else 1.0


def load_options(core, via: str | None) -> dict:
    """The keywords of `core.load` for a parameter load by `via` (None: the driver's default). Refuses a
    `via` the driver does not take."""
    if via is None:
        return {}
    if "via" not in inspect.signature(core.load).parameters:
        raise ValueError(f"via = {via!r}: this driver's Core.load takes no via= (it loads by MMIO only); "
                         "leave via unset")
    return {"via": via}


@dataclass(frozen=True)
class ESConfig:
    """Evolution strategies' settings (keyword-only, validated)."""

    population: int = 24       # candidates per generation (even: antithetic pairs)
    generations: int = 40
    episodes: int = 3          # episodes per candidate and generation
    sigma: float = 0.5         # noise on the latents
    lr: float = 0.1            # Adam's step
    max_steps: int = 500       # cap on an episode (CartPole-v1's own)
    target: float = 500.0      # stop once the centre's mean return reaches this ...
    confirm: int = 10          # ... and it holds on this many fresh episodes (0: no check)
    seed: int = 0

    def __post_init__(self):
        _check_int("population", self.population, 2)
        if self.population % 2:
            raise ValueError(f"population must be even (antithetic pairs), got {self.population}")
        _check_int("generations", self.generations, 1)
        _check_int("episodes", self.episodes, 1)
        _check_positive("sigma", self.sigma)
        _check_positive("lr", self.lr)
        _check_int("max_steps", self.max_steps, 1)
        _check_positive("target", self.target)
        _check_int("confirm", self.confirm, 0)
        _check_int("seed", self.seed, 0)


@dataclass
class ESResult:
    """What a run of `evolve` did: the best centre's latents, the learning curve, time and core steps."""

    params: np.ndarray
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    core_steps: int = 0
    loads: int = 0
    stopped_early: bool = False
    interrupted: bool = False
    kept_generation: int | None = None  # the generation whose centre `params` is

    @property
    def core_steps_per_second(self) -> float:
        """Core timesteps per wall-clock second of training (loads and environment included)."""
        return self.core_steps / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line: generations, the last centre's return, time, core steps."""
        if not self.curve:
            return "no generation finished"
        last = self.curve[-1]
        how = " (stopped early: target reached)" if self.stopped_early else (
            " (interrupted)" if self.interrupted else "")
        return (f"{len(self.curve)} generation(s){how}: last centre return {last['centre']:.1f}, population mean "
                f"{last['mean']:.1f}, max {last['max']:.1f}; {self.seconds:.1f} s, {self.core_steps} core steps "
                f"({self.core_steps_per_second:.0f}/s), {self.loads} loads")

    def to_json(self) -> dict:
        """The learning curve and the totals, JSON-ready."""
        return {"curve": self.curve, "seconds": self.seconds, "core_steps": self.core_steps,
                "core_steps_per_second": self.core_steps_per_second, "loads": self.loads,
                "stopped_early": self.stopped_early, "interrupted": self.interrupted,
                "kept_generation": self.kept_generation}


def _centred_ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(x.size)
    ranks[np.argsort(x, kind="stable")] = np.arange(x.size)
    return ranks / (x.size - 1) - 0.5


class _Scorer:
    """Loads a candidate into the core and runs episodes; counts loads and core steps."""

    def __init__(self, core, shape: PolicyShape, max_steps: int, via: str | None):
        self.core, self.shape, self.max_steps = core, shape, max_steps
        self.load_kwargs = load_options(core, via)
        self.env = make_task_env(shape.task)
        self.loads = self.core_steps = 0

    def __call__(self, params, seed: int, episodes: int, progress: bool = False):
        self.core.load(self.shape.network(params), verify=False, **self.load_kwargs)
        self.loads += 1
        result = run_loop(self.core, self.env, self.shape.encoder, self.shape.decoder, episodes=episodes,
                          max_steps=self.max_steps, seed=seed, progress=progress)
        if result.interrupted:
            raise KeyboardInterrupt
        self.core_steps += result.total_steps * self.shape.encoder.timesteps
        return result

    def close(self):
        self.env.close()


def _bar(total: int, enabled: bool, unit: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit)


def evolve(core, shape: PolicyShape, config: ESConfig | None = None, *, params=None, via: str | None = None,
           progress: bool = True, on_generation=None) -> ESResult:
    """Train `shape`'s policy on `core` by evolution strategies (see the module docstring).

    `params`: the starting latents (default `shape.initial(seed=config.seed)`); `via`: how
    `core.load` loads parameters (None: its default; see `load_options`); `on_generation(row)`:
    called with each learning-curve row. Ctrl-C stops after the current candidate, keeping what
    was learnt (`interrupted`).
    """
    config = config or ESConfig()
    if not isinstance(config, ESConfig):
        raise TypeError(f"config must be an ESConfig, got {type(config).__name__}")
    if not isinstance(shape, PolicyShape):
        raise TypeError(f"shape must be a PolicyShape, got {type(shape).__name__}")
    centre = shape.initial(seed=config.seed) if params is None else np.array(params, dtype=float)
    shape.network(centre)  # refuses a wrong shape now
    rng = np.random.default_rng([config.seed, 0xE5])
    scorer = _Scorer(core, shape, config.max_steps, via)
    result = ESResult(params=centre.copy())
    m = np.zeros(shape.size)
    v = np.zeros(shape.size)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    half = config.population // 2
    best = -np.inf
    bar = _bar(config.generations, progress, "generation")
    t0 = time.perf_counter()
    try:
        for gen in range(config.generations):
            g0 = time.perf_counter()
            seed = TRAIN_SEED + config.seed * 100_003 + gen * 1000
            noise = rng.standard_normal((half, shape.size))
            noise = np.concatenate([noise, -noise])
            scores = np.array([np.mean(scorer(centre + config.sigma * e, seed, config.episodes).returns)
                               for e in noise])
            centre_score = float(np.mean(scorer(centre, seed, config.episodes).returns))
            confirmed = None
            if centre_score >= config.target and config.confirm:
                check = scorer(centre, EVAL_SEED + 500_000 + gen * 100, config.confirm)
                confirmed = float(np.mean(check.returns))
            if centre_score > best or (centre_score == best and confirmed is not None):
                best, result.params, result.kept_generation = centre_score, centre.copy(), gen
            row = {"generation": gen, "mean": float(scores.mean()), "max": float(scores.max()),
                   "min": float(scores.min()), "centre": centre_score, "confirm": confirmed,
                   "seconds": time.perf_counter() - g0, "core_steps": scorer.core_steps}
            result.curve.append(row)
            if on_generation is not None:
                on_generation(row)
            if bar is not None:
                bar.set_postfix(mean=f"{row['mean']:.0f}", max=f"{row['max']:.0f}", centre=f"{centre_score:.0f}")
                bar.update(1)
            if centre_score >= config.target and (config.confirm == 0 or confirmed >= config.target):
                result.params, result.kept_generation = centre.copy(), gen
                result.stopped_early = True
                break
            grad = _centred_ranks(scores) @ noise / (config.population * config.sigma)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            step = config.lr * (m / (1 - beta1 ** (gen + 1))) / (np.sqrt(v / (1 - beta2 ** (gen + 1))) + eps)
            centre = centre + step
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        result.seconds = time.perf_counter() - t0
        result.core_steps, result.loads = scorer.core_steps, scorer.loads
        scorer.close()
        if bar is not None:
            bar.close()
    result.stopped_early = result.stopped_early and not result.interrupted
    return result


@dataclass
class Evaluation:
    """A trained policy's evaluation: episodes of up to `max_steps` steps, success = all of them balanced."""

    steps: list[int]
    max_steps: int
    seconds: float
    core_steps: int

    @property
    def successes(self) -> int:
        """Episodes balanced for `max_steps` steps."""
        return sum(s >= self.max_steps for s in self.steps)

    @property
    def success_rate(self) -> float:
        """Successes over episodes."""
        return self.successes / len(self.steps) if self.steps else 0.0

    def summary(self) -> str:
        """One line: success rate, mean steps, core steps per second."""
        rate = self.core_steps / self.seconds if self.seconds else 0.0
        return (f"{self.successes}/{len(self.steps)} episodes balanced for {self.max_steps} steps "
                f"({self.success_rate:.0%}), mean {np.mean(self.steps):.1f} steps; {self.core_steps} core steps "
                f"in {self.seconds:.1f} s ({rate:.0f}/s)")

    def to_json(self) -> dict:
        """JSON-ready."""
        return {"episodes": len(self.steps), "max_steps": self.max_steps, "successes": self.successes,
                "success_rate": self.success_rate, "mean_steps": float(np.mean(self.steps)) if self.steps else 0.0,
                "steps": list(self.steps), "seconds": self.seconds, "core_steps": self.core_steps}


def evaluate(core, shape: PolicyShape, params, *, episodes: int = 100, max_steps: int = 500, seed: int = EVAL_SEED,
             via: str | None = None, progress: bool = False) -> Evaluation:
    """Run `episodes` episodes (seeds `seed`, `seed + 1`, ...) of the trained policy on `core`."""
    _check_int("episodes", episodes, 1)
    _check_int("max_steps", max_steps, 1)
    scorer = _Scorer(core, shape, max_steps, via)
    t0 = time.perf_counter()
    try:
        result = scorer(params, seed, episodes, progress=progress)
    finally:
        scorer.close()
    return Evaluation(list(result.steps), max_steps, time.perf_counter() - t0, scorer.core_steps)


def episode_trace(core, shape: PolicyShape, params, *, seed: int, max_steps: int = 500) -> dict[str, np.ndarray]:
    """One episode of the policy on `core`, step by step: observations, the core's output spikes, actions."""
    scorer = _Scorer(core, shape, max_steps, None)
    obs_seen, spikes, actions = [], [], []

    def encoder(obs):
        obs_seen.append(np.array(obs, dtype=float))
        return shape.encoder(obs)

    def decoder(out):
        spikes.append(np.array(out.spikes))
        actions.append(shape.decoder(out))
        return actions[-1]

    scorer.core.load(shape.network(params), verify=False)
    try:
        run_loop(core, scorer.env, encoder, decoder, episodes=1, max_steps=max_steps, seed=seed, progress=False)
    finally:
        scorer.close()
    return {"observations": np.array(obs_seen), "spikes": np.array(spikes), "actions": np.array(actions)}


def save(out, shape: PolicyShape, result: ESResult, evaluation: Evaluation | None = None,
         extra: dict | None = None) -> dict[str, Path]:
    """Write `policy.npz` (the network image), `latents.npy` and `learning.json` under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"policy": out / "policy.npz", "latents": out / "latents.npy", "curve": out / "learning.json"}
    shape.network(result.params).save(files["policy"])
    np.save(files["latents"], result.params)
    report = {"task": shape.task, "hidden": shape.hidden, "n_in": shape.n_in, "parameters": shape.size,
              "timesteps_per_step": shape.encoder.timesteps, **result.to_json(), **(extra or {})}
    if evaluation is not None:
        report["evaluation"] = evaluation.to_json()
    files["curve"].write_text(json.dumps(report, indent=1, default=_json_default))
    return files


def _json_default(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, ESConfig):
        return asdict(x)
    raise TypeError(f"{type(x).__name__} is not JSON serializable")
