"""Recurrent layers through the driver: on the simulated board (the Verilated core) and the golden register model,
bit-exact with `golden.run`; a core refuses a network whose recurrence differs from its build."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED, main_config, main_network, make_core, spike_train

from spikeloop import golden
from spikeloop.config import CoreConfig
from spikeloop.host import ConfigError
from spikeloop.host.driver import describe_config
from spikeloop.network import Network, random_network

N_IN = 24


def recurrent_network(seed: int = SEED) -> Network:
    """24 -> 10 (cuba, recurrent) -> 6 (lif, recurrent): every layer takes its own previous spikes."""
    base = random_network((N_IN, 10, 6), seed=seed, neuron="cuba", v_bits=10, u_bits=10, frac_bits=5,
                          recurrent=True)
    first, second = base.layers
    return Network((first.replace(lam=8, alpha=16, reset="zero"), second.replace(neuron="lif", alpha=0, lam=4)))


def recurrent_config(network: Network | None = None) -> CoreConfig:
    """A dense recurrent layer (34 crossbar inputs in chunks of 8) and an event-driven one (16 inputs, 4 banks)."""
    return CoreConfig.for_network(network or recurrent_network(), lanes=[3, 2], chunk=[8, None], events=[None, 4],
                                  membranes=True)


@pytest.fixture(params=["golden", "sim"])
def rcore(request):
    """The recurrent network loaded on a core of the recurrent build."""
    c = make_core(request.param, recurrent_config(), recurrent_network())
    yield c
    c.close()


def _check_feeds_back(network: Network, spikes) -> None:
    """The recurrent weights change the golden output of `spikes` (else the comparison would not test them)."""
    plain = Network(tuple(layer.replace(recurrent=None) for layer in network.layers))
    ref = golden.run(network, spikes)
    assert ref.spikes.any() and not ref.spikes.all(), f"seed {SEED}: vacuous output"
    assert not np.array_equal(golden.run(plain, spikes).spikes, ref.spikes), f"seed {SEED}: recurrence changes nothing"


def test_the_build_is_recurrent(rcore):
    assert [layer.recurrent for layer in rcore.config.layers] == [True, True]
    assert rcore.config == recurrent_config()
    assert "recurrent layers 0,1" in describe_config(rcore.config)


def test_run_step_and_continued_runs_equal_the_golden_model(rcore):
    net = recurrent_network()
    spikes = spike_train((2, 40, N_IN), SEED + 1)
    _check_feeds_back(net, spikes)
    out = rcore.run(spikes)
    ref = golden.run(net, spikes)
    assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes), f"seed {SEED}"
    # a run continued without reset carries the previous spikes across transfers too
    train = spike_train((30, N_IN), SEED + 2)
    rcore.run(train[:11])
    rest = rcore.run(train[11:], reset=False)
    ref = golden.run(net, train)
    assert np.array_equal(rest.spikes, ref.spikes[11:]) and np.array_equal(rest.membranes, ref.membranes[11:])
    # the stepper; a state clear empties the previous spikes
    stepper = golden.Stepper(net)
    rcore.clear_state()
    for t in range(8):
        z, v = rcore.step(train[t])
        gz, gv = stepper.step(train[t])
        assert np.array_equal(z, gz) and np.array_equal(v, gv), f"timestep {t}"


@pytest.mark.parametrize("via", ["stream", "mmio"])
def test_loads_by_stream_and_by_register_writes(rcore, via):
    other = recurrent_network(seed=SEED + 50)
    assert rcore.transport.can_send_frames  # both transports here send load frames
    rcore.load(other, via=via, verify=True)
    spikes = spike_train((25, N_IN), SEED + 3)
    _check_feeds_back(other, spikes)
    ref = golden.run(other, spikes)
    assert np.array_equal(rcore.run(spikes).membranes, ref.membranes)


def test_recurrence_must_match_the_build():
    """A recurrent network on a feed-forward build and the other way round are refused, naming the layer and the
    value; so is a core whose identity differs in its recurrence from the one expected."""
    plain = make_core("golden", main_config(), main_network())
    looped = Network(tuple(layer.replace(recurrent=np.ones((layer.n_out, layer.n_out), np.int8))
                           for layer in main_network().layers))
    with pytest.raises(ConfigError, match=r"cannot hold the 40-12-6 network: layer 0: the network has recurrent = "
                                          r"True, the core is built with recurrent = False \(build with "
                                          r"recurrent=True, `--recurrent` on the command line\)"):
        plain.load(looped)
    rcore = make_core("golden", recurrent_config(), recurrent_network())
    feed_forward = Network(tuple(layer.replace(recurrent=None) for layer in recurrent_network().layers))
    with pytest.raises(ConfigError, match="layer 0: the network has recurrent = False, the core is built with "
                                          "recurrent = True"):
        rcore.load(feed_forward)
    half = Network((recurrent_network().layers[0], feed_forward.layers[1]))
    with pytest.raises(ConfigError, match="layer 1: the network has recurrent = False"):
        rcore.load(half)
    from spikeloop.host import Core

    with pytest.raises(ConfigError, match="expected"):
        Core(rcore.transport, expect=CoreConfig.for_network(feed_forward, lanes=[3, 2], chunk=[8, None],
                                                            events=[None, 4], membranes=True))
