"""From a trained `BinarySNN` to a contract `Network`, and the check that both compute the same.

`export` takes the integers the hardware mode already uses (``theta = max(1, round(theta * 2^k))``,
``bias = round(bias * 2^k)``, ``lam = round(leak * 2^F)``, ``alpha = round(current_leak * 2^F)``,
the signs of the latent weights or the posterior mode) and every layer's contract v2 options
(``k`` its ``input_shift``), chooses the membrane and current widths and builds a validated
`spikeloop.network.Network`. The model's thresholds and biases are in units of one weight, the
network's in units of ``2^-k`` of one. The `ExportReport` says per layer what was rounded and
by how much, which widths were chosen and why.

Widths (``widths=``):

- ``"auto"``: the model runs in hardware mode without saturation on ``calibration`` spikes
  (typically the training set); each layer gets the fewest bits that hold every observed
  ``v'`` (and ``u`` for cuba), its thresholds and its biases, plus ``margin_bits`` (under the
  layer's ``v_range``). Nothing saturates or wraps on the calibration data.
- ``"model"``: the widths set on the layers (`BinarySNN.set_widths`); with ``calibration``,
  values that would leave the range are counted and refused unless ``allow_saturation``.
- a list of ``(v_bits, u_bits)`` per layer: as ``"model"``, with these widths.

`posterior` exports a Bayesian model as a `spikeloop.posterior.Posterior`: the mode network as
`export` makes it, ``P(w = +1)`` per synapse, the readout and the gain (what an ensemble or a
committee on a core needs).

`verify` runs the exported network on the golden model (`spikeloop.quant.golden`) and the
model in hardware mode with the network's widths, and compares every layer's spikes, membranes
and currents and the predictions, as integers. `check` raises when anything differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from spikeloop.metrics import readout_scores
from spikeloop.network import Layer, Network, NetworkError, membrane_range, signed_range
from spikeloop.posterior import Posterior, mode_probs
from spikeloop.quant.golden import GoldenModel
from spikeloop.spikes import check_spikes

from .models import BinarySNN, predict


class ExportError(ValueError):
    """A model cannot be exported as asked, or the exported network disagrees with the model."""


@dataclass(frozen=True)
class Rounding:
    """How one field moved from the model's real value to the exported integer."""

    name: str
    n: int  # entries
    n_changed: int  # entries whose value changed
    max_abs: float  # largest |integer - real|

    def __str__(self) -> str:
        return f"{self.name}: {self.n_changed}/{self.n} changed, max |d| = {self.max_abs:.3g}"


@dataclass(frozen=True)
class LayerReport:
    """Per layer: the roundings, the chosen widths, and the observed ranges behind them."""

    index: int
    roundings: tuple[Rounding, ...]
    v_bits: int
    u_bits: int
    v_observed: tuple[int, int] | None  # (min, max) of v' on the calibration data
    u_observed: tuple[int, int] | None  # (min, max) of u (cuba) on the calibration data
    outside: int  # calibration values that leave the chosen ranges (0 with widths="auto")
    width_source: str

    def __str__(self) -> str:
        obs = f", v' in [{self.v_observed[0]}, {self.v_observed[1]}]" if self.v_observed else ""
        if self.u_observed:
            obs += f", u in [{self.u_observed[0]}, {self.u_observed[1]}]"
        lines = [f"layer {self.index}: v_bits={self.v_bits}, u_bits={self.u_bits} ({self.width_source}){obs}"]
        if self.outside:
            lines.append(f"  {self.outside} calibration values saturate")
        lines += [f"  {r}" for r in self.roundings]
        return "\n".join(lines)


@dataclass(frozen=True)
class ExportReport:
    """What `export` did, layer by layer."""

    layers: tuple[LayerReport, ...]
    calibration_samples: int
    densities: tuple[float, ...] | None = None  # each layer's input spike density on the calibration data

    @property
    def saturating(self) -> int:
        """Calibration values that leave their layer's range (0 unless saturation was allowed)."""
        return sum(layer.outside for layer in self.layers)

    def __str__(self) -> str:
        head = f"export report ({self.calibration_samples} calibration samples)"
        lines = [head, *(str(layer) for layer in self.layers)]
        if self.densities is not None:
            lines.append("input spike density per layer: " + ", ".join(f"{np.mean(d):.4f}" for d in self.densities))
        return "\n".join(lines)


class Exported(NamedTuple):
    """The result of `export`."""

    network: Network
    report: ExportReport


def bits_for(lo: int, hi: int) -> int:
    """The fewest two's complement bits (>= 2) holding every integer in [lo, hi]."""
    n = 2
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


def _as_tensor_spikes(spikes, n_in: int) -> torch.Tensor:
    s, _ = check_spikes(spikes, n_in, name="calibration")
    return torch.from_numpy(s.astype(np.uint8))


def observed_ranges(model: BinarySNN, spikes, *, weights="mode", widths=None, batch_size: int = 256):
    """Per layer ((v_min, v_max), (u_min, u_max)) of the hardware mode on ``spikes``.

    ``widths=None`` runs without saturation (what `export` uses to choose widths).
    """
    return observe(model, spikes, weights=weights, widths=widths, batch_size=batch_size)[0]


@torch.no_grad()
def observe(model: BinarySNN, spikes, *, weights="mode", widths=None, batch_size: int = 256):
    """(`observed_ranges`, each input's spike density per layer, to 1e-6) of the hardware mode on ``spikes``,
    in one run."""
    x = _as_tensor_spikes(spikes, model.sizes[0])
    if widths is None:
        widths = [(None, None)] * len(model.layers)
    ws = model.weights(weights, hardware=True) if isinstance(weights, str) or weights is None else list(weights)
    ranges = [[np.inf, -np.inf, np.inf, -np.inf] for _ in model.layers]
    ones = [np.zeros(layer.n_in) for layer in model.layers]  # spikes of each layer's inputs
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        out = model(batch, hardware=True, weights=ws, widths=widths)
        ones[0] += batch.sum(dim=(0, 1)).numpy()
        for k, (r, trace) in enumerate(zip(ranges, out.layers)):
            r[0] = min(r[0], trace.v.min().item())
            r[1] = max(r[1], trace.v.max().item())
            r[2] = min(r[2], trace.u.min().item())
            r[3] = max(r[3], trace.u.max().item())
            if k + 1 < len(ones):
                ones[k + 1] += trace.z.sum(dim=(0, 1)).numpy()
    densities = tuple(np.round(n / x[..., 0].numel(), 6) for n in ones)
    return [((int(r[0]), int(r[1])), (int(r[2]), int(r[3]))) for r in ranges], densities


def _rounding(name: str, real, integer) -> Rounding:
    real = np.atleast_1d(np.asarray(real, np.float64))
    integer = np.atleast_1d(np.asarray(integer, np.float64))
    diff = np.abs(integer - real)
    return Rounding(name, int(real.size), int((diff > 0).sum()), float(diff.max()) if diff.size else 0.0)


def _check_width_pair(k: int, pair) -> tuple[int, int]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ExportError(f"layer {k}: widths entry {pair!r} is not a (v_bits, u_bits) pair")
    for name, bits in zip(("v_bits", "u_bits"), pair):
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 32:
            raise ExportError(f"layer {k}: {name} = {bits!r}, expected an integer in [2, 32]")
    return int(pair[0]), int(pair[1])


def export(
    model: BinarySNN,
    *,
    calibration=None,
    widths: str | Sequence[tuple[int, int]] = "auto",
    margin_bits: int = 0,
    allow_saturation: bool = False,
    weights: str | Sequence = "mode",
    batch_size: int = 256,
) -> Exported:
    """Map ``model`` to a contract `Network` (see the module docstring); returns (network, report).

    ``weights``: ``"mode"`` (the straight-through signs or the Bayesian posterior mode) or one
    explicit list of +/-1 arrays per layer (e.g. one sampled member of a committee).
    """
    if not isinstance(model, BinarySNN):
        raise ExportError(f"expected a BinarySNN, got {type(model).__name__}")
    if isinstance(margin_bits, bool) or not isinstance(margin_bits, int) or not 0 <= margin_bits <= 30:
        raise ExportError(f"margin_bits = {margin_bits!r}, expected an integer in [0, 30]")
    n_layers = len(model.layers)
    if isinstance(weights, str):
        if weights != "mode":
            raise ExportError(f"weights = {weights!r}: export takes 'mode' or explicit +/-1 arrays per layer")
        w_np = model.binary_weights("mode")
    else:
        w_np = [np.asarray(w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else w) for w in weights]
        if len(w_np) != n_layers:
            raise ExportError(f"weights: {len(w_np)} arrays for {n_layers} layers")
    w_t = [torch.as_tensor(w.astype(np.float32)) for w in w_np]
    ints = [layer.integer_params() for layer in model.layers]

    if isinstance(widths, str) and widths == "auto":
        if calibration is None:
            raise ExportError("widths='auto' needs calibration spikes (e.g. the encoded training set)")
        source = "auto from calibration" + (f" + {margin_bits} margin bits" if margin_bits else "")
        fixed = None
    elif isinstance(widths, str) and widths == "model":
        fixed = []
        for k, layer in enumerate(model.layers):
            if layer.v_bits is None or layer.u_bits is None:
                raise ExportError(
                    f"layer {k}: widths='model' but the layer has v_bits={layer.v_bits}, u_bits={layer.u_bits}; "
                    "set them with BinarySNN.set_widths or use widths='auto' with calibration spikes"
                )
            fixed.append((layer.v_bits, layer.u_bits))
        source = "from the model"
    elif isinstance(widths, str):
        raise ExportError(f"widths = {widths!r}; expected 'auto', 'model' or a list of (v_bits, u_bits)")
    else:
        widths = list(widths)
        if len(widths) != n_layers:
            raise ExportError(f"widths: {len(widths)} entries for {n_layers} layers")
        fixed = [_check_width_pair(k, p) for k, p in enumerate(widths)]
        source = "given"

    observed = densities = None
    n_cal = 0
    if calibration is not None:
        n_cal = len(_as_tensor_spikes(calibration, model.sizes[0]))
        observed, densities = observe(model, calibration, weights=w_t, batch_size=batch_size)

    layers, reports = [], []
    for k, (layer, p, w) in enumerate(zip(model.layers, ints, w_np)):
        obs_v = observed[k][0] if observed else None
        obs_u = observed[k][1] if observed and layer.neuron == "cuba" else None
        if fixed is None:
            lo = min(obs_v[0], int(p.bias.min()), 0)
            hi = max(obs_v[1], int(p.theta.max()), int(p.bias.max()))
            if layer.v_range == "symmetric":  # [-(2^(V-1)-1), 2^(V-1)-1]: as wide below as above
                lo, hi = min(lo, -hi), max(hi, -lo)
            v_bits = bits_for(lo, hi) + margin_bits
            u_bits = bits_for(min(obs_u[0], 0), max(obs_u[1], 0)) + margin_bits if obs_u else v_bits
            for name, bits in (("v_bits", v_bits), ("u_bits", u_bits)):
                if bits > 32:
                    raise ExportError(f"layer {k}: {name} would need {bits} bits (> 32) to hold the calibration data")
        else:
            v_bits, u_bits = fixed[k]
        outside = 0
        if observed:
            vlo, vhi = membrane_range(v_bits, layer.v_range)
            outside += int(obs_v[0] < vlo) + int(obs_v[1] > vhi)
            if obs_u:
                ulo, uhi = signed_range(u_bits)
                outside += int(obs_u[0] < ulo) + int(obs_u[1] > uhi)
        if outside and not allow_saturation:
            raise ExportError(
                f"layer {k}: v_bits={v_bits}, u_bits={u_bits} "
                f"{'saturate or wrap' if obs_u and layer.u_overflow == 'wrap' else 'saturate'} on the calibration data "
                f"(v' in {list(obs_v)}{', u in ' + str(list(obs_u)) if obs_u else ''}); "
                "widen them, use widths='auto', or pass allow_saturation=True"
            )
        scale = float(1 << layer.frac_bits)
        with torch.no_grad():
            roundings = (
                _rounding("theta", layer.theta_float().numpy() * layer.unit, p.theta),
                _rounding("bias", layer.bias.numpy() * layer.unit, p.bias),
                _rounding("lam", layer.leak.clamp(0, 1).item() * scale, p.lam),
                _rounding("alpha", layer.current_leak.clamp(0, 1).item() * scale, p.alpha),
            )
        try:
            layers.append(
                Layer(
                    w[:, :layer.n_in].astype(np.int8), recurrent=w[:, layer.n_in:].astype(np.int8) if layer.recurrent
                    else None, theta=p.theta, bias=p.bias, neuron=layer.neuron, reset=layer.reset,
                    v_bits=v_bits, u_bits=u_bits, frac_bits=layer.frac_bits, lam=p.lam, alpha=p.alpha,
                    where=f"layer {k}", **layer.options(),
                )
            )
        except NetworkError as e:
            raise ExportError(f"the model does not fit the contract: {e}") from e
        reports.append(LayerReport(k, roundings, v_bits, u_bits, obs_v, obs_u, outside, source))
    network = Network(tuple(layers), densities)
    return Exported(network, ExportReport(tuple(reports), n_cal, network.densities))


def posterior(
    model: BinarySNN,
    *,
    widths: str | Sequence[tuple[int, int]] = "model",
    calibration=None,
    margin_bits: int = 0,
) -> Posterior:
    """The model as a board file of a Bayesian binary network (`spikeloop.posterior.Posterior`).

    ``network``: the posterior mode exactly as `export` makes it with these ``widths`` (``"model"``
    by default, or a list of (v_bits, u_bits); ``"auto"`` with ``calibration``), ``calibration`` and
    ``margin_bits``; ``probs``: ``P(w = +1) = sigmoid(2 * logit)`` per synapse in float64 (for the
    straight-through rule, a point mass on its signs: every draw is the mode); ``readout`` the
    model's; ``gain`` the model's `BinarySNN.logit_gain` (hardware mode), so ``Posterior.logits`` are the
    model's logits.
    """
    network = export(model, calibration=calibration, widths=widths, margin_bits=margin_bits).network
    if model.rule == "bayes":
        probs = [layer.weights.probabilities().numpy() for layer in model.layers]
    else:
        probs = list(mode_probs(network))
    return Posterior(network, probs, readout=model.readout, gain=model.logit_gain(hardware=True))


class Verification(NamedTuple):
    """The comparison of a model in hardware mode with its exported network on the golden model.

    ``mismatches``: per layer, the number of differing (spike, membrane, current) entries;
    ``predictions``: the golden model's predictions; ``model_predictions``: the model's.
    """

    equal: bool
    n_samples: int
    mismatches: tuple[tuple[int, int, int], ...]
    predictions: np.ndarray
    model_predictions: np.ndarray

    @property
    def predictions_equal(self) -> bool:
        """Whether every prediction agrees."""
        return bool(np.array_equal(self.predictions, self.model_predictions))


@torch.no_grad()
def verify(model: BinarySNN, network: Network, spikes, *, weights="mode", batch_size: int = 256) -> Verification:
    """Run ``spikes`` ([B, T, n_in], 0/1) through the model in hardware mode (with the network's widths)
    and through the golden model of ``network``; compare everything as integers."""
    if not isinstance(network, Network):
        raise ExportError(f"expected a Network, got {type(network).__name__}")
    if network.sizes != model.sizes:
        raise ExportError(f"the network has sizes {network.sizes}, the model {model.sizes}")
    s, _ = check_spikes(spikes, network.n_in)
    x = torch.from_numpy(s.astype(np.uint8))
    widths = [(layer.v_bits, layer.u_bits) for layer in network.layers]
    golden = GoldenModel(network)
    ws = model.weights(weights, hardware=True) if isinstance(weights, str) else list(weights)
    counts = np.zeros((len(network.layers), 3), np.int64)
    preds, mpreds = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        out = model(xb, hardware=True, weights=ws, widths=widths)
        trace = golden.run(xb.numpy(), record=True)
        for k, (m, g) in enumerate(zip(out.layers, trace.layers)):
            counts[k, 0] += int((m.z.to(torch.bool) != g.z.to(torch.bool)).sum())
            counts[k, 1] += int((m.v.to(torch.int64) != g.v.to(torch.int64)).sum())
            if network.layers[k].neuron == "cuba":
                counts[k, 2] += int((m.u.to(torch.int64) != g.u.to(torch.int64)).sum())
        g_last = trace.layers[-1]
        g_scores = readout_scores(g_last.z.numpy(), g_last.v.numpy(), model.readout)
        preds.append(predict(g_scores))
        mpreds.append(predict(out.scores.to(torch.int64)).numpy())
    predictions = np.concatenate(preds)
    model_predictions = np.concatenate(mpreds)
    equal = not counts.any() and np.array_equal(predictions, model_predictions)
    return Verification(equal, len(x), tuple(tuple(int(c) for c in row) for row in counts), predictions,
                        model_predictions)


def check(model: BinarySNN, network: Network, spikes, **kwargs) -> Verification:
    """`verify`, raising `ExportError` that names the first differing layer unless all is equal."""
    result = verify(model, network, spikes, **kwargs)
    if not result.equal:
        for k, (dz, dv, du) in enumerate(result.mismatches):
            if dz or dv or du:
                raise ExportError(
                    f"layer {k}: the golden model and the hardware-mode model differ in {dz} spikes, "
                    f"{dv} membranes, {du} currents over {result.n_samples} samples"
                )
        n = int((result.predictions != result.model_predictions).sum())
        raise ExportError(f"{n} of {result.n_samples} predictions differ")
    return result
