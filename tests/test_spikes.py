"""spikeloop.spikes: validation of spike arrays and spike files."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from spikeloop.spikes import SpikeError, check_spikes, load_spikes, poisson_spikes, save_spikes


def raises(*parts: str):
    return pytest.raises(SpikeError, match=".*".join(re.escape(p) for p in parts))


# ----------------------------------------------------------------------------------------------
# check_spikes: accepted inputs


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint64])
def test_integer_and_bool_dtypes_accepted(dtype):
    seed = 5
    x = np.random.default_rng(seed).integers(0, 2, (4, 7)).astype(dtype)
    out, batched = check_spikes(x, 7)
    assert out.dtype == np.bool_ and out.shape == (1, 4, 7) and batched is False
    assert np.array_equal(out[0], x.astype(bool)), f"seed {seed}"


def test_batched_input_keeps_its_shape():
    x = np.zeros((3, 5, 2), np.int64)
    x[1, 4, 0] = 1
    out, batched = check_spikes(x, 2)
    assert batched is True and out.shape == (3, 5, 2) and out.dtype == np.bool_
    assert out.sum() == 1 and out[1, 4, 0]


def test_nested_lists_accepted():
    out, batched = check_spikes([[0, 1], [1, 1]], 2)
    assert not batched and out.tolist() == [[[False, True], [True, True]]]


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.int32])
def test_torch_tensor_accepted(dtype):
    x = torch.tensor([[[1, 0, 1], [0, 0, 1]]], dtype=dtype)
    out, batched = check_spikes(x, 3)
    assert isinstance(out, np.ndarray) and out.dtype == np.bool_ and batched
    assert out.tolist() == [[[True, False, True], [False, False, True]]]


def test_torch_tensor_requiring_grad_refused_as_float():
    x = torch.ones(2, 3, requires_grad=True)
    with raises("spikes must be bool or integer 0/1", "float32"):
        check_spikes(x, 3)


def test_all_zero_and_all_one():
    assert not check_spikes(np.zeros((2, 4), np.uint8), 4)[0].any()
    assert check_spikes(np.ones((2, 2, 4), np.uint8), 4)[0].all()


# ----------------------------------------------------------------------------------------------
# check_spikes: errors


@pytest.mark.parametrize("shape", [(), (5,), (1, 2, 3, 4)])
def test_wrong_ndim(shape):
    with raises("spikes must have shape [T, 4] or [B, T, 4]", f"got shape {shape}"):
        check_spikes(np.zeros(shape, np.uint8) if shape else np.uint8(0), 4)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 3)])
def test_wrong_n_in(shape):
    with raises(f"spikes has {shape[-1]} inputs per timestep", f"shape {shape}", "expects 4"):
        check_spikes(np.zeros(shape, np.uint8), 4)


@pytest.mark.parametrize("shape", [(0, 4), (2, 0, 4), (0, 3, 4)])
def test_empty_time_or_batch(shape):
    with raises(f"spikes has shape {shape}", "at least one timestep"):
        check_spikes(np.zeros(shape, np.uint8), 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.complex64])
def test_floats_refused(dtype):
    with raises("spikes must be bool or integer 0/1", np.dtype(dtype).name):
        check_spikes(np.ones((2, 3), dtype), 3)


def test_strings_and_objects_refused():
    with raises("spikes must be bool or integer 0/1"):
        check_spikes(np.array([["0", "1"]]), 2)
    with raises("spikes must be bool or integer 0/1", "object"):
        check_spikes(np.array([[0, None]]), 2)


@pytest.mark.parametrize("value", [2, -1, 255, 7])
@pytest.mark.parametrize("dtype", [np.int64, np.int16])
def test_values_other_than_0_and_1(value, dtype):
    x = np.zeros((2, 3, 4), dtype)
    x[1, 2, 3] = value
    with raises(f"spikes[1, 2, 3] = {value}", "expected 0 or 1"):
        check_spikes(x, 4)


def test_value_255_in_uint8():
    x = np.ones((3, 2), np.uint8)
    x[2, 0] = 255
    with raises("spikes[2, 0] = 255"):
        check_spikes(x, 2)


def test_error_names_the_argument():
    with raises("inputs[0, 1] = 2"):
        check_spikes(np.array([[0, 2]]), 2, name="inputs")


def test_torch_tensor_with_bad_values():
    with raises("spikes[0, 1] = -1"):
        check_spikes(torch.tensor([[0, -1]]), 2)


def test_error_is_a_value_error():
    assert issubclass(SpikeError, ValueError)


def test_input_not_modified():
    x = np.array([[0, 1], [1, 0]], np.int64)
    check_spikes(x, 2)
    assert x.dtype == np.int64 and x.tolist() == [[0, 1], [1, 0]]


# ----------------------------------------------------------------------------------------------
# poisson_spikes


@pytest.mark.parametrize("density", [0.0, 0.2, 1.0])
def test_poisson_density(density):
    seed = 99
    s = poisson_spikes((4, 50, 64), density, seed=seed)
    assert s.dtype == np.bool_ and s.shape == (4, 50, 64)
    assert abs(s.mean() - density) < 0.02, f"seed {seed}: mean {s.mean()}"
    assert np.array_equal(s, poisson_spikes((4, 50, 64), density, seed=seed))


def test_poisson_seeds_differ():
    assert not np.array_equal(poisson_spikes((20, 30), 0.5, seed=1), poisson_spikes((20, 30), 0.5, seed=2))


@pytest.mark.parametrize("density", [-0.1, 1.5, float("nan"), float("inf")])
def test_poisson_density_error(density):
    with raises(f"density = {density}", "probability in [0, 1]"):
        poisson_spikes((3, 4), density, seed=0)


# ----------------------------------------------------------------------------------------------
# Spike files


def test_save_load_round_trip(tmp_path):
    seed = 17
    s = poisson_spikes((2, 9, 13), 0.3, seed=seed)
    path = tmp_path / "spikes"  # no suffix: written exactly there
    save_spikes(path, s)
    assert path.exists()
    out = load_spikes(path)
    assert out.dtype == np.bool_ and np.array_equal(out, s), f"seed {seed}"
    assert np.array_equal(check_spikes(out, 13)[0], s)


def test_save_with_extra_arrays(tmp_path):
    s = np.array([[1, 0], [0, 1]], np.uint8)
    membranes = np.array([[5, -2], [0, 7]], np.int64)
    path = tmp_path / "run.npz"
    save_spikes(path, s, membranes=membranes)
    out = load_spikes(path)
    assert out.dtype == np.bool_ and out.tolist() == [[True, False], [False, True]]
    with np.load(path) as npz:
        assert np.array_equal(npz["membranes"], membranes)


def test_load_missing_key(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, inputs=np.zeros((2, 2), bool))
    with raises("no array named 'spikes'", "['inputs']"):
        load_spikes(path)
    with raises("no array named 'outputs'"):
        load_spikes(path, key="outputs")


def test_load_refuses_pickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, spikes=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_spikes(path)


@pytest.mark.parametrize("spikes", [np.array([[0, 2]]), np.array([[0.5, 1.0]]), np.array([[-1, 0]])])
def test_save_refuses_non_binary_spikes(tmp_path, spikes):
    with pytest.raises(SpikeError):
        save_spikes(tmp_path / "bad.npz", spikes)
