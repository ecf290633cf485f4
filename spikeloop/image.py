"""The network image file: one `.npz` per network, versioned, weights bit-packed, content-hashed.

The format is specified in docs/image-format.md; this module is its reference reader and writer.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from spikeloop.network import OPTION_DEFAULTS, Layer, Network, NetworkError, check_densities

FORMAT = "spikeloop.network"
#: The versions this module reads. A network is written in the lowest that holds it: version 1 when every
#: layer is a contract v1 layer (`Layer.is_v1`), version 2 adds contract v2's options, version 3 recurrent
#: layers (a layer field `recurrent` and a member `layer<k>_recurrent`).
VERSIONS = (1, 2, 3)
VERSION = VERSIONS[-1]
V1_LAYER_KEYS = ("n_in", "n_out", "neuron", "reset", "v_bits", "u_bits", "frac_bits", "lam", "alpha")
LAYER_KEYS = V1_LAYER_KEYS + tuple(OPTION_DEFAULTS)
V3_LAYER_KEYS = LAYER_KEYS + ("recurrent",)
_KEYS = {1: V1_LAYER_KEYS, 2: LAYER_KEYS, 3: V3_LAYER_KEYS}
_TEXT_KEYS = ("neuron", "reset", "decay_round", "bias_to", "u_overflow", "v_range")


class ImageError(NetworkError):
    """A network image file is corrupt, truncated, of another version or inconsistent."""


def pack_weights(weights: np.ndarray) -> np.ndarray:
    """+/-1 weights [n_out, n_in] -> uint8 [n_out, ceil(n_in/8)]; bit i%8 of byte i//8 is 1 for +1."""
    return np.packbits(np.asarray(weights) > 0, axis=1, bitorder="little")


def unpack_weights(packed: np.ndarray, n_in: int) -> np.ndarray:
    """Inverse of `pack_weights`: int8 [n_out, n_in] of +/-1."""
    bits = np.unpackbits(packed, axis=1, count=n_in, bitorder="little")
    return (2 * bits.astype(np.int8) - 1).astype(np.int8)


def _members(layer: Layer, k: int) -> dict[str, np.ndarray]:
    members = {
        f"layer{k}_weights": pack_weights(layer.weights),
        f"layer{k}_theta": layer.theta.astype("<i4"),
        f"layer{k}_bias": layer.bias.astype("<i4"),
    }
    if layer.is_recurrent:
        members[f"layer{k}_recurrent"] = pack_weights(layer.recurrent)
    return members


def _layer_fields(layer: Layer) -> dict:
    """The layer's fields in the metadata: its params, and `recurrent` only when it is."""
    return {**layer.params(), **({"recurrent": True} if layer.is_recurrent else {})}


def _hashed_params(layer: Layer) -> dict:
    """The fields the hash covers: v1's, and only the options that differ from v1's meaning, so that the
    hash of a network contract v1 expresses is the one it always had."""
    return {key: value for key, value in _layer_fields(layer).items()
            if key in V1_LAYER_KEYS or value != OPTION_DEFAULTS.get(key)}


def content_hash(network: Network) -> str:
    """The image's content hash: what a bitstream's design identity and the driver compare."""
    h = hashlib.sha256(f"{FORMAT}/1\n".encode())  # the hash scheme's version, not the file's
    h.update(json.dumps([_hashed_params(layer) for layer in network.layers], sort_keys=True,
                        separators=(",", ":")).encode())
    for k, layer in enumerate(network.layers):
        for arr in _members(layer, k).values():
            h.update(np.ascontiguousarray(arr).tobytes())
    return "sha256:" + h.hexdigest()


def file_version(network: Network) -> int:
    """The image version `save_image` writes for `network`: the lowest that holds it."""
    if any(layer.is_recurrent for layer in network.layers):
        return 3
    return 1 if all(layer.is_v1 for layer in network.layers) else 2


def save_image(network: Network, path, *, producer: str = "spikeloop") -> str:
    """Write `network` to `path` (an .npz file); returns the content hash."""
    if not isinstance(network, Network):
        raise TypeError(f"expected a Network, got {type(network).__name__}")
    members = {}
    for k, layer in enumerate(network.layers):
        members.update(_members(layer, k))
    digest = content_hash(network)
    version = file_version(network)
    keys = _KEYS[version]
    meta = {
        "format": FORMAT,
        "version": version,
        "producer": producer,
        "layers": [{key: value for key, value in _layer_fields(layer).items() if key in keys}
                   for layer in network.layers],
        "content_hash": digest,
    }
    if network.densities is not None:
        meta["input_densities"] = [d.tolist() if isinstance(d, np.ndarray) else d for d in network.densities]
    members["meta"] = np.frombuffer(json.dumps(meta, indent=1).encode(), dtype=np.uint8)
    path = Path(path)
    with open(path, "wb") as f:  # np.savez would append ".npz" to a path without it
        np.savez(f, **members)
    return digest


def _field(meta: dict, key: str, where: str, kind):
    if key not in meta:
        raise ImageError(f"{where}: field '{key}' is missing")
    value = meta[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ImageError(f"{where}: field '{key}' = {value!r}, expected an integer")
    if kind is not int and not isinstance(value, kind):
        raise ImageError(f"{where}: field '{key}' = {value!r}, expected {kind.__name__}")
    return value


def load_image(path) -> Network:
    """Read, check and validate a network image; every problem raises `ImageError` naming the field."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
            if len(names) != len(z.namelist()):
                extra = sorted(set(z.namelist()) - {n + ".npy" for n in names})
                raise ImageError(f"{path}: unexpected members {extra}")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in names}
    except (ImageError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # zipfile and numpy raise many kinds (BadZipFile, RuntimeError, NotImplementedError...)
        raise ImageError(f"{path}: not a readable network image (corrupt or truncated): {e}") from e

    if "meta" not in arrays:
        raise ImageError(f"{path}: member 'meta' is missing")
    meta_arr = arrays.pop("meta")
    try:
        if meta_arr.dtype != np.uint8 or meta_arr.ndim != 1:
            raise ValueError(f"dtype {meta_arr.dtype}, ndim {meta_arr.ndim}")
        meta = json.loads(meta_arr.tobytes().decode())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"{path}: member 'meta' is not UTF-8 JSON object bytes ({e})") from e

    fmt = _field(meta, "format", str(path), str)
    if fmt != FORMAT:
        raise ImageError(f"{path}: field 'format' = {fmt!r}, expected {FORMAT!r}")
    version = _field(meta, "version", str(path), int)
    if version not in VERSIONS:
        raise ImageError(f"{path}: field 'version' = {version}, this spikeloop reads versions "
                         f"{', '.join(map(str, VERSIONS))}")
    keys = _KEYS[version]
    layer_params = _field(meta, "layers", str(path), list)
    if not layer_params:
        raise ImageError(f"{path}: field 'layers' is empty")
    stored_hash = _field(meta, "content_hash", str(path), str)

    for k, p in enumerate(layer_params):
        if isinstance(p, dict) and p.get("recurrent", True) is not True:
            raise ImageError(f"{path}: layers[{k}]: field 'recurrent' = {p['recurrent']!r}, expected true (or no "
                             "field: a feed-forward layer)")
    recurrent = [isinstance(p, dict) and "recurrent" in p for p in layer_params]
    expected = {f"layer{k}_{m}" for k in range(len(layer_params))
                for m in ("weights", "theta", "bias", *(("recurrent",) if recurrent[k] else ()))}
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise ImageError(f"{path}: members do not match field 'layers' (missing {missing}, unexpected {extra})")

    layers = []
    for k, p in enumerate(layer_params):
        where = f"{path}: layers[{k}]"
        if not isinstance(p, dict):
            raise ImageError(f"{where} is {p!r}, expected an object")
        unknown = sorted(set(p) - set(keys))
        if unknown:
            raise ImageError(f"{where}: unknown fields {unknown}" + (
                " (contract v2's options need a version 2 image)" if set(unknown) & set(OPTION_DEFAULTS) else "") + (
                " (recurrent layers need a version 3 image)" if "recurrent" in unknown else ""))
        n_in = _field(p, "n_in", where, int)
        n_out = _field(p, "n_out", where, int)
        if not (1 <= n_in and 1 <= n_out):
            raise ImageError(f"{where}: n_in = {n_in}, n_out = {n_out}, expected both >= 1")
        shapes = {
            "weights": ((n_out, (n_in + 7) // 8), np.uint8), "theta": ((n_out,), "<i4"), "bias": ((n_out,), "<i4"),
            **({"recurrent": ((n_out, (n_out + 7) // 8), np.uint8)} if recurrent[k] else {}),
        }
        for m, (shape, dtype) in shapes.items():
            arr = arrays[f"layer{k}_{m}"]
            if arr.shape != shape or arr.dtype != np.dtype(dtype):
                raise ImageError(
                    f"{path}: member 'layer{k}_{m}' has shape {arr.shape} dtype {arr.dtype}, "
                    f"expected shape {shape} dtype {np.dtype(dtype)} (from layers[{k}])"
                )
        for m, size, width in (("weights", "n_in", n_in), ("recurrent", "n_out", n_out)):
            packed = arrays.get(f"layer{k}_{m}")
            if packed is not None and width % 8 and (packed[:, -1] >> (width % 8)).any():
                raise ImageError(f"{path}: member 'layer{k}_{m}' has non-zero padding bits past {size} = {width}")
        kwargs = {key: _field(p, key, where, str if key in _TEXT_KEYS else int)
                  for key in keys[2:] if key != "recurrent"}
        if version == 1 and kwargs["reset"] == "subtract_next":
            raise ImageError(f"{where}: reset = 'subtract_next' needs a version 2 image")
        try:
            layers.append(
                Layer(
                    unpack_weights(arrays[f"layer{k}_weights"], n_in),
                    recurrent=unpack_weights(arrays[f"layer{k}_recurrent"], n_out) if recurrent[k] else None,
                    theta=arrays[f"layer{k}_theta"].astype(np.int64),
                    bias=arrays[f"layer{k}_bias"].astype(np.int64),
                    where=where,
                    **kwargs,
                )
            )
        except ImageError:
            raise
        except NetworkError as e:
            raise ImageError(str(e)) from e
    densities = meta.get("input_densities")
    if densities is not None:
        densities = check_densities(densities, [layer.n_in for layer in layers], ImageError,
                                    f"{path}: field 'input_densities'")
    try:
        network = Network(tuple(layers), densities)
    except NetworkError as e:
        raise ImageError(f"{path}: {e}") from e
    actual = content_hash(network)
    if actual != stored_hash:
        raise ImageError(f"{path}: field 'content_hash' = {stored_hash} but the content hashes to {actual}")
    return network
