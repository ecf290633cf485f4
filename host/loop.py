"""The closed-loop runner: environment -> encoder -> core -> decoder -> environment, step by step.

    result = run_loop(core, env, encoder, decoder, episodes=5, log="build/loop.log")
    print(result.report())

Per environment step it times each phase (`PHASES`): `encode` (observation to spikes), `pack`
(spikes to bus words, in the driver), `core` (the stream transfer: sending, the core computing,
receiving), `unpack` (words to spikes and membranes, and the STATUS check), `decode` (to an
action) and `env` (the environment's step), and keeps every sample, so `LoopResult.latency`
gives histograms and percentiles. Episodes start from a cleared core state. It logs one line per
episode and a summary to a file (optional), shows a progress bar when tqdm is installed, and
stops cleanly on Ctrl-C (the result says `interrupted`) or on an error (logged, then raised);
the environment is closed when the runner made it.

The environment is anything with Gymnasium's API: `reset(seed=...) -> (obs, info)` and
`step(action) -> (obs, reward, terminated, truncated, info)`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["run_loop", "LoopResult", "PHASES"]

PHASES = ("encode", "pack", "core", "unpack", "decode", "env")


@dataclass
class LoopResult:
    """What a closed-loop run did: per episode its steps and return, per step the latency of each phase (seconds)."""

    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    latency: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    log: Path | None = None

    @property
    def total_steps(self) -> int:
        """Environment steps taken in all."""
        return int(sum(self.steps))

    @property
    def steps_per_second(self) -> float:
        """Closed-loop steps per wall-clock second."""
        return self.total_steps / self.seconds if self.seconds else 0.0

    def percentiles(self, q=(50, 90, 99)) -> dict[str, list[float]]:
        """Per phase (and `step`, their sum): latency percentiles in microseconds."""
        out = {}
        for name, values in {**self.latency, "step": self.step_latency()}.items():
            out[name] = [float(np.percentile(values, p)) * 1e6 for p in q] if values.size else [float("nan")] * len(q)
        return out

    def step_latency(self) -> np.ndarray:
        """Seconds per step, all phases."""
        arrays = [self.latency[p] for p in PHASES if p in self.latency]
        return np.sum(arrays, axis=0) if arrays else np.zeros(0)

    def histogram(self, phase: str = "step", bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges in microseconds) of one phase's latency, log-spaced bins."""
        values = (self.step_latency() if phase == "step" else self.latency[phase]) * 1e6
        if values.size == 0:
            return np.zeros(bins, int), np.zeros(bins + 1)
        lo, hi = max(values.min(), 1e-3), max(values.max(), 1e-3) * 1.0001
        edges = np.geomspace(lo, hi, bins + 1) if hi > lo else np.linspace(lo, lo + 1, bins + 1)
        return np.histogram(values, bins=edges)[0], edges

    def summary(self) -> str:
        """One line: episodes, steps and returns (mean, min, max), and whether the run was interrupted."""
        def stats(values, fmt):
            if not values:
                return "none"
            return (f"mean {np.mean(values):.1f} (min {min(values):{fmt}}, max {max(values):{fmt}})"
                    if len(values) > 1 else f"{values[0]:{fmt}}")

        interrupted = " (interrupted)" if self.interrupted else ""
        return (f"{len(self.steps)} episode(s), {self.total_steps} steps: steps per episode "
                f"{stats(self.steps, '.0f')}, return {stats(self.returns, '.1f')}{interrupted}")

    def report(self) -> str:
        """A text summary: episodes, rate, latency percentiles and the step-latency histogram."""
        lines = [self.summary(),
                 f"{self.total_steps} steps in {self.seconds:.2f} s: {self.steps_per_second:.0f} steps/s",
                 "latency (us)      p50       p90       p99"]
        for name, (p50, p90, p99) in self.percentiles().items():
            lines.append(f"  {name:<8} {p50:>9.1f} {p90:>9.1f} {p99:>9.1f}")
        counts, edges = self.histogram("step", bins=12)
        if counts.sum():
            lines.append("step latency histogram (us):")
            width = 40 / max(1, counts.max())
            for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
                lines.append(f"  {lo:>9.1f} - {hi:<9.1f} {'#' * int(round(c * width)):<40} {c}")
        return "\n".join(lines)


def _progress(total: int | None, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", leave=False)


def run_loop(core, env, encoder, decoder, *, episodes: int = 1, max_steps: int | None = None, seed: int = 0,
             log=None, progress: bool = True, close_env: bool = False) -> LoopResult:
    """Run `episodes` episodes of `env` with `core` in the loop.

    `encoder(obs) -> spikes` ([n_in] or [k, n_in]: k core timesteps per environment step),
    `decoder(Output) -> action`. Episode `e` is reset with seed `seed + e`; `max_steps` caps an
    episode (default: until terminated or truncated). `log`: a file to append to.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes!r}")
    result = LoopResult(latency={p: [] for p in PHASES})
    logger = logging.getLogger("spikeloop.loop")
    handler = None
    if log is not None:
        result.log = Path(log)
        result.log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(result.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    spec = getattr(env, "spec", None)
    per_episode = max_steps or getattr(spec, "max_episode_steps", None)
    bar = _progress(per_episode * episodes if per_episode else None, progress)
    lat = result.latency
    perf = time.perf_counter
    logger.info("closed loop: %s, %s, %d episode(s), seed %d", core, getattr(spec, "id", type(env).__name__),
                episodes, seed)
    t_start = perf()
    steps, total = 0, 0.0
    try:
        for episode in range(episodes):
            core.clear_state()
            obs, _ = env.reset(seed=seed + episode)
            steps, total = 0, 0.0
            while max_steps is None or steps < max_steps:
                t0 = perf()
                spikes = encoder(obs)
                t1 = perf()
                out = core.step(spikes)
                t2 = perf()
                action = decoder(out)
                t3 = perf()
                obs, reward, terminated, truncated, _ = env.step(action)
                t4 = perf()
                timing = core.last_timing
                lat["encode"].append(t1 - t0)
                lat["pack"].append(timing["pack"])
                lat["core"].append(timing["transfer"])
                lat["unpack"].append(timing["unpack"] + timing["check"])
                lat["decode"].append(t3 - t2)
                lat["env"].append(t4 - t3)
                steps += 1
                total += float(reward)
                if bar is not None:
                    bar.update(1)
                if terminated or truncated:
                    break
            result.steps.append(steps)
            result.returns.append(total)
            logger.info("episode %d: %d steps, return %.1f", episode, steps, total)
            steps = 0
    except KeyboardInterrupt:
        result.interrupted = True
        if steps:  # the episode cut short
            result.steps.append(steps)
            result.returns.append(total)
        logger.warning("interrupted by the user (Ctrl-C) after %d steps", sum(result.steps))
    except BaseException:
        logger.exception("the closed loop stopped on an error")
        raise
    finally:
        result.seconds = perf() - t_start
        n = min(len(v) for v in lat.values())  # an interrupted step may have fewer phases
        result.latency = {p: np.asarray(v[:n], dtype=float) for p, v in lat.items()}
        if bar is not None:
            bar.close()
        if close_env and hasattr(env, "close"):
            env.close()
        if handler is not None:
            for line in result.report().splitlines():
                logger.info("%s", line)
            logger.removeHandler(handler)
            handler.close()
    return result
