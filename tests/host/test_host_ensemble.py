"""Ensembles and committees of sampled binary networks on a core (spikeloop.host.ensemble): on the golden
board and on the simulated board (the MAIN design of conftest.py) the `Prediction` equals the golden
model's (core=None) integer for integer; the draws are `Posterior.draw`'s from default_rng(seed) in the
documented order; loads go by stream; every bad argument is refused with its value named."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED, main_config, main_network, make_core, spike_train

from spikeloop import golden
from spikeloop.host import open_core
from spikeloop.host.ensemble import PREDICTIONS, EnsembleError, Prediction, predict
from spikeloop.metrics import expected_calibration_error, readout_scores, reliability, softmax
from spikeloop.network import random_network
from spikeloop.posterior import Posterior
from spikeloop.windows import load_writes

N, T, K, BATCH = 20, 10, 3, 8  # three batches: 8, 8, 4
GAIN = 0.25


def posterior(readout: str = "membrane", seed: int = SEED) -> Posterior:
    """The MAIN network as the mode; P(w = +1) in (0.6, 0.95) where the mode has +1, in (0.05, 0.4) where -1."""
    net = main_network()
    rng = np.random.default_rng(seed)
    probs = [np.where(layer.weights > 0, rng.uniform(0.6, 0.95, layer.weights.shape),
                      rng.uniform(0.05, 0.4, layer.weights.shape)) for layer in net.layers]
    return Posterior(net, probs, readout=readout, gain=GAIN)


def data(seed: int = SEED + 3):
    spikes = spike_train((N, T, 40), seed, density=0.35)
    labels = np.random.default_rng(seed).integers(0, 6, N)
    return spikes, labels


def drawn(post: Posterior, how: str, seed: int, batches: int):
    """The networks `predict` should use, drawn as documented: [batch][k]."""
    if how == "mode":
        return [[post.network]] * batches
    rng = np.random.default_rng(seed)
    if how == "committee":
        networks = [post.draw(rng) for _ in range(K)]
        return [networks] * batches
    return [[post.draw(rng) for _ in range(K)] for _ in range(batches)]


def same(a: Prediction, b: Prediction) -> None:
    assert (a.how, a.samples, a.loads) == (b.how, b.samples, b.loads)
    assert a.scores.dtype == b.scores.dtype == np.int64
    assert np.array_equal(a.scores, b.scores)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.predictions, b.predictions)


@pytest.mark.parametrize("how", PREDICTIONS)
@pytest.mark.parametrize("backend", ["golden", "sim"])
def test_the_core_predicts_as_the_golden_model_network_for_network(backend, how, request):
    if backend != "golden":
        request.getfixturevalue("main_board_built")
    post, (spikes, labels) = posterior(), data()
    seed = SEED + 5
    core = make_core(backend, main_config())
    try:
        stats = core.transport.stats
        before = stats.as_dict()
        on_core = predict(core, post, spikes, how=how, samples=K, seed=seed, batch_size=BATCH)
        bus = stats.since(before)
        last_loaded = core.network
    finally:
        core.close()
    reference = predict(None, post, spikes, how=how, samples=K, seed=seed, batch_size=BATCH)
    same(on_core, reference)
    assert on_core.ece(labels) == reference.ece(labels)
    assert on_core.accuracy(labels) == reference.accuracy(labels)
    assert np.array_equal(on_core.reliability(labels).counts, reference.reliability(labels).counts)

    k = 1 if how == "mode" else K
    loads = {"mode": 1, "committee": K, "ensemble": 3 * K}[how]
    assert on_core.samples == k and on_core.scores.shape == (k, N, 6) and on_core.loads == loads
    assert on_core.load_seconds.shape == on_core.run_seconds.shape == (loads,)
    assert (on_core.load_seconds > 0).all() and (on_core.run_seconds > 0).all()
    # every load by one stream transfer (no parameter words over AXI-Lite), every sample by one more
    assert bus["stream_transfers"] == loads + k * N
    per_load = (bus["mmio_writes"] - k * N) / loads  # a state clear per sample, the rest the loads'
    assert per_load <= 5 < len(load_writes(core.config, post.network)), bus

    # the scores are the golden model's of the documented draws, sample for sample
    networks = drawn(post, how, seed, 3)
    assert last_loaded.layers[0].weights.tobytes() == networks[-1][-1].layers[0].weights.tobytes()
    fired = np.zeros(2, np.int64)
    for b, batch in enumerate((slice(0, 8), slice(8, 16), slice(16, 20))):
        for j, net in enumerate(networks[b]):
            trace = golden.run(net, spikes[batch], record=True)
            assert np.array_equal(on_core.scores[j, batch], readout_scores(trace.spikes, trace.membranes, "membrane"))
            fired += [int(layer.z.sum()) for layer in trace.layers]
    assert (fired > 0).all(), f"vacuous: spikes per layer {fired}"
    want = softmax((GAIN * on_core.scores.astype(np.float64)).mean(0))
    assert np.allclose(on_core.probs, want, rtol=0, atol=1e-15)
    assert np.array_equal(on_core.predictions, on_core.probs.argmax(1))
    # guard: the networks differ from each other (and, for an ensemble, from batch to batch)
    if how != "mode":
        weights = [[net.layers[0].weights.tobytes() for net in nets] for nets in networks]
        assert len(set(weights[0])) == K
        assert len(np.unique(on_core.scores.reshape(K, -1), axis=0)) == K, "the networks scored alike"
        assert (weights[0] != weights[1]) == (how == "ensemble")


def test_an_ensemble_draws_per_batch_and_a_committee_once():
    post, (spikes, _) = posterior(), data()
    ensemble = predict(None, post, spikes, how="ensemble", samples=K, seed=1, batch_size=BATCH)
    committee = predict(None, post, spikes, how="committee", samples=K, seed=1, batch_size=BATCH)
    # batch 0 sees the same first K draws either way; batch 1 sees fresh ones only in the ensemble
    assert np.array_equal(ensemble.scores[:, :8], committee.scores[:, :8])
    assert not np.array_equal(ensemble.scores[:, 8:16], committee.scores[:, 8:16])
    # a committee does not depend on the batch size; an ensemble does
    whole = predict(None, post, spikes, how="committee", samples=K, seed=1, batch_size=N)
    same(whole, Prediction(**{**vars(committee), "loads": whole.loads}))
    assert not np.array_equal(predict(None, post, spikes, how="ensemble", samples=K, seed=1, batch_size=N).scores,
                              ensemble.scores)
    # other seeds, other networks; the mode needs none
    assert not np.array_equal(predict(None, post, spikes, how="committee", samples=K, seed=2).scores,
                              committee.scores)
    mode = predict(None, post, spikes, how="mode", samples=K, seed=7)
    trace = golden.run(post.network, spikes)
    assert mode.samples == 1 and np.array_equal(mode.scores[0], trace.membranes[:, -1])


def test_the_metrics_are_the_contracts_of_the_probabilities():
    post, (spikes, labels) = posterior(), data()
    p = predict(None, post, spikes, samples=K)
    assert np.allclose(p.probs.sum(1), 1.0) and p.probs.dtype == np.float64 and p.predictions.dtype == np.int64
    assert p.ece(labels) == expected_calibration_error(p.probs, labels)
    r = reliability(p.probs, labels)
    assert np.array_equal(p.reliability(labels).counts, r.counts) and len(r.counts) == 20
    assert p.accuracy(labels) == np.mean(p.predictions == labels)
    assert 0 < p.probs.max(1).min() < p.probs.max() < 1, "vacuous: the probabilities are all alike"


def test_the_count_readout_and_the_membranes_from_probes():
    spikes, _ = data()
    counting = posterior("count")
    plain = open_core("golden", main_network(), lanes=[3, 2], chunk=[16, 12], membranes=False)
    probed = open_core("golden", main_network(), lanes=[3, 2], chunk=[16, 12], membranes=False, probes=True)
    try:
        same(predict(plain, counting, spikes, samples=K), predict(None, counting, spikes, samples=K))
        reading = posterior("membrane")
        same(predict(probed, reading, spikes, samples=K, how="committee"),
             predict(None, reading, spikes, samples=K, how="committee"))
        with pytest.raises(EnsembleError, match="readout 'membrane' needs the last layer's membranes.*"
                                                "membranes=True"):
            predict(plain, reading, spikes)
    finally:
        plain.close()
        probed.close()
    assert predict(None, counting, spikes).scores.sum() > 0, "vacuous: no output spike"


BAD = {
    "how": ({"how": "bagging"}, "how = 'bagging'; expected one of mode, ensemble, committee"),
    "how type": ({"how": 1}, "how = 1"),
    "samples zero": ({"samples": 0}, r"samples = 0, expected an integer >= 1"),
    "samples float": ({"samples": 2.5}, r"samples = 2.5"),
    "samples bool": ({"samples": True}, r"samples = True"),
    "seed negative": ({"seed": -1}, r"seed = -1, expected an integer >= 0"),
    "seed text": ({"seed": "0"}, r"seed = '0'"),
    "batch size": ({"batch_size": 0}, r"batch_size = 0, expected an integer >= 1"),
    "timeout zero": ({"timeout": 0}, r"timeout = 0, expected None or a positive number"),
    "timeout inf": ({"timeout": float("inf")}, r"timeout = inf"),
    "timeout text": ({"timeout": "1"}, r"timeout = '1'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_option_is_refused_by_name(case):
    options, message = BAD[case]
    spikes, _ = data()
    with pytest.raises(EnsembleError, match=message):
        predict(None, posterior(), spikes, **options)


def test_bad_spikes_posterior_and_core_are_refused_by_name():
    spikes, _ = data()
    post = posterior()
    with pytest.raises(EnsembleError, match=r"spikes of shape \(10, 40\): expected \[N, T, 40\]"):
        predict(None, post, spikes[0])
    with pytest.raises(EnsembleError, match="has 39 inputs per timestep"):
        predict(None, post, spikes[..., :39])
    with pytest.raises(EnsembleError, match="float"):
        predict(None, post, spikes.astype(np.float32))
    with pytest.raises(EnsembleError, match=r"= 2, expected 0 or 1"):
        predict(None, post, spikes.astype(np.uint8) * 2)
    with pytest.raises(EnsembleError, match="at least one timestep and one batch entry"):
        predict(None, post, spikes[:0])
    with pytest.raises(EnsembleError, match="posterior must be a spikeloop.posterior.Posterior, got Network"):
        predict(None, post.network, spikes)
    with pytest.raises(EnsembleError, match="core must be a spikeloop.host Core.*got str"):
        predict("sim", post, spikes)
    small = random_network((40, 5, 6), seed=SEED)
    core = open_core("golden", small)
    try:
        with pytest.raises(EnsembleError, match="cannot hold the posterior's 40-12-6 networks"):
            predict(core, post, spikes)
    finally:
        core.close()
    with pytest.raises(EnsembleError, match="is closed"):
        predict(core, post, spikes)
