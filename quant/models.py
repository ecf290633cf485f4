"""Training models: feed-forward binary-weight spiking networks with surrogate gradients.

A `BinaryLIF` layer has the fields of a contract layer (docs/numerics.md), held as trainable
real numbers: latent weights (or, for the Bayesian rule, the natural parameters of a
Bernoulli posterior per weight), a threshold and a bias per neuron in units of one weight,
and decay fractions ``leak`` (membrane) and ``current_leak`` (cuba current).

Each layer carries contract v2's options (docs/numerics.md): ``decay_round``, ``input_shift``
``k``, ``bias_to``, ``u_overflow``, ``v_range`` (defaults: v1's, `OPTION_DEFAULTS`) and any
reset, ``"subtract_next"`` included. Thresholds and biases are real numbers in units of one
weight in both modes; the hardware mode holds the membrane in units of ``2^-k`` of a weight.

Two forward modes share one code path, the golden model's own step function
(`spikeloop.quant.golden.lif_step`), given the pieces each mode needs around it:

``hardware=True`` (the default) is the contract's integer arithmetic, held in float64
tensors (exact below 2^53): binary weights, the synaptic sum times ``2^k``, integer thresholds
``theta = max(1, round(theta_r * 2^k))`` and biases ``round(bias_r * 2^k)`` (into the current or
the membrane), integer decays ``lam = round(leak * 2^F)`` rounded as ``decay_round`` says,
saturation to ``v_bits`` (``v_range``) and ``u_bits`` (or its wrap) when set. Every rounding is a
straight-through estimator (forward: the integer; backward: identity), so the spikes it
produces are exactly those `spikeloop.quant.golden` produces for the exported network while
gradients still flow. What is trained is what is deployed, by construction.

``hardware=False`` is the float relaxation of the same model (real thresholds, biases and
decays ``v - v*leak``, no rounding, no saturation or wrap, unit weights of 1);
`spikeloop.quant.export` reports what rounding it costs.

The spike is ``z = (v' >= theta)``; its backward pass is a surrogate derivative of
``x = (v' - theta) / theta`` (the threshold detached in the denominator):

- ``"fast_sigmoid"``: ``1 / (1 + slope*|x|)^2``
- ``"arctan"``:       ``1 / (1 + (pi/2 * slope * x)^2)``

both equal to 1 at the threshold; ``slope`` sets how fast they fall off.

Weights follow one of two rules:

- ``"ste"`` (straight-through): latent real weights in [-1, 1], ``sign`` forward (0 -> +1),
  identity backward where ``|w| <= 1`` (BinaryConnect);
- ``"bayes"`` (BiSNN, Jang, Skatchkovsky & Simeone 2021): a mean-field Bernoulli posterior
  per weight with natural parameter ``logit`` (``P(w = +1) = sigmoid(2 * logit)``), trained
  through the Gumbel-softmax (concrete) relaxation ``w = tanh((logit + delta) / tau)`` with
  ``delta = log(U / (1 - U)) / 2``, ``U ~ Uniform(0, 1)``, plus ``kl_weight * KL(q || prior)``.
  In hardware mode the sample is made hard (``sign``, relaxed gradient: straight-through
  Gumbel-softmax) so the arithmetic stays integer. Prediction: the posterior mode, an
  ensemble of sampled binary networks, or a committee vote (`spikeloop.quant.train`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from spikeloop.metrics import READOUTS, readout_scores
from spikeloop.network import (
    BIAS_TOS,
    FRAC_BITS_RANGE,
    INPUT_SHIFT_RANGE,
    NEURONS,
    OPTION_DEFAULTS,
    OVERFLOWS,
    RESETS,
    ROUNDINGS,
    V_RANGES,
    check_chain,
    membrane_range,
    signed_range,
)
from spikeloop.quant.golden import LayerParams, LIFOutput, LIFState, lif_step

SURROGATES = ("fast_sigmoid", "arctan")
RULES = ("ste", "bayes")
WEIGHT_MODES = ("sample", "mode", "draw")


class ModelError(ValueError):
    """A training model was configured or called with something it does not support."""


# ---------------------------------------------------------------------------------------------
# Differentiable pieces


def surrogate(x: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """The surrogate derivative of the spike at normalized distance ``x`` from the threshold."""
    if kind == "fast_sigmoid":
        return 1.0 / (1.0 + slope * x.abs()) ** 2
    if kind == "arctan":
        return 1.0 / (1.0 + (0.5 * math.pi * slope * x) ** 2)
    raise ModelError(f"unknown surrogate {kind!r}; expected one of {', '.join(SURROGATES)}")


class _Spike(torch.autograd.Function):
    """Heaviside step ``x >= 0`` forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x, kind, slope):
        ctx.save_for_backward(x)
        ctx.kind, ctx.slope = kind, slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate(x, ctx.kind, ctx.slope), None, None


def spike(v: torch.Tensor, theta: torch.Tensor, kind: str = "fast_sigmoid", slope: float = 5.0) -> torch.Tensor:
    """``(v >= theta)`` as 0/1 of v's dtype; backward: ``surrogate((v - theta) / theta)`` (theta > 0).

    The sign of ``(v - theta) / theta`` is exact in floating point, so the forward is exactly
    the contract's comparison when ``v`` and ``theta`` hold integers.
    """
    return _Spike.apply((v - theta) / theta.detach(), kind, slope)


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Forward exactly ``y``, backward identity to ``x``. (``x + (y - x).detach()`` would round: in float32 a
    threshold of -3.7416 made 1 into 0.99999994, which an export truncated to 0.)"""
    return y.detach() + (x - x.detach())


class _SignSTE(torch.autograd.Function):
    """``+1 if w >= 0 else -1`` forward; gradient passed where ``|w| <= 1``."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def binarize(w: torch.Tensor) -> torch.Tensor:
    """Sign with the straight-through estimator (BinaryConnect); 0 maps to +1."""
    return _SignSTE.apply(w)


def _hard_sign(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


def _round_shift_ste(p: torch.Tensor, frac_bits: int, rounding: str) -> torch.Tensor:
    """`spikeloop.quant.golden.round_shift` on floats holding integers: ``p / 2^F`` rounded as
    ``rounding`` says ("floor", "zero", "nearest") forward, straight-through backward."""
    inv = 1.0 / float(1 << frac_bits)  # a power of two: exact
    q = p.detach()
    if rounding == "floor":
        whole = torch.floor(q * inv)
    else:
        half = float((1 << frac_bits) >> 1) if rounding == "nearest" else 0.0
        whole = torch.sign(q) * torch.floor((q.abs() + half) * inv)
    return straight_through(p * inv, whole)


def _no_rounding(p: torch.Tensor, frac_bits: int, rounding: str) -> torch.Tensor:
    """The float mode's decays: real fractions with F = 0, nothing rounds."""
    return p


def check_options(where: str, options: dict, error: type[Exception] = ValueError) -> dict:
    """Contract v2's options (keys of `OPTION_DEFAULTS`, missing ones at their defaults) checked, or
    `error` naming the option, its value and what was expected."""
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise error(f"{where}: unknown option(s) {', '.join(unknown)}; expected {', '.join(OPTION_DEFAULTS)}")
    out = {**OPTION_DEFAULTS, **options}
    for name, choices in (("decay_round", ROUNDINGS), ("bias_to", BIAS_TOS), ("u_overflow", OVERFLOWS),
                          ("v_range", V_RANGES)):
        if out[name] not in choices:
            raise error(f"{where}: {name} must be one of {', '.join(choices)}; got {out[name]!r}")
    k, (lo, hi) = out["input_shift"], INPUT_SHIFT_RANGE
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not lo <= k <= hi:
        raise error(f"{where}: input_shift = {k!r}, expected an integer in [{lo}, {hi}]")
    out["input_shift"] = int(k)
    return out


# ---------------------------------------------------------------------------------------------
# Weight parametrizations


class STWeights(nn.Module):
    """Latent real weights in [-1, 1]; the binary weights are their signs (straight-through)."""

    def __init__(self, n_out: int, n_in: int, *, generator: torch.Generator):
        super().__init__()
        self.latent = nn.Parameter(torch.rand(n_out, n_in, generator=generator) * 2 - 1)

    def forward(self, mode: str = "sample", generator=None) -> torch.Tensor:
        """The +/-1 weights [n_out, n_in]; every mode is the sign for this rule."""
        return binarize(self.latent)

    def binary(self, mode: str = "mode", generator=None) -> torch.Tensor:
        """The +/-1 weights without gradient."""
        return _hard_sign(self.latent.detach())

    @torch.no_grad()
    def post_step(self) -> None:
        """Clip the latent weights to [-1, 1] after an optimizer step."""
        self.latent.clamp_(-1.0, 1.0)

    def kl(self) -> torch.Tensor:
        return self.latent.new_zeros(())


class BayesWeights(nn.Module):
    """Mean-field Bernoulli posterior over +/-1 weights, natural parameter ``logit`` per synapse.

    ``P(w = +1) = sigmoid(2 * logit)``, ``E[w] = tanh(logit)``. The prior is a Bernoulli per
    synapse too, held as natural parameters in the buffer ``prior_logit`` (``prior``: a scalar
    ``P(w = +1)`` for every synapse, or a tensor of natural parameters [n_out, n_in], e.g. a
    previous posterior: `spikeloop.quant.bayes.carry_prior`). ``tau`` is the temperature of the
    concrete relaxation.
    """

    def __init__(self, n_out: int, n_in: int, *, generator: torch.Generator, prior: float | torch.Tensor = 0.5,
                 tau: float = 1.0, init_scale: float = 1.0):
        super().__init__()
        self.logit = nn.Parameter((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * init_scale)
        self.register_buffer("prior_logit", torch.zeros(n_out, n_in))
        self.set_prior(prior)
        self.tau = tau

    @torch.no_grad()
    def set_prior(self, prior: float | torch.Tensor) -> None:
        """The prior: a scalar ``P(w = +1)`` in (0, 1), or natural parameters [n_out, n_in]."""
        if isinstance(prior, torch.Tensor):
            if tuple(prior.shape) != tuple(self.logit.shape) or not bool(torch.isfinite(prior).all()):
                raise ModelError(f"prior natural parameters must be finite with shape {list(self.logit.shape)}, "
                                 f"got {list(prior.shape)}")
            self.prior_logit.copy_(prior.detach())
            return
        if isinstance(prior, bool) or not isinstance(prior, (int, float, np.floating)) or not 0 < prior < 1:
            raise ModelError(f"prior = {prior!r}, expected P(w = +1) in (0, 1) or natural parameters")
        self.prior_logit.fill_(0.5 * math.log(prior / (1 - prior)))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # checkpoints written before the prior was per synapse: keep the prior set at construction
        state_dict.setdefault(prefix + "prior_logit", self.prior_logit.clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _delta(self, generator) -> torch.Tensor:
        u = torch.rand(self.logit.shape, generator=generator).clamp_(1e-6, 1 - 1e-6)
        return 0.5 * torch.log(u / (1 - u))

    def forward(self, mode: str = "sample", generator=None, hard: bool = False) -> torch.Tensor:
        """+/-1 weights (or relaxed in (-1, 1) for ``mode="sample", hard=False``).

        ``"sample"``: concrete relaxation with gradient to ``logit`` (made binary if ``hard``);
        ``"mode"``: the sign of ``logit`` (0 -> +1), no gradient; ``"draw"``: a binary sample,
        no gradient.
        """
        if mode == "sample":
            relaxed = torch.tanh((self.logit + self._delta(generator)) / self.tau)
            return straight_through(relaxed, _hard_sign(relaxed.detach())) if hard else relaxed
        return self.binary(mode, generator)

    def binary(self, mode: str = "mode", generator=None) -> torch.Tensor:
        """+/-1 weights without gradient: the posterior mode or (``"draw"``) a sample."""
        if mode == "mode":
            return _hard_sign(self.logit.detach())
        if mode in ("draw", "sample"):
            return _hard_sign(self.logit.detach() + self._delta(generator))
        raise ModelError(f"weight mode {mode!r}; expected one of {', '.join(WEIGHT_MODES)}")

    def kl(self) -> torch.Tensor:
        """KL(q || prior) summed over the synapses (two Bernoullis per synapse)."""
        q = torch.sigmoid(2 * self.logit)
        p = torch.sigmoid(2 * self.prior_logit).to(q.dtype)
        eps = 1e-7
        return (q * torch.log((q + eps) / (p + eps)) + (1 - q) * torch.log((1 - q + eps) / (1 - p + eps))).sum()

    @torch.no_grad()
    def post_step(self) -> None:
        """Keep the natural parameters in a range where the relaxation still has gradient."""
        self.logit.clamp_(-6.0, 6.0)

    def probabilities(self) -> torch.Tensor:
        """``P(w = +1)`` per synapse, float64 (what `spikeloop.posterior.draw_weights` draws from)."""
        return torch.sigmoid(2 * self.logit.detach().double())

    def prior_probabilities(self) -> torch.Tensor:
        """``P(w = +1)`` per synapse under the prior."""
        return torch.sigmoid(2 * self.prior_logit)


# ---------------------------------------------------------------------------------------------
# One layer


class LayerTrace(NamedTuple):
    """One layer's sequence: spikes ``z``, pre-reset membranes ``v``, currents ``u``, all [B, T, n_out]."""

    z: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor


class IntegerParams(NamedTuple):
    """A layer's parameters as the contract wants them (plain Python / int64 numpy)."""

    theta: np.ndarray
    bias: np.ndarray
    lam: int
    alpha: int


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ModelError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ModelError(f"{name} = {value} is outside [{lo}, {hi if hi is not None else 'inf'}]")
    return int(value)


def _check_real(name: str, value, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ModelError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < lo or value > hi or (open_lo and value == lo):
        bracket = "(" if open_lo else "["
        raise ModelError(f"{name} = {value} is outside {bracket}{lo}, {hi}]")
    return value


def _check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ModelError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


class BinaryLIF(nn.Module):
    """A layer of ``n_out`` lif/cuba neurons behind a binary crossbar of ``n_in`` inputs.

    ``recurrent``: the layer also takes its own spikes of the previous timestep, through +/-1 weights of
    their own (docs/numerics.md); trained by backpropagation through time.
    ``theta`` initial threshold (default ``max(1, round(sqrt(n_in) / 2))``, n_in + n_out if recurrent), ``bias`` initial
    bias, both in units of one weight. ``leak`` / ``current_leak``: decay fractions in [0, 1]
    (``lam = round(leak * 2^F)``); ``current_leak`` must be 0 for ``lif``. ``v_bits`` /
    ``u_bits``: saturation widths of the hardware mode (None: no saturation or wrap, as while the
    widths are not chosen yet). ``learn_leak`` makes the decays trainable.
    ``detach_reset``: no gradient through the reset (the forward is the same). ``options``:
    contract v2's (`OPTION_DEFAULTS`' keys: decay_round, input_shift, bias_to, u_overflow, v_range).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        neuron: str = "lif",
        reset: str = "subtract",
        rule: str = "ste",
        theta: float | None = None,
        bias: float = 0.0,
        leak: float = 0.125,
        current_leak: float | None = None,
        frac_bits: int = 8,
        v_bits: int | None = None,
        u_bits: int | None = None,
        surrogate: str = "fast_sigmoid",
        slope: float = 5.0,
        learn_leak: bool = False,
        detach_reset: bool = True,
        prior: float = 0.5,
        tau: float = 1.0,
        seed: int = 0,
        recurrent: bool = False,
        where: str = "layer",
        **options,
    ):
        super().__init__()
        self.where = where
        if not isinstance(recurrent, (bool, np.bool_)):
            raise ModelError(f"{where}: recurrent = {recurrent!r}, expected True or False")
        self.recurrent = bool(recurrent)
        for name, value in check_options(where, options, ModelError).items():
            setattr(self, name, value)
        self.n_in = _check_int(f"{where}: n_in", n_in, 1, 65536)
        self.n_out = _check_int(f"{where}: n_out", n_out, 1, 65536)
        self.neuron = _check_choice(f"{where}: neuron", neuron, NEURONS)
        self.reset = _check_choice(f"{where}: reset", reset, RESETS)
        self.rule = _check_choice(f"{where}: rule", rule, RULES)
        self.surrogate = _check_choice(f"{where}: surrogate", surrogate, SURROGATES)
        self.slope = _check_real(f"{where}: slope", slope, 0.0, 1e6, open_lo=True)
        self.frac_bits = _check_int(f"{where}: frac_bits", frac_bits, *FRAC_BITS_RANGE)
        self.v_bits = None if v_bits is None else _check_int(f"{where}: v_bits", v_bits, 2, 32)
        self.u_bits = None if u_bits is None else _check_int(f"{where}: u_bits", u_bits, 2, 32)
        leak = _check_real(f"{where}: leak", leak, 0.0, 1.0)
        if current_leak is None:
            current_leak = 0.5 if neuron == "cuba" else 0.0
        current_leak = _check_real(f"{where}: current_leak", current_leak, 0.0, 1.0)
        if neuron == "lif" and current_leak != 0.0:
            raise ModelError(f"{where}: current_leak = {current_leak} but neuron 'lif' has no current; expected 0")
        if theta is None:
            theta = max(1.0, round(math.sqrt(n_in + (n_out if self.recurrent else 0)) / 2))
        theta = _check_real(f"{where}: theta", theta, 0.0, 2.0**31, open_lo=True)
        bias = _check_real(f"{where}: bias", bias, -(2.0**31), 2.0**31)
        self.detach_reset = bool(detach_reset)

        gen = torch.Generator().manual_seed(_check_int(f"{where}: seed", seed, 0))
        n_syn = n_in + (n_out if self.recurrent else 0)  # a recurrent layer's own spikes follow its inputs
        if rule == "ste":
            self.weights = STWeights(n_out, n_syn, generator=gen)
        else:
            prior = _check_real(f"{where}: prior", prior, 0.0, 1.0, open_lo=True)
            if prior == 1.0:
                raise ModelError(f"{where}: prior = 1.0 is outside (0, 1)")
            tau = _check_real(f"{where}: tau", tau, 0.0, 1e3, open_lo=True)
            self.weights = BayesWeights(n_out, n_syn, generator=gen, prior=prior, tau=tau)
        self.theta = nn.Parameter(torch.full((n_out,), theta))
        self.bias = nn.Parameter(torch.full((n_out,), bias))
        self.leak = nn.Parameter(torch.tensor(leak), requires_grad=learn_leak)
        self.current_leak = nn.Parameter(torch.tensor(current_leak), requires_grad=learn_leak and neuron == "cuba")

    # -- parameters in the two modes ------------------------------------------------------------

    def _scale(self) -> float:
        return float(1 << self.frac_bits)

    @property
    def unit(self) -> int:
        """One weight in the hardware mode's membrane units: ``2^input_shift``."""
        return 1 << self.input_shift

    def options(self) -> dict:
        """Contract v2's options of the layer (keys of `OPTION_DEFAULTS`)."""
        return {key: getattr(self, key) for key in OPTION_DEFAULTS}

    def theta_hw(self) -> torch.Tensor:
        """Integer thresholds ``max(1, round(theta * 2^k))`` (straight-through gradient)."""
        x = self.theta * self.unit
        return straight_through(x, torch.round(x.detach()).clamp(min=1))

    def bias_hw(self) -> torch.Tensor:
        """Integer biases ``round(bias * 2^k)`` (straight-through gradient)."""
        x = self.bias * self.unit
        return straight_through(x, torch.round(x.detach()))

    def lam_hw(self) -> torch.Tensor:
        """Integer membrane decay ``round(leak * 2^F)`` in [0, 2^F] (straight-through gradient)."""
        x = self.leak * self._scale()
        return straight_through(x, torch.round(x.detach()).clamp(0, self._scale()))

    def alpha_hw(self) -> torch.Tensor:
        """Integer current decay ``round(current_leak * 2^F)`` (0 for lif)."""
        x = self.current_leak * self._scale()
        return straight_through(x, torch.round(x.detach()).clamp(0, self._scale()))

    def theta_float(self) -> torch.Tensor:
        """Real thresholds of the float mode (kept >= 1/2)."""
        return straight_through(self.theta, self.theta.detach().clamp(min=0.5))

    def leak_float(self) -> torch.Tensor:
        return straight_through(self.leak, self.leak.detach().clamp(0, 1))

    def current_leak_float(self) -> torch.Tensor:
        return straight_through(self.current_leak, self.current_leak.detach().clamp(0, 1))

    @torch.no_grad()
    def integer_params(self) -> IntegerParams:
        """theta, bias, lam, alpha exactly as the hardware mode uses them."""
        return IntegerParams(
            self.theta_hw().to(torch.int64).numpy().copy(),
            self.bias_hw().to(torch.int64).numpy().copy(),
            int(self.lam_hw().item()),
            int(self.alpha_hw().item()),
        )

    # -- dynamics ---------------------------------------------------------------------------------

    def forward(
        self,
        x: torch.Tensor,
        *,
        weights: torch.Tensor,
        hardware: bool = True,
        widths: tuple[int | None, int | None] | None = None,
        observed: LayerTrace | None = None,
    ) -> LayerTrace:
        """Run a sequence: ``x`` 0/1 [B, T, n_in] -> `LayerTrace` [B, T, n_out].

        ``weights`` are this call's +/-1 (or relaxed) weights [n_out, n_in] (a recurrent layer's
        [n_out, n_in + n_out]: the recurrent weights follow, as in `Layer.crossbar_weights`); ``widths``
        overrides (v_bits, u_bits) of the hardware mode for this call. ``observed``: a core's
        trace of this layer (spikes, pre-reset membranes, currents [B, T, n_out]), put in place
        of the computed values timestep by timestep (`spikeloop.quant.golden.lif_step`).
        """
        if x.ndim != 3 or x.shape[-1] != self.n_in:
            raise ModelError(f"{self.where}: input must have shape [B, T, {self.n_in}], got {tuple(x.shape)}")
        if observed is not None:
            want = (*x.shape[:2], self.n_out)
            for name, seen in zip(LayerTrace._fields, observed):
                if seen is None or tuple(seen.shape) != want:
                    got = None if seen is None else tuple(seen.shape)
                    raise ModelError(f"{self.where}: observed {name} must have shape {list(want)}, got {got}")
        v_bits, u_bits = widths if widths is not None else (self.v_bits, self.u_bits)
        decay_round = self.decay_round
        if hardware:
            dtype, rounding, frac_bits, unit = torch.float64, _round_shift_ste, self.frac_bits, self.unit
            theta, bias = self.theta_hw().to(dtype), self.bias_hw().to(dtype)
            lam, alpha = self.lam_hw().to(dtype), self.alpha_hw().to(dtype)
            v_range = membrane_range(v_bits, self.v_range) if v_bits is not None else None
            u_range = signed_range(u_bits) if u_bits is not None else None
            u_wrap = u_bits if self.u_overflow == "wrap" else None
        else:  # real dynamics: decays are fractions (F = 0), a weight is 1, nothing rounds, saturates or wraps
            dtype, rounding, frac_bits, unit = torch.float32, _no_rounding, 0, 1
            decay_round = "floor"  # one formula for every rounding, v - v*leak (x*(1 - leak) differs in float32)
            theta, bias = self.theta_float(), self.bias
            lam, alpha = self.leak_float(), self.current_leak_float()
            v_range = u_range = u_wrap = None
        to_membrane = self.bias_to == "membrane"
        w = weights.to(dtype)
        p = LayerParams(w[:, :self.n_in].T, theta, bias, self.neuron, self.reset, v_range, u_range,
                        frac_bits, lam, alpha, decay_round, self.input_shift,
                        bias if to_membrane else None, u_wrap, w[:, self.n_in:].T if self.recurrent else None)
        a = (x.to(dtype) @ p.weights_t) * unit  # [B, T, n_out]; exact: sums of +/-1 times a power of two
        if not to_membrane:
            a = a + bias
        batch, steps = x.shape[:2]
        state = LIFState(a.new_zeros(batch, self.n_out), a.new_zeros(batch, self.n_out), a.new_zeros(batch, self.n_out))
        fire = functools.partial(spike, kind=self.surrogate, slope=self.slope)
        outs = []
        for t in range(steps):
            seen = None if observed is None else LIFOutput(*(field[:, t] for field in observed))
            a_t = a[:, t]
            if self.recurrent:  # backpropagation through time: the gradient flows through the previous spikes
                a_t = a_t + (state.z.to(dtype) @ p.recurrent_t) * unit
            out, state = lif_step(a_t, state, p, rounding=rounding, fire=fire, detach_reset=self.detach_reset,
                                  observed=seen)
            outs.append(out)
        return LayerTrace(*(torch.stack(field, 1) for field in zip(*outs)))

    def extra_repr(self) -> str:
        changed = "".join(f", {k}={v!r}" for k, v in self.options().items() if v != OPTION_DEFAULTS[k])
        changed += ", recurrent=True" if self.recurrent else ""
        return (
            f"n_in={self.n_in}, n_out={self.n_out}, neuron={self.neuron!r}, reset={self.reset!r}, "
            f"rule={self.rule!r}, frac_bits={self.frac_bits}, surrogate={self.surrogate!r}, slope={self.slope}"
            f"{changed}"
        )


# ---------------------------------------------------------------------------------------------
# The network


class SNNOutput(NamedTuple):
    """A network forward pass.

    ``scores``: the readout before scaling (spike counts or final membranes of the last
    layer; integers in hardware mode, membranes in units of ``2^-k`` of a weight),
    ``logits = gain * score_unit * scores`` (`BinarySNN.score_unit`), ``layers``: every layer's
    `LayerTrace`.
    """

    logits: torch.Tensor
    scores: torch.Tensor
    layers: tuple[LayerTrace, ...]

    @property
    def spikes(self) -> torch.Tensor:
        """The last layer's spikes [B, T, n_out]."""
        return self.layers[-1].z

    @property
    def membranes(self) -> torch.Tensor:
        """The last layer's pre-reset membranes [B, T, n_out]."""
        return self.layers[-1].v


def predict(scores):
    """Class predictions: the first index of the maximum score (numpy or torch, [B, n_classes])."""
    if isinstance(scores, torch.Tensor):
        return torch.as_tensor(np.argmax(scores.detach().cpu().numpy(), axis=1))
    return np.argmax(np.asarray(scores), axis=1)


class BinarySNN(nn.Module):
    """A feed-forward chain of `BinaryLIF` layers with a readout for classification.

    ``readout="membrane"``: scores are the last layer's final pre-reset membranes (use reset
    ``"none"`` and no leak in that layer to have it sum its input over the whole sequence);
    ``"count"``: scores are its spike counts. ``logits = gain * score_unit * scores`` with a
    trainable ``gain`` (a temperature; it changes no prediction) and `score_unit`, which makes the
    logits of both modes alike. ``hardware`` is the default mode.
    """

    def __init__(self, layers: Sequence[BinaryLIF], *, readout: str = "membrane", hardware: bool = True,
                 gain: float = 1.0):
        super().__init__()
        layers = list(check_chain(layers, BinaryLIF, ModelError, "BinarySNN"))
        rules = {layer.rule for layer in layers}
        if len(rules) != 1:
            raise ModelError(f"all layers must follow the same rule, got {sorted(rules)}")
        self.layers = nn.ModuleList(layers)
        self.readout = _check_choice("readout", readout, READOUTS)
        self.hardware = bool(hardware)
        self.log_gain = nn.Parameter(torch.tensor(math.log(_check_real("gain", gain, 0.0, 1e6, open_lo=True))))

    @property
    def rule(self) -> str:
        """``"ste"`` or ``"bayes"``."""
        return self.layers[0].rule

    @property
    def sizes(self) -> tuple[int, ...]:
        """(n_in, n_out of layer 0, ...)."""
        return (self.layers[0].n_in, *(layer.n_out for layer in self.layers))

    def score_unit(self, hardware: bool | None = None) -> float:
        """A readout score's worth in weights: ``2^-k`` (the last layer's ``input_shift``) for the hardware
        mode's membranes, else 1."""
        hardware = self.hardware if hardware is None else hardware
        if hardware and self.readout == "membrane":
            return 1.0 / self.layers[-1].unit
        return 1.0

    def logit_gain(self, hardware: bool | None = None) -> float:
        """The factor from readout scores to logits, ``gain * score_unit`` (what a `Posterior` keeps)."""
        return float(self.log_gain.detach().double().exp()) * self.score_unit(hardware)

    def weights(self, mode: str | None = None, generator=None, *, hardware: bool | None = None) -> list[torch.Tensor]:
        """Every layer's weights for one forward pass.

        ``mode``: ``"sample"`` (default while training), ``"mode"`` (default in eval) or ``"draw"``;
        the straight-through rule always gives the signs of its latent weights.
        """
        hardware = self.hardware if hardware is None else hardware
        mode = mode or ("sample" if self.training else "mode")
        _check_choice("weight mode", mode, WEIGHT_MODES)
        out = []
        for layer in self.layers:
            if layer.rule == "bayes":
                out.append(layer.weights(mode, generator, hard=hardware))
            else:
                out.append(layer.weights(mode))
        return out

    def forward(
        self,
        x,
        *,
        hardware: bool | None = None,
        weights: str | Sequence[torch.Tensor] | None = None,
        widths: Sequence[tuple[int | None, int | None]] | None = None,
        generator: torch.Generator | None = None,
        observed: Sequence[LayerTrace] | None = None,
    ) -> SNNOutput:
        """Run spikes ``x`` (0/1, [B, T, n_in], numpy or torch) through every layer.

        ``weights``: a weight mode (see `weights`) or explicit per-layer +/-1 tensors;
        ``widths``: per-layer (v_bits, u_bits) overriding the layers' own in hardware mode;
        ``observed``: per layer, a core's trace of the same input, whose values replace the
        model's (forward: the core's, backward: the model's; `spikeloop.quant.inloop`).
        """
        hardware = self.hardware if hardware is None else hardware
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        if not bool(((x == 0) | (x == 1)).all()):
            raise ModelError("input spikes must be 0 or 1")
        if weights is None or isinstance(weights, str):
            ws = self.weights(weights, generator, hardware=hardware)
        else:
            ws = list(weights)
            if len(ws) != len(self.layers):
                raise ModelError(f"weights: {len(ws)} tensors for {len(self.layers)} layers")
        if widths is not None and len(widths) != len(self.layers):
            raise ModelError(f"widths: {len(widths)} entries for {len(self.layers)} layers")
        if observed is not None and len(observed) != len(self.layers):
            raise ModelError(f"observed: {len(observed)} traces for {len(self.layers)} layers")
        traces = []
        h = x
        for k, (layer, w) in enumerate(zip(self.layers, ws)):
            trace = layer(h, weights=w, hardware=hardware, widths=None if widths is None else widths[k],
                          observed=None if observed is None else observed[k])
            traces.append(trace)
            h = trace.z
        last = traces[-1]
        scores = readout_scores(last.z, last.v, self.readout)
        logits = scores.to(torch.float32) * (self.log_gain.exp() * self.score_unit(hardware))
        return SNNOutput(logits, scores, tuple(traces))

    def kl(self) -> torch.Tensor:
        """KL(posterior || prior) summed over all synapses (0 for the straight-through rule)."""
        return sum((layer.weights.kl() for layer in self.layers), torch.zeros(()))

    def post_step(self) -> None:
        """Call after every optimizer step: clips latent weights / natural parameters."""
        for layer in self.layers:
            layer.weights.post_step()

    def binary_weights(self, mode: str = "mode", generator=None) -> list[np.ndarray]:
        """Per layer, the deployed +/-1 weights as int8 numpy [n_out, n_in] (a recurrent layer's: its crossbar
        weights [n_out, n_in + n_out], `spikeloop.network.Layer.crossbar_weights`)."""
        return [layer.weights.binary(mode, generator).to(torch.int8).numpy().copy() for layer in self.layers]

    def set_widths(self, widths: Sequence[tuple[int | None, int | None]]) -> None:
        """Fix every layer's hardware-mode saturation widths, e.g. to those an export chose."""
        if len(widths) != len(self.layers):
            raise ModelError(f"widths: {len(widths)} entries for {len(self.layers)} layers")
        for layer, (vb, ub) in zip(self.layers, widths):
            layer.v_bits = None if vb is None else _check_int(f"{layer.where}: v_bits", vb, 2, 32)
            layer.u_bits = None if ub is None else _check_int(f"{layer.where}: u_bits", ub, 2, 32)

    def param_groups(self, *, lr: float, lr_neuron: float | None = None) -> list[dict]:
        """Optimizer groups: synapses at ``lr``; thresholds, biases, decays and gain at ``lr_neuron``."""
        syn, neu = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (syn if name.split(".")[-2:-1] == ["weights"] else neu).append(p)
        return [{"params": syn, "lr": lr}, {"params": neu, "lr": lr_neuron if lr_neuron is not None else lr}]


def feedforward(
    sizes: Sequence[int],
    *,
    neuron: str = "lif",
    reset: str = "subtract",
    rule: str = "ste",
    readout: str = "membrane",
    leak: float = 0.125,
    current_leak: float | None = None,
    frac_bits: int = 8,
    surrogate: str = "fast_sigmoid",
    slope: float = 5.0,
    out_reset: str | None = None,
    out_leak: float | None = None,
    out_theta: float | None = None,
    steps_hint: int = 16,
    learn_leak: bool = False,
    prior: float = 0.5,
    tau: float = 1.0,
    hardware: bool = True,
    seed: int = 0,
    recurrent: bool | Sequence[bool] = False,
    **options,
) -> BinarySNN:
    """A network of the given sizes, e.g. ``(64, 256, 10)``, all layers alike except the last.

    ``options``: contract v2's (`OPTION_DEFAULTS`' keys), the same for every layer. ``recurrent``: True
    makes every hidden layer (not the last) take its own previous spikes; or one bool per layer.

    With ``readout="membrane"`` the last layer defaults to reset ``"none"`` and no leak, so its
    final membrane is the sum of its input over the sequence. ``steps_hint`` (the expected
    number of timesteps) only sets the initial readout gain.
    """
    sizes = [int(_check_int(f"sizes[{k}]", n, 1, 65536)) for k, n in enumerate(sizes)]
    if len(sizes) < 2:
        raise ModelError(f"sizes needs at least an input and an output size, got {sizes}")
    membrane = _check_choice("readout", readout, READOUTS) == "membrane"
    if out_reset is None:
        out_reset = "none" if membrane else reset
    if out_leak is None:
        out_leak = 0.0 if membrane else leak
    layers = []
    n_layers = len(sizes) - 1
    if isinstance(recurrent, (bool, np.bool_)):
        recurrent = [bool(recurrent) and k < n_layers - 1 for k in range(n_layers)]
    elif isinstance(recurrent, str) or not isinstance(recurrent, Sequence) or len(recurrent) != n_layers:
        raise ModelError(f"recurrent = {recurrent!r}, expected a bool or one bool per layer ({n_layers})")
    for k in range(n_layers):
        last = k == n_layers - 1
        layers.append(
            BinaryLIF(
                sizes[k], sizes[k + 1], neuron=neuron, reset=out_reset if last else reset, rule=rule,
                theta=out_theta if last else None,
                leak=out_leak if last else leak, current_leak=current_leak, frac_bits=frac_bits,
                surrogate=surrogate, slope=slope, learn_leak=learn_leak, prior=prior, tau=tau,
                seed=seed * 1000 + k, recurrent=recurrent[k], where=f"layer {k}", **options,
            )
        )
    if membrane:
        gain = 1.0 / (max(1, steps_hint) * math.sqrt(sizes[-2]) / 4)
    else:
        gain = 4.0 / max(1, steps_hint)
    return BinarySNN(layers, readout=readout, hardware=hardware, gain=gain)
