"""The notebooks in notebooks/: executed with nbclient on the simulated board, clean, delivered by pynq.

Each notebook runs in a fresh kernel of this interpreter (a kernelspec written for
`sys.executable` into a temporary folder, so a user-wide "python3" kernel of another Python is
never picked), with SPIKELOOP_BACKEND=sim, a per-cell timeout and a temporary working directory.
A failing cell fails the test with the cell's source and traceback.

The notebooks' "pynq" branch runs too, off-board: the test puts one cell of its own in front of
the notebook that makes `zynq.SimDevice` (pynq's Device API over the simulated board) pynq's
active device, and points SPIKELOOP_BITFILE at an empty placeholder .bit (SimDevice never reads it).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("quickstart.ipynb", "closed_loop.ipynb", "latency_throughput.ipynb", "learning_in_the_loop.ipynb",
         "bayesian.ipynb")
#: Seconds a cell may take: a cold simulated-board build of a small design included.
CELL_TIMEOUT = 600


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory) -> Path:
    """A folder holding the kernelspec "python3" for this interpreter."""
    from ipykernel.kernelspec import write_kernel_spec

    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(str(folder / "python3"), overrides={
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version.split()[0]} ({sys.executable})"})
    return folder


def execute(nb, kernel_dir: Path, cwd: Path, name: str, timeout: float = CELL_TIMEOUT):
    """Run every cell of `nb` in a python3 kernel of sys.executable; returns the executed notebook."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    assert km.kernel_spec.argv[0] == sys.executable
    client = nbclient.NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    try:
        return client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name}: a cell failed:\n{exc}", pytrace=False)
    finally:
        if km.has_kernel:  # nbclient leaves a kernel it did not create running
            km.shutdown_kernel(now=True)


def test_the_kernel_is_this_interpreter_and_a_failing_cell_fails(kernel_dir, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, sys; print(sys.executable); print(os.getcwd())"),
        nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'arithmetic is broken'")])
    with pytest.raises(pytest.fail.Exception, match="arithmetic is broken") as info:
        execute(nb, kernel_dir, tmp_path, "probe.ipynb", timeout=60)
    assert "probe.ipynb: a cell failed" in str(info.value)
    executable, cwd = nb.cells[0].outputs[0]["text"].split()
    assert Path(executable) == Path(sys.executable) and Path(cwd).resolve() == tmp_path.resolve()


#: Notebooks whose run builds simulated boards of their own (learning_in_the_loop: two designs; bayesian: a
#: training run and its 16-16-2 core): executed by `make experiments` (CI runs it), so that `make test` stays
#: under 15 minutes.
LONG = ("learning_in_the_loop.ipynb", "bayesian.ipynb")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.experiment) if n in LONG else n for n in NAMES])
def test_the_notebook_runs_on_the_simulated_board(name, kernel_dir, tmp_path, monkeypatch):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    monkeypatch.setenv("SPIKELOOP_BACKEND", "sim")
    for variable in ("SPIKELOOP_IMAGE", "SPIKELOOP_BITFILE"):
        monkeypatch.delenv(variable, raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    t0 = time.monotonic()
    done = execute(nb, kernel_dir, tmp_path, name)
    print(f"{name}: {time.monotonic() - t0:.1f} s")
    text = "".join(o.get("text", "") for cell in done.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "backend: sim" in text
    images = [o for cell in done.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"


#: The core each notebook expects on a board (its "pynq" branch), as code for the setup cell.
BOARD_CONFIG = {
    "quickstart.ipynb": "CoreConfig.build((64, 32, 10), lanes=4, chunk=16, membranes=True)",
    "closed_loop.ipynb": "CoreConfig.for_network(cartpole.policy_network(), **cartpole.GEOMETRY)",
    "latency_throughput.ipynb": "CoreConfig.for_network(cartpole.policy_network(), **cartpole.GEOMETRY)",
}
SIM_PYNQ_SETUP = """import pynq
from spikeloop.host import cartpole
from spikeloop.sim.zynq import SimDevice
from spikeloop.config import CoreConfig
from spikeloop.sim.board import SimBoard
pynq.Device.active_device = SimDevice(SimBoard({config}, profile="quick"))"""


#: learning_in_the_loop.ipynb is left out: it opens two designs one after the other (a core with probes, then
#: the CartPole policy's), and the simulated PYNQ device holds one; bayesian.ipynb too: it trains first, and
#: its core's build would be one more in `make test`.
@pytest.mark.parametrize("name", sorted(BOARD_CONFIG))
def test_the_pynq_branch_runs_on_the_simulated_pynq_board(name, kernel_dir, tmp_path, monkeypatch):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    (tmp_path / "spikeloop.bit").write_bytes(b"")
    monkeypatch.setenv("SPIKELOOP_BACKEND", "pynq")
    monkeypatch.setenv("SPIKELOOP_BITFILE", str(tmp_path / "spikeloop.bit"))
    monkeypatch.delenv("SPIKELOOP_IMAGE", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SIM_PYNQ_SETUP.format(config=BOARD_CONFIG[name])))
    t0 = time.monotonic()
    done = execute(nb, kernel_dir, tmp_path, name)
    print(f"{name} (pynq branch): {time.monotonic() - t0:.1f} s")
    text = "".join(o.get("text", "") for cell in done.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "backend: pynq" in text and "pynq transport" in text


def test_the_notebooks_are_stored_without_outputs():
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), name
        assert nb.metadata.kernelspec.name == "python3", name
        backend = [cell.source for cell in code if "BACKEND = " in cell.source]
        assert len(backend) == 1 and 'os.environ.get("SPIKELOOP_BACKEND") or' in backend[0], name


def test_the_pynq_notebooks_entry_point_is_the_notebooks_folder():
    found = [ep for ep in entry_points(group="pynq.notebooks") if ep.name == "spikeloop"]
    assert len(found) == 1 and found[0].value == "spikeloop.notebooks"
    folder = Path(importlib.import_module(found[0].value).__file__).parent
    assert set(NAMES) <= {p.name for p in folder.glob("*.ipynb")}
    assert folder.resolve() == NOTEBOOKS.resolve()


def test_pynq_get_notebooks_copies_them(tmp_path):
    """`pynq get-notebooks` off-board: --ignore-overlays skips the board lookup (no device needed)."""
    pynq_cli = shutil.which("pynq", path=str(Path(sys.executable).parent)) or shutil.which("pynq")
    if pynq_cli is None:
        pytest.skip("the pynq command is not installed")
    target = tmp_path / "delivered"
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([pynq_cli, "get-notebooks", "spikeloop", "--ignore-overlays", "--force", "--path",
                           str(target)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in NAMES:
        assert (target / "spikeloop" / name).read_bytes() == (NOTEBOOKS / name).read_bytes()
    assert not (target / "spikeloop" / "__init__.py").exists()
