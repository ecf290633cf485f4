"""Spike arrays: validation at the boundary where they enter, and spike files (.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class SpikeError(ValueError):
    """A spike array has the wrong shape, dtype or values."""


def check_spikes(spikes, n_in: int, *, name: str = "spikes") -> tuple[np.ndarray, bool]:
    """Validate 0/1 spikes of shape [T, n_in] or [B, T, n_in].

    Returns (bool array [B, T, n_in], batched) where `batched` tells whether the input had a
    batch axis. Torch tensors are accepted (converted on the CPU). Nothing is silently cast:
    floats, negative numbers and values other than 0 and 1 are refused.
    """
    if hasattr(spikes, "detach") and hasattr(spikes, "numpy"):  # a torch tensor, without importing torch
        spikes = spikes.detach().cpu().numpy()
    arr = np.asarray(spikes)
    if arr.ndim not in (2, 3):
        raise SpikeError(f"{name} must have shape [T, {n_in}] or [B, T, {n_in}], got shape {arr.shape}")
    if arr.shape[-1] != n_in:
        raise SpikeError(
            f"{name} has {arr.shape[-1]} inputs per timestep (shape {arr.shape}), the network expects {n_in}"
        )
    if arr.shape[-2] == 0 or (arr.ndim == 3 and arr.shape[0] == 0):
        raise SpikeError(f"{name} has shape {arr.shape}: at least one timestep and one batch entry are needed")
    arr = as_bool_spikes(arr, name=name)
    batched = arr.ndim == 3
    return (arr if batched else arr[None]), batched


def as_bool_spikes(spikes, *, name: str = "spikes") -> np.ndarray:
    """`spikes` as a bool array, refusing any dtype but bool/integer and any value but 0 and 1."""
    arr = np.asarray(spikes)
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        raise SpikeError(f"{name} must be bool or integer 0/1, got dtype {arr.dtype} (float 0/1 spikes, as "
                         "snnTorch's spikegen makes, convert with spikes.astype(bool), or spikes.bool() for a tensor)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise SpikeError(f"{name} must be bool or integer 0/1, got dtype {arr.dtype}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        idx = [int(i) for i in np.argwhere(bad)[0]]
        raise SpikeError(f"{name}{idx} = {arr[tuple(idx)]}, expected 0 or 1")
    return arr.astype(np.bool_)


def check_step(spikes, n_in: int, *, name: str = "spikes") -> np.ndarray:
    """Validate one timestep of 0/1 spikes, [B, n_in] or [n_in]; returns bool [B, n_in]."""
    if hasattr(spikes, "detach") and hasattr(spikes, "numpy"):  # a torch tensor, without importing torch
        spikes = spikes.detach().cpu().numpy()
    arr = np.asarray(spikes)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != n_in or arr.shape[0] == 0:
        raise SpikeError(f"{name} has shape {np.shape(spikes)}, expected one timestep [B, {n_in}] or [{n_in}]")
    return as_bool_spikes(arr, name=name)


def load_spikes(path, *, key: str = "spikes") -> np.ndarray:
    """Read a spike file: an .npz holding 0/1 array `spikes` of shape [T, n] or [B, T, n]; returns bool."""
    with np.load(Path(path), allow_pickle=False) as npz:
        if key not in npz.files:
            raise SpikeError(f"{path}: no array named '{key}' (found {npz.files})")
        return as_bool_spikes(npz[key], name=f"{path}: {key}")


def save_spikes(path, spikes, **extra) -> None:
    """Write a spike file (0/1 array `spikes`, stored as bool) with optional extra arrays (e.g. membranes)."""
    spikes = as_bool_spikes(spikes)
    with open(Path(path), "wb") as f:
        np.savez_compressed(f, spikes=spikes, **extra)


def poisson_spikes(shape, density: float, *, seed: int) -> np.ndarray:
    """Bernoulli spikes of the given shape where each entry fires with probability `density`."""
    if not 0.0 <= density <= 1.0:
        raise SpikeError(f"density = {density}, expected a probability in [0, 1]")
    return np.random.default_rng(seed).random(shape) < density
