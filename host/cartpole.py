"""CartPole balanced by a binary-weight SNN on the core: encoder, policy network and decoder.

The policy is built, not trained: a linear controller `push right iff g . obs > 0` with
`g = (0.1, 0.5, 1, 1)` on (x, x_dot, theta, theta_dot) balances Gymnasium's CartPole-v1 for
its full 500 steps, and it maps exactly onto one layer of binary synapses:

- encoder (`ThermometerEncoder`): each observation `obs[d]` becomes `level = round(g[d] * obs[d]
  / unit)`, clipped to +/-K[d] (K[d] covers the variable's useful range), as a thermometer code of
  2*K[d] spikes: `p_j = level >= j`, `n_j = level <= -j` (j = 1..K[d]); at most K[d] of them fire;
- network (`policy_network`): two lif neurons, "right" with weight +1 on every p spike and -1 on
  every n spike, "left" with the opposite signs; lam = 2^F (no memory: v' = a), theta = 1,
  reset to zero. "right" fires iff sum_d level[d] >= 1, "left" iff it is <= -1;
- decoder (`decode`): push right iff "right" fired.

So the core computes the quantized controller exactly, one core timestep per environment step,
and the golden model, the simulated board and the PYNQ give the same actions. Chosen because
it solves the task for every seed tried, needs no training (no torch), and any difference
between transports would show as a different trajectory.
"""

from __future__ import annotations

import numpy as np

from spikeloop.network import Layer, Network

__all__ = [
    "GAINS", "RANGES", "UNIT", "GEOMETRY", "ThermometerEncoder", "policy_network", "decode", "make_env", "policy",
    "ObservedOnly",
]

#: Controller gains on (x, x_dot, theta, theta_dot).
GAINS = (0.1, 0.5, 1.0, 1.0)
#: Magnitudes beyond which a variable's level saturates.
RANGES = (2.4, 2.0, 0.21, 2.0)
#: Quantization step of g[d] * obs[d].
UNIT = 0.05
#: The core the golden and sim transports build for the policy (140 inputs: 4 chunks of 35).
GEOMETRY = {"lanes": 2, "chunk": 35, "membranes": False}


class ThermometerEncoder:
    """Observation [4] -> bool spikes [n_in]: per variable, K positive then K negative thermometer bits."""

    def __init__(self, gains=GAINS, ranges=RANGES, unit: float = UNIT):
        self.gains = np.asarray(gains, dtype=float)
        self.unit = float(unit)
        self.levels = np.ceil(np.abs(self.gains) * np.asarray(ranges, dtype=float) / self.unit).astype(int)
        self.n_in = int(2 * self.levels.sum())
        # spike i fires iff sign[i] * level[var[i]] >= step[i]: all of them in one comparison
        var, sign, step = [], [], []
        for d, k in enumerate(self.levels):
            for s in (1, -1):
                var += [d] * k
                sign += [s] * k
                step += range(1, k + 1)
        self._var, self._sign, self._step = np.array(var), np.array(sign), np.array(step)

    def level(self, obs) -> np.ndarray:
        """The quantized, clipped levels of g * obs."""
        raw = np.rint(self.gains * np.asarray(obs, dtype=float).reshape(-1) / self.unit)
        return np.clip(raw, -self.levels, self.levels).astype(int)

    def __call__(self, obs) -> np.ndarray:
        return self._sign * self.level(obs)[self._var] >= self._step


def policy_network(encoder: ThermometerEncoder | None = None, *, v_bits: int = 8, frac_bits: int = 4) -> Network:
    """The two-neuron policy layer for `encoder` (see the module docstring)."""
    encoder = encoder or ThermometerEncoder()
    if encoder.levels.sum() >= 1 << (v_bits - 1):
        raise ValueError(f"v_bits = {v_bits} cannot hold sums up to {encoder.levels.sum()}")
    right = np.concatenate([np.r_[np.full(k, s), np.full(k, -s)]
                            for k, s in zip(encoder.levels, np.where(encoder.gains >= 0, 1, -1))])
    weights = np.stack([right, -right]).astype(np.int8)
    layer = Layer(weights, theta=1, bias=0, neuron="lif", reset="zero", v_bits=v_bits, u_bits=v_bits,
                  frac_bits=frac_bits, lam=1 << frac_bits, where="cartpole policy")
    return Network((layer,))


def decode(out, *, timestep: int = -1) -> int:
    """Action 1 (push right) iff the "right" neuron (the first output) fired in the last timestep
    (or in `timestep` of a step of several)."""
    spikes = np.asarray(out.spikes)
    return int((spikes if spikes.ndim == 1 else spikes[timestep])[0])


def policy(obs, encoder: ThermometerEncoder | None = None) -> int:
    """The same policy in plain numpy (what the core must agree with)."""
    encoder = encoder or ThermometerEncoder()
    return int(encoder.level(obs).sum() >= 1)


class ObservedOnly:
    """An environment that shows only some of its observation's variables (`observed`, indices): e.g.
    CartPole's positions (0, 2), its velocities hidden. Gymnasium's reset/step API; the rest passes through."""

    def __init__(self, env, observed):
        self.env = env
        self.observed = np.asarray(observed, dtype=int)
        if self.observed.ndim != 1 or self.observed.size == 0:
            raise ValueError(f"observed must be a non-empty list of indices, got {observed!r}")
        self.spec = getattr(env, "spec", None)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return np.asarray(obs)[self.observed], info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return np.asarray(obs)[self.observed], reward, terminated, truncated, info

    def close(self):
        self.env.close()


def make_env(render_mode=None):
    """Gymnasium's CartPole-v1 (needs `pip install gymnasium`)."""
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError("the CartPole task needs gymnasium: pip install gymnasium") from exc
    return gymnasium.make("CartPole-v1", render_mode=render_mode)
