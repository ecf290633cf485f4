"""spikeloop.image: round trips of the network image file and every error of its loader.

Corrupted files are built by hand: the members of a good file are read with numpy, changed,
and written back as .npy members of a new zip file.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spikeloop.image import (
    FORMAT,
    LAYER_KEYS,
    V1_LAYER_KEYS,
    VERSION,
    ImageError,
    content_hash,
    load_image,
    pack_weights,
    save_image,
    unpack_weights,
)
from spikeloop.network import NEURONS, RESETS, Layer, Network, NetworkError, random_network, signed_range

# ----------------------------------------------------------------------------------------------
# Helpers


def read_members(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def write_members(path: Path, members: dict[str, np.ndarray], raw: dict[str, bytes] | None = None) -> Path:
    """Write an .npz by hand: each array as `<name>.npy`, plus raw members as given."""
    with zipfile.ZipFile(path, "w") as z:
        for name, arr in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=True)
            z.writestr(name + ".npy", buf.getvalue())
        for name, data in (raw or {}).items():
            z.writestr(name, data)
    return path


def get_meta(members: dict[str, np.ndarray]) -> dict:
    return json.loads(members["meta"].tobytes().decode())


def set_meta(members: dict[str, np.ndarray], meta) -> dict[str, np.ndarray]:
    out = dict(members)
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return out


def raises(*parts: str):
    """pytest.raises(ImageError) whose message contains every part, in order."""
    return pytest.raises(ImageError, match=".*".join(re.escape(p) for p in parts))


SEED = 20240601


@pytest.fixture
def good(tmp_path):
    """A valid two-layer image (n_in = 13, not a multiple of 8): (network, path, members, meta)."""
    net = random_network((13, 4, 3), seed=SEED, neuron="cuba", reset="zero", v_bits=10, u_bits=12, frac_bits=5)
    path = tmp_path / "good.npz"
    save_image(net, path)
    members = read_members(path)
    return net, path, members, get_meta(members)


def bad_file(tmp_path, members, raw=None) -> Path:
    return write_members(tmp_path / "bad.npz", members, raw)


# ----------------------------------------------------------------------------------------------
# Round trips


def _networks():
    yield "lif-784", random_network((784, 256, 10), seed=1)
    yield "cuba-13", random_network((13, 7, 5, 2), seed=2, neuron="cuba", reset="none", v_bits=6, u_bits=5)
    yield "one", random_network((1, 1), seed=3)
    yield "zero-9", random_network((9, 17), seed=4, reset="zero", frac_bits=0)
    yield "deep", random_network((3,) * 17, seed=5, neuron="cuba", frac_bits=16, lam=65536, alpha=1)
    v_lo, v_hi = signed_range(32)
    yield "rails", Network((
        Layer(np.array([[1, -1, 1], [-1, -1, -1]]), theta=[1, v_hi], bias=[v_lo, v_hi], v_bits=32, u_bits=32,
              neuron="cuba", frac_bits=16, lam=0, alpha=65536),
        Layer(np.array([[1, 1]]), theta=1, bias=[-2], v_bits=2, u_bits=2, reset="none"),
    ))
    for neuron in NEURONS:
        for reset in RESETS:
            yield f"{neuron}-{reset}", random_network((21, 6, 4), seed=hash((neuron, reset)) % 1000, neuron=neuron,
                                                      reset=reset, v_bits=12, frac_bits=7)


NETWORKS = dict(_networks())


@pytest.mark.parametrize("name", list(NETWORKS))
def test_round_trip(tmp_path, name):
    net = NETWORKS[name]
    path = tmp_path / f"{name}.npz"
    digest = save_image(net, path)
    loaded = load_image(path)
    assert loaded == net, name
    assert digest == net.content_hash == content_hash(loaded) == loaded.content_hash
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    for a, b in zip(net.layers, loaded.layers):
        assert a.params() == b.params()
        assert np.array_equal(a.weights, b.weights) and a.weights.dtype == b.weights.dtype == np.int8
        assert np.array_equal(a.theta, b.theta) and np.array_equal(a.bias, b.bias)
        assert not b.weights.flags.writeable
    # Saving the loaded network again gives the same hash and the same network.
    again = tmp_path / f"{name}-again.npz"
    assert save_image(loaded, again) == digest
    assert load_image(again) == net


def test_network_save_and_load_methods(tmp_path):
    net = NETWORKS["cuba-13"]
    path = tmp_path / "net.image"  # no .npz suffix: the file is written exactly there
    digest = net.save(path)
    assert path.exists() and not (tmp_path / "net.image.npz").exists()
    assert Network.load(path) == net and digest == net.content_hash
    assert Network.load(str(path)) == net


def test_meta_contents(good):
    net, path, members, meta = good
    assert meta["format"] == FORMAT == "spikeloop.network" and meta["version"] == 1 and VERSION == 3
    assert meta["producer"] == "spikeloop"
    assert meta["layers"] == [{k: layer.params()[k] for k in V1_LAYER_KEYS} for layer in net.layers]
    assert meta["content_hash"] == net.content_hash
    assert set(members) == {"meta", "layer0_weights", "layer0_theta", "layer0_bias",
                            "layer1_weights", "layer1_theta", "layer1_bias"}
    assert members["layer0_weights"].dtype == np.uint8 and members["layer0_weights"].shape == (4, 2)
    assert members["layer0_theta"].dtype == np.dtype("<i4") and members["layer1_bias"].shape == (3,)


def test_producer_is_not_part_of_the_hash(tmp_path):
    net = NETWORKS["one"]
    h1 = save_image(net, tmp_path / "a.npz", producer="spikeloop")
    h2 = save_image(net, tmp_path / "b.npz", producer="someone else")
    assert h1 == h2
    assert get_meta(read_members(tmp_path / "b.npz"))["producer"] == "someone else"
    assert load_image(tmp_path / "b.npz") == net


def test_hash_changes_with_any_content():
    seed = 77
    net = random_network((10, 6), seed=seed, neuron="cuba")
    layer = net.layers[0]
    w = layer.weights.copy()
    w[2, 9] = -w[2, 9]
    variants = [
        layer.replace(weights=w), layer.replace(theta=layer.theta + 1), layer.replace(bias=layer.bias + 1),
        layer.replace(reset="none"), layer.replace(neuron="lif", alpha=0), layer.replace(v_bits=15),
        layer.replace(u_bits=15), layer.replace(frac_bits=9), layer.replace(lam=layer.lam + 1),
        layer.replace(alpha=layer.alpha + 1),
    ]
    hashes = {net.content_hash} | {Network((v,)).content_hash for v in variants}
    assert len(hashes) == len(variants) + 1, f"seed {seed}"
    assert Network((layer.replace(),)).content_hash == net.content_hash


def test_save_refuses_a_non_network(tmp_path):
    with pytest.raises(TypeError, match="expected a Network, got Layer"):
        save_image(NETWORKS["one"].layers[0], tmp_path / "x.npz")


def test_pack_weights_bit_order():
    w = np.array([[1, -1, -1, -1, -1, -1, -1, -1, 1], [-1, 1, -1, -1, -1, -1, -1, 1, -1]])
    packed = pack_weights(w)
    assert packed.dtype == np.uint8 and packed.tolist() == [[0b00000001, 0b1], [0b10000010, 0b0]]
    assert np.array_equal(unpack_weights(packed, 9), w)


@pytest.mark.parametrize("n_in", [1, 7, 8, 9, 15, 16, 17, 100])
def test_pack_unpack_round_trip(n_in):
    seed = 1000 + n_in
    w = np.random.default_rng(seed).choice(np.array([-1, 1], np.int8), size=(5, n_in))
    packed = pack_weights(w)
    assert packed.shape == (5, (n_in + 7) // 8), f"seed {seed}"
    if n_in % 8:
        assert not (packed[:, -1] >> (n_in % 8)).any(), f"seed {seed}: padding bits must be zero"
    out = unpack_weights(packed, n_in)
    assert out.dtype == np.int8 and np.array_equal(out, w), f"seed {seed}"


# ----------------------------------------------------------------------------------------------
# Unreadable files


def test_not_a_zip(tmp_path):
    path = tmp_path / "text.npz"
    path.write_bytes(b"this is not a zip file\n" * 10)
    with raises(str(path), "not a readable network image"):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with raises("not a readable network image"):
        load_image(path)


def test_a_plain_npy_file(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros(3))
    with raises("not a readable network image"):
        load_image(path)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_truncated_file(good, tmp_path, fraction):
    _, path, _, _ = good
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with raises(str(cut), "corrupt or truncated"):
        load_image(cut)


@pytest.mark.parametrize("missing", [1, 2, 10, 22])
def test_truncated_by_a_few_bytes(good, tmp_path, missing):
    _, path, _, _ = good
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:-missing])
    with raises("corrupt or truncated"):
        load_image(cut)


def test_missing_file_is_not_an_image_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nowhere.npz")


def test_pickled_member_refused(good, tmp_path):
    _, _, members, _ = good
    members = dict(members, layer0_theta=np.array([{"evil": 1}] * 4, dtype=object))
    with raises("not a readable network image"):
        load_image(bad_file(tmp_path, members))


# ----------------------------------------------------------------------------------------------
# The 'meta' member


def test_missing_meta(good, tmp_path):
    _, _, members, _ = good
    del members["meta"]
    with raises("member 'meta' is missing"):
        load_image(bad_file(tmp_path, members))


@pytest.mark.parametrize(
    ("data", "parts"),
    [
        (np.frombuffer(b"{not json", np.uint8), ["member 'meta'", "JSON"]),
        (np.frombuffer(b"\xff\xfe{}", np.uint8), ["member 'meta'", "UTF-8"]),
        (np.frombuffer(b"[1, 2, 3]", np.uint8), ["member 'meta'", "not a JSON object"]),
        (np.frombuffer(b'"a string"', np.uint8), ["member 'meta'", "not a JSON object"]),
        (np.frombuffer(b"", np.uint8), ["member 'meta'", "JSON"]),
        (np.arange(5, dtype=np.int32), ["member 'meta'", "dtype int32"]),
        (np.zeros((2, 2), np.uint8), ["member 'meta'", "ndim 2"]),
    ],
)
def test_meta_not_json(good, tmp_path, data, parts):
    _, _, members, _ = good
    with raises(*parts):
        load_image(bad_file(tmp_path, dict(members, meta=data)))


@pytest.mark.parametrize("key", ["format", "version", "layers", "content_hash"])
def test_missing_top_level_field(good, tmp_path, key):
    _, _, members, meta = good
    del meta[key]
    with raises(f"field '{key}' is missing"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


@pytest.mark.parametrize(
    ("key", "value", "parts"),
    [
        ("format", "spikeloop.other", ["field 'format' = 'spikeloop.other'", "expected 'spikeloop.network'"]),
        ("format", 5, ["field 'format' = 5", "expected str"]),
        ("version", 4, ["field 'version' = 4", "versions 1, 2, 3"]),
        ("version", 0, ["field 'version' = 0"]),
        ("version", "1", ["field 'version' = '1'", "expected an integer"]),
        ("version", 1.0, ["field 'version' = 1.0", "expected an integer"]),
        ("version", True, ["field 'version' = True", "expected an integer"]),
        ("layers", [], ["field 'layers' is empty"]),
        ("layers", {"n_in": 3}, ["field 'layers' =", "expected list"]),
        ("content_hash", 12, ["field 'content_hash' = 12", "expected str"]),
    ],
)
def test_bad_top_level_field(good, tmp_path, key, value, parts):
    _, _, members, meta = good
    meta[key] = value
    with raises(*parts):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_layer_entry_not_an_object(good, tmp_path):
    _, _, members, meta = good
    meta["layers"][1] = [4, 3]
    with raises("layers[1] is [4, 3]", "expected an object"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


@pytest.mark.parametrize("key", V1_LAYER_KEYS)
def test_missing_layer_field(good, tmp_path, key):
    _, _, members, meta = good
    del meta["layers"][1][key]
    with raises("layers[1]", f"field '{key}' is missing"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_unknown_layer_field(good, tmp_path):
    _, _, members, meta = good
    meta["layers"][0]["colour"] = "blue"
    meta["layers"][0]["delay"] = 1
    with raises("layers[0]", "unknown fields ['colour', 'delay']"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


@pytest.mark.parametrize(
    ("key", "value", "parts"),
    [
        ("n_in", "13", ["field 'n_in' = '13'", "expected an integer"]),
        ("n_out", 4.0, ["field 'n_out' = 4.0", "expected an integer"]),
        ("v_bits", True, ["field 'v_bits' = True", "expected an integer"]),
        ("lam", None, ["field 'lam' = None", "expected an integer"]),
        ("neuron", 1, ["field 'neuron' = 1", "expected str"]),
        ("reset", ["zero"], ["field 'reset' = ['zero']", "expected str"]),
    ],
)
def test_layer_field_of_wrong_type(good, tmp_path, key, value, parts):
    _, _, members, meta = good
    meta["layers"][0][key] = value
    with raises("layers[0]", *parts):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


@pytest.mark.parametrize(("n_in", "n_out"), [(0, 4), (13, 0), (-1, 4)])
def test_layer_sizes_below_one(good, tmp_path, n_in, n_out):
    _, _, members, meta = good
    meta["layers"][0].update(n_in=n_in, n_out=n_out)
    with raises("layers[0]", f"n_in = {n_in}, n_out = {n_out}", ">= 1"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


# ----------------------------------------------------------------------------------------------
# Array members


@pytest.mark.parametrize(
    ("member", "arr", "parts"),
    [
        ("layer0_theta", lambda a: a.astype(np.int64), ["member 'layer0_theta'", "dtype int64", "dtype int32"]),
        ("layer0_theta", lambda a: a.astype(">i4"), ["member 'layer0_theta'", "dtype >i4"]),
        ("layer1_bias", lambda a: a.astype(np.int16), ["member 'layer1_bias'", "dtype int16"]),
        ("layer0_weights", lambda a: a.astype(np.int8), ["member 'layer0_weights'", "dtype int8", "uint8"]),
        ("layer0_weights", lambda a: a[:, :1], ["member 'layer0_weights'", "shape (4, 1)", "expected shape (4, 2)"]),
        ("layer0_weights", lambda a: np.concatenate([a, a[:, :1]], 1), ["member 'layer0_weights'", "shape (4, 3)"]),
        ("layer1_weights", lambda a: a[:2], ["member 'layer1_weights'", "shape (2, 1)", "(from layers[1])"]),
        ("layer1_theta", lambda a: np.concatenate([a, a]), ["member 'layer1_theta'", "shape (6,)", "(3,)"]),
        ("layer0_bias", lambda a: a.reshape(1, -1), ["member 'layer0_bias'", "shape (1, 4)"]),
    ],
)
def test_member_of_wrong_dtype_or_shape(good, tmp_path, member, arr, parts):
    _, _, members, _ = good
    members[member] = arr(members[member])
    with raises(*parts):
        load_image(bad_file(tmp_path, members))


@pytest.mark.parametrize("member", ["layer0_weights", "layer0_theta", "layer1_bias"])
def test_missing_member(good, tmp_path, member):
    _, _, members, _ = good
    del members[member]
    with raises("members do not match field 'layers'", f"missing ['{member}']"):
        load_image(bad_file(tmp_path, members))


def test_extra_array_member(good, tmp_path):
    _, _, members, _ = good
    members["layer2_theta"] = np.ones(3, "<i4")
    with raises("members do not match field 'layers'", "unexpected ['layer2_theta']"):
        load_image(bad_file(tmp_path, members))


def test_meta_announces_more_layers_than_stored(good, tmp_path):
    _, _, members, meta = good
    meta["layers"].append(dict(meta["layers"][1], n_in=3))
    with raises("members do not match field 'layers'", "'layer2_bias'", "'layer2_theta'", "'layer2_weights'"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_extra_non_array_member(good, tmp_path):
    _, _, members, _ = good
    with raises("unexpected members ['README.txt']"):
        load_image(bad_file(tmp_path, members, raw={"README.txt": b"hello"}))


@pytest.mark.parametrize("bit", [5, 6, 7])
def test_non_zero_padding_bits(good, tmp_path, bit):
    net, _, members, _ = good
    assert net.n_in == 13  # the last byte holds 5 weights and 3 padding bits
    weights = members["layer0_weights"].copy()
    weights[2, -1] |= 1 << bit
    members["layer0_weights"] = weights
    with raises("member 'layer0_weights'", "non-zero padding bits", "n_in = 13"):
        load_image(bad_file(tmp_path, members))


# ----------------------------------------------------------------------------------------------
# Invalid values and inconsistent content


@pytest.mark.parametrize(
    ("member", "index", "value", "parts"),
    [
        ("layer0_theta", 0, 0, ["layers[0]", "theta[0] = 0"]),
        ("layer1_theta", 2, -4, ["layers[1]", "theta[2] = -4"]),
        ("layer0_theta", 1, 512, ["layers[0]", "theta[1] = 512", "[1, 511]"]),
        ("layer1_bias", 0, -513, ["layers[1]", "bias[0] = -513", "[-512, 511]"]),
    ],
)
def test_invalid_member_values(good, tmp_path, member, index, value, parts):
    _, _, members, _ = good
    arr = members[member].copy()
    arr[index] = value
    members[member] = arr
    with raises(*parts):
        load_image(bad_file(tmp_path, members))


@pytest.mark.parametrize(
    ("key", "value", "parts"),
    [
        ("neuron", "izhikevich", ["neuron must be one of", "'izhikevich'"]),
        ("reset", "soft", ["reset must be one of", "'soft'"]),
        ("v_bits", 40, ["v_bits = 40"]),
        ("v_bits", 2, ["theta", "is outside [1, 1]"]),  # the stored thresholds no longer fit
        ("u_bits", 1, ["u_bits = 1"]),
        ("frac_bits", 17, ["frac_bits = 17"]),
        ("lam", 33, ["lam = 33", "[0, 32]"]),
        ("alpha", -1, ["alpha = -1"]),
    ],
)
def test_invalid_layer_field_values(good, tmp_path, key, value, parts):
    _, _, members, meta = good
    meta["layers"][0][key] = value
    with raises("layers[0]", *parts):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_alpha_on_lif_in_the_file(tmp_path):
    net = random_network((5, 3), seed=SEED)
    path = tmp_path / "lif.npz"
    save_image(net, path)
    members = read_members(path)
    meta = get_meta(members)
    meta["layers"][0]["alpha"] = 1
    with raises("layers[0]", "alpha = 1", "'lif'"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_layer_size_mismatch_between_layers(good, tmp_path):
    net, _, members, meta = good
    # Layer 1 claims 3 inputs (layer 0 has 4 outputs); its members are consistent with that claim.
    meta["layers"][1]["n_in"] = 3
    members["layer1_weights"] = pack_weights(net.layers[1].weights[:, :3])
    with raises("layer 1: n_in = 3", "layer 0 has n_out = 4"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_network_errors_are_image_errors(good, tmp_path):
    _, _, members, meta = good
    meta["layers"][0]["lam"] = 10_000
    with pytest.raises(NetworkError):  # ImageError is a NetworkError: callers may catch either
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_content_hash_mismatch_weight_byte(good, tmp_path):
    _, _, members, meta = good
    weights = members["layer1_weights"].copy()
    weights[1, 0] ^= 0b1  # flip weight 0 of neuron 1: still a valid +/-1 network
    members["layer1_weights"] = weights
    with raises("field 'content_hash'", meta["content_hash"], "but the content hashes to sha256:"):
        load_image(bad_file(tmp_path, members))


def test_content_hash_mismatch_theta(good, tmp_path):
    _, _, members, _ = good
    theta = members["layer0_theta"].copy()
    theta[0] += 1
    members["layer0_theta"] = theta
    with raises("field 'content_hash'"):
        load_image(bad_file(tmp_path, members))


def test_content_hash_mismatch_layer_field(good, tmp_path):
    _, _, members, meta = good
    meta["layers"][1]["lam"] = meta["layers"][1]["lam"] + 1  # still valid
    with raises("field 'content_hash'"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_content_hash_mismatch_stored_hash(good, tmp_path):
    _, _, members, meta = good
    meta["content_hash"] = "sha256:" + "0" * 64
    with raises("field 'content_hash' = sha256:" + "0" * 64):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_rewritten_good_file_still_loads(good, tmp_path):
    # The hand-written zip of unchanged members is accepted: the errors above come from the edits.
    net, _, members, _ = good
    assert load_image(bad_file(tmp_path, members)) == net


# ----------------------------------------------------------------------------------------------
# Corrupted bytes


def test_flipped_bytes_in_member_data(good, tmp_path):
    """A flipped bit inside any member's stored bytes is caught (zip CRC), never loaded silently."""
    net, path, _, _ = good
    data = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        spans = []
        for info in z.infolist():
            name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
            extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            spans.append((start, start + info.compress_size))
    seed = 4242
    rng = np.random.default_rng(seed)
    cut = tmp_path / "flipped.npz"
    for _ in range(60):
        start, stop = spans[rng.integers(len(spans))]
        pos, bit = int(rng.integers(start, stop)), int(rng.integers(8))
        corrupt = bytearray(data)
        corrupt[pos] ^= 1 << bit
        cut.write_bytes(bytes(corrupt))
        with raises("corrupt or truncated"):
            load_image(cut)
        assert load_image(path) == net, f"seed {seed}"


def _patch_central_directory(data: bytes, offset: int, value: int, size: int = 2) -> bytes:
    """Set a little-endian field at `offset` in the first central directory entry."""
    at = data.index(b"PK\x01\x02") + offset
    return data[:at] + value.to_bytes(size, "little") + data[at + size:]


@pytest.mark.parametrize(
    ("what", "offset", "value"),
    [
        ("encrypted flag", 8, 0x0001),  # general purpose bit 0: RuntimeError "... is encrypted"
        ("version needed to extract", 6, 0x00FF),  # NotImplementedError "zip file version 25.5"
        ("compression method", 10, 99),  # NotImplementedError "That compression method is not supported"
    ],
)
def test_corrupt_zip_header_is_an_image_error(good, tmp_path, what, offset, value):
    _, path, _, _ = good
    bad = tmp_path / "header.npz"
    bad.write_bytes(_patch_central_directory(path.read_bytes(), offset, value))
    with raises(str(bad)):
        load_image(bad)


# ----------------------------------------------------------------------------------------------
# Contract v2: options, versions, and v1 images that keep their meaning

FIXTURES = Path(__file__).parent / "fixtures"
V2_OPTIONS = {"decay_round": "zero", "input_shift": 6, "bias_to": "membrane", "u_overflow": "wrap",
              "v_range": "symmetric"}


def test_a_v1_image_written_before_contract_v2_loads_with_its_hash_and_meaning():
    """tests/fixtures/image_v1.npz and its trace were written by spikeloop before contract v2."""
    net = load_image(FIXTURES / "image_v1.npz")
    with np.load(FIXTURES / "image_v1_trace.npz") as old:
        assert net.content_hash == str(old["content_hash"])
        assert all(layer.is_v1 for layer in net.layers)
        from spikeloop import golden

        trace = golden.run(net, old["spikes"], record=True)
        for k, rec in enumerate(trace.layers):
            assert rec.z.any(), f"layer {k} never fired"
            for field in ("z", "v", "u"):
                assert np.array_equal(getattr(rec, field), old[f"{field}{k}"]), f"layer {k} {field}"


def test_v1_networks_are_written_as_version_1_and_v2_networks_as_version_2(tmp_path):
    v1 = random_network((5, 3), seed=1)
    v2 = random_network((5, 3), seed=1, neuron="cuba", **V2_OPTIONS)
    nxt = random_network((5, 3), seed=1, reset="subtract_next")
    for net, version in ((v1, 1), (v2, 2), (nxt, 2)):
        save_image(net, tmp_path / "n.npz")
        meta = get_meta(read_members(tmp_path / "n.npz"))
        assert meta["version"] == version
        assert set(meta["layers"][0]) == set(V1_LAYER_KEYS if version == 1 else LAYER_KEYS)
        assert load_image(tmp_path / "n.npz") == net


def test_options_at_their_v1_values_keep_the_v1_hash_and_others_change_it():
    net = random_network((7, 4), seed=3, neuron="cuba")
    hashes = {net.content_hash}
    for key, value in V2_OPTIONS.items():
        changed = Network(tuple(layer.replace(**{key: value}) for layer in net.layers))
        hashes.add(changed.content_hash)
    assert len(hashes) == 1 + len(V2_OPTIONS)
    explicit = Network(tuple(layer.replace(decay_round="floor", input_shift=0) for layer in net.layers))
    assert explicit.content_hash == net.content_hash


def test_a_v1_image_with_a_v2_option_is_refused(good, tmp_path):
    _, _, members, meta = good
    meta["layers"][0]["decay_round"] = "zero"
    with raises("layers[0]", "unknown fields ['decay_round']", "need a version 2 image"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_a_v1_image_with_reset_subtract_next_is_refused(good, tmp_path):
    _, _, members, meta = good
    meta["layers"][1]["reset"] = "subtract_next"
    with raises("layers[1]", "reset = 'subtract_next' needs a version 2 image"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


@pytest.mark.parametrize(("key", "value", "parts"), [
    ("decay_round", "up", ("decay_round must be one of floor, zero, nearest", "'up'")),
    ("input_shift", 17, ("input_shift = 17 is outside [0, 16]",)),
    ("bias_to", "both", ("bias_to must be one of current, membrane",)),
    ("u_overflow", 3, ("field 'u_overflow' = 3, expected str",)),
    ("v_range", "half", ("v_range must be one of full, symmetric",)),
])
def test_a_version_2_image_with_a_bad_option_is_refused(tmp_path, key, value, parts):
    path = tmp_path / "v2.npz"
    save_image(random_network((5, 3), seed=1, neuron="cuba", **V2_OPTIONS), path)
    members = read_members(path)
    meta = get_meta(members)
    meta["layers"][0][key] = value
    with raises("layers[0]", *parts):
        load_image(bad_file(tmp_path, set_meta(members, meta)))



# ----------------------------------------------------------------------------------------------
# Input densities (optional, outside the hash)


def test_input_densities_round_trip_outside_the_hash(tmp_path):
    net = NETWORKS["cuba-13"]
    dense = net.with_densities([0.25, 0.5, 1])
    digest = save_image(dense, tmp_path / "d.npz")
    assert digest == net.content_hash  # measured activity is not the network's content
    assert get_meta(read_members(tmp_path / "d.npz"))["input_densities"] == [0.25, 0.5, 1.0]
    loaded = load_image(tmp_path / "d.npz")
    assert loaded == net and loaded.densities == (0.25, 0.5, 1.0)
    save_image(net, tmp_path / "n.npz")
    assert "input_densities" not in get_meta(read_members(tmp_path / "n.npz"))
    assert load_image(tmp_path / "n.npz").densities is None


@pytest.mark.parametrize(("value", "parts"), [
    ([0.5], ["field 'input_densities': 1 values for 2 layers"]),
    ([0.5, 1.5], ["field 'input_densities'[1] = 1.5", "in [0, 1]"]),
    ([0.5, [0.1, 0.2]], ["field 'input_densities'[1]: 4 shares in [0, 1] expected", "got shape (2,)"]),
    ([-0.1, 0.5], ["field 'input_densities'[0] = -0.1"]),
    ([0.5, "0.2"], ["field 'input_densities'[1] = '0.2'"]),
    ([True, 0.2], ["field 'input_densities'[0] = True"]),
    ("0.5,0.2", ["field 'input_densities' = '0.5,0.2'", "one input density per layer (2)"]),
])
def test_bad_input_densities(good, tmp_path, value, parts):
    _, _, members, meta = good
    meta["input_densities"] = value
    with raises(*parts):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_input_densities_per_input_round_trip(tmp_path):
    net = NETWORKS["cuba-13"]  # 13-7-5-2
    per_input = [np.linspace(0, 1, 13), 0.5, np.full(5, 0.125)]
    save_image(net.with_densities(per_input), tmp_path / "d.npz")
    loaded = load_image(tmp_path / "d.npz")
    assert np.array_equal(loaded.densities[0], per_input[0]) and loaded.densities[1] == 0.5
    assert not loaded.densities[0].flags.writeable
    assert loaded.mean_densities() == pytest.approx((0.5, 0.5, 0.125))


@pytest.mark.parametrize(("value", "part"), [((0.1,), "densities: 1 values for 3 layers"),
                                             ((0.1, 0.2, float("nan")), "densities[2] = nan"),
                                             ((np.zeros(12), 0.1, 0.1), "densities[0]: 13 shares in [0, 1] expected"),
                                             ((0.1, np.full(7, 1.5), 0.1), "shape (7,) dtype float64 in [1.5, 1.5]")])
def test_network_refuses_bad_densities(value, part):
    with pytest.raises(NetworkError, match=re.escape(part)):
        NETWORKS["cuba-13"].with_densities(value)


# ----------------------------------------------------------------------------------------------
# Version 3: recurrent layers


def test_recurrent_networks_are_written_as_version_3_and_read_back(tmp_path):
    net = random_network((20, 13, 7, 5), seed=1, recurrent=(True, False, True), input_shift=1)
    digest = save_image(net, tmp_path / "r.npz")
    members = read_members(tmp_path / "r.npz")
    meta = get_meta(members)
    assert meta["version"] == 3
    assert [layer.get("recurrent", False) for layer in meta["layers"]] == [True, False, True]
    assert sorted(m for m in members if m.endswith("_recurrent")) == ["layer0_recurrent", "layer2_recurrent"]
    back = load_image(tmp_path / "r.npz")
    assert back == net and back.content_hash == digest
    save_image(Network(tuple(layer.replace(recurrent=None) for layer in net.layers)), tmp_path / "f.npz")
    assert get_meta(read_members(tmp_path / "f.npz"))["version"] == 2 - all(
        layer.is_v1 for layer in net.layers)


def _recurrent_file(tmp_path):
    net = random_network((13, 9, 3), seed=7, recurrent=(True, False))
    save_image(net, tmp_path / "r.npz")
    members = read_members(tmp_path / "r.npz")
    return members, get_meta(members)


def test_an_older_version_with_a_recurrent_layer_is_refused(tmp_path):
    members, meta = _recurrent_file(tmp_path)
    meta["version"] = 2
    with pytest.raises(ImageError, match=re.escape("unknown fields ['recurrent']") + ".*version 3"):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


@pytest.mark.parametrize("value", [False, 1, "yes"])
def test_a_recurrent_field_other_than_true_is_refused(tmp_path, value):
    members, meta = _recurrent_file(tmp_path)
    meta["layers"][0]["recurrent"] = value
    with pytest.raises(ImageError, match=re.escape(f"field 'recurrent' = {value!r}, expected true")):
        load_image(bad_file(tmp_path, set_meta(members, meta)))


def test_a_missing_or_padded_recurrent_member_is_refused(tmp_path):
    members, meta = _recurrent_file(tmp_path)
    with pytest.raises(ImageError, match=re.escape("missing ['layer0_recurrent']")):
        load_image(bad_file(tmp_path, {k: v for k, v in members.items() if k != "layer0_recurrent"}))
    padded = dict(members)
    padded["layer0_recurrent"] = members["layer0_recurrent"].copy()
    padded["layer0_recurrent"][:, -1] |= 0x80
    with pytest.raises(ImageError, match=re.escape("'layer0_recurrent' has non-zero padding bits past n_out = 9")):
        load_image(bad_file(tmp_path, padded))
