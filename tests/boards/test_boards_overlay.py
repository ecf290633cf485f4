"""The overlay package (spikeloop.boards.overlay) and the driver finding it through pynq.

Vivado is not installed here, so the bitstream folder is the real prepared folder of
`vivado.prepare` (Verilog, TCL, spikeloop.json with the design hash) plus two fixtures standing
in for Vivado's outputs, from `zynq.write_overlay_files`: `spikeloop.bit` (a .bit header and
seeded random bytes, never loaded into an FPGA) and `spikeloop.hwh` (the hardware description of
the PS, the core and the DMA that pynq's parser reads; `SimDevice` takes its IP map from
`zynq.overlay_ips` instead, the remote-device tests from this .hwh). The installed package is then found by
pynq's own lookup (`pynq.overlays` entry point) and driven on the simulated board.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spikeloop.boards import overlay, vivado
from spikeloop.config import ConfigError, CoreConfig, design_hash
from spikeloop.sim.zynq import overlay_hwh, write_overlay_files

ROOT = Path(__file__).resolve().parents[2]
SEED = 20251122
#: The quickstart notebook's simulated core: its simulated-board build is shared through the cache.
CONFIG = CoreConfig.build((64, 32, 10), lanes=4, chunk=16, membranes=True)
OTHER = CoreConfig.build((64, 32, 10), lanes=2, chunk=16, membranes=True)
@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared PYNQ-Z2 folder (real) with the Vivado fixtures added."""
    folder = vivado.prepare(CONFIG, tmp_path_factory.mktemp("pynq-z2"))
    write_overlay_files(folder, CONFIG, seed=SEED)
    return folder


@pytest.fixture
def bitdir(prepared, tmp_path):
    """A private copy of the prepared folder, for tests that break it."""
    out = tmp_path / "bitdir"
    out.mkdir()
    for name in ("spikeloop.bit", "spikeloop.hwh", "spikeloop.json"):
        (out / name).write_bytes((prepared / name).read_bytes())
    return out


@pytest.fixture(scope="module")
def wheel(prepared, tmp_path_factory):
    """The overlay package assembled from the prepared folder and built into a wheel."""
    pytest.importorskip("setuptools")
    tree = overlay.assemble(prepared, tmp_path_factory.mktemp("tree") / "overlay", board="pynq-z2")
    built = overlay.build_wheel(tree)
    assert built is not None and built.exists()
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed with `pip install --no-deps --target` (no virtual environment)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True)
    return target


def test_the_source_tree(prepared, tmp_path):
    tree = overlay.assemble(prepared, tmp_path / "overlay", board="pynq-z2")
    module = tree / "spikeloop_pynq_z2"
    files = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    assert files == {"pyproject.toml", "README.md", "spikeloop_pynq_z2/__init__.py",
                     "spikeloop_pynq_z2/overlays/__init__.py", "spikeloop_pynq_z2/overlays/spikeloop/spikeloop.bit",
                     "spikeloop_pynq_z2/overlays/spikeloop/spikeloop.hwh",
                     "spikeloop_pynq_z2/overlays/spikeloop/spikeloop.json"}
    folder = module / "overlays" / "spikeloop"
    assert (folder / "spikeloop.bit").read_bytes() == (prepared / "spikeloop.bit").read_bytes()
    meta = json.loads((folder / "spikeloop.json").read_text())
    built = json.loads((prepared / "spikeloop.json").read_text())
    assert meta["design_hash"] == built["design_hash"] == design_hash(CONFIG).hex()
    assert meta["config"] == CONFIG.params() and meta["source_hash"] == built["source_hash"]
    assert meta["bitstream"]["spikeloop.bit"] == overlay._sha256(prepared / "spikeloop.bit")
    assert meta["package"]["name"] == "spikeloop-pynq-z2"
    assert "amaranth" in meta["packages"] and "python" in meta
    pyproject = (tree / "pyproject.toml").read_text()
    assert 'spikeloop-pynq-z2 = "spikeloop_pynq_z2.overlays"' in pyproject
    # a second run replaces its own tree; a foreign folder is refused, never deleted
    overlay.assemble(prepared, tmp_path / "overlay", board="pynq-z2")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(overlay.OverlayError, match="is not an overlay package written here"):
        overlay.assemble(prepared, tmp_path / "mine", board="pynq-z2")
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_a_hand_run_vivado_summary_completes_the_metadata(bitdir, tmp_path):
    (bitdir / "reports").mkdir()
    (bitdir / "reports" / "summary.txt").write_text("vivado = v2023.2\nwns_ns = 0.412\nlut = 31000\nff = 9000\n")
    tree = overlay.assemble(bitdir, tmp_path / "overlay", board="pynq-z2")
    meta = json.loads((tree / "spikeloop_pynq_z2" / "overlays" / "spikeloop" / "spikeloop.json").read_text())
    assert meta["tools"]["vivado"] == "v2023.2" and meta["timing"] == {"wns_ns": 0.412}
    assert meta["utilization"] == {"lut": "31000", "ff": "9000"} and meta["status"].startswith("built")


def test_the_wheel_declares_the_entry_point_the_data_and_one_dependency(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(info).decode()
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    for name in ("spikeloop.bit", "spikeloop.hwh", "spikeloop.json"):
        assert f"spikeloop_pynq_z2/overlays/spikeloop/{name}" in names
    assert "[pynq.overlays]\nspikeloop-pynq-z2 = spikeloop_pynq_z2.overlays" in entry_points
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    from importlib.metadata import version

    assert requires == [f"spikeloop[board]=={version('spikeloop')}"]
    assert "torch" not in metadata
    assert f"Version: {version('spikeloop')}+{design_hash(CONFIG).hex()[:12]}" in metadata


def _run(code: str, *, target: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_pynq_finds_the_installed_overlay_by_name(installed, tmp_path):
    code = ("import types, pynq\n"
            "b = pynq.Bitstream('spikeloop.bit', device=types.SimpleNamespace(name='pynq-z2'))\n"
            "print(b.bitfile_name)\n")
    proc = _run(code, target=installed, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = Path(proc.stdout.strip().splitlines()[-1])
    assert found == installed / "spikeloop_pynq_z2" / "overlays" / "spikeloop" / "spikeloop.bit"
    without = _run(code, target=tmp_path, cwd=tmp_path)  # not installed: pynq finds nothing
    assert without.returncode != 0 and "does not exist" in without.stderr


def test_open_core_uses_the_installed_overlay_on_the_simulated_board(installed, tmp_path):
    from spikeloop.sim.board import board_available

    if reason := board_available():
        pytest.skip(reason)
    code = f"""
import numpy as np
from spikeloop import golden
from spikeloop.config import CoreConfig
from spikeloop.host import open_core
from spikeloop.sim.zynq import SimDevice
from spikeloop.network import random_network
from spikeloop.sim.board import SimBoard
from spikeloop.spikes import poisson_spikes

config = CoreConfig.build((64, 32, 10), lanes=4, chunk=16, membranes=True)
core = open_core("pynq", device=SimDevice(SimBoard(config, profile="quick")))
print(core.transport.overlay.bitfile_name)
print(core.transport.overlay.metadata["design_hash"])
net = random_network(config.sizes, seed={SEED})
core.load(net)
spikes = poisson_spikes((40, 64), 0.25, seed={SEED})
out, ref = core.run(spikes), golden.run(net, spikes)
assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes)
assert ref.spikes.any(), "no output spike: the comparison would be vacuous"
print(int(ref.spikes.sum()))
"""
    proc = _run(code, target=installed, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bitfile, got_hash, spikes = proc.stdout.strip().splitlines()[-3:]
    assert Path(bitfile).is_relative_to(installed)
    assert got_hash == design_hash(CONFIG).hex() and int(spikes) > 0


# ---------------------------------------------------------------- the driver refuses a metadata mismatch
@pytest.fixture
def sim_board():
    from spikeloop.sim.board import SimBoard, board_available

    if reason := board_available():
        pytest.skip(reason)
    board = SimBoard(CONFIG, profile="quick")
    yield board
    board.close()


def _transport(board, folder: Path, meta: dict | str | None):
    from spikeloop.host.pynq_transport import PynqTransport, sim_overlay

    if meta is not None:
        (folder / "spikeloop.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return PynqTransport(overlay=sim_overlay(board, directory=folder))


def test_the_driver_accepts_matching_metadata(sim_board, prepared, tmp_path):
    meta = json.loads((prepared / "spikeloop.json").read_text())
    transport = _transport(sim_board, tmp_path, meta)
    assert transport.overlay.metadata["design_hash"] == design_hash(CONFIG).hex()
    transport.close()


def test_the_driver_refuses_metadata_of_another_design(sim_board, tmp_path):
    other = design_hash(OTHER).hex()
    with pytest.raises(ConfigError, match=f"its metadata says {other[:16]}") as info:
        _transport(sim_board, tmp_path, {"design_hash": other, "config": OTHER.params()})
    assert design_hash(CONFIG).hex()[:16] in str(info.value)


def test_the_driver_refuses_unreadable_metadata(sim_board, tmp_path):
    with pytest.raises(ConfigError, match="spikeloop.json is not valid JSON"):
        _transport(sim_board, tmp_path, "{not json")
    with pytest.raises(ConfigError, match="has no design_hash"):
        _transport(sim_board, tmp_path, {"board": "pynq-z2"})


# ---------------------------------------------------------------- refusals of the packager
def _refused(bitdir: Path, match: str, board: str = "pynq-z2"):
    with pytest.raises(overlay.OverlayError, match=match):
        overlay.assemble(bitdir, bitdir.parent / "out", board=board)


def test_refuses_a_folder_that_does_not_exist(tmp_path):
    _refused(tmp_path / "nowhere", r"nowhere is not a folder")


@pytest.mark.parametrize("name, match", [
    ("spikeloop.bit", r"no \.bit file in .*bitdir"),
    ("spikeloop.hwh", r"bitdir/spikeloop\.hwh is missing"),
    ("spikeloop.json", r"bitdir/spikeloop\.json is missing"),
])
def test_refuses_a_missing_file(bitdir, name, match):
    (bitdir / name).unlink()
    _refused(bitdir, match)


def test_refuses_bit_and_hwh_of_different_base_names(bitdir):
    (bitdir / "spikeloop.hwh").rename(bitdir / "design_1.hwh")
    _refused(bitdir, r"spikeloop\.bit and design_1\.hwh have different base names")


def test_refuses_two_bitstreams(bitdir):
    (bitdir / "old.bit").write_bytes(b"x")
    _refused(bitdir, r"holds 2 \.bit files \(old\.bit, spikeloop\.bit\)")


def test_refuses_an_empty_placeholder_bitstream(bitdir):
    (bitdir / "spikeloop.bit").write_bytes(b"")
    _refused(bitdir, r"spikeloop\.bit is empty")


def test_refuses_a_hwh_without_the_core(bitdir):
    (bitdir / "spikeloop.hwh").write_text(overlay_hwh(CONFIG).replace(vivado.VLNV, "xilinx.com:ip:axi_gpio:2.0"))
    _refused(bitdir, r"spikeloop\.hwh names no spikeloop core \(xilinx\.com:module_ref:spikeloop_core:1\.0\)")


def _edit_metadata(bitdir: Path, **changes) -> None:
    path = bitdir / "spikeloop.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_refuses_metadata_whose_hash_is_not_its_configuration(bitdir):
    _edit_metadata(bitdir, config=OTHER.params())
    _refused(bitdir, rf"design_hash {design_hash(CONFIG).hex()[:16]}\.\.\. is not the hash of its "
                     rf"configuration \({design_hash(OTHER).hex()[:16]}")


def test_refuses_metadata_of_another_board(bitdir):
    _edit_metadata(bitdir, board="ulx3s")
    _refused(bitdir, r"describes a build for board 'ulx3s', not 'pynq-z2'")


def test_refuses_metadata_that_is_not_json_or_not_spikeloop(bitdir):
    (bitdir / "spikeloop.json").write_text("{")
    _refused(bitdir, r"spikeloop\.json is not valid JSON")
    (bitdir / "spikeloop.json").write_text('{"board": "pynq-z2"}')
    _refused(bitdir, r"has no 'config' and 'design_hash'")


def test_refuses_an_invalid_configuration(bitdir):
    params = CONFIG.params()
    params["layers"][0]["lanes"] = 0
    _edit_metadata(bitdir, config=params)
    _refused(bitdir, r"'config' is invalid: layer 0: lanes")


def test_refuses_a_bitstream_replaced_after_the_build(bitdir):
    _edit_metadata(bitdir, bitstream={"spikeloop.bit": "0" * 64})
    _refused(bitdir, r"spikeloop\.bit: its SHA-256 differs from the one spikeloop\.json records")


@pytest.mark.parametrize("board, match", [("zcu104", r"unknown board 'zcu104'"),
                                          ("ulx3s", r"board 'ulx3s' is not a PYNQ board")])
def test_refuses_a_board_that_has_no_overlay(bitdir, board, match):
    _refused(bitdir, match, board=board)


def test_refuses_to_write_over_the_build_folder(bitdir):
    with pytest.raises(overlay.OverlayError, match="holds the build folder"):
        overlay.assemble(bitdir, bitdir, board="pynq-z2")
    assert (bitdir / "spikeloop.bit").exists()


def test_the_command_line(prepared, bitdir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert overlay.main(["--board", "pynq-z2", "--bitdir", str(prepared), "--out", str(out), "--no-wheel"]) == 0
    assert (out / "pyproject.toml").exists() and "spikeloop-pynq-z2" in capsys.readouterr().out
    if importlib.util.find_spec("setuptools") is not None:  # the default: a wheel too, rebuilt in place
        for _ in range(2):
            assert overlay.main(["--bitdir", str(prepared), "--out", str(out)]) == 0
        assert len(list((out / "dist").glob("spikeloop_pynq_z2-*.whl"))) == 1
        driver = list((out / "dist").glob("spikeloop-*.whl"))
        assert len(driver) == 1, "the spikeloop wheel (driver and notebooks) belongs beside the overlay's"
        with zipfile.ZipFile(driver[0]) as whl:
            names = whl.namelist()
            entry_points = next(whl.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        assert {"spikeloop/host/driver.py", "spikeloop/notebooks/quickstart.ipynb"} <= set(names)
        assert "[pynq.notebooks]" in entry_points and "spikeloop.notebooks" in entry_points
        text = capsys.readouterr().out
        assert f"pip install {driver[0].name} spikeloop_pynq_z2-" in text, text
    (bitdir / "spikeloop.hwh").unlink()
    assert overlay.main(["--bitdir", str(bitdir), "--out", str(tmp_path / "x"), "--no-wheel"]) == 2
    err = capsys.readouterr().err
    assert "make overlay: error:" in err and "spikeloop.hwh is missing" in err
