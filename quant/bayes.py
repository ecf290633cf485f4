"""The BiSNN learning rule for Bayesian binary weights, and the posterior as the next prior.

BiSNN (Jang, Skatchkovsky & Simeone 2021, arXiv 2012.08300, Sec. 3, "Bayes-BiSNN") trains a
mean-field Bernoulli posterior ``q(w | theta)`` over the +/-1 synapses by the Bayesian learning
rule for binary weights of Meng, Bachmann & Khan (2020, arXiv 2002.10778, BayesBiNN, Sec. 3):
mirror descent on the natural parameters, which is natural-gradient descent on the free energy

    F(theta) = E_q[ L(w) ] + rho * KL( q(w | theta) || p(w | theta0) ).

Conventions. The papers' natural parameter ``theta`` (BayesBiNN's ``lambda``) of a synapse is
the ``logit`` of `spikeloop.quant.models.BayesWeights`, with no change of scale:
``q(w = +1) = exp(theta) / (exp(theta) + exp(-theta)) = sigmoid(2 theta)``, mean parameter
``mu = E[w] = tanh(theta)``; the prior's natural parameter ``theta0 = atanh(2 p0 - 1) =
log(p0 / (1 - p0)) / 2`` is the buffer ``prior_logit`` (per synapse).

One step, for every synapse (learning rate ``eta``):

1. concrete (Gumbel-softmax) relaxation of a sample: ``delta = log(u / (1 - u)) / 2``,
   ``u ~ U(0, 1)``, ``w_r = tanh((theta + delta) / tau)`` (BayesBiNN Sec. 3, BiSNN Sec. 3);
   in hardware mode the forward pass uses ``sign(w_r)`` with the gradient of ``w_r``
   (straight-through Gumbel-softmax);
2. the gradient with respect to the mean parameter, through the relaxation:
   ``g = s * dL/dw_r`` with the scale ``s = (1 - w_r^2) / (tau * (1 - tanh^2 theta))``
   (BayesBiNN's scale, Sec. 3, without its data-set size N: here ``L`` is the mean loss
   per sample and ``rho`` carries the 1/N);
3. the mirror-descent update (BayesBiNN's update, Sec. 3, with the KL weighted by ``rho``, as BiSNN's
   free energy weights it):

       theta <- (1 - eta * rho) * theta + eta * rho * theta0 - eta * g.

With ``rho = 0`` and ``g = 0`` nothing moves; with ``g = 0`` the parameters move toward the
prior geometrically (``theta - theta0`` shrinks by ``1 - eta * rho`` per step).

Autograd already gives ``dL/dtheta = dL/dw_r * (1 - w_r^2) / tau`` (the derivative of the
relaxation), so step 2 is computed as ``g = dL/dtheta * cosh^2(theta)`` (since
``1 / (1 - tanh^2 theta) = cosh^2 theta``): the same number, with no division by a vanishing
``1 - tanh^2``. The tests check a step against ``s * dL/dw_r`` worked out by hand.

`carry_prior` makes the current posterior every synapse's prior (Skatchkovsky, Jang &
Simeone 2022, arXiv 2208.13723: the posterior after a task is the prior of the next).
"""

from __future__ import annotations

import torch

from .models import BayesWeights, BinarySNN, ModelError

__all__ = ["BiSNN", "carry_prior"]


class BiSNN(torch.optim.Optimizer):
    """Mirror descent on the natural parameters of `BayesWeights` (see the module docstring).

    ``weights``: the `BayesWeights` modules to train (their ``logit``); each one's prior is read
    from its ``prior_logit`` buffer at every step (so `carry_prior` takes effect at once).
    ``lr``: eta; ``rho``: the KL weight per sample (the trainer uses ``kl_weight / n_train``).
    The temperature ``tau`` is each module's own (it enters through autograd, see above).
    """

    def __init__(self, weights, *, lr: float, rho: float):
        weights = list(weights)
        if not weights or not all(isinstance(w, BayesWeights) for w in weights):
            raise ModelError("BiSNN updates BayesWeights modules (the Bayesian rule's synapses); got "
                             f"{[type(w).__name__ for w in weights] or 'none'}")
        for name, value in (("lr", lr), ("rho", rho)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                    or value != value or value == float("inf"):
                raise ModelError(f"{name} = {value!r}, expected a finite non-negative number")
        if lr * rho > 1:
            raise ModelError(f"lr * rho = {lr * rho} > 1 would overshoot the prior; expected lr * rho <= 1")
        self._priors = {id(w.logit): w for w in weights}
        super().__init__([w.logit for w in weights], {"lr": float(lr), "rho": float(rho)})

    @torch.no_grad()
    def step(self, closure=None):
        """One mirror-descent step of every natural parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            eta, rho = group["lr"], group["rho"]
            for theta in group["params"]:
                if theta.grad is None:
                    continue
                prior = self._priors[id(theta)].prior_logit.to(theta.dtype)
                g = theta.grad * torch.cosh(theta) ** 2  # = (1 - w_r^2) / (tau (1 - tanh^2 theta)) * dL/dw_r
                theta.add_(eta * rho * (prior - theta) - eta * g)  # = (1 - eta rho) theta + eta rho theta0 - eta g
        return loss


@torch.no_grad()
def carry_prior(model: BinarySNN) -> None:
    """Make the current posterior every layer's prior (per synapse natural parameters).

    Afterwards ``model.kl()`` is 0 and the BiSNN update (and the KL term of the Adam variant)
    pulls toward this posterior: the continual rule of Skatchkovsky, Jang & Simeone (2022).
    """
    if not isinstance(model, BinarySNN):
        raise ModelError(f"carry_prior needs a BinarySNN, got {type(model).__name__}")
    if model.rule != "bayes":
        raise ModelError(f"carry_prior needs the Bayesian rule; this model follows {model.rule!r}")
    for layer in model.layers:
        layer.weights.set_prior(layer.weights.logit.detach().clone())
