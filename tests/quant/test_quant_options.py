"""Contract v2's options in the training model: its hardware mode equals the golden model of the exported
network for every option, neuron and reset; straight-through roundings; training with v2 options; refusals."""

import dataclasses
import itertools
import re

import numpy as np
import pytest
import torch

from spikeloop.app.cli import main as cli_main
from spikeloop.network import BIAS_TOS, OPTION_DEFAULTS, OVERFLOWS, RESETS, ROUNDINGS, V_RANGES, signed_range
from spikeloop.quant.data import load_digits
from spikeloop.quant.export import bits_for, check, export, observed_ranges, posterior
from spikeloop.quant.golden import GoldenModel, LayerParams, kept, round_shift
from spikeloop.quant.models import BinaryLIF, ModelError, _round_shift_ste, feedforward, membrane_bounds
from spikeloop.quant.train import TrainConfig, TrainError, load_checkpoint, run
from spikeloop.spikes import poisson_spikes

SHIFTS = (0, 3, 6)
#: every combination of four options, input_shift taking each of SHIFTS in turn (each value with each rounding)
OPTION_GRID = [dict(decay_round=r, input_shift=SHIFTS[i % len(SHIFTS)], bias_to=b, u_overflow=o, v_range=v)
               for i, (b, o, v, r) in enumerate(itertools.product(BIAS_TOS, OVERFLOWS, V_RANGES, ROUNDINGS))]


def _model(neuron, reset, options, seed):
    """A random 20-14-9-6 model with spread thresholds and biases (negative ones too) in weight units."""
    model = feedforward((20, 14, 9, 6), neuron=neuron, reset=reset, readout="count", leak=0.3, out_leak=0.2,
                        out_reset=reset, frac_bits=5, seed=seed, **options)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.theta.copy_(torch.rand(layer.n_out, generator=gen) * layer.n_in ** 0.5 + 0.3)
            layer.bias.copy_((torch.rand(layer.n_out, generator=gen) - 0.4) * 3)
    return model.eval()


def _narrow_widths(model, spikes):
    """Per layer, widths two bits narrower than the unbounded values need (v: as if symmetric), but wide enough
    for the thresholds and biases: saturation and wrap happen. Returns (widths, ranges without bounds)."""
    ranges = observed_ranges(model, spikes)
    widths = []
    for layer, ((vlo, vhi), (ulo, uhi)) in zip(model.layers, ranges):
        p = layer.integer_params()
        floor = bits_for(-int(p.theta.max()), max(int(p.theta.max()), int(np.abs(p.bias).max())))
        widths.append((max(floor, bits_for(min(vlo, -vhi), max(vhi, -vlo)) - 2),
                       max(2, bits_for(min(ulo, 0), max(uhi, 0)) - 2)))
    return widths, ranges


@pytest.mark.parametrize("neuron, reset", list(itertools.product(("lif", "cuba"), RESETS)))
def test_hardware_mode_equals_golden_for_every_option(neuron, reset):
    """Every combination of the options (input_shift 0, 3, 6 in turn) for this neuron and reset: the exported
    network's golden run equals the hardware mode in spikes, membranes and currents of every layer, on widths
    narrow enough that v saturates and u saturates or wraps."""
    clamped = {key: set() for key in OPTION_DEFAULTS}
    last_fired, floor_hit = 0, set()
    for i, options in enumerate(OPTION_GRID):
        seed = 1000 * RESETS.index(reset) + 100 * (neuron == "cuba") + i
        where = f"seed {seed}, {neuron}, {reset}, {options}"
        model = _model(neuron, reset, options, seed)
        x = poisson_spikes((6, 10, 20), 0.45, seed=seed).astype(np.uint8)
        widths, ranges = _narrow_widths(model, x)
        network, _ = export(model, widths=widths, calibration=x, allow_saturation=True)
        assert all(layer.options() == options and layer.reset == reset for layer in network.layers), where
        trace = GoldenModel(network).run(x, record=True)
        with torch.no_grad():
            out = model(torch.from_numpy(x), hardware=True, widths=widths)
        for k, (g, m) in enumerate(zip(trace.layers, out.layers)):
            assert torch.equal(g.z, m.z.to(torch.bool)), f"{where}: layer {k} spikes"
            assert torch.equal(g.v, m.v.to(torch.int64)), f"{where}: layer {k} membranes"
            assert torch.equal(g.u, m.u.to(torch.int64)), f"{where}: layer {k} currents"
            assert bool(m.v.eq(m.v.round()).all()), where
        assert bool(trace.layers[0].z.any()) and bool(trace.layers[1].z.any()), f"{where}: a layer never fired"
        last_fired += bool(trace.layers[-1].z.any())
        if any(bool((g.v == membrane_bounds(layer.v_bits, layer.v_range)[0]).any())
               for g, layer in zip(trace.layers, network.layers)):
            floor_hit.add(options["v_range"])
        assert check(model, network, x).equal, where
        lo, hi = membrane_bounds(network.layers[0].v_bits, options["v_range"])
        (vlo, vhi), (ulo, uhi) = ranges[0]
        if vlo < lo or vhi > hi:
            clamped["v_range"].add(options["v_range"])
            clamped["decay_round"].add(options["decay_round"])
            clamped["input_shift"].add(options["input_shift"])
            clamped["bias_to"].add(options["bias_to"])
        ulo_n, uhi_n = signed_range(network.layers[0].u_bits)
        if neuron == "cuba" and (ulo < ulo_n or uhi > uhi_n):
            clamped["u_overflow"].add(options["u_overflow"])
    assert last_fired >= len(OPTION_GRID) // 2, f"the output layer fired in {last_fired} of {len(OPTION_GRID)} cases"
    assert floor_hit == set(V_RANGES), f"membranes reached the lower bound only under {floor_hit}"
    # the grid reached the bounds under every value of every option (the u bounds for cuba only)
    assert clamped["v_range"] == set(V_RANGES) and clamped["decay_round"] == set(ROUNDINGS), clamped
    assert clamped["input_shift"] == set(SHIFTS) and clamped["bias_to"] == set(BIAS_TOS), clamped
    if neuron == "cuba":
        assert clamped["u_overflow"] == set(OVERFLOWS), clamped


@pytest.mark.parametrize("frac_bits", [0, 1, 5, 12])
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_straight_through_rounding_is_the_integer_one(rounding, frac_bits):
    seed = 17 * frac_bits + ROUNDINGS.index(rounding)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(-5000, 5000, size=400))
    x[:9] = torch.tensor([0, 1, -1, 2, -2, 3, -3, 1 << frac_bits, -(1 << frac_bits)])
    for factor in sorted({0, 1, (1 << frac_bits) // 3, (1 << frac_bits) // 2, 1 << frac_bits}):
        p = LayerParams(torch.ones(1, 1), torch.ones(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
                        "lif", "subtract", None, None, frac_bits, factor, 0, rounding)
        want = kept(x, factor, p)
        xf = x.to(torch.float64).requires_grad_(True)
        got = kept(xf, torch.tensor(float(factor), dtype=torch.float64), p, _round_shift_ste)
        assert torch.equal(got.detach().to(torch.int64), want), f"seed {seed}, factor {factor}"
        got.sum().backward()  # straight through: the gradient of the real decay x * (1 - factor / 2^F)
        assert torch.equal(xf.grad, torch.full_like(xf, 1 - factor / (1 << frac_bits))), f"factor {factor}"
    p = torch.tensor([-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7])
    ste = _round_shift_ste(p.to(torch.float64), 1, rounding).to(torch.int64)
    assert torch.equal(ste, round_shift(p, 1, rounding))
    halves = {"floor": [-4, -3, -3, -2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3, 3],
              "zero": [-3, -3, -2, -2, -1, -1, 0, 0, 0, 1, 1, 2, 2, 3, 3],
              "nearest": [-4, -3, -3, -2, -2, -1, -1, 0, 1, 1, 2, 2, 3, 3, 4]}[rounding]
    assert ste.tolist() == halves


def test_float_mode_is_the_real_dynamics():
    """No option that only sets the integer arithmetic changes the float mode; the hardware mode with many
    fractional bits and rounding to nearest comes close to it (membranes in weight units)."""
    x = torch.from_numpy(poisson_spikes((6, 10, 20), 0.4, seed=3).astype(np.uint8))
    outs = {}
    for rounding, shift, overflow, v_range in itertools.product(ROUNDINGS, (0, 8), OVERFLOWS, V_RANGES):
        model = _model("cuba", "subtract_next", dict(decay_round=rounding, input_shift=shift, u_overflow=overflow,
                                                      v_range=v_range), seed=5)
        model.set_widths([(4, 3)] * 3)  # would saturate and wrap in hardware mode
        with torch.no_grad():
            outs[rounding, shift, overflow, v_range] = model(x, hardware=False)
    first = next(iter(outs.values()))
    assert bool(first.layers[0].z.any())
    for out in outs.values():
        for a, b in zip(out.layers, first.layers):
            assert all(torch.equal(p, q) for p, q in zip(a, b))
    model = feedforward((20, 14, 6), neuron="cuba", reset="subtract_next", readout="count", leak=0.3,
                        current_leak=0.4, frac_bits=12, decay_round="nearest", input_shift=12, seed=5).eval()
    with torch.no_grad():
        model.layers[0].bias.fill_(0.37)
        hw, fl = model(x, hardware=True), model(x, hardware=False)
    # the first layer's membranes in weight units over the first steps: within rounding error
    assert torch.equal(hw.layers[0].z[:, :3], fl.layers[0].z[:, :3].double())
    np.testing.assert_allclose(hw.layers[0].v[:, :3].numpy() / (1 << 12), fl.layers[0].v[:, :3].numpy(), atol=0.01)
    assert hw.logits.shape == fl.logits.shape


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_gradients_flow_with_v2_options(rounding):
    model = feedforward((12, 10, 4), neuron="cuba", reset="subtract_next", readout="membrane", seed=2,
                        decay_round=rounding, input_shift=4, bias_to="membrane", u_overflow="wrap",
                        v_range="symmetric", learn_leak=True)
    x = torch.from_numpy(poisson_spikes((8, 10, 12), 0.4, seed=2).astype(np.uint8))
    out = model(x, hardware=True)
    torch.nn.functional.cross_entropy(out.logits, torch.arange(8) % 4).backward()
    for name, p in model.named_parameters():
        # the membrane readout's layer neither resets (its theta acts on nothing) nor leaks (0: at the clamp)
        if p.requires_grad and name not in ("layers.1.theta", "layers.1.leak"):
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"{rounding}: no gradient for {name}"


def test_membrane_readout_logits_and_posterior_gain_follow_the_input_shift():
    """Hardware-mode membranes count 2^-k of a weight: the logits and a Posterior's gain take it out."""
    x = poisson_spikes((6, 8, 12), 0.4, seed=4).astype(np.uint8)
    model = feedforward((12, 10, 4), readout="membrane", seed=4, decay_round="nearest", input_shift=5).eval()
    assert model.score_unit(hardware=True) == 2.0 ** -5 and model.score_unit(hardware=False) == 1.0
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    post = posterior(model, widths="auto", calibration=x)
    trace = GoldenModel(post.network).run(x, record=True)
    np.testing.assert_allclose(post.logits(trace.layers[-1].v[:, -1].numpy()), out.logits.double().numpy(),
                               rtol=1e-6)
    assert bool(out.scores.abs().max() > 0)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_training_with_v2_options_learns_and_exports_bit_exact(digits, tmp_path):
    cfg = TrainConfig(hidden=(48,), steps=6, epochs=3, seed=0, neuron="cuba", reset="subtract_next",
                      decay_round="nearest", input_shift=6, bias_to="membrane", u_overflow="wrap",
                      v_range="symmetric")
    done = run(cfg, data=digits, progress=False, out=tmp_path)
    assert done.summary["equal"] is True and done.verification.equal
    assert done.summary["golden_test_accuracy"] > 0.5, done.summary  # chance is 0.1
    assert all(layer.options() == cfg.options() for layer in done.network.layers)
    assert [layer.reset for layer in done.network.layers] == ["subtract_next", "none"]  # the readout sums
    assert any(layer.theta.max() > 64 for layer in done.network.layers)  # thresholds in units of 2^-6
    model, again, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    assert again == cfg
    assert check(model, done.network, done.x_test).equal


def test_checkpoints_without_options_load_as_v1(digits, tmp_path, monkeypatch):
    """A checkpoint written before contract v2 holds no options: it meant v1's, whatever the defaults are now."""
    from spikeloop.quant import train as training

    cfg = TrainConfig(hidden=(8,), steps=3, epochs=1)
    result = training.train(cfg, data=digits, progress=False, evaluate_float=False)
    path = training.save_checkpoint(result, tmp_path / "old.pt")
    record = torch.load(path, weights_only=True)
    for key in OPTION_DEFAULTS:
        del record["config"][key]
    torch.save(record, path)

    @dataclasses.dataclass(frozen=True)
    class Newer(TrainConfig):  # defaults that are not v1's
        decay_round: str = "nearest"
        input_shift: int = 6

    assert Newer().options() != OPTION_DEFAULTS
    monkeypatch.setattr(training, "TrainConfig", Newer)
    _, loaded, _ = training.load_checkpoint(path)
    assert isinstance(loaded, Newer) and loaded.options() == OPTION_DEFAULTS


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"decay_round": "up"}, "decay_round = 'up'; expected one of floor, zero, nearest"),
        ({"input_shift": 17}, r"input_shift = 17, expected an integer in \[0, 16\]"),
        ({"input_shift": -1}, r"input_shift = -1, expected an integer in \[0, 16\]"),
        ({"input_shift": 2.0}, r"input_shift = 2.0, expected an integer in \[0, 16\]"),
        ({"input_shift": True}, r"input_shift = True, expected an integer"),
        ({"bias_to": "soma"}, "bias_to = 'soma'; expected one of current, membrane"),
        ({"u_overflow": "clip"}, "u_overflow = 'clip'; expected one of saturate, wrap"),
        ({"v_range": "half"}, "v_range = 'half'; expected one of full, symmetric"),
        ({"reset": "subtract_later"}, "reset = 'subtract_later'; expected one of subtract, zero, none, subtract_next"),
    ],
)
def test_config_refuses_bad_options_by_name(kwargs, match):
    with pytest.raises(TrainError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"decay_round": "ceil"}, "layer: decay_round must be one of floor, zero, nearest; got 'ceil'"),
        ({"input_shift": 20}, r"layer: input_shift = 20, expected an integer in \[0, 16\]"),
        ({"bias_to": None}, "layer: bias_to must be one of current, membrane; got None"),
        ({"u_overflow": "modulo"}, "layer: u_overflow must be one of saturate, wrap; got 'modulo'"),
        ({"v_range": 1}, "layer: v_range must be one of full, symmetric; got 1"),
        ({"leak_round": "floor"}, "layer: unknown option.s. leak_round; expected decay_round"),
    ],
)
def test_model_refuses_bad_options_by_name(kwargs, match):
    with pytest.raises(ModelError, match=match):
        BinaryLIF(3, 2, **kwargs)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--decay-round", "up"], "argument --decay-round: invalid choice: 'up'"),
        (["--input-shift", "17"], r"argument --input-shift: expected an integer in \[0, 16\], got 17"),
        (["--bias-to", "soma"], "argument --bias-to: invalid choice: 'soma'"),
        (["--u-overflow", "clip"], "argument --u-overflow: invalid choice: 'clip'"),
        (["--v-range", "half"], "argument --v-range: invalid choice: 'half'"),
        (["--reset", "later"], "argument --reset: invalid choice: 'later'"),
    ],
)
def test_cli_refuses_bad_options_by_name(argv, match, capsys):
    assert cli_main(["train", *argv]) == 2
    assert re.search(match, capsys.readouterr().err)
