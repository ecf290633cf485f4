"""The posterior file and its one sampling rule; the readout's scores (spikeloop.posterior, spikeloop.metrics)."""

import numpy as np
import pytest

from spikeloop.metrics import MetricError, pooled_probabilities, readout_scores, softmax
from spikeloop.network import random_network
from spikeloop.posterior import Posterior, PosteriorError, mode_probs


def _posterior(seed=0, **kw):
    net = random_network((8, 6, 3), seed=seed)
    rng = np.random.default_rng(seed)
    return Posterior(net, [rng.random((layer.n_out, layer.n_in)) for layer in net.layers], **kw)


def test_save_load_round_trip(tmp_path):
    p = _posterior(gain=0.25, readout="count")
    p.save(tmp_path / "p.npz")
    q = Posterior.load(tmp_path / "p.npz")
    assert (q.readout, q.gain, q.network.content_hash) == ("count", 0.25, p.network.content_hash)
    assert all(np.array_equal(a, b) for a, b in zip(p.probs, q.probs))


def test_draw_is_one_rule():
    """The same generator state draws the same network; a point mass draws its mode; samples differ."""
    p = _posterior()
    a, b = p.draw(np.random.default_rng(3)), p.draw(np.random.default_rng(3))
    assert a.content_hash == b.content_hash
    rng = np.random.default_rng(3)
    assert p.draw(rng).content_hash != p.draw(rng).content_hash
    for layer, ref in zip(a.layers, p.network.layers):
        assert layer.params() == ref.params() and np.array_equal(layer.theta, ref.theta)
        assert set(np.unique(layer.weights)) <= {-1, 1}
    u = np.random.default_rng(3)
    for layer, probs in zip(a.layers, p.probs):  # the rule as written in the module's docstring
        assert np.array_equal(layer.weights, np.where(u.random(probs.shape) < probs, 1, -1))
    m = Posterior(p.network, mode_probs(p.network))
    assert m.draw(np.random.default_rng(9)).content_hash == p.network.content_hash


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(probs="short"), "probs: 5 arrays for 2 layers"),
        (dict(probs=[np.zeros((6, 8)), np.zeros((3, 5))]), r"probs\[1\]: shape \(3, 5\), expected \(3, 6\)"),
        (dict(probs=[np.full((6, 8), 1.5), np.zeros((3, 6))]), r"probs\[0\]: probabilities must be finite and in"),
        (dict(readout="max"), "readout = 'max'; expected one of membrane, count"),
        (dict(gain=0.0), "gain = 0.0, expected a positive finite number"),
        (dict(network="net"), "network must be a Network, got str"),
    ],
)
def test_refusals(change, match):
    p = _posterior()
    fields = dict(network=p.network, probs=p.probs, readout=p.readout, gain=p.gain)
    fields.update(change)
    with pytest.raises(PosteriorError, match=match):
        Posterior(**fields)


def test_file_refusals(tmp_path):
    net = random_network((4, 2), seed=1)
    net.save(tmp_path / "image.npz")
    with pytest.raises(PosteriorError, match="member 'posterior' is missing"):
        Posterior.load(tmp_path / "image.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PosteriorError, match="not a readable posterior file"):
        Posterior.load(tmp_path / "junk.npz")
    with pytest.raises(PosteriorError, match="rng must be a numpy Generator"):
        _posterior().draw(3)


def test_readout_scores():
    z = np.zeros((2, 3, 4), bool)
    z[0, :, 1] = True
    v = np.arange(24).reshape(2, 3, 4)
    assert readout_scores(z, v, "count").tolist() == [[0, 3, 0, 0], [0, 0, 0, 0]]
    assert readout_scores(z, v, "membrane").tolist() == v[:, -1].tolist()
    with pytest.raises(MetricError, match="readout must be one of membrane, count; got 'max'"):
        readout_scores(z, v, "max")
    with pytest.raises(MetricError, match="needs the last layer's membranes"):
        readout_scores(z, None, "membrane")


def test_pooled_probabilities_are_the_softmax_of_the_mean_logits():
    logits = np.array([[[4.0, 0.0]], [[0.0, 2.0]]])  # two networks, one sample
    assert np.allclose(pooled_probabilities(logits), softmax(np.array([[2.0, 1.0]])))
    assert np.allclose(pooled_probabilities(logits[:1]), softmax(logits[0]))
    with pytest.raises(MetricError, match=r"logits must have shape \[K >= 1, N, n_classes\], got \(2, 2\)"):
        pooled_probabilities(np.zeros((2, 2)))
