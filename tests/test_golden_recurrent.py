"""Recurrent layers (docs/numerics.md): the contract by hand, every engine equal (the image: test_image.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from spikeloop import golden
from spikeloop.network import Layer, Network, NetworkError, random_network
from spikeloop.quant.golden import GoldenModel

SEEDS = range(5)


def _case(seed: int):
    """A random network with recurrent and feed-forward layers (some cuba, some shifted) and input."""
    net = random_network((20, 13, 7, 5), seed=seed, recurrent=(True, seed % 2 == 0, True),
                         neuron="cuba" if seed % 3 == 0 else "lif", input_shift=seed % 2)
    rng = np.random.default_rng(seed)
    return net, rng.random((3, 25, 20)) < 0.3


def _feedforward(net: Network) -> Network:
    return Network(tuple(layer.replace(recurrent=None) for layer in net.layers))


def test_a_recurrent_layer_by_hand():
    """1 input, 2 neurons, theta 1, no leak, reset zero: neuron 1 fires only from neuron 0's previous spike."""
    layer = Layer([[1], [-1]], recurrent=[[-1, -1], [1, -1]], theta=1, reset="zero")
    net = Network((layer,))
    s = np.array([[1], [0], [0], [1]], np.uint8)
    trace = golden.run(net, s, record=True, engine="reference")
    # t0: a = w s = (1, -1), v' = (1, -1), z = (1, 0), v = (0, -1)
    # t1: a = r z_prev = (-1, 1), v' = (-1, 0), no spike; t2: a = 0; t3: a = (1, -1), v' = (0, -1)
    assert trace.layers[0].z.astype(int).tolist() == [[1, 0], [0, 0], [0, 0], [0, 0]]
    assert trace.layers[0].u.tolist() == [[1, -1], [-1, 1], [0, 0], [1, -1]]
    assert trace.layers[0].v.tolist() == [[1, -1], [-1, 0], [-1, 0], [0, -1]]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_engine_equals_the_reference(seed):
    net, s = _case(seed)
    ref = golden.run(net, s, record=True, engine="reference")
    assert all(rec.z.any() for rec in ref.layers), f"seed {seed}: a layer never fired"
    assert not np.array_equal(golden.run(_feedforward(net), s).spikes, ref.spikes), \
        f"seed {seed}: the recurrence changed nothing"
    engines = ["numpy"] + (["native"] if golden.native_available() else [])
    for engine in engines:
        trace = golden.run(net, s, record=True, engine=engine)
        for k, (a, b) in enumerate(zip(ref.layers, trace.layers)):
            for field in ("z", "v", "u"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), f"seed {seed} {engine} layer {k} {field}"
        for a, b in zip(ref.states, trace.states):
            assert np.array_equal(a.z, b.z) and np.array_equal(a.v, b.v)
    gm = GoldenModel(net)
    for engine in ("torch", *engines):
        trace = gm.run(s, record=True, engine=engine)
        for k, (a, b) in enumerate(zip(ref.layers, trace.layers)):
            assert np.array_equal(a.z, b.z.numpy()) and np.array_equal(a.v, b.v.numpy()), f"seed {seed} {engine} {k}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_run_continues_from_its_states_and_steppers_agree(seed):
    net, s = _case(seed)
    ref = golden.run(net, s, engine="reference")
    for engine in ("numpy", "native", "reference"):
        if engine == "native" and not golden.native_available():
            continue
        first = golden.run(net, s[:, :10], engine=engine)
        assert any(st.z.any() for st in first.states), f"seed {seed}: no spike carried over"
        rest = golden.run(net, s[:, 10:], engine="numpy" if engine == "native" else "native"
                          if golden.native_available() else "numpy", states=first.states)
        assert np.array_equal(rest.spikes, ref.spikes[:, 10:]), f"seed {seed} {engine}"
    gm = GoldenModel(net)
    half = gm.run(s[:, :10], engine="torch")
    assert np.array_equal(gm.run(s[:, 10:], engine="numpy", states=half.states).spikes.numpy(), ref.spikes[:, 10:])
    states = gm.initial_state(3)
    outs = []
    for t in range(s.shape[1]):
        out, states = gm.step(s[:, t], states)
        outs.append(out[-1].z)
    assert np.array_equal(torch.stack(outs, 1).numpy(), ref.spikes)
    for engine in golden.STEPPER_ENGINES[1:] if golden.native_available() else ("numpy",):
        stepper = golden.Stepper(net, batch=3, engine=engine)
        out = np.stack([stepper.step(s[:, t])[0] for t in range(s.shape[1])], 1)
        assert np.array_equal(out, ref.spikes), f"seed {seed} {engine}"
        moved = stepper.states
        stepper.reset()  # a clear empties the previous spikes too
        assert not any(st.z.any() for st in stepper.states)
        again = np.stack([stepper.step(s[:, t])[0] for t in range(s.shape[1])], 1)
        assert np.array_equal(again, ref.spikes), f"seed {seed} {engine}: a cleared stepper differs"
        stepper.reset(moved)
        cont = golden.run(net, s, states=moved, engine="reference").spikes
        assert np.array_equal(np.stack([stepper.step(s[:, t])[0] for t in range(s.shape[1])], 1), cont)


@pytest.mark.parametrize(
    "recurrent, message",
    [
        (np.ones((3, 2), np.int8), "recurrent has shape (3, 2), expected (3, 3)"),
        (np.eye(3, dtype=np.int8), "recurrent[0, 1] = 0, expected -1 or +1"),
        (np.ones((3, 3), np.bool_), "recurrent must be +1/-1 integers, got a bool array"),
        (np.ones((3, 3)) * 0.5, "recurrent must hold integers"),
        (np.full((3, 3), 2), "recurrent[0, 0] = 2 is outside [-1, 1]"),
    ],
)
def test_bad_recurrent_weights_are_refused_by_name(recurrent, message):
    with pytest.raises(NetworkError, match=re.escape(message)):
        Layer(np.ones((3, 4), np.int8), recurrent=recurrent, where="layer 2")


def test_random_network_refuses_a_bad_recurrent_argument():
    with pytest.raises(ValueError, match=re.escape("recurrent = (True,), expected a bool or one bool per layer (2)")):
        random_network((4, 3, 2), seed=0, recurrent=(True,))


def test_equality_and_hash_see_the_recurrent_weights():
    net, _ = _case(0)
    flipped = Network(tuple(
        layer.replace(recurrent=-layer.recurrent) if layer.is_recurrent else layer for layer in net.layers))
    assert net != flipped and net != _feedforward(net)
    assert len({net.content_hash, flipped.content_hash, _feedforward(net).content_hash}) == 3
    ff = random_network((20, 13, 5), seed=3)
    assert random_network((20, 13, 5), seed=3, recurrent=False).content_hash == ff.content_hash
