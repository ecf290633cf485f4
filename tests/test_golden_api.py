"""The public API of the golden engine: the step functions, `run`'s engine choice, the helpers.

What each engine computes is held equal to the reference in test_golden_fast.py; here: which
engine runs, the refusals, the step functions as pure functions, and that no other module
reaches into the engine's private functions (they use its public API).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest

from spikeloop import golden
from spikeloop.native import golden_kernel
from spikeloop.network import Layer, Network, random_network, signed_range

ROOT = Path(__file__).resolve().parents[1]
needs_native = pytest.mark.skipif(not golden.native_available(), reason="no C compiler: no native kernel")


def recording_synaptic(seen: list):
    """A `synaptic=` function that computes the contract's sums and records the layers it was called for."""

    def synaptic(layer, x):
        seen.append(layer)
        return golden.synaptic_input(layer, x)

    return synaptic


def small_case(seed: int = 5):
    network = random_network((24, 12, 6), seed=seed, neuron="cuba", v_bits=8, u_bits=6, lam=40, alpha=64)
    spikes = np.random.default_rng(seed).random((3, 9, 24)) < 0.4
    return network, spikes


def assert_traces_equal(a: golden.Trace, b: golden.Trace, what: str) -> None:
    assert np.array_equal(a.spikes, b.spikes) and a.spikes.dtype == b.spikes.dtype, f"{what}: spikes"
    assert np.array_equal(a.membranes, b.membranes) and a.membranes.dtype == b.membranes.dtype, f"{what}: membranes"
    for k, (s, r) in enumerate(zip(a.states, b.states)):
        assert np.array_equal(s.v, r.v) and np.array_equal(s.u, r.u), f"{what}: state {k}"


@pytest.fixture
def native_runs(monkeypatch):
    """Counts the native kernel's runs (every engine that uses it binds a `NativeRun`)."""
    calls = []

    class Counting(golden_kernel.NativeRun):
        def __init__(self, *args, **kwargs):
            calls.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(golden_kernel, "NativeRun", Counting)
    return calls


# ------------------------------------------------------------------------------------------------
# run(engine=...)


@pytest.mark.parametrize("engine", golden.ENGINES)
def test_every_engine_gives_the_reference(engine):
    network, spikes = small_case()
    if engine == "native" and not golden.native_available():
        pytest.skip("no C compiler: no native kernel")
    ref = golden.run(network, spikes, engine="reference")
    assert_traces_equal(golden.run(network, spikes, engine=engine), ref, f"engine={engine}")


@needs_native
@pytest.mark.parametrize(("engine", "native"), [("auto", True), ("native", True), ("numpy", False),
                                                ("reference", False)])
def test_engine_chooses_the_native_kernel(engine, native, native_runs):
    network, spikes = small_case()
    golden.run(network, spikes, engine=engine)
    assert bool(native_runs) == native, f"engine={engine}: native kernel runs {len(native_runs)}"


def test_auto_without_kernel_is_numpy(monkeypatch, native_runs):
    monkeypatch.setattr(golden_kernel, "kernel", lambda: None)
    monkeypatch.setattr(golden_kernel, "unavailable_reason", lambda: "test")
    network, spikes = small_case()
    seen = []
    synaptic = recording_synaptic(seen)

    ref = golden.run(network, spikes, engine="reference")
    assert_traces_equal(golden.run(network, spikes, synaptic=synaptic), ref, "auto without kernel")
    assert not native_runs and seen == list(network.layers), "auto must fall back to numpy"
    with pytest.raises(RuntimeError, match=r"engine='native': the native kernel is unavailable \(test\)"):
        golden.run(network, spikes, engine="native")


@pytest.mark.parametrize("engine", ["numpy", "reference", pytest.param("native", marks=needs_native)])
def test_synaptic_replaces_the_sums_of_the_numpy_engine_only(engine):
    network, spikes = small_case()
    seen = []
    synaptic = recording_synaptic(seen)

    ref = golden.run(network, spikes, engine="reference")
    assert_traces_equal(golden.run(network, spikes, engine=engine, synaptic=synaptic), ref, engine)
    assert seen == (list(network.layers) if engine == "numpy" else [])


@pytest.mark.parametrize("bad", ["fast", "torch", "Auto", "", None, 1])
def test_bad_engine_names_the_value_and_the_choices(bad):
    network, spikes = small_case()
    with pytest.raises(ValueError, match=rf"^engine must be one of auto, native, numpy, reference; got {bad!r}$"):
        golden.run(network, spikes, engine=bad)
    with pytest.raises(ValueError, match=rf"^engine must be one of auto, native, numpy; got {bad!r}$"):
        golden.Stepper(network, engine=bad)


def test_stepper_refuses_the_reference_engine_by_name():
    network, _ = small_case()
    with pytest.raises(ValueError, match=r"^engine must be one of auto, native, numpy; got 'reference'$"):
        golden.Stepper(network, engine="reference")


def test_check_engine():
    assert golden.check_engine("numpy") == "numpy"
    assert golden.check_engine("torch", choices=("auto", "torch")) == "torch"
    with pytest.raises(ValueError, match=r"^engine must be one of a, b; got 'c'$"):
        golden.check_engine("c", choices=("a", "b"))


def test_synaptic_must_be_a_function():
    network, spikes = small_case()
    with pytest.raises(TypeError, match=r"synaptic must be a function .* got int"):
        golden.run(network, spikes, synaptic=3)


# ------------------------------------------------------------------------------------------------
# Helpers


def test_states_fit():
    network, _ = small_case()
    fresh = golden.initial_state(network, 3)
    assert golden.states_fit(network, 3, fresh)
    assert not golden.states_fit(network, 2, fresh), "batch"
    assert not golden.states_fit(network, 3, fresh[:1]), "number of layers"
    v_hi = signed_range(network.layers[0].v_bits)[1]
    u_lo = signed_range(network.layers[0].u_bits)[0]
    ok_v = np.full((3, 12), v_hi, np.int64)
    assert golden.states_fit(network, 3, (golden.LayerState(ok_v, np.zeros_like(ok_v)), fresh[1]))
    for v, u, what in [
        (ok_v + 1, np.zeros_like(ok_v), "v above range"),
        (np.zeros_like(ok_v), np.full_like(ok_v, u_lo - 1), "u below range"),
        (ok_v.astype(np.int32), np.zeros_like(ok_v), "dtype"),
        (ok_v[:, :11], np.zeros_like(ok_v), "shape"),
        (ok_v.tolist(), np.zeros_like(ok_v), "not an array"),
    ]:
        assert not golden.states_fit(network, 3, (golden.LayerState(v, u), fresh[1])), what
    assert not golden.states_fit(network, 3, (None, fresh[1])), "not a state"


def test_neuron_step_is_pure_and_follows_the_equations():
    # cuba, F=3, lam=2, alpha=4, theta=5, v_bits=6 (v in [-32, 31]), u_bits=5 (u in [-16, 15])
    layer = Layer(np.ones((3, 1), np.int8), theta=5, neuron="cuba", reset="subtract", v_bits=6, u_bits=5,
                  frac_bits=3, lam=2, alpha=4)
    state = golden.LayerState(np.array([[10, -7, 30]]), np.array([[6, -3, 15]]))
    saved = (state.v.copy(), state.u.copy())
    a = np.array([[1, 0, 9]])
    out, new = golden.neuron_step(a, state, layer)
    # u = sat5(u - ((u*4) >> 3) + a):  6-3+1 = 4,  -3-(-2)+0 = -1,  15-7+9 = 17 -> 15
    assert out.u.tolist() == [[4, -1, 15]]
    # v' = sat6(v - ((v*2) >> 3) + u):  10-2+4 = 12,  -7-(-2)-1 = -6,  30-7+15 = 38 -> 31
    assert out.v.tolist() == [[12, -6, 31]]
    assert out.z.tolist() == [[True, False, True]]
    assert new.v.tolist() == [[7, -6, 26]] and new.u.tolist() == [[4, -1, 15]]
    assert np.array_equal(state.v, saved[0]) and np.array_equal(state.u, saved[1]), "the state was modified"


# ------------------------------------------------------------------------------------------------
# The torch adapter and the training model use the same step


def test_torch_step_equals_the_reference_step():
    torch = pytest.importorskip("torch")
    from spikeloop.quant import golden as tg

    rng = np.random.default_rng(11)
    for neuron in ("lif", "cuba"):
        for reset in ("subtract", "zero", "none"):
            layer = Layer(np.ones((16, 1), np.int8), theta=rng.integers(1, 20, 16), neuron=neuron, reset=reset,
                          v_bits=7, u_bits=6, frac_bits=4, lam=5, alpha=9 if neuron == "cuba" else 0)
            v = rng.integers(-64, 64, (4, 16))
            u = rng.integers(-32, 32, (4, 16)) if neuron == "cuba" else np.zeros((4, 16), np.int64)
            a = rng.integers(-40, 40, (4, 16))
            out, new = golden.neuron_step(a, golden.LayerState(v, u), layer)
            t_out, t_new = tg.lif_step(torch.from_numpy(a), tg.LIFState(torch.from_numpy(v), torch.from_numpy(u)),
                                       tg.LayerParams.of(layer))
            for name, x, y in [("z", out.z, t_out.z), ("v'", out.v, t_out.v), ("u", out.u, t_out.u),
                               ("v", new.v, t_new.v), ("state u", new.u, t_new.u)]:
                assert np.array_equal(x, y.numpy()) and x.dtype == y.numpy().dtype, f"{neuron} {reset}: {name}"


def test_golden_model_refuses_bad_engine():
    pytest.importorskip("torch")
    from spikeloop.quant.golden import GoldenModel

    network, spikes = small_case()
    with pytest.raises(ValueError, match=r"^engine must be one of auto, native, numpy, torch; got 'reference'$"):
        GoldenModel(network).run(spikes, engine="reference")


def test_training_forward_is_the_golden_step(monkeypatch):
    torch = pytest.importorskip("torch")
    from spikeloop.quant import models

    layer = models.BinaryLIF(8, 4, neuron="cuba", reset="zero", v_bits=6, u_bits=5, seed=3)
    x = torch.from_numpy(np.random.default_rng(3).random((2, 5, 8)) < 0.5).to(torch.uint8)
    w = layer.weights()
    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return step(*args, **kwargs)

    step = models.lif_step
    monkeypatch.setattr(models, "lif_step", counting)
    for hardware in (True, False):
        calls.clear()
        layer(x, weights=w, hardware=hardware)
        assert len(calls) == 5, f"hardware={hardware}: {len(calls)} steps of lif_step for 5 timesteps"


def test_tests_reference_stays_independent():
    tree = ast.parse((ROOT / "tests" / "reference.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in imported if m.startswith("spikeloop")}, f"tests/reference.py imports {imported}"


# ------------------------------------------------------------------------------------------------
# Nobody outside spikeloop/golden.py uses its private names


def _private_uses(path: Path) -> list[str]:
    """`name:line` of every private name of spikeloop.golden that the module at `path` uses."""
    tree = ast.parse(path.read_text(), str(path))
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "spikeloop":
            aliases |= {a.asname or a.name for a in node.names if a.name == "golden"}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.name == "spikeloop.golden" and a.asname}
        if isinstance(node, ast.ImportFrom) and node.module == "spikeloop.golden":
            found += [f"{a.name}:{node.lineno}" for a in node.names if a.name.startswith("_")]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in aliases):
            found.append(f"{node.attr}:{node.lineno}")
    return found


def test_no_module_uses_a_private_name_of_the_golden_engine():
    own = ROOT / "spikeloop" / "golden.py"
    offenders = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("build", "__pycache__"))
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(".py") and path != own and (uses := _private_uses(path)):
                offenders[str(path.relative_to(ROOT))] = uses
    assert not offenders, f"private names of spikeloop.golden used elsewhere: {offenders}"


def test_the_scan_finds_private_uses(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from spikeloop import golden as g\nfrom spikeloop.golden import _kernel\ng._states_fit\n"
                   "g.run\n")
    assert _private_uses(src) == ["_kernel:2", "_states_fit:3"]


def test_public_names_exist():
    for name in golden.__all__:
        assert hasattr(golden, name), name
        assert not name.startswith("_"), name


def test_network_of_one_layer_runs_on_every_engine():
    network = Network((Layer(np.array([[1, -1]]), theta=1),))
    spikes = np.array([[1, 0], [0, 1], [1, 1]], bool)
    for engine in golden.ENGINES:
        if engine == "native" and not golden.native_available():
            continue
        assert golden.run(network, spikes, engine=engine).spikes[:, 0].tolist() == [True, False, False]
