"""A Bayesian binary network as a board sees it (numpy only; runs on the board).

A `Posterior` holds what an ensemble or a committee of sampled binary networks needs:

- ``network``: the posterior's mode, a contract `Network`; every field other than the weights
  (thresholds, biases, decays, widths, neuron and reset kinds) is shared by every sample;
- ``probs``: per layer, ``P(w = +1)`` per synapse, float64 [n_out, n_in] in [0, 1] (a recurrent layer's
  [n_out, n_in + n_out], its recurrent synapses last, as `Layer.crossbar_weights`);
- ``readout`` and ``gain``: the class logits of a run are ``gain * readout_scores(z, v', readout)``.

The sampling rule (`Posterior.draw`), which the golden model and every core share, so a sample
is the same network wherever it runs: layer by layer, ``u = rng.random((n_out, n_in))`` from a
numpy ``Generator``, ``w = +1 where u < p, else -1``.

The file format is an .npz like the network image (docs/image-format.md): the mode network's
members and meta, plus ``probs_<k>`` per layer and ``posterior`` (JSON: format, version,
readout, gain, the mode's content hash).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeloop.metrics import READOUTS
from spikeloop.network import Network

FORMAT = "spikeloop-posterior"
VERSION = 1


class PosteriorError(ValueError):
    """A posterior that is not what a Bayesian binary network needs, named with the field."""


def _check_probs(network: Network, probs) -> tuple[np.ndarray, ...]:
    probs = tuple(probs)
    if len(probs) != len(network.layers):
        raise PosteriorError(f"probs: {len(probs)} arrays for {len(network.layers)} layers")
    out = []
    for k, (layer, p) in enumerate(zip(network.layers, probs)):
        p = np.array(p, dtype=np.float64)
        if p.shape != layer.crossbar_weights.shape:
            raise PosteriorError(f"probs[{k}]: shape {p.shape}, expected {layer.crossbar_weights.shape}")
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise PosteriorError(f"probs[{k}]: probabilities must be finite and in [0, 1]")
        p.setflags(write=False)
        out.append(p)
    return tuple(out)


@dataclass(frozen=True)
class Posterior:
    """The mode network, ``P(w = +1)`` per synapse and layer, and the readout (see the module)."""

    network: Network
    probs: tuple[np.ndarray, ...]
    readout: str = "membrane"
    gain: float = 1.0

    def __post_init__(self):
        if not isinstance(self.network, Network):
            raise PosteriorError(f"network must be a Network, got {type(self.network).__name__}")
        object.__setattr__(self, "probs", _check_probs(self.network, self.probs))
        if self.readout not in READOUTS:
            raise PosteriorError(f"readout = {self.readout!r}; expected one of {', '.join(READOUTS)}")
        gain = self.gain
        if isinstance(gain, bool) or not isinstance(gain, (int, float, np.floating)) or not 0 < gain < np.inf:
            raise PosteriorError(f"gain = {gain!r}, expected a positive finite number")
        object.__setattr__(self, "gain", float(gain))

    @property
    def sizes(self) -> tuple[int, ...]:
        """(n_in, n_out of layer 0, ...)."""
        return self.network.sizes

    def draw(self, rng: np.random.Generator) -> Network:
        """One sampled binary network (the module's sampling rule); advances ``rng``."""
        weights = draw_weights(self.probs, rng)
        return Network(tuple(layer.with_crossbar_weights(w) for layer, w in zip(self.network.layers, weights)))

    def logits(self, scores) -> np.ndarray:
        """``gain * scores`` as float64."""
        return self.gain * np.asarray(scores, np.float64)

    def save(self, path) -> str:
        """Write the posterior file; returns the mode network's content hash."""
        from spikeloop.image import save_image

        path = Path(path)
        digest = save_image(self.network, path)
        with np.load(path, allow_pickle=False) as npz:
            members = {name: npz[name] for name in npz.files}
        for k, p in enumerate(self.probs):
            members[f"probs_{k}"] = p
        meta = {"format": FORMAT, "version": VERSION, "readout": self.readout, "gain": self.gain,
                "content_hash": digest}
        members["posterior"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **members)
        return digest

    @classmethod
    def load(cls, path) -> Posterior:
        """Read and check a posterior file; every problem raises `PosteriorError` naming it."""
        import tempfile

        from spikeloop.image import load_image

        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                members = {name: npz[name] for name in npz.files}
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as e:  # zipfile and numpy raise many kinds
            raise PosteriorError(f"{path}: not a readable posterior file: {e}") from e
        if "posterior" not in members:
            raise PosteriorError(f"{path}: member 'posterior' is missing (a network image, not a posterior?)")
        try:
            meta = json.loads(members.pop("posterior").tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PosteriorError(f"{path}: member 'posterior' is not JSON: {e}") from e
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise PosteriorError(f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                                 f"expected {FORMAT!r} version {VERSION}")
        n = sum(1 for name in members if name.startswith("probs_"))
        try:
            probs = [members.pop(f"probs_{k}") for k in range(n)]
        except KeyError as e:
            raise PosteriorError(f"{path}: member {e.args[0]!r} is missing") from None
        with tempfile.TemporaryDirectory() as tmp:  # the rest is a network image, checked as one
            image = Path(tmp) / "network.npz"
            with open(image, "wb") as f:
                np.savez(f, **members)
            network = load_image(image)
        if network.content_hash != meta.get("content_hash"):
            raise PosteriorError(f"{path}: the mode network's content hash does not match the posterior's record")
        try:
            return cls(network, probs, readout=meta.get("readout"), gain=meta.get("gain"))
        except PosteriorError as e:
            raise PosteriorError(f"{path}: {e}") from None


def draw_weights(probs, rng: np.random.Generator) -> list[np.ndarray]:
    """The sampling rule: per layer in order, ``u = rng.random(p.shape)``, ``w = +1 where u < p, else -1``
    (int8); advances ``rng``. ``probs``: per layer, ``P(w = +1)`` as float64 arrays."""
    if not isinstance(rng, np.random.Generator):
        raise PosteriorError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return [np.where(rng.random(np.shape(p)) < p, 1, -1).astype(np.int8) for p in probs]


def mode_probs(network: Network) -> tuple[np.ndarray, ...]:
    """The probabilities of a point mass on ``network``'s weights (1 where w = +1, else 0)."""
    return tuple((layer.crossbar_weights > 0).astype(np.float64) for layer in network.layers)


__all__ = ["FORMAT", "VERSION", "Posterior", "PosteriorError", "draw_weights", "mode_probs"]
